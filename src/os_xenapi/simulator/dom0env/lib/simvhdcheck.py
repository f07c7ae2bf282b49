"""`vhd-util check` for the simulated dom0: what blktap's check says about a VHD, in its words.

check_vhd() runs the checks in libvhd's order (primary footer, backup footer, dynamic header,
differencing header, BAT, parent locators) and stops at the first problem, returning the
lines vhd-util prints and the errno it exits with (22, EINVAL, for an invalid VHD). Parent
paths go through a resolve callable, so the stand-in decides which files may be opened.
Standard library only, Python 3.6.
"""

import errno
import os
import time
import uuid as uuidlib

import simvhd
from simvhd import SECTOR

TIMESTAMP_SLACK = 1800  # libvhd allows this many seconds of clock skew (NFS servers)
TAP_CURRENT_VERSION = 0x00010003
_PLATFORM_CODES = {0, 0x57693272, 0x5769326B, 0x57327275, 0x57326B75, 0x4D616320, simvhd.MACX}


class Options:
    """check's flags: -i ignore a bad primary footer, -I parent uuids, -t timestamps,
    -B no BAT overlap check."""

    def __init__(self, ignore_footer=False, ignore_parent_uuid=False, ignore_timestamps=False,
                 no_check_bat=False):
        self.ignore_footer = ignore_footer
        self.ignore_parent_uuid = ignore_parent_uuid
        self.ignore_timestamps = ignore_timestamps
        self.no_check_bat = no_check_bat


class Invalid(Exception):
    """One problem: the line check prints and the errno it exits with."""

    def __init__(self, line, code=errno.EINVAL):
        super().__init__(line)
        self.line = line
        self.code = code


def _now():
    return simvhd.vhd_time(time.time())


def footer_problem(raw: bytes, options: Options):
    """libvhd's complaint about a raw footer, or None when it is valid."""
    (cookie, features, version, data_offset, timestamp, app, app_version, _os, _orig, size,
     geometry, disk_type, stored, unique_id, saved, hidden, reserved) = \
        simvhd.FOOTER_STRUCT.unpack(raw)
    if cookie != simvhd.FOOTER_COOKIE:
        return "invalid cookie"
    if stored != simvhd.checksum(raw, 64):
        return "invalid checksum"
    if not features & 2:
        return "invalid 'reserved' feature"
    if features & ~3:
        return "invalid extra features"
    if version != 0x00010000:
        return "invalid file format version"
    if disk_type not in (simvhd.DYNAMIC, simvhd.DIFFERENCING) and data_offset != simvhd.NO_OFFSET:
        return "invalid data offset"
    if not options.ignore_timestamps and timestamp > _now() + TIMESTAMP_SLACK:
        return "creation time in future"
    if app[:3] == b"tap" and app_version > TAP_CURRENT_VERSION:
        return "unsupported tap creator version"
    if simvhd.geometry(size) < geometry:
        return "geometry too large"
    if disk_type not in simvhd.TYPE_NAMES:
        return "invalid type"
    if saved not in (0, 1):
        return "invalid 'saved' state"
    if hidden not in (0, 1):
        return "invalid 'hidden' state"
    if reserved.strip(b"\0"):
        return "invalid 'reserved' bits"
    if unique_id == bytes(16):
        return "invalid (NULL) uuid"
    return None


def header_problem(raw: bytes, eof: int):
    """libvhd's complaint about a raw dynamic header, or None when it is valid."""
    (cookie, data_offset, table_offset, version, entries, block_size, stored, _pid, _pts,
     reserved1, _name, _locators, reserved2) = simvhd.HEADER_STRUCT.unpack(raw)
    if cookie != simvhd.HEADER_COOKIE:
        return "invalid cookie"
    if stored != simvhd.checksum(raw, 36):
        return "invalid checksum"
    if version != 0x00010000:
        return "invalid header version"
    if data_offset != simvhd.NO_OFFSET:
        return "invalid data offset"
    if not table_offset or table_offset % SECTOR or \
            table_offset + entries * 4 > eof - simvhd.FOOTER_SIZE:
        return "invalid table offset"
    if bin(block_size).count("1") != 1:
        return "invalid block size"
    if reserved1.strip(b"\0") or reserved2.strip(b"\0"):
        return "invalid reserved bits"
    return None


def _read(handle, offset, length):
    handle.seek(offset)
    return handle.read(length)


def _check_footers(path, options):
    """The footer check: the one at the end, then (dynamic disks) the copy at offset 0."""
    with open(path, "rb") as handle:
        eof = os.fstat(handle.fileno()).st_size
        tail = 511 if eof % SECTOR else SECTOR
        if eof < tail:
            raise Invalid("error reading primary footer: -5", errno.EIO)
        primary = _read(handle, eof - tail, tail) + bytes(SECTOR - tail)
        problem = footer_problem(primary, options)
        if problem and not options.ignore_footer:
            raise Invalid("primary footer invalid: " + problem)
        if not problem and simvhd.FOOTER_STRUCT.unpack(primary)[11] == simvhd.FIXED:
            return eof
        backup = _read(handle, 0, SECTOR)
        problem_backup = footer_problem(backup, options)
        if problem_backup:
            raise Invalid("backup footer invalid: " + problem_backup)
        if not problem and primary != backup:
            raise Invalid("primary and backup footers do not match")
        data_offset = simvhd.FOOTER_STRUCT.unpack(backup)[3]
        problem = header_problem(_read(handle, data_offset, simvhd.HEADER_SIZE), eof)
        if problem:
            raise Invalid("header is invalid: " + problem)
    return eof


def _check_differencing_header(vhd, options):
    header = vhd.header
    if vhd.disk_type == simvhd.DIFFERENCING:
        if not options.ignore_timestamps and header.parent_timestamp > _now() + TIMESTAMP_SLACK:
            return "parent creation time in future"
        if not header.parent_name:
            return "invalid parent name"
        return None
    if header.parent_name:
        return "invalid non-null parent name"
    if any(any(locator) for locator in header.locators):
        return "invalid non-null parent locators"
    if header.parent_id != bytes(16):
        return "invalid non-null parent uuid"
    if header.parent_timestamp:
        return "invalid non-zero parent timestamp"
    return None


def _check_bat(vhd, eof, options):
    blocks = vhd.footer.size // simvhd.BLOCK_SIZE
    if blocks > vhd.header.entries:
        raise Invalid(f"VHD size ({blocks} blocks) exceeds BAT size ({vhd.header.entries})")
    end_of_headers = vhd.end_of_headers() // SECTOR
    last = (eof - simvhd.FOOTER_SIZE) // SECTOR
    span = (simvhd.BITMAP_SIZE + simvhd.BLOCK_SIZE) // SECTOR
    placed = sorted((offset, index) for index, offset in enumerate(vhd.bat[:blocks])
                    if offset != simvhd.UNUSED)
    for offset, index in placed:
        if offset < end_of_headers:
            raise Invalid(f"block {index} (offset {offset:#x}) clobbers headers")
        if offset + span > last:
            raise Invalid(f"block {index} (offset {offset:#x}) clobbers footer")
    if options.no_check_bat:
        return
    for position in range(len(placed) - 1):
        (offset, index), (next_offset, next_index) = placed[position], placed[position + 1]
        if next_offset < offset + span:
            raise Invalid(f"block {next_index} (offset {next_offset:#x}) clobbers "
                          f"block {index} (offset {offset:#x})")


def _check_locators(vhd, eof, options, resolve):
    found = 0
    seen = set()
    for index, (code, space, length, reserved, offset) in enumerate(vhd.header.locators):
        if code not in _PLATFORM_CODES:
            raise Invalid(f"invalid parent locator {index}: invalid platform code")
        if code == 0:
            if space or length or reserved or offset:
                raise Invalid(f"invalid parent locator {index}: non-zero locator")
            continue
        for value, what in ((offset, "data offset"), (space, "data space"),
                            (length, "data length")):
            if not value:
                raise Invalid(f"invalid parent locator {index}: invalid {what}")
        if offset + simvhd.locator_space(space) > eof - simvhd.FOOTER_SIZE:
            raise Invalid(f"invalid parent locator {index}: invalid size")
        if reserved:
            raise Invalid(f"invalid parent locator {index}: invalid reserved bits")
        if code in seen:
            raise Invalid(f"duplicate platform code in locator {index}: {code:#x}")
        seen.add(code)
        if code != simvhd.MACX:
            continue  # the simulated vhd-util reads MacX locators only
        relative = {i: path for i, _code, path in vhd.locators()}[index]
        name = os.path.basename(relative)
        if name != vhd.header.parent_name:
            raise Invalid(f"parent locator {index} name ({name}) does not match header name "
                          f"({vhd.header.parent_name})")
        location = resolve(os.path.join(os.path.dirname(vhd.path), relative))
        if location is None:
            raise Invalid(f"error resolving {relative}: -{errno.ENOENT}", errno.ENOENT)
        problem = _parent_problem(vhd, location, options)
        if problem:
            raise Invalid(f"invalid parent {location}: {problem}")
        found += 1
    if not found:
        raise Invalid(f"could not find parent {vhd.header.parent_name}")


def _parent_problem(vhd, location, options):
    if options.ignore_parent_uuid:
        return None
    try:
        with simvhd.Vhd(location) as parent:
            if parent.footer.unique_id != vhd.header.parent_id:
                return "invalid parent uuid"
    except (OSError, simvhd.VhdError):
        return "error opening parent"
    return None


def check_vhd(path: str, name: str, options: Options, resolve) -> tuple:
    """(errno, lines) of `vhd-util check -n name` on the file at path: (0, ["name is valid"])
    or the problem, "name appears invalid; dumping metadata" and a metadata summary.

    resolve(path) gives the real path of a parent that may be opened, or None if there is
    no such file (it raises to refuse one).
    """
    try:
        eof = _check_footers(path, options)
        with simvhd.Vhd(path) as vhd:
            if vhd.disk_type != simvhd.FIXED:
                problem = _check_differencing_header(vhd, options)
                if problem:
                    raise Invalid("differencing header is invalid: " + problem)
                _check_bat(vhd, eof, options)
                if vhd.disk_type == simvhd.DIFFERENCING:
                    _check_locators(vhd, eof, options, resolve)
    except simvhd.VhdError as error:
        return _invalid(path, name, Invalid(f"error opening {name}: {error}"))
    except Invalid as problem:
        return _invalid(path, name, problem)
    return 0, [f"{name} is valid"]


def _invalid(path, name, problem):
    return problem.code, [problem.line, f"{name} appears invalid; dumping metadata"] + \
        summary(path)


def summary(path: str) -> list:
    """A short form of `vhd-util read -p`: the footer (the one at the end, else the copy)."""
    try:
        with simvhd.Vhd(path) as vhd:
            footer, header = vhd.footer, vhd.header
    except (OSError, simvhd.VhdError) as error:
        return [f"error opening {path}: {error}"]
    lines = ["VHD Footer Summary:", "-------------------",
             "Cookie              : conectix",
             "Timestamp           : {}".format(time.asctime(time.gmtime(
                 footer.timestamp + simvhd.VHD_EPOCH))),
             "Creator Application : '{}'".format(footer.creator_app.rstrip(b"\0").decode(
                 "ascii", "replace")),
             f"Current disk size   : {footer.size >> 20} MB ({footer.size} Bytes)",
             f"Disk type           : {simvhd.TYPE_NAMES[footer.disk_type].capitalize()} hard disk",
             f"UUID                : {uuidlib.UUID(bytes=footer.unique_id)}",
             f"Hidden              : {footer.hidden}"]
    if header is not None:
        lines += ["", "VHD Header Summary:", "-------------------",
                  "Cookie              : cxsparse",
                  f"Table offset        : {header.table_offset}",
                  f"Max BAT size        : {header.entries}",
                  f"Parent name         : {header.parent_name}",
                  f"Parent UUID         : {uuidlib.UUID(bytes=header.parent_id)}"]
    return lines
