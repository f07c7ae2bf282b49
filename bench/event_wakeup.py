"""Benchmark 3: how fast a blocked ``event.from`` wakes up when an object changes.

A watcher thread (its own SDK session and connection) sits in ``event.from(["vm"], token, 30.0)``.
Once it is parked in the simulator, the main thread (another session) records
``time.perf_counter()`` and calls ``VM.set_name_description`` on a VM.  Per change:

* wake-up latency = when the watcher's ``event.from`` returned − when the change call was sent;
* beyond the change's round-trip = that latency − the change call's own round-trip (it can be
  negative: the two replies leave the server at about the same time).

The reference is the round-trip of a plain small call (``host.get_API_version_major``) on the same
simulator, so the ratio says how much a wake-up costs compared with a call.  A second one is an
``event.from`` that finds the change already made and answers at once: the same reply without the
waiting, so wake-up / immediate says what parking and waking add.  Every round measures all of
them side by side, so that a machine slowing down or speeding up affects them alike.

    .venv/bin/python bench/event_wakeup.py [--quick]
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from common import close_session, median, percentile, ratio, sdk_session

from os_xenapi.simulator.runner import Simulator

WAIT = 30.0  # the event.from timeout, as clients pass it
STEP = 10.0  # seconds any single wait in this benchmark may take before it gives up


class Watcher(threading.Thread):
    """Runs ``event.from`` with each timeout put on ``todo`` (None: stop) and puts (sent at,
    returned at, events or the exception raised) on ``done``."""

    def __init__(self, url: str, username: str, password: str) -> None:
        super().__init__(name="bench-event-watcher", daemon=True)
        self.session = sdk_session(url, username, password)
        self.event_from = getattr(self.session.xenapi.event, "from")  # a Python keyword
        self.token = self.event_from(["vm"], "", 0.0)["token"]
        self.todo: queue.Queue[float | None] = queue.Queue()
        self.done: queue.Queue[tuple[float, float, Any]] = queue.Queue()

    def run(self) -> None:
        while (timeout := self.todo.get()) is not None:
            sent = time.perf_counter()
            try:
                result = self.event_from(["vm"], self.token, timeout)
            except Exception as exc:  # noqa: BLE001 - reported by the main thread
                self.done.put((sent, time.perf_counter(), exc))
                return
            returned = time.perf_counter()
            self.token = result["token"]
            self.done.put((sent, returned, result["events"]))

    def close(self) -> None:
        self.todo.put(None)
        self.join(timeout=STEP)
        if not self.is_alive():  # else still in a call: stopping the simulator ends it
            close_session(self.session)


def _parked(sim: Simulator) -> Callable[[], bool] | None:
    """A check that a coroutine is waiting in ``event.from``, or None if it cannot be made.

    The database hands every ``event.from`` that finds nothing an ``asyncio.Event`` to wait on;
    the check reads (never writes) whether that event has a waiter.  It runs off the simulator's
    loop so that it does not disturb what it watches, and relies on two private attributes, so
    when they are gone the benchmark falls back to a fixed pause (``parked_check`` says which).
    """
    db = sim.xapi.db if sim.xapi is not None else None
    if db is None or not hasattr(db, "_changed") or not hasattr(asyncio.Event(), "_waiters"):
        return None

    def check() -> bool:
        event = db._changed
        return event is not None and bool(event._waiters)

    return check


def run(quick: bool = False) -> dict[str, Any]:
    changes = 60 if quick else 200
    warmup = 10 if quick else 20
    budget = 20.0 if quick else 45.0  # seconds for the whole change loop, whatever happens

    with Simulator(hosts=1, vms=10, auth_failure_delay=0) as sim:
        changer = sdk_session(sim.url, sim.username, sim.password)
        watcher = Watcher(sim.url, sim.username, sim.password)
        watcher.start()
        parked = _parked(sim)
        try:
            vm = next(
                ref for ref, rec in changer.xenapi.VM.get_all_records().items()
                if not rec["is_a_template"] and not rec["is_control_domain"]
            )
            host = changer.xenapi.host.get_all()[0]
            get_major = changer.xenapi.host.get_API_version_major
            describe = changer.xenapi.VM.set_name_description

            # Each round measures, side by side: two small calls (the reference), one event.from
            # that finds a change already made and answers at once (same reply, no waiting), and
            # one event.from that is parked when the change comes (the wake-up).
            small: list[float] = []
            immediate: list[float] = []
            latencies: list[float] = []
            beyond: list[float] = []
            change_trips: list[float] = []
            stray = 0
            skip = warmup  # rounds run but not recorded (warm-up, or resynchronising)
            deadline = time.perf_counter() + budget
            index = 0
            while len(latencies) < changes and time.perf_counter() < deadline:
                index += 1
                trips = []
                for _ in range(2):
                    start = time.perf_counter()
                    get_major(host)
                    trips.append(time.perf_counter() - start)

                describe(vm, f"bench change {index}a")
                watcher.todo.put(0.0)
                asked, answered_now, events = _result(watcher)
                if not any(e["ref"] == vm for e in events):
                    raise RuntimeError("event.from did not report the change made before it")

                watcher.todo.put(WAIT)
                _wait_parked(parked)
                sent = time.perf_counter()
                describe(vm, f"bench change {index}b")
                answered = time.perf_counter()
                _, returned, events = _result(watcher)
                if returned < sent or not any(e["ref"] == vm for e in events):
                    # Woken by something else: our change is still pending, so collect it
                    # without waiting and measure again from a quiet state.
                    stray += 1
                    watcher.todo.put(0.0)
                    _result(watcher)
                    skip = max(skip, 1)
                    continue
                if skip:
                    skip -= 1
                    continue
                small.extend(trips)
                immediate.append(answered_now - asked)
                latencies.append(returned - sent)
                beyond.append(returned - answered)
                change_trips.append(answered - sent)
        finally:
            watcher.close()
            close_session(changer)

    def stats(values: list[float]) -> dict[str, float]:
        return {"median": median(values) * 1000, "p95": percentile(values, 95) * 1000}

    wake, ref, now = stats(latencies), stats(small), stats(immediate)
    over, change = stats(beyond), stats(change_trips)
    return {
        "name": "event_wakeup",
        "title": "event.from wake-up after VM.set_name_description",
        "changes_measured": len(latencies),
        "stray_wakeups": stray,
        "parked_check": parked is not None,
        "wakeup_ms": wake,
        "beyond_change_rtt_ms": over,
        "change_call_rtt_ms": change,
        "small_call_rtt_ms": ref,
        "immediate_event_from_ms": now,
        "ratio_wakeup_vs_small_call": ratio(wake["median"], ref["median"]),
        "ratio_wakeup_vs_immediate_event_from": ratio(wake["median"], now["median"]),
        "rows": [
            ["wake-up latency, median", f"{wake['median']:.3f}", "ms",
             f"small call {ref['median']:.3f} ms",
             f"{ratio(wake['median'], ref['median']):.2f}x"],
            ["wake-up latency, p95", f"{wake['p95']:.3f}", "ms",
             f"small call {ref['p95']:.3f} ms", f"{ratio(wake['p95'], ref['p95']):.2f}x"],
            ["  same reply, change already made", f"{now['median']:.3f}", "ms",
             "event.from, no wait", f"wake/now {ratio(wake['median'], now['median']):.2f}x"],
            ["  wake-up minus change round-trip", f"{over['median']:.3f}", "ms",
             f"change call {change['median']:.3f} ms", ""],
        ],
    }


def _result(watcher: Watcher) -> tuple[float, float, list[dict[str, Any]]]:
    sent, returned, events = watcher.done.get(timeout=STEP + WAIT)
    if isinstance(events, Exception):
        raise RuntimeError("event.from failed in the watcher") from events
    return sent, returned, events


def _wait_parked(parked: Callable[[], bool] | None) -> None:
    """Give the watcher's ``event.from`` time to reach the simulator and start waiting."""
    if parked is None:
        time.sleep(0.005)
        return
    limit = time.perf_counter() + STEP
    while not parked():
        if time.perf_counter() > limit:
            raise RuntimeError("event.from never started waiting")
        time.sleep(0.0002)


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
