"""Disks for the simulated dom0's sfdisk, kpartx, mkfs and mkswap stand-ins.

What they share: the MBR (DOS) partition table, sparse copies between a disk and the files
that stand in for its partitions, the record of kpartx's mappings, and running a real file
system tool (mke2fs, mkswap) on one checked file with stdin on /dev/null and a time limit.

Conventions, for every stand-in that uses this module:

* Paths are as the plugins pass them: real paths already mapped through DOM0_ROOT
  ("$DOM0_ROOT/dev/xvdb"); a relative path starts at DOM0_ROOT. simpaths checks each one: it
  must lie under DOM0_ROOT as written and resolve to a regular file, under DOM0_ROOT except for
  a disk node DOM0_ROOT/dev/<name>, the simulator's link to a VDI's file.
* A real tool runs by absolute path, on a file descriptor opened after the checks
  (/proc/self/fd/N), so the file checked is the file the tool writes. It stays in the
  stand-in's process group (a plugin's time limit kills the whole group) and never waits on
  stdin. Nothing here calls sync(2) for the whole machine, which can block without end on a
  stuck mount; only the files written are flushed.
"""

import contextlib
import errno
import os
import stat
import struct
import subprocess
import sys

# Refused, ensure_directory, inside_root and regular_file are also the stand-ins' way to them.
from simpaths import (  # noqa: F401
    Refused,
    directory,
    dom0_root,
    ensure_directory,
    inside_root,
    regular_file,
)
from simstate import locked_json
from simtools import TOOL_ENV, real_tool

SECTOR = 512
MBR_ID_AT = 440
MBR_ENTRIES_AT = 446
MBR_MAGIC = b"\x55\xaa"
LINUX = 0x83
EXTENDED = (0x05, 0x0F, 0x85)
# sfdisk's geometry for a disk that reports none (an image file): 255 heads, 63 sectors/track.
HEADS = 255
TRACK = 63
MAX_LBA = 2 ** 32 - 1
# Copies work in chunks of CHUNK bytes and skip or compare BLOCK-sized pieces, so that holes
# of a sparse disk stay holes.
CHUNK = 1 << 20
BLOCK = 4096
ZERO_BLOCK = bytes(BLOCK)
MAPPINGS = "var/lib/simkpartx.json"
LOCK_SECONDS = 10.0


# -- the MBR ------------------------------------------------------------------------------------

def chs(lba):
    """The three CHS bytes (head, sector with cylinder bits 8-9, cylinder bits 0-7) of sector lba
    in sfdisk's 255/63 geometry, or 1023/254/63 (FE FF FF) beyond cylinder 1023, as partitioning
    tools write for disks addressed by LBA only."""
    cylinder, rest = divmod(lba, HEADS * TRACK)
    if cylinder > 1023:
        return b"\xfe\xff\xff"
    head, sector = divmod(rest, TRACK)
    return bytes((head, (sector + 1) | ((cylinder >> 2) & 0xC0), cylinder & 0xFF))


def mbr(identifier, start, sectors, kind=LINUX):
    """A 512-byte MBR with disk identifier and one primary partition of type kind covering
    sectors [start, start + sectors); no boot code, the other three entries empty."""
    if not (0 < start <= MAX_LBA and 0 < sectors <= MAX_LBA):
        raise ValueError("a DOS partition starts and ends within 2**32 sectors")
    entry = struct.pack("<B3sB3sII", 0, chs(start), kind, chs(start + sectors - 1), start,
                        sectors)
    sector = bytearray(SECTOR)
    sector[MBR_ID_AT:MBR_ID_AT + 4] = struct.pack("<I", identifier)
    sector[MBR_ENTRIES_AT:MBR_ENTRIES_AT + 16] = entry
    sector[510:512] = MBR_MAGIC
    return bytes(sector)


def partitions(first_sector):
    """The used primary partitions of an MBR as (number, type, start sector, sector count), or
    None if first_sector holds no partition table (no 55AA signature)."""
    if len(first_sector) < SECTOR or first_sector[510:512] != MBR_MAGIC:
        return None
    found = []
    for index in range(4):
        at = MBR_ENTRIES_AT + 16 * index
        kind = first_sector[at + 4]
        start, count = struct.unpack_from("<II", first_sector, at + 8)
        if kind and count:
            found.append((index + 1, kind, start, count))
    return found


def partition_name(disk_name, number, separator=None):
    """The name of partition number of disk_name: xvdb1, or nbd0p1 when the disk's name ends in a
    digit; kpartx's -p separator replaces that rule when given."""
    if separator is None:
        separator = "p" if disk_name[-1:].isdigit() else ""
    return f"{disk_name}{separator}{number}"


def human(size):
    """size in bytes as sfdisk shows it: "64 MiB", "1.5 GiB"."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    text = f"{value:.1f}"
    return "{} {}".format(text[:-2] if text.endswith(".0") else text, unit)


# -- opening checked files ----------------------------------------------------------------------

def _within(path, root):
    return path.startswith(root.rstrip(os.sep) + os.sep)


def open_checked(path, what, flags, inside=False):
    """An fd of the regular file path (simpaths.regular_file), opened without following a final
    symlink of the checked real path; inside=True also refuses a disk node's VDI file (a path
    that resolves outside DOM0_ROOT). Raises Refused."""
    real = regular_file(path, what)
    if inside and not _within(real, dom0_root()):
        raise Refused(f"{what} {path} is not a file of the simulated dom0")
    fd = os.open(real, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Refused(f"{what} {path} is not a regular file")
    return fd


# -- sparse copies ------------------------------------------------------------------------------

def data_ranges(fd, start, end):
    """The (from, to) byte ranges of [start, end) of fd that may hold data; holes are left out.

    A file system without SEEK_DATA gets the whole range back."""
    ranges = []
    position = start
    while position < end:  # bounded: position only grows, by at least one byte a turn
        try:
            data = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nothing but a hole from position to the end
                break
            return [(start, end)]
        if data >= end:
            break
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        ranges.append((data, min(hole, end)))
        position = hole
    return ranges


def _merged(first, second):
    merged = []
    for low, high in sorted(first + second):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _read(fd, size, offset):
    """size bytes of fd at offset, zero-filled past its end."""
    data = os.pread(fd, size, offset)
    return data + bytes(size - len(data)) if len(data) < size else data


def write_all(fd, data, offset):
    """Write all of data to fd at offset."""
    view = memoryview(data)
    while view:  # bounded: each pwrite writes at least one byte or raises
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[written:]
        offset += written


def _blocks(low, high):
    """[low, high) cut at multiples of CHUNK, as (offset, size) pieces."""
    for chunk in range(low - low % CHUNK, high, CHUNK):
        begin = max(chunk, low)
        yield begin, min(chunk + CHUNK, high) - begin


def copy_out(disk, offset, length, partition):
    """Copy bytes [offset, offset + length) of fd disk to the start of the empty fd partition,
    writing only blocks that are not zero, and make partition length bytes long."""
    for low, high in data_ranges(disk, offset, offset + length):
        for at, size in _blocks(low, high):
            data = _read(disk, size, at)
            for block in range(0, size, BLOCK):
                piece = data[block:block + BLOCK]
                if piece.count(0) != len(piece):
                    write_all(partition, piece, at - offset + block)
    os.ftruncate(partition, length)
    os.fsync(partition)


def write_back(partition, disk, offset, length):
    """Make bytes [offset, offset + length) of fd disk equal to fd partition, writing only the
    blocks that differ: where both are zero (holes of a sparse disk) nothing is written, and
    zeros land only where the disk held data. Returns the number of bytes written."""
    written = 0
    shifted = [(low - offset, high - offset)
               for low, high in data_ranges(disk, offset, offset + length)]
    for low, high in _merged(data_ranges(partition, 0, length), shifted):
        for at, size in _blocks(low, high):
            new = _read(partition, size, at)
            old = _read(disk, size, offset + at)
            if new == old:
                continue
            for block in range(0, size, BLOCK):
                piece = new[block:block + BLOCK]
                if piece != old[block:block + BLOCK]:
                    write_all(disk, piece, offset + at + block)
                    written += len(piece)
    os.fsync(disk)
    return written


# -- kpartx's mappings --------------------------------------------------------------------------

@contextlib.contextmanager
def mappings():
    """The mapping records {"maps": {name: record}} of DOM0_ROOT/var/lib/simkpartx.json, locked
    for the block and saved atomically (a new file renamed over the old) if it ends without an
    exception."""
    with locked_json(MAPPINGS, "mapping record", {"maps": {}}, LOCK_SECONDS) as current:
        yield current


# -- real tools ---------------------------------------------------------------------------------

def tool(name):
    """The absolute path of the real name (simtools' fixed list). Raises Refused if missing."""
    return real_tool(name)


def run_tool(argv, fd, shown, timeout):
    """Run argv (argv[0] absolute) with "{file}" in it replaced by fd's /proc/self/fd path;
    pass its output on with that path shown as shown; return its exit status.

    stdin is /dev/null and the tool stays in this process group; after timeout seconds it is
    killed and the stand-in fails, so nothing waits for ever."""
    name = f"/proc/self/fd/{fd}"
    argv = [name if part == "{file}" else part for part in argv]
    try:
        # capture_output is Python 3.7; dom0 has 3.6.
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,  # noqa: UP022
                              stderr=subprocess.PIPE, pass_fds=(fd,), timeout=timeout,
                              env=TOOL_ENV)
    except subprocess.TimeoutExpired:
        raise Refused(f"{os.path.basename(argv[0])} did not finish within {timeout:g} s and "
                      "was killed") from None
    sys.stdout.write(done.stdout.decode("utf-8", "replace").replace(name, shown))
    sys.stderr.write(done.stderr.decode("utf-8", "replace").replace(name, shown))
    return done.returncode


def main(program, body):
    """Run body() and exit with its status; Refused and OSError become "program: message" on
    stderr and exit status 1."""
    try:
        status = body()
    except Refused as exc:
        sys.stderr.write(f"{program}: {exc}\n")
        status = 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"{program}: {where}{exc.strerror}\n")
        status = 1
    sys.stdout.flush()
    sys.exit(status)

