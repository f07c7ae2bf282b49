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

Each fixture is function-scoped: every test gets a fresh pool, and it is stopped (and the session
logged out) when the test ends. Failed logins are answered at once instead of after XAPI's
5 second delay. A simulator that runs a project's own dom0 plugins will be offered here once the
simulator can run plugins.
"""

from __future__ import annotations

from collections.abc import Iterator
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
