"""Where the pool master is, and how to find it again when it moves or goes away.

:class:`Master` owns the :class:`~os_xenapi.client.transport.Transport` to the current master and
the addresses of every host of the pool (from ``host.get_all_records``, learnt at connect time and
after every failover). Two things move it:

* ``HOST_IS_SLAVE [address]``, at login or on any call: the host is a pool member; :meth:`follow`
  switches to the address given.
* the master does not take connections (refused, connect timeout: the request was never sent):
  :meth:`fail_over` asks the pool's known hosts, one after the other, by logging in. The session
  does that only once it has connected: with no host known (before the first connection) the
  refusal itself is the answer; in a pool of one the same host is asked again. A member
  answers ``HOST_IS_SLAVE`` with the master's address, which is tried next; the master lets the
  login through. This is what Xen Orchestra does (``packages/xen-api``, PR #10016). Probe
  sessions are logged out at once, and used first to refresh the list of hosts.

Both are safe to call from many threads at once: a thread that saw an older transport than the
current one just retries on the current one, so one failure moves the client once. Old
transports stay open until :meth:`close`, because other threads may be using them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from . import exception
from .session_pool import Counters
from .transport import Timeout, Transport

LOG = logging.getLogger(__name__)

LOGIN = "session.login_with_password"
LOGIN_VERSION = "1.1"  # XAPI ignores it ("!!! Do something with the version number")
MAX_REDIRECTS = 3  # HOST_IS_SLAVE answers followed by one login before giving up
PROBE_CONNECT = 5.0  # seconds to wait for a connection to a host while looking for the master


class Credentials:
    """A user name and password that never show in repr(), logs or tracebacks' locals reprs."""

    __slots__ = ("user", "_password")

    def __init__(self, user: str, password: str) -> None:
        for name, value in (("user", user), ("pw", password)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, not {type(value).__name__}")
        self.user = user
        self._password = password

    def login_params(self, originator: str) -> list[str]:
        """The parameters of ``session.login_with_password``."""
        return [self.user, self._password, LOGIN_VERSION, originator]

    def __repr__(self) -> str:
        return f"<Credentials of {self.user!r}>"


@dataclass(frozen=True)
class HostInfo:
    """What the client keeps of each host of the pool."""

    ref: str
    address: str
    hostname: str


class Master:
    """The transport to the pool master, kept pointing at the master as it moves."""

    def __init__(self, transport: Transport, credentials: Credentials, originator: str,
                 counters: Counters) -> None:
        self.transport = transport
        self._credentials = credentials
        self._originator = originator
        self._counters = counters
        self._lock = threading.Lock()
        self._retired: list[Transport] = []
        self.hosts: dict[str, HostInfo] = {}  # by ref

    @property
    def url(self) -> str:
        return self.transport.url

    # -- logging in and out ---------------------------------------------------------------------

    def login(self) -> str:
        """A new session ref from the master, following HOST_IS_SLAVE. Raises Failure (wrong
        credentials...) or TransportError."""
        for _ in range(MAX_REDIRECTS):
            transport = self.transport
            try:
                ref = transport.call(LOGIN, self._credentials.login_params(self._originator))
            except exception.HostIsSlave as slave:
                self.follow(transport, slave)
                continue
            self._counters.add("logins")
            return ref
        raise exception.RequestNotSent(
            f"logging in to {self.transport.given_url} was redirected {MAX_REDIRECTS} times by "
            "HOST_IS_SLAVE; the pool's hosts do not agree on which one is the master",
            url=self.url, method=LOGIN)

    def logout(self, ref: str) -> None:
        """End session ``ref`` on the master (it is pool-wide, so wherever the master is now).

        ``SESSION_INVALID`` means that XAPI had ended it already (it expired, XAPI restarted):
        nothing is left to end, so it is counted, not raised.
        """
        try:
            self.transport.call("session.logout", [ref])
        except exception.SessionInvalid:
            self._counters.add("expired_at_logout")
            return
        self._counters.add("logouts")

    def learn_hosts(self, records: dict[str, dict]) -> None:
        """Remember the pool's hosts from ``host.get_all_records``."""
        hosts = {}
        for ref, record in records.items():
            address = str(record.get("address") or "")
            if address:
                hosts[ref] = HostInfo(ref, address, str(record.get("hostname") or ""))
        if hosts:
            self.hosts = hosts

    def has_other_hosts(self, seen: Transport) -> bool:
        """Whether a host of the pool other than ``seen``'s is known, to look for the master at
        (none before the first connection, nor in a pool of one host)."""
        return any(not self._same_host(seen, host.address) for host in self.hosts.values())

    # -- moving -----------------------------------------------------------------------------------

    def follow(self, seen: Transport, slave: exception.HostIsSlave) -> None:
        """Switch to the master named by ``slave`` (a HOST_IS_SLAVE met through ``seen``)."""
        address = slave.master_address
        if not address:
            raise slave
        with self._lock:
            if self.transport is not seen:
                return  # another thread has moved already
            if self._same_host(seen, address):
                raise slave  # the master names itself as a member: nothing sane to follow
            LOG.info("%s is a pool member; following HOST_IS_SLAVE to the master at %s",
                     seen.url, address)
            self._counters.add("redirects")
            self._switch(seen.for_host(address))

    def fail_over(self, seen: Transport, login_timeout: Timeout) -> bool:
        """``seen`` took no connection: find the master among the pool's hosts and switch to it.

        Returns False if no host answered as master in this round. Raises a Failure if the
        credentials are refused, and ValueError for a Unix-socket transport (one host only).
        """
        with self._lock:
            if self.transport is not seen:
                return True  # another thread has found it already
            self._counters.add("failovers")
            failed = seen.endpoint.host
            others = [h.address for h in self.hosts.values() if h.address != failed]
            LOG.warning("the pool master at %s takes no connection; asking %s",
                        seen.url, ", ".join([*others, failed]) or failed)
            found = self._probe(seen, [*others, failed], login_timeout)
            if found is None:
                return False
            if found.endpoint.host == failed:
                found.close()  # the same master came back (a XAPI restart): keep its transport
                return True
            self._switch(found)
            return True

    def close(self) -> None:
        """Close the current transport and the ones used before it."""
        with self._lock:
            for transport in [*self._retired, self.transport]:
                transport.close()
            self._retired.clear()

    # -- internals ----------------------------------------------------------------------------

    def _switch(self, transport: Transport) -> None:
        LOG.warning("the pool master is now %s (was %s)", transport.url, self.transport.url)
        self._retired.append(self.transport)
        self.transport = transport
        self._counters.add("master_changes")

    @staticmethod
    def _same_host(transport: Transport, address: str) -> bool:
        return transport.endpoint.host == address.strip("[]")

    def _probe(self, seen: Transport, addresses: list[str],
               login_timeout: Timeout) -> Transport | None:
        """Log in to each address in turn, going first to any master a member names; the
        transport of the first host that lets the login through, or None."""
        timeout = Timeout(connect=min(PROBE_CONNECT, login_timeout.connect or PROBE_CONNECT),
                          read=login_timeout.read)
        queue = list(dict.fromkeys(addresses))
        tried: set[str] = set()
        while queue and len(tried) <= 2 * len(addresses) + 2:
            address = queue.pop(0)
            if address in tried:
                continue
            tried.add(address)
            candidate = seen.for_host(address)
            try:
                ref = candidate.call(LOGIN, self._credentials.login_params(self._originator),
                                     timeout=timeout)
            except exception.HostIsSlave as slave:
                candidate.close()
                pointed = (slave.master_address or "").strip("[]")
                if pointed and pointed not in tried:
                    queue.insert(0, pointed)
                continue
            except exception.TransportError as exc:
                candidate.close()
                LOG.info("while looking for the master: %s did not answer (%s)",
                         candidate.url, type(exc).__name__)
                continue
            except BaseException:
                candidate.close()
                raise
            self._adopt_probe(candidate, ref)
            return candidate
        return None

    def _adopt_probe(self, candidate: Transport, ref: str) -> None:
        """Use the probe's session to relearn the pool's hosts, then log it out."""
        self._counters.add("logins")
        try:
            self.learn_hosts(candidate.call("host.get_all_records", [ref]))
        except (exception.Failure, exception.TransportError) as exc:
            LOG.info("could not list the pool's hosts from %s (%s)", candidate.url,
                     type(exc).__name__)
        try:
            candidate.call("session.logout", [ref])
            self._counters.add("logouts")
        except exception.SessionInvalid:
            self._counters.add("expired_at_logout")
        except (exception.Failure, exception.TransportError) as exc:
            LOG.info("could not log the probe session out of %s (%s); it will expire there",
                     candidate.url, type(exc).__name__)
