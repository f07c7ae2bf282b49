"""The pool's xcp-rrdd: which objects have an RRD, what their data sources answer, and its clock.

As rrdd does, a VM has an RRD while its domain runs (``VM.start`` creates it, a shutdown
archives it): ``VM.get_data_sources`` and ``VM.query_data_source`` of a VM that is not running
fail, as does a query for a name the RRD does not hold (``rrdd_server.ml``: ``query_vm_ds``
looks the VM up with ``Hashtbl.find``; ``Rrd.query_named_ds`` raises ``Invalid_data_source``).
XAPI turns these into ``INTERNAL_ERROR`` with the exception's text, printed as
``Rrd_interface`` prints its errors. Sources that are not ``standard`` are recorded only after
``record_data_source``; until then they are listed with ``enabled`` false and cannot be queried.

Values come from :mod:`.rrd_sources` for the RRD step the pool's :class:`RrdClock` is in. The
clock follows the wall clock; tests move it on (:meth:`RrdClock.advance`) to see the next
values at once, or freeze it so that values stay put.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable
from typing import Any

from .errors import ApiError
from .rrd_sources import STEP, Source, host_sources, vm_sources

_RUNNING = ("Running", "Paused")


def _ocaml_string(text: str) -> str:
    """``text`` as OCaml's ``%S`` writes it inside an exception's printed form."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rrdd_error(reason: str) -> ApiError:
    """The INTERNAL_ERROR XAPI answers when rrdd fails with ``reason`` (an OCaml exception)."""
    return ApiError("INTERNAL_ERROR",
                    f"Rrd_interface.Rrdd_error([S(Rrdd_internal_error);S({reason})])")


def no_rrd() -> ApiError:
    """rrdd holds no RRD for the object (a VM that is not running)."""
    return rrdd_error("Not_found")


def invalid_data_source(name: str) -> ApiError:
    """The RRD has no data source ``name`` (or does not record it)."""
    return rrdd_error(f"Rrd.Invalid_data_source({_ocaml_string(name)})")


class RrdClock:
    """The time the pool's RRDs are at: the wall clock, moved on or frozen by tests."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._offset = 0.0
        self._frozen_at: float | None = None

    def now(self) -> float:
        base = self._wall() if self._frozen_at is None else self._frozen_at
        return base + self._offset

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def step(self) -> int:
        """The number of the RRD step the clock is in."""
        return int(self.now() // STEP)

    def advance(self, seconds: float) -> float:
        """Move the clock on by ``seconds`` (a finite number, not negative); returns now()."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
                or not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"the RRD clock moves on by a finite number of seconds, at least 0,"
                             f" not {seconds!r}")
        self._offset += float(seconds)
        return self.now()

    def freeze(self, frozen: bool = True) -> float:
        """Stop the clock where it is (values stay put), or let it follow the wall clock again
        from there; returns now()."""
        if not isinstance(frozen, bool):
            raise ValueError(f"frozen is true or false, not {frozen!r}")
        if frozen and self._frozen_at is None:
            self._frozen_at = self._wall()
        elif not frozen and self._frozen_at is not None:
            self._offset += self._frozen_at - self._wall()
            self._frozen_at = None
        return self.now()

    def to_json(self) -> dict[str, Any]:
        return {"time": self.now(), "frozen": self.frozen, "step_seconds": STEP}


class Rrds:
    """What rrdd knows of one pool: the clock, and the sources recorded beyond the standard."""

    def __init__(self, xapi: Any) -> None:
        self.xapi = xapi
        self.clock = RrdClock()
        self._recorded: dict[str, set[str]] = {}  # object uuid -> recorded non-standard names

    @property
    def db(self) -> Any:
        return self.xapi.db  # the current one: a simulator restart replaces it

    # -- which sources an object has ----------------------------------------------------------

    def _vm(self, vm: str) -> dict[str, Source]:
        record = self.db.get("VM", vm)  # HANDLE_INVALID first, as XAPI's own lookup
        if record["power_state"] not in _RUNNING or int(record["domid"]) < 0:
            raise no_rrd()
        return vm_sources(self.db, vm, self.clock.step())

    def _host(self, host: str) -> dict[str, Source]:
        self.db.get("host", host)
        return host_sources(self.db, host, self.clock.step())

    def _of(self, cls: str, ref: str) -> tuple[str, dict[str, Source]]:
        sources = self._vm(ref) if cls == "VM" else self._host(ref)
        return self.db.get(cls, ref)["uuid"], sources

    # -- the four messages, for a VM or a host ------------------------------------------------

    def get_data_sources(self, cls: str, ref: str) -> list[dict[str, Any]]:
        """Every source of the object, by name, as ``data_source`` records."""
        uuid, sources = self._of(cls, ref)
        recorded = self._recorded.get(uuid, set())
        return [sources[name].record(sources[name].standard or name in recorded)
                for name in sorted(sources)]

    def query_data_source(self, cls: str, ref: str, name: str) -> float:
        """The latest value of a recorded source."""
        uuid, sources = self._of(cls, ref)
        source = sources.get(name)
        if source is None or not (source.standard or name in self._recorded.get(uuid, ())):
            raise invalid_data_source(name)
        return source.value

    def record_data_source(self, cls: str, ref: str, name: str) -> None:
        """Start recording a source the object offers (rrdd: ``add_vm_ds``/``add_host_ds``)."""
        uuid, sources = self._of(cls, ref)
        if name not in sources:
            raise rrdd_error("Not_found")  # List.find over the live sources
        if not sources[name].standard:
            self._recorded.setdefault(uuid, set()).add(name)

    def forget_data_source_archives(self, cls: str, ref: str, name: str) -> None:
        """Drop a source's archive; a standard one is recorded again at the next update."""
        uuid, _sources = self._of(cls, ref)
        self._recorded.get(uuid, set()).discard(name)


_RRDS: weakref.WeakKeyDictionary[Any, Rrds] = weakref.WeakKeyDictionary()


def rrds_of(xapi: Any) -> Rrds:
    """The rrdd of ``xapi``'s pool, made on first use."""
    rrds = _RRDS.get(xapi)
    if rrds is None:
        rrds = _RRDS[xapi] = Rrds(xapi)
    return rrds
