"""File locks for dom0 plugin calls that must not overlap (fcntl.flock on a file per lock name).

Locks live under /var/run/xenapi-plugins (through host_path, so DOM0_ROOT applies). The
kernel drops a flock when its holder exits, so a killed plugin never leaves a stale lock.
"""

import contextlib
import errno
import fcntl
import os
import re
import time

from dom0lib.errors import BUSY, PluginError
from dom0lib.paths import host_path

LOCK_DIR = "/var/run/xenapi-plugins"
POLL_SECONDS = 0.1
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@contextlib.contextmanager
def file_lock(name: str, timeout: float = 30.0):
    """Hold the exclusive lock called name for the duration of a with block.

    Raises PluginError BUSY if another process holds it for longer than timeout seconds.
    """
    if not _NAME.fullmatch(name):
        raise ValueError("lock names are 1-64 characters of A-Z a-z 0-9 _ . -")
    directory = host_path(LOCK_DIR)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(directory, name + ".lock"),
                 os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        deadline = time.monotonic() + timeout
        attempts = int(timeout / POLL_SECONDS) + 1
        for _ in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise PluginError(BUSY, name, f"{timeout:g}")
            time.sleep(POLL_SECONDS)
        else:
            raise PluginError(BUSY, name, f"{timeout:g}")
        yield
    finally:
        # Closing the descriptor releases the lock.
        os.close(fd)
