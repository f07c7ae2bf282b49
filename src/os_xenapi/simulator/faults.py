"""Fault injection on the wire: calls that are slow, fail, lose their connection or get an HTTP
error.

A :class:`Fault` is a small value: which method it watches, which of that method's calls it acts
on, and what it does to them. :class:`Faults` holds the pool's faults, counts every call each one
matched and every time it acted, and is consulted by the HTTP front (:mod:`.server`) for each
XML-RPC and JSON-RPC call, on host addresses and on the Unix socket alike. Calls made inside the
simulator (``Simulator.call``) never meet a fault.

Method patterns
    ``"*"`` matches every call. Any other pattern is a wire name, normalised as dispatch
    normalises calls: ``VM_start`` is ``VM.start``. ``VM.start`` matches both ``VM.start`` and
    ``Async.VM.start``; ``Async.VM.start`` matches only the Async call.
Which calls
    ``nth=N``: only the Nth matching call (counted from 1, from the moment the fault is added);
    ``times=N``: the first N matching calls; neither: every matching call.
Actions
    ``latency`` (``seconds``): the call waits, then runs. ``fail`` (``error=[code, params...]``):
    the call does not run and the client gets that XAPI failure. ``drop_before``: the connection
    is closed without a reply and the call does not run. ``drop_after``: the call runs (its effect
    happens) and then the connection is closed without a reply. ``http_status`` (``status``): the
    call does not run and the reply is that HTTP status.

When several faults are due on one call, all latencies add up and the earliest-added other
fault acts; the later ones do not count that call as a hit. Note that Python's ``xmlrpc.client``
(and so the official SDK) silently sends a request again, once, when the connection drops.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .dispatch import Served, resolve
from .errors import ApiError

ACTIONS = ("latency", "fail", "drop_before", "drop_after", "http_status")
_SPEC_KEYS = ("method", "action", "seconds", "error", "status", "nth", "times")
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fault:
    """One fault rule and its counters (``calls`` it matched, ``hits`` it acted on)."""

    method: str = "*"
    action: str = "fail"
    seconds: float = 0.0
    error: list[str] = field(default_factory=list)
    status: int = 0
    nth: int | None = None
    times: int | None = None
    id: int = 0
    calls: int = 0
    hits: int = 0
    _name: str = field(default="*", init=False, repr=False, compare=False)
    _async_only: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check()

    # -- the ways to make one ----------------------------------------------------------------

    @classmethod
    def latency(cls, method: str, seconds: float, *, nth: int | None = None,
                times: int | None = None) -> Fault:
        """Delay matching calls by ``seconds`` before they run."""
        return cls(method, "latency", seconds=seconds, nth=nth, times=times)

    @classmethod
    def fail(cls, method: str, code: str, *params: str, nth: int | None = None,
             times: int | None = None) -> Fault:
        """Answer matching calls with the XAPI failure ``[code, *params]``; they do not run."""
        return cls(method, "fail", error=[code, *params], nth=nth, times=times)

    @classmethod
    def drop(cls, method: str, *, after: bool = False, nth: int | None = None,
             times: int | None = None) -> Fault:
        """Close the connection with no reply, before the call runs or (``after``) once it ran."""
        return cls(method, "drop_after" if after else "drop_before", nth=nth, times=times)

    @classmethod
    def http_status(cls, method: str, status: int, *, nth: int | None = None,
                    times: int | None = None) -> Fault:
        """Answer matching calls with HTTP ``status`` (400-599) instead of running them."""
        return cls(method, "http_status", status=status, nth=nth, times=times)

    @classmethod
    def from_json(cls, spec: Any) -> Fault:
        """A fault from its JSON form (the keys of :meth:`to_json` without the counters).

        Raises ValueError naming the key that is unknown, missing or wrong.
        """
        if not isinstance(spec, dict):
            raise ValueError(f"a fault is a JSON object, not {type(spec).__name__}")
        unknown = sorted(set(spec) - set(_SPEC_KEYS))
        if unknown:
            raise ValueError(
                f"unknown fault key {', '.join(map(repr, unknown))}; "
                f"the keys are {', '.join(_SPEC_KEYS)}"
            )
        if "action" not in spec:
            raise ValueError(f"a fault needs an 'action', one of {', '.join(ACTIONS)}")
        return cls(**{key: spec[key] for key in _SPEC_KEYS if key in spec})

    def to_json(self) -> dict[str, Any]:
        """The JSON form, counters included."""
        out: dict[str, Any] = {"id": self.id, "method": self.method, "action": self.action}
        if self.action == "latency":
            out["seconds"] = self.seconds
        if self.action == "fail":
            out["error"] = list(self.error)
        if self.action == "http_status":
            out["status"] = self.status
        if self.nth is not None:
            out["nth"] = self.nth
        if self.times is not None:
            out["times"] = self.times
        out["calls"] = self.calls
        out["hits"] = self.hits
        return out

    # -- checks and counting -----------------------------------------------------------------

    def _check(self) -> None:
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"'method' must be a method name or '*', not {self.method!r}")
        if self.action not in ACTIONS:
            raise ValueError(
                f"unknown fault action {self.action!r}; use one of {', '.join(ACTIONS)}"
            )
        for key in ("nth", "times"):
            value = getattr(self, key)
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"'{key}' must be a number of calls, 1 or more, not {value!r}")
        if self.nth is not None and self.times is not None:
            raise ValueError("give 'nth' (one call) or 'times' (the first N calls), not both")
        for key, owner, unset in (("seconds", "latency", 0.0), ("error", "fail", []),
                                  ("status", "http_status", 0)):
            if self.action != owner and getattr(self, key) != unset:
                raise ValueError(f"'{key}' goes with the action {owner!r}, not {self.action!r}")
        if self.action == "latency":
            if type(self.seconds) not in (int, float) or not 0 < self.seconds <= 3600:
                raise ValueError(f"'seconds' must be a number in (0, 3600], not {self.seconds!r}")
        if self.action == "fail":
            if (not isinstance(self.error, (list, tuple)) or not self.error
                    or not all(isinstance(p, str) for p in self.error) or not self.error[0]):
                raise ValueError(f"'error' must be [CODE, param...] of strings, not {self.error!r}")
            self.error = list(self.error)
        if self.action == "http_status":
            if type(self.status) is not int or not 400 <= self.status <= 599:
                raise ValueError(f"'status' must be an HTTP status 400-599, not {self.status!r}")

    def matches(self, name: str, is_async: bool) -> bool:
        """Whether a call of canonical ``name`` (Async or not) is one this fault watches."""
        if self._name == "*":
            return True
        return self._name == name and (is_async or not self._async_only)

    def _count(self) -> bool:
        """Count one matching call; True when this fault is due on it."""
        self.calls += 1
        if self.nth is not None:
            return self.calls == self.nth
        if self.times is not None:
            return self.calls <= self.times
        return True

    @property
    def expected_hits(self) -> int:
        """Hits it must reach to count as fully hit: 1 for nth, N for times, 1 for every call."""
        return self.times if self.times is not None else 1

    def describe(self) -> str:
        which = (f"call {self.nth}" if self.nth is not None
                 else f"first {self.times} calls" if self.times is not None else "every call")
        what = {"latency": f"latency {self.seconds} s", "fail": f"fail {self.error}",
                "http_status": f"HTTP {self.status}"}.get(self.action, self.action)
        return f"fault #{self.id} ({what} on {self.method}, {which}): {self.hits} hit(s)"


class _Slot:
    """Where the call's handler leaves the fault that the middleware must finish."""

    __slots__ = ("fault",)

    def __init__(self) -> None:
        self.fault: Fault | None = None


_SLOT: ContextVar[_Slot | None] = ContextVar("os_xenapi_fault_slot", default=None)


def drop_connection(request: web.BaseRequest) -> None:
    """Close the request's connection at once, with nothing more sent."""
    transport = request.transport
    if transport is not None:
        transport.abort()


class Faults:
    """The pool's faults; safe to use from any thread (the loop applies them, tests add them)."""

    def __init__(self, table: dict[str, Served]) -> None:
        self._table = table
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._next_id = 1

    # -- the registry -------------------------------------------------------------------------

    def add(self, fault: Fault) -> Fault:
        """Start applying ``fault``; returns it with its id. ValueError for an unknown method."""
        fault._check()
        if fault.method == "*":
            fault._name, fault._async_only = "*", False
        elif fault.method.startswith("system."):
            fault._name, fault._async_only = fault.method, False
        else:
            served, is_async, name = resolve(self._table, fault.method)
            if served is None:
                raise ValueError(f"no XAPI method {fault.method!r} to put a fault on")
            fault._name, fault._async_only = name, is_async
        with self._lock:
            fault.id, self._next_id = self._next_id, self._next_id + 1
            fault.calls = fault.hits = 0
            self._faults.append(fault)
        return fault

    def remove(self, fault_id: int) -> Fault:
        """Stop applying one fault; returns it. Raises LookupError for an unknown id."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.id == fault_id:
                    return self._faults.pop(index)
        raise LookupError(f"no fault with id {fault_id}")

    def clear(self) -> list[Fault]:
        """Stop applying every fault; returns them with their final counts."""
        with self._lock:
            gone, self._faults = self._faults, []
        return gone

    def list(self) -> list[Fault]:
        """Copies of the faults in the order they were added, with their counters."""
        with self._lock:
            return [copy.copy(f) for f in self._faults]

    def hits(self) -> dict[int, int]:
        """Hits so far, by fault id."""
        with self._lock:
            return {f.id: f.hits for f in self._faults}

    def assert_all_hit(self) -> None:
        """Raise AssertionError naming every fault that acted less often than it was asked to."""
        short = [f.describe() for f in self.list() if f.hits < f.expected_hits]
        if short:
            raise AssertionError("faults not hit as asked: " + "; ".join(short))

    # -- applying them ------------------------------------------------------------------------

    async def before_call(self, method: str) -> bool:
        """Apply the faults due on one wire call of ``method``; True if the call must not run.

        Waits out latencies, raises :class:`ApiError` for ``fail``, and leaves drops and HTTP
        statuses to :meth:`middleware`, which finishes them once the handler has returned.
        """
        if not self._faults:
            return False
        served, is_async, name = resolve(self._table, method)
        delay = 0.0
        chosen: Fault | None = None
        with self._lock:
            for fault in self._faults:
                if not fault.matches(name, is_async) or not fault._count():
                    continue
                if fault.action == "latency":
                    delay += fault.seconds
                    fault.hits += 1
                elif chosen is None:
                    chosen = fault
                    if fault.action != "drop_after":
                        fault.hits += 1
        if delay:
            await asyncio.sleep(delay)
        if chosen is None:
            return False
        if chosen.action == "fail":
            raise ApiError(*chosen.error)
        slot = _SLOT.get()
        if slot is not None:
            slot.fault = chosen
        return chosen.action != "drop_after"

    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Finish what :meth:`before_call` decided: drop the connection or replace the reply."""
        slot = _Slot()
        token = _SLOT.set(slot)
        try:
            response = await handler(request)
        finally:
            _SLOT.reset(token)
        fault = slot.fault
        if fault is None:
            return response
        if fault.action == "http_status":
            return web.Response(
                status=fault.status, text=f"simulated fault #{fault.id}: HTTP {fault.status}\n"
            )
        if fault.action == "drop_after":
            with self._lock:
                fault.hits += 1
        drop_connection(request)
        return response  # aiohttp finds the connection closed and sends nothing
