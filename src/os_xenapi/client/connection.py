"""How to reach one XAPI host: its URL, TLS settings, and urllib3 connection pools for HTTP,
HTTPS and HTTP over a Unix socket.

The connections made here note, per thread, when a request's bytes have gone out
(:data:`progress`), which is how :mod:`os_xenapi.client.transport` knows that a refused or
timed-out connection, or a failed TLS handshake, never sent its call. They also put their socket
under the call's :class:`~os_xenapi.client.deadline.Deadline` (``progress.deadline``), from the
moment it is connected, so that the TLS handshake, the request and the whole reply share it.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, InsecureRequestWarning, NewConnectionError

from .deadline import Guard

LOG = logging.getLogger(__name__)

LOCAL_SOCKET = "/var/lib/xcp/xapi"  # Xapi_globs.unix_domain_socket
# Where dom0's XAPI socket may be: today's path, then older XenServers' (os-xenapi 0.3.4's).
LOCAL_SOCKETS = (LOCAL_SOCKET, "/var/xapi/xapi")
_FINGERPRINT = re.compile(r"[0-9a-fA-F]{64}")


class InsecureTransportWarning(UserWarning):
    """TLS certificate verification was turned off for a host (``verify=False``)."""


# --------------------------------------------------------------------------- connections

# ``progress.sent``: whether the request of the exchange under way in this thread has left yet.
# ``progress.deadline``: the Deadline of that exchange, or None.
progress = threading.local()


class _SendTracking:
    """Mixin: note, once ``send`` has put bytes on the wire, that the request may have gone out;
    and keep the socket under the deadline of the exchange under way.

    http.client connects lazily inside ``send``, so a connection error raised there comes before
    the note; urllib3 does the TLS handshake before the first ``send``. A new socket comes under
    the deadline as soon as it is connected (so the handshake does too), and the deadline moves
    by the time connecting took, which the connect timeout bounds; a kept-alive one comes under
    it at its first ``send``.
    """

    _guard: Guard | None = None

    def _new_conn(self) -> socket.socket:
        started = time.monotonic()
        return self._guarded(super()._new_conn(), started)  # type: ignore[misc]

    def _guarded(self, sock: socket.socket, started: float) -> socket.socket:
        """``sock``, with a guard for the deadline of the exchange under way."""
        if self._guard is not None:
            self._guard.close()
        self._guard = Guard(sock)
        deadline = getattr(progress, "deadline", None)
        if deadline is not None:
            deadline.extend(time.monotonic() - started)
            deadline.watch(self._guard)
        return sock

    def send(self, data: Any) -> None:
        deadline = getattr(progress, "deadline", None)
        if deadline is not None and self._guard is not None and not progress.sent:
            deadline.watch(self._guard)  # a kept-alive socket, at the first send of a request
        super().send(data)  # type: ignore[misc]
        progress.sent = True

    def close(self) -> None:
        try:
            super().close()  # type: ignore[misc]
        finally:
            if self._guard is not None:
                self._guard.close()
                self._guard = None


class _HTTPConnection(_SendTracking, HTTPConnection):
    pass


class _HTTPSConnection(_SendTracking, HTTPSConnection):
    pass


class _UnixConnection(_SendTracking, HTTPConnection):
    """HTTP over an AF_UNIX stream socket (XAPI's local socket in dom0)."""

    def __init__(self, *args: Any, unix_path: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unix_path = unix_path

    def _new_conn(self) -> socket.socket:
        started = time.monotonic()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)  # type: ignore[arg-type]
            sock.connect(self.unix_path)
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeoutError(self, f"connecting to {self.unix_path} timed out") from exc
        except OSError as exc:
            sock.close()
            raise NewConnectionError(self, f"cannot connect to {self.unix_path}: {exc}") from exc
        return self._guarded(sock, started)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _UnixPool(HTTPConnectionPool):
    ConnectionCls = _UnixConnection


# --------------------------------------------------------------------------- URLs and TLS


@dataclass(frozen=True)
class Endpoint:
    """Where a host is: ``scheme`` (http, https or unix), ``host``, ``port`` and, for unix,
    ``path``. ``url`` is the canonical form, safe to show (it can hold no credentials)."""

    scheme: str
    host: str
    port: int | None
    path: str = ""

    @property
    def url(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def local_socket() -> str:
    """dom0's XAPI socket: the first of :data:`LOCAL_SOCKETS` that exists (today's path if none
    does, so that the error of a connection names it)."""
    for path in LOCAL_SOCKETS:
        if os.path.exists(path):
            return path
    return LOCAL_SOCKETS[0]


def shown_url(url: str) -> str:
    """``url`` as the caller gave it, fit to show in an error text: stripped, and without any
    ``user:password@`` (which :func:`parse_url` refuses, but an error may still have to name)."""
    return _USERINFO.sub(r"\1<credentials>@", url.strip())


def parse_url(url: str) -> Endpoint:
    """The :class:`Endpoint` of ``url``; ValueError says what is wrong with a bad one."""
    if not isinstance(url, str):
        raise TypeError(f"the XAPI URL must be a str, not {type(url).__name__}")
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:  # an unclosed "[" of an IPv6 literal
        raise ValueError(f"{shown_url(url)!r} is not a URL ({exc})") from None
    url = shown_url(url)  # every message below names it, so none can show a password
    scheme = parts.scheme.lower()
    if scheme == "unix":
        if parts.netloc == "local" and parts.path in ("", "/"):
            return Endpoint("unix", "localhost", None, local_socket())
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError(
                f"{url!r}: a unix URL names an absolute socket path, as unix:///var/lib/xcp/xapi,"
                " or is unix://local (dom0's socket, at /var/lib/xcp/xapi or /var/xapi/xapi)"
            )
        return Endpoint("unix", "localhost", None, parts.path)
    if scheme not in ("http", "https"):
        raise ValueError(f"{url!r}: the scheme must be http, https or unix, not {parts.scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials do not belong in the XAPI URL; log in with them instead")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError(f"{url!r}: a XAPI URL is scheme://host[:port], without a path or query")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r}: the port must be a number from 1 to 65535") from None
    return Endpoint(scheme, parts.hostname, port or (443 if scheme == "https" else 80))


def _tls_options(verify: bool | str | ssl.SSLContext, host: str) -> dict[str, Any]:
    """urllib3 pool options for ``verify``."""
    if isinstance(verify, ssl.SSLContext):
        return {"ssl_context": verify}
    if verify is True:
        return {"ssl_context": ssl.create_default_context()}
    if verify is False:
        message = (f"TLS certificate verification is disabled for {host}: anyone on the path can "
                   "read the password and the session; pin the certificate with "
                   "verify='sha256:...' instead")
        warnings.warn(message, InsecureTransportWarning, stacklevel=4)
        LOG.warning("%s", message)
        # One warning is enough; urllib3 would add another one for every request.
        warnings.filterwarnings("ignore", category=InsecureRequestWarning,
                                message=f".*'{re.escape(host)}'")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return {"ssl_context": context}
    if isinstance(verify, str) and verify.lower().startswith("sha256:"):
        digest = verify[len("sha256:"):].replace(":", "")
        if not _FINGERPRINT.fullmatch(digest):
            raise ValueError(
                "verify='sha256:...' needs the certificate's SHA-256 fingerprint: 64 hex digits, "
                "colons allowed (openssl x509 -noout -fingerprint -sha256)"
            )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the pinned fingerprint is the check
        return {"ssl_context": context, "assert_fingerprint": digest.lower()}
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return {"ssl_context": ssl.create_default_context(capath=verify)}
        if not os.path.isfile(verify):
            raise ValueError(f"verify={verify!r}: no such CA bundle file or directory")
        return {"ssl_context": ssl.create_default_context(cafile=verify)}
    raise TypeError(
        "verify must be True, False, a CA bundle path, 'sha256:<fingerprint>' or an SSLContext"
    )


def make_pool(endpoint: Endpoint, verify: Any, maxsize: int) -> HTTPConnectionPool:
    common = {"maxsize": maxsize, "block": False, "retries": False}
    if endpoint.scheme == "unix":
        return _UnixPool("localhost", None, unix_path=endpoint.path, **common)
    if endpoint.scheme == "https":
        return _HTTPSPool(endpoint.host, endpoint.port, **_tls_options(verify, endpoint.host),
                          **common)
    return _HTTPPool(endpoint.host, endpoint.port, **common)
