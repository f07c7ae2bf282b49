"""HTTP(S) from dom0 to an image service: verified TLS, time limits, streamed bodies, sorted errors.

Certificates are checked with ssl.create_default_context(): dom0's trust store, or a CA
bundle the caller names inside /etc/pki, /etc/ssl or /etc/stunnel. Only an explicit
insecure flag turns checking off, and it is logged as a warning every time. Failures are
sorted as os-xenapi 0.3.4 sorted them: a missing image is NOT_FOUND, a refusal that will
not change is HTTP_ERROR, anything a retry may cure (network trouble, 5xx, 408, 429...) is
RETRYABLE, and an unverifiable certificate is CERTIFICATE_ERROR.
"""

import base64
import binascii
import hashlib
import http.client
import ipaddress
import os
import re
import ssl
import urllib.parse

from dom0lib import paths
from dom0lib.errors import (
    BAD_DATA,
    CERTIFICATE_ERROR,
    HTTP_ERROR,
    NOT_FOUND,
    RETRYABLE,
    PluginError,
)
from dom0lib.logs import get_logger
from dom0lib.validate import Invalid, Map, Str, Type

# A stalled image service is given up on after this long without progress (0.3.4's value).
SOCKET_TIMEOUT = 90.0
CHUNK = 64 * 1024
MAX_SMALL_BODY = 1024 * 1024
CA_DIRS = ("/etc/pki", "/etc/ssl", "/etc/stunnel")
CA_BUNDLE = Str(256, r"/(etc/pki|etc/ssl|etc/stunnel)(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)+",
                what="a CA bundle file under /etc/pki, /etc/ssl or /etc/stunnel")
# Status codes a retry cannot change (0.3.4's list); 404 is NOT_FOUND, others are retryable.
PERMANENT = frozenset([400, 401, 402, 403, 405, 406, 407, 409, 410, 411, 412, 413, 414, 415,
                       416, 417, 501, 505, 510])
# Headers the plugin sets itself: a caller's value would break the request's framing.
RESERVED_HEADERS = frozenset(["host", "content-length", "transfer-encoding", "connection",
                              "expect", "upgrade", "te", "trailer", "content-type"])
_HOST = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_PATH = re.compile(r"(/[A-Za-z0-9._~%!$&'()*+,;=:@-]+)*/?")
# What talking to a server can raise. Python 3.6 reports a host name that does not match
# the certificate as ssl.CertificateError, a ValueError rather than an OSError.
_NETWORK_ERRORS = (OSError, http.client.HTTPException, ssl.CertificateError)
LOG = get_logger("httpclient")


class Endpoint:
    """A parsed image service URL: scheme, host, port and path prefix (no trailing /)."""

    def __init__(self, scheme: str, host: str, port: int, prefix: str) -> None:
        self.scheme, self.host, self.port, self.prefix = scheme, host, port, prefix

    def __repr__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.prefix}"


class EndpointType(Type):
    """An http:// or https:// URL with a host, optional port and path prefix; no user
    information, query or fragment. check() returns an Endpoint."""

    def check(self, value):
        if not isinstance(value, str) or not 0 < len(value) <= 2048:
            raise Invalid("must be a URL string of at most 2048 characters")
        if any(char.isspace() or not char.isprintable() for char in value):
            raise Invalid("must be a URL without spaces or control characters")
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise Invalid("must be an http:// or https:// URL")
        if "@" in parts.netloc or parts.query or parts.fragment or value.endswith(("?", "#")):
            raise Invalid("must not carry user information, a query or a fragment")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise Invalid("has a port that is not a number from 1 to 65535") from None
        host = parts.hostname or ""
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            if not _HOST.fullmatch(host):
                raise Invalid("must name a host by DNS name or IP address") from None
        if not 0 < port < 65536 or not _PATH.fullmatch(parts.path):
            raise Invalid("has a port or path that is not allowed")
        return Endpoint(parts.scheme, host, port, parts.path.rstrip("/"))


ENDPOINT = EndpointType()
HEADER_NAME = Str(64, r"[A-Za-z0-9][A-Za-z0-9-]*", what="a header name: A-Z a-z 0-9 -")


class HeadersType(Map):
    """Extra request headers (an auth token...): at most 32, printable, none of the
    framing headers the plugin sets itself."""

    def __init__(self) -> None:
        Map.__init__(self, HEADER_NAME, Str(16384), 32)

    def check(self, value):
        checked = Map.check(self, value)
        for name in checked:
            if name.lower() in RESERVED_HEADERS:
                raise Invalid(f"must not set {name}, which the plugin sets itself")
        return checked


HEADERS = HeadersType()


def tls_context(endpoint: Endpoint, ca_bundle: str = None, insecure: bool = False):
    """Return the SSLContext for an https endpoint (None for http).

    Raises InvalidArgument for a CA bundle outside its directories, PluginError NOT_FOUND
    for a missing one, BAD_DATA for one that holds no usable certificate.
    """
    if endpoint.scheme != "https":
        return None
    cafile = None
    if ca_bundle:
        base = next(d for d in CA_DIRS if ca_bundle.startswith(d + "/"))
        cafile = paths.confine(paths.host_path(base), ca_bundle[len(base) + 1:], "ca_bundle")
        if not os.path.isfile(cafile):
            raise PluginError(NOT_FOUND, "CA bundle", ca_bundle)
    try:
        context = ssl.create_default_context(cafile=cafile)
    except ssl.SSLError as exc:
        raise PluginError(BAD_DATA, "CA bundle",
                          f"holds no usable certificate ({str(exc)[:120]})") from None
    if insecure:
        LOG.warning("TLS certificate checks are OFF for %s (insecure was requested)",
                    endpoint.host)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _failure(exc, host):
    """The PluginError for an exception raised while talking to host."""
    text = str(exc)[:200] or type(exc).__name__
    if isinstance(exc, ssl.CertificateError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return PluginError(CERTIFICATE_ERROR, host, text)
    if isinstance(exc, ssl.SSLError):
        return PluginError(CERTIFICATE_ERROR, host, "TLS failed: " + text)
    return PluginError(RETRYABLE, "image service " + host, text)


class Connection:
    """One connection to the endpoint; every network error leaves as a sorted PluginError."""

    def __init__(self, endpoint: Endpoint, context) -> None:
        self.endpoint = endpoint
        if endpoint.scheme == "https":
            self._http = http.client.HTTPSConnection(endpoint.host, endpoint.port,
                                                     timeout=SOCKET_TIMEOUT, context=context)
        else:
            self._http = http.client.HTTPConnection(endpoint.host, endpoint.port,
                                                    timeout=SOCKET_TIMEOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._http.close()

    def url_path(self, path: str) -> str:
        return self.endpoint.prefix + path

    def request(self, method: str, path: str, headers: dict, body: bytes = None):
        """Send one request and return its http.client response."""
        try:
            self._http.request(method, self.url_path(path), body=body, headers=headers)
            return self._http.getresponse()
        except _NETWORK_ERRORS as exc:
            raise _failure(exc, self.endpoint.host) from None

    def chunked(self, method: str, path: str, headers: dict, image_id: str) -> "ChunkedBody":
        """Start a request whose body is sent in chunks; write to it, then finish()."""
        try:
            self._http.putrequest(method, self.url_path(path), skip_accept_encoding=True)
            for name, value in headers.items():
                self._http.putheader(name, value)
            self._http.putheader("Transfer-Encoding", "chunked")
            self._http.endheaders()
        except _NETWORK_ERRORS as exc:
            raise _failure(exc, self.endpoint.host) from None
        return ChunkedBody(self, method + " " + path, image_id)


class ChunkedBody:
    """A writable body sent as HTTP/1.1 chunks of CHUNK bytes (memory stays bounded)."""

    def __init__(self, connection: Connection, request: str, image_id: str) -> None:
        self._connection = connection
        self._request = request
        self._image_id = image_id
        self._buffer = bytearray()
        self.sent = 0

    def write(self, data) -> int:
        self._buffer.extend(data)
        while len(self._buffer) >= CHUNK:
            self._send(bytes(self._buffer[:CHUNK]))
            del self._buffer[:CHUNK]
        return len(data)

    def flush(self) -> None:
        """Nothing to do: chunks leave as they fill (file-object protocol for GzipFile)."""

    def _send(self, data):
        try:
            self._connection._http.send(b"%x\r\n" % len(data) + data + b"\r\n")
        except _NETWORK_ERRORS as exc:
            raise self._early_answer() or _failure(exc, self._connection.endpoint.host) from None
        self.sent += len(data)

    def _early_answer(self):
        """A server may refuse a body and close before reading it: its answer says why."""
        try:
            response = self._connection._http.getresponse()
        except _NETWORK_ERRORS:
            return None
        try:
            check_status(response, self._request, self._image_id)
        except PluginError as exc:
            return exc
        return None

    def finish(self):
        """Send what is buffered and the last chunk; return the response."""
        if self._buffer:
            self._send(bytes(self._buffer))
            self._buffer = bytearray()
        try:
            self._connection._http.send(b"0\r\n\r\n")
            return self._connection._http.getresponse()
        except _NETWORK_ERRORS as exc:
            raise _failure(exc, self._connection.endpoint.host) from None


def check_status(response, request: str, image_id: str) -> None:
    """Return if the response is a success (2xx); otherwise read it and raise, sorted:
    404 NOT_FOUND, PERMANENT and 3xx HTTP_ERROR, anything else RETRYABLE."""
    status = response.status
    if 200 <= status < 300:
        return
    try:
        response.read(MAX_SMALL_BODY)
    except _NETWORK_ERRORS:
        pass
    if status == 404:
        raise PluginError(NOT_FOUND, "image", image_id)
    reason = f"{status} {response.reason}"
    if status in PERMANENT:
        raise PluginError(HTTP_ERROR, request, str(status), response.reason)
    if 300 <= status < 400:
        raise PluginError(HTTP_ERROR, request, str(status), "redirects are not followed")
    raise PluginError(RETRYABLE, request, reason)


def read_small(response, host: str) -> bytes:
    """The whole body of a small response (at most MAX_SMALL_BODY bytes)."""
    try:
        data = response.read(MAX_SMALL_BODY + 1)
    except _NETWORK_ERRORS as exc:
        raise _failure(exc, host) from None
    if len(data) > MAX_SMALL_BODY:
        raise PluginError(BAD_DATA, "response from " + host, "larger than expected")
    return data


class Body:
    """A response body read as a file: counts bytes, computes their MD5, maps network errors."""

    def __init__(self, response, host: str) -> None:
        self._response = response
        self._host = host
        self.count = 0
        try:
            self._md5 = hashlib.md5()
        except ValueError:
            # FIPS mode forbids MD5: the checksum cannot be verified, only logged.
            self._md5 = None

    def read(self, size: int = CHUNK) -> bytes:
        size = CHUNK if size is None or size < 0 else min(size, 4 * CHUNK)
        try:
            data = self._response.read(size)
        except _NETWORK_ERRORS as exc:
            raise _failure(exc, self._host) from None
        self.count += len(data)
        if self._md5 is not None:
            self._md5.update(data)
        return data

    def drain(self, limit: int) -> None:
        """Read what the tar stream left (padding); BAD_DATA if more than limit bytes."""
        left = 0
        while True:
            data = self.read(CHUNK)
            if not data:
                return
            left += len(data)
            if left > limit:
                raise PluginError(BAD_DATA, "image", "has data after the end of its tar archive")

    def md5(self):
        return self._md5.hexdigest() if self._md5 is not None else None


def expected_md5(response):
    """The MD5 the service announced: ETag, else Content-MD5, else x-image-meta-checksum
    (0.3.4's order), as lower-case hex; None when it announced none."""
    for name in ("etag", "content-md5", "x-image-meta-checksum"):
        value = (response.getheader(name) or "").strip().strip('"').lower()
        if re.fullmatch(r"[0-9a-f]{32}", value):
            return value
        if name == "content-md5" and value:
            try:
                raw = base64.b64decode(response.getheader(name).strip(), validate=True)
            except (binascii.Error, ValueError):
                continue
            if len(raw) == 16:
                return binascii.hexlify(raw).decode("ascii")
    return None
