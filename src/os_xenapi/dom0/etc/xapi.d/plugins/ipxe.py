#!/usr/bin/python3 -B
"""ipxe: write a static network setup and a boot menu URL into an iPXE boot ISO.

Nova boots instances from an iPXE ISO kept in the SR as iso/<VDI uuid>.img. inject() mounts
it read-only, copies its files into a staging area inside the SR, writes netcfg.ipxe (the
iPXE script: static address, then chain-load the boot menu, else boot the first disk) and
isolinux.cfg, and rebuilds the ISO with mkisofs (or genisoimage / xorrisofs), replacing the
old image only once the new one is complete. Every value that reaches the script is an
address or a URL of a strict shape, so no caller text can add iPXE commands.
"""

import ipaddress
import os
import shutil
import stat
import tempfile

import dom0lib
import XenAPIPlugin
from dom0lib import commands, paths, staging
from dom0lib.errors import NOT_FOUND, PluginError
from dom0lib.logs import get_logger
from dom0lib.validate import UUID, Choice, Invalid, IPAddress, Str, Type

MOUNT_TIMEOUT = 60.0
MKISOFS_TIMEOUT = 600.0
ISO_DIR = "iso"
# No spaces, quotes, $ or braces: iPXE splits lines on spaces and expands ${settings}.
BOOT_MENU_URL = Str(2048, r"https?://[A-Za-z0-9._~:/?#\[\]@!&()*+,;=%-]+",
                    what="an http:// or https:// URL without spaces, quotes, $ or braces")
IPV4 = IPAddress((4,))
NETCFG = """#!ipxe
set net0/ip {ip_address}
set net0/netmask {netmask}
set net0/gateway {gateway}
set dns {dns}
ifopen net0
chain {boot_menu_url} || goto localboot
:localboot
sanboot --no-describe --drive 0x80
"""
ISOLINUX_CFG = """DEFAULT ipxe
TIMEOUT 30
LABEL ipxe
  KERNEL ipxe.krn
  INITRD netcfg.ipxe
"""
LOG = get_logger("ipxe")


class Netmask(Type):
    """An IPv4 netmask in dotted form, such as 255.255.255.0."""

    def check(self, value):
        address = IPV4.check(value)
        try:
            ipaddress.IPv4Network("0.0.0.0/" + address)
        except ValueError:
            raise Invalid("must be an IPv4 netmask such as 255.255.255.0") from None
        return address


def _unpack(iso, tree, parent):
    """Copy the ISO's files into tree (symlinks stay links), mounting it read-only meanwhile.

    If the ISO cannot be unmounted, its mount point is left alone and the error raised.
    """
    mountpoint = tempfile.mkdtemp(prefix=staging.STAGING_PREFIX + "mnt-", dir=parent)
    try:
        commands.run(["mount", "-o", "loop,ro,nosuid,nodev,noexec", iso, mountpoint],
                     timeout=MOUNT_TIMEOUT)
    except BaseException:
        os.rmdir(mountpoint)
        raise
    try:
        shutil.copytree(mountpoint, tree, symlinks=True)
    finally:
        try:
            commands.run(["umount", mountpoint], timeout=MOUNT_TIMEOUT)
        except PluginError:
            LOG.error("could not unmount %s; it is left in place", mountpoint)
            raise
        os.rmdir(mountpoint)


def _write_new(directory, name, text):
    """Write directory/name as a new file; whatever the ISO had there (a symlink included)
    is removed first, so the write can never land elsewhere."""
    path = os.path.join(directory, name)
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


@dom0lib.takes(sr_path=staging.SR_PATH, vdi_uuid=UUID, boot_menu_url=BOOT_MENU_URL,
               ip_address=IPV4, netmask=Netmask(), gateway=IPV4, dns=IPV4,
               mkisofs_cmd=Choice("mkisofs", "genisoimage", "xorrisofs"))
def inject(ctx, sr_path, vdi_uuid, boot_menu_url, ip_address, netmask, gateway, dns,
           mkisofs_cmd):
    """Rewrite <sr_path>/iso/<vdi_uuid>.img so that it brings net0 up with the given static
    IPv4 setup and chain-loads boot_menu_url (booting the first disk if that fails).

    mkisofs_cmd picks one of the known ISO builders (0.3.4 ran any program it named).
    Raises OS_XENAPI_NOT_FOUND for a missing ISO, OS_XENAPI_COMMAND_FAILED if mount, umount
    or the ISO builder fails; the old ISO is then unchanged.
    """
    sr_dir = staging.sr_directory(sr_path)
    relative = f"{ISO_DIR}/{vdi_uuid.lower()}.img"
    iso = paths.confine(sr_dir, relative, "vdi_uuid")
    if not os.path.isfile(iso):
        raise PluginError(NOT_FOUND, "ISO", sr_path + "/" + relative)
    with staging.staging_area(sr_dir) as area:
        tree = os.path.join(area, "tree")
        _unpack(iso, tree, sr_dir)
        # Copied from a read-only mount: make the top directory writable for the new files.
        os.chmod(tree, stat.S_IMODE(os.stat(tree).st_mode) | stat.S_IWUSR)
        _write_new(tree, "netcfg.ipxe", NETCFG.format(
            ip_address=ip_address, netmask=netmask, gateway=gateway, dns=dns,
            boot_menu_url=boot_menu_url))
        _write_new(tree, "isolinux.cfg", ISOLINUX_CFG)
        rebuilt = os.path.join(area, "rebuilt.iso")
        commands.run([mkisofs_cmd, "-quiet", "-l", "-o", rebuilt, "-c", "boot.cat",
                      "-b", "isolinux.bin", "-no-emul-boot", "-boot-load-size", "4",
                      "-boot-info-table", tree], timeout=MKISOFS_TIMEOUT)
        if not os.path.isfile(rebuilt):
            raise PluginError(NOT_FOUND, "ISO", mkisofs_cmd + " wrote no image")
        os.chmod(rebuilt, stat.S_IMODE(os.stat(iso).st_mode))
        os.replace(rebuilt, iso)
    return None


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register("ipxe", inject))
