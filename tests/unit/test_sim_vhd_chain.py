"""Reading VHD files and differencing chains from a directory (simulator/vhd_chain.py).

The chains are made with the simulated dom0's simvhd (loaded from the dom0 environment), an
independent writer of the format; qemu-img judges where it can read the file (it reads dynamic
and fixed VHDs, not differencing ones).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from os_xenapi.simulator.plugins import dom0env_module
from os_xenapi.simulator.vhd import (
    DynamicHeader,
    Footer,
    ParentLocator,
    VhdError,
    VhdSource,
)
from os_xenapi.simulator.vhd_chain import (
    ChainError,
    flatten,
    open_chain,
    open_image,
    parent_names,
)

MiB = 1024 * 1024
SIZE = 8 * MiB


simvhd = dom0env_module("simvhd")


def make(directory: Path, parent: str | None = None, hidden: bool = False,
         writes: tuple[tuple[int, bytes], ...] = (), size: int = SIZE) -> str:
    """<uuid>.vhd in ``directory`` (a child of ``parent``, a uuid, if given); returns the uuid."""
    name = str(uuid.uuid4())
    path = str(directory / f"{name}.vhd")
    simvhd.create(path, size, parent=str(directory / f"{parent}.vhd") if parent else None,
                  uuid=name, hidden=hidden)
    for offset, data in writes:
        simvhd.write(path, offset, data)
    return name


def flattened(directory: Path, name: str, out: Path) -> bytes:
    flatten(open_chain(str(directory), f"{name}.vhd"), str(out))
    return out.read_bytes()


# -- the format additions in vhd.py ----------------------------------------------------------------


def test_a_footer_keeps_the_hidden_flag_through_pack_and_unpack() -> None:
    assert Footer.unpack(Footer(SIZE, hidden=1).pack()).hidden == 1


def test_a_header_keeps_its_parent_through_pack_and_unpack() -> None:
    locator = ParentLocator(b"MacX", 1, 20, 1536)
    header = DynamicHeader(2048, 4, parent_unique_id=bytes(range(16)), parent_timestamp=7,
                           parent_name="parent.vhd", parent_locators=(locator,))
    assert DynamicHeader.unpack(header.pack()) == header


def test_a_parent_name_longer_than_the_header_holds_is_refused() -> None:
    with pytest.raises(VhdError, match="longer than 256"):
        DynamicHeader(2048, 4, parent_name="x" * 257).pack()


# -- opening one file -----------------------------------------------------------------------------


def test_an_image_reports_what_simvhd_wrote(tmp_path: Path) -> None:
    base = make(tmp_path, hidden=True)
    leaf = make(tmp_path, parent=base)
    image = open_image(str(tmp_path / f"{leaf}.vhd"))
    assert (image.unique_id, image.size, image.differencing, image.parent_unique_id) == (
        leaf, SIZE, True, base)
    assert open_image(str(tmp_path / f"{base}.vhd")).hidden
    assert parent_names(image)[0] == f"{base}.vhd"


def test_a_file_that_is_no_vhd_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "junk.vhd").write_bytes(b"junk" * 300)
    with pytest.raises(VhdError, match="junk.vhd: not a VHD"):
        open_image(str(tmp_path / "junk.vhd"))


def test_a_file_too_short_for_a_footer_is_refused(tmp_path: Path) -> None:
    (tmp_path / "short.vhd").write_bytes(b"x" * 100)
    with pytest.raises(VhdError, match="too short"):
        open_image(str(tmp_path / "short.vhd"))


def test_a_bat_pointing_past_the_end_of_the_file_is_refused(tmp_path: Path) -> None:
    name = make(tmp_path, writes=((0, b"data"),))
    path = tmp_path / f"{name}.vhd"
    footer = path.read_bytes()[-512:]
    with open(path, "r+b") as handle:  # cut the block off, keep a valid footer at the end
        handle.truncate(512 + 1024 + 512)
        handle.seek(0, 2)
        handle.write(footer)
    with pytest.raises(VhdError, match="block 0 .* runs past the end"):
        open_image(str(path))


def test_a_damaged_end_footer_falls_back_to_the_copy_at_the_start(tmp_path: Path) -> None:
    name = make(tmp_path, writes=((0, b"data"),))
    path = tmp_path / f"{name}.vhd"
    with open(path, "r+b") as handle:
        handle.seek(-512, 2)
        handle.write(b"\0" * 512)
    assert open_image(str(path)).unique_id == name


# -- chains ---------------------------------------------------------------------------------------


def test_a_chain_is_listed_leaf_first(tmp_path: Path) -> None:
    base = make(tmp_path)
    middle = make(tmp_path, parent=base)
    leaf = make(tmp_path, parent=middle)
    chain = open_chain(str(tmp_path), f"{leaf}.vhd")
    assert [image.unique_id for image in chain] == [leaf, middle, base]


def test_a_missing_parent_is_a_chain_error_naming_it(tmp_path: Path) -> None:
    base = make(tmp_path)
    leaf = make(tmp_path, parent=base)
    os.unlink(tmp_path / f"{base}.vhd")
    with pytest.raises(ChainError, match=f"parent {base}.vhd is missing"):
        open_chain(str(tmp_path), f"{leaf}.vhd")


def test_a_parent_with_another_unique_id_is_a_chain_error(tmp_path: Path) -> None:
    base = make(tmp_path)
    leaf = make(tmp_path, parent=base)
    os.unlink(tmp_path / f"{base}.vhd")
    simvhd.create(str(tmp_path / f"{base}.vhd"), SIZE)
    with pytest.raises(ChainError, match=f"not the {base} it expects"):
        open_chain(str(tmp_path), f"{leaf}.vhd")


def test_a_parent_is_only_looked_for_beside_its_child(tmp_path: Path) -> None:
    outside, inside = tmp_path / "outside", tmp_path / "sr"
    outside.mkdir()
    inside.mkdir()
    base = make(outside)
    simvhd.create(str(inside / "leaf.vhd"), 0, parent=str(outside / f"{base}.vhd"))
    with pytest.raises(ChainError, match="is missing"):
        open_chain(str(inside), "leaf.vhd")


def test_a_parent_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    base = make(tmp_path)
    leaf = make(tmp_path, parent=base)
    (tmp_path / f"{base}.vhd").rename(tmp_path / "real")
    (tmp_path / f"{base}.vhd").symlink_to(tmp_path / "real")
    with pytest.raises(ChainError, match="is missing"):
        open_chain(str(tmp_path), f"{leaf}.vhd")


def test_a_chain_that_loops_is_a_chain_error(tmp_path: Path) -> None:
    first = str(uuid.uuid4())
    simvhd.create(str(tmp_path / "a.vhd"), SIZE, uuid=first)
    simvhd.create(str(tmp_path / "b.vhd"), 0, parent=str(tmp_path / "a.vhd"))
    simvhd.create(str(tmp_path / "c.vhd"), 0, parent=str(tmp_path / "b.vhd"), uuid=first)
    (tmp_path / "c.vhd").replace(tmp_path / "a.vhd")  # a now has b as parent, b has a
    with pytest.raises(ChainError, match="loops"):
        open_chain(str(tmp_path), "b.vhd")


# -- flattening -----------------------------------------------------------------------------------


def test_a_dynamic_vhd_flattens_to_its_bytes(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(3 * MiB)
    name = make(tmp_path, writes=((MiB + 512, data),))
    expected = simvhd.read(str(tmp_path / f"{name}.vhd"), 0, SIZE)
    assert flattened(tmp_path, name, tmp_path / "out") == expected


def test_a_chain_flattens_to_the_overlay_of_its_disks(tmp_path: Path) -> None:
    rng = random.Random(4)
    base = make(tmp_path, writes=((0, rng.randbytes(5 * MiB)),))
    middle = make(tmp_path, parent=base, writes=((MiB - 700, rng.randbytes(1500)),))
    leaf = make(tmp_path, parent=middle, writes=((3, b"leaf"), (7 * MiB, rng.randbytes(9000))))
    expected = simvhd.read(str(tmp_path / f"{leaf}.vhd"), 0, SIZE)
    assert flattened(tmp_path, leaf, tmp_path / "out") == expected


def test_flattening_keeps_unwritten_ranges_as_holes(tmp_path: Path) -> None:
    name = make(tmp_path, size=64 * MiB, writes=((40 * MiB, b"x" * MiB),))
    out = tmp_path / "out"
    flattened(tmp_path, name, out)
    assert out.stat().st_size == 64 * MiB
    assert out.stat().st_blocks * 512 < 8 * MiB


def test_flattening_matches_qemu_img_for_a_dynamic_vhd_simvhd_wrote(tmp_path: Path) -> None:
    qemu = shutil.which("qemu-img")
    if qemu is None:
        pytest.skip("qemu-img is not installed")
    name = make(tmp_path, writes=((5000, random.Random(7).randbytes(3 * MiB)),))
    subprocess.run([qemu, "convert", "-f", "vpc", "-O", "raw", str(tmp_path / f"{name}.vhd"),
                    str(tmp_path / "qemu")], check=True)
    assert flattened(tmp_path, name, tmp_path / "ours") == (tmp_path / "qemu").read_bytes()


def test_flattening_matches_qemu_img_for_a_vhd_the_simulator_renders(tmp_path: Path) -> None:
    qemu = shutil.which("qemu-img")
    if qemu is None:
        pytest.skip("qemu-img is not installed")
    raw = tmp_path / "raw"
    raw.write_bytes(random.Random(5).randbytes(3 * MiB) + bytes(MiB))
    with VhdSource(raw, 4 * MiB) as source, open(tmp_path / "disk.vhd", "wb") as out:
        for chunk in source.chunks():
            out.write(chunk)
    subprocess.run([qemu, "convert", "-f", "vpc", "-O", "raw", str(tmp_path / "disk.vhd"),
                    str(tmp_path / "qemu")], check=True)
    assert flattened(tmp_path, "disk", tmp_path / "ours") == (tmp_path / "qemu").read_bytes()


def test_a_fixed_vhd_flattens_to_its_data(tmp_path: Path) -> None:
    qemu = shutil.which("qemu-img")
    if qemu is None:
        pytest.skip("qemu-img is not installed")
    raw = tmp_path / "raw"
    raw.write_bytes(random.Random(6).randbytes(2 * MiB))
    subprocess.run([qemu, "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed",
                    str(raw), str(tmp_path / "fixed.vhd")], check=True)
    image = open_image(str(tmp_path / "fixed.vhd"))
    assert image.header is None
    out = tmp_path / "out"
    flatten([image], str(out))
    assert out.read_bytes()[: 2 * MiB] == raw.read_bytes()
