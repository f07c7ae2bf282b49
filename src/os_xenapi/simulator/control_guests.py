"""The control API's part for what runs beside the guests: the RRD clock (:mod:`.rrd`). Served
with the rest of :mod:`.control`, under the same rules (who may call, JSON in and out, the
error statuses).

``GET /_simulator/rrd`` and ``POST /_simulator/rrd`` with ``{"advance": S}`` and/or
    ``{"frozen": true|false}``
    The RRD clock: ``{"rrd": {"time", "frozen", "step_seconds"}}``. Advancing it by a step
    (5 s) gives every data source its next value at once; freezing it keeps values put.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .rrd import rrds_of
from .rrd_sources import STEP

if TYPE_CHECKING:
    from aiohttp import web

    from .xapi import Xapi


def _status_error(exc: Exception) -> Exception:
    """The ControlError for what the clock refused."""
    from .control import ControlError

    return ControlError(404 if isinstance(exc, LookupError) else 400, str(exc))


class GuestControl:
    """What the routes of this module do, on the simulator's loop (a part of Control)."""

    xapi: Xapi

    def guest_routes(self) -> list[tuple[str, str, Callable[..., Awaitable[Any]]]]:
        return [
            ("GET", "/rrd", self._get_rrd),
            ("POST", "/rrd", self._set_rrd),
        ]

    async def rrd_clock(self, advance: float | None = None,
                        frozen: bool | None = None) -> dict[str, Any]:
        clock = rrds_of(self.xapi).clock
        if frozen is not None:
            clock.freeze(frozen)
        if advance is not None:
            clock.advance(advance)
        return clock.to_json()

    async def _get_rrd(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"rrd": await self.rrd_clock()}

    async def _set_rrd(self, request: web.Request, body: dict[str, Any]) -> Any:
        if not body or not set(body) <= {"advance", "frozen"}:
            raise _status_error(ValueError(
                'send {"advance": SECONDS} and/or {"frozen": true|false}'))
        try:
            return {"rrd": await self.rrd_clock(body.get("advance"), body.get("frozen"))}
        except ValueError as exc:
            raise _status_error(exc) from None


class SimulatorGuestControls:
    """The same on :class:`~.runner.Simulator`, callable from any thread but the loop's."""

    _on_loop: Callable[..., Any]

    def advance_rrd_clock(self, seconds: float = STEP) -> float:
        """Move the RRD clock on (by one 5-second step unless told): data sources take their
        next values at once. Returns the clock's time."""
        return self._on_loop(lambda control: control.rrd_clock(advance=seconds))["time"]

    def freeze_rrd_clock(self, frozen: bool = True) -> float:
        """Stop the RRD clock (data sources keep their values until it moves on), or let it
        run with the wall clock again. Returns the clock's time."""
        return self._on_loop(lambda control: control.rrd_clock(frozen=frozen))["time"]
