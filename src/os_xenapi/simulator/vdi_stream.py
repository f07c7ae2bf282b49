"""The bytes of a VDI transfer, apart from HTTP: bodies turned into disk writes, disk writes put
into the VDI's sparse file, and a VDI file read out again, always in bounded pieces.

* :class:`RawReader` and :class:`ChunkedReader` turn an import body into ``(offset, bytes)``
  writes; the second speaks XAPI's own chunk protocol (``chunked=true``; ``vhd-tool``'s
  ``chunked.ml``): 12-byte little-endian headers ``{offset: u64, len: u32}``, each followed by
  ``len`` bytes for ``offset``, until a header whose offset and len are both 0.
* :class:`VdiWriter` applies writes to the file, coalesced into 4 MiB ``pwrite`` calls made off the
  event loop; all-zero data that lands on a hole is skipped so the file stays sparse.
* :class:`RawSource` reads a VDI file back in chunks, making holes into zeros without reading.
"""

from __future__ import annotations

import asyncio
import errno
import os
import struct
from collections.abc import Iterator

from .vhd import CHUNK, data_ranges, is_zero, read_at

FLUSH_AT = 4 * 1024 * 1024
_CHUNK_HEADER = struct.Struct("<QI")
_ZEROS = bytes(CHUNK)

Writes = list[tuple[int, bytes]]


class TransferError(Exception):
    """The body or the disk did not allow the transfer; the message says why."""


class RawReader:
    """A raw body: byte ``n`` of the body is byte ``n`` of the disk."""

    def __init__(self) -> None:
        self.received = 0

    def feed(self, data: bytes) -> Writes:
        at, self.received = self.received, self.received + len(data)
        return [(at, data)] if data else []

    def finish(self) -> None:
        """Nothing to check: the caller compares ``received`` with the Content-Length."""

    def close(self) -> None:
        """Nothing to release."""


class ChunkedReader:
    """A body in XAPI's chunk protocol; anything after the final empty header is ignored."""

    def __init__(self) -> None:
        self.done = False
        self._header = bytearray()
        self._at = 0
        self._left = 0
        self.chunks = 0

    def feed(self, data: bytes) -> Writes:
        out: Writes = []
        view = memoryview(data)
        i = 0
        while i < len(view) and not self.done:
            if self._left:
                count = min(self._left, len(view) - i)
                out.append((self._at, bytes(view[i : i + count])))
                self._at += count
                self._left -= count
                i += count
                continue
            take = min(_CHUNK_HEADER.size - len(self._header), len(view) - i)
            self._header += view[i : i + take]
            i += take
            if len(self._header) == _CHUNK_HEADER.size:
                self._at, self._left = _CHUNK_HEADER.unpack(self._header)
                self._header.clear()
                self.chunks += 1
                self.done = self._at == 0 and self._left == 0
        return out

    def finish(self) -> None:
        """Raises :class:`TransferError` unless the final empty chunk header arrived."""
        if not self.done:
            where = (f"inside chunk {self.chunks} ({self._left} bytes short)" if self._left
                     else f"after {self.chunks} chunks")
            raise TransferError(f"the chunked body ended {where} without the final chunk header "
                                "(offset 0, length 0)")

    def close(self) -> None:
        """Nothing to release."""


class VdiWriter:
    """Writes at offsets into one VDI file of ``size`` bytes; use :meth:`close` when done.

    Data past the end of the VDI is an error, except that ``zeros_past_end_ok`` lets zeros
    through (a VHD made by qemu-img rounds its size up to a CHS geometry).
    """

    def __init__(self, path: str | os.PathLike[str], size: int, *,
                 zeros_past_end_ok: bool = False) -> None:
        self.size = size
        self.zeros_past_end_ok = zeros_past_end_ok
        self._fd = os.open(path, os.O_RDWR)
        self._start = 0
        self._pending = bytearray()

    async def reset(self) -> None:
        """Make the whole VDI read as zeros (the file becomes one hole)."""
        await asyncio.get_running_loop().run_in_executor(None, self._reset_now)

    def _reset_now(self) -> None:
        os.ftruncate(self._fd, 0)
        os.ftruncate(self._fd, self.size)

    async def write(self, offset: int, data: bytes) -> None:
        """Queue ``data`` for ``offset``; raises :class:`TransferError` past the end of the VDI."""
        end = offset + len(data)
        if end > self.size:
            inside = max(0, self.size - offset)
            beyond = data[inside:]
            if not self.zeros_past_end_ok or not is_zero(beyond):
                raise TransferError(f"data for bytes {max(offset, self.size)}..{end} lies past "
                                    f"the end of the VDI ({self.size} bytes)")
            data = data[:inside]
        if not data:
            return
        if self._pending and offset == self._start + len(self._pending):
            self._pending += data
        else:
            await self.flush()
            self._start = offset
            self._pending = bytearray(data)
        if len(self._pending) >= FLUSH_AT:
            await self.flush()

    async def flush(self) -> None:
        """Write what is queued, in a worker thread."""
        if not self._pending:
            return
        data, self._pending = self._pending, bytearray()
        await asyncio.get_running_loop().run_in_executor(None, self._write_now, self._start, data)

    def _write_now(self, offset: int, data: bytearray) -> None:
        if is_zero(data) and self._is_hole(offset, len(data)):
            return
        view = memoryview(data)
        while view:
            done = os.pwrite(self._fd, view, offset)
            view, offset = view[done:], offset + done

    def _is_hole(self, offset: int, length: int) -> bool:
        if not hasattr(os, "SEEK_DATA"):
            return False
        try:
            return os.lseek(self._fd, offset, os.SEEK_DATA) >= offset + length
        except OSError as exc:
            return exc.errno == errno.ENXIO  # no data at or after offset

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class RawSource:
    """A VDI file read as ``size`` raw bytes, in chunks of at most :data:`~.vhd.CHUNK` bytes."""

    def __init__(self, path: str | os.PathLike[str], size: int) -> None:
        self.size = self.total_size = size
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self._ranges = data_ranges(self._fd, size)
        except BaseException:
            os.close(self._fd)
            raise

    def chunks(self) -> Iterator[bytes]:
        offset = 0
        for start, end in [*self._ranges, (self.size, self.size)]:
            yield from _zeros(start - offset)
            for at in range(start, end, CHUNK):
                yield read_at(self._fd, at, min(CHUNK, end - at))
            offset = end

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RawSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _zeros(count: int) -> Iterator[bytes]:
    while count > 0:
        step = min(count, CHUNK)
        yield _ZEROS if step == CHUNK else bytes(step)
        count -= step
