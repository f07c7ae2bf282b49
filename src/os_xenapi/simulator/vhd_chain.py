"""VHD files and differencing chains, read from a directory: what a file SR's scan needs.

A file-based SR keeps each VDI as ``<uuid>.vhd`` in its directory. A snapshot, a clone or an
imported image is a *chain*: a differencing leaf whose dynamic header names its parent (the
parent's unique id and timestamp, its file name in UTF-16BE, and platform locators), down to a
dynamic or fixed base. This module:

* opens one file as a :class:`VhdImage`: the footer at the end (or, if that one is damaged, the
  copy at the start of a dynamic disk, as SM's scan falls back to it), the dynamic header and the
  BAT, all checked against the file's size;
* resolves a chain with :func:`open_chain`: each parent is looked up *in the same directory* by
  the base name its child records (the header's parent name, then the locators), must be a
  regular file there, and must carry the unique id the child expects; chains longer than SM's 30
  or with a loop are refused;
* flattens a chain into a sparse raw file with :func:`flatten`: every sector comes from the first
  disk, leaf first, whose block bitmap marks it present; a dynamic base ends the search, and what
  no disk holds reads as zeros. All-zero data is not written, so holes stay holes.

Every problem raises :class:`~.vhd.VhdError` (:class:`ChainError` for chain problems) with a
message naming the file and what is wrong.
"""

from __future__ import annotations

import os
import stat
import struct
import uuid as _uuid
from collections.abc import Iterator
from dataclasses import dataclass

from .vhd import (
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
    ParentLocator,
    VhdError,
    bitmap_size,
    data_ranges,
    is_zero,
    read_at,
)
from .vhd_reader import MAX_TABLE_ENTRIES, present_runs

MAX_CHAIN = 30  # SM's vhdutil.MAX_CHAIN_SIZE: no longer chains are made or opened
MAX_LOCATOR = 4096  # bytes of locator data worth reading: a path, not a payload
FLATTEN_UNIT = 2 * 1024 * 1024  # bytes flattened at a time when the leaf is a fixed disk

Run = tuple[int, int, int]  # [first sector, end sector) and the file offset of the first


class ChainError(VhdError):
    """A differencing chain that cannot be used: a parent missing, mismatched, looping."""


@dataclass(frozen=True)
class VhdImage:
    """One VHD file's metadata: enough to find its parent and read its sectors."""

    path: str
    file_size: int
    footer: Footer
    header: DynamicHeader | None  # None for a fixed disk
    table: tuple[int, ...]  # the BAT in sectors (UNUSED = not allocated); empty when fixed

    @property
    def size(self) -> int:
        """The disk's virtual size in bytes."""
        return self.footer.current_size

    @property
    def differencing(self) -> bool:
        return self.footer.disk_type == DISK_DIFFERENCING

    @property
    def hidden(self) -> bool:
        """blktap's hidden flag: the disk is a base copy its children read through."""
        return bool(self.footer.hidden)

    @property
    def unique_id(self) -> str:
        return str(_uuid.UUID(bytes=self.footer.unique_id))

    @property
    def parent_unique_id(self) -> str:
        """The unique id of the parent the header names ("" for a non-differencing disk)."""
        if self.header is None or not self.differencing:
            return ""
        return str(_uuid.UUID(bytes=self.header.parent_unique_id))

    def present(self, fd: int, start: int, end: int) -> list[Run]:
        """The runs of sectors in [start, end) this disk holds, with their file offsets.

        ``fd`` is this file opened for reading. A fixed disk holds every sector below its size;
        a dynamic or differencing one what its block bitmaps mark present.
        """
        end = min(end, self.size // SECTOR)
        if start >= end:
            return []
        if self.header is None:
            return [(start, end, start * SECTOR)]
        per_block = self.header.block_size // SECTOR
        bitmap_bytes = bitmap_size(self.header.block_size)
        runs: list[Run] = []
        for index in range(start // per_block, (end - 1) // per_block + 1):
            entry = self.table[index] if index < len(self.table) else UNUSED
            if entry == UNUSED:
                continue
            base = index * per_block
            block_at = entry * SECTOR
            bitmap = read_at(fd, block_at, bitmap_bytes)
            for low, high in present_runs(bitmap, per_block):
                low, high = max(low + base, start), min(high + base, end)
                if low < high:
                    runs.append((low, high, block_at + bitmap_bytes + (low - base) * SECTOR))
        return runs

    def blocks_with_data(self) -> Iterator[tuple[int, int]]:
        """[first, end) byte ranges of the disk where this file may hold data."""
        if self.header is None:  # a fixed disk: its file's data extents (holes read as zeros)
            with open(self.path, "rb") as handle:
                yield from data_ranges(handle.fileno(), self.size)
            return
        block = self.header.block_size
        for index, entry in enumerate(self.table):
            if entry != UNUSED and index * block < self.size:
                yield index * block, min((index + 1) * block, self.size)


def open_image(path: str) -> VhdImage:
    """Read the metadata of the VHD file at ``path``; raises VhdError saying what is wrong."""
    name = os.path.basename(path)
    with open(path, "rb") as handle:
        fd = handle.fileno()
        file_size = os.fstat(fd).st_size
        if file_size < FOOTER_SIZE:
            raise VhdError(f"{name}: {file_size} bytes, too short for a VHD footer")
        footer = _footer(fd, file_size, name)
        if footer.disk_type == DISK_FIXED:
            if file_size - FOOTER_SIZE < footer.current_size:
                raise VhdError(f"{name}: a fixed VHD of {footer.current_size} bytes in a file "
                               f"of only {file_size}")
            return VhdImage(path, file_size, footer, None, ())
        if footer.disk_type not in (DISK_DYNAMIC, DISK_DIFFERENCING):
            raise VhdError(f"{name}: disk type {footer.disk_type} is not fixed (2), dynamic (3) "
                           "or differencing (4)")
        at = footer.data_offset
        if at == NO_OFFSET or at + HEADER_SIZE > file_size:
            raise VhdError(f"{name}: dynamic header offset {at} lies outside the file")
        try:
            header = DynamicHeader.unpack(read_at(fd, at, HEADER_SIZE))
        except VhdError as exc:
            raise VhdError(f"{name}: {exc}") from None
        return VhdImage(path, file_size, footer, header, _table(fd, file_size, footer, header,
                                                                name))


def _footer(fd: int, file_size: int, name: str) -> Footer:
    """The footer at the end; the copy at the start if the end one is damaged (not fixed)."""
    try:
        return Footer.unpack(read_at(fd, file_size - FOOTER_SIZE, FOOTER_SIZE),
                             "footer at the end")
    except VhdError as exc:
        try:
            copy = Footer.unpack(read_at(fd, 0, FOOTER_SIZE), "footer copy at the start")
        except VhdError:
            raise VhdError(f"{name}: not a VHD ({exc})") from None
        if copy.disk_type not in (DISK_DYNAMIC, DISK_DIFFERENCING):
            raise VhdError(f"{name}: not a VHD ({exc})") from None
        return copy


def _table(fd: int, file_size: int, footer: Footer, header: DynamicHeader,
           name: str) -> tuple[int, ...]:
    """The BAT, checked: enough entries for the disk, and every block inside the file."""
    needed = -(-footer.current_size // header.block_size)
    entries = header.max_table_entries
    if not needed <= entries <= MAX_TABLE_ENTRIES:
        raise VhdError(f"{name}: {entries} BAT entries for {needed} blocks of "
                       f"{header.block_size} bytes")
    if header.table_offset + entries * 4 > file_size:
        raise VhdError(f"{name}: the BAT at byte {header.table_offset} runs past the end of "
                       "the file")
    table = struct.unpack(f">{entries}I", read_at(fd, header.table_offset, entries * 4))
    stride = bitmap_size(header.block_size) + header.block_size
    for index, entry in enumerate(table[:needed]):
        if entry != UNUSED and entry * SECTOR + stride > file_size:
            raise VhdError(f"{name}: block {index} at byte {entry * SECTOR} runs past the end "
                           f"of the file ({file_size} bytes)")
    return table


# -- chains -------------------------------------------------------------------------------------


def parent_names(image: VhdImage) -> list[str]:
    """File names the parent may have, as the child records them: the header's parent name
    first, then each locator's path, reduced to base names (the parent is looked up beside it)."""
    if image.header is None or not image.differencing:
        return []
    names = [image.header.parent_name]
    with open(image.path, "rb") as handle:
        for locator in image.header.parent_locators:
            names.append(_locator_path(handle.fileno(), image, locator))
    found: list[str] = []
    for name in names:
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        if base and base not in (".", "..") and base not in found:
            found.append(base)
    return found


def _locator_path(fd: int, image: VhdImage, locator: ParentLocator) -> str:
    length = min(locator.data_length, MAX_LOCATOR)
    if locator.data_offset + length > image.file_size:
        return ""
    raw = read_at(fd, locator.data_offset, length)
    if locator.platform_code == b"MacX":
        text = raw.decode("utf-8", errors="replace")
        return text[len("file://"):] if text.startswith("file://") else text
    if locator.platform_code in (b"W2ku", b"W2ru"):
        return raw.decode("utf-16-le", errors="replace")
    return ""


def _regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def find_parent(directory: str, child: VhdImage) -> VhdImage:
    """The parent of ``child``: a regular file in ``directory`` named as the child records it,
    whose footer unique id is the one the child's header expects. Raises ChainError."""
    name = os.path.basename(child.path)
    candidates = parent_names(child)
    present = [c for c in candidates if _regular(os.path.join(directory, c))]
    if not present:
        wanted = candidates[0] if candidates else "(no name recorded)"
        raise ChainError(f"{name}: its parent {wanted} is missing")
    for candidate in present:
        parent = open_image(os.path.join(directory, candidate))
        if parent.unique_id == child.parent_unique_id:
            return parent
    raise ChainError(f"{name}: its parent {present[0]} has unique id "
                     f"{open_image(os.path.join(directory, present[0])).unique_id}, not the "
                     f"{child.parent_unique_id} it expects")


def open_chain(directory: str, name: str) -> list[VhdImage]:
    """The chain of ``directory/name``, leaf first; raises VhdError or ChainError."""
    images = [open_image(os.path.join(directory, name))]
    seen = {_identity(images[0].path)}
    while images[-1].differencing:
        if len(images) >= MAX_CHAIN:
            raise ChainError(f"{name}: its chain is longer than {MAX_CHAIN} VHDs")
        parent = find_parent(directory, images[-1])
        identity = _identity(parent.path)
        if identity in seen:
            raise ChainError(f"{name}: its chain loops back to {os.path.basename(parent.path)}")
        seen.add(identity)
        images.append(parent)
    return images


def _identity(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


# -- flattening ---------------------------------------------------------------------------------


def _subtract(need: list[tuple[int, int]], runs: list[Run]) -> list[tuple[int, int]]:
    for low, high, _ in runs:
        rest = []
        for start, end in need:
            if high <= start or end <= low:
                rest.append((start, end))
                continue
            if start < low:
                rest.append((start, low))
            if high < end:
                rest.append((high, end))
        need = rest
    return need


def _units(chain: list[VhdImage]) -> list[tuple[int, int]]:
    """[first, end) sector ranges of the leaf worth reading: where any disk may hold data."""
    leaf = chain[0]
    unit = (leaf.header.block_size if leaf.header is not None else FLATTEN_UNIT) // SECTOR
    total = -(-leaf.size // SECTOR)
    indexes: set[int] = set()
    for image in chain:
        for start, end in image.blocks_with_data():
            first, last = start // SECTOR // unit, (min(end, leaf.size) - 1) // SECTOR // unit
            indexes.update(range(first, last + 1))
            if image.header is None:
                break
    return [(i * unit, min((i + 1) * unit, total)) for i in sorted(indexes) if i * unit < total]


def flatten(chain: list[VhdImage], target: str) -> None:
    """Write the disk ``chain`` (leaf first) holds to ``target`` as a sparse raw file of the
    leaf's size, replacing what was there."""
    fds: list[int] = []
    try:
        for image in chain:
            fds.append(os.open(image.path, os.O_RDONLY))
        with open(target, "wb") as out:
            out.truncate(chain[0].size)
            for start, end in _units(chain):
                need = [(start, end)]
                for image, fd in zip(chain, fds, strict=True):
                    runs = image.present(fd, start, end)
                    _copy_runs(fd, out.fileno(), runs, need)
                    need = _subtract(need, runs)
                    if not need or not image.differencing:
                        break
    finally:
        for fd in fds:
            os.close(fd)


def _copy_runs(fd: int, out: int, runs: list[Run], need: list[tuple[int, int]]) -> None:
    """Copy the parts of ``runs`` that are still needed (a disk nearer the leaf had the rest)."""
    for low, high, offset in runs:
        for start, end in need:
            first, last = max(low, start), min(high, end)
            if first >= last:
                continue
            data = read_at(fd, offset + (first - low) * SECTOR, (last - first) * SECTOR)
            if not is_zero(data):
                os.pwrite(out, data, first * SECTOR)
