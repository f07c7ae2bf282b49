"""HTTP front of the simulator: XML-RPC on ``POST /`` (any path but ``/jsonrpc``), JSON-RPC on
``POST /jsonrpc``, one listener per simulated host address and optionally the dom0 Unix socket.

Every call meets the pool's faults (:mod:`.faults`) first. The master's address and the Unix
socket also serve the simulator's control API under ``/_simulator/`` (:mod:`.control`), which can
close and reopen any of these listeners.

A connection may wait ``Config.idle_timeout`` seconds for each request's headers to be complete
(counted from the accept, then from the previous reply), and an RPC request then has
``Config.body_timeout`` seconds to send its body (else 408, XAPI's "request timeout" page): a
client that trickles a byte a second, or that opens connections and sends nothing, holds no
descriptor for long. A request being served (an ``event.from`` long-poll, a VDI transfer) is not
idle. XAPI bounds only the first request's headers (``http_svr.ml``); the simulator bounds every
request's, since keep-alive connections would otherwise escape.

No reply carries CORS headers. XAPI itself sends ``Access-Control-Allow-Origin: *`` with every
successful RPC reply and every ``OPTIONS`` pre-flight (``api_server.ml``, ``http_svr.ml``
``respond_to_options``), but a real host has a password of its own: with the simulator's
well-known default one, that header would let any web page log in and read the replies.
"""

from __future__ import annotations

import asyncio
import html
import logging
import ssl
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import codec, http_vdi
from .dispatch import Context, call
from .errors import ApiError
from .guard import Guard
from .listen_errors import check_unix_path, explain
from .xapi import Xapi

if TYPE_CHECKING:
    from .control import Control

LOG = logging.getLogger(__name__)

MAX_RPC_SIZE = 300 * 1024  # XAPI's http_limit_max_rpc_size
UNIX = "unix"  # the Unix socket's key among the listeners (the others are keyed by host ref)
CANCEL_TIMEOUT = 5.0  # seconds a restart waits for the requests it cancels to end


def _parse_error(parser_exception: str, exc: codec.CodecError) -> web.Response:
    """The 500 page XAPI sends for a body its parser refuses, naming the exception it raises."""
    if exc.exception is not None:
        return _internal_error(f"{exc.exception}: {exc}")
    return _internal_error(f"{parser_exception}({exc})")


def _internal_error(text: str) -> web.Response:
    body = f"<html><body><h1>HTTP 500 internal server error</h1>{html.escape(text)}</body></html>"
    return web.Response(status=500, text=body, content_type="text/html")


class SlowRequest(Exception):
    """The client did not send the whole body in time."""


async def read_body(request: web.Request, timeout: float,
                    limit: int = MAX_RPC_SIZE) -> bytes | None:
    """The whole body, read within ``timeout`` seconds, or None past ``limit`` bytes.

    Raises :class:`SlowRequest` when the client is too slow.
    """

    async def read() -> bytes | None:
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)

    try:
        return await asyncio.wait_for(read(), timeout)
    except asyncio.TimeoutError:
        raise SlowRequest() from None


async def close_after(request: web.Request, response: web.Response) -> web.Response:
    """Send ``response`` now and close the connection, reading nothing more from a client whose
    body is still trickling in (aiohttp would otherwise linger on it for 10 s)."""
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


def request_timeout() -> web.Response:
    """XAPI's 408 page (``http_svr.ml`` ``response_request_timeout``)."""
    body = ("<html><body><h1>HTTP 408 request timeout</h1>Timed out waiting for the "
            "request.</body></html>")
    return web.Response(status=408, text=body, content_type="text/html",
                        headers={"Connection": "close", "Cache-Control": "no-cache, no-store"})


class Endpoint:
    """The API as served on one address: which host it is, and whether it is the local socket."""

    def __init__(
        self, xapi: Xapi, host: str, local: bool = False, control: Control | None = None,
        guard: Guard | None = None,
    ) -> None:
        self.xapi = xapi
        self.host = host
        self.local = local
        self.control = control
        self.guard = guard or Guard(xapi, lambda: "http", lambda: 0)
        self.running: set[asyncio.Task] = set()  # requests in progress, which a restart stops

    @property
    def address(self) -> str | None:
        """The IP address this endpoint listens on; None for the Unix socket."""
        return None if self.local else self.xapi.db.get("host", self.host)["address"]

    @web.middleware
    async def _track(self, request: web.Request, handler: Any) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self.running.add(task)
        try:
            return await handler(request)
        finally:
            self.running.discard(task)

    async def _read(self, request: web.Request) -> bytes | web.Response:
        if request.content_length is not None and request.content_length > MAX_RPC_SIZE:
            return web.Response(status=413, text="Request body too large")
        try:
            body = await read_body(request, self.xapi.config.body_timeout)
        except SlowRequest:
            return await close_after(request, request_timeout())
        if body is None:
            return web.Response(status=413, text="Request body too large")
        return body

    async def _run(self, method: str, params: list[Any]) -> Any:
        if await self.xapi.faults.before_call(method):
            return ""  # a fault answers instead: Faults.middleware drops or replaces the reply
        if method == "system.listMethods":
            return self.xapi.list_methods()
        if method.startswith("system.isAlive:"):
            return params[0] if params else ""
        ctx = Context(self.xapi, self.host, local=self.local)
        return await call(self.xapi, ctx, method, params)

    async def xmlrpc(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if isinstance(body, web.Response):
            return body
        try:
            method, params = codec.decode_xmlrpc_call(body)
        except codec.CodecError as exc:
            return _parse_error("Xmlrpc.Parse_error", exc)
        try:
            payload = codec.encode_xmlrpc_success(await self._run(method, params))
        except ApiError as exc:
            payload = codec.encode_xmlrpc_failure(exc.description)
        except Exception as exc:  # noqa: BLE001 - XAPI maps unexpected exceptions likewise
            LOG.exception("error serving %s", method)
            payload = codec.encode_xmlrpc_failure(["INTERNAL_ERROR", str(exc)])
        return web.Response(body=payload, content_type="text/xml")

    async def jsonrpc(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if isinstance(body, web.Response):
            return body
        try:
            rpc = codec.decode_jsonrpc_call(body)
        except codec.CodecError as exc:
            return _parse_error("Jsonrpc.Malformed_method_request", exc)
        try:
            payload = codec.encode_jsonrpc_success(rpc, await self._run(rpc.method, rpc.params))
        except ApiError as exc:
            payload = codec.encode_jsonrpc_failure(rpc, exc.description)
        except Exception as exc:  # noqa: BLE001
            LOG.exception("error serving %s", rpc.method)
            payload = codec.encode_jsonrpc_failure(rpc, ["INTERNAL_ERROR", str(exc)])
        return web.Response(body=payload, content_type="application/json")

    async def options(self, request: web.Request) -> web.StreamResponse:
        """XAPI's ``OPTIONS`` answer, without the CORS permission a browser looks for."""
        return web.Response(status=200)

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=MAX_RPC_SIZE,
            middlewares=[self._track, self.guard.middleware, self.xapi.faults.middleware],
        )
        if self.control is not None:
            self.control.add_routes(app, self)  # before the catch-all XML-RPC route
        http_vdi.register(app, self)  # PUT /import_raw_vdi, GET /export_raw_vdi
        app.router.add_post("/jsonrpc", self.jsonrpc)
        app.router.add_route("OPTIONS", "/{tail:.*}", self.options)
        app.router.add_post("/{tail:.*}", self.xmlrpc)
        return app


class Server:
    """Listeners for every host of a pool on one port, plus the optional Unix socket."""

    def __init__(
        self, xapi: Xapi, port: int, unix_path: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.xapi = xapi
        self.port = port
        self.unix_path = unix_path
        self.ssl_context = ssl_context  # serve HTTPS on the TCP listeners
        self.control: Control | None = None  # set before start() to serve the control API
        self.guard = Guard(xapi, lambda: "https" if self.ssl_context else "http",
                           lambda: self.port)
        self._runners: dict[str, web.AppRunner] = {}  # by host ref, and UNIX
        self._endpoints: dict[str, Endpoint] = {}
        self._where: dict[str, str] = {}  # the address, or the socket's path

    async def _serve(self, key: str, endpoint: Endpoint, where: str) -> None:
        # aiohttp's keep-alive timer runs while a connection waits for a whole request head.
        runner = web.AppRunner(endpoint.app(), access_log=None, handle_signals=False,
                               keepalive_timeout=self.xapi.config.idle_timeout)
        await runner.setup()
        self._runners[key], self._endpoints[key], self._where[key] = runner, endpoint, where
        await self.open(key)

    async def start(self) -> None:
        for ref, record in list(self.xapi.db.all("host").items()):
            endpoint = Endpoint(self.xapi, ref, control=self.control, guard=self.guard)
            await self._serve(ref, endpoint, record["address"])
        if self.unix_path:
            endpoint = Endpoint(self.xapi, self.xapi.master, local=True, control=self.control,
                                guard=self.guard)
            await self._serve(UNIX, endpoint, self.unix_path)

    @property
    def listeners(self) -> list[str]:
        """Keys of every listener: host refs, and UNIX for the Unix socket."""
        return list(self._runners)

    async def open(self, key: str) -> None:
        """Accept connections on the listener ``key`` (again); nothing if it already does."""
        runner = self._runners[key]
        if runner.sites:
            return
        where = self._where[key]
        if key == UNIX:
            check_unix_path(where)
            site: web.BaseSite = web.UnixSite(runner, where)
        else:
            site = web.TCPSite(runner, where, self.port, reuse_address=True,
                               ssl_context=self.ssl_context)
        try:
            await site.start()
        except OSError as exc:
            if key == UNIX:
                raise explain(exc, where, unix=True) from None
            hosts = list(self.xapi.db.all("host"))
            raise explain(exc, f"{where}:{self.port}", host=hosts.index(key)) from None
        if self.port == 0:
            self.port = runner.addresses[0][1]

    async def close(
        self, key: str, spare: web.BaseRequest | None = None, cancel: bool = False
    ) -> None:
        """Refuse new connections on ``key`` and cut the open ones, except ``spare``'s.

        With ``cancel``, the requests in progress there are stopped too, as a dying XAPI's are.
        """
        runner = self._runners[key]
        for site in list(runner.sites):
            await site.stop()
        keep = spare.protocol if spare is not None else None
        for connection in runner.server.connections if runner.server else ():
            if connection is not keep and connection.transport is not None:
                connection.transport.abort()
        if cancel:
            current = asyncio.current_task()
            doomed = [t for t in self._endpoints[key].running if t is not current]
            for task in doomed:
                task.cancel()
            if doomed:
                await asyncio.wait(doomed, timeout=CANCEL_TIMEOUT)

    async def stop(self) -> None:
        """Stop serving for good: close every listener, cut its connections and cancel the
        requests in progress (an ``event.from`` long-poll would otherwise hold the stop for up
        to its timeout), then release the sockets."""
        for key in list(self._runners):
            await self.close(key, cancel=True)
        for runner in reversed(list(self._runners.values())):
            await runner.cleanup()
        self._runners.clear()
