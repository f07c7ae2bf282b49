"""``XenAPISession``: one XAPI pool for a whole program, safe with many threads and under failure.

    with XenAPISession("https://xapi.example", "root", password,
                       verify="sha256:AB:CD:...", concurrent=8) as session:
        vm = session.VM.get_by_name_label("web-1")[0]
        session.call_xenapi("VM.clean_shutdown", vm)
        free = session.call_plugin_serialized("xenhost", "host_data")

It keeps os-xenapi 0.3.4's constructor, attributes and methods (``call_xenapi``,
``call_plugin*``, ``get_rec``, ``custom_task``, ``http_connection``, ``session.VM``...) and
adds, underneath them:

* a pool of up to ``concurrent`` logged-in XAPI sessions (:mod:`.session_pool`), made as threads
  need them and given back whatever the call's outcome; ``close()`` logs them all out;
* the master (:mod:`.master`): ``HOST_IS_SLAVE`` is followed, at login or on any call, and when the
  master takes no connection the pool's hosts, known from the first connection, are asked where
  it went (a pool of one is asked again, as its XAPI may be restarting); before any connection
  was made the refusal is raised at once;
* ``SESSION_INVALID``: a new login in place of the dead session, and the call sent again on it,
  again if the new session dies too before the call reaches it, up to ``Retry.relogins`` times;
* retries where they are safe, as :class:`~os_xenapi.client.retry.Retry` says: reads after a
  broken connection, anything after ``TOO_MANY_PENDING_TASKS``. A call that changes state is never
  sent twice once its request may have reached XAPI: the error says it may have run.

Timeouts: ``timeout`` (0.3.4's, seconds) is the connect timeout of every call and the limit on
logging in (``login_timeout`` overrides that); replies to other calls may take up to
``READ_TIMEOUT`` seconds, as long VM operations need (``event.from`` gets its own wait on top).
Each limit bounds the whole reply, not each wait for bytes, so a host that trickles its answer
cannot hold a call past it. Pass a :class:`~os_xenapi.client.transport.Timeout` as ``timeout`` to
set both, or ``timeout=`` to a single ``call_xenapi``. Passwords and session refs never appear in logs, ``repr()`` or error text.

A reply longer than ``max_reply_size`` bytes (256 MiB by default) is refused with a
:class:`~os_xenapi.client.exception.ProtocolError` after reading no more than that.

Values come back in the types 0.3.4's XML-RPC gave them, whichever protocol is used: API ints as
``str``, datetimes as ``xmlrpc.client.DateTime`` (:mod:`.value_types`). ``native_types=True``
gives JSON-RPC's instead: ints as ``int``, datetimes as their ``YYYYMMDDTHH:MM:SSZ`` text.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import XenAPI, exception, objects
from .direct_http import open_connection
from .master import MAX_REDIRECTS, Credentials, Master
from .objects import apply_session_helpers  # noqa: F401 - 0.3.4's name here (Nova's fake uses it)
from .plugin_calls import PluginCalls
from .retry import DEFAULT_RETRY, Retry
from .session_pool import Counters, SessionPool, SessionStats
from .transport import MAX_REPLY_SIZE, Timeout, Transport
from .value_types import NATIVE_TYPES, XMLRPC_TYPES, ValueTypes

LOG = logging.getLogger(__name__)

READ_TIMEOUT = 600.0  # seconds for a reply to an ordinary call (a sync VM.start can take minutes)
POOL_WAIT = 3600.0  # seconds a call waits for one of the pool's sessions to be free
_PROXY_ERRORS = frozenset({502, 503, 504})


class XenAPISession(PluginCalls):
    """A connection to one XAPI pool; see the module docstring. Raises at construction what
    logging in or the plugin version check raised (and leaves no session behind)."""

    def __init__(
        self, url: str, user: str, pw: str, originator: str = "os-xenapi",
        timeout: float | Timeout = 10, concurrent: int = 5, *, protocol: str = "auto",
        verify: Any = True, retry: Retry = DEFAULT_RETRY,
        login_timeout: float | Timeout | None = None, plugin_version_check: bool = True,
        max_reply_size: int = MAX_REPLY_SIZE, native_types: bool = False,
    ) -> None:
        if not isinstance(native_types, bool):
            raise TypeError(f"native_types must be True or False, not {native_types!r}")
        if not isinstance(originator, str):
            raise TypeError(f"originator must be a str, not {type(originator).__name__}")
        if not isinstance(retry, Retry):
            raise TypeError("retry must be an os_xenapi.client.retry.Retry")
        if type(concurrent) is not int or concurrent < 1:
            raise ValueError(f"concurrent must be a whole number >= 1, not {concurrent!r}")
        self.XenAPI = XenAPI  # 0.3.4 callers catch session.XenAPI.Failure
        self.url = url
        self.originator = originator
        self.timeout = timeout
        self.concurrent = concurrent
        self.retry = retry
        self._call_timeout, self._login_timeout = _timeouts(timeout, login_timeout)
        self._counters = Counters()
        self._value_types = ValueTypes(NATIVE_TYPES if native_types else XMLRPC_TYPES)
        transport = Transport(url, verify=verify, protocol=protocol, timeout=self._call_timeout,
                              login_timeout=self._login_timeout, maxsize=concurrent,
                              max_reply_size=max_reply_size,
                              **self._value_types.transport_options())
        self._master = Master(transport, Credentials(user, pw), originator, self._counters)
        self._user = user
        self._pool = SessionPool(concurrent, self._master.login, self._master.logout,
                                 wait=POOL_WAIT, url=transport.given_url,
                                 on_drained=self._master.close)
        self.is_local_connection = transport.endpoint.scheme == "unix"
        self.plugin_version: str | None = None
        self._cached_xsm_sr_relaxed: bool | None = None
        # 0.3.4's flag for its callers: Nova's ensure_correct_host reads and sets it once it has
        # checked that it runs on the host this session manages.
        self.host_checked = False
        try:
            self._connect(transport, plugin_version_check)
        except BaseException:
            self.close()
            raise
        objects.apply_session_helpers(self)

    # -- what the caller sees -----------------------------------------------------------------

    @property
    def master_url(self) -> str:
        """The URL of the pool master in use now (it changes when the master moves)."""
        return self._master.url

    @property
    def protocol(self) -> str | None:
        """``"jsonrpc"`` or ``"xmlrpc"``, as the transport to the master settled on."""
        return self._master.transport.protocol

    @property
    def stats(self) -> SessionStats:
        """Counters of logins, re-logins, retries, redirects and failovers so far."""
        return self._counters.snapshot()

    @property
    def reconnects(self) -> int:
        """Re-logins plus master changes so far: event watchers re-sync when it moves."""
        stats = self._counters.snapshot()
        return stats.relogins + stats.master_changes

    @property
    def closed(self) -> bool:
        return self._pool.closed

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self._pool.count}/{self.concurrent} sessions"
        return (f"<XenAPISession {self.master_url} user={self._user!r} "
                f"originator={self.originator!r} {state}>")

    def __enter__(self) -> XenAPISession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Log out every session of the pool (those in use when they come back) and close the
        connections. Calls made afterwards raise SessionClosed."""
        if hasattr(self, "_pool"):
            self._pool.close()

    # -- calls ----------------------------------------------------------------------------------

    def call_xenapi(self, method: str, *args: Any, timeout: float | Timeout | None = None) -> Any:
        """Call XAPI ``method`` with ``args`` (the session ref is added); returns its value.

        ``timeout`` (seconds for the reply, or a Timeout) overrides the session's for this call.
        Raises the typed Failure XAPI answered, or a TransportError.
        """
        return self._call(method, args, self._timeout(timeout))

    def get_session_id(self) -> str:
        """The ref of one of the pool's sessions, for a console or HTTP handler URL (0.3.4).

        The session stays in the pool; do not log it out.
        """
        ref = self._pool.acquire()
        self._pool.release(ref)
        return ref

    def get_rec(self, record_type: str, ref: str) -> dict[str, Any] | None:
        """``<record_type>.get_record(ref)``, or None if the object is gone (HANDLE_INVALID)."""
        try:
            return self.call_xenapi(f"{record_type}.get_record", ref)
        except exception.HandleInvalid:
            return None

    def get_all_refs_and_recs(self, record_type: str) -> Any:
        """``(ref, record)`` pairs of every object of the class, from one ``get_all_records``."""
        return self.call_xenapi(f"{record_type}.get_all_records").items()

    @contextlib.contextmanager
    def custom_task(self, label: str, desc: str = "") -> Iterator[str]:
        """A task named ``<originator>-<label>`` for the block (HTTP transfers report on it);
        destroyed afterwards, whatever happens in the block."""
        task = self.call_xenapi("task.create", f"{self.originator}-{label}", desc)
        try:
            yield task
        finally:
            try:
                self.call_xenapi("task.destroy", task)
            except exception.HandleInvalid:
                pass  # already gone (destroyed by XAPI's GC or by the block)

    @contextlib.contextmanager
    def http_connection(self) -> Iterator[http.client.HTTPConnection]:
        """A connected ``http.client`` connection to the pool master for XAPI's HTTP handlers,
        with the session's TLS settings (verification or pinned fingerprint) and read timeout.

        Unlike 0.3.4 (the URL given), it goes to the master in use now, where the session is
        valid, and it also works for unix:// URLs. Closed when the block ends.
        """
        transport = self._master.transport
        context, fingerprint = transport.tls()
        conn = open_connection(transport.endpoint, timeout=self._call_timeout.read,
                               context=context, fingerprint=fingerprint)
        try:
            yield conn
        finally:
            conn.close()

    @staticmethod
    def swap_xapi_host(url: str, host_addr: str) -> str:
        """``url`` with its host replaced by ``host_addr`` (the port and scheme are kept)."""
        parts = urlsplit(url)
        host = f"[{host_addr}]" if ":" in host_addr and not host_addr.startswith("[") else host_addr
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    # -- connecting -----------------------------------------------------------------------------

    def _connect(self, transport: Transport, plugin_version_check: bool) -> None:
        """Log in, learn the pool's hosts and this session's host, check the plugins."""
        hosts = self.call_xenapi("host.get_all_records")
        self._master.learn_hosts(hosts)
        pools = self.call_xenapi("pool.get_all_records")
        master_ref = next(iter(pools.values()))["master"] if pools else None
        self.host_ref = self._host_named_by_url(transport, hosts)
        record = hosts[self.host_ref]
        self.is_slave = self.host_ref != master_ref
        self.host_uuid = record["uuid"]
        self.ip = self._ip_of(transport, record)
        software = record.get("software_version") or {}
        platform = software.get("platform_version", "0.0.0")
        self.product_version = _version_tuple(software.get("product_version", platform))
        self.product_brand = software.get("product_brand")
        self.platform_version = _version_tuple(platform)
        LOG.info("connected to the XAPI pool at %s (master %s) as %r, host %s", self.url,
                 self.master_url, self._user, record.get("hostname") or self.host_uuid)
        if plugin_version_check:
            self._verify_plugin_version(record.get("hostname") or self.ip or self.url)

    def _host_named_by_url(self, transport: Transport, hosts: dict[str, dict]) -> str:
        """The ref of the host the caller's URL names (the local one for unix://)."""
        if not self.is_local_connection:
            name = transport.endpoint.host
            addresses = {name, *_resolve(name)}
            for ref, record in hosts.items():
                if record.get("address") in addresses or record.get("hostname") == name:
                    return ref
            LOG.warning("no host of the pool has the address %s; using the host the session "
                        "was made on", name)
        return self._call("session.get_this_host", (), None, own_ref=True)

    def _ip_of(self, transport: Transport, record: dict[str, Any]) -> str | None:
        if self.is_local_connection:
            return record.get("address")
        found = _resolve(transport.endpoint.host)
        return found[0] if found else record.get("address")

    # -- the call loop --------------------------------------------------------------------------

    def _timeout(self, timeout: float | Timeout | None) -> Timeout | None:
        if timeout is None or isinstance(timeout, Timeout):
            return timeout
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            return Timeout(connect=self._call_timeout.connect, read=float(timeout))
        raise TypeError(f"timeout must be seconds or a transport.Timeout, not {timeout!r}")

    def _wait_pause(self, attempt: int) -> float:
        return self.retry.wait_pause(attempt)

    def _call(self, method: str, args: tuple[Any, ...], timeout: Timeout | None, *,
              own_ref: bool = False) -> Any:
        """Send one call with a pooled session, doing what the module docstring promises."""
        retry = self.retry
        is_read = retry.is_read(method)
        reads = pending = failovers = redirects = relogins = 0
        ref: str | None = None
        dead: str | None = None  # a ref XAPI declared invalid, whose slot this call still holds
        # Every budget can run out in one call, each in its own turn, plus the last try: the
        # loop's bound must never be what gives up on a call that a budget still allows.
        limit = (retry.reads + retry.too_many_pending_tasks + retry.failovers + retry.relogins
                 + MAX_REDIRECTS + 1)
        try:
            for _ in range(limit):
                logging_in = True  # until the session is in hand: a failed login may be redone
                transport = self._master.transport
                try:
                    if dead is not None:
                        ref = self._pool.renew(dead)  # keeps the slot if the login fails
                        dead = None
                        self._counters.add("relogins")
                    elif ref is None:
                        ref = self._pool.acquire()
                    transport = self._master.transport
                    params = [ref, ref, *args] if own_ref else [ref, *args]
                    logging_in = False
                    value = transport.call(method, params, timeout=timeout)
                    return self._value_types.convert(method, transport.protocol, value)
                except exception.SessionInvalid:
                    if ref is None:
                        raise  # a login refused as an invalid session: nothing to replace
                    if relogins >= retry.relogins:
                        self._pool.discard(ref)  # dead on the server: never back in the pool
                        ref = None
                        raise
                    relogins += 1
                    dead, ref = ref, None
                    LOG.info("XAPI at %s said the session of %s had ended; logging in again "
                             "(%d of %d)", transport.url, method, relogins, retry.relogins)
                    time.sleep(retry.relogin_pause(relogins))
                except exception.HostIsSlave as slave:
                    if redirects >= MAX_REDIRECTS:
                        raise
                    redirects += 1
                    self._master.follow(transport, slave)
                except exception.TooManyPendingTasks:
                    if pending >= retry.too_many_pending_tasks:
                        raise
                    pending += 1
                    self._counters.add("pending_retries")
                    LOG.warning("XAPI has too many pending tasks; %s again in %.1f s", method,
                                retry.wait_pause(pending))
                    time.sleep(retry.wait_pause(pending))
                except exception.TLSError:
                    raise
                except exception.RequestNotSent as exc:
                    if (failovers >= retry.failovers or self.is_local_connection
                            or not self._master.hosts):
                        # Never connected (a wrong address, a closed port): the refusal is the
                        # answer, at once. Or the budget is spent.
                        raise
                    alone = not self._master.has_other_hosts(transport)
                    failovers += 1
                    if failovers > 1:
                        time.sleep(retry.wait_pause(failovers - 1))
                    # A pool of one is asked again (its XAPI may be restarting); a larger pool's
                    # other hosts are asked where the master went.
                    found = self._master.fail_over(transport, self._login_timeout)
                    if not found and failovers >= retry.failovers and alone:
                        raise
                    if not found and failovers >= retry.failovers:
                        tried = ", ".join(h.address for h in self._master.hosts.values())
                        raise exception.MasterNotFound(
                            f"the pool master at {transport.given_url} takes no connection and no "
                            f"other host of the pool ({tried or 'none known'}) answered as "
                            f"master; {method} was not sent", url=transport.url, method=method,
                        ) from exc
                except (exception.ConnectionLost, exception.HTTPStatusError) as exc:
                    lost = isinstance(exc, exception.ConnectionLost)
                    if not lost and exc.status not in _PROXY_ERRORS:
                        raise
                    if not (is_read or logging_in):
                        if lost:
                            raise _not_repeated(exc, method) from exc
                        raise
                    if reads >= retry.reads:
                        raise
                    reads += 1
                    self._counters.add("read_retries")
                    LOG.info("%s lost its answer (%s); sending it again", method,
                             type(exc).__name__)
                    time.sleep(retry.read_pause(reads))
            raise exception.RequestNotSent(
                f"{method} was not answered by {self._master.transport.given_url} after {limit} "
                "attempts", url=self.master_url,
                method=method)
        finally:
            if ref is not None:
                self._pool.release(ref)
            if dead is not None:
                self._pool.discard(dead)


def _not_repeated(exc: exception.ConnectionLost, method: str) -> exception.ConnectionLost:
    """The same error, saying why os-xenapi did not send the call again."""
    return type(exc)(f"{exc}. os-xenapi did not send {method} again because it changes state: "
                     "check whether it took effect before repeating it",
                     url=exc.url, method=exc.method)


def _timeouts(timeout: float | Timeout, login: float | Timeout | None) -> tuple[Timeout, Timeout]:
    """(call timeout, login timeout) from the constructor's arguments."""
    if isinstance(timeout, Timeout):
        calls = timeout
    elif isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        calls = Timeout(connect=float(timeout), read=READ_TIMEOUT)
    else:
        raise ValueError(f"timeout must be positive seconds or a transport.Timeout, not {timeout!r}")
    if login is None:
        seconds = timeout if not isinstance(timeout, Timeout) else 60.0
        return calls, Timeout(connect=calls.connect, read=float(seconds))
    if isinstance(login, Timeout):
        return calls, login
    if isinstance(login, int | float) and not isinstance(login, bool) and login > 0:
        return calls, Timeout(connect=calls.connect, read=float(login))
    raise ValueError(f"login_timeout must be positive seconds or a Timeout, not {login!r}")


def _version_tuple(text: Any) -> tuple[int, ...]:
    """``"8.3.0"`` as ``(8, 3, 0)``; parts that are not numbers stop the tuple."""
    parts = []
    for part in str(text or "0.0.0").split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts) or (0, 0, 0)


def _resolve(name: str) -> list[str]:
    """The addresses of host name ``name`` (itself for an IP literal); [] if it does not resolve."""
    try:
        found = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(str(item[4][0]) for item in found))
