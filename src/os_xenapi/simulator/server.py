"""HTTP front of the simulator: XML-RPC on ``POST /`` (any path but ``/jsonrpc``), JSON-RPC on
``POST /jsonrpc``, one listener per simulated host address and optionally the dom0 Unix socket."""

from __future__ import annotations

import html
import logging
from typing import Any

from aiohttp import web

from . import codec
from .dispatch import Context, call
from .errors import ApiError
from .xapi import Xapi

LOG = logging.getLogger(__name__)

MAX_RPC_SIZE = 300 * 1024  # XAPI's http_limit_max_rpc_size
_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "X-Requested-With"}


def _internal_error(text: str) -> web.Response:
    body = f"<html><body><h1>HTTP 500 internal server error</h1>{html.escape(text)}</body></html>"
    return web.Response(status=500, text=body, content_type="text/html", headers=_CORS)


class Endpoint:
    """The API as served on one address: which host it is, and whether it is the local socket."""

    def __init__(self, xapi: Xapi, host: str, local: bool = False) -> None:
        self.xapi = xapi
        self.host = host
        self.local = local

    async def _read(self, request: web.Request) -> bytes | web.Response:
        if request.content_length is not None and request.content_length > MAX_RPC_SIZE:
            return web.Response(status=413, text="Request body too large", headers=_CORS)
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > MAX_RPC_SIZE:
                return web.Response(status=413, text="Request body too large", headers=_CORS)
        return bytes(body)

    async def _run(self, method: str, params: list[Any]) -> Any:
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
            return _internal_error(f"Xmlrpc.Parse_error({exc})")
        try:
            payload = codec.encode_xmlrpc_success(await self._run(method, params))
        except ApiError as exc:
            payload = codec.encode_xmlrpc_failure(exc.description)
        except Exception as exc:  # noqa: BLE001 - XAPI maps unexpected exceptions likewise
            LOG.exception("error serving %s", method)
            payload = codec.encode_xmlrpc_failure(["INTERNAL_ERROR", str(exc)])
        return web.Response(body=payload, content_type="text/xml", headers=_CORS)

    async def jsonrpc(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if isinstance(body, web.Response):
            return body
        try:
            rpc = codec.decode_jsonrpc_call(body)
        except codec.CodecError as exc:
            return _internal_error(f"Jsonrpc.Malformed_method_request({exc})")
        try:
            payload = codec.encode_jsonrpc_success(rpc, await self._run(rpc.method, rpc.params))
        except ApiError as exc:
            payload = codec.encode_jsonrpc_failure(rpc, exc.description)
        except Exception as exc:  # noqa: BLE001
            LOG.exception("error serving %s", rpc.method)
            payload = codec.encode_jsonrpc_failure(rpc, ["INTERNAL_ERROR", str(exc)])
        return web.Response(body=payload, content_type="application/json", headers=_CORS)

    async def options(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, headers=_CORS)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_RPC_SIZE)
        app.router.add_post("/jsonrpc", self.jsonrpc)
        app.router.add_route("OPTIONS", "/{tail:.*}", self.options)
        app.router.add_post("/{tail:.*}", self.xmlrpc)
        return app


class Server:
    """Listeners for every host of a pool on one port, plus the optional Unix socket."""

    def __init__(self, xapi: Xapi, port: int, unix_path: str | None = None) -> None:
        self.xapi = xapi
        self.port = port
        self.unix_path = unix_path
        self._runners: list[web.AppRunner] = []

    async def _serve(self, endpoint: Endpoint, **site: Any) -> web.BaseSite:
        runner = web.AppRunner(endpoint.app(), access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        if "path" in site:
            made = web.UnixSite(runner, site["path"])
        else:
            made = web.TCPSite(runner, site["host"], site["port"], reuse_address=True)
        await made.start()
        return made

    async def start(self) -> None:
        hosts = list(self.xapi.db.all("host").items())
        for index, (ref, record) in enumerate(hosts):
            site = await self._serve(Endpoint(self.xapi, ref), host=record["address"], port=self.port)
            if index == 0 and self.port == 0:
                self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.unix_path:
            await self._serve(Endpoint(self.xapi, self.xapi.master, local=True), path=self.unix_path)

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
