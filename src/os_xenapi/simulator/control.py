"""The simulator's control API: inject faults, expire sessions, move the master, cut a host off,
restart the server. Tests reach it in Python through :class:`~.runner.Simulator` (see
:class:`SimulatorControls`) or over HTTP, under a path no XAPI client uses.

HTTP (JSON in, JSON out), served by the pool master's address and by the Unix socket only; other
hosts answer 404 there. Errors are ``{"error": "..."}`` with status 400 (bad input), 404 (no such
thing) or 409 (not possible now). Who may call it (:mod:`.guard`): every request but a ``GET``
declares ``Content-Type: application/json`` (else 415), none carries a foreign ``Origin`` (403),
and off loopback each brings the pool's credentials, Basic auth or a ``session_id`` (else 401).

``GET /_simulator/faults``
    ``{"faults": [fault, ...]}``; each with ``id``, its spec, ``calls`` (matching calls seen) and
    ``hits`` (calls it acted on).
``POST /_simulator/faults`` with a fault spec
    ``{"method": "VM.start", "action": "fail", "error": ["CODE", "param"], "nth": 2}``; actions
    are ``latency`` (``seconds``), ``fail`` (``error``), ``drop_before``, ``drop_after`` and
    ``http_status`` (``status``); ``nth`` or ``times`` pick calls (default: every call). See
    :mod:`.faults`. Answers ``{"fault": fault}``.
``DELETE /_simulator/faults`` and ``DELETE /_simulator/faults/ID``
    Remove every fault, or one; answers ``{"removed": [fault, ...]}`` with the final counts.
``GET /_simulator/hosts``
    ``{"hosts": [{"index", "ref", "address", "master", "reachable"}, ...]}``.
``POST /_simulator/sessions/expire`` with ``{"session": REF}`` or ``{}``
    Destroys that session, or all of them, as XAPI's session timeout does; the next call with it
    gets ``SESSION_INVALID``. Answers ``{"expired": [ref, ...]}``.
``POST /_simulator/master`` with ``{"host_index": I}``
    ``pool.designate_new_master``: the old master then answers ``HOST_IS_SLAVE``.
``POST /_simulator/hosts/I/unreachable`` and ``.../reachable``
    Host I stops accepting connections (they are refused) and its open ones are cut; or it
    listens again, on the same address and port.
``POST /_simulator/restart``
    Every listener closes and reopens on the same port. Connections and calls in progress are
    cut, Async tasks and sessions are gone, and the pool's persistent state is kept, as after a
    XAPI restart (see :mod:`.persist`). The reply comes once the simulator serves again.
``/_simulator/vms/VM/agent``, ``/_simulator/rrd``
    Each guest's agent and the RRD clock: see :mod:`.control_guests`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from . import persist
from .control_guests import GuestControl, SimulatorGuestControls
from .dispatch import Context
from .errors import ApiError
from .faults import Fault, Faults
from .guard import Refusal
from .server import CANCEL_TIMEOUT, MAX_RPC_SIZE, SlowRequest, close_after, read_body

if TYPE_CHECKING:
    from .server import Endpoint, Server
    from .xapi import Xapi

PREFIX = "/_simulator"
CALL_TIMEOUT = 60.0  # seconds a Python-side control call may take
T = TypeVar("T")
_Action = Callable[[web.Request, dict[str, Any]], Awaitable[Any]]


class ControlError(ValueError):
    """A control request that cannot be done; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Control(GuestControl):
    """What the control API does, on the simulator's loop; shared by HTTP and Python callers."""

    def __init__(self, xapi: Xapi, server: Server, state: persist.StateDir | None = None) -> None:
        self.xapi = xapi
        self.server = server
        self.state = state
        self.unreachable: set[str] = set()  # host refs whose listener is closed on purpose

    def start(self) -> None:
        """Begin keeping the state directory up to date, if there is one."""
        if self.state is not None:
            self.state.start(self.xapi)

    async def close(self) -> None:
        """Write the last state and release the state directory."""
        if self.state is not None:
            await self.state.close()

    # -- operations -----------------------------------------------------------------------------

    def host_ref(self, index: int) -> str:
        """The ref of host ``index`` (in creation order, as ``Simulator.addresses``)."""
        hosts = list(self.xapi.db.all("host"))
        if type(index) is not int:
            raise ControlError(400, f"a host index is a whole number, not {index!r}")
        if not 0 <= index < len(hosts):
            raise ControlError(
                404, f"no host with index {index!r}: the pool has hosts 0 to {len(hosts) - 1}"
            )
        return hosts[index]

    def hosts(self) -> list[dict[str, Any]]:
        """Every host: index, ref, address, whether it is the master, whether it is reachable."""
        master = self.xapi.master
        return [
            {"index": index, "ref": ref, "address": record["address"], "master": ref == master,
             "reachable": ref not in self.unreachable}
            for index, (ref, record) in enumerate(self.xapi.db.all("host").items())
        ]

    async def expire_session(self, ref: str) -> None:
        """Destroy one session, so that its next call gets ``SESSION_INVALID``."""
        if not isinstance(ref, str) or not self.xapi.db.exists("session", ref):
            raise ControlError(404, f"no session {ref!r}")
        self.xapi.local_sessions.discard(ref)
        self.xapi.db.destroy("session", ref)

    async def expire_sessions(self) -> list[str]:
        """Destroy every session; returns their refs."""
        refs = list(self.xapi.db.all("session"))
        for ref in refs:
            await self.expire_session(ref)
        return refs

    async def move_master(self, index: int) -> str:
        """Make host ``index`` the master, as ``pool.designate_new_master``; returns its ref."""
        from .ops.host_pool import designate_new_master

        host = self.host_ref(index)
        try:
            designate_new_master(Context(self.xapi, self.xapi.master), host)
        except ApiError as exc:
            raise ControlError(409, f"cannot move the master: {exc.description}") from None
        return host

    async def set_host_reachable(
        self, index: int, reachable: bool, spare: web.BaseRequest | None = None
    ) -> None:
        """Close host ``index``'s listener and cut its connections (all but ``spare``'s), or
        open it again on the same address and port."""
        host = self.host_ref(index)
        if reachable:
            self.unreachable.discard(host)
            await self.server.open(host)
        else:
            self.unreachable.add(host)
            await self.server.close(host, spare)

    async def restart(self, spare: web.BaseRequest | None = None) -> None:
        """Stop serving, forget what a restarted XAPI forgets, and serve again on the same port."""
        for key in self.server.listeners:
            await self.server.close(key, spare, cancel=True)
        await self.xapi.tasks.cancel_running(CANCEL_TIMEOUT)
        text, _generation = persist.dumps(self.xapi)
        persist.restore(self.xapi, json.loads(text))  # the same path as a start from disk
        if self.state is not None:
            await self.state.save()
        for key in self.server.listeners:
            if key not in self.unreachable:
                await self.server.open(key)

    # -- HTTP -----------------------------------------------------------------------------------

    def add_routes(self, app: web.Application, endpoint: Endpoint) -> None:
        """Serve the control API from ``endpoint``'s application."""
        routes: list[tuple[str, str, _Action]] = [
            ("GET", "/faults", self._list_faults),
            ("POST", "/faults", self._add_fault),
            ("DELETE", "/faults", self._clear_faults),
            ("DELETE", "/faults/{id}", self._remove_fault),
            ("GET", "/hosts", self._hosts),
            ("POST", "/hosts/{index}/unreachable", self._unreachable),
            ("POST", "/hosts/{index}/reachable", self._reachable),
            ("POST", "/master", self._master),
            ("POST", "/sessions/expire", self._expire),
            ("POST", "/restart", self._restart),
            *self.guest_routes(),
        ]
        for method, path, action in routes:
            app.router.add_route(method, PREFIX + path, self._handler(endpoint, action))
        app.router.add_route("*", PREFIX + "/{tail:.*}", self._handler(endpoint, self._unknown))

    def _handler(self, endpoint: Endpoint, action: _Action) -> Callable[..., Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            if not (endpoint.local or endpoint.host == self.xapi.master):
                return _error(404, "the control API is served only by the pool master's address "
                                   "and the Unix socket")
            try:
                await endpoint.guard.check_control(request, endpoint.address)
            except Refusal as refusal:
                return _error(refusal.status, str(refusal), refusal.headers)
            try:
                result = await action(request, await _body(request,
                                                            self.xapi.config.body_timeout))
            except ControlError as exc:
                if exc.status == 408:
                    return await close_after(request, _error(exc.status, str(exc)))
                return _error(exc.status, str(exc))
            if isinstance(result, web.StreamResponse):
                return result
            return web.json_response(result)

        return handle

    async def _list_faults(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"faults": [f.to_json() for f in self.xapi.faults.list()]}

    async def _add_fault(self, request: web.Request, body: dict[str, Any]) -> Any:
        try:
            fault = self.xapi.faults.add(Fault.from_json(body))
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None
        return {"fault": fault.to_json()}

    async def _clear_faults(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"removed": [f.to_json() for f in self.xapi.faults.clear()]}

    async def _remove_fault(self, request: web.Request, body: dict[str, Any]) -> Any:
        fault_id = _index(request.match_info["id"], "fault id")
        try:
            return {"removed": [self.xapi.faults.remove(fault_id).to_json()]}
        except LookupError as exc:
            raise ControlError(404, str(exc)) from None

    async def _hosts(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"hosts": self.hosts()}

    async def _unreachable(self, request: web.Request, body: dict[str, Any]) -> Any:
        index = _index(request.match_info["index"], "host index")
        await self.set_host_reachable(index, False, spare=request)
        return _closing({"host": self.hosts()[index]})

    async def _reachable(self, request: web.Request, body: dict[str, Any]) -> Any:
        index = _index(request.match_info["index"], "host index")
        await self.set_host_reachable(index, True)
        return {"host": self.hosts()[index]}

    async def _master(self, request: web.Request, body: dict[str, Any]) -> Any:
        if set(body) != {"host_index"}:
            raise ControlError(400, 'send {"host_index": I}, I being the new master\'s index')
        host = await self.move_master(body["host_index"])
        return {"master": host, "address": self.xapi.db.get("host", host)["address"]}

    async def _expire(self, request: web.Request, body: dict[str, Any]) -> Any:
        if not set(body) <= {"session"}:
            raise ControlError(400, 'send {"session": REF} to expire one session, {} for all')
        if "session" in body:
            await self.expire_session(body["session"])
            return {"expired": [body["session"]]}
        return {"expired": await self.expire_sessions()}

    async def _restart(self, request: web.Request, body: dict[str, Any]) -> Any:
        await self.restart(spare=request)
        return _closing({"restarted": True, "port": self.server.port})

    async def _unknown(self, request: web.Request, body: dict[str, Any]) -> Any:
        raise ControlError(404, f"no control route {request.method} {request.path}; "
                                f"see os_xenapi.simulator.control for the routes")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _closing(result: dict[str, Any]) -> web.Response:
    """A reply after which the connection closes: the listener it came through was cut."""
    response = web.json_response(result)
    response.force_close()
    return response


def _index(text: str, what: str) -> int:
    if not text.isdigit():
        raise ControlError(400, f"{what} must be a whole number, not {text!r}")
    return int(text)


async def _body(request: web.Request, timeout: float) -> dict[str, Any]:
    """The request's JSON object; ``{}`` when there is no body. Raises ControlError (400, 408)."""
    if not request.can_read_body:
        return {}
    try:
        raw = await read_body(request, timeout)
    except SlowRequest:
        raise ControlError(408, f"the body did not arrive within {timeout:g} s") from None
    if raw is None:
        raise ControlError(413, f"the body is over {MAX_RPC_SIZE} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ControlError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ControlError(400, f"the body must be a JSON object, not {type(body).__name__}")
    return body


class SimulatorControls(SimulatorGuestControls):
    """The control API on :class:`~.runner.Simulator`, callable from any thread but the loop's."""

    loop: asyncio.AbstractEventLoop | None
    control: Control | None

    def _on_loop(self, job: Callable[[Control], Awaitable[T]]) -> T:
        control, loop = self.control, self.loop
        if control is None or loop is None or loop.is_closed():
            raise RuntimeError("the simulator is not running; start() it first")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("this waits for the simulator's loop: call it from another thread")

        async def run() -> T:
            return await job(control)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=CALL_TIMEOUT)

    @property
    def faults(self) -> Faults:
        """The pool's faults (thread-safe): ``add``, ``list``, ``hits``, ``assert_all_hit``..."""
        if self.control is None:
            raise RuntimeError("the simulator is not running; start() it first")
        return self.control.xapi.faults

    def add_fault(self, method: str, action: str, **options: Any) -> Fault:
        """Add a fault from the keys of its JSON form; returns it (its counters stay live)."""
        return self.faults.add(Fault.from_json({"method": method, "action": action, **options}))

    def expire_session(self, ref: str) -> None:
        """Destroy session ``ref``; its next call gets ``SESSION_INVALID``."""
        self._on_loop(lambda control: control.expire_session(ref))

    def expire_sessions(self) -> list[str]:
        """Destroy every session; returns their refs."""
        return self._on_loop(lambda control: control.expire_sessions())

    def move_master(self, index: int) -> str:
        """Make host ``index`` the pool master; returns its ref."""
        return self._on_loop(lambda control: control.move_master(index))

    def set_host_reachable(self, index: int, reachable: bool) -> None:
        """Refuse connections to host ``index`` (cutting open ones), or accept them again."""
        self._on_loop(lambda control: control.set_host_reachable(index, reachable))

    def restart(self) -> None:
        """Restart the server on the same port, keeping the pool as a XAPI restart does."""
        self._on_loop(lambda control: control.restart())
