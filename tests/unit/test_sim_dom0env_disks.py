"""The simulated dom0's disk stand-ins (dom0env/bin: sfdisk, kpartx, mkfs, mkswap), each run as
a subprocess in a scratch DOM0_ROOT, as partition_utils runs them: the partition table they
write, the partition files and their write-back, and every refusal that keeps them on the
simulated dom0's own files.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from os_xenapi.simulator.plugins import DOM0ENV, dom0_environment

MiB = 1024 * 1024
SECTOR = 512
SWAP_MAGIC = b"SWAPSPACE2"


def run(root: Path | None, program: str, *args: str, script: str | None = None,
        stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    """program of dom0env/bin with args, DOM0_ROOT=root (unset if None), stdin from script or
    the fd stdin (else /dev/null); at most 60 s."""
    env = dom0_environment(root or "")
    if root is None:
        del env["DOM0_ROOT"]
    feed = {"input": script} if script is not None else \
        {"stdin": subprocess.DEVNULL if stdin is None else stdin}
    return subprocess.run([str(DOM0ENV / "bin" / program), *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False, **feed)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    made = tmp_path / "dom0"
    (made / "dev").mkdir(parents=True)
    return made


def vdi(tmp_path: Path, root: Path, size: int = 8 * MiB, name: str = "xvdb") -> Path:
    """A sparse VDI file outside the root, plugged as the disk node DOM0_ROOT/dev/<name>."""
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    path = store / f"{name}.img"
    with open(path, "wb") as handle:
        handle.truncate(size)
    (root / "dev" / name).symlink_to(path)
    return path


def entry(disk: Path) -> tuple[int, bytes, int, bytes, int, int]:
    """The first partition entry of disk's MBR: status, start CHS, type, end CHS, start, count."""
    with open(disk, "rb") as handle:
        sector = handle.read(SECTOR)
    return struct.unpack_from("<B3sB3sII", sector, 446)  # type: ignore[return-value]


def partitioned(tmp_path: Path, root: Path, size: int = 8 * MiB,
                script: str = "2048,;\n") -> Path:
    disk = vdi(tmp_path, root, size)
    assert run(root, "sfdisk", "-uS", str(root / "dev/xvdb"), script=script).returncode == 0
    return disk


def mappings(root: Path) -> dict:
    return json.loads((root / "var/lib/simkpartx.json").read_text())["maps"]


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


# -- sfdisk ------------------------------------------------------------------------------------

def test_sfdisk_v_prints_the_util_linux_version_line(root: Path) -> None:
    assert run(root, "sfdisk", "-v").stdout == "sfdisk from util-linux 2.38.1\n"


def test_sfdisk_v_does_not_read_stdin(root: Path) -> None:
    reader, writer = os.pipe()  # a stdin that never ends: reading it would hang
    try:
        assert run(root, "sfdisk", "-v", stdin=reader).returncode == 0
    finally:
        os.close(reader)
        os.close(writer)


def test_sfdisk_writes_an_mbr_with_one_linux_partition_to_the_end(tmp_path: Path,
                                                                   root: Path) -> None:
    disk = partitioned(tmp_path, root)
    first = disk.read_bytes()[:SECTOR]
    assert first[510:] == b"\x55\xaa"
    assert first[440:444] != b"\0\0\0\0"  # a disk identifier
    assert entry(disk) == (0, b"\x20\x21\x00", 0x83, b"\x05\x04\x01", 2048, 16384 - 2048)


def test_sfdisk_table_reads_back_with_util_linux_partx(tmp_path: Path, root: Path) -> None:
    if not shutil.which("partx"):
        pytest.skip("util-linux partx is not installed")
    disk = partitioned(tmp_path, root)
    shown = subprocess.run(["partx", "--raw", "--noheadings", "-o",
                            "NR,START,SECTORS", str(disk)],
                           capture_output=True, text=True, timeout=30, check=True)
    assert shown.stdout.split() == ["1", "2048", str(16384 - 2048)]


def test_sfdisk_prints_a_summary_naming_the_new_partition(tmp_path: Path, root: Path) -> None:
    vdi(tmp_path, root)
    done = run(root, "sfdisk", "--force", "-uS", str(root / "dev/xvdb"), script="2048,;\n")
    assert f"{root}/dev/xvdb1: Created a new partition 1 of type 'Linux'" in done.stdout


def test_sfdisk_start_and_size_bound_the_partition(tmp_path: Path, root: Path) -> None:
    disk = partitioned(tmp_path, root, script="2048,4096\n")
    assert entry(disk)[4:] == (2048, 4096)


def test_sfdisk_size_beyond_the_disk_stops_at_its_last_sector(tmp_path: Path,
                                                              root: Path) -> None:
    disk = partitioned(tmp_path, root, script="2048 999999\n")
    assert entry(disk)[4:] == (2048, 16384 - 2048)


def test_sfdisk_type_field_sets_the_partition_type(tmp_path: Path, root: Path) -> None:
    disk = partitioned(tmp_path, root, script="2048,,82\n")
    assert entry(disk)[2] == 0x82


def test_sfdisk_addresses_beyond_cylinder_1023_as_chs_fe_ff_ff(tmp_path: Path,
                                                              root: Path) -> None:
    disk = partitioned(tmp_path, root, size=10 * 1024 * MiB)
    assert entry(disk)[3] == b"\xfe\xff\xff"


@pytest.mark.parametrize("start", ["16384", "99999", "0"])
def test_sfdisk_start_outside_the_disk_is_out_of_range_and_writes_nothing(
    tmp_path: Path, root: Path, start: str,
) -> None:
    disk = vdi(tmp_path, root)
    done = run(root, "sfdisk", "-uS", str(root / "dev/xvdb"), script=f"{start},;\n")
    assert done.returncode == 1
    assert f"Start sector {start} out of range." in done.stderr
    assert "Failed to add #1 partition" in done.stderr
    assert allocated(disk) == 0 and disk.read_bytes().count(0) == 8 * MiB


def test_sfdisk_on_a_disk_smaller_than_two_sectors_fails(tmp_path: Path, root: Path) -> None:
    vdi(tmp_path, root, size=SECTOR)
    done = run(root, "sfdisk", "-uS", str(root / "dev/xvdb"), script="1,;\n")
    assert done.returncode == 1 and "smaller than two sectors" in done.stderr


@pytest.mark.parametrize("script", ["", "2048,;\n4096,;\n", "start,;\n", "2048,0\n",
                                    "2048,,5\n", "2048,,zz\n", "2048,10,83,*\n",
                                    "label: gpt\n"])
def test_sfdisk_refuses_other_scripts_and_writes_nothing(tmp_path: Path, root: Path,
                                                         script: str) -> None:
    disk = vdi(tmp_path, root)
    done = run(root, "sfdisk", "-uS", str(root / "dev/xvdb"), script=script)
    assert done.returncode == 1 and done.stderr.startswith("sfdisk: ")
    assert allocated(disk) == 0


def test_sfdisk_refuses_a_terminal_on_stdin(tmp_path: Path, root: Path) -> None:
    vdi(tmp_path, root)
    controller, terminal = os.openpty()
    try:
        done = run(root, "sfdisk", "-uS", str(root / "dev/xvdb"), stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert done.returncode == 1 and "no interactive mode" in done.stderr


def test_sfdisk_refuses_a_disk_outside_the_root(tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "outside.img"
    outside.write_bytes(bytes(MiB))
    done = run(root, "sfdisk", "-uS", str(outside), script="2048,;\n")
    assert done.returncode == 1 and "outside the simulated dom0" in done.stderr
    assert outside.read_bytes().count(0) == MiB


def test_sfdisk_refuses_a_symlink_out_of_the_root(tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "outside.img"
    outside.write_bytes(bytes(MiB))
    (root / "disk.img").symlink_to(outside)
    done = run(root, "sfdisk", "-uS", str(root / "disk.img"), script="1,;\n")
    assert done.returncode == 1 and "resolves outside" in done.stderr
    assert outside.read_bytes().count(0) == MiB


def test_sfdisk_refuses_a_device(root: Path) -> None:
    (root / "dev/xvdc").symlink_to("/dev/zero")
    done = run(root, "sfdisk", "-uS", str(root / "dev/xvdc"), script="1,;\n")
    assert done.returncode == 1 and "not a regular file" in done.stderr


def test_sfdisk_without_dom0_root_is_refused(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(MiB))
    done = run(None, "sfdisk", "-uS", str(disk), script="1,;\n")
    assert done.returncode == 1 and "DOM0_ROOT" in done.stderr
    assert disk.read_bytes().count(0) == MiB


# -- kpartx ------------------------------------------------------------------------------------

def test_kpartx_add_makes_a_file_with_the_partitions_bytes(tmp_path: Path, root: Path) -> None:
    disk = partitioned(tmp_path, root)
    with open(disk, "r+b") as handle:
        handle.seek(2048 * SECTOR + 5000)
        handle.write(b"partition data")
    assert run(root, "kpartx", "-avspp", str(root / "dev/xvdb")).returncode == 0
    mapped = root / "dev/mapper/xvdbp1"
    assert mapped.is_file() and not mapped.is_symlink()
    assert mapped.read_bytes() == disk.read_bytes()[2048 * SECTOR:]


def test_kpartx_add_verbose_prints_the_add_map_line(tmp_path: Path, root: Path) -> None:
    partitioned(tmp_path, root)
    done = run(root, "kpartx", "-avspp", str(root / "dev/xvdb"))
    assert done.stdout == "add map xvdbp1 (253:0): 0 14336 linear 202:16 2048\n"


def test_kpartx_records_the_disk_offset_and_length(tmp_path: Path, root: Path) -> None:
    partitioned(tmp_path, root)
    run(root, "kpartx", "-avspp", str(root / "dev/xvdb"))
    record = mappings(root)["xvdbp1"]
    assert (record["disk"], record["offset"], record["length"]) == \
        (str(root / "dev/xvdb"), 2048 * SECTOR, 14336 * SECTOR)


def test_kpartx_takes_its_flags_apart_as_well(tmp_path: Path, root: Path) -> None:
    partitioned(tmp_path, root)
    assert run(root, "kpartx", "-a", "-s", "-p", "p", str(root / "dev/xvdb")).stdout == ""
    assert (root / "dev/mapper/xvdbp1").is_file()


def test_kpartx_delete_writes_the_partitions_changes_into_the_disk(tmp_path: Path,
                                                                   root: Path) -> None:
    disk = partitioned(tmp_path, root)
    run(root, "kpartx", "-avspp", str(root / "dev/xvdb"))
    with open(root / "dev/mapper/xvdbp1", "r+b") as handle:
        handle.seek(1024)
        handle.write(b"superblock")
    done = run(root, "kpartx", "-dvspp", str(root / "dev/xvdb"))
    assert done.returncode == 0 and done.stdout == "del devmap : xvdbp1\n"
    with open(disk, "rb") as handle:
        handle.seek(2048 * SECTOR + 1024)
        assert handle.read(10) == b"superblock"


def test_kpartx_delete_writes_zeros_over_data_that_was_cleared(tmp_path: Path,
                                                               root: Path) -> None:
    disk = partitioned(tmp_path, root)
    with open(disk, "r+b") as handle:
        handle.seek(2048 * SECTOR + 3 * MiB)
        handle.write(b"old" * 1000)
    run(root, "kpartx", "-avspp", str(root / "dev/xvdb"))
    with open(root / "dev/mapper/xvdbp1", "r+b") as handle:
        handle.seek(3 * MiB)
        handle.write(bytes(3000))
    run(root, "kpartx", "-dvspp", str(root / "dev/xvdb"))
    assert disk.read_bytes()[2048 * SECTOR:].count(0) == 14336 * SECTOR


def test_kpartx_keeps_a_big_sparse_disk_sparse(tmp_path: Path, root: Path) -> None:
    disk = partitioned(tmp_path, root, size=1024 * MiB)
    run(root, "kpartx", "-avspp", str(root / "dev/xvdb"))
    mapped = root / "dev/mapper/xvdbp1"
    with open(mapped, "r+b") as handle:
        handle.seek(512 * MiB)
        handle.write(b"x")
    assert allocated(mapped) <= 64 * 1024
    run(root, "kpartx", "-dvspp", str(root / "dev/xvdb"))
    assert allocated(disk) <= 64 * 1024


def test_kpartx_delete_removes_the_file_and_the_record(tmp_path: Path, root: Path) -> None:
    partitioned(tmp_path, root)
    run(root, "kpartx", "-avspp", str(root / "dev/xvdb"))
    run(root, "kpartx", "-dvspp", str(root / "dev/xvdb"))
    assert list((root / "dev/mapper").iterdir()) == [] and mappings(root) == {}


def test_kpartx_add_twice_keeps_the_live_partition_file(tmp_path: Path, root: Path) -> None:
    partitioned(tmp_path, root)
    run(root, "kpartx", "-avspp", str(root / "dev/xvdb"))
    with open(root / "dev/mapper/xvdbp1", "r+b") as handle:
        handle.write(b"unsaved")
    assert run(root, "kpartx", "-avspp", str(root / "dev/xvdb")).returncode == 0
    assert (root / "dev/mapper/xvdbp1").read_bytes()[:7] == b"unsaved"


def test_kpartx_on_a_disk_without_a_partition_table_maps_nothing(tmp_path: Path,
                                                                 root: Path) -> None:
    vdi(tmp_path, root)
    done = run(root, "kpartx", "-avspp", str(root / "dev/xvdb"))
    assert (done.returncode, done.stdout) == (0, "")
    assert not (root / "dev/mapper/xvdbp1").exists()


def test_kpartx_delete_without_mappings_is_no_error(tmp_path: Path, root: Path) -> None:
    vdi(tmp_path, root)
    assert run(root, "kpartx", "-dvspp", str(root / "dev/xvdb")).returncode == 0


def test_kpartx_delete_keeps_the_mapping_of_a_disk_that_is_gone(tmp_path: Path,
                                                                root: Path) -> None:
    partitioned(tmp_path, root)
    run(root, "kpartx", "-avspp", str(root / "dev/xvdb"))
    (root / "dev/xvdb").unlink()
    done = run(root, "kpartx", "-dvspp", str(root / "dev/xvdb"))
    assert done.returncode == 1 and "the mapping is kept" in done.stderr
    assert "xvdbp1" in mappings(root) and (root / "dev/mapper/xvdbp1").exists()


def test_kpartx_delete_drops_a_mapping_whose_disk_file_changed(tmp_path: Path,
                                                               root: Path) -> None:
    partitioned(tmp_path, root)
    run(root, "kpartx", "-avspp", str(root / "dev/xvdb"))
    (root / "dev/xvdb").unlink()
    other = vdi(tmp_path, root, name="xvdq")
    (root / "dev/xvdq").rename(root / "dev/xvdb")
    done = run(root, "kpartx", "-dvspp", str(root / "dev/xvdb"))
    assert done.returncode == 1 and "no longer the disk file" in done.stderr
    assert mappings(root) == {} and other.read_bytes().count(0) == 8 * MiB


def test_kpartx_refuses_a_mapper_directory_that_links_out_of_the_root(tmp_path: Path,
                                                                      root: Path) -> None:
    partitioned(tmp_path, root)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "dev/mapper").symlink_to(outside)
    done = run(root, "kpartx", "-avspp", str(root / "dev/xvdb"))
    assert done.returncode == 1 and "resolves outside" in done.stderr
    assert list(outside.iterdir()) == []


def test_kpartx_refuses_a_disk_outside_the_root(tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "outside.img"
    outside.write_bytes(bytes(MiB))
    done = run(root, "kpartx", "-avspp", str(outside))
    assert done.returncode == 1 and "outside the simulated dom0" in done.stderr


def test_kpartx_refuses_a_device(root: Path) -> None:
    (root / "dev/xvdc").symlink_to("/dev/zero")
    done = run(root, "kpartx", "-avspp", str(root / "dev/xvdc"))
    assert done.returncode == 1 and "not a regular file" in done.stderr


@pytest.mark.parametrize("args", [["-adv"], ["-v"], ["-l"], ["-a", "extra"],
                                  ["-a", "-p", "a/b"]])
def test_kpartx_refuses_other_command_lines(root: Path, args: list[str]) -> None:
    done = run(root, "kpartx", *args, str(root / "dev/xvdb"))
    assert done.returncode == 1 and done.stderr.startswith("kpartx: ")


# -- mkfs and mkswap ---------------------------------------------------------------------------

def partition_file(root: Path, size: int = 8 * MiB) -> Path:
    """A partition file as kpartx makes it: a sparse regular file in DOM0_ROOT/dev/mapper."""
    (root / "dev/mapper").mkdir(exist_ok=True)
    path = root / "dev/mapper/xvdbp1"
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def superblock(path: Path) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(1024)
        return handle.read(1024)


def test_mkfs_ext4_makes_an_ext4_file_system_with_the_label(root: Path) -> None:
    partition = partition_file(root)
    done = run(root, "mkfs", "-t", "ext4", "-F", "-L", "ephemeral", str(partition))
    assert done.returncode == 0, done.stderr
    block = superblock(partition)
    incompat = struct.unpack_from("<I", block, 96)[0]
    assert block[56:58] == b"\x53\xef" and block[120:136].rstrip(b"\0") == b"ephemeral"
    assert incompat & 0x40  # extents: ext4


def test_mkfs_ext3_has_a_journal_and_no_extents(root: Path) -> None:
    partition = partition_file(root)
    assert run(root, "mkfs", "-t", "ext3", "-F", str(partition)).returncode == 0
    compat, incompat = struct.unpack_from("<II", superblock(partition), 92)
    assert compat & 0x4 and not incompat & 0x40


def test_mkfs_does_not_read_stdin(root: Path) -> None:
    partition = partition_file(root)
    reader, writer = os.pipe()
    try:
        done = run(root, "mkfs", "-t", "ext4", str(partition), stdin=reader)
    finally:
        os.close(reader)
        os.close(writer)
    assert done.returncode == 0, done.stderr


def test_mkfs_failure_is_mke2fs_exit_status_naming_the_partition(root: Path) -> None:
    partition = partition_file(root, size=4096)
    done = run(root, "mkfs", "-t", "ext4", "-F", str(partition))
    assert done.returncode != 0
    assert str(partition) in done.stderr and "/proc/self/fd" not in done.stderr


@pytest.mark.parametrize("args", [["-t", "xfs", "-F"], ["-F"], ["-t", "ext4", "-E", "x"],
                                  ["-t", "ext4", "-t", "ext3"]])
def test_mkfs_refuses_other_command_lines(root: Path, args: list[str]) -> None:
    partition = partition_file(root)
    done = run(root, "mkfs", *args, str(partition))
    assert done.returncode == 1 and done.stderr.startswith("mkfs: ")
    assert allocated(partition) == 0


def test_mkfs_refuses_a_disk_nodes_vdi_file(tmp_path: Path, root: Path) -> None:
    disk = vdi(tmp_path, root)
    done = run(root, "mkfs", "-t", "ext4", "-F", str(root / "dev/xvdb"))
    assert done.returncode == 1 and "not a file of the simulated dom0" in done.stderr
    assert allocated(disk) == 0


def test_mkfs_refuses_a_symlink_out_of_the_root(tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "outside.img"
    outside.write_bytes(bytes(MiB))
    (root / "dev/mapper").mkdir()
    (root / "dev/mapper/xvdbp1").symlink_to(outside)
    done = run(root, "mkfs", "-t", "ext4", "-F", str(root / "dev/mapper/xvdbp1"))
    assert done.returncode == 1 and "resolves outside" in done.stderr
    assert outside.read_bytes().count(0) == MiB


def test_mkfs_refuses_a_device(root: Path) -> None:
    (root / "dev/mapper").mkdir()
    (root / "dev/mapper/xvdbp1").symlink_to("/dev/null")
    done = run(root, "mkfs", "-t", "ext4", "-F", str(root / "dev/mapper/xvdbp1"))
    assert done.returncode == 1


def test_mkswap_writes_the_swap_signature_at_the_end_of_the_first_page(root: Path) -> None:
    partition = partition_file(root)
    assert run(root, "mkswap", str(partition)).returncode == 0
    with open(partition, "rb") as handle:
        handle.seek(4096 - len(SWAP_MAGIC))
        assert handle.read(len(SWAP_MAGIC)) == SWAP_MAGIC


@pytest.mark.parametrize("args", [[], ["-L", "swap"], ["a", "b"]])
def test_mkswap_refuses_other_command_lines(root: Path, args: list[str]) -> None:
    done = run(root, "mkswap", *args)
    assert done.returncode == 1 and done.stderr.startswith("mkswap: ")


def test_mkswap_refuses_a_file_outside_the_root(tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "outside.img"
    outside.write_bytes(bytes(MiB))
    done = run(root, "mkswap", str(outside))
    assert done.returncode == 1 and "outside the simulated dom0" in done.stderr
    assert outside.read_bytes().count(0) == MiB
