"""Python calls into dom0's disk plugins: ``ipxe``, ``kernel``, ``workarounds`` and
``partition_utils`` (os-xenapi 0.3.4's ``disk_management`` names and signatures).

Results are 0.3.4's: ``copy_vdi``, ``create_kernel_ramdisk`` and ``remove_kernel_ramdisk``
return None (0.3.4 dropped the plugin's answer; the file names belong to the compute layer),
``wait_for_dev`` the device's path or ``""`` if it did not appear in time.
"""

from __future__ import annotations

from typing import Any


def inject_ipxe_config(session: Any, sr_path: str, vdi_uuid: str, boot_menu_url: str,
                       ip_address: str, netmask: str, gateway: str, dns: str,
                       mkisofs_cmd: str) -> None:
    """ipxe.inject: rewrite the iPXE ISO of ``vdi_uuid`` with a static network setup."""
    session.call_plugin_serialized("ipxe", "inject", sr_path, vdi_uuid, boot_menu_url,
                                   ip_address, netmask, gateway, dns, mkisofs_cmd)


def copy_vdi(session: Any, vdi_ref: str, vdi_size: int | str,
             image_id: str | None = None) -> None:
    """kernel.copy_vdi: copy the first ``vdi_size`` bytes of a kernel/ramdisk VDI to
    /boot/guest/<VDI uuid> (and /boot/guest/<image_id> when given); None, as in 0.3.4."""
    session.call_plugin_serialized("kernel", "copy_vdi", vdi_ref=vdi_ref, image_size=vdi_size,
                                   cached_image=image_id or None)


def create_kernel_ramdisk(session: Any, image_id: str, new_image_uuid: str) -> None:
    """kernel.create_kernel_ramdisk: copy the cached /boot/guest/<image_id>, if there is one,
    to /boot/guest/<new_image_uuid>; None, as in 0.3.4."""
    session.call_plugin_serialized("kernel", "create_kernel_ramdisk", cached_image=image_id,
                                   new_image_uuid=new_image_uuid)


def remove_kernel_ramdisk(session: Any, kernel_file: str | None = None,
                          ramdisk_file: str | None = None) -> None:
    """kernel.remove_kernel_ramdisk: remove files of /boot/guest (no call when neither is
    given, as in 0.3.4)."""
    if kernel_file or ramdisk_file:
        session.call_plugin_serialized("kernel", "remove_kernel_ramdisk",
                                       kernel_file=kernel_file or None,
                                       ramdisk_file=ramdisk_file or None)


def safe_copy_vdis(session: Any, sr_path: str, vdi_uuids: list[str],
                   uuid_stack: list[str]) -> dict[str, Any]:
    """workarounds.safe_copy_vdis: copy a VHD chain in the SR; ``{"root": {"uuid": ...}}``."""
    return session.call_plugin_serialized("workarounds", "safe_copy_vdis", sr_path, vdi_uuids,
                                          uuid_stack)


def make_partition(session: Any, dev: str, partition_start: int | str,
                   partition_end: str) -> None:
    """partition_utils.make_partition: one partition from ``partition_start`` to the end."""
    session.call_plugin_serialized("partition_utils", "make_partition", dev, partition_start,
                                   partition_end)


def mkfs(session: Any, dev: str, partnum: int | str, fs_type: str,
         fs_label: str | None) -> None:
    """partition_utils.mkfs: make swap, ext3 or ext4 on partition ``partnum`` of ``dev``."""
    session.call_plugin_serialized("partition_utils", "mkfs", dev, partnum, fs_type, fs_label)


def wait_for_dev(session: Any, dev_path: str, max_seconds: int) -> str:
    """partition_utils.wait_for_dev: ``dev_path`` once it exists, ``""`` (0.3.4's answer) if
    it did not appear within ``max_seconds``."""
    found = session.call_plugin_serialized("partition_utils", "wait_for_dev", dev_path,
                                           max_seconds)
    return "" if found is None else found
