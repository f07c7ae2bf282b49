"""Dynamic VHD images (Microsoft's Virtual Hard Disk format), written and read as streams.

XAPI moves VDIs over HTTP as raw bytes or as VHD (``/export_raw_vdi?format=vhd``,
``/import_raw_vdi?format=vhd``). This module is the simulator's VHD side of that:

* :class:`VhdSource` turns a sparse VDI file into a dynamic VHD produced chunk by chunk: footer
  copy, dynamic header and BAT first (the BAT is planned from the file's allocated ranges), then
  one bitmap + 2 MiB of data per non-zero block, then the footer. All-zero blocks stay out of the
  BAT, so a mostly empty disk gives a small VHD.
* :class:`VhdReader` (in :mod:`.vhd_reader`) takes an incoming VHD in pieces of any size.

Layout (all integers big-endian): a 512-byte footer (cookie ``conectix``, one's-complement checksum,
CHS geometry from the spec's algorithm), a 1024-byte dynamic header (cookie ``cxsparse``), the
block allocation table of uint32 sector offsets (``0xFFFFFFFF`` = unallocated), and blocks, each
a sector bitmap padded to 512 bytes followed by the block's data.

The creator application is ``tap\\0``, the one XenServer's own VHD tools write: qemu-img before
10.0 takes the disk size from the CHS geometry for creators it does not know, which would cut off
the end of most disks; for ``tap\\0`` it uses the footer's current size, as XenServer does.
"""

from __future__ import annotations

import errno
import os
import struct
import time
import uuid as _uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

SECTOR = 512
BLOCK_SIZE = 2 * 1024 * 1024
FOOTER_SIZE = 512
HEADER_SIZE = 1024
UNUSED = 0xFFFFFFFF
MAX_VHD_SIZE = 2040 * 1024**3  # XAPI's Constants.max_vhd_size
COOKIE = b"conectix"
DYNAMIC_COOKIE = b"cxsparse"
DISK_FIXED, DISK_DYNAMIC, DISK_DIFFERENCING = 2, 3, 4
CREATOR_APP = b"tap\0"
CREATOR_VERSION = 0x00010003
CREATOR_OS = b"Wi2k"
FORMAT_VERSION = 0x00010000
FEATURES_RESERVED = 0x00000002  # the spec's "reserved" feature bit, always set
NO_OFFSET = 0xFFFFFFFFFFFFFFFF
VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z, the zero of VHD timestamps
CHUNK = 2 * 1024 * 1024  # the most a source reads or yields at once

# cookie, features, version, data offset, timestamp, creator app/version/os, original and
# current size, cylinders, heads, sectors per track, disk type, checksum, unique id, saved state,
# hidden (blktap's flag in the first reserved byte: a "base copy" that only its children use)
_FOOTER = struct.Struct(">8sIIQI4sI4sQQHBBII16sBB426s")
# cookie, data offset, table offset, version, max table entries, block size, checksum,
# parent unique id, parent timestamp, reserved, parent name, parent locators, reserved
_HEADER = struct.Struct(">8sQQIIII16sI4s512s192s256s")
# platform code, data space, data length, reserved, data offset: one of the header's 8 locators
_LOCATOR = struct.Struct(">4sIIIQ")
LOCATOR_COUNT = 8
PARENT_NAME_SIZE = 512
_FOOTER_CHECKSUM_AT = 64
_HEADER_CHECKSUM_AT = 36


class VhdError(ValueError):
    """The bytes are not a VHD this simulator can use; the message says what is wrong."""


def checksum(raw: bytes, at: int) -> int:
    """The VHD checksum of a footer or header: one's complement of the byte sum, the 4 checksum
    bytes at ``at`` counted as zero."""
    total = sum(raw) - sum(raw[at : at + 4])
    return ~total & 0xFFFFFFFF


def chs_geometry(size: int) -> tuple[int, int, int]:
    """(cylinders, heads, sectors per track) for a disk of ``size`` bytes, by the VHD spec."""
    sectors = min(size // SECTOR, 65535 * 16 * 255)
    if sectors >= 65535 * 16 * 63:
        per_track, heads = 255, 16
        cylinders_heads = sectors // per_track
    else:
        per_track = 17
        cylinders_heads = sectors // per_track
        heads = max(4, (cylinders_heads + 1023) // 1024)
        if cylinders_heads >= heads * 1024 or heads > 16:
            per_track, heads = 31, 16
            cylinders_heads = sectors // per_track
        if cylinders_heads >= heads * 1024:
            per_track, heads = 63, 16
            cylinders_heads = sectors // per_track
    return cylinders_heads // heads, heads, per_track


def bitmap_size(block_size: int) -> int:
    """Bytes of the sector bitmap that precedes each block, padded to a whole sector."""
    needed = -(-(block_size // SECTOR) // 8)
    return -(-needed // SECTOR) * SECTOR


def round_to_sector(size: int) -> int:
    return -(-size // SECTOR) * SECTOR


@dataclass(frozen=True)
class Footer:
    """The 512-byte footer (and its copy at the start of a dynamic VHD)."""

    current_size: int
    disk_type: int = DISK_DYNAMIC
    data_offset: int = FOOTER_SIZE  # where the dynamic header is; NO_OFFSET for a fixed disk
    original_size: int | None = None
    geometry: tuple[int, int, int] | None = None
    unique_id: bytes = field(default_factory=lambda: _uuid.uuid4().bytes)
    timestamp: int = field(default_factory=lambda: max(0, int(time.time()) - VHD_EPOCH))
    creator_app: bytes = CREATOR_APP
    creator_version: int = CREATOR_VERSION
    creator_os: bytes = CREATOR_OS
    features: int = FEATURES_RESERVED
    saved_state: int = 0
    hidden: int = 0

    def pack(self) -> bytes:
        cylinders, heads, per_track = self.geometry or chs_geometry(self.current_size)
        original = self.current_size if self.original_size is None else self.original_size
        fields = (COOKIE, self.features, FORMAT_VERSION, self.data_offset, self.timestamp,
                  self.creator_app, self.creator_version, self.creator_os, original,
                  self.current_size, cylinders, heads, per_track, self.disk_type, 0,
                  self.unique_id, self.saved_state, self.hidden, b"")
        raw = _FOOTER.pack(*fields)
        return _with_checksum(raw, _FOOTER_CHECKSUM_AT)

    @classmethod
    def unpack(cls, raw: bytes, where: str = "footer") -> Footer:
        """Parse and check a footer; raises :class:`VhdError` naming ``where`` it was read."""
        if len(raw) != FOOTER_SIZE:
            raise VhdError(f"VHD {where}: {len(raw)} bytes where 512 were expected")
        (cookie, features, _version, data_offset, timestamp, app, app_version, host_os,
         original, current, cylinders, heads, per_track, disk_type, stored, unique_id, saved,
         hidden, _reserved) = _FOOTER.unpack(raw)
        if cookie != COOKIE:
            raise VhdError(f"VHD {where}: cookie is {cookie!r}, not {COOKIE!r}")
        if stored != checksum(raw, _FOOTER_CHECKSUM_AT):
            raise VhdError(f"VHD {where}: bad checksum {stored:#010x} "
                           f"(computed {checksum(raw, _FOOTER_CHECKSUM_AT):#010x})")
        return cls(current, disk_type, data_offset, original, (cylinders, heads, per_track),
                   unique_id, timestamp, app, app_version, host_os, features, saved, hidden)


@dataclass(frozen=True)
class ParentLocator:
    """One of a differencing disk's parent locators: where a platform-specific path is kept."""

    platform_code: bytes  # b"MacX" (a file:// URL in UTF-8), b"W2ku" / b"W2ru" (UTF-16LE)
    data_space: int
    data_length: int
    data_offset: int

    def pack(self) -> bytes:
        return _LOCATOR.pack(self.platform_code, self.data_space, self.data_length, 0,
                             self.data_offset)


@dataclass(frozen=True)
class DynamicHeader:
    """The 1024-byte dynamic disk header: where the BAT is, how big blocks are and, for a
    differencing disk, which parent it needs (its unique id, timestamp, name and locators)."""

    table_offset: int
    max_table_entries: int
    block_size: int = BLOCK_SIZE
    parent_unique_id: bytes = bytes(16)
    parent_timestamp: int = 0
    parent_name: str = ""  # the parent's file name (UTF-16BE on disk)
    parent_locators: tuple[ParentLocator, ...] = ()

    def pack(self) -> bytes:
        name = self.parent_name.encode("utf-16-be")
        if len(name) > PARENT_NAME_SIZE:
            raise VhdError(f"VHD parent name {self.parent_name!r} is longer than 256 characters")
        if len(self.parent_locators) > LOCATOR_COUNT:
            raise VhdError(f"a VHD header holds {LOCATOR_COUNT} parent locators, "
                           f"not {len(self.parent_locators)}")
        locators = b"".join(loc.pack() for loc in self.parent_locators)
        raw = _HEADER.pack(DYNAMIC_COOKIE, NO_OFFSET, self.table_offset, FORMAT_VERSION,
                           self.max_table_entries, self.block_size, 0, self.parent_unique_id,
                           self.parent_timestamp, b"", name, locators, b"")
        return _with_checksum(raw, _HEADER_CHECKSUM_AT)

    @classmethod
    def unpack(cls, raw: bytes) -> DynamicHeader:
        """Parse and check a dynamic header; raises :class:`VhdError` when it is not valid."""
        if len(raw) != HEADER_SIZE:
            raise VhdError(f"VHD dynamic header: {len(raw)} bytes where 1024 were expected")
        (cookie, _data_offset, table_offset, _version, entries, block_size, stored, parent,
         parent_timestamp, _reserved, raw_name, raw_locators, _rest) = _HEADER.unpack(raw)
        if cookie != DYNAMIC_COOKIE:
            raise VhdError(f"VHD dynamic header: cookie is {cookie!r}, not {DYNAMIC_COOKIE!r}")
        if stored != checksum(raw, _HEADER_CHECKSUM_AT):
            raise VhdError(f"VHD dynamic header: bad checksum {stored:#010x} "
                           f"(computed {checksum(raw, _HEADER_CHECKSUM_AT):#010x})")
        if block_size < SECTOR or block_size % SECTOR or block_size & (block_size - 1):
            raise VhdError(f"VHD dynamic header: block size {block_size} is not a power of two "
                           "of at least 512 bytes")
        name = raw_name.decode("utf-16-be", errors="replace").split("\0", 1)[0]
        locators = tuple(
            ParentLocator(code, space, length, offset)
            for code, space, length, _zero, offset in _LOCATOR.iter_unpack(raw_locators)
            if code != bytes(4))
        return cls(table_offset, entries, block_size, parent, parent_timestamp, name, locators)


def _with_checksum(raw: bytes, at: int) -> bytes:
    return raw[:at] + struct.pack(">I", checksum(raw, at)) + raw[at + 4 :]


# -- sparse files ---------------------------------------------------------------------------------


def data_ranges(fd: int, size: int) -> list[tuple[int, int]]:
    """(start, end) ranges of ``fd`` below ``size`` that may hold data; holes read as zeros.

    Uses SEEK_DATA/SEEK_HOLE where the platform and file system have them; elsewhere the whole
    file counts as data.
    """
    length = min(size, os.fstat(fd).st_size)
    if length <= 0:
        return []
    if not hasattr(os, "SEEK_DATA"):
        return [(0, length)]
    ranges: list[tuple[int, int]] = []
    offset = 0
    try:
        while offset < length:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after offset
                    break
                raise
            if start >= length:
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), length)
            ranges.append((start, end))
            offset = end
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
        return [(0, length)]
    return ranges


_ZEROS = bytes(CHUNK)
_PROBE = 64 * 1024  # a block's first read: enough to tell most data blocks from empty ones


def is_zero(data: bytes | bytearray) -> bool:
    """True when every byte of ``data`` is zero (compared in C; ``bytes.count`` is far slower)."""
    size = len(data)
    if size > _PROBE and data[:_PROBE] != _ZEROS[:_PROBE]:
        return False
    return data == (_ZEROS if size == CHUNK else bytes(size))


def read_at(fd: int, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset``, zero-filled past the end of the file."""
    data = os.pread(fd, length, offset)
    while 0 < len(data) < length:
        more = os.pread(fd, length - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data if len(data) == length else data + bytes(length - len(data))


def nonzero_blocks(fd: int, size: int, block_size: int = BLOCK_SIZE) -> list[int]:
    """Indexes of the blocks of ``fd`` (below ``size``) that hold at least one non-zero byte."""
    candidates: list[int] = []
    for start, end in data_ranges(fd, size):
        first, last = start // block_size, (end - 1) // block_size
        for index in range(first, last + 1):
            if not candidates or candidates[-1] < index:
                candidates.append(index)
    found = []
    for index in candidates:
        start = index * block_size
        stop = min(start + block_size, size)
        offset, step = start, _PROBE
        while offset < stop:
            if not is_zero(read_at(fd, offset, min(step, stop - offset))):
                found.append(index)
                break
            offset, step = offset + step, CHUNK
    return found


# -- writing ------------------------------------------------------------------------------------


class DynamicLayout:
    """Where each part of a dynamic VHD goes, given the disk size and the blocks that hold data."""

    def __init__(self, size: int, blocks: Sequence[int], *, block_size: int = BLOCK_SIZE,
                 footer: Footer | None = None) -> None:
        if size < 0 or size > MAX_VHD_SIZE:
            raise VhdError(f"a VHD holds 0 to {MAX_VHD_SIZE} bytes, not {size}")
        self.size = round_to_sector(size)
        self.block_size = block_size
        self.entries = -(-self.size // block_size)
        self.blocks = sorted(set(blocks))
        if self.blocks and (self.blocks[0] < 0 or self.blocks[-1] >= self.entries):
            raise VhdError(f"block indexes must lie in 0..{self.entries - 1}")
        self.footer = replace(footer, current_size=self.size) if footer else Footer(self.size)
        self.table_offset = FOOTER_SIZE + HEADER_SIZE
        table_bytes = -(-self.entries * 4 // SECTOR) * SECTOR
        first_block = self.table_offset + table_bytes
        self.bitmap_size = bitmap_size(block_size)
        stride = self.bitmap_size + block_size
        self.offsets = {index: first_block + i * stride for i, index in enumerate(self.blocks)}
        self.total_size = first_block + len(self.blocks) * stride + FOOTER_SIZE

    def prologue(self) -> bytes:
        """Footer copy, dynamic header and BAT: everything before the first block."""
        table = [UNUSED] * self.entries
        for index, offset in self.offsets.items():
            table[index] = offset // SECTOR
        bat = struct.pack(f">{self.entries}I", *table)
        pad = b"\xff" * (-len(bat) % SECTOR)
        header = DynamicHeader(self.table_offset, self.entries, self.block_size)
        return self.footer.pack() + header.pack() + bat + pad

    def bitmap(self, index: int) -> bytes:
        """The sector bitmap of block ``index``: every sector inside the disk is present."""
        sectors = self.block_size // SECTOR
        inside = min(sectors, max(0, (self.size - index * self.block_size) // SECTOR))
        full, rest = divmod(inside, 8)
        bits = b"\xff" * full + (bytes([(0xFF << (8 - rest)) & 0xFF]) if rest else b"")
        return bits + bytes(self.bitmap_size - len(bits))

    def epilogue(self) -> bytes:
        return self.footer.pack()


class VhdSource:
    """A sparse VDI file read as a dynamic VHD, one bounded chunk at a time.

    Opening scans the file's allocated ranges for non-zero blocks (so the BAT can go first);
    :meth:`chunks` then reads each such block again as it is sent. Use as a context manager.
    """

    def __init__(self, path: str | os.PathLike[str], size: int, *,
                 footer: Footer | None = None) -> None:
        self.size = size
        self._fd = os.open(path, os.O_RDONLY)
        try:
            blocks = nonzero_blocks(self._fd, size)
            self.layout = DynamicLayout(size, blocks, footer=footer)
        except BaseException:
            os.close(self._fd)
            raise
        self.total_size = self.layout.total_size

    def chunks(self) -> Iterator[bytes]:
        """The VHD's bytes in order, in pieces of at most :data:`CHUNK` bytes."""
        layout = self.layout
        yield layout.prologue()
        for index in layout.blocks:
            yield layout.bitmap(index)
            start = index * layout.block_size
            for offset in range(start, start + layout.block_size, CHUNK):
                length = min(CHUNK, start + layout.block_size - offset)
                inside = max(0, min(length, self.size - offset))
                data = read_at(self._fd, offset, inside) if inside else b""
                yield data + bytes(length - inside) if inside < length else data
        yield layout.epilogue()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> VhdSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
