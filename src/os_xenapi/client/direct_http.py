"""Plain ``http.client`` connections to a XAPI host, for its HTTP handlers (``/import_raw_vdi``,
``/export_raw_vdi``...), with the same TLS checks as the session's API calls.

:func:`open_connection` is what ``XenAPISession.http_connection()`` yields: an
``http.client.HTTPConnection`` (or HTTPS, or HTTP over the dom0 Unix socket), already connected,
so callers keep 0.3.4's ``putrequest`` / ``putheader`` / ``endheaders`` / ``send`` /
``getresponse`` code. A pinned certificate (``verify="sha256:..."``) is checked right after the
TLS handshake, before any byte of the request, session ref included, is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import ssl

from .connection import Endpoint
from .exception import TLSError


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS whose server certificate must have the SHA-256 fingerprint ``fingerprint``."""

    def __init__(self, host: str, port: int | None, *, timeout: float | None,
                 context: ssl.SSLContext, fingerprint: str) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.fingerprint = fingerprint.replace(":", "").lower()

    def connect(self) -> None:
        super().connect()
        assert isinstance(self.sock, ssl.SSLSocket)
        der = self.sock.getpeercert(binary_form=True) or b""
        if not hmac.compare_digest(hashlib.sha256(der).hexdigest(), self.fingerprint):
            self.close()
            raise TLSError(f"the certificate of {self.host} does not have the pinned SHA-256 "
                           "fingerprint; nothing was sent", url=f"https://{self.host}:{self.port}")


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over an AF_UNIX stream socket, such as XAPI's ``/var/lib/xcp/xapi`` in dom0."""

    def __init__(self, path: str, *, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def open_connection(endpoint: Endpoint, *, timeout: float | None,
                    context: ssl.SSLContext | None = None,
                    fingerprint: str | None = None) -> http.client.HTTPConnection:
    """A connected ``http.client`` connection to ``endpoint``; ``timeout`` applies to the
    connection and to every read and write on it. Raises OSError (or TLSError) if it fails."""
    conn: http.client.HTTPConnection
    if endpoint.scheme == "unix":
        conn = UnixHTTPConnection(endpoint.path, timeout=timeout)
    elif endpoint.scheme == "https":
        if context is None:
            context = ssl.create_default_context()
        if fingerprint:
            conn = PinnedHTTPSConnection(endpoint.host, endpoint.port, timeout=timeout,
                                         context=context, fingerprint=fingerprint)
        else:
            conn = http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=timeout,
                                               context=context)
    else:
        conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)
    try:
        conn.connect()
    except BaseException:
        conn.close()
        raise
    return conn
