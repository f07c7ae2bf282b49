"""The simulator's dynamic VHD writer and streaming reader (src/os_xenapi/simulator/vhd.py,
vhd_reader.py), checked against the VHD spec's rules and against qemu-img as an outside referee."""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from os_xenapi.simulator import vhd
from os_xenapi.simulator.vhd import (
    BLOCK_SIZE,
    DISK_DIFFERENCING,
    DISK_FIXED,
    DynamicHeader,
    DynamicLayout,
    Footer,
    VhdError,
    VhdSource,
)
from os_xenapi.simulator.vhd_reader import VhdReader, present_runs

MiB = 1024 * 1024


def qemu_img() -> str:
    """The qemu-img binary; its absence fails the test unless OS_XENAPI_ALLOW_MISSING_QEMU=1."""
    path = shutil.which("qemu-img")
    if path:
        return path
    if os.environ.get("OS_XENAPI_ALLOW_MISSING_QEMU") == "1":
        pytest.skip("qemu-img is absent and OS_XENAPI_ALLOW_MISSING_QEMU=1")
    pytest.fail("qemu-img is missing: run scripts/install-system-deps.sh (Debian qemu-utils), "
                "or set OS_XENAPI_ALLOW_MISSING_QEMU=1 to skip the qemu-img checks")


def sparse_file(path: Path, size: int, writes: dict[int, bytes]) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
        for offset, data in writes.items():
            handle.seek(offset)
            handle.write(data)
    return path


def vhd_bytes(path: Path, size: int, footer: Footer | None = None) -> bytes:
    with VhdSource(path, size, footer=footer) as source:
        return b"".join(source.chunks())


def read_back(image: bytes, size: int, piece: int = 65536) -> bytes:
    """The disk a VHD stream describes, fed to VhdReader ``piece`` bytes at a time."""
    disk = bytearray(size)
    with VhdReader() as reader:
        for i in range(0, len(image), piece):
            for offset, data in reader.feed(image[i : i + piece]):
                disk[offset : offset + len(data)] = data
        reader.finish()
    return bytes(disk)


def random_bytes(count: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(count)


# -- footer, header, geometry -------------------------------------------------------------------


@pytest.mark.parametrize("size, chs", [
    (64 * MiB, (963, 8, 17)),
    (1024 * MiB, (2080, 16, 63)),
    (127 * 1024 * MiB, (65278, 16, 255)),
    (4 * 1024**4, (65535, 16, 255)),
])
def test_chs_geometry_follows_the_spec_algorithm(size: int, chs: tuple[int, int, int]) -> None:
    assert vhd.chs_geometry(size) == chs


def test_footer_round_trips_through_pack_and_unpack() -> None:
    footer = Footer(64 * MiB, unique_id=bytes(range(16)), timestamp=12345)
    parsed = Footer.unpack(footer.pack())
    assert (parsed.current_size, parsed.original_size, parsed.geometry) == (
        64 * MiB, 64 * MiB, (963, 8, 17))
    assert (parsed.unique_id, parsed.timestamp, parsed.creator_app) == (
        bytes(range(16)), 12345, b"tap\0")


def test_footer_checksum_is_ones_complement_of_the_byte_sum() -> None:
    raw = Footer(MiB).pack()
    stored = struct.unpack_from(">I", raw, 64)[0]
    assert stored == ~(sum(raw[:64]) + sum(raw[68:])) & 0xFFFFFFFF


def test_footer_with_a_bad_cookie_is_refused() -> None:
    raw = b"notavhd!" + Footer(MiB).pack()[8:]
    with pytest.raises(VhdError, match="cookie"):
        Footer.unpack(raw)


def test_footer_with_a_bad_checksum_is_refused() -> None:
    raw = bytearray(Footer(MiB).pack())
    raw[48] ^= 0x01  # the current size changes, the checksum does not
    with pytest.raises(VhdError, match="checksum"):
        Footer.unpack(bytes(raw))


def test_dynamic_header_with_a_bad_checksum_is_refused() -> None:
    raw = bytearray(DynamicHeader(1536, 32).pack())
    raw[30] ^= 0x01
    with pytest.raises(VhdError, match="dynamic header: bad checksum"):
        DynamicHeader.unpack(bytes(raw))


def test_bitmap_runs_follow_the_most_significant_bit_first() -> None:
    bitmap = bytes([0b11000000, 0b00000001]) + bytes(510)
    assert present_runs(bitmap, 4096) == [(0, 2), (15, 16)]


# -- writing --------------------------------------------------------------------------------------


def test_layout_puts_header_and_bat_before_the_blocks() -> None:
    layout = DynamicLayout(8 * MiB, [3, 1])
    head = layout.prologue()
    assert head[:8] == b"conectix" and head[512:520] == b"cxsparse"
    bat = struct.unpack(">4I", head[1536 : 1536 + 16])
    first = (1536 + 512) // 512
    assert bat == (0xFFFFFFFF, first, 0xFFFFFFFF, first + (512 + BLOCK_SIZE) // 512)
    assert layout.total_size == 2048 + 2 * (512 + BLOCK_SIZE) + 512


def test_all_zero_allocated_block_is_left_out_of_the_bat(tmp_path: Path) -> None:
    path = sparse_file(tmp_path / "disk", 8 * MiB, {2 * MiB: bytes(MiB), 5 * MiB: b"x"})
    with VhdSource(path, 8 * MiB) as source:
        assert source.layout.blocks == [2]


def test_sparse_gigabyte_disk_gives_a_small_vhd(tmp_path: Path) -> None:
    path = sparse_file(tmp_path / "disk", 1024 * MiB, {700 * MiB: b"data"})
    with VhdSource(path, 1024 * MiB) as source:
        assert source.total_size < 3 * MiB
        assert max(len(chunk) for chunk in source.chunks()) <= vhd.CHUNK


@pytest.mark.parametrize("size", [3 * MiB + 4096, 2 * MiB, 1000, 0])
def test_written_vhd_reads_back_as_the_same_disk(tmp_path: Path, size: int) -> None:
    writes = {0: random_bytes(min(size, 700))} if size else {}
    if size > 2 * MiB:
        writes[size - 100] = random_bytes(100, 1)
    path = sparse_file(tmp_path / "disk", size, writes)
    image = vhd_bytes(path, size)
    assert read_back(image, vhd.round_to_sector(size))[:size] == path.read_bytes()


# -- reading ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(piece=st.integers(min_value=1, max_value=40000))
def test_reader_takes_the_stream_in_pieces_of_any_size(piece: int) -> None:
    image, disk = _three_block_image(block_size=4096)
    assert read_back(image, len(disk), piece) == disk


def _three_block_image(block_size: int = BLOCK_SIZE) -> tuple[bytes, bytes]:
    """A disk of three blocks with data in blocks 0 and 2, and its dynamic VHD."""
    disk = bytearray(3 * block_size)
    disk[10:20] = b"0123456789"
    disk[2 * block_size + 5 : 2 * block_size + 9] = b"tail"
    layout = DynamicLayout(len(disk), [0, 2], block_size=block_size,
                           footer=Footer(0, unique_id=bytes(16), timestamp=0))
    body = b"".join(layout.bitmap(i) + bytes(disk[i * block_size : (i + 1) * block_size])
                    for i in layout.blocks)
    return layout.prologue() + body + layout.epilogue(), bytes(disk)


def _image(disk: bytes, order: list[int], bitmaps: dict[int, bytes] | None = None,
           bat_last: bool = False) -> bytes:
    """A hand-made dynamic VHD whose blocks sit in the stream in ``order``; with ``bat_last``
    the blocks come right after the header and the BAT after them."""
    entries = -(-len(disk) // BLOCK_SIZE)
    table_bytes = -(-entries * 4 // 512) * 512
    stride = 512 + BLOCK_SIZE
    first = 512 + 1024 if bat_last else 512 + 1024 + table_bytes
    table_offset = first + len(order) * stride if bat_last else 512 + 1024
    table = [0xFFFFFFFF] * entries
    blocks = b""
    for slot, index in enumerate(order):
        table[index] = (first + slot * stride) // 512
        blocks += (bitmaps or {}).get(index, b"\xff" * 512)
        blocks += disk[index * BLOCK_SIZE : (index + 1) * BLOCK_SIZE]
    bat = struct.pack(f">{entries}I", *table).ljust(table_bytes, b"\xff")
    footer, header = Footer(len(disk)).pack(), DynamicHeader(table_offset, entries).pack()
    middle = blocks + bat if bat_last else bat + blocks
    return footer + header + middle + footer


def test_reader_accepts_blocks_in_any_order_in_the_stream() -> None:
    disk = random_bytes(3 * BLOCK_SIZE)
    assert read_back(_image(disk, [2, 0, 1]), len(disk)) == disk


def test_reader_writes_only_sectors_the_bitmap_marks_present() -> None:
    disk = random_bytes(BLOCK_SIZE)
    bitmap = b"\x80" + bytes(511)  # only sector 0 is present
    expected = disk[:512] + bytes(BLOCK_SIZE - 512)
    assert read_back(_image(disk, [0], {0: bitmap}), len(disk)) == expected


def test_reader_spools_blocks_that_come_before_the_bat(tmp_path: Path) -> None:
    disk = random_bytes(2 * BLOCK_SIZE)
    image = _image(disk, [1, 0], bat_last=True)
    assert read_back(image, len(disk)) == disk


def test_reader_refuses_a_differencing_vhd() -> None:
    raw = Footer(MiB, disk_type=DISK_DIFFERENCING).pack()
    with VhdReader() as reader, pytest.raises(VhdError, match="differencing"):
        reader.feed(raw + bytes(2048))


def test_reader_reports_a_stream_cut_inside_a_block() -> None:
    image, _ = _three_block_image()
    with VhdReader() as reader:
        reader.feed(image[: 3000 + MiB])
        with pytest.raises(VhdError, match="ended at byte .* while reading block 0"):
            reader.finish()


def test_reader_refuses_an_end_footer_that_differs_from_the_copy() -> None:
    image, _ = _three_block_image()
    other = Footer(3 * BLOCK_SIZE, unique_id=b"\x01" * 16, timestamp=0).pack()
    with VhdReader() as reader:
        reader.feed(image[:-512] + other)
        with pytest.raises(VhdError, match="does not match its copy"):
            reader.finish()


def test_reader_refuses_a_bad_header_checksum() -> None:
    image = bytearray(_three_block_image()[0])
    image[512 + 30] ^= 0x01
    with VhdReader() as reader, pytest.raises(VhdError, match="dynamic header: bad checksum"):
        reader.feed(bytes(image))


def test_reader_accepts_a_fixed_vhd() -> None:
    disk = random_bytes(MiB)
    image = disk + Footer(MiB, disk_type=DISK_FIXED, data_offset=vhd.NO_OFFSET).pack()
    assert read_back(image, MiB, piece=1000) == disk


def test_reader_refuses_bytes_that_are_not_a_vhd() -> None:
    with VhdReader() as reader:
        reader.feed(random_bytes(4096))
        with pytest.raises(VhdError, match="not a VHD"):
            reader.finish()


# -- qemu-img as referee --------------------------------------------------------------------------


def test_qemu_img_reads_our_vhd_as_the_same_disk(tmp_path: Path) -> None:
    qemu = qemu_img()
    size = 10 * MiB + 3 * 512  # a partial last block and a size no CHS geometry gives
    path = sparse_file(tmp_path / "disk", size, {0: random_bytes(5000), 9 * MiB: b"z" * 9000})
    (tmp_path / "disk.vhd").write_bytes(vhd_bytes(path, size))
    info = json.loads(subprocess.run([qemu, "info", "--output=json", str(tmp_path / "disk.vhd")],
                                     check=True, capture_output=True, text=True).stdout)
    assert (info["format"], info["virtual-size"]) == ("vpc", size)
    subprocess.run([qemu, "convert", "-f", "vpc", "-O", "raw", str(tmp_path / "disk.vhd"),
                    str(tmp_path / "back.raw")], check=True)
    assert (tmp_path / "back.raw").read_bytes() == path.read_bytes()


def test_our_reader_reads_a_qemu_made_dynamic_vhd(tmp_path: Path) -> None:
    qemu = qemu_img()
    size = 9 * MiB
    path = sparse_file(tmp_path / "disk", size, {MiB: random_bytes(3 * MiB), 8 * MiB: b"q" * 10})
    subprocess.run([qemu, "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic",
                    str(path), str(tmp_path / "q.vhd")], check=True)
    image = (tmp_path / "q.vhd").read_bytes()
    reader_size = Footer.unpack(image[-512:]).current_size  # qemu rounds up to a CHS geometry
    assert read_back(image, reader_size)[:size] == path.read_bytes()
