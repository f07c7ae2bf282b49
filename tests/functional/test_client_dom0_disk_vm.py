"""The client's disk, VM and image plugin calls (disk_management, vm_management, host_glance)
end to end: XenAPISession against a simulator that runs os-xenapi's own dom0 plugins in a
scratch dom0 root: the failure paths, where the client gets a typed error and hostile arguments
change nothing. The success paths are in test_client_dom0_success.py, _partition.py, _ipxe.py,
_migration.py and _images.py.
"""

from __future__ import annotations

import base64
import http.server
import threading
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from os_xenapi.client import disk_management, exception, host_glance, vm_management
from os_xenapi.client.session import XenAPISession

ORIGINATOR = "dom0-disk-tests"
SR_UUID = "0b5a9a3e-2c0e-4a8c-9a43-5a3d8c3b7e11"
SR_PATH = f"/var/run/sr-mount/{SR_UUID}"
INSTANCE = "5f0f0b53-5f62-4a3e-8c2e-2b7f5d1c9e22"
VDI = "9a7c6f2e-0d4b-4c59-8b7d-3e1f2a6c5d33"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = tmp_path_factory.mktemp("dom0")
    (made / SR_PATH.lstrip("/")).mkdir(parents=True)
    return made


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ----------------------------------------------------------------------------- vm_management


def test_console_log_is_the_compressed_tail_of_the_guests_log(root: Path,
                                                              session: XenAPISession) -> None:
    log = root / "var/log/xen/guest/console.5"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"x" * 200_000 + b"login: ")
    encoded = vm_management.get_console_log(session, 5)
    assert isinstance(encoded, str)  # base64 text, as 0.3.4 returned it
    text = zlib.decompress(base64.b64decode(encoded))  # what Nova's get_console_output does
    assert len(text) == 100 * 1024 and text.endswith(b"login: ")


def test_console_log_of_a_guest_without_one_is_not_found(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginNotFound):
        vm_management.get_console_log(session, 6)


def test_receive_vhd_without_received_files_is_not_found(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginNotFound):
        vm_management.receive_vhd(session, INSTANCE, SR_PATH, [VDI])


def test_receive_vhd_refuses_an_sr_path_outside_sr_mount(root: Path,
                                                         session: XenAPISession) -> None:
    before = tree(root)
    with pytest.raises(exception.PluginInvalidArgument) as info:
        vm_management.receive_vhd(session, INSTANCE, f"{SR_PATH}/../../../../etc", [VDI])
    assert info.value.argument == "sr_path"
    assert tree(root) == before


def test_transfer_vhd_refuses_a_host_that_could_be_an_ssh_option(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        vm_management.transfer_vhd(session, INSTANCE, "-oProxyCommand=reboot", VDI, SR_PATH, 0)
    assert info.value.argument == "host"


def test_transfer_vhd_of_a_missing_vhd_is_not_found(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginNotFound):
        vm_management.transfer_vhd(session, INSTANCE, "192.0.2.99", VDI, SR_PATH, 0)


# --------------------------------------------------------------------------- disk_management


def test_wait_for_dev_returns_the_path_of_a_device_that_exists(root: Path,
                                                               session: XenAPISession) -> None:
    (root / "dev").mkdir(exist_ok=True)
    (root / "dev/xvdb").write_bytes(b"")
    assert disk_management.wait_for_dev(session, "/dev/xvdb", 1) == "/dev/xvdb"


def test_wait_for_dev_returns_an_empty_string_when_the_device_never_appears(
    session: XenAPISession,
) -> None:
    assert disk_management.wait_for_dev(session, "/dev/xvdq", 0) == ""  # 0.3.4's answer


def test_wait_for_dev_refuses_a_path_outside_dev_naming_dev_path(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        disk_management.wait_for_dev(session, "/dev/../etc/shadow", 0)
    assert info.value.argument == "dev_path"


def test_make_partition_past_the_end_of_the_disk_is_sfdisk_failed_and_writes_nothing(
    root: Path, session: XenAPISession,
) -> None:
    (root / "dev").mkdir(exist_ok=True)
    (root / "dev/xvdc").write_bytes(b"\0" * 4096)
    with pytest.raises(exception.Dom0PluginError) as info:
        disk_management.make_partition(session, "xvdc", 2048, "-")
    assert info.value.details[:3] == ["OS_XENAPI_COMMAND_FAILED", "sfdisk", "1"]
    assert (root / "dev/xvdc").read_bytes() == b"\0" * 4096


def test_make_partition_refuses_a_disk_dom0_does_not_own(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        disk_management.make_partition(session, "mapper/root", 2048, "-")
    assert info.value.argument == "dev"


def test_mkfs_refuses_an_unknown_filesystem_naming_fs_type(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        disk_management.mkfs(session, "xvdb", 1, "ext4; reboot", None)
    assert info.value.argument == "fs_type"


def test_create_kernel_ramdisk_copies_the_cached_image(root: Path,
                                                       session: XenAPISession) -> None:
    (root / "boot/guest").mkdir(parents=True, exist_ok=True)
    (root / "boot/guest/img-kernel").write_bytes(b"kernel")
    new = str(uuid.uuid4())
    assert disk_management.create_kernel_ramdisk(session, "img-kernel", new) is None  # 0.3.4
    assert (root / "boot/guest" / new).read_bytes() == b"kernel"


def test_create_kernel_ramdisk_without_a_cached_image_is_none_and_copies_nothing(
    root: Path, session: XenAPISession,
) -> None:
    new = str(uuid.uuid4())
    assert disk_management.create_kernel_ramdisk(session, "not-cached", new) is None
    assert not (root / "boot/guest" / new).exists()


def test_remove_kernel_ramdisk_removes_files_of_boot_guest(root: Path,
                                                           session: XenAPISession) -> None:
    (root / "boot/guest").mkdir(parents=True, exist_ok=True)
    (root / "boot/guest/k1").write_bytes(b"k")
    (root / "boot/guest/r1").write_bytes(b"r")
    assert disk_management.remove_kernel_ramdisk(session, "/boot/guest/k1",
                                                 "/boot/guest/r1") is None
    assert not (root / "boot/guest/k1").exists() and not (root / "boot/guest/r1").exists()


def test_remove_kernel_ramdisk_refuses_traversal_and_keeps_the_file(
    root: Path, session: XenAPISession,
) -> None:
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0\n")
    with pytest.raises(exception.PluginInvalidArgument) as info:
        disk_management.remove_kernel_ramdisk(session, "/boot/guest/../../etc/passwd")
    assert info.value.argument == "kernel_file"
    assert (root / "etc/passwd").exists()


def test_copy_vdi_refuses_a_vdi_ref_that_is_not_an_opaque_ref(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        disk_management.copy_vdi(session, "../../etc/shadow", 1024)
    assert info.value.argument == "vdi_ref"


def test_safe_copy_vdis_of_a_missing_vhd_is_not_found(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginNotFound):
        disk_management.safe_copy_vdis(session, SR_PATH, [VDI], [str(uuid.uuid4())])


def test_inject_ipxe_config_refuses_a_program_not_an_iso_maker(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        disk_management.inject_ipxe_config(session, SR_PATH, VDI, "http://boot/menu",
                                           "192.0.2.5", "255.255.255.0", "192.0.2.1",
                                           "192.0.2.2", "/bin/sh")
    assert info.value.argument == "mkisofs_cmd"


def test_inject_ipxe_config_of_a_missing_iso_is_not_found(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginNotFound):
        disk_management.inject_ipxe_config(session, SR_PATH, VDI, "http://boot/menu",
                                           "192.0.2.5", "255.255.255.0", "192.0.2.1",
                                           "192.0.2.2", "mkisofs")


# ------------------------------------------------------------------------------- host_glance


class NoImages(http.server.BaseHTTPRequestHandler):
    """An image service that knows no image: every request is 404."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_error(404)

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def glance() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoImages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_download_vhd_of_a_missing_image_is_plugin_image_not_found(
    session: XenAPISession, glance: str,
) -> None:
    def endpoint(kwargs: dict) -> None:
        kwargs["endpoint"] = glance

    with pytest.raises(exception.PluginImageNotFound):
        host_glance.download_vhd(session, 0, endpoint, None, "a1b2c3d4-0000-4000-8000-000000000001",
                                 SR_PATH, {}, [str(uuid.uuid4())])


def test_download_vhd_without_an_endpoint_is_an_invalid_argument(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        host_glance.download_vhd(session, 0, None, None, "a1b2c3d4-0000-4000-8000-000000000001",
                                 SR_PATH, {}, [str(uuid.uuid4())])
    assert info.value.argument == "endpoint"


def test_download_vhd_retries_an_unreachable_service_then_gives_up(
    session: XenAPISession,
) -> None:
    tries: list[BaseException] = []

    def endpoint(kwargs: dict) -> None:
        kwargs["endpoint"] = "http://127.0.0.1:9"  # discard: nothing listens

    with pytest.raises(exception.PluginRetriesExceeded):
        host_glance.download_vhd(session, 1, endpoint, lambda exc: tries.append(exc),
                                 "a1b2c3d4-0000-4000-8000-000000000001", SR_PATH, {},
                                 [str(uuid.uuid4())])
    assert [exc.code for exc in tries] == ["OS_XENAPI_RETRYABLE"] * 2  # type: ignore[attr-defined]


def test_upload_vhd_header_injection_is_an_invalid_argument(session: XenAPISession,
                                                            glance: str) -> None:
    def endpoint(kwargs: dict) -> None:
        kwargs["endpoint"] = glance

    with pytest.raises(exception.PluginInvalidArgument) as info:
        host_glance.upload_vhd(session, 0, endpoint, None, "a1b2c3d4-0000-4000-8000-000000000001",
                               SR_PATH, {"X-Auth-Token": "t\r\nX-Evil: 1"}, [VDI])
    assert info.value.argument == "extra_headers"
