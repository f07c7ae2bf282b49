"""The logged-in XAPI sessions that one :class:`~os_xenapi.client.session.XenAPISession` shares
between threads, and the counters that say what the session has had to do.

A :class:`SessionPool` holds at most ``size`` session refs. A thread borrows one for a call
(:meth:`SessionPool.acquire`) and gives it back (:meth:`SessionPool.release`), whatever the call's
outcome; refs are made by logging in only when no idle one is left, so a quiet program keeps one.
A ref is lent to one caller at a time, so a session that XAPI ends is in one caller's hands at
most, and that caller alone logs in again for it: one re-login per dead session, never one per
thread that met it.
A ref that XAPI declared dead (``SESSION_INVALID``) is replaced in place by a fresh login
(:meth:`SessionPool.renew`, which keeps the slot whether or not the login works, so the caller can
try again) or dropped (:meth:`SessionPool.discard`), never logged out, since it no longer exists
on the server. :meth:`SessionPool.close` logs out every idle ref, and refs still lent out are
logged out as they come back. Refs never appear in logs or errors raised here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from .exception import SessionClosed, SessionPoolTimeout

LOG = logging.getLogger(__name__)


@dataclass
class SessionStats:
    """What a XenAPISession has done so far (a snapshot when read through ``session.stats``)."""

    logins: int = 0  # session.login_with_password calls that gave a session
    logouts: int = 0
    relogins: int = 0  # logins that replaced a session XAPI said was invalid
    expired_at_logout: int = 0  # logouts XAPI answered SESSION_INVALID: the session had ended
    read_retries: int = 0  # reads sent again after a broken connection
    pending_retries: int = 0  # calls sent again after TOO_MANY_PENDING_TASKS
    redirects: int = 0  # HOST_IS_SLAVE answers followed to the master
    failovers: int = 0  # times the master was searched for among the pool's hosts
    master_changes: int = 0  # times the client moved to another master address

    def copy(self) -> SessionStats:
        return SessionStats(**{item.name: getattr(self, item.name) for item in fields(self)})


class Counters:
    """Thread-safe increments of a :class:`SessionStats`."""

    def __init__(self) -> None:
        self._stats = SessionStats()
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self._stats, name, getattr(self._stats, name) + amount)

    def snapshot(self) -> SessionStats:
        with self._lock:
            return self._stats.copy()


class SessionPool:
    """Up to ``size`` logged-in session refs, made on demand and shared by any number of threads.

    ``login()`` returns a new ref; ``logout(ref)`` ends one. A thread that finds every ref in use
    waits up to ``wait`` seconds for one, then gets SessionPoolTimeout. ``on_drained`` runs once,
    after :meth:`close`, when the last ref is gone (so that the connections can be closed then).
    """

    def __init__(self, size: int, login: Callable[[], str], logout: Callable[[str], None], *,
                 wait: float, url: str, on_drained: Callable[[], None] | None = None) -> None:
        if type(size) is not int or size < 1:
            raise ValueError(f"the number of concurrent XAPI sessions must be >= 1, not {size!r}")
        self.size = size
        self._login = login
        self._logout = logout
        self._wait = wait
        self._url = url
        self._idle: list[str] = []
        self._count = 0  # refs that exist or are being made: idle, lent out, logging in
        self._closed = False
        self._drained = False
        self._on_drained = on_drained
        self._cond = threading.Condition()

    @property
    def in_use(self) -> int:
        """Refs lent out (or being made) right now."""
        with self._cond:
            return self._count - len(self._idle)

    @property
    def count(self) -> int:
        """Refs that exist (idle or lent out)."""
        with self._cond:
            return self._count

    @property
    def closed(self) -> bool:
        return self._closed

    def acquire(self) -> str:
        """A ref for this thread's call: an idle one, a new login, or the first one given back.

        Raises SessionClosed after :meth:`close`, SessionPoolTimeout, or the login's error.
        """
        deadline = time.monotonic() + self._wait
        with self._cond:
            while True:
                if self._closed:
                    raise SessionClosed(url=self._url)
                if self._idle:
                    return self._idle.pop()
                if self._count < self.size:
                    self._count += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SessionPoolTimeout(url=self._url, seconds=self._wait,
                                             concurrent=self.size)
                self._cond.wait(left)
        return self._made(self._login)

    def release(self, ref: str) -> None:
        """Give a live ref back; after :meth:`close` it is logged out instead."""
        with self._cond:
            if not self._closed:
                self._idle.append(ref)
                self._cond.notify()
                return
            self._count -= 1
        self._quiet_logout(ref)
        self._maybe_drained()

    def discard(self, ref: str) -> None:
        """Forget a ref XAPI no longer knows (it is not logged out: it is gone already)."""
        del ref  # nothing to send: the server has dropped it
        with self._cond:
            self._count -= 1
            self._cond.notify()
        self._maybe_drained()

    def renew(self, dead: str) -> str:
        """A fresh login in place of the lent-out ref ``dead``, which XAPI declared invalid.

        The slot stays taken whatever happens: the caller gives it back with :meth:`release` of
        the new ref, or with :meth:`discard` of ``dead`` if this raised (the login's error, or
        SessionClosed after :meth:`close`), unless it tries again first.
        """
        del dead
        if self._closed:
            raise SessionClosed(url=self._url)
        ref = self._login()
        if self._closed:  # close() ran while we were logging in: this ref must not outlive it
            self._quiet_logout(ref)
            raise SessionClosed(url=self._url)
        return ref

    def close(self) -> int:
        """Log out every idle ref now, and lent-out ones when they come back; returns how many
        were logged out now. Later :meth:`acquire` calls raise SessionClosed."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for ref in idle:
            self._quiet_logout(ref)
        self._maybe_drained()
        return len(idle)

    # -- internals ----------------------------------------------------------------------------

    def _made(self, login: Callable[[], str]) -> str:
        """Run ``login`` for a slot already counted; frees the slot if it fails."""
        try:
            ref = login()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            self._maybe_drained()
            raise
        with self._cond:
            closed = self._closed
            if closed:
                self._count -= 1
        if closed:  # close() ran while we were logging in: this ref must not outlive it
            self._quiet_logout(ref)
            self._maybe_drained()
            raise SessionClosed(url=self._url)
        return ref

    def _maybe_drained(self) -> None:
        """Run ``on_drained`` once, when the pool is closed and holds no ref any more."""
        with self._cond:
            if not self._closed or self._count or self._drained:
                return
            self._drained = True
        if self._on_drained is not None:
            self._on_drained()

    def _quiet_logout(self, ref: str) -> None:
        try:
            self._logout(ref)
        except Exception as exc:  # noqa: BLE001 - a logout that fails leaves nothing to undo
            LOG.info("logging out of XAPI at %s failed (%s); the session will expire there",
                     self._url, type(exc).__name__)
