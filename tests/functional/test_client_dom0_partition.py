"""partition_utils.make_partition and partition_utils.mkfs end to end: the client's
disk_management calls against a simulator that runs os-xenapi's own plugins in a scratch dom0,
on a VDI plugged into dom0 (``$DOM0_ROOT/dev/<device>``), through the simulated dom0's sfdisk,
kpartx, mkfs and mkswap. The checks read the VDI's file after the VBD is unplugged: what a guest
would find on the disk. The official XenAPI SDK sets up and checks the simulator's side.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import disk_management, exception
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

ORIGINATOR = "dom0-partition-tests"
MiB = 1024 * 1024
SECTOR = 512
DISK = 64 * MiB
START = 2048
PARTITION_AT = START * SECTOR
EXT_MAGIC = b"\x53\xef"  # 0xEF53, little-endian, at byte 56 of the superblock
SWAP_MAGIC = b"SWAPSPACE2"


class Plugged:
    """A 64 MiB VDI plugged into dom0 read-write: its device name and its file in the store."""

    def __init__(self, sim: Simulator, x: Any) -> None:
        self.x = x
        sr = x.pool.get_default_SR(x.pool.get_all()[0])
        self.vdi = x.VDI.create({"name_label": "ephemeral", "name_description": "", "SR": sr,
                                 "virtual_size": str(DISK), "type": "user", "sharable": False,
                                 "read_only": False, "other_config": {}})
        uuid = x.VDI.get_uuid(self.vdi)
        self.file = Path(sim.run(lambda xapi: str(xapi.vdis.ensure(uuid, DISK))))
        dom0 = x.host.get_control_domain(x.host.get_all()[0])
        self.vbd = x.VBD.create({"VM": dom0, "VDI": self.vdi, "userdevice": "autodetect",
                                 "bootable": False, "mode": "RW", "type": "Disk",
                                 "unpluggable": True, "empty": False, "other_config": {},
                                 "qos_algorithm_type": "", "qos_algorithm_params": {}})
        x.VBD.plug(self.vbd)
        self.device = x.VBD.get_device(self.vbd)

    def unplug(self) -> None:
        if self.x.VBD.get_currently_attached(self.vbd):
            self.x.VBD.unplug(self.vbd)

    def destroy(self) -> None:
        self.unplug()
        self.x.VBD.destroy(self.vbd)
        self.x.VDI.destroy(self.vdi)

    def read(self, offset: int, size: int) -> bytes:
        """size bytes of the VDI at offset, once it is unplugged."""
        self.unplug()
        with open(self.file, "rb") as handle:
            handle.seek(offset)
            return handle.read(size)


@pytest.fixture()
def disk(sim: Simulator, x: Any) -> Iterator[Plugged]:
    made = Plugged(sim, x)
    yield made
    made.destroy()


def superblock(disk: Plugged) -> bytes:
    return disk.read(PARTITION_AT + 1024, 1024)


def no_mappings_left(root: Path) -> bool:
    record = root / "var/lib/simkpartx.json"
    maps = json.loads(record.read_text())["maps"] if record.exists() else {}
    mapper = root / "dev/mapper"
    return maps == {} and (not mapper.exists() or not any(mapper.iterdir()))


# ----------------------------------------------------------------------------- make_partition


def test_make_partition_writes_one_linux_partition_from_start_to_the_end(
    session: XenAPISession, disk: Plugged,
) -> None:
    disk_management.make_partition(session, disk.device, START, "-")
    first = disk.read(0, SECTOR)
    kind, start, count = struct.unpack_from("<B3xII", first, 446 + 4)
    assert (first[510:], kind, start, count) == (b"\x55\xaa", 0x83, START,
                                                DISK // SECTOR - START)


def test_make_partition_with_a_start_beyond_the_disk_is_sfdisk_command_failed(
    session: XenAPISession, disk: Plugged,
) -> None:
    with pytest.raises(exception.Dom0PluginError) as info:
        disk_management.make_partition(session, disk.device, DISK // SECTOR, "-")
    assert info.value.details[:3] == ["OS_XENAPI_COMMAND_FAILED", "sfdisk", "1"]
    assert "out of range" in info.value.details[3]
    assert disk.read(0, SECTOR) == bytes(SECTOR)


# --------------------------------------------------------------------------------------- mkfs


def test_mkfs_ext4_leaves_a_labelled_ext4_file_system_on_the_vdi(
    session: XenAPISession, disk: Plugged,
) -> None:
    assert disk_management.make_partition(session, disk.device, START, "-") is None  # 0.3.4
    assert disk_management.mkfs(session, disk.device, 1, "ext4", "ephemeral") is None
    block = superblock(disk)
    incompat = struct.unpack_from("<I", block, 96)[0]
    assert block[56:58] == EXT_MAGIC and block[120:136].rstrip(b"\0") == b"ephemeral"
    assert incompat & 0x40  # extents: ext4, not ext3


def test_mkfs_ext3_leaves_an_ext3_file_system_with_a_journal(
    session: XenAPISession, disk: Plugged,
) -> None:
    disk_management.make_partition(session, disk.device, START, "-")
    disk_management.mkfs(session, disk.device, 1, "ext3", None)
    compat, incompat = struct.unpack_from("<II", superblock(disk), 92)
    assert compat & 0x4 and not incompat & 0x40  # a journal, no extents


def test_mkfs_ext4_passes_e2fsck_on_the_vdis_partition(
    tmp_path: Path, session: XenAPISession, disk: Plugged,
) -> None:
    e2fsck = shutil.which("e2fsck", path="/sbin:/usr/sbin")
    if e2fsck is None:
        pytest.skip("e2fsprogs is not installed")
    disk_management.make_partition(session, disk.device, START, "-")
    disk_management.mkfs(session, disk.device, 1, "ext4", "ephemeral")
    copy = tmp_path / "partition.img"
    copy.write_bytes(disk.read(PARTITION_AT, DISK - PARTITION_AT))
    checked = subprocess.run([e2fsck, "-fn", str(copy)], capture_output=True, text=True,
                             timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_mkfs_swap_leaves_the_swap_signature_on_the_vdi(session: XenAPISession,
                                                         disk: Plugged) -> None:
    disk_management.make_partition(session, disk.device, START, "-")
    disk_management.mkfs(session, disk.device, 1, "swap", None)
    assert disk.read(PARTITION_AT + 4096 - len(SWAP_MAGIC), len(SWAP_MAGIC)) == SWAP_MAGIC


def test_mkfs_leaves_no_partition_mappings_behind(root: Path, session: XenAPISession,
                                                  disk: Plugged) -> None:
    disk_management.make_partition(session, disk.device, START, "-")
    disk_management.mkfs(session, disk.device, 1, "ext4", None)
    assert no_mappings_left(root)


def test_mkfs_before_make_partition_is_not_found_naming_the_partition(
    root: Path, session: XenAPISession, disk: Plugged,
) -> None:
    with pytest.raises(exception.PluginNotFound) as info:
        disk_management.mkfs(session, disk.device, 1, "ext4", None)
    assert info.value.details == ["OS_XENAPI_NOT_FOUND", "partition",
                                  f"/dev/mapper/{disk.device}p1"]
    assert no_mappings_left(root)


def test_mkfs_that_fails_is_mkfs_command_failed_and_removes_the_mappings(
    root: Path, session: XenAPISession, disk: Plugged,
) -> None:
    disk_management.make_partition(session, disk.device, DISK // SECTOR - 8, "-")  # 4 KiB
    with pytest.raises(exception.Dom0PluginError) as info:
        disk_management.mkfs(session, disk.device, 1, "ext4", None)
    assert info.value.details[:2] == ["OS_XENAPI_COMMAND_FAILED", "mkfs"]
    assert no_mappings_left(root)
