"""Why a listener of the simulator cannot open, in words that name the address or the path.

The socket calls' own errors name neither (``[Errno 2] No such file or directory``), and asyncio
replaces any socket file it finds at a Unix socket's path, even one another server is listening
on: :func:`check_unix_path` refuses that first.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

UNIX_PATH_MAX = 108  # bytes in sockaddr_un.sun_path on Linux

_REASONS = {
    errno.EADDRINUSE: "the port is in use by another program",
    errno.EADDRNOTAVAIL: "it is not an address of this machine",
    errno.EACCES: "permission denied (ports below 1024 need root)",
}


class ListenError(OSError):
    """A listener that cannot open. ``where`` is ``ADDRESS:PORT`` or the socket's path,
    ``unix`` says which, ``host`` is the index of the pool's host (None for the socket)."""

    def __init__(self, where: str, reason: str, *, unix: bool = False,
                 host: int | None = None) -> None:
        super().__init__(reason)
        self.where, self.reason, self.unix, self.host = where, reason, unix, host

    def __str__(self) -> str:
        if self.unix:
            return f"cannot serve the Unix socket {self.where}: {self.reason}"
        return f"cannot listen on {self.where}: {self.reason}"


def check_unix_path(path: str) -> None:
    """Raise :class:`ListenError` if a Unix socket cannot or must not be made at ``path``."""
    if len(os.fsencode(path)) >= UNIX_PATH_MAX:
        raise ListenError(path, f"the path is {len(os.fsencode(path))} bytes long, and a Unix "
                                f"socket's path must be shorter than {UNIX_PATH_MAX}", unix=True)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ListenError(path, f"its directory {directory} does not exist", unix=True)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        kind = "directory" if stat.S_ISDIR(mode) else "file that is not a socket"
        raise ListenError(path, f"a {kind} is there, and the simulator does not replace it",
                          unix=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return  # a stale socket, left by a process that is gone: it may be replaced
    raise ListenError(path, "it is in use: another server is listening on it", unix=True)


def explain(exc: OSError, where: str, *, unix: bool = False,
            host: int | None = None) -> ListenError:
    """``exc``, raised while binding ``where``, as a :class:`ListenError` that names it."""
    if isinstance(exc, ListenError):
        return exc
    reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
    return ListenError(where, reason, unix=unix, host=host)
