"""client/events.py against the simulator: the event.from watcher (token kept, re-sync on
EVENTS_LOST, on a token XAPI cannot parse and after a re-login) and the object cache with
wait_for, including how quickly close() stops its long poll."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from os_xenapi.client import exception
from os_xenapi.client.events import EventWatcher, ObjectCache
from os_xenapi.client.retry import Retry
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.faults import Fault

ORIGINATOR = "event-tests"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(vms=2, auth_failure_delay=0) as simulator:
        yield simulator


@pytest.fixture
def session(sim: Simulator) -> Iterator[XenAPISession]:
    with XenAPISession(sim.url, sim.username, sim.password, ORIGINATOR,
                       retry=Retry(backoff=0.0, wait=0.01)) as made:
        yield made
    assert sim.run(lambda xapi: len(xapi.db.all("session"))) == 0


def guest(session: XenAPISession) -> str:
    records = session.VM.get_all_records()
    return next(ref for ref, vm in sorted(records.items())
                if not vm["is_a_template"] and not vm["is_control_domain"])


# --------------------------------------------------------------------------- the watcher


def test_the_first_poll_is_every_watched_object_flagged_as_a_resync(
    session: XenAPISession,
) -> None:
    watcher = EventWatcher(session, ["vm"])
    batch = watcher.poll()
    assert batch.resync is True
    assert {event.ref for event in batch.events} == set(session.VM.get_all())
    assert {event.operation for event in batch.events} == {"add"}
    assert batch.valid_ref_counts["vm"] == len(batch.events)
    assert watcher.token == batch.token
    assert watcher.resyncs == 0


def test_a_change_comes_in_the_next_poll_with_its_snapshot(session: XenAPISession) -> None:
    watcher = EventWatcher(session, ["vm"], timeout=5)
    watcher.poll()
    vm = guest(session)
    session.VM.set_name_label(vm, "renamed")
    batch = watcher.poll()
    assert batch.resync is False
    [event] = batch.events
    assert (event.cls, event.operation, event.ref) == ("vm", "mod", vm)
    assert event.snapshot is not None and event.snapshot["name_label"] == "renamed"


def test_a_quiet_poll_returns_an_empty_batch_after_its_timeout(session: XenAPISession) -> None:
    watcher = EventWatcher(session, ["vm"])
    watcher.poll()
    batch = watcher.poll(timeout=0.2)
    assert (batch.events, batch.resync) == ([], False)


@pytest.mark.parametrize("code", ["EVENTS_LOST", "EVENT_FROM_TOKEN_PARSE_FAILURE"])
def test_xapi_losing_track_makes_the_watcher_start_over(
    sim: Simulator, session: XenAPISession, code: str
) -> None:
    watcher = EventWatcher(session, ["vm"], timeout=5)
    watcher.poll()
    sim.faults.add(Fault.fail("event.from", code, nth=1))
    batch = watcher.poll()
    assert batch.resync is True
    assert {event.ref for event in batch.events} == set(session.VM.get_all())
    assert watcher.resyncs == 1


def test_a_relogin_makes_the_watcher_start_over(sim: Simulator, session: XenAPISession) -> None:
    watcher = EventWatcher(session, ["vm"], timeout=0.2)
    watcher.poll()
    sim.expire_sessions()
    batch = watcher.poll()
    assert batch.resync is True
    assert session.stats.relogins == 1
    assert watcher.resyncs == 1


def test_other_errors_reach_the_caller(session: XenAPISession) -> None:
    with pytest.raises(exception.XenAPIError) as failed:
        EventWatcher(session, ["no such class!"]).poll()
    assert failed.value.code == "EVENT_SUBSCRIPTION_PARSE_FAILURE"


def test_bad_arguments_are_refused_by_name(session: XenAPISession) -> None:
    with pytest.raises(ValueError, match="classes"):
        EventWatcher(session, [])
    with pytest.raises(ValueError, match="timeout"):
        EventWatcher(session, ["vm"], timeout=0)


# --------------------------------------------------------------------------- the cache


def test_the_cache_follows_creation_change_and_destruction(session: XenAPISession) -> None:
    template = session.VM.get_by_name_label("Debian Bookworm 12")[0]
    with ObjectCache(session, ["vm"]) as cache:
        assert set(cache.all("VM")) == set(session.VM.get_all())
        clone = session.VM.clone(template, "cached")
        record = cache.wait_for(clone, lambda r: r is not None, 10)
        assert record is not None and record["name_label"] == "cached"
        session.VM.set_name_label(clone, "renamed")
        cache.wait_for(clone, lambda r: r is not None and r["name_label"] == "renamed", 10)
        session.VM.destroy(clone)
        assert cache.wait_for(clone, lambda r: r is None, 10) is None
        assert cache.get(clone) is None


def test_wait_for_gives_up_with_a_clear_error(session: XenAPISession) -> None:
    vm = guest(session)
    with ObjectCache(session, ["vm"]) as cache:
        with pytest.raises(exception.WaitTimeout, match=f"{vm} did not reach"):
            cache.wait_for(vm, lambda r: r is not None and r["name_label"] == "never", 0.2)


def test_close_wakes_the_long_poll_at_once(session: XenAPISession) -> None:
    cache = ObjectCache(session, ["vm"], timeout=60).start()
    started = time.monotonic()
    cache.close()
    assert time.monotonic() - started < 5  # not the 60 s of the poll
    assert cache.all("pool") == {}  # the wake-up subscription stays out of the cache


def test_the_cache_carries_on_after_a_dropped_event_from(
    sim: Simulator, session: XenAPISession
) -> None:
    vm = guest(session)
    # Call 1 is the cache's first read; call 2, the thread's first long poll, is dropped.
    fault = sim.faults.add(Fault.drop("event.from", nth=2))
    with ObjectCache(session, ["vm"], timeout=5) as cache:
        session.VM.set_name_description(vm, "after the drop")
        cache.wait_for(vm, lambda r: r is not None and r["name_description"] == "after the drop",
                       10)
        assert fault.hits == 1
        assert cache.error is None  # the read was sent again; the thread never saw the drop


def test_the_cache_is_complete_again_after_events_are_lost(
    sim: Simulator, session: XenAPISession
) -> None:
    vm = guest(session)
    sim.faults.add(Fault.fail("event.from", "EVENTS_LOST", nth=2))  # the thread's first poll
    with ObjectCache(session, ["vm"], timeout=5) as cache:
        session.VM.set_name_description(vm, "seen through a resync")
        cache.wait_for(vm, lambda r: r is not None
                       and r["name_description"] == "seen through a resync", 10)
        assert cache.resyncs == 1


def test_the_cache_needs_a_second_session_for_its_long_poll(sim: Simulator) -> None:
    with XenAPISession(sim.url, sim.username, sim.password, ORIGINATOR, concurrent=1) as single:
        with pytest.raises(ValueError, match="concurrent >= 2"):
            ObjectCache(single, ["vm"])
