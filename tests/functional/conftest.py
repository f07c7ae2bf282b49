"""Fixtures the functional tests of the dom0 plugin calls share: a scratch dom0 root, a simulator
running os-xenapi's own plugins in it, the client's XenAPISession and the official SDK as referee.

All are module-scoped: a module gets one simulator. A module overrides ``root`` to prepare its
dom0 (an SR directory, a CA bundle) and ``sim`` to change the pool (more hosts, VMs); it names
its sessions with a module-level ``ORIGINATOR``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import XenAPI

from os_xenapi.client.retry import Retry
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator


def _originator(request: pytest.FixtureRequest) -> str:
    return getattr(request.module, "ORIGINATOR", "functional-tests")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty scratch directory that stands for dom0's "/"."""
    return tmp_path_factory.mktemp("dom0")


@pytest.fixture(scope="module")
def sim(root: Path) -> Iterator[Simulator]:
    """A one-host pool whose plugins run in ``root``."""
    with Simulator(auth_failure_delay=0, dom0_root=root) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def session(sim: Simulator, request: pytest.FixtureRequest) -> Iterator[XenAPISession]:
    """The client under test, retrying quickly."""
    with XenAPISession(sim.url, sim.username, sim.password, _originator(request),
                       retry=Retry(wait=0.01, backoff=0.0)) as made:
        yield made


@pytest.fixture(scope="module")
def x(sim: Simulator, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The official SDK's ``xenapi`` proxy, logged in: the referee for the simulator's state."""
    official = XenAPI.Session(sim.url)
    official.xenapi.login_with_password(sim.username, sim.password, "1.0", _originator(request))
    yield official.xenapi
    official.xenapi.session.logout()
