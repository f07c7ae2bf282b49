"""Nova's disk and image calls (nova/virt/xenapi/vm_utils.py, image/glance.py) through
``disk_management`` and ``host_glance``, checking what 0.3.4 returned (issue 10, items 1
and 5): ``copy_vdi`` and ``create_kernel_ramdisk`` returned None (0.3.4 dropped the plugin's
file name), ``remove_kernel_ramdisk`` None, ``wait_for_dev`` the device path; a Glance that
does not know the image is ``PluginImageNotFound`` for download and upload alike, with the
endpoint put in by Nova's ``pick_glance`` callback before each try."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import disk_management, exception, host_glance
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

ORIGINATOR = "nova-disk-referee"
MiB = 1024 * 1024
IMAGE = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
NEW_KERNEL = "3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b"
INSTANCE_VDI = "5f0f0b53-5f62-4a3e-8c2e-2b7f5d1c9e22"


@pytest.fixture()
def kernel_vdi(sim: Simulator, x: Any) -> Iterator[str]:
    """A 1 MiB VDI holding a kernel image whose first bytes are known (see :func:`kernel`)."""
    ref = x.VDI.create({"name_label": "kernel", "name_description": "",
                        "SR": x.pool.get_default_SR(x.pool.get_all()[0]),
                        "virtual_size": str(MiB), "type": "user", "sharable": False,
                        "read_only": False, "other_config": {}})
    uuid = x.VDI.get_uuid(ref)
    path = Path(sim.run(lambda xapi: xapi.vdis.ensure(uuid, MiB)))
    with open(path, "r+b") as handle:
        handle.write(kernel(uuid))
    yield ref
    x.VDI.destroy(ref)


@pytest.fixture()
def dom0_disk(sim: Simulator, x: Any) -> Iterator[str]:
    """A 64 MiB VDI plugged into dom0 read-write, as Nova's vdi_attached(dom0=True) gives it;
    yields its device name."""
    vdi = x.VDI.create({"name_label": "ephemeral", "name_description": "",
                        "SR": x.pool.get_default_SR(x.pool.get_all()[0]),
                        "virtual_size": str(64 * MiB), "type": "user", "sharable": False,
                        "read_only": False, "other_config": {}})
    uuid = x.VDI.get_uuid(vdi)
    sim.run(lambda xapi: xapi.vdis.ensure(uuid, 64 * MiB))
    dom0 = x.host.get_control_domain(x.host.get_all()[0])
    vbd = x.VBD.create({"VM": dom0, "VDI": vdi, "userdevice": "autodetect", "bootable": False,
                        "mode": "RW", "type": "Disk", "unpluggable": True, "empty": False,
                        "other_config": {}, "qos_algorithm_type": "",
                        "qos_algorithm_params": {}})
    x.VBD.plug(vbd)
    yield x.VBD.get_device(vbd)
    x.VBD.unplug(vbd)
    x.VBD.destroy(vbd)
    x.VDI.destroy(vdi)


def kernel(uuid: str) -> bytes:
    return (b"kernel:" + uuid.encode()) * 64


class NoSuchImage(http.server.BaseHTTPRequestHandler):
    """A Glance that knows no image: 404 to everything, the body read first."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _not_found(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PATCH = do_PUT = _not_found  # noqa: N815 (http.server's names)


@pytest.fixture(scope="module")
def glance() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoSuchImage)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def pick_glance(endpoint: str) -> Callable[[dict], str]:
    """Nova's callback: before each try, the Glance server and API version into kwargs."""
    def pick(kwargs: dict) -> str:
        kwargs["endpoint"] = endpoint
        kwargs["api_version"] = 2
        return endpoint
    return pick


def sr_path(x: Any) -> str:
    """Nova's vm_utils.get_sr_path for the default SR."""
    return f"/var/run/sr-mount/{x.SR.get_uuid(x.pool.get_default_SR(x.pool.get_all()[0]))}"


# ------------------------------------------------------------------ kernels and ramdisks


def test_copy_vdi_returns_none_and_copies_the_image_to_boot_guest(
    root: Path, x: Any, nova: XenAPISession, kernel_vdi: str,
) -> None:
    uuid = x.VDI.get_uuid(kernel_vdi)
    assert disk_management.copy_vdi(nova, kernel_vdi, 1000) is None
    assert (root / "boot/guest" / uuid).read_bytes() == kernel(uuid)[:1000]


def test_create_kernel_ramdisk_returns_none_and_copies_the_cached_image(
    root: Path, x: Any, nova: XenAPISession, kernel_vdi: str,
) -> None:
    uuid = x.VDI.get_uuid(kernel_vdi)
    disk_management.copy_vdi(nova, kernel_vdi, 2048, image_id=IMAGE)
    assert disk_management.create_kernel_ramdisk(nova, IMAGE, NEW_KERNEL) is None
    assert (root / "boot/guest" / NEW_KERNEL).read_bytes() == kernel(uuid)[:2048]


def test_remove_kernel_ramdisk_returns_none_and_removes_the_files(
    root: Path, x: Any, nova: XenAPISession, kernel_vdi: str,
) -> None:
    disk_management.copy_vdi(nova, kernel_vdi, 512, image_id="ramdisk-image")
    kernel_file = f"/boot/guest/{x.VDI.get_uuid(kernel_vdi)}"
    assert disk_management.remove_kernel_ramdisk(
        nova, kernel_file=kernel_file, ramdisk_file="/boot/guest/ramdisk-image") is None
    assert not (root / kernel_file.lstrip("/")).exists()
    assert not (root / "boot/guest/ramdisk-image").exists()


# ------------------------------------------------------------------------------ devices


def test_wait_for_dev_returns_the_device_path_once_it_is_there(root: Path,
                                                                nova: XenAPISession) -> None:
    (root / "dev").mkdir(exist_ok=True)
    (root / "dev/xvdq").touch()
    assert disk_management.wait_for_dev(nova, "/dev/xvdq", 5) == "/dev/xvdq"


def test_make_partition_then_mkfs_with_string_arguments_return_none(
    nova: XenAPISession, dom0_disk: str,
) -> None:
    assert disk_management.make_partition(nova, dom0_disk, "2048", "-") is None
    assert disk_management.mkfs(nova, dom0_disk, "1", "ext3", "ephemeral0") is None


# -------------------------------------------------------------------------------- glance


def test_download_of_an_image_glance_does_not_know_is_plugin_image_not_found(
    x: Any, nova: XenAPISession, glance: str,
) -> None:
    with pytest.raises(exception.PluginImageNotFound):
        host_glance.download_vhd(nova, 0, pick_glance(glance), None, IMAGE, sr_path(x),
                                 {"X-Auth-Token": "token"}, [INSTANCE_VDI])


def test_upload_to_an_image_glance_does_not_know_is_plugin_image_not_found(
    x: Any, nova: XenAPISession, glance: str,
) -> None:
    vdi = x.VDI.create({"name_label": "snapshot", "name_description": "",
                        "SR": x.pool.get_default_SR(x.pool.get_all()[0]),
                        "virtual_size": str(MiB), "type": "user", "sharable": False,
                        "read_only": False, "other_config": {}})
    try:
        with pytest.raises(exception.PluginImageNotFound):
            host_glance.upload_vhd(nova, 0, pick_glance(glance), None, IMAGE, sr_path(x),
                                   {"X-Auth-Token": "token"}, [x.VDI.get_uuid(vdi)], {})
    finally:
        x.VDI.destroy(vdi)
