"""os_xenapi.client.XenAPI against the simulator, with the official SDK (PyPI XenAPI) side by side
as the referee: same calls, same values, same error details (shared/xapi/PROTOCOL.md section 6)."""

from __future__ import annotations

import threading
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import pytest
import XenAPI as SDK

from os_xenapi.client import XenAPI, exception
from os_xenapi.client.exception import Failure, HandleInvalid
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.faults import Fault

ORIGINATOR = "os-xenapi tests"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(hosts=1, vms=2, auth_failure_delay=0) as simulator:
        yield simulator


@pytest.fixture
def ours(sim: Simulator) -> Iterator[XenAPI.Session]:
    session = XenAPI.Session(sim.url)
    session.xenapi.login_with_password(sim.username, sim.password, "2.21", ORIGINATOR)
    try:
        yield session
    finally:
        if session.handle:
            session.xenapi.session.logout()
        session.close()


@pytest.fixture
def theirs(sim: Simulator) -> Iterator[Any]:
    session = SDK.Session(sim.url)
    session.xenapi.login_with_password(sim.username, sim.password, "2.21", ORIGINATOR)
    try:
        yield session
    finally:
        session.xenapi.session.logout()
        session("close")()


def sessions_on_server(sim: Simulator) -> int:
    return sim.run(lambda xapi: len(xapi.db.all("session")))


def halted_vm(xenapi: Any) -> str:
    records = xenapi.VM.get_all_records()
    return next(ref for ref, vm in records.items() if not vm["is_a_template"]
                and not vm["is_control_domain"] and vm["power_state"] == "Halted")


def wait_for_task(xenapi: Any, task: str) -> str:
    """The task's final status, waiting on event.from rather than sleeping."""
    token = ""
    for _ in range(50):  # each wait is at most 2 s; a simulated task ends long before
        status = xenapi.task.get_status(task)
        if status != "pending":
            return status
        token = getattr(xenapi.event, "from")([f"task/{task}"], token, 2.0)["token"]
    raise AssertionError(f"task still pending: {task}")


def test_sdk_style_scenario_login_records_async_logout(sim: Simulator) -> None:
    before = sessions_on_server(sim)
    session = XenAPI.Session(sim.url)
    session.xenapi.login_with_password(sim.username, sim.password, "2.21", ORIGINATOR)
    assert session.handle.startswith("OpaqueRef:")
    vm = halted_vm(session.xenapi)
    task = session.xenapi.Async.VM.start(vm, False, False)
    assert task.startswith("OpaqueRef:")
    assert wait_for_task(session.xenapi, task) == "success"
    assert session.xenapi.VM.get_power_state(vm) == "Running"
    session.xenapi.session.logout()
    assert session.handle is None
    assert sessions_on_server(sim) == before
    session.close()


def test_same_error_gives_the_same_details_as_the_official_sdk(ours: Any, theirs: Any) -> None:
    with pytest.raises(SDK.Failure) as official:
        theirs.xenapi.VM.get_record("OpaqueRef:nope")
    with pytest.raises(HandleInvalid) as mine:
        ours.xenapi.VM.get_record("OpaqueRef:nope")
    assert mine.value.details == official.value.details
    assert str(mine.value) == str(official.value)
    assert isinstance(mine.value, XenAPI.Failure) and XenAPI.Failure is Failure


def test_records_come_back_exactly_as_the_official_sdk_returns_them(ours: Any,
                                                                    theirs: Any) -> None:
    assert ours.xenapi.VM.get_all_records() == theirs.xenapi.VM.get_all_records()
    metrics = theirs.xenapi.VM_metrics.get_all_records()
    assert ours.xenapi.VM_metrics.get_all_records() == metrics
    first = next(iter(metrics.values()))
    assert isinstance(first["start_time"], xmlrpc.client.DateTime)


def test_raw_calls_return_the_status_struct_like_the_sdk(ours: Any, theirs: Any) -> None:
    assert ours.VM.get_all(ours.handle) == theirs.VM.get_all(theirs.handle)
    assert ours.VM.get_all(ours.handle)["Status"] == "Success"


def test_event_from_and_api_version(ours: Any, theirs: Any) -> None:
    result = getattr(ours.xenapi.event, "from")(["vm"], "", 0.1)
    assert result["events"] and result["token"]
    assert ours.API_version == theirs.API_version


def test_a_dead_session_is_replaced_by_one_new_login(sim: Simulator, ours: Any) -> None:
    dead = ours.handle
    sim.call("session.logout", dead)
    count = sessions_on_server(sim)
    assert ours.xenapi.VM.get_all()
    assert ours.handle not in (None, dead)
    assert sessions_on_server(sim) == count + 1


def test_a_new_session_that_dies_too_is_replaced_again_up_to_three_times(
        sim: Simulator, ours: Any) -> None:
    # As the official SDK: up to 3 new logins in one call, then the refusal is raised.
    refused = sim.faults.add(Fault.fail("VM.get_all", "SESSION_INVALID", "OpaqueRef:x", times=3))
    assert ours.xenapi.VM.get_all()
    assert refused.hits == 3
    sim.faults.add(Fault.fail("VM.get_all", "SESSION_INVALID", "OpaqueRef:x", times=4))
    with pytest.raises(exception.SessionInvalid):
        ours.xenapi.VM.get_all()
    sim.faults.clear()


def test_threads_that_meet_a_dead_session_share_one_new_login(sim: Simulator, ours: Any) -> None:
    sim.call("session.logout", ours.handle)
    count = sessions_on_server(sim)
    errors: list[BaseException] = []
    start = threading.Barrier(8, timeout=30)

    def work() -> None:
        try:
            start.wait()
            ours.xenapi.VM.get_all()
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sessions_on_server(sim) == count + 1


def test_calls_before_login_raise_you_must_log_in(sim: Simulator) -> None:
    with XenAPI.Session(sim.url) as session:
        with pytest.raises(xmlrpc.client.Fault) as info:
            session.xenapi.VM.get_all()
    assert info.value.faultCode == 401


def test_leaving_the_with_block_logs_out(sim: Simulator) -> None:
    before = sessions_on_server(sim)
    with XenAPI.Session(sim.url) as session:
        session.login_with_password(sim.username, sim.password)
        assert sessions_on_server(sim) == before + 1
    assert sessions_on_server(sim) == before


def test_jsonrpc_on_request_gives_numbers(sim: Simulator) -> None:
    with XenAPI.Session(sim.url, protocol="jsonrpc") as session:
        session.xenapi.login_with_password(sim.username, sim.password)
        vm = halted_vm(session.xenapi)
        assert isinstance(session.xenapi.VM.get_VCPUs_max(vm), int)


def test_unix_socket_session(sim: Simulator) -> None:
    with XenAPI.Session(f"unix://{sim.unix_path}") as session:
        session.xenapi.login_with_password("root", "")
        assert session.xenapi.host.get_all()


def test_xapi_local_is_the_dom0_socket() -> None:
    session = XenAPI.xapi_local()
    assert session.transport.url == "unix:///var/lib/xcp/xapi"
    session.close()


def test_a_foreign_transport_is_refused_with_a_hint(sim: Simulator) -> None:
    with pytest.raises(TypeError, match="xapi_local"):
        XenAPI.Session(sim.url, transport=xmlrpc.client.Transport())


def test_repr_never_shows_the_session(ours: Any) -> None:
    assert ours.handle not in repr(ours)
    assert "logged in" in repr(ours)
