"""Transport errors as the consumers caught them (issue 10, item 5): 0.3.4 let ``socket.error``
through, and Nova and Ceilometer catch it around their calls, so every transport error is an
``OSError`` (``socket.error`` is ``OSError``), and a ``ConnectionError`` where the connection
was refused or cut."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

from .conftest import consumer_session, halted_instance

ORIGINATOR = "transport-referee"


def closed_port() -> int:
    """A loopback port nothing listens on (just released by the kernel)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_url_where_nothing_listens_is_a_connection_error(sim: Simulator) -> None:
    with pytest.raises(socket.error) as info:
        consumer_session(sim, "ceilometer", url=f"http://127.0.0.1:{closed_port()}")
    assert isinstance(info.value, ConnectionError)


def test_a_connection_cut_after_a_call_was_sent_is_a_connection_error(
    sim: Simulator, x: Any, nova: XenAPISession,
) -> None:
    vm = halted_instance(x, "instance-cut")
    sim.add_fault("VM.set_name_description", "drop_after", times=1)
    with pytest.raises(socket.error) as info:
        nova.VM.set_name_description(vm, "the reply never arrives")
    assert isinstance(info.value, ConnectionError)


def test_a_reply_that_does_not_come_in_time_is_an_os_error(sim: Simulator,
                                                           nova: XenAPISession) -> None:
    sim.add_fault("pool.get_all", "latency", seconds=3, times=1)
    with pytest.raises(OSError):
        nova.call_xenapi("pool.get_all", timeout=0.3)
