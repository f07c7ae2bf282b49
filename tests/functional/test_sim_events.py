"""event.from, event.inject and tasks, through the official XenAPI SDK against a running simulator
(shared/xapi/PROTOCOL.md sections 1.7 and 1.8)."""

from __future__ import annotations

import re
import threading
import time
import xmlrpc.client
from typing import Any

import pytest
import XenAPI

from os_xenapi.simulator import Simulator

TOKEN = re.compile(r"[0-9]{20},[0-9]{20}")
REF = re.compile(r"OpaqueRef:[0-9a-f-]+")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def sim():
    with Simulator(hosts=1, vms=0, auth_failure_delay=0) as running:
        yield running


def login(sim: Simulator) -> XenAPI.Session:
    session = XenAPI.Session(sim.url)
    session.login_with_password(sim.username, sim.password, "1.0", "events-test")
    return session


@pytest.fixture(scope="module")
def sdk(sim: Simulator):
    session = login(sim)
    yield session
    session.xenapi.session.logout()


@pytest.fixture(scope="module")
def xapi(sdk: XenAPI.Session) -> Any:
    return sdk.xenapi


def event_from(xapi: Any, classes: list[str], token: str, timeout: float = 5.0) -> dict:
    return getattr(xapi.event, "from")(classes, token, float(timeout))


def now(xapi: Any) -> str:
    """A token for "from now on" (the pool's replay returns at once)."""
    return event_from(xapi, ["pool"], "", 0.0)["token"]


def failure(call: Any, *args: Any) -> list[str]:
    with pytest.raises(XenAPI.Failure) as info:
        call(*args)
    return info.value.details


def new_task(xapi: Any, label: str = "events test") -> str:
    return xapi.task.create(label, "")


def by_ref(events: list[dict]) -> dict[str, dict]:
    refs = [e["ref"] for e in events]
    assert len(refs) == len(set(refs)), f"one object reported twice: {events}"
    return {e["ref"]: e for e in events}


# --------------------------------------------------------------------------- event.from


def test_empty_token_replays_every_subscribed_object_as_add(xapi: Any) -> None:
    result = event_from(xapi, ["host", "SR", "VM"], "")
    expected = (
        {("host", ref) for ref in xapi.host.get_all()}
        | {("sr", ref) for ref in xapi.SR.get_all()}
        | {("vm", ref) for ref in xapi.VM.get_all()}
    )
    assert {(e["class"], e["ref"]) for e in result["events"]} == expected
    by_ref(result["events"])  # each object once
    assert {e["operation"] for e in result["events"]} == {"add"}


def test_replayed_snapshot_is_the_record(xapi: Any) -> None:
    host = xapi.host.get_all()[0]
    event = by_ref(event_from(xapi, ["host"], "")["events"])[host]
    assert event["snapshot"] == xapi.host.get_record(host)


def test_event_classes_are_lowercase(xapi: Any) -> None:
    events = event_from(xapi, ["*"], "")["events"]
    assert events
    assert all(e["class"] == e["class"].lower() for e in events)
    assert "vm" in {e["class"] for e in events}


def test_subscription_class_names_are_case_insensitive(xapi: Any) -> None:
    token = now(xapi)
    task = new_task(xapi)
    events = event_from(xapi, ["TASK"], token)["events"]
    assert [e["ref"] for e in events] == [task]


def test_token_format(xapi: Any) -> None:
    assert TOKEN.fullmatch(event_from(xapi, ["host"], "")["token"])


def test_tokens_grow_with_changes(xapi: Any) -> None:
    before = now(xapi)
    new_task(xapi)
    assert now(xapi) > before


def test_creation_gives_add_event(xapi: Any) -> None:
    token = now(xapi)
    task = new_task(xapi, "born")
    (event,) = event_from(xapi, ["task"], token)["events"]
    assert (event["operation"], event["class"], event["ref"]) == ("add", "task", task)
    assert event["snapshot"]["name_label"] == "born"


def test_modification_gives_mod_event_with_new_snapshot(xapi: Any) -> None:
    task = new_task(xapi)
    token = now(xapi)
    xapi.task.set_progress(task, 0.5)
    (event,) = event_from(xapi, ["task"], token)["events"]
    assert (event["operation"], event["ref"]) == ("mod", task)
    assert event["snapshot"] == xapi.task.get_record(task)
    assert event["snapshot"]["progress"] == 0.5


def test_deletion_gives_del_event_without_snapshot(xapi: Any) -> None:
    task = new_task(xapi)
    token = now(xapi)
    xapi.task.destroy(task)
    (event,) = event_from(xapi, ["task"], token)["events"]
    assert (event["operation"], event["class"], event["ref"]) == ("del", "task", task)
    assert "snapshot" not in event


def test_event_record_carries_the_event_fields(xapi: Any) -> None:
    task = new_task(xapi)
    token = now(xapi)
    xapi.task.set_progress(task, 0.4)
    (event,) = event_from(xapi, ["task"], token)["events"]
    assert set(event) == {"id", "timestamp", "class", "operation", "ref", "snapshot"}
    assert all(type(event[k]) is str for k in ("id", "timestamp", "class", "operation", "ref"))


def test_several_changes_to_one_object_are_coalesced(xapi: Any) -> None:
    task = new_task(xapi)
    token = now(xapi)
    for progress in (0.1, 0.2, 0.3):
        xapi.task.set_progress(task, progress)
    (event,) = event_from(xapi, ["task"], token)["events"]
    assert event["operation"] == "mod"
    assert event["snapshot"]["progress"] == 0.3


def test_object_created_then_modified_is_one_add(xapi: Any) -> None:
    token = now(xapi)
    task = new_task(xapi)
    xapi.task.set_progress(task, 0.7)
    (event,) = event_from(xapi, ["task"], token)["events"]
    assert (event["operation"], event["ref"]) == ("add", task)
    assert event["snapshot"]["progress"] == 0.7


def test_object_created_and_deleted_between_calls_gives_no_event(xapi: Any) -> None:
    token = now(xapi)
    ephemeral = new_task(xapi, "ephemeral")
    xapi.task.destroy(ephemeral)
    marker = new_task(xapi, "marker")  # so that event.from returns without waiting
    events = event_from(xapi, ["task"], token)["events"]
    assert [(e["operation"], e["ref"]) for e in events] == [("add", marker)]


def test_object_subscription_reports_only_that_object(xapi: Any) -> None:
    watched, other = new_task(xapi), new_task(xapi)
    token = now(xapi)
    xapi.task.set_progress(other, 0.1)
    xapi.task.set_progress(watched, 0.2)
    events = event_from(xapi, [f"task/{watched}"], token)["events"]
    assert [e["ref"] for e in events] == [watched]


def test_class_subscription_ignores_other_classes(xapi: Any) -> None:
    pool = xapi.pool.get_all()[0]
    token = now(xapi)
    xapi.pool.add_to_other_config(pool, "events-test-ignored", "1")
    task = new_task(xapi)
    events = event_from(xapi, ["task"], token)["events"]
    assert [e["ref"] for e in events] == [task]


def test_star_subscribes_to_every_class(xapi: Any) -> None:
    pool = xapi.pool.get_all()[0]
    token = now(xapi)
    task = new_task(xapi)
    xapi.pool.add_to_other_config(pool, "events-test-star", "1")
    seen = {(e["class"], e["ref"]) for e in event_from(xapi, ["*"], token)["events"]}
    assert {("task", task), ("pool", pool)} <= seen


def test_bad_token_gives_token_parse_failure(xapi: Any) -> None:
    details = failure(getattr(xapi.event, "from"), ["task"], "not-a-token", 0.0)
    assert details == ["EVENT_FROM_TOKEN_PARSE_FAILURE", "not-a-token"]


def test_valid_ref_counts_are_ints_for_every_class(xapi: Any) -> None:
    counts = event_from(xapi, ["host"], "")["valid_ref_counts"]
    assert all(type(n) is int for n in counts.values()), counts  # <i4>, not an untyped string
    assert counts["host"] == len(xapi.host.get_all())
    assert counts["vm"] == len(xapi.VM.get_all())
    assert counts["task"] == len(xapi.task.get_all())  # counted although not subscribed
    assert all(name == name.lower() for name in counts)


# --------------------------------------------------------------------------- blocking


def test_blocking_call_returns_as_soon_as_a_change_is_made(sim: Simulator, xapi: Any) -> None:
    watcher = login(sim)  # the SDK is not thread-safe: one session per thread
    try:
        token = xapi.event.inject("pool", xapi.pool.get_all()[0])  # no waiter registered now
        outcome: dict[str, Any] = {}

        def watch() -> None:
            outcome["result"] = event_from(watcher.xenapi, ["task"], token, 10.0)
            outcome["returned"] = time.monotonic()

        thread = threading.Thread(target=watch)
        started = time.monotonic()
        thread.start()
        wait_until(lambda: event_from_is_waiting(sim), limit=5.0)
        changed = time.monotonic()
        task = new_task(xapi, "wake up")
        thread.join(10.0)
        assert not thread.is_alive()
        assert [e["ref"] for e in outcome["result"]["events"]] == [task]
        assert outcome["returned"] - changed < 1.0
        assert outcome["returned"] - started < 5.0, "returned at its timeout, not at the change"
    finally:
        watcher.xenapi.session.logout()


def event_from_is_waiting(sim: Simulator) -> bool:
    """Whether a call is parked on the database's change signal (reaches into the simulator)."""
    return sim.run(lambda xapi: xapi.db._changed is not None)


def wait_until(condition: Any, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_call_with_short_timeout_returns_empty_after_the_timeout(xapi: Any) -> None:
    token = now(xapi)
    started = time.monotonic()
    result = event_from(xapi, ["task"], token, 0.2)
    elapsed = time.monotonic() - started
    assert result["events"] == []
    assert TOKEN.fullmatch(result["token"])
    assert 0.2 <= elapsed < 1.5, f"returned after {elapsed:.3f}s"


# --------------------------------------------------------------------------- event.inject


def test_inject_returns_a_token(xapi: Any) -> None:
    assert TOKEN.fullmatch(xapi.event.inject("task", new_task(xapi)))


def test_inject_causes_a_mod_event(xapi: Any) -> None:
    task = new_task(xapi)
    token = now(xapi)
    xapi.event.inject("task", task)
    (event,) = event_from(xapi, ["task"], token)["events"]
    assert (event["operation"], event["ref"]) == ("mod", task)


def test_inject_token_is_at_or_after_the_injected_change(xapi: Any) -> None:
    task = new_task(xapi)
    before = now(xapi)
    injected = xapi.event.inject("task", task)
    assert injected > before
    assert event_from(xapi, ["task"], injected, 0.0)["events"] == []


def test_inject_on_the_wrong_class_gives_handle_invalid(xapi: Any) -> None:
    task = new_task(xapi)
    assert failure(xapi.event.inject, "VM", task) == ["HANDLE_INVALID", "VM", task]


def test_inject_of_an_unknown_ref_gives_handle_invalid(xapi: Any) -> None:
    assert failure(xapi.event.inject, "task", "OpaqueRef:gone") == [
        "HANDLE_INVALID",
        "task",
        "OpaqueRef:gone",
    ]


# --------------------------------------------------------------------------- tasks


def test_task_create_gives_a_pending_task(xapi: Any) -> None:
    task = xapi.task.create("copy disk", "an HTTP transfer")
    assert REF.fullmatch(task)
    assert xapi.task.get_status(task) == "pending"


def test_task_create_fills_the_record(sdk: XenAPI.Session, xapi: Any) -> None:
    this_host = xapi.session.get_this_host(sdk.handle)
    task = xapi.task.create("copy disk", "an HTTP transfer")
    record = xapi.task.get_record(task)
    assert record["name_label"] == "copy disk"
    assert record["name_description"] == "an HTTP transfer"
    assert record["status"] == "pending"
    assert record["progress"] == 0.0
    assert record["resident_on"] == this_host
    assert record["result"] == ""
    assert record["error_info"] == []
    assert UUID.fullmatch(record["uuid"])
    assert isinstance(record["created"], xmlrpc.client.DateTime)
    assert xapi.task.get_by_uuid(record["uuid"]) == task


def test_task_set_progress_updates_progress(xapi: Any) -> None:
    task = new_task(xapi)
    xapi.task.set_progress(task, 0.25)
    assert xapi.task.get_progress(task) == 0.25


def test_task_cancel_ends_a_created_task_as_cancelled(xapi: Any) -> None:
    task = new_task(xapi)
    xapi.task.cancel(task)
    record = xapi.task.get_record(task)
    assert record["status"] == "cancelled"
    assert record["error_info"] == ["TASK_CANCELLED", task]


def test_task_destroy_removes_the_task(xapi: Any) -> None:
    task = new_task(xapi)
    xapi.task.destroy(task)
    assert task not in xapi.task.get_all()
    assert failure(xapi.task.get_record, task) == ["HANDLE_INVALID", "task", task]
