"""XAPI's events: an ``event.from`` watcher that keeps its token, and an object cache on top.

    watcher = EventWatcher(session, ["vm", "task"])
    batch = watcher.poll()          # the first batch is every VM and task, as "add" events
    batch = watcher.poll()          # then what changed since, waiting up to 30 s for it

    with ObjectCache(session, ["vm"]) as cache:
        cache.wait_for(vm, lambda record: record and record["power_state"] == "Running", 60)

:class:`EventWatcher` starts with token ``""`` (XAPI then returns every subscribed object) and
passes on the token each reply gives. It starts over from ``""`` - a *re-sync*, flagged on the
batch so that a consumer replaces what it holds - when XAPI answers ``EVENTS_LOST`` or
``EVENT_FROM_TOKEN_PARSE_FAILURE``, and when the session logged in again or moved to another
master during the call (a restarted or new master need not know the old token).

:class:`ObjectCache` keeps the latest record of every watched object, fed by a watcher in a
background thread, and wakes :meth:`ObjectCache.wait_for` callers on each change. Its long poll
holds one of the XenAPISession's pooled sessions, so the session needs ``concurrent >= 2``.
To stop without waiting out the poll, :meth:`ObjectCache.close` touches the pool object with
``event.inject``, which the watcher also subscribes to (as Xen Orchestra's barrier does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from . import exception

LOG = logging.getLogger(__name__)

READ_MARGIN = 30.0  # seconds of read timeout beyond an event.from's own wait (the transport adds it)
RESYNC_CODES = frozenset({"EVENTS_LOST", "EVENT_FROM_TOKEN_PARSE_FAILURE"})
MAX_ERROR_PAUSE = 30.0  # seconds between two tries of a watcher thread that keeps failing


class _Session(Protocol):
    reconnects: int
    concurrent: int

    def call_xenapi(self, method: str, *args: Any, timeout: Any = None) -> Any: ...


@dataclass(frozen=True)
class Event:
    """One object's change: ``operation`` is add, mod or del (del has no snapshot)."""

    cls: str
    operation: str
    ref: str
    snapshot: dict[str, Any] | None
    id: str = ""


@dataclass(frozen=True)
class Batch:
    """One ``event.from`` answer. With ``resync`` the events are every subscribed object (as
    adds), and anything the consumer holds that is not among them is gone."""

    events: list[Event]
    token: str
    resync: bool
    valid_ref_counts: dict[str, int]


class EventWatcher:
    """``event.from`` for ``classes`` (class names, ``"*"`` or ``"class/ref"``), token kept."""

    def __init__(self, session: _Session, classes: Iterable[str] = ("*",), *,
                 timeout: float = 30.0) -> None:
        wanted = [classes] if isinstance(classes, str) else list(classes)
        if not wanted or not all(isinstance(c, str) and c for c in wanted):
            raise ValueError(f"classes must be non-empty class names, not {classes!r}")
        if not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
            raise ValueError(f"timeout must be seconds in (0, 3600], not {timeout!r}")
        self.session = session
        self.classes = wanted
        self.timeout = float(timeout)
        self.token = ""
        self.resyncs = 0  # times the watcher had to start over (not counting its first batch)

    def poll(self, timeout: float | None = None) -> Batch:
        """The next batch of changes, waiting up to ``timeout`` (default: the watcher's) seconds
        for one; an empty batch when none came. Raises what the session raises."""
        wait = self.timeout if timeout is None else float(timeout)
        if not self.token:
            return self._snapshot()
        before = self.session.reconnects
        try:
            result = self._from(self.token, wait)
        except exception.XenAPIError as exc:
            if exc.code not in RESYNC_CODES:
                raise
            LOG.warning("event.from answered %s; re-reading every watched object", exc.code)
            return self._snapshot()
        if self.session.reconnects != before:
            LOG.info("the XAPI session logged in again or moved master; re-reading every "
                     "watched object")
            return self._snapshot()
        self.token = result["token"]
        return _batch(result, resync=False)

    def _snapshot(self) -> Batch:
        if self.token:
            self.resyncs += 1
        result = self._from("", 0.0)
        self.token = result["token"]
        return _batch(result, resync=True)

    def _from(self, token: str, wait: float) -> dict[str, Any]:
        # The transport gives event.from its own wait beyond the read timeout passed here.
        return self.session.call_xenapi("event.from", self.classes, token, wait,
                                        timeout=READ_MARGIN)


def _batch(result: dict[str, Any], resync: bool) -> Batch:
    events = [Event(str(e.get("class", "")).lower(), e.get("operation", ""), e.get("ref", ""),
                    e.get("snapshot"), str(e.get("id", ""))) for e in result.get("events", [])]
    counts = {str(k): int(v) for k, v in (result.get("valid_ref_counts") or {}).items()}
    return Batch(events, result["token"], resync, counts)


class ObjectCache:
    """The latest record of every object of ``classes``, kept up to date by a watcher thread."""

    def __init__(self, session: _Session, classes: Iterable[str], *,
                 timeout: float = 30.0) -> None:
        wanted = [classes] if isinstance(classes, str) else list(classes)
        if getattr(session, "concurrent", 2) < 2:
            raise ValueError("an ObjectCache keeps one XAPI session waiting in event.from; "
                             "give the XenAPISession concurrent >= 2")
        self.session = session
        self._classes = {c.lower() for c in wanted if "/" not in c}
        self._everything = "*" in wanted
        self._wake = session.call_xenapi("pool.get_all")[0]
        self._keep_pool = self._everything or "pool" in self._classes
        subscriptions = wanted if self._keep_pool else [*wanted, f"pool/{self._wake}"]
        self._watcher = EventWatcher(session, subscriptions, timeout=timeout)
        self._records: dict[str, tuple[str, dict[str, Any]]] = {}  # ref -> (class, record)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None  # the watcher thread's last error, if any

    @property
    def resyncs(self) -> int:
        return self._watcher.resyncs

    def start(self) -> ObjectCache:
        """Read every watched object now, then follow changes in a background thread."""
        if self._thread is None:
            self._apply(self._watcher.poll())
            self._thread = threading.Thread(target=self._run, name="xapi-object-cache",
                                            daemon=True)
            self._thread.start()
        return self

    def __enter__(self) -> ObjectCache:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the watcher thread (waking its long poll) and wait for it to end."""
        self._stop.set()
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        try:
            self.session.call_xenapi("event.inject", "pool", self._wake)
        except (exception.Failure, exception.TransportError, exception.OsXenApiException) as exc:
            LOG.info("could not wake the event watcher (%s); waiting for its poll to end",
                     type(exc).__name__)
        thread.join(self._watcher.timeout + READ_MARGIN)

    def get(self, ref: str) -> dict[str, Any] | None:
        """A copy of the latest record of ``ref``, or None if it is not (or no longer) there."""
        with self._cond:
            found = self._records.get(ref)
        return dict(found[1]) if found else None

    def all(self, cls: str) -> dict[str, dict[str, Any]]:
        """Copies of the records of every cached object of class ``cls``, by ref."""
        lower = cls.lower()
        with self._cond:
            return {ref: dict(rec) for ref, (c, rec) in self._records.items() if c == lower}

    def wait_for(self, ref: str, predicate: Callable[[dict[str, Any] | None], bool],
                 timeout: float) -> dict[str, Any] | None:
        """Wait until ``predicate(record)`` is true for ``ref`` (None while it does not exist)
        and return that record. Raises WaitTimeout after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._records.get(ref)
                record = dict(found[1]) if found else None
                if predicate(record):
                    return record
                left = deadline - time.monotonic()
                if left <= 0:
                    raise exception.WaitTimeout(
                        f"{ref} did not reach the expected state within {timeout:g} s")
                self._cond.wait(left)

    # -- the watcher thread ---------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                batch = self._watcher.poll()
            except Exception as exc:  # noqa: BLE001 - logged, kept, and tried again later
                self.error = exc
                failures += 1
                pause = min(MAX_ERROR_PAUSE, 0.5 * 2 ** (failures - 1))
                LOG.warning("event.from failed (%s); trying again in %.1f s",
                            type(exc).__name__, pause)
                self._stop.wait(pause)
                continue
            failures = 0
            if not self._stop.is_set():
                self._apply(batch)

    def _apply(self, batch: Batch) -> None:
        with self._cond:
            if batch.resync:
                self._records.clear()
            for event in batch.events:
                if event.cls == "pool" and not self._keep_pool:
                    continue  # only the wake-up subscription
                if event.operation == "del" or event.snapshot is None:
                    self._records.pop(event.ref, None)
                else:
                    self._records[event.ref] = (event.cls, event.snapshot)
            self._cond.notify_all()
