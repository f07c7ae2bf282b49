#!/usr/bin/python3 -B
"""partition_utils: wait for a disk in dom0, partition it, put a file system or swap on it.

Nova plugs a new VDI into dom0 and calls these to prepare ephemeral and swap disks. Disks are
named (xvd*, sd*, nbd*: dom0lib.devices), never given as free paths, and every command has a
fixed argument shape. As in os-xenapi 0.3.4 only one partition layout is made: one partition
from a start sector to the end of the disk.
"""

import re

import dom0lib
import XenAPIPlugin
from dom0lib import commands, devices
from dom0lib.errors import NOT_FOUND, PluginError
from dom0lib.logs import get_logger
from dom0lib.paths import host_path
from dom0lib.validate import Choice, Int, Nullable, Str

SFDISK_TIMEOUT = 60.0
KPARTX_TIMEOUT = 60.0
# Making ext3 on a large disk writes every inode table; allow half an hour.
MKFS_TIMEOUT = 1800.0
# kpartx -s waits for udev; this covers a slow udev all the same.
MAPPER_WAIT_SECONDS = 5.0
# Sectors of 512 bytes: 2**48 of them is far beyond any VDI.
SECTOR = Int(0, 2 ** 48)
TO_THE_END = Str(16, r"-", what='"-" (to the end of the disk; bounded partitions are not '
                                'supported, as in 0.3.4)')
# ext2/3/4 labels hold at most 16 bytes.
LABEL = Str(16, r"([A-Za-z0-9_][A-Za-z0-9_.-]*)?",
            what="a label of at most 16 characters of A-Z a-z 0-9 _ . -, not starting with -")
LOG = get_logger("partition_utils")


@dom0lib.takes(dev_path=devices.DEVICE_PATH, max_seconds=Int(0, 600))
def wait_for_dev(ctx, dev_path, max_seconds):
    """Return dev_path once it exists, or null if it has not appeared within max_seconds
    (0.3.4 returned "" then)."""
    if devices.wait_for(host_path(dev_path), max_seconds):
        return dev_path
    return None


def _sfdisk_needs_force():
    """sfdisk 2.23 to 2.25 refuse some partition tables without --force (XenServer 7.0's
    sfdisk was one of them); tell from `sfdisk -v`."""
    version = commands.run(["sfdisk", "-v"], timeout=SFDISK_TIMEOUT).stdout
    match = re.search(r"(\d+)\.(\d+)", version)
    if not match:
        LOG.warning("could not read the sfdisk version; running it without --force")
        return False
    return (2, 23) <= (int(match.group(1)), int(match.group(2))) < (2, 26)


@dom0lib.takes(dev=devices.DEVICE, partition_start=SECTOR, partition_end=TO_THE_END)
def make_partition(ctx, dev, partition_start, partition_end):
    """Write a partition table to /dev/<dev> holding one partition from sector
    partition_start to the end of the disk. Raises OS_XENAPI_NOT_FOUND if the disk is missing."""
    disk = devices.require(devices.dev_path(dev), "device", "/dev/" + dev)
    force = ["--force"] if _sfdisk_needs_force() else []
    commands.run(["sfdisk"] + force + ["-uS", disk], input_text=f"{partition_start},;\n",
                 timeout=SFDISK_TIMEOUT)
    return None


def _mkfs_argv(fs_type, partition, fs_label):
    if fs_type == "swap":
        return ["mkswap", partition]
    # -F: the partition is a device-mapper node, which mkfs would otherwise ask about.
    label = ["-L", fs_label] if fs_label else []
    return ["mkfs", "-t", fs_type, "-F"] + label + [partition]


def _remove_partition_mappings(disk):
    commands.run(["kpartx", "-dvspp", disk], timeout=KPARTX_TIMEOUT)


@dom0lib.takes(dev=devices.DEVICE, partnum=Int(1, 128), fs_type=Choice("swap", "ext3", "ext4"),
               fs_label=Nullable(LABEL))
def mkfs(ctx, dev, partnum, fs_type, fs_label=None):
    """Make swap or an ext3/ext4 file system (labelled fs_label, if given) on partition
    partnum of /dev/<dev>. The partition mappings kpartx makes are always removed again, so
    the VBD can be unplugged. ext4 is new in plugin API 3.0."""
    disk = devices.require(devices.dev_path(dev), "device", "/dev/" + dev)
    commands.run(["kpartx", "-avspp", disk], timeout=KPARTX_TIMEOUT)
    try:
        shown = f"/dev/mapper/{dev}p{partnum}"
        partition = host_path(shown)
        if not devices.wait_for(partition, MAPPER_WAIT_SECONDS):
            raise PluginError(NOT_FOUND, "partition", shown)
        commands.run(_mkfs_argv(fs_type, partition, fs_label), timeout=MKFS_TIMEOUT)
    except BaseException:
        try:
            _remove_partition_mappings(disk)
        except PluginError:
            # The first failure is the one to report; this one is only logged.
            LOG.exception("could not remove the partition mappings of /dev/%s", dev)
        raise
    _remove_partition_mappings(disk)
    return None


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register(
        "partition_utils", wait_for_dev, make_partition, mkfs))
