"""The control API's part for what runs inside and beside the guests: each guest's agent
(:mod:`.guest_agent`) and the RRD clock (:mod:`.rrd`). Served with the rest of :mod:`.control`,
under the same rules (who may call, JSON in and out, the error statuses).

``GET /_simulator/vms/VM/agent``
    ``{"agent": view}``: how the agent of VM (its ref or uuid) behaves (``mode``, ``version``,
    ``features``) and what it was asked and did (``requests``, ``password``, ``key_derivation``,
    ``files`` with base64 contents, ``network_resets``, ``networking``, ``updates``).
``POST /_simulator/vms/VM/agent`` with ``{"mode": "silent"}`` (and/or ``version``, ``features``)
    Sets how the agent behaves: ``answer``, ``silent`` (the agent plugin times out) or
    ``reboot`` (the next request reboots the guest). Answers ``{"agent": view}``.
``GET /_simulator/rrd`` and ``POST /_simulator/rrd`` with ``{"advance": S}`` and/or
    ``{"frozen": true|false}``
    The RRD clock: ``{"rrd": {"time", "frozen", "step_seconds"}}``. Advancing it by a step
    (5 s) gives every data source its next value at once; freezing it keeps values put.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .guest_agent import GuestAgentView
from .rrd import rrds_of
from .rrd_sources import STEP

if TYPE_CHECKING:
    from aiohttp import web

    from .xapi import Xapi

T = TypeVar("T")
_AGENT_OPTIONS = {"mode", "version", "features"}


def _dom0(xapi: Xapi) -> Any:
    from .plugins import dom0_of  # plugins imports the ops; keep this module light

    return dom0_of(xapi)


def _status_error(exc: Exception) -> Exception:
    """The ControlError for what the agents or the clock refused."""
    from .control import ControlError

    return ControlError(404 if isinstance(exc, LookupError) else 400, str(exc))


class GuestControl:
    """What the routes of this module do, on the simulator's loop (a part of Control)."""

    xapi: Xapi

    def guest_routes(self) -> list[tuple[str, str, Callable[..., Awaitable[Any]]]]:
        return [
            ("GET", "/vms/{vm}/agent", self._get_agent),
            ("POST", "/vms/{vm}/agent", self._set_agent),
            ("GET", "/rrd", self._get_rrd),
            ("POST", "/rrd", self._set_rrd),
        ]

    async def guest_agent(self, vm: str) -> GuestAgentView:
        return _dom0(self.xapi).guest_agents.view(vm)

    async def set_guest_agent(self, vm: str, **options: Any) -> GuestAgentView:
        return _dom0(self.xapi).guest_agents.configure(vm, **options)

    async def rrd_clock(self, advance: float | None = None,
                        frozen: bool | None = None) -> dict[str, Any]:
        clock = rrds_of(self.xapi).clock
        if frozen is not None:
            clock.freeze(frozen)
        if advance is not None:
            clock.advance(advance)
        return clock.to_json()

    async def _get_agent(self, request: web.Request, body: dict[str, Any]) -> Any:
        try:
            return {"agent": (await self.guest_agent(request.match_info["vm"])).to_json()}
        except (LookupError, ValueError) as exc:
            raise _status_error(exc) from None

    async def _set_agent(self, request: web.Request, body: dict[str, Any]) -> Any:
        if not body or not set(body) <= _AGENT_OPTIONS:
            raise _status_error(ValueError(
                'send {"mode": "answer"|"silent"|"reboot"} and/or "version", "features"'))
        try:
            view = await self.set_guest_agent(request.match_info["vm"], **body)
        except (LookupError, ValueError) as exc:
            raise _status_error(exc) from None
        return {"agent": view.to_json()}

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

    def guest_agent(self, vm: str) -> GuestAgentView:
        """A copy of the agent of guest ``vm`` (ref or uuid): its mode and what it did.

        Raises LookupError for no such VM, ValueError for dom0 or a template.
        """
        return self._on_loop(lambda control: control.guest_agent(vm))

    def set_guest_agent(self, vm: str, *, mode: str | None = None, version: str | None = None,
                        features: list[str] | None = None) -> GuestAgentView:
        """Set how the agent of ``vm`` behaves: ``mode`` "answer", "silent" (requests time out)
        or "reboot" (the next request reboots the guest); ``version`` it reports; ``features``,
        the commands it knows. Returns the agent as :meth:`guest_agent` does."""
        return self._on_loop(lambda control: control.set_guest_agent(
            vm, mode=mode, version=version, features=features))

    def advance_rrd_clock(self, seconds: float = STEP) -> float:
        """Move the RRD clock on (by one 5-second step unless told): data sources take their
        next values at once. Returns the clock's time."""
        return self._on_loop(lambda control: control.rrd_clock(advance=seconds))["time"]

    def freeze_rrd_clock(self, frozen: bool = True) -> float:
        """Stop the RRD clock (data sources keep their values until it moves on), or let it
        run with the wall clock again. Returns the clock's time."""
        return self._on_loop(lambda control: control.rrd_clock(frozen=frozen))["time"]
