"""ISO images for the simulated dom0's mount, umount and mkisofs (genisoimage, xorrisofs)
stand-ins: loop mounts of ISO files played by extracting them, and ISO builds, both done by
the real xorriso (found by simtools, never on a PATH) on checked paths inside DOM0_ROOT.

Conventions:

* Paths are as the plugins pass them: real paths already under DOM0_ROOT; a relative path
  starts at DOM0_ROOT. simpaths checks each one, and a disk node (DOM0_ROOT/dev/<name>, the
  simulator's link to a VDI) is refused as a device: only image files are loop mounted, and
  an ISO is only ever written to a file of the simulated dom0.
* A "mount" copies the ISO's files into the empty mount point (device files are never
  restored), then takes every write, setuid and setgid bit away, as a read-only nosuid mount
  shows them. It is recorded in DOM0_ROOT/var/lib/simmounts.json, keyed by the mount point as
  dom0 names it (/var/run/sr-mount/...); "umount" removes the copy and the record, leaving the
  empty directory with its old mode.
* xorriso runs by absolute path with -no_rc first (no startup files), a minimal environment,
  stdin on /dev/null, in this process group (a plugin's time limit kills it too) and with a
  time limit of its own. Only options known to be harmless reach it: xorriso has commands that
  run programs, and "--" would end the mkisofs emulation.
"""

import contextlib
import errno
import os
import shutil
import stat
import subprocess
import sys

# Refused, directory and inside_root are also the stand-ins' way to them.
from simpaths import Refused, directory, dom0_root, inside_root, regular_file
from simstate import locked_json
from simtools import TOOL_ENV, real_tool

MOUNTS = "var/lib/simmounts.json"
MOUNT_FAILED = 32  # mount(8) and umount(8): "mount failure"
BUILD_FAILED = 1
EXTRACT_SECONDS = 300.0
BUILD_SECONDS = 600.0
LOCK_SECONDS = 60.0
# ISO 9660: volume descriptors of 2048 bytes from sector 16, "CD001" after the type byte,
# a primary one (type 1) before the set terminator (type 255).
SECTOR = 2048
FIRST_DESCRIPTOR = 16
MAX_DESCRIPTORS = 64
PRIMARY, TERMINATOR = 1, 255
MOUNT_OPTIONS = frozenset({"loop", "ro", "nosuid", "nodev", "noexec"})
NEEDED_OPTIONS = ("loop", "ro")
NO_WRITE = ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH | stat.S_ISUID | stat.S_ISGID)
# mkisofs options the ipxe plugin passes: flags, and options taking one value.
BUILD_FLAGS = frozenset({"-quiet", "-l", "-no-emul-boot", "-boot-info-table"})
BUILD_VALUES = frozenset({"-o", "-b", "-c", "-boot-load-size"})


def _under(path, folder):
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def dom0_name(real):
    """The name dom0 has for real, a path under DOM0_ROOT: "/" and its part below the root."""
    return "/" + os.path.relpath(real, dom0_root())


# -- paths --------------------------------------------------------------------------------------

def image_file(path, what, must_exist=True):
    """The real path of an image file of the simulated dom0: a regular file under DOM0_ROOT,
    never a disk node or anything that resolves outside the root. Raises Refused."""
    real = regular_file(path, what, must_exist=must_exist)
    full = inside_root(path, what)
    if not _under(real, dom0_root()) or os.path.dirname(full) == os.path.join(dom0_root(), "dev"):
        raise Refused(f"{what} {path} is a device; only image files are used here")
    return real


def open_image(path, what):
    """(a read-only fd, the real path) of image_file(path), opened without following a last
    symlink, and checked to be the file that was checked. Raises Refused."""
    real = image_file(path, what)
    fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    opened, named = os.fstat(fd), os.stat(real)
    if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != \
            (named.st_dev, named.st_ino):
        os.close(fd)
        raise Refused(f"{what} {path} changed while it was checked")
    return fd, real


def tree_member(tree, relative, what, must_exist):
    """The path of relative (an ISO path such as isolinux.bin) inside the source tree: no
    absolute path, no "..", no option-like name; an existing one must be a regular file
    reached without symlinks. Raises Refused."""
    parts = relative.split("/") if relative else []
    if not parts or relative.startswith(("/", "-")) or any(p in ("", ".", "..") for p in parts):
        raise Refused(f"{what} {relative!r} must be a relative path inside the source tree, "
                      "without '..'")
    full = os.path.join(tree, relative)
    if not os.path.lexists(full):
        if must_exist:
            raise Refused(f"{what} {relative!r} is not in the source tree")
        return full
    if os.path.realpath(full) != full or not stat.S_ISREG(os.lstat(full).st_mode):
        raise Refused(f"{what} {relative!r} must be a regular file in the source tree, "
                      "not a symlink or a directory")
    return full


# -- ISO images ---------------------------------------------------------------------------------

def looks_like_iso(fd):
    """Whether the file of fd starts an ISO 9660 file system: a primary volume descriptor in
    the descriptor set at sector 16, as the kernel's iso9660 driver wants."""
    for number in range(FIRST_DESCRIPTOR, FIRST_DESCRIPTOR + MAX_DESCRIPTORS):
        block = os.pread(fd, SECTOR, number * SECTOR)
        if len(block) < SECTOR or block[1:6] != b"CD001":
            return False
        if block[0] == PRIMARY:
            return True
        if block[0] == TERMINATOR:
            return False
    return False


def run_xorriso(arguments, seconds, pass_fds=(), quiet=False):
    """Run xorriso -no_rc with arguments; return (exit status, its stderr text). Its output
    is passed on unless quiet. Raises Refused if it does not finish in seconds."""
    try:
        # capture_output is Python 3.7; dom0 has 3.6.
        done = subprocess.run([real_tool("xorriso"), "-no_rc"] + arguments,  # noqa: UP022
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              pass_fds=pass_fds, env=TOOL_ENV, timeout=seconds)
    except subprocess.TimeoutExpired:
        raise Refused(f"xorriso did not finish within {seconds:g} s and was killed") from None
    text = done.stderr.decode("utf-8", "replace")
    if not quiet:
        sys.stdout.write(done.stdout.decode("utf-8", "replace"))
        sys.stderr.write(text)
    return done.returncode, text


def xorriso_complaint(text):
    """The last FAILURE or SORRY line xorriso printed, or "" if there is none."""
    lines = [line.strip() for line in text.splitlines()
             if " : FAILURE : " in line or " : SORRY : " in line]
    return lines[-1] if lines else ""


# -- the mount table ----------------------------------------------------------------------------

@contextlib.contextmanager
def mount_table():
    """The records {"mounts": {dom0 mount point: record}} of DOM0_ROOT/var/lib/simmounts.json,
    locked for the block and saved atomically (a new file renamed over the old) if the block
    ends without an exception."""
    with locked_json(MOUNTS, "mount table", {"mounts": {}}, LOCK_SECONDS) as current:
        yield current


# -- the mounted copy ---------------------------------------------------------------------------

def make_read_only(mountpoint):
    """Take write, setuid and setgid bits from everything under mountpoint and from itself,
    and remove whatever is not a file, directory or symlink (a read-only nodev mount)."""
    for folder, names, files in os.walk(mountpoint):
        for name in names + files:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                continue
            if stat.S_ISDIR(mode):
                # Owner keeps r-x, so umount can walk the copy even when not run as root.
                os.chmod(path, (stat.S_IMODE(mode) & NO_WRITE) | stat.S_IRUSR | stat.S_IXUSR)
            elif stat.S_ISREG(mode):
                os.chmod(path, stat.S_IMODE(mode) & NO_WRITE)
            else:
                os.unlink(path)
    os.chmod(mountpoint, (stat.S_IMODE(os.stat(mountpoint).st_mode) & NO_WRITE) |
             stat.S_IRUSR | stat.S_IXUSR)


def empty_directory(folder):
    """Remove everything inside folder (never following symlinks), giving the owner write
    permission on each directory first; folder itself stays."""
    os.chmod(folder, stat.S_IMODE(os.lstat(folder).st_mode) | stat.S_IRWXU)
    for current, names, _files in os.walk(folder):
        for name in names:
            path = os.path.join(current, name)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) | stat.S_IRWXU)
    with os.scandir(folder) as entries:
        for entry in list(entries):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def extract(fd, mountpoint):
    """Copy the ISO of fd into the empty directory mountpoint with xorriso; return "" on
    success, else what went wrong (mountpoint is then emptied again)."""
    try:
        status, text = run_xorriso(
            ["-osirrox", "on:auto_chmod_on", "-ecma119_map", "lowercase",
             "-indev", f"/proc/self/fd/{fd}", "-extract", "/", mountpoint],
            EXTRACT_SECONDS, pass_fds=(fd,), quiet=True)
    except BaseException:
        empty_directory(mountpoint)
        raise
    if status == 0:
        return ""
    empty_directory(mountpoint)
    return xorriso_complaint(text) or f"xorriso exited with status {status}"


# -- mkisofs ------------------------------------------------------------------------------------

def parse_build(argv):
    """(flags, {option: value}, source) of an mkisofs command line that holds only the
    options the ipxe plugin passes and exactly one source directory. Raises Refused."""
    flags, values, sources = [], {}, []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg in BUILD_FLAGS:
            flags.append(arg)
        elif arg in BUILD_VALUES:
            if not rest:
                raise Refused(f"option {arg} needs a value")
            if arg in values:
                raise Refused(f"option {arg} is given twice")
            values[arg] = rest.pop(0)
        elif arg.startswith("-"):
            raise Refused(f"option {arg} is not simulated (only {', '.join(sorted(BUILD_FLAGS))}"
                          f" and {', '.join(sorted(BUILD_VALUES))} with a value)")
        else:
            sources.append(arg)
    if "-o" not in values:
        raise Refused("give the output file with -o (an image on stdout is not simulated)")
    if len(sources) != 1:
        raise Refused(f"give exactly one source directory, not {len(sources)}")
    size = values.get("-boot-load-size")
    if size is not None and not (size.isdigit() and 0 < int(size) < 65536):
        raise Refused(f"-boot-load-size {size!r} must be a number of 512-byte sectors")
    return flags, values, sources[0]


def build_arguments(argv):
    """The checked xorriso arguments for an mkisofs command line, and the real output path."""
    flags, values, source = parse_build(argv)
    tree = directory(source, "source directory")
    output = image_file(values["-o"], "output (-o)", must_exist=False)
    if _under(output, tree):
        raise Refused(f"output (-o) {values['-o']} is inside the source directory")
    arguments = ["-as", "mkisofs"] + flags + ["-o", output]
    if "-b" in values:
        tree_member(tree, values["-b"], "boot image (-b)", must_exist=True)
        arguments += ["-b", values["-b"]]
    if "-c" in values:
        tree_member(tree, values["-c"], "boot catalog (-c)", must_exist=False)
        arguments += ["-c", values["-c"]]
    if "-boot-load-size" in values:
        arguments += ["-boot-load-size", values["-boot-load-size"]]
    # An absolute real path: never taken for an option, and "=" means nothing without
    # -graft-points.
    return arguments + [tree], output


def build(argv):
    """Build the ISO an mkisofs command line asks for; return xorriso's exit status. A new
    output file is removed again if the build fails."""
    arguments, output = build_arguments(argv)
    existed = os.path.lexists(output)
    status = None
    try:
        status, _text = run_xorriso(arguments, BUILD_SECONDS)
    finally:
        if status != 0 and not existed and os.path.lexists(output):
            os.unlink(output)
    return status


def main(program, body, failure):
    """Run body() and exit with its status; Refused and OSError become "program: message" on
    stderr and exit status failure."""
    try:
        status = body()
    except Refused as exc:
        sys.stderr.write(f"{program}: {exc}\n")
        status = failure
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"{program}: {where}{exc.strerror or errno.errorcode.get(exc.errno)}\n")
        status = failure
    sys.stdout.flush()
    sys.exit(status)


def build_main(program):
    """The whole mkisofs, genisoimage or xorrisofs stand-in, named program."""
    main(f"{program} (simulated dom0)", lambda: build(sys.argv[1:]), BUILD_FAILED)
