"""Path checks for the simulated dom0's stand-in commands: they touch files under DOM0_ROOT only.

Plugins run as root on the machine that runs the simulator, so a stand-in that writes a disk,
formats a partition or copies files must never be steered at the real machine's files or
devices. Every path a stand-in acts on goes through one of these checks first: it must lie under
$DOM0_ROOT as written (no ``..`` climbing out), and what it resolves to must be a regular file or
a directory under $DOM0_ROOT. The one exception is a disk node ``$DOM0_ROOT/dev/<name>``, which
the simulator makes a symlink to the VDI's file in its own store: it may resolve outside the
root, but only to a regular file.
"""

import os
import stat
import sys


class Refused(Exception):
    """A path or argument a stand-in will not act on; the message says why."""


def dom0_root():
    """The simulated dom0's root directory ($DOM0_ROOT), which must be an existing absolute
    directory other than "/"."""
    root = os.environ.get("DOM0_ROOT", "")
    if not root or not os.path.isabs(root) or not os.path.isdir(root):
        raise Refused("DOM0_ROOT must name the simulated dom0's root directory")
    root = os.path.realpath(root)
    if root == "/":
        raise Refused("DOM0_ROOT must not be the real root directory")
    return root


def shown(path):
    """path as dom0 names it, for messages: a path under DOM0_ROOT loses that prefix, so an error
    says /dev/xvdb, not the directory of the simulated root on the real machine."""
    root = os.environ.get("DOM0_ROOT", "")
    if root and isinstance(path, str) and os.path.isabs(root):
        root = root.rstrip(os.sep)
        if path.startswith(root + os.sep):
            return path[len(root):]
    return path


def _under(path, directory):
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def inside_root(path, what):
    """path made absolute (relative ones start at DOM0_ROOT) if it lies under DOM0_ROOT as
    written; symlinks are not resolved here."""
    root = dom0_root()
    if not isinstance(path, str) or not path or "\x00" in path:
        raise Refused(f"{what} must be a path")
    full = os.path.abspath(os.path.join(root, path))
    # abspath removes "..": a path that climbed out of the root no longer starts with it.
    if not _under(full, root) or full == root:
        raise Refused(f"{what} {path} is outside the simulated dom0")
    return full


def _is_disk_node(full, root):
    return os.path.dirname(full) == os.path.join(root, "dev")


def regular_file(path, what, must_exist=True):
    """The real path of a regular file under DOM0_ROOT (or a disk node's VDI file).

    With must_exist=False a missing file is accepted if its directory is under DOM0_ROOT.
    """
    root = dom0_root()
    full = inside_root(path, what)
    real = os.path.realpath(full)
    if not os.path.lexists(full):
        if must_exist:
            raise Refused(f"{what} {shown(path)}: no such file")
        if not _under(os.path.realpath(os.path.dirname(full)), root):
            raise Refused(f"{what} {shown(path)} resolves outside the simulated dom0")
        return real
    if not _under(real, root) and not _is_disk_node(full, root):
        raise Refused(f"{what} {shown(path)} resolves outside the simulated dom0")
    mode = os.stat(real).st_mode
    if not stat.S_ISREG(mode):
        raise Refused(f"{what} {shown(path)} is not a regular file (devices are never touched here)")
    return real


def directory(path, what):
    """The real path of an existing directory under DOM0_ROOT."""
    root = dom0_root()
    full = inside_root(path, what)
    real = os.path.realpath(full)
    if not _under(real, root) or real == root:
        raise Refused(f"{what} {shown(path)} resolves outside the simulated dom0")
    if not os.path.isdir(real):
        raise Refused(f"{what} {shown(path)}: no such directory")
    return real


def ensure_directory(relative):
    """The real path of DOM0_ROOT/relative, made one level at a time, each level checked to be
    a directory under DOM0_ROOT before the next is made in it. Raises Refused."""
    current = dom0_root()
    for part in relative.strip("/").split("/"):
        current = os.path.join(current, part)
        if not os.path.lexists(current):
            os.mkdir(current, 0o755)
        current = directory(current, "directory")
    return current


def fail(program, message, code=1):
    """Print "program: message" on stderr and exit with code, as the real command would."""
    sys.stderr.write(f"{program}: {message}\n")
    sys.exit(code)
