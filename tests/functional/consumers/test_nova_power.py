"""Nova's host power actions (nova/virt/xenapi/host.py, ``host_power_action`` through
``call_xenhost``): a direct ``call_plugin('xenhost.py', 'host_reboot' | 'host_shutdown',
args={'action': json.dumps(action)})`` whose JSON text Nova loads and reads ``power_action``
from (issue 10, item 3). Each action runs on a slave of a three-host pool, reached by a Nova
session made with that slave's URL, so the master keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

from .conftest import consumer_session

ORIGINATOR = "nova-power-referee"


@pytest.fixture(scope="module")
def sim(root: Path) -> Iterator[Simulator]:
    with Simulator(hosts=3, auth_failure_delay=0, dom0_root=root) as simulator:
        yield simulator


def call_xenhost(session: XenAPISession, method: str, arg_dict: dict[str, str]) -> Any:
    """Nova's host.call_xenhost: xenhost.py's method with plain arguments, its JSON decoded."""
    result = session.call_plugin("xenhost.py", method, args=arg_dict)
    return json.loads(result) if result else ""


def nova_on(sim: Simulator, index: int) -> XenAPISession:
    """Nova's session on host ``index``, as a compute node of that host makes it."""
    return consumer_session(sim, "nova", url=sim.urls[index])


def test_nova_session_with_a_slaves_url_is_on_that_slave(x: Any, sim: Simulator) -> None:
    slave = next(ref for ref, record in x.host.get_all_records().items()
                 if record["address"] == sim.addresses[1])
    with nova_on(sim, 1) as nova:
        assert (nova.host_ref, nova.host_uuid) == (slave, x.host.get_uuid(slave))


def test_host_reboot_with_novas_action_argument_answers_the_power_action(
    sim: Simulator,
) -> None:
    with nova_on(sim, 1) as nova:
        answer = call_xenhost(nova, "host_reboot", {"action": json.dumps("reboot")})
    assert answer == {"power_action": "reboot"}


def test_host_shutdown_with_novas_action_argument_answers_the_power_action(
    sim: Simulator,
) -> None:
    with nova_on(sim, 2) as nova:
        answer = call_xenhost(nova, "host_shutdown", {"action": json.dumps("shutdown")})
    assert answer == {"power_action": "shutdown"}
