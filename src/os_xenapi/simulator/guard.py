"""Who may drive the simulator over HTTP: never a web page of another origin, and the control API
only with JSON, and only with the pool's credentials where the network can reach it.

A browser adds ``Origin`` to every cross-site POST, so a request whose ``Origin`` is not one of
the pool's own URLs comes from a web page the developer happens to have open (or from a DNS
rebinding trick that makes such a page "same-origin"). XAPI serves those; the simulator, whose
default password is public, refuses them everywhere with 403. Requests with no ``Origin`` (curl,
the SDKs, os-xenapi's client) are not concerned.

A browser sends no ``Origin`` with a same-origin GET, so a page whose host name was rebound to
127.0.0.1 could still read ``GET`` replies: on a loopback listener a request whose ``Host`` is a
name other than ``localhost`` is refused too (an IP address cannot be rebound, and any port is
fine, for a tunnel's sake). Off loopback, where users may reach the simulator by any name, the
credentials below do that job.

The control API (``/_simulator/``) also refuses a state change whose body is not declared JSON:
``Content-Type: application/json`` is not one a web page may send across sites without a CORS
pre-flight, which the simulator never grants. And on a listener whose address is not loopback,
it wants the pool's credentials, as XAPI's HTTP handlers do (``xapi_http.ml``): a session ref in
the ``session_id`` cookie or query argument, or HTTP Basic auth with the pool's user and password.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import html
import ipaddress
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from yarl import URL

if TYPE_CHECKING:
    from .xapi import Xapi

JSON = "application/json"
SAFE_METHODS = frozenset(("GET", "HEAD"))  # read only: no content type asked of them
REALM = "xapi-simulator-control"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Refusal(Exception):
    """A request the guard turns away; ``status`` and the sentence that says why."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def is_loopback(address: str) -> bool:
    """Whether ``address`` (an IP address; anything else counts as not) is a loopback one."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Guard:
    """The checks for one pool's listeners; ``scheme`` and ``port`` say what its URLs are."""

    def __init__(self, xapi: Xapi, scheme: Callable[[], str], port: Callable[[], int]) -> None:
        self.xapi = xapi
        self._scheme = scheme
        self._port = port

    # -- origins ----------------------------------------------------------------------------------

    def own_origins(self) -> set[tuple[str, str, int]]:
        """(scheme, host, port) of every URL the pool serves, ``localhost`` included."""
        scheme, port = self._scheme(), self._port()
        hosts = {record["address"].lower() for record in self.xapi.db.all("host").values()}
        hosts.add("localhost")
        return {(scheme, host, port) for host in hosts}

    def foreign(self, origin: str) -> bool:
        """Whether ``origin`` (an ``Origin`` header) is not one of the pool's own URLs.

        ``null`` (a sandboxed frame, a file:// page) and anything unparsable are foreign.
        """
        try:
            url = URL(origin.strip())
        except ValueError:
            return True
        if not url.scheme or not url.host or url.port is None:
            return True
        return (url.scheme.lower(), url.host.lower(), url.port) not in self.own_origins()

    @staticmethod
    def rebound(request: web.Request) -> str | None:
        """The ``Host`` of a request on a loopback TCP listener when it is a host name other
        than ``localhost`` (what a DNS-rebound page sends), else None."""
        host = request.headers.get("Host")
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if host is None or not isinstance(sockname, tuple) or not is_loopback(sockname[0]):
            return None
        name = host.strip()
        if name.startswith("["):
            name = name[1:].partition("]")[0]
        elif name.rpartition(":")[2].isdigit():
            name = name.rpartition(":")[0]
        if name.lower() == "localhost":
            return None
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return host
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Refuse, before anything else runs, a request sent by a web page of another origin."""
        origin = request.headers.get("Origin")
        message = None
        if origin is not None and self.foreign(origin):
            message = (f"requests from web pages are refused, and this one came from {origin!r}, "
                       "which is not the simulator's own origin")
        elif (host := self.rebound(request)) is not None:
            message = (f"this request names the host {host!r}, which is not one of the "
                       "simulator's own addresses (a web page of a rebound host name?)")
        if message is None:
            return await handler(request)
        if request.path.startswith("/_simulator"):
            return web.json_response({"error": message}, status=403)
        return forbidden(message)

    # -- the control API --------------------------------------------------------------------------

    async def check_control(self, request: web.Request, address: str | None) -> None:
        """Raise :class:`Refusal` unless ``request`` may use the control API.

        ``address`` is the listener's IP address, or None for the Unix socket (root, as in XAPI).
        """
        if address is not None and not is_loopback(address):
            await self._check_credentials(request, address)
        if request.method not in SAFE_METHODS:
            given = request.headers.get("Content-Type")
            if given is None or request.content_type != JSON:
                what = "no Content-Type" if given is None else f"Content-Type {given!r}"
                raise Refusal(415, f"the control API takes JSON: send 'Content-Type: {JSON}' "
                                   f"(this request had {what})")

    async def _check_credentials(self, request: web.Request, address: str) -> None:
        session = request.cookies.get("session_id") or request.query.get("session_id")
        if session is not None:
            if self.xapi.db.exists("session", session):
                return
            raise self._unauthorised(f"session {session!r} is not a live session of this pool")
        header = request.headers.get("Authorization")
        if header is None:
            raise self._unauthorised(
                f"the control API on {address} (not a loopback address) needs the pool's "
                "credentials: HTTP Basic auth with its user and password, or a session ref in "
                "the session_id cookie or query argument")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise self._unauthorised(f"unknown authorization scheme {scheme!r}: use Basic")
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode() \
                .partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise self._unauthorised("the Basic credentials are not valid base64") from None
        config = self.xapi.config
        good_user = hmac.compare_digest(user.encode(), config.username.encode())
        good_password = hmac.compare_digest(password.encode(), config.password.encode())
        if not (good_user and good_password):
            if config.auth_failure_delay > 0:
                await asyncio.sleep(config.auth_failure_delay)  # as a failed login: no guessing
            raise self._unauthorised(f"wrong user name or password for user {user!r}")

    @staticmethod
    def _unauthorised(message: str) -> Refusal:
        return Refusal(401, message, {"WWW-Authenticate": f'Basic realm="{REALM}"'})


def forbidden(message: str) -> web.Response:
    """XAPI's 403 page (``http_svr.ml`` ``response_forbidden``), with the reason added."""
    body = ("<html><body><h1>HTTP 403 forbidden</h1>Access to the requested resource is "
            f"forbidden: {html.escape(message)}.</body></html>")
    return web.Response(status=403, text=body, content_type="text/html",
                        headers={"Connection": "close", "Cache-Control": "no-cache, no-store"})
