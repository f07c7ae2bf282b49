"""Filesystem access for the dom0 plugins: the DOM0_ROOT convention, confinement, bounded reads.

Every absolute path a plugin uses goes through host_path(), so setting DOM0_ROOT runs the
plugins unchanged against a scratch directory (tests, the simulator). Paths built from a
caller's argument go through confine(), which refuses anything that lands outside the
directory the plugin owns, whether by "..", an absolute path or a symlink.
"""

import errno
import os
import stat

from dom0lib.errors import INTERNAL_ERROR, NOT_FOUND, TOO_LARGE, InvalidArgument, PluginError

_CHUNK = 65536


def dom0_root() -> str:
    """Return the directory that stands for dom0's "/": $DOM0_ROOT if set, else "/"."""
    root = os.environ.get("DOM0_ROOT", "")
    if not root:
        return "/"
    if not os.path.isabs(root) or not os.path.isdir(root):
        raise PluginError(INTERNAL_ERROR, "DOM0_ROOT",
                          "DOM0_ROOT must name an existing absolute directory")
    return root


def host_path(path: str) -> str:
    """Map an absolute dom0 path such as "/boot/guest" to the real one under dom0_root().

    Raises ValueError for a relative path or one with ".." (a bug in the plugin, not input).
    """
    if not path.startswith("/") or ".." in path.split("/"):
        raise ValueError("host_path needs an absolute path without '..': " + path)
    root = dom0_root()
    if root == "/":
        return path
    return os.path.join(root, path.lstrip("/"))


def confine(base: str, relative: str, argument: str) -> str:
    """Return base/relative if it resolves inside base; otherwise raise InvalidArgument.

    base is a real path (already through host_path); relative comes from the caller.
    Symlinks are resolved with realpath before the prefix check, so a link that points
    outside base is refused too.
    """
    if not isinstance(relative, str) or not relative:
        raise InvalidArgument(argument, "must be a non-empty relative path")
    if "\x00" in relative:
        raise InvalidArgument(argument, "must not contain NUL characters")
    if relative.startswith("/"):
        raise InvalidArgument(argument, "must be relative to its directory, not absolute")
    if ".." in relative.split("/"):
        raise InvalidArgument(argument, "must not contain '..'")
    real_base = os.path.realpath(base)
    candidate = os.path.realpath(os.path.join(real_base, relative))
    if candidate != real_base and not candidate.startswith(real_base + os.sep):
        raise InvalidArgument(argument, "resolves outside its directory (symlink escape)")
    return candidate


def _open_regular(path: str, what: str, follow: bool) -> int:
    """Open path read-only; it must be a regular file. O_NONBLOCK keeps a FIFO planted in
    its place from hanging the plugin; without follow, a final symlink is refused."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise PluginError(NOT_FOUND, what, path) from None
        if exc.errno == errno.ELOOP:
            raise PluginError(NOT_FOUND, what, path + " (a symlink, not followed)") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PluginError(NOT_FOUND, what, path + " (not a regular file)")
    return fd


def read_tail(path: str, max_bytes: int, what: str = "file") -> bytes:
    """Return the last max_bytes bytes of a regular file (all of it if shorter)."""
    fd = _open_regular(path, what, follow=False)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            os.lseek(fd, size - max_bytes, os.SEEK_SET)
        return _read_up_to(fd, max_bytes)
    finally:
        os.close(fd)


def read_bounded(path: str, max_bytes: int, what: str = "file") -> bytes:
    """Return a whole file (including /proc files, whose size reads as 0).

    Raises PluginError NOT_FOUND if it is missing or not a regular file, TOO_LARGE if it
    holds more than max_bytes.
    """
    fd = _open_regular(path, what, follow=True)
    try:
        data = _read_up_to(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise PluginError(TOO_LARGE, path, f"{max_bytes} bytes")
    return data


def _read_up_to(fd: int, limit: int) -> bytes:
    chunks = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(_CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def write_atomically(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace path with data: write a temporary file beside it, fsync, rename over it."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0),
                 mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)
        raise
    os.close(fd)
    os.replace(temporary, path)
