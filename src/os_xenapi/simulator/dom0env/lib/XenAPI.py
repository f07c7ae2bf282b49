"""XenAPI for code that runs in the simulator's dom0: the module dom0 plugins import.

A real dom0 has the XenAPI module of xapi's Python bindings installed; plugins use it as
``XenAPIPlugin.dispatch`` hands it to them (``xapi_local()`` with the caller's session) or log in
themselves. This one offers the same surface, written for the simulator and for Python 3.6 with
the standard library only (dom0's Python):

* ``Session(uri, transport=None, encoding=None, verbose=False, allow_none=True,
  ignore_ssl=False)``: XML-RPC to XAPI; ``session.xenapi.VM.get_record(ref)`` sends
  ``VM.get_record(session_ref, ref)``; ``session.xenapi.login_with_password(user, pw, version,
  originator)`` logs in; ``session.xenapi.session.logout()`` or ``session.logout()`` logs out.
* ``Failure``: raised when XAPI answers ``Failure``; ``details`` is ``[code, param, ...]``.
* ``xapi_local()``: a Session over dom0's Unix socket. In the simulator the socket's path is in
  ``XAPI_SIM_SOCKET`` (XAPI's ``/var/lib/xcp/xapi`` when unset), so it reaches the simulator
  that started the plugin.

Like the official module, a Session that logged in with a password logs in again and retries
when XAPI answers ``SESSION_INVALID`` (at most three times).
"""

import http.client
import os
import socket
import ssl
import xmlrpc.client

DEFAULT_LOCAL_SOCKET = "/var/lib/xcp/xapi"
LOCAL_SOCKET_ENV = "XAPI_SIM_SOCKET"
API_VERSION_1_1 = "1.1"
API_VERSION_1_2 = "1.2"
_RELOGIN_TRIES = 3


class Failure(Exception):
    """A XAPI error answer; ``details`` is its ErrorDescription, ``[code, param, ...]``."""

    def __init__(self, details):
        Exception.__init__(self, details)
        self.details = list(details)

    def __str__(self):
        return "XenAPI failure: " + repr(self.details)


def local_socket_path():
    """Where dom0's XAPI socket is: ``$XAPI_SIM_SOCKET``, else XAPI's own path."""
    return os.environ.get(LOCAL_SOCKET_ENV) or DEFAULT_LOCAL_SOCKET


class UDSHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix domain socket; the host name only fills the Host header."""

    def __init__(self, path, timeout=None):
        http.client.HTTPConnection.__init__(self, "localhost")
        self.socket_path = path
        self.socket_timeout = timeout

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.socket_timeout is not None:
            sock.settimeout(self.socket_timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class UDSTransport(xmlrpc.client.Transport):
    """An XML-RPC transport to XAPI's Unix socket at ``path`` (default: the local socket)."""

    def __init__(self, path=None, use_datetime=False):
        xmlrpc.client.Transport.__init__(self, use_datetime=use_datetime)
        self.socket_path = path or local_socket_path()

    def make_connection(self, host):
        if self._connection and self._connection[0] == host:
            return self._connection[1]
        self._connection = host, UDSHTTPConnection(self.socket_path)
        return self._connection[1]


class _Call:
    """``session.xenapi.X.y``: builds the dotted name, sends it when called."""

    def __init__(self, send, name):
        self._send = send
        self._name = name

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Call(self._send, name if self._name is None else self._name + "." + name)

    def __call__(self, *args):
        return self._send(self._name, args)

    def __repr__(self):
        return f"<XenAPI method {self._name}>"


class Session:
    """A XAPI session over XML-RPC; the ``xenapi`` attribute makes API calls."""

    def __init__(self, uri, transport=None, encoding=None, verbose=False,
                 allow_none=True, ignore_ssl=False):
        if transport is None and uri.startswith("https") and ignore_ssl:
            transport = xmlrpc.client.SafeTransport(context=ssl._create_unverified_context())
        self._proxy = xmlrpc.client.ServerProxy(
            uri, transport=transport, encoding=encoding, verbose=verbose, allow_none=allow_none
        )
        self._session = None
        self._credentials = None
        self.last_login_method = None
        self.last_login_params = None
        self.API_version = API_VERSION_1_1

    @property
    def handle(self):
        """The session ref, or None before login."""
        return self._session

    @property
    def xenapi(self):
        return _Call(self._xenapi_call, None)

    def __getattr__(self, name):
        if name in ("login_with_password", "slave_local_login_with_password"):
            return lambda *params: self._login(name, params)
        if name == "logout":
            return self._logout
        if name.startswith("_"):
            raise AttributeError(name)
        return _Call(self._raw_call, name)

    def __call__(self, attr):
        """``session("close")()`` closes the connection, as with ServerProxy."""
        if attr == "close":
            return self._proxy("close")
        if attr == "transport":
            return self._proxy("transport")
        raise AttributeError(f"Attribute {attr!r} not found")

    def xenapi_request(self, methodname, params):
        """Call ``methodname`` with this session's ref before ``params``; returns the Value."""
        return self._xenapi_call(methodname, tuple(params))

    def _raw_call(self, method, params):
        return getattr(self._proxy, method)(*params)

    def _xenapi_call(self, method, params):
        if method in ("login_with_password", "slave_local_login_with_password",
                      "session.login_with_password", "session.slave_local_login_with_password"):
            return self._login(method.split(".")[-1], params)
        if method in ("logout", "session.logout"):
            return self._logout()
        for attempt in range(_RELOGIN_TRIES):
            try:
                return _result(self._raw_call(method, (self._session,) + tuple(params)))
            except Failure as failure:
                relogin = (failure.details[0] == "SESSION_INVALID" and self._credentials
                           and attempt + 1 < _RELOGIN_TRIES)
                if not relogin:
                    raise
                self._login(*self._credentials)
        raise AssertionError("unreachable")

    def _login(self, method, params):
        self._session = _result(self._raw_call("session." + method, tuple(params)))
        self._credentials = (method, tuple(params))
        self.last_login_method = method
        self.last_login_params = params
        self.API_version = self._api_version()
        return self._session

    def _logout(self):
        try:
            if self._session is not None:
                _result(self._raw_call("session.logout", (self._session,)))
        finally:
            self._session = None
            self._credentials = None
        return ""

    def _api_version(self):
        pools = self.xenapi.pool.get_all()
        host = self.xenapi.pool.get_master(pools[0])
        major = self.xenapi.host.get_API_version_major(host)
        minor = self.xenapi.host.get_API_version_minor(host)
        return f"{major}.{minor}"


def _result(reply):
    """The Value of a XAPI reply; raises Failure for a Failure or a reply with no Status."""
    if not isinstance(reply, dict) or "Status" not in reply:
        raise Failure(["INTERNAL_ERROR", f"Missing Status in response from server: {reply!r}"])
    if reply["Status"] == "Success":
        return reply.get("Value", "")
    if "ErrorDescription" in reply:
        raise Failure(reply["ErrorDescription"])
    raise Failure(["INTERNAL_ERROR", f"Failure without ErrorDescription: {reply!r}"])


def xapi_local():
    """A Session over dom0's Unix socket (``$XAPI_SIM_SOCKET`` in the simulator)."""
    return Session("http://_var_lib_xcp_xapi/", transport=UDSTransport())
