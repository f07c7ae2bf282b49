"""Per-call deadlines: one watchdog thread ends any exchange with XAPI that overruns its time.

A socket timeout bounds one wait for bytes, not a whole reply: a host that sends a byte every
few seconds keeps a socket reading for ever. So each call arms a :class:`Deadline`; the connection
that carries the call lets it :meth:`~Deadline.watch` a :class:`Guard` of its socket, and if the
deadline passes before the call disarms it (:meth:`~Deadline.cancel`), the watchdog shuts that
socket down: the blocked read or write returns at once and the transport reports a timeout. A
connection is unwatched (:meth:`~Deadline.unwatch`) before it goes back to the pool, so the
watchdog never shuts down a connection that another call has taken up.

A guard holds a duplicate descriptor of the socket. Shutting the duplicate down shuts down the one
socket both refer to, whichever object wraps it (TLS replaces the plain socket object during the
handshake), and guards are shut down and closed only under the watchdog's lock, so the watchdog
never acts on a descriptor number that has meanwhile been closed and reused.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time


class _Watchdog:
    """The deadlines of the calls under way, and the daemon thread that enforces them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._cond = threading.Condition(self.lock)
        self._active: set[Deadline] = set()
        self._wake_at = math.inf
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            self._active.add(deadline)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="os-xenapi deadlines",
                                                daemon=True)
                self._thread.start()
            elif deadline.at < self._wake_at:
                self._cond.notify()

    def remove(self, deadline: Deadline) -> None:
        with self._cond:
            self._active.discard(deadline)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                earliest = math.inf
                for deadline in list(self._active):
                    if deadline.at <= now:
                        self._active.discard(deadline)
                        deadline._expire()
                    else:
                        earliest = min(earliest, deadline.at)
                self._wake_at = earliest
                self._cond.wait(None if earliest == math.inf else earliest - now)

    def after_fork(self) -> None:
        """In a forked child: the thread did not come along, and the lock may be held."""
        self.__init__()  # type: ignore[misc]


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG.after_fork)


class Guard:
    """A duplicate of one connection's socket, for the watchdog to shut it down with."""

    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket) -> None:
        self._sock: socket.socket | None = sock.dup()

    def close(self) -> None:
        """Close the duplicate (the connection's own socket is not affected)."""
        with _WATCHDOG.lock:
            sock, self._sock = self._sock, None
            if sock is not None:
                sock.close()

    def _shut(self) -> None:
        """Shut the socket down for both directions; the caller holds the watchdog's lock."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already shut down, or the peer has gone: the read ends either way


class Deadline:
    """``seconds`` from now, the call must be over. Disarm it with :meth:`cancel` when it is."""

    __slots__ = ("seconds", "at", "expired", "_guard")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._guard: Guard | None = None
        _WATCHDOG.add(self)

    def extend(self, seconds: float) -> None:
        """Move the deadline ``seconds`` later (the time spent making a new connection, which
        the connect timeout bounds on its own). A deadline that passed while the connection was
        being made, before any socket was watched, is armed again for the new time."""
        with _WATCHDOG.lock:
            self.at += seconds
            revived = self.expired and self._guard is None
            if revived:
                self.expired = False
        if revived:
            _WATCHDOG.add(self)

    def watch(self, guard: Guard) -> None:
        """Shut ``guard``'s socket down when the deadline passes (at once if it has)."""
        with _WATCHDOG.lock:
            self._guard = guard
            if self.expired:
                guard._shut()

    def unwatch(self) -> None:
        """Stop watching the socket given to :meth:`watch` (its connection is about to be given
        back to the pool); the deadline still holds for whatever the call does next."""
        with _WATCHDOG.lock:
            self._guard = None

    def cancel(self) -> None:
        """The call is over: nothing is shut down for it from now on."""
        _WATCHDOG.remove(self)

    def _expire(self) -> None:
        """Called by the watchdog, under its lock."""
        self.expired = True
        if self._guard is not None:
            self._guard._shut()
