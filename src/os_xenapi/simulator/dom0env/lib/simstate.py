"""State files of the simulated dom0's stand-ins (kpartx's mappings, mount's table): JSON under
DOM0_ROOT/var/lib, read and rewritten under an flock, replaced atomically.

Two plugins may run a stand-in at once, so each update holds the file's lock from read to write;
a stuck holder makes the next caller give up after a bounded wait rather than hang a plugin.
"""

import contextlib
import fcntl
import json
import os
import tempfile
import time

from simpaths import Refused, ensure_directory, regular_file

LOCK_POLL = 0.05


def _lock(handle, what, seconds):
    """flock handle, waiting at most seconds; raise Refused naming what after that."""
    for _ in range(int(seconds / LOCK_POLL) + 1):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(LOCK_POLL)
    raise Refused(f"{what} stayed locked for {seconds:g} s")


@contextlib.contextmanager
def locked_json(relative, what, empty, lock_seconds):
    """The JSON object in DOM0_ROOT/relative (a copy of empty when there is none), locked for
    the block and saved atomically (a new file renamed over the old) if the block ends without
    an exception. Its directory is made, checked level by level, when missing."""
    folder = ensure_directory(os.path.dirname(relative))
    name = os.path.basename(relative)
    path = regular_file(os.path.join(folder, name), what, must_exist=False)
    lock_path = regular_file(path + ".lock", what + " lock", must_exist=False)
    with open(lock_path, "a") as lock:
        _lock(lock, what, lock_seconds)
        try:
            with open(path) as stream:
                current = json.load(stream)
        except FileNotFoundError:
            current = json.loads(json.dumps(empty))
        yield current
        handle, temporary = tempfile.mkstemp(prefix="." + name + ".", dir=folder)
        try:
            with os.fdopen(handle, "w") as stream:
                json.dump(current, stream, indent=1, sort_keys=True)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
