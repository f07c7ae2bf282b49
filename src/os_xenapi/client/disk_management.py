"""Python calls into dom0's disk plugins: ``ipxe``, ``kernel``, ``workarounds`` and
``partition_utils`` (os-xenapi 0.3.4's ``disk_management`` names and signatures).

0.3.4 dropped some results; these return them (``copy_vdi`` the file it wrote,
``create_kernel_ramdisk`` the new file or None, ``wait_for_dev`` the path or None).
"""

from __future__ import annotations

from typing import Any


def inject_ipxe_config(session: Any, sr_path: str, vdi_uuid: str, boot_menu_url: str,
                       ip_address: str, netmask: str, gateway: str, dns: str,
                       mkisofs_cmd: str) -> None:
    """ipxe.inject: rewrite the iPXE ISO of ``vdi_uuid`` with a static network setup."""
    session.call_plugin_serialized("ipxe", "inject", sr_path, vdi_uuid, boot_menu_url,
                                   ip_address, netmask, gateway, dns, mkisofs_cmd)


def copy_vdi(session: Any, vdi_ref: str, vdi_size: int, image_id: str | None = None) -> str:
    """kernel.copy_vdi: copy a kernel/ramdisk VDI to /boot/guest; returns the file's path."""
    return session.call_plugin_serialized("kernel", "copy_vdi", vdi_ref=vdi_ref,
                                          image_size=vdi_size, cached_image=image_id)


def create_kernel_ramdisk(session: Any, image_id: str, new_image_uuid: str) -> str | None:
    """kernel.create_kernel_ramdisk: copy a cached image; the new file, or None if not cached."""
    return session.call_plugin_serialized("kernel", "create_kernel_ramdisk",
                                          cached_image=image_id, new_image_uuid=new_image_uuid)


def remove_kernel_ramdisk(session: Any, kernel_file: str | None = None,
                          ramdisk_file: str | None = None) -> None:
    """kernel.remove_kernel_ramdisk: remove files of /boot/guest (no call when both are None)."""
    if kernel_file or ramdisk_file:
        session.call_plugin_serialized("kernel", "remove_kernel_ramdisk",
                                       kernel_file=kernel_file, ramdisk_file=ramdisk_file)


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


def wait_for_dev(session: Any, dev_path: str, max_seconds: int) -> str | None:
    """partition_utils.wait_for_dev: ``dev_path`` once it exists, None after ``max_seconds``."""
    return session.call_plugin_serialized("partition_utils", "wait_for_dev", dev_path,
                                          max_seconds)
