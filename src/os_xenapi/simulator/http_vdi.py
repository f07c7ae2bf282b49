"""The HTTP handlers that move VDI contents: ``PUT /import_raw_vdi`` and ``GET /export_raw_vdi``.

They follow XAPI's (``import_raw_vdi.ml``, ``export_raw_vdi.ml``, ``xapi_http.ml``,
``importexport.ml``; shared/xapi/PROTOCOL.md section 4):

* Credentials, in XAPI's order: the Unix socket is root; then ``session_id`` from a cookie, then
  from the query; then HTTP Basic auth, which logs a session in for the request and out after it.
  Anything else is ``401`` with ``WWW-Authenticate: Basic realm="<http action>"``.
* ``vdi`` is a ref or a uuid; one that names no VDI is a ``500`` naming ``UUID_INVALID``, as
  XAPI's lookup fails before the handler has a task.
* ``task_id`` (cookie first, then query) is adopted: its progress moves with the bytes and it ends
  in ``success`` (result ``<value>OpaqueRef:VDI</value>`` for an import, empty for an export) or
  ``failure``. Without it the handler makes its own task, completes it and destroys it at the end.
* Refusals before any byte moves: ``404`` for an unknown or unsupported ``format``, for
  ``chunked`` with a non-raw format and for any ``Transfer-Encoding`` header, with the task failed
  ``INTERNAL_ERROR [reason]``.
* Otherwise ``200`` goes out at once, before the body is read, with ``Connection: close``,
  ``Cache-Control: no-cache, no-store`` and ``task-id``. Errors after that are in the task only.
  Export bodies have no Content-Length: they end when the connection closes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .codec import encode_xmlrpc_value
from .dispatch import Context
from .errors import ApiError
from .values import DateTime
from .vdi_stream import ChunkedReader, RawReader, RawSource, TransferError, VdiWriter
from .vhd import MAX_VHD_SIZE, VhdError, VhdSource
from .vhd_reader import VhdReader

if TYPE_CHECKING:
    from .server import Endpoint

LOG = logging.getLogger(__name__)

IMPORT_ACTION = "put_import_raw_vdi"
EXPORT_ACTION = "get_export_raw_vdi"
ORIGINATOR = "xapi-simulator-http"
CONTENT_TYPES = {"raw": "application/octet-stream", "vhd": "application/vhd",
                 "tar": "application/x-tar", "qcow2": "application/x-qemu-disk"}
SUPPORTED = ("raw", "vhd")
_CLOSE = {"Connection": "close", "Cache-Control": "no-cache, no-store"}
_REASONS = {400: "Bad Request", 401: "Unauthorised", 404: "Not Found", 411: "Length Required",
            500: "Internal Error"}


def register(app: web.Application, endpoint: Endpoint) -> None:
    """Add the two handlers to ``app``, serving as ``endpoint`` (its host, its socket kind)."""
    handlers = VdiTransfer(endpoint)
    app.router.add_put("/import_raw_vdi", handlers.import_raw_vdi)
    app.router.add_get("/export_raw_vdi", handlers.export_raw_vdi, allow_head=False)


class _UntilClose(web.StreamResponse):
    """A 200 whose body ends when the connection closes: no Content-Length and no chunked
    encoding, as XAPI sends it (aiohttp would otherwise chunk an HTTP/1.1 body of unknown size)."""

    _length_check = False


class _Refused(Exception):
    """Answer the request with ``status`` (and fail the task, if there is one, with ``error``)."""

    def __init__(self, status: int, text: str, error: ApiError | None = None) -> None:
        super().__init__(text)
        self.status, self.text, self.error = status, text, error


class _Unauthorised(Exception):
    pass


class _Cancelled(Exception):
    """The task was cancelled or destroyed while the bytes moved."""


def _page(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    reason = _REASONS.get(status, "Error")
    body = f"<html><body><h1>HTTP {status} {reason.lower()}</h1>{html.escape(text)}</body></html>"
    return web.Response(status=status, reason=reason, text=body, content_type="text/html",
                        headers={**_CLOSE, **(headers or {})})


def _unauthorised(action: str) -> web.Response:
    return _page(401, "Please check your credentials and retry.",
                 {"WWW-Authenticate": f'Basic realm="{action}"'})


class _Params:
    """Query and cookie arguments, looked up in the order XAPI uses for each one."""

    def __init__(self, request: web.Request) -> None:
        self.query, self.cookies = request.query, request.cookies

    def get(self, name: str, cookie_first: bool = False) -> str | None:
        places = (self.cookies, self.query) if cookie_first else (self.query, self.cookies)
        for place in places:
            if name in place:
                return place[name]
        return None


@dataclass
class _Task:
    """The task a transfer reports to: adopted from ``task_id`` or made for this request."""

    xapi: Any
    ref: str
    adopted: bool
    reported: float = 0.0

    def alive(self) -> bool:
        record = self.xapi.db.all("task").get(self.ref)
        return record is not None and record["status"] == "pending"

    def progress(self, fraction: float) -> None:
        """Move the progress in steps of 1%; raises :class:`_Cancelled` once the task is gone."""
        if not self.alive():
            raise _Cancelled()
        fraction = min(fraction, 0.99)
        if fraction - self.reported >= 0.01:
            self.reported = fraction
            self.xapi.tasks.set_progress(self.ref, fraction)

    def succeed(self, result: str) -> None:
        """XAPI's TaskHelper.complete: ``result`` is the XML-RPC fragment, or "" for void."""
        if self.alive():
            self.xapi.db.update("task", self.ref, status="success", progress=1.0,
                                finished=DateTime.now(), result=result, allowed_operations=[])

    def fail(self, error: ApiError) -> None:
        if self.alive():
            self.xapi.tasks.fail(self.ref, error)

    def end(self) -> None:
        if not self.adopted and self.xapi.db.exists("task", self.ref):
            self.xapi.db.destroy("task", self.ref)


class VdiTransfer:
    """The handlers of one endpoint (one host address, or the Unix socket)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.xapi = endpoint.xapi

    # -- credentials and task -------------------------------------------------------------------

    async def _login(self, request: web.Request, params: _Params) -> tuple[str, bool]:
        """(session, temporary?) for the request; raises :class:`_Unauthorised`."""
        xapi = self.xapi
        if self.endpoint.local:
            session = await xapi.call("session.login_with_password",
                                      [xapi.config.username, "", "", ORIGINATOR], local=True)
            return session, True
        session = params.get("session_id", cookie_first=True)
        if session is not None:
            if not xapi.db.exists("session", session):
                raise _Unauthorised()
            return session, False
        header = request.headers.get("Authorization")
        if header is None:
            raise _Unauthorised()
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise _Refused(500, f"Unknown authorization header: {scheme}")
        try:
            uname, _, pwd = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            session = await xapi.call("session.login_with_password",
                                      [uname, pwd, "", ORIGINATOR])
        except (binascii.Error, UnicodeDecodeError, ApiError):
            raise _Unauthorised() from None
        return session, True

    def _fail_given_task(self, params: _Params, error: ApiError) -> None:
        ref = params.get("task_id", cookie_first=True)
        if ref is not None:
            _Task(self.xapi, ref, adopted=True).fail(error)

    def _task(self, params: _Params, session: str, label: str) -> _Task:
        ref = params.get("task_id", cookie_first=True)
        if ref is not None:
            if not self.xapi.db.exists("task", ref):
                raise _Refused(500, f"HANDLE_INVALID: [ task; {ref} ]")
            return _Task(self.xapi, ref, adopted=True)
        ctx = Context(self.xapi, self.endpoint.host, session, self.endpoint.local)
        ref = self.xapi.tasks.create(ctx, label)
        parent = params.get("subtask_of", cookie_first=True)
        if parent and self.xapi.db.exists("task", parent):
            self.xapi.db.update("task", ref, subtask_of=parent)
        return _Task(self.xapi, ref, adopted=False)

    def _vdi(self, params: _Params) -> str | None:
        """The VDI named by ``vdi`` (a ref, else a uuid), or None when there is no ``vdi``."""
        name = params.get("vdi")
        if name is None:
            return None
        db = self.xapi.db
        if db.exists("VDI", name):
            return name
        ref = db.by_uuid["VDI"].get(name)
        if ref is None:
            raise _Refused(500, f"UUID_INVALID: [ VDI; {name} ]")
        return ref

    def _format(self, params: _Params) -> str:
        fmt = (params.get("format") or "raw").lower()
        if fmt not in CONTENT_TYPES:
            raise _Refused(404, f"Unknown format {fmt}", ApiError("INTERNAL_ERROR",
                                                                  f"Unknown format {fmt}"))
        return fmt

    @staticmethod
    def _unsupported(fmt: str) -> _Refused:
        text = f"Format {fmt} is not supported by the simulator (only raw and vhd)"
        return _Refused(404, text, ApiError("INTERNAL_ERROR", text))

    async def _authenticated(self, request: web.Request, action: str,
                             serve: Any) -> web.StreamResponse:
        """Run ``serve(request, params, session)`` with credentials checked, then log out."""
        params = _Params(request)
        try:
            session, temporary = await self._login(request, params)
        except _Unauthorised:
            self._fail_given_task(params, ApiError("SESSION_AUTHENTICATION_FAILED"))
            return _unauthorised(action)
        except _Refused as refused:
            return _page(refused.status, refused.text)
        try:
            return await serve(request, params, session)
        except _Refused as refused:
            return _page(refused.status, refused.text)
        finally:
            if temporary:
                await self._logout(session)

    async def _logout(self, session: str) -> None:
        try:
            await self.xapi.call("session.logout", [session])
        except ApiError:
            pass  # already gone

    # -- import ---------------------------------------------------------------------------------

    async def import_raw_vdi(self, request: web.Request) -> web.StreamResponse:
        """``PUT /import_raw_vdi``: write the body into a VDI (or a new one in ``sr_id``)."""
        return await self._authenticated(request, IMPORT_ACTION, self._import)

    async def _import(self, request: web.Request, params: _Params,
                      session: str) -> web.StreamResponse:
        vdi = self._vdi(params)
        sr = None if vdi is not None else self._sr(params)
        task = self._task(params, session, "Importing raw VDI")
        try:
            fmt = self._format(params)
            chunked = params.get("chunked") is not None
            if chunked and fmt != "raw":
                raise _Refused(404, "Cannot handle chunked VHD",
                               ApiError("INTERNAL_ERROR", "Cannot handle chunked VHD"))
            encoding = request.headers.get("Transfer-Encoding")
            if encoding is not None:
                text = f"Cannot handle encoding: {encoding}"
                raise _Refused(404, text, ApiError("INTERNAL_ERROR", text))
            if fmt not in SUPPORTED:
                raise self._unsupported(fmt)
            length = request.content_length
            if vdi is None:
                vdi = await self._new_vdi(session, sr, fmt, length)
            if length is None:
                text = "An import needs a Content-Length body (chunked=true for sparse writes)"
                raise _Refused(411, text, ApiError("INTERNAL_ERROR", text))
            response = _UntilClose(status=200, headers={
                **_CLOSE, "task-id": task.ref, "Content-Type": "application/octet-stream"})
            response.force_close()
            await response.prepare(request)
            await _settle(task, self._receive(request, vdi, fmt, chunked, length, task),
                          encode_xmlrpc_value(vdi))
            return response
        except _Refused as refused:
            task.fail(refused.error or ApiError("INTERNAL_ERROR", refused.text))
            raise
        except ApiError as exc:
            task.fail(exc)
            raise _Refused(500, str(exc)) from None
        finally:
            task.end()

    def _sr(self, params: _Params) -> str:
        """The SR for an import without ``vdi``: ``sr_id``, else ``sr_uuid`` (cookie first)."""
        sr = params.get("sr_id", cookie_first=True)
        if sr is not None:
            return sr
        sr_uuid = params.get("sr_uuid", cookie_first=True)
        if sr_uuid is None:
            self._fail_given_task(params, ApiError("VDI_MISSING"))
            raise _Refused(400, "Require an SR or VDI to import")
        ref = self.xapi.db.by_uuid["SR"].get(sr_uuid)
        if ref is None:
            self._fail_given_task(params, ApiError("UUID_INVALID", "SR", sr_uuid))
            raise _Refused(400, f"UUID_INVALID: [ SR; {sr_uuid} ]")
        return ref

    async def _new_vdi(self, session: str, sr: str | None, fmt: str, length: int | None) -> str:
        """XAPI's "Imported VDI": only a raw body of known length goes straight into an SR."""
        if fmt != "raw":
            text = "Importing a VHD directly into an SR not yet supported"
            raise _Refused(400, text, ApiError("INTERNAL_ERROR", text))
        if length is None or sr is None:
            text = "Not enough info supplied to import"
            raise _Refused(400, text, ApiError("INTERNAL_ERROR", text))
        record = {"name_label": "Imported VDI", "name_description": "", "SR": sr,
                  "virtual_size": str(length), "type": "user", "sharable": False,
                  "read_only": False, "other_config": {}, "xenstore_data": {}, "sm_config": {},
                  "tags": []}
        return await self.xapi.call("VDI.create", [session, record], self.endpoint.host)

    async def _receive(self, request: web.Request, vdi: str, fmt: str, chunked: bool,
                       length: int, task: _Task) -> None:
        """Stream the body into the VDI's file; raises ApiError (or _Cancelled) on failure."""
        xapi = self.xapi
        record = xapi.db.get("VDI", vdi)
        uuid, size = record["uuid"], int(record["virtual_size"])
        path = await asyncio.get_running_loop().run_in_executor(None, xapi.vdis.ensure, uuid, size)
        parser: Any = (VhdReader(str(xapi.state_dir)) if fmt == "vhd"
                       else ChunkedReader() if chunked else RawReader())
        writer = VdiWriter(path, size, zeros_past_end_ok=fmt == "vhd")
        try:
            if fmt == "vhd":
                await writer.reset()
            received = 0
            async for data in _body(request):
                received += len(data)
                for offset, piece in parser.feed(data):
                    await writer.write(offset, piece)
                task.progress(received / length if length else 1.0)
                if chunked and parser.done:
                    break
            if received < length and not (chunked and parser.done):
                raise TransferError(f"the body ended after {received} of {length} bytes")
            parser.finish()
            await writer.flush()
        except (TransferError, VhdError) as exc:
            raise ApiError("INTERNAL_ERROR", str(exc)) from None
        finally:
            writer.close()
            parser.close()
            self._account(vdi)

    def _account(self, vdi: str) -> None:
        """After an import: physical_utilisation follows the file (never shrinking, as a VHD
        file does not), the SR's total follows, and the VDI's record changes (an event)."""
        db = self.xapi.db
        if not db.exists("VDI", vdi):
            return
        record = db.get("VDI", vdi)
        old = int(record["physical_utilisation"])
        new = max(old, self.xapi.vdis.allocated(record["uuid"]))
        db.update("VDI", vdi, physical_utilisation=new)
        if new != old and db.exists("SR", record["SR"]):
            total = int(db.get("SR", record["SR"])["physical_utilisation"])
            db.update("SR", record["SR"], physical_utilisation=total + new - old)

    # -- export ---------------------------------------------------------------------------------

    async def export_raw_vdi(self, request: web.Request) -> web.StreamResponse:
        """``GET /export_raw_vdi``: stream a VDI as raw bytes or as a dynamic VHD."""
        return await self._authenticated(request, EXPORT_ACTION, self._export)

    async def _export(self, request: web.Request, params: _Params,
                      session: str) -> web.StreamResponse:
        vdi = self._vdi(params)
        if vdi is None:
            raise _Refused(500, "Missing vdi query parameter")
        task = self._task(params, session, "Exporting raw VDI")
        try:
            fmt = self._format(params)
            if fmt not in SUPPORTED:
                raise self._unsupported(fmt)
            record = self.xapi.db.get("VDI", vdi)
            response = _UntilClose(status=200, headers={
                **_CLOSE, "task-id": task.ref, "Content-Type": CONTENT_TYPES[fmt],
                "content-disposition": f'attachment; filename="{record["uuid"]}.{fmt}"'})
            response.force_close()
            await response.prepare(request)
            await _settle(task, self._send(response, vdi, record, fmt, task), "")
            return response
        except _Refused as refused:
            task.fail(refused.error or ApiError("INTERNAL_ERROR", refused.text))
            raise
        finally:
            task.end()

    async def _send(self, response: web.StreamResponse, vdi: str, record: dict[str, Any],
                    fmt: str, task: _Task) -> None:
        """Stream the VDI's file; raises ApiError (or _Cancelled) on failure."""
        loop = asyncio.get_running_loop()
        uuid, size = record["uuid"], int(record["virtual_size"])
        if fmt == "vhd" and size > MAX_VHD_SIZE:
            raise ApiError("VDI_TOO_LARGE", vdi, MAX_VHD_SIZE)
        path = await loop.run_in_executor(None, self.xapi.vdis.ensure, uuid, size)
        kind = VhdSource if fmt == "vhd" else RawSource
        source = await loop.run_in_executor(None, kind, path, size)
        chunks = source.chunks()
        sent = 0
        try:
            while True:
                chunk = await loop.run_in_executor(None, next, chunks, None)
                if chunk is None:
                    break
                try:
                    await response.write(chunk)
                except (OSError, RuntimeError) as exc:
                    raise ApiError("INTERNAL_ERROR", f"the client went away after {sent} of "
                                   f"{source.total_size} bytes ({exc})") from None
                sent += len(chunk)
                task.progress(sent / source.total_size)
        finally:
            chunks.close()
            source.close()


async def _settle(task: _Task, work: Awaitable[None], result: str) -> None:
    """Run the transfer and end the task as XAPI does: ``success`` with ``result``, or
    ``failure`` with the error (any exception, as INTERNAL_ERROR); a cancelled task is left be."""
    try:
        await work
    except ApiError as exc:
        task.fail(exc)
    except _Cancelled:
        pass
    except Exception as exc:  # noqa: BLE001 - XAPI fails the task with any exception
        LOG.exception("VDI transfer failed")
        task.fail(ApiError("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}"))
    else:
        task.succeed(result)


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a connection lost mid-body becomes :class:`TransferError`."""
    received = 0
    while True:
        try:
            data = await request.content.readany()
        except Exception as exc:  # noqa: BLE001 - aiohttp reports a lost body in several ways
            raise TransferError(f"the connection failed after {received} bytes of body "
                                f"({type(exc).__name__}: {exc})") from None
        if not data:
            return
        received += len(data)
        yield data
