"""Reading a VHD that arrives as a stream: ``PUT /import_raw_vdi?format=vhd``.

:class:`VhdReader` is fed the request body in pieces of any size and hands back ``(offset, bytes)``
writes for the disk. It reads the footer copy, the dynamic header and the BAT, then takes the
blocks in the order they come in the stream, whatever order the BAT lists them in; only sectors
that a block's bitmap marks present are written (the rest of a dynamic disk reads as zeros). If a
VHD puts data before its BAT, the bytes in between are spooled to a temporary file (in memory up to
1 MiB) until the BAT says what they are. Memory stays bounded by the largest piece asked for
(1 MiB of block data, or the BAT itself).

A stream that does not start with a footer copy is taken as a fixed VHD: raw data followed by
a footer, checked at the end. Differencing VHDs are refused: they need their parent.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Generator
from typing import IO

from .vhd import (
    COOKIE,
    DISK_DIFFERENCING,
    DISK_DYNAMIC,
    DISK_FIXED,
    FOOTER_SIZE,
    HEADER_SIZE,
    NO_OFFSET,
    SECTOR,
    UNUSED,
    DynamicHeader,
    Footer,
    VhdError,
    bitmap_size,
)

PIECE = 1024 * 1024  # block data is asked for in pieces of at most this
MAX_TABLE_ENTRIES = 1 << 22  # a 16 MiB BAT; 2040 GiB in 2 MiB blocks needs about a million
SPOOL_IN_MEMORY = 1024 * 1024

Writes = list[tuple[int, bytes]]
# The parser yields how many bytes it wants next: n > 0 reads n bytes (sent back to it), n < 0
# skips -n bytes, and 0 means "the rest of the stream is the footer" and is never resumed.
_Parser = Generator[int, "bytes | None", None]


def _disk_type(raw: bytes) -> int:
    return struct.unpack_from(">I", raw, 60)[0]


def present_runs(bitmap: bytes, sectors: int) -> list[tuple[int, int]]:
    """[start, end) sector runs that a block's bitmap marks present (most significant bit first)."""
    whole, rest = divmod(sectors, 8)
    if bitmap[:whole].count(0xFF) == whole and (
        not rest or bitmap[whole] >> (8 - rest) == (1 << rest) - 1
    ):
        return [(0, sectors)]
    runs: list[tuple[int, int]] = []
    start = None
    for sector in range(sectors):
        present = bitmap[sector >> 3] & (0x80 >> (sector & 7))
        if present and start is None:
            start = sector
        elif not present and start is not None:
            runs.append((start, sector))
            start = None
    if start is not None:
        runs.append((start, sectors))
    return runs


class VhdReader:
    """A push parser for one VHD stream; :meth:`feed` it, then call :meth:`finish` once.

    Raises :class:`~.vhd.VhdError` with a message naming what is wrong and where.
    """

    def __init__(self, spool_dir: str | None = None) -> None:
        self.footer: Footer | None = None
        self.header: DynamicHeader | None = None
        self.received = 0
        self._spool_dir = spool_dir
        self._spool: IO[bytes] | None = None
        self._spooled: list[tuple[int, int, int]] = []  # (stream start, stream end, spool offset)
        self._spooling = False
        self._fixed = False
        self._buf = bytearray()
        self._pos = 0  # stream offset of self._buf[0]
        self._out: Writes = []
        self._what = "the footer copy at the start"
        self._parser = self._parse()
        self._want: int = next(self._parser)

    @property
    def size(self) -> int | None:
        """The disk's size from its footer, once known."""
        return self.footer.current_size if self.footer else None

    # -- driving the parser ----------------------------------------------------------------

    def feed(self, data: bytes) -> Writes:
        """Take the next bytes of the stream; returns the disk writes they complete."""
        self.received += len(data)
        self._buf += data
        while self._want:
            if self._want > 0:
                if len(self._buf) < self._want:
                    break
                piece = bytes(self._buf[: self._want])
                del self._buf[: self._want]
                self._pos += len(piece)
                self._want = self._parser.send(piece)
                continue
            count = min(-self._want, len(self._buf))
            if not count:
                break
            if self._spooling:
                with memoryview(self._buf) as view:
                    self._to_spool(view[:count])
            del self._buf[:count]
            self._pos += count
            self._want += count
            if not self._want:
                self._want = self._parser.send(None)
        if not self._want:
            self._keep_tail()
        out, self._out = self._out, []
        return out

    def _keep_tail(self) -> None:
        """In the tail, keep only the last 512 bytes (the footer); a fixed disk's data goes out."""
        extra = len(self._buf) - FOOTER_SIZE
        if extra <= 0:
            return
        if self._fixed:
            self._out.append((self._pos, bytes(self._buf[:extra])))
        del self._buf[:extra]
        self._pos += extra

    def finish(self) -> None:
        """Check that the stream ended where a VHD ends (all writes came from :meth:`feed`)."""
        if self._want:
            raise VhdError(f"the VHD stream ended at byte {self._pos + len(self._buf)} "
                           f"while reading {self._what}")
        tail = bytes(self._buf)
        if len(tail) < FOOTER_SIZE:
            raise VhdError(f"the VHD stream ended at byte {self._pos + len(tail)} "
                           "without its 512-byte footer")
        if self._fixed:
            self._check_fixed(tail)
        else:
            self._check_end(tail)
        self.close()

    def _check_fixed(self, tail: bytes) -> None:
        try:
            footer = Footer.unpack(tail, "footer at the end")
        except VhdError as exc:
            raise VhdError(f"not a VHD: the stream neither starts with a dynamic VHD's footer "
                           f"copy nor ends with a fixed VHD's footer ({exc})") from None
        if footer.disk_type == DISK_DIFFERENCING:
            raise _differencing()
        if footer.disk_type != DISK_FIXED:
            raise VhdError(f"the footer at the end is of disk type {footer.disk_type}, but the "
                           "stream does not start with a valid footer copy")
        if footer.current_size != self._pos:
            raise VhdError(f"fixed VHD: the footer says {footer.current_size} bytes of data, "
                           f"the stream held {self._pos}")
        self.footer = footer

    def _check_end(self, tail: bytes) -> None:
        footer = Footer.unpack(tail, "footer at the end")
        head = self.footer
        assert head is not None
        if (footer.disk_type, footer.current_size, footer.unique_id) != (
            head.disk_type, head.current_size, head.unique_id
        ):
            raise VhdError("the VHD footer at the end does not match its copy at the start "
                           f"(type {footer.disk_type} / {head.disk_type}, size "
                           f"{footer.current_size} / {head.current_size})")

    def close(self) -> None:
        """Drop the spool, if any; safe to call more than once."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self._parser.close()

    def __enter__(self) -> VhdReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the format ------------------------------------------------------------------------

    def _parse(self) -> _Parser:
        raw = yield FOOTER_SIZE
        assert raw is not None
        if raw[:8] != COOKIE or _disk_type(raw) == DISK_FIXED:
            # No footer copy: a fixed disk, whose footer is the stream's last 512 bytes.
            self._fixed = True
            self._buf[:0] = raw
            self._pos -= len(raw)
            self._what = "a fixed VHD"
            yield 0
            return
        footer = Footer.unpack(raw, "footer copy at the start")
        if footer.disk_type == DISK_DIFFERENCING:
            raise _differencing()
        if footer.disk_type != DISK_DYNAMIC:
            raise VhdError(f"VHD disk type {footer.disk_type} is not one of fixed (2), "
                           "dynamic (3) or differencing (4)")
        if footer.data_offset == NO_OFFSET or footer.data_offset < FOOTER_SIZE:
            raise VhdError(f"dynamic VHD: bad dynamic header offset {footer.data_offset}")
        self.footer = footer
        self._spooling = True
        yield from self._skip_to(footer.data_offset)
        self._what = "the dynamic header"
        header = DynamicHeader.unpack((yield HEADER_SIZE) or b"")
        needed = -(-footer.current_size // header.block_size)
        if not needed <= header.max_table_entries <= MAX_TABLE_ENTRIES:
            raise VhdError(f"dynamic VHD: {header.max_table_entries} BAT entries for "
                           f"{needed} blocks of {header.block_size} bytes")
        self.header = header
        table_bytes = header.max_table_entries * 4
        self._what = "the BAT"
        if header.table_offset >= self._pos:
            yield from self._skip_to(header.table_offset)
            raw_table = (yield table_bytes) or b""
        else:
            raw_table = self._from_spool(header.table_offset, table_bytes, "the BAT")
        self._spooling = False
        table = struct.unpack(f">{header.max_table_entries}I", raw_table)
        metadata = [(0, FOOTER_SIZE), (footer.data_offset, footer.data_offset + HEADER_SIZE),
                    (header.table_offset, header.table_offset + table_bytes)]
        blocks = self._place_blocks(table, metadata)
        for start, index in blocks:
            if start < self._pos:
                self._spooled_block(index, start)
                continue
            yield from self._skip_to(start)
            yield from self._block(index)
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self._what = "the footer at the end"
        yield 0

    def _place_blocks(self, table: tuple[int, ...],
                      metadata: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """(stream offset, index) of the allocated blocks in stream order, checked for overlap."""
        assert self.header is not None
        stride = bitmap_size(self.header.block_size) + self.header.block_size
        blocks = sorted((sector * SECTOR, index) for index, sector in enumerate(table)
                        if sector != UNUSED)
        previous = (-1, 0)
        for start, index in blocks:
            end = start + stride
            for low, high in metadata:
                if start < high and low < end:
                    raise VhdError(f"VHD block {index} at byte {start} overlaps the VHD's "
                                   f"metadata at bytes {low}..{high}")
            if start < previous[1]:
                raise VhdError(f"VHD blocks {previous[0]} and {index} overlap at byte {start}")
            previous = (index, end)
        return blocks

    def _skip_to(self, offset: int) -> _Parser:
        if offset > self._pos:
            yield self._pos - offset

    def _block(self, index: int) -> _Parser:
        assert self.header is not None
        size = self.header.block_size
        self._what = f"the bitmap of block {index}"
        bitmap = (yield bitmap_size(size)) or b""
        runs = present_runs(bitmap, size // SECTOR)
        done = 0
        while done < size:
            self._what = f"block {index}"
            data = (yield min(PIECE, size - done)) or b""
            self._emit(index, done, data, runs)
            done += len(data)

    def _spooled_block(self, index: int, start: int) -> None:
        assert self.header is not None
        size = self.header.block_size
        where = f"block {index}"
        bitmap_bytes = bitmap_size(size)
        runs = present_runs(self._from_spool(start, bitmap_bytes, where), size // SECTOR)
        for done in range(0, size, PIECE):
            length = min(PIECE, size - done)
            data = self._from_spool(start + bitmap_bytes + done, length, where)
            self._emit(index, done, data, runs)

    def _emit(self, index: int, done: int, data: bytes, runs: list[tuple[int, int]]) -> None:
        """Queue the present sectors of ``data`` (bytes ``done``.. of block ``index``)."""
        assert self.header is not None and self.footer is not None
        base = index * self.header.block_size
        first, last = done // SECTOR, (done + len(data)) // SECTOR
        for low, high in runs:
            low, high = max(low, first), min(high, last)
            if low >= high:
                continue
            offset = base + low * SECTOR
            length = min((high - low) * SECTOR, self.footer.current_size - offset)
            if length > 0:
                start = low * SECTOR - done
                self._out.append((offset, data[start : start + length]))

    # -- the spool -------------------------------------------------------------------------

    def _to_spool(self, data: memoryview) -> None:
        if self._spool is None:
            self._spool = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, dir=self._spool_dir)
        self._spool.seek(0, 2)
        at = self._spool.tell()
        self._spool.write(data)
        if self._spooled and self._spooled[-1][1] == self._pos:
            start, _, spool_at = self._spooled[-1]
            self._spooled[-1] = (start, self._pos + len(data), spool_at)
        else:
            self._spooled.append((self._pos, self._pos + len(data), at))

    def _from_spool(self, start: int, length: int, what: str) -> bytes:
        for low, high, at in self._spooled:
            if low <= start and start + length <= high and self._spool is not None:
                self._spool.seek(at + start - low)
                return self._spool.read(length)
        raise VhdError(f"{what} at byte {start} lies where the stream held VHD metadata")


def _differencing() -> VhdError:
    return VhdError("differencing VHDs (disk type 4) cannot be imported: they need their parent; "
                    "convert to a dynamic or fixed VHD first")
