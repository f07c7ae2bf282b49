"""A drop-in for the official XenAPI SDK's ``XenAPI`` module, on os-xenapi's own transport.

Code written against the SDK (``import XenAPI``) runs unchanged with
``from os_xenapi.client import XenAPI``::

    session = XenAPI.Session("https://xapi.example", verify="sha256:AB:CD:...")
    session.xenapi.login_with_password("root", password, "2.21", "my-tool")
    vms = session.xenapi.VM.get_all_records()
    task = session.xenapi.Async.VM.start(vm, False, False)
    events = getattr(session.xenapi.event, "from")(["vm"], "", 30.0)
    session.xenapi.session.logout()

On top of the SDK it has what the SDK lacks: connect/read and login timeouts, verified TLS (or a
pinned fingerprint), a connection pool that several threads can share, ``unix://`` URLs, and
JSON-RPC on request (``protocol="jsonrpc"``; XML-RPC is the default so that values come back
exactly as the SDK returns them: API ints as ``str``, dates as ``xmlrpc.client.DateTime``).

Where it differs from the SDK, on purpose:

* On ``SESSION_INVALID`` it logs in again and repeats the call, up to 3 times as the SDK does
  (a new session can die too before the call reaches it); threads that hit the same dead
  session share the one new login instead of each making their own.
* A call made before logging in raises ``xmlrpc.client.Fault(401, 'You must log in')`` without
  sending anything (the SDK sends it with a ``None`` session first); a call still refused after
  the last new login raises the :class:`~os_xenapi.client.exception.SessionInvalid` failure.
* ``session.xenapi.session.login_with_password(...)`` logs in too (the SDK sends it as a normal
  call with the ``None`` session prepended, which XAPI rejects).
* Connection problems raise :class:`~os_xenapi.client.exception.TransportError` subclasses,
  which are ``OSError``s as the socket errors the SDK lets through are (``ConnectionError``,
  ``TimeoutError`` with their errno; the SDK turns ``ETIMEDOUT`` at login into
  ``Fault(504)``); nothing is resent after a dropped connection.
* ``encoding``, ``verbose`` and ``allow_none`` are accepted and ignored (UTF-8, quiet, None
  allowed); ``transport`` must be an os-xenapi :class:`~os_xenapi.client.transport.Transport`,
  or a :class:`UDSTransport` with the SDK's ``http://_var_lib_xcp_xapi/`` style of URL (the
  socket path with ``/`` written ``_``), which becomes a transport over that Unix socket.
* Leaving a ``with Session(...)`` block logs out, then closes the connections.

:class:`UDSHTTPConnection` and :class:`UDSTransport` are the SDK's (and os-xenapi 0.3.4's)
HTTP over a Unix socket for ``xmlrpc.client``, written for Python 3 (0.3.4's ``send_request``
had Python 2's signature). :func:`xapi_local` finds dom0's socket at ``/var/lib/xcp/xapi`` or,
on older XenServers, ``/var/xapi/xapi``.
"""

from __future__ import annotations

import http.client
import socket
import threading
import xmlrpc.client
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .exception import Failure, SessionInvalid
from .transport import DEFAULT_LOGIN_TIMEOUT, DEFAULT_TIMEOUT, MAX_REPLY_SIZE, Timeout, Transport

__all__ = ["API_VERSION_1_1", "API_VERSION_1_2", "Failure", "Session", "UDSHTTPConnection",
           "UDSTransport", "xapi_local"]

API_VERSION_1_1 = "1.1"
API_VERSION_1_2 = "1.2"

_LOGOUTS = ("logout", "session.logout", "session.local_logout")
RELOGINS = 3  # new logins after SESSION_INVALID in one call, as the official SDK makes


class UDSHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a Unix socket: the host names the socket's path with ``/`` written
    ``_`` (``_var_lib_xcp_xapi``), as in the official SDK."""

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if isinstance(self.timeout, int | float):  # else http.client's "default" marker
                sock.settimeout(self.timeout)
            sock.connect(self.host.replace("_", "/"))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class UDSTransport(xmlrpc.client.Transport):
    """An ``xmlrpc.client`` transport over a Unix socket, for
    ``ServerProxy("http://_var_lib_xcp_xapi/", transport=UDSTransport())``; headers given to
    ``add_extra_header`` go with every request. Given to :class:`Session`, it stands for
    os-xenapi's own transport over that socket (which sends no extra headers)."""

    def add_extra_header(self, key: str, value: str) -> None:
        self._extra_headers = [*self._extra_headers, (key, value)]

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        # One kept-alive connection per host, as the base class keeps; no get_host_info(), which
        # would reset the extra headers.
        if self._connection and host == self._connection[0]:
            return self._connection[1]
        self._connection = host, UDSHTTPConnection(host)
        return self._connection[1]


def _uds_url(uri: str) -> str:
    """``unix:///var/lib/xcp/xapi`` for the SDK's ``http://_var_lib_xcp_xapi/``."""
    netloc = urlsplit(uri).netloc
    if not netloc.startswith("_"):
        raise ValueError(f"with a UDSTransport the URL names the socket path with '/' written "
                         f"'_', as http://_var_lib_xcp_xapi/, not {uri!r}")
    return "unix://" + netloc.replace("_", "/")


class Session:
    """A XAPI session with the official SDK's interface (``session.xenapi.<Class>.<method>``).

    ``uri`` is ``http(s)://host[:port]`` or ``unix:///path`` (``unix://local`` in dom0). Keyword
    options beyond the SDK's: ``protocol`` (``"xmlrpc"``, ``"jsonrpc"`` or ``"auto"``), ``verify``
    (see :class:`~os_xenapi.client.transport.Transport`; ``ignore_ssl=True`` means False),
    ``timeout``, ``login_timeout``, ``maxsize`` (connections kept for concurrent threads) and
    ``max_reply_size`` (bytes of the longest reply accepted, 256 MiB by default) set up the
    transport the session makes; a ``transport`` given keeps its own.
    """

    def __init__(
        self,
        uri: str,
        transport: Transport | None = None,
        encoding: str | None = None,
        verbose: bool = False,
        allow_none: bool = True,
        ignore_ssl: bool = False,
        *,
        protocol: str = "xmlrpc",
        verify: Any = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        login_timeout: Timeout = DEFAULT_LOGIN_TIMEOUT,
        maxsize: int = 5,
        max_reply_size: int = MAX_REPLY_SIZE,
    ) -> None:
        if isinstance(transport, UDSTransport):
            uri, transport = _uds_url(uri), None
        if transport is None:
            if verify is None:
                verify = not ignore_ssl
            transport = Transport(uri, verify=verify, protocol=protocol, timeout=timeout,
                                  login_timeout=login_timeout, maxsize=maxsize,
                                  datetime_type=xmlrpc.client.DateTime,
                                  max_reply_size=max_reply_size)
        elif not isinstance(transport, Transport):
            raise TypeError(
                "transport must be an os_xenapi.client.transport.Transport or a "
                "XenAPI.UDSTransport (for the dom0 socket use xapi_local() or a unix:// URL)"
            )
        self.transport = transport
        self._session: str | None = None
        self.last_login_method: str | None = None
        self.last_login_params: tuple[Any, ...] | None = None
        self._API_version: str | None = API_VERSION_1_1
        self._lock = threading.Lock()

    # -- the SDK's interface ------------------------------------------------------------------

    @property
    def handle(self) -> str | None:
        """The session ref, or None when not logged in."""
        return self._session

    @property
    def xenapi(self) -> _Dispatcher:
        """``session.xenapi.VM.get_record(ref)``: the session ref is added as first parameter."""
        return _Dispatcher(self.xenapi_request, None)

    @property
    def API_version(self) -> str:
        """The master's API version, ``"major.minor"`` (asked once per login)."""
        if not self._API_version:
            xenapi = self.xenapi
            pool = xenapi.pool.get_all()[0]
            master = xenapi.pool.get_master(pool)
            major = xenapi.host.get_API_version_major(master)
            minor = xenapi.host.get_API_version_minor(master)
            self._API_version = f"{major}.{minor}"
        return self._API_version

    def xenapi_request(self, methodname: str, params: tuple[Any, ...]) -> Any:
        """Send ``methodname`` with the session prepended; log in or out for those methods."""
        if methodname.startswith(("login", "slave_local", "session.login",
                                  "session.slave_local")):
            self._login(methodname.removeprefix("session."), tuple(params))
            return None
        if methodname in _LOGOUTS:
            self._logout()
            return None
        used = self._session
        if used is None:
            raise xmlrpc.client.Fault(401, "You must log in")
        for _ in range(RELOGINS):
            try:
                return self.transport.call(methodname, (used, *params))
            except SessionInvalid:
                used = self._login_again(used)  # the new session may die too: up to RELOGINS
        return self.transport.call(methodname, (used, *params))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if name.startswith(("login", "slave_local")):
            return lambda *params: self._login(name, params)
        if name == "logout":
            return _Dispatcher(self.xenapi_request, "logout")
        # As the SDK's ServerProxy: a raw call, no session added, the {Status, ...} struct back.
        return _Dispatcher(self._raw_request, name)

    def __call__(self, attr: str) -> Any:
        """``session("close")()`` and ``session("transport")``, as on the SDK's ServerProxy."""
        if attr == "close":
            return self.close
        if attr == "transport":
            return self.transport
        raise AttributeError(f"Attribute {attr!r} not found")

    def __repr__(self) -> str:
        state = "logged in" if self._session else "not logged in"
        return f"<XenAPI.Session {self.transport.url} {state}>"

    # -- life cycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections (without logging out)."""
        self.transport.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._session is not None:
                self._logout()
        finally:
            self.close()

    # -- internals ----------------------------------------------------------------------------

    def _login(self, method: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            self._session = self.transport.call(f"session.{method}", params)
            self.last_login_method = method
            self.last_login_params = params
            self._API_version = None

    def _login_again(self, dead: str) -> str:
        """A valid session after ``dead`` was refused: one new login, shared by all threads."""
        with self._lock:
            if self._session is not None and self._session != dead:
                return self._session  # another thread has logged in again already
            if not self.last_login_method or self.last_login_params is None:
                raise xmlrpc.client.Fault(401, "You must log in")
            self._session = self.transport.call(f"session.{self.last_login_method}",
                                                self.last_login_params)
            return self._session

    def _logout(self) -> None:
        with self._lock:
            session, method = self._session, self.last_login_method
            self._session = None
            self.last_login_method = None
            self.last_login_params = None
            self._API_version = API_VERSION_1_1
        if session is None or method is None:
            return
        logout = "session.local_logout" if method.startswith("slave_local") else "session.logout"
        self.transport.call(logout, (session,))

    def _raw_request(self, methodname: str, params: tuple[Any, ...]) -> dict[str, Any]:
        ok, value = self.transport.request(methodname, params)
        if ok:
            return {"Status": "Success", "Value": value}
        return {"Status": "Failure", "ErrorDescription": value}


class _Dispatcher:
    """Builds dotted method names attribute by attribute: ``xenapi.Async.VM.start``."""

    def __init__(self, send: Callable[[str, tuple[Any, ...]], Any], name: str | None) -> None:
        self.__send = send
        self.__name = name

    def __repr__(self) -> str:
        return f"<XenAPI._Dispatcher for {self.__name}>" if self.__name else "<XenAPI._Dispatcher>"

    def __getattr__(self, name: str) -> _Dispatcher:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Dispatcher(self.__send, name if self.__name is None else f"{self.__name}.{name}")

    def __call__(self, *args: Any) -> Any:
        if self.__name is None:
            raise TypeError("call a XAPI method, e.g. session.xenapi.VM.get_all()")
        return self.__send(self.__name, args)


def xapi_local(**options: Any) -> Session:
    """A session over dom0's local Unix socket: ``/var/lib/xcp/xapi``, or ``/var/xapi/xapi``
    where only that one exists (older XenServers, and os-xenapi 0.3.4's choice)."""
    return Session("unix://local", **options)
