"""pytest fixtures that give tests a simulated XAPI pool to talk to over real sockets.

pytest loads this plugin through os-xenapi's ``pytest11`` entry point, so any project that
installs os-xenapi can ask for these fixtures by name, with no conftest.py:

``xapi_simulator``
    A started one-host :class:`~os_xenapi.simulator.Simulator`; connect to ``.url`` (or
    ``.unix_path``) and log in with ``.username`` / ``.password``.
``xapi_pool``
    The same with two hosts: ``.urls[0]`` is the master, ``.urls[1]`` a member on 127.0.0.2.
``xapi_session``
    An official XenAPI SDK session logged in to ``xapi_simulator``. The SDK (PyPI ``XenAPI``) is
    only a test extra of os-xenapi, so tests that use this fixture are skipped without it.
``xapi_simulator_with_plugins``
    A one-host simulator whose ``host.call_plugin`` runs os-xenapi's own dom0 plugins
    (``os_xenapi/dom0/etc/xapi.d/plugins``) in a simulated dom0.

To run another project's plugins, make a fixture with :func:`simulator_with_plugins`::

    @pytest.fixture
    def sim(tmp_path):
        with simulator_with_plugins("dom0/plugins", dom0_root=tmp_path) as sim:
            yield sim

Each fixture is function-scoped: every test gets a fresh pool, and it is stopped (and the session
logged out) when the test ends. Failed logins are answered at once instead of after XAPI's
5 second delay.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from os_xenapi.simulator import Simulator


def _running(hosts: int) -> Iterator[Simulator]:
    """Yield a started simulator of ``hosts`` hosts and stop it afterwards."""
    # Imported here so that pytest runs that never use these fixtures do not load the simulator.
    from os_xenapi.simulator import Simulator

    with Simulator(hosts=hosts, auth_failure_delay=0) as sim:
        yield sim


@contextmanager
def simulator_with_plugins(
    plugins_dir: str | os.PathLike[str], hosts: int = 1, **options: Any
) -> Iterator[Simulator]:
    """A started simulator whose ``host.call_plugin`` runs the plugins of ``plugins_dir``.

    ``options`` go to :class:`~os_xenapi.simulator.Simulator` (``dom0_root``, ``vms``...).
    Raises ValueError if ``plugins_dir`` is not a directory.
    """
    from os_xenapi.simulator import Simulator

    options.setdefault("auth_failure_delay", 0)
    with Simulator(hosts=hosts, plugins_dir=plugins_dir, **options) as sim:
        yield sim


@pytest.fixture
def xapi_simulator_with_plugins() -> Iterator[Simulator]:
    """A started one-host simulator serving os-xenapi's own dom0 plugins, stopped afterwards."""
    from os_xenapi.simulator.plugins import default_plugins_dir

    with simulator_with_plugins(default_plugins_dir()) as sim:
        yield sim


@pytest.fixture
def xapi_simulator() -> Iterator[Simulator]:
    """A started one-host XAPI simulator, stopped when the test ends."""
    yield from _running(hosts=1)


@pytest.fixture
def xapi_pool() -> Iterator[Simulator]:
    """A started two-host XAPI simulator (master 127.0.0.1, member 127.0.0.2, one port)."""
    yield from _running(hosts=2)


@pytest.fixture
def xapi_session(xapi_simulator: Simulator) -> Iterator[Any]:
    """An official-SDK ``XenAPI.Session`` logged in to ``xapi_simulator``; skipped without the SDK."""
    XenAPI = pytest.importorskip("XenAPI")
    session = XenAPI.Session(xapi_simulator.url)
    session.login_with_password(
        xapi_simulator.username, xapi_simulator.password, "2.21", "os-xenapi pytest fixture"
    )
    try:
        yield session
    finally:
        if session.handle:  # the test may have logged out already
            session.xenapi.session.logout()
