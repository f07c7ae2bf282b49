"""client/tasks.py against the simulator: Async calls followed with event.from to their end,
with progress, typed failures, cancellation on timeout or KeyboardInterrupt, and the task always
destroyed afterwards. The official SDK plays the other client where one is needed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import XenAPI as SDK

from os_xenapi.client import exception
from os_xenapi.client.session import XenAPISession
from os_xenapi.client.tasks import parse_result, run_async, wait_for_task
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.faults import Fault

ORIGINATOR = "task-tests"


def tasks_on_server(sim: Simulator) -> int:
    return sim.run(lambda xapi: len(xapi.db.all("task")))


def halted_vm(session: XenAPISession) -> str:
    records = session.VM.get_all_records()
    return next(ref for ref, vm in sorted(records.items()) if not vm["is_a_template"]
                and not vm["is_control_domain"] and vm["power_state"] == "Halted")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(vms=2, auth_failure_delay=0, operation_delay=0.4) as simulator:
        yield simulator


@pytest.fixture
def session(sim: Simulator) -> Iterator[XenAPISession]:
    with XenAPISession(sim.url, sim.username, sim.password, ORIGINATOR) as made:
        yield made
    assert tasks_on_server(sim) == 0
    assert sim.run(lambda xapi: len(xapi.db.all("session"))) == 0


def test_run_async_returns_the_decoded_result(session: XenAPISession) -> None:
    template = session.VM.get_by_name_label("Debian Bookworm 12")[0]
    clone = run_async(session, "VM.clone", template, "from a task")
    assert clone.startswith("OpaqueRef:")
    assert session.VM.get_name_label(clone) == "from a task"


def test_a_void_message_returns_an_empty_string(session: XenAPISession) -> None:
    vm = halted_vm(session)
    assert run_async(session, "Async.VM.start", vm, False, False) == ""
    assert session.VM.get_power_state(vm) == "Running"


def test_progress_is_reported_as_it_moves_and_ends_at_one(session: XenAPISession) -> None:
    seen: list[float] = []
    run_async(session, "VM.start", halted_vm(session), False, False, progress=seen.append)
    assert seen == sorted(seen)
    assert any(0.0 < fraction < 1.0 for fraction in seen)  # steps may arrive batched
    assert seen[-1] == 1.0


def test_a_failed_task_raises_its_typed_failure(session: XenAPISession) -> None:
    vm = halted_vm(session)
    session.VM.start(vm, False, False)
    with pytest.raises(exception.VMBadPowerState) as failed:
        run_async(session, "VM.start", vm, False, False)
    assert failed.value.details[0] == "VM_BAD_POWER_STATE"
    assert failed.value.actual == "running"


def test_a_timeout_cancels_the_task_and_destroys_it(sim: Simulator,
                                                    session: XenAPISession) -> None:
    vm = halted_vm(session)
    sim.run(lambda xapi: setattr(xapi.config, "operation_delay", 5.0))
    with pytest.raises(exception.TaskTimeout, match="within 0.3 s; it was cancelled") as late:
        run_async(session, "VM.start", vm, False, False, timeout=0.3)
    assert isinstance(late.value, TimeoutError)
    assert session.VM.get_power_state(vm) == "Halted"
    assert tasks_on_server(sim) == 0


def test_keyboard_interrupt_cancels_the_task_and_destroys_it(sim: Simulator,
                                                             session: XenAPISession) -> None:
    vm = halted_vm(session)
    sim.run(lambda xapi: setattr(xapi.config, "operation_delay", 4.0))

    def interrupt(fraction: float) -> None:
        if fraction > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_async(session, "VM.start", vm, False, False, progress=interrupt)
    assert session.VM.get_power_state(vm) == "Halted"
    assert tasks_on_server(sim) == 0


def test_a_task_cancelled_by_someone_else_raises_task_cancelled(
    sim: Simulator, session: XenAPISession
) -> None:
    sim.run(lambda xapi: setattr(xapi.config, "operation_delay", 4.0))
    other = SDK.Session(sim.url)
    other.xenapi.login_with_password(sim.username, sim.password, "2.21", "canceller")
    try:
        task = session.call_xenapi("Async.VM.start", halted_vm(session), False, False)
        started = threading.Event()

        def cancel_once_started(fraction: float) -> None:
            if fraction > 0 and not started.is_set():
                started.set()
                other.xenapi.task.cancel(task)

        with pytest.raises(exception.TaskCancelled) as cancelled:
            wait_for_task(session, task, progress=cancel_once_started)
        assert cancelled.value.task == task
    finally:
        other.xenapi.session.logout()
        other("close")()


def test_waiting_survives_a_dropped_event_from(sim: Simulator, session: XenAPISession) -> None:
    fault = sim.faults.add(Fault.drop("event.from", nth=2))
    run_async(session, "VM.start", halted_vm(session), False, False)
    assert fault.hits == 1
    assert session.stats.read_retries == 1


def test_a_task_followed_without_destroy_is_left_for_the_caller(
    sim: Simulator, session: XenAPISession
) -> None:
    task = session.call_xenapi("Async.VM.start", halted_vm(session), False, False)
    wait_for_task(session, task, destroy=False)
    assert session.task.get_status(task) == "success"
    session.task.destroy(task)


@pytest.mark.parametrize(("fragment", "value"), [
    ("<value>OpaqueRef:abc</value>", "OpaqueRef:abc"),
    ("<value></value>", ""),
    ("", None),
    ("<value><array><data><value>a</value><value>b</value></data></array></value>", ["a", "b"]),
    ("<value><struct><member><name>k</name><value><i4>1</i4></value></member></struct></value>",
     {"k": 1}),
])
def test_parse_result_decodes_the_xmlrpc_fragment_xapi_stores(fragment: str, value: Any) -> None:
    assert parse_result(fragment) == value
