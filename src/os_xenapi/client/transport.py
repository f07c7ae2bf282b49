"""One XAPI host at the HTTP level: a kept-alive urllib3 pool that any number of threads share.

    transport = Transport("https://xapi.example:443", verify="sha256:AB:CD:...", maxsize=8)
    ref = transport.call("session.login_with_password", ["root", password, "2.21", "me"])
    vms = transport.call("VM.get_all_records", [ref], timeout=Timeout(read=30))

URLs: ``http://host[:port]``, ``https://host[:port]`` (IPv6 literals in brackets) and
``unix:///path`` for HTTP over XAPI's Unix socket in dom0 (``unix://local`` is
``/var/lib/xcp/xapi``). ``url`` is the canonical form (``https://host:443``); error texts name the
URL as the caller gave it (``given_url``), which can hold no password: one is refused. TLS is verified by default against the system store; ``verify`` may
instead name a CA bundle, pin the certificate's SHA-256 fingerprint (``"sha256:AB:CD:..."``, what
XAPI's self-signed certificates need), be an ``ssl.SSLContext``, or be False (then one warning
names the host).

``protocol="auto"`` sends the first call as JSON-RPC (``POST /jsonrpc``) and keeps using it if the
host answers in JSON. It switches to XML-RPC (``POST /``) for good, and resends that call, when
the host shows it does not serve JSON-RPC: HTTP 404, 405 or 501; an XML document in answer
(an XML-RPC server that tried to read the JSON); or HTTP 500 whose body comes from an XML-RPC
parser (``Xmlrpc...``; an old XAPI routes every unknown path to its XML-RPC handler). Resending is
safe because the host did not run the JSON request. Any other answer is reported, not guessed at.
``"jsonrpc"`` and ``"xmlrpc"`` force one protocol.

Failures come back as the typed exceptions of :mod:`os_xenapi.client.exception`. Errors at the
connection level say whether the request may have reached XAPI (``may_have_executed``): the
connections of this pool record when the request's bytes have gone out, so a refused or timed-out
connection or a failed TLS handshake is known not to have been sent. Nothing here retries; that
policy belongs to the session. Logs name the method only: never its parameters, so never a
session ref or a password.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import SSLError as Urllib3SSLError

from . import exception, wire
from .connection import (  # noqa: F401 - InsecureTransportWarning and friends are public here
    LOCAL_SOCKET,
    Endpoint,
    InsecureTransportWarning,
    make_pool,
    parse_url,
    progress,
    shown_url,
)
from .deadline import Deadline

LOG = logging.getLogger(__name__)

PROTOCOLS = ("auto", "jsonrpc", "xmlrpc")
LOGIN_METHODS = ("session.login_with_password", "session.slave_local_login_with_password",
                 "session.login", "session.slave_local_login", "session.slave_login")
_USER_AGENT = "os-xenapi"
_XML_HEADERS = {"Content-Type": "text/xml", "User-Agent": _USER_AGENT}
_JSON_HEADERS = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
_OPAQUE_REF = re.compile(r"OpaqueRef:[0-9a-zA-Z-]+")
LONG_POLL_MAX = 86400.0  # seconds of event.from wait added to its read timeout, at most
MAX_REPLY_SIZE = 256 << 20  # bytes of one reply's body; a VM.get_all_records of 5,000 VMs is ~60 MB
_READ_CHUNK = 1 << 20  # bytes read at a time from a body whose size is not known up front


@dataclass(frozen=True)
class Timeout:
    """Seconds to wait for a connection and then for the answer; None waits for ever.

    ``connect`` bounds making a TCP (or Unix) connection. ``read`` bounds the rest of the call as
    a whole: TLS handshake, request and every byte of the reply, from the moment the connection
    is made (or a kept-alive one is taken up), not just each wait for data. An ``event.from``
    gets its own timeout argument on top.
    """

    connect: float | None = 10.0
    read: float | None = 600.0
    _urllib3: urllib3.Timeout = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("connect", "read"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise ValueError(f"Timeout.{name} must be a positive number or None, not {value!r}")
        object.__setattr__(self, "_urllib3", urllib3.Timeout(connect=self.connect, read=self.read))

    def plus(self, seconds: float) -> Timeout:
        """This timeout with ``seconds`` more to read in (itself for 0 or ``read=None``)."""
        if not seconds or self.read is None:
            return self
        return Timeout(connect=self.connect, read=self.read + seconds)


DEFAULT_TIMEOUT = Timeout()
DEFAULT_LOGIN_TIMEOUT = Timeout(connect=10.0, read=60.0)

# --------------------------------------------------------------------------- the transport


class Transport:
    """Calls to one XAPI host over a kept-alive, thread-safe connection pool.

    ``maxsize`` is how many connections are kept (match it to the number of threads that call
    at once; more threads still work, with connections opened for the occasion). ``timeout`` is
    the default for every call, ``login_timeout`` the one for the ``session.login*`` calls.
    ``datetime_type``, if given, is applied to the text of XML-RPC ``dateTime.iso8601`` values
    (``xmlrpc.client.DateTime`` gives what the official SDK gives); JSON-RPC sends dates as text.
    ``json_int_type`` decodes JSON-RPC's integers (``str`` gives them as XML-RPC does), except in
    the reply to a login.
    ``max_reply_size`` is the most bytes of one reply's body kept in memory: a longer reply is
    refused with a ProtocolError, after reading no more than that.
    """

    def __init__(
        self,
        url: str,
        *,
        verify: bool | str | ssl.SSLContext = True,
        protocol: str = "auto",
        timeout: Timeout = DEFAULT_TIMEOUT,
        login_timeout: Timeout = DEFAULT_LOGIN_TIMEOUT,
        maxsize: int = 5,
        datetime_type: Callable[[str], Any] | None = None,
        max_reply_size: int = MAX_REPLY_SIZE,
        json_int_type: Callable[[str], Any] = int,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        if not isinstance(timeout, Timeout) or not isinstance(login_timeout, Timeout):
            raise TypeError("timeout and login_timeout must be transport.Timeout values")
        if not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be a positive int, not {maxsize!r}")
        if type(max_reply_size) is not int or max_reply_size < 1:
            raise ValueError(f"max_reply_size must be a whole number of bytes >= 1, "
                             f"not {max_reply_size!r}")
        self.endpoint = parse_url(url)
        self.url = self.endpoint.url
        self.given_url = shown_url(url)
        self.timeout = timeout
        self.login_timeout = login_timeout
        self.maxsize = maxsize
        self.max_reply_size = max_reply_size
        self._verify = verify
        self._datetime_type = datetime_type
        self._json_int_type = json_int_type
        self._requested = protocol
        self._protocol = None if protocol == "auto" else protocol
        self._ids = itertools.count(1)
        self._pool = make_pool(self.endpoint, verify, maxsize)

    @property
    def protocol(self) -> str | None:
        """``"jsonrpc"`` or ``"xmlrpc"`` once known; None while ``auto`` has not decided."""
        return self._protocol

    def for_host(self, address: str) -> Transport:
        """A new transport to another host of the pool (e.g. the master), same options."""
        if self.endpoint.scheme == "unix":
            raise ValueError("a Unix-socket transport reaches only its own host")
        host = f"[{address}]" if ":" in address and not address.startswith("[") else address
        return Transport(f"{self.endpoint.scheme}://{host}:{self.endpoint.port}",
                         verify=self._verify, protocol=self._requested, timeout=self.timeout,
                         login_timeout=self.login_timeout, maxsize=self.maxsize,
                         datetime_type=self._datetime_type, max_reply_size=self.max_reply_size,
                         json_int_type=self._json_int_type)

    def tls(self) -> tuple[ssl.SSLContext | None, str | None]:
        """(SSL context, pinned SHA-256 fingerprint or None) that HTTPS uses here, for other
        connections to the same host (VDI transfers); (None, None) for http and unix."""
        if self.endpoint.scheme != "https":
            return None, None
        pool: Any = self._pool
        return pool.conn_kw.get("ssl_context"), pool.assert_fingerprint

    def __repr__(self) -> str:
        return f"<Transport {self.url} {self._protocol or 'auto'}>"

    def close(self) -> None:
        """Close every pooled connection (calls made afterwards open new ones)."""
        self._pool.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls --------------------------------------------------------------------------------

    def call(self, method: str, params: list[Any] | tuple[Any, ...], *,
             timeout: Timeout | None = None) -> Any:
        """Call ``method`` and return its value; raises a Failure subclass if XAPI refuses it,
        a TransportError if no usable answer comes back."""
        ok, value = self.request(method, params, timeout=timeout)
        if ok:
            if method in LOGIN_METHODS and (not isinstance(value, str) or not value):
                raise exception.ProtocolError(
                    f"{self.given_url} answered {method} with a {type(value).__name__}, not a session "
                    "reference", url=self.url, method=method)
            return value
        raise exception.failure_from_details(value, _secrets(method, params))

    def request(self, method: str, params: list[Any] | tuple[Any, ...], *,
                timeout: Timeout | None = None) -> wire.Reply:
        """Call ``method`` and return the :class:`~os_xenapi.client.wire.Reply`, success or not."""
        if timeout is None:
            timeout = self.login_timeout if method in LOGIN_METHODS else self.timeout
        timeout = timeout.plus(_long_poll(method, params))
        LOG.debug("XAPI call %s to %s", method, self.url)
        deadline = Deadline(timeout.read) if timeout.read is not None else None
        try:
            return self._request(method, params, timeout, deadline)
        finally:
            if deadline is not None:
                deadline.cancel()

    def _request(self, method: str, params: Any, timeout: Timeout,
                 deadline: Deadline | None) -> wire.Reply:
        protocol = self._protocol
        if protocol == "xmlrpc":
            return self._xmlrpc(method, params, timeout, deadline)
        request_id = next(self._ids)
        body = wire.encode_jsonrpc_call(method, params, request_id)
        status, headers, data = self._post("/jsonrpc", body, _JSON_HEADERS, timeout, deadline,
                                           method)
        if protocol is None:
            if _jsonrpc_not_served(status, headers, data):
                LOG.info("%s does not serve JSON-RPC (HTTP %s); using XML-RPC", self.url, status)
                self._protocol = "xmlrpc"
                return self._xmlrpc(method, params, timeout, deadline)
            if status == 200:
                self._protocol = "jsonrpc"
        if status != 200:
            raise self._status_error(status, data, method)
        # A login's result must be a string on the wire itself: an int decoded as text would
        # pass for a session ref.
        int_type = int if method in LOGIN_METHODS else self._json_int_type
        return wire.decode_jsonrpc_response(data, request_id, int_type=int_type)

    def _xmlrpc(self, method: str, params: Any, timeout: Timeout,
                deadline: Deadline | None) -> wire.Reply:
        body = wire.encode_xmlrpc_call(method, params)
        status, _headers, data = self._post("/", body, _XML_HEADERS, timeout, deadline, method)
        if status != 200:
            raise self._status_error(status, data, method)
        return wire.decode_xmlrpc_response(data, datetime_type=self._datetime_type)

    def _post(self, path: str, body: bytes, headers: dict[str, str], timeout: Timeout,
              deadline: Deadline | None, method: str) -> tuple[int, Any, bytes]:
        """POST ``body``; (status, headers, whole body). The deadline's watchdog may shut the
        socket down meanwhile; the connection goes back to the pool only if it did not."""
        progress.sent = False
        progress.deadline = deadline
        response = None
        try:
            try:
                response = self._pool.urlopen(
                    "POST", path, body=body, headers=headers, timeout=timeout._urllib3,
                    retries=False, redirect=False, assert_same_host=False,
                    preload_content=False, release_conn=False,
                )
                data = self._read_body(response, method)
            finally:
                progress.deadline = None
                if deadline is not None:
                    deadline.unwatch()  # before the connection can be lent to another call
        except exception.ProtocolError:
            _drop(response)  # the rest of the body is still on the wire
            raise
        except (Urllib3Error, OSError) as exc:
            _drop(response)
            raise self._transport_error(exc, method, timeout, deadline) from exc
        if deadline is not None and deadline.expired:
            _drop(response)  # what was read may end where the socket was shut down
            raise self._transport_error(TimeoutError(), method, timeout, deadline)
        response.release_conn()
        return response.status, response.headers, data

    def _read_body(self, response: Any, method: str) -> bytes:
        """The whole body of ``response``, or ProtocolError as soon as it is known to be longer
        than ``max_reply_size``: at once from Content-Length, else by counting what arrives."""
        limit = self.max_reply_size
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # XAPI never compresses a reply, and a decoder may inflate far past the limit
            # before a count could stop it.
            raise exception.ProtocolError(
                f"the reply of {self.given_url} to {method} is compressed (Content-Encoding: "
                f"{encoding}); XAPI sends replies uncompressed, and this one was refused",
                url=self.url, method=method)
        declared = response.length_remaining
        if declared is not None and declared > limit:
            raise self._too_long(method, f"it announced {declared} bytes")
        if declared is not None:
            return response.read()  # http.client reads no more than Content-Length
        chunks = []
        total = 0
        while True:
            chunk = response.read(min(_READ_CHUNK, limit + 1 - total))
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > limit:
                raise self._too_long(method, f"more than {limit} bytes arrived")
            chunks.append(chunk)

    def _too_long(self, method: str, what: str) -> exception.ProtocolError:
        return exception.ProtocolError(
            f"the reply of {self.given_url} to {method} is longer than max_reply_size "
            f"({_size(self.max_reply_size)}): {what}; it was refused and the connection closed",
            url=self.url, method=method)

    # -- errors -------------------------------------------------------------------------------

    def _transport_error(self, exc: Exception, method: str, timeout: Timeout,
                         deadline: Deadline | None = None) -> exception.TransportError:
        sent = getattr(progress, "sent", True)
        where = {"url": self.url, "method": method}
        if deadline is not None and deadline.expired:
            if not sent:
                return exception.ConnectTimeout(
                    f"the connection to {self.given_url} was not ready within {deadline.seconds:g} s; "
                    f"{method} was not sent", **where)
            return exception.ReadTimeout(
                f"no complete answer from {self.given_url} to {method} within {deadline.seconds:g} s; "
                "XAPI may still be running it", **where)
        if isinstance(exc, Urllib3SSLError) and not sent:
            return exception.TLSError(
                f"TLS with {self.given_url} failed before {method} was sent: {_cause(exc)}. "
                "Give the host's CA with verify='/path/ca.pem', or pin its certificate with "
                "verify='sha256:<fingerprint>'", **where)
        if isinstance(exc, NameResolutionError):
            return exception.RequestNotSent(
                f"cannot resolve the host name of {self.given_url}: {_cause(exc)}", **where)
        refusal = _refusal(exc)
        if refusal is not None and (not sent or isinstance(exc, NewConnectionError)):
            missing = f" (no socket at {self.endpoint.path})" if refusal is FileNotFoundError else ""
            return exception.ConnectionRefused(
                f"cannot connect to {self.given_url}: connection refused{missing}; {method} was not sent",
                **where)
        if isinstance(exc, NewConnectionError):
            return exception.RequestNotSent(
                f"cannot connect to {self.given_url} for {method}: {_cause(exc)}", **where)
        if isinstance(exc, ConnectTimeoutError | ReadTimeoutError) and not sent:
            # urllib3 reports a TLS handshake that times out as a read timeout.
            return exception.ConnectTimeout(
                f"no connection to {self.given_url} within {timeout.connect} s for {method}", **where)
        if isinstance(exc, ReadTimeoutError):
            return exception.ReadTimeout(
                f"no answer from {self.given_url} to {method} within {timeout.read} s; "
                "XAPI may still be running it", **where)
        if not sent:
            return exception.RequestNotSent(
                f"{method} could not be sent to {self.given_url}: {_cause(exc)}", **where)
        return exception.ConnectionLost(
            f"the connection to {self.given_url} broke during {method} ({_cause(exc)}); "
            "XAPI may have run it", **where)

    def _status_error(self, status: int, data: bytes, method: str) -> exception.HTTPStatusError:
        text = f"{self.given_url} answered HTTP {status} to {method}"
        if method not in LOGIN_METHODS:  # a parse error could echo the password back
            excerpt = _excerpt(data)
            if excerpt:
                text += f": {excerpt}"
        return exception.HTTPStatusError(text, status=status, url=self.url, method=method)


def _drop(response: Any) -> None:
    """Close ``response``'s connection (never to be reused) and give the empty slot back."""
    if response is not None:
        response.close()
        response.release_conn()


def _long_poll(method: str, params: Any) -> float:
    """Seconds ``event.from`` may wait for events before it answers (its own timeout argument),
    which its call must be given beyond the ordinary read timeout; 0 for any other call."""
    if method != "event.from" or len(params) < 4:
        return 0.0
    wait = params[3]
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait):
        return 0.0
    return min(max(float(wait), 0.0), LONG_POLL_MAX)


def _jsonrpc_not_served(status: int, headers: Any, data: bytes) -> bool:
    """Whether the answer to a JSON-RPC request shows the host serves only XML-RPC."""
    if status in (404, 405, 501):
        return True
    starts_xml = data.lstrip()[:1] == b"<"
    if status == 200:
        return starts_xml and "json" not in headers.get("Content-Type", "")
    return status == 500 and (b"Xmlrpc" in data[:2048] or b"<methodResponse" in data[:2048])


def _secrets(method: str, params: Any) -> tuple[str, ...]:
    """What a Failure of this call must not show: the session ref, or the password at login."""
    if method in LOGIN_METHODS:
        return (params[1],) if len(params) > 1 and isinstance(params[1], str) else ()
    if params and isinstance(params[0], str) and params[0].startswith("OpaqueRef:"):
        return (params[0],)
    return ()


def _refusal(exc: BaseException) -> type[OSError] | None:
    """ConnectionRefusedError or FileNotFoundError (a Unix socket that is not there) if one of
    them caused ``exc``; else None."""
    seen: BaseException | None = exc
    for _ in range(5):  # follow a short chain of causes
        if seen is None:
            return None
        for kind in (ConnectionRefusedError, FileNotFoundError):
            if isinstance(seen, kind):
                return kind
        seen = seen.__cause__ or seen.__context__
    return None


def _cause(exc: BaseException) -> str:
    """The innermost useful message of an urllib3 error, without urllib3's object reprs."""
    inner: BaseException = exc
    for _ in range(5):
        nxt = inner.__cause__ or inner.__context__
        if nxt is None:
            break
        inner = nxt
    if isinstance(inner, Urllib3Error) and inner.args:
        reason = inner.args[-1]
        if isinstance(reason, BaseException):
            inner = reason
    text = str(inner) or type(inner).__name__
    return _OPAQUE_REF.sub("OpaqueRef:<redacted>", text)[:300]


def _size(count: int) -> str:
    """``count`` bytes for a person: ``256 MiB`` where that is exact, else the bytes."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift and count % (1 << shift) == 0:
            return f"{count >> shift} {unit}"
    return f"{count} bytes"


def _excerpt(data: bytes) -> str:
    """A short, tag-free, ref-free extract of an error page."""
    text = data[:600].decode("utf-8", "replace")
    text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    return _OPAQUE_REF.sub("OpaqueRef:<redacted>", text)[:200]
