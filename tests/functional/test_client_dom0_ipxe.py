"""disk_management.inject_ipxe_config end to end: XenAPISession against a simulator that runs
os-xenapi's ipxe plugin in a scratch dom0 root, where mount, umount and the ISO builders are
the simulated dom0's stand-ins over the real xorriso. The boot ISO sits where Nova keeps it,
<SR mount>/iso/<VDI uuid>.img, in the directory of the simulator's default SR (its uuid read
with the official XenAPI SDK); the rebuilt image is read back with xorriso.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import disk_management, exception
from os_xenapi.client.session import XenAPISession

ORIGINATOR = "dom0-ipxe-tests"
XORRISO = "/usr/bin/xorriso"
TIMEOUT = 60.0
MENU = "https://boot.example.com/menu.ipxe?node=7"
NETWORK = ("192.0.2.50", "255.255.255.0", "192.0.2.1", "192.0.2.53")
BOOT_FILES = {"isolinux.bin": bytes(range(256)) * 16, "ipxe.krn": b"ipxe kernel " * 100,
              "isolinux.cfg": b"DEFAULT old\nLABEL old\n  KERNEL old.krn\n"}
NETCFG = f"""#!ipxe
set net0/ip {NETWORK[0]}
set net0/netmask {NETWORK[1]}
set net0/gateway {NETWORK[2]}
set dns {NETWORK[3]}
ifopen net0
chain {MENU} || goto localboot
:localboot
sanboot --no-describe --drive 0x80
"""
ISOLINUX_CFG = "DEFAULT ipxe\nTIMEOUT 30\nLABEL ipxe\n  KERNEL ipxe.krn\n  INITRD netcfg.ipxe\n"

pytestmark = pytest.mark.skipif(not os.access(XORRISO, os.X_OK),
                                reason="xorriso is not installed (scripts/install-system-deps.sh)")


@pytest.fixture(scope="module")
def sr_path(x: Any) -> str:
    """The mount path of the simulator's default SR; the tests make its iso directory."""
    sr_uuid = x.SR.get_uuid(x.pool.get_default_SR(x.pool.get_all()[0]))
    return f"/var/run/sr-mount/{sr_uuid}"


def sr_dir(root: Path, sr_path: str) -> Path:
    return root / sr_path.lstrip("/")


def xorriso(*args: str) -> None:
    subprocess.run([XORRISO, "-no_rc", *args], capture_output=True, timeout=TIMEOUT, check=True)


def make_boot_iso(root: Path, sr_path: str, files: dict[str, bytes] = BOOT_FILES,
                  mode: int = 0o644) -> tuple[str, Path]:
    """A new VDI uuid and its boot ISO (isolinux.bin booted without emulation) in the SR."""
    vdi_uuid = str(uuid.uuid4())
    iso_dir = sr_dir(root, sr_path) / "iso"
    iso_dir.mkdir(parents=True, exist_ok=True)
    source = root.parent / f"src-{vdi_uuid}"
    source.mkdir()
    for name, data in files.items():
        (source / name).write_bytes(data)
    image = iso_dir / f"{vdi_uuid}.img"
    xorriso("-as", "mkisofs", "-quiet", "-o", str(image), "-c", "boot.cat", "-b", "isolinux.bin",
            "-no-emul-boot", "-boot-load-size", "4", str(source))
    shutil.rmtree(source)
    image.chmod(mode)
    return vdi_uuid, image


def unpack(image: Path, into: Path) -> dict[str, bytes]:
    """The files of an ISO, extracted by xorriso: name -> bytes."""
    xorriso("-osirrox", "on", "-indev", str(image), "-extract", "/", str(into))
    return {p.name: p.read_bytes() for p in into.iterdir()}


def leftovers(root: Path, sr_path: str) -> list[str]:
    """Staging areas and mount points the plugin left in the SR, and recorded mounts."""
    left = [p.name for p in sr_dir(root, sr_path).iterdir() if p.name.startswith(".os-xenapi")]
    table = root / "var/lib/simmounts.json"
    mounts = json.loads(table.read_text())["mounts"] if table.exists() else {}
    return left + sorted(mounts)


def inject(session: XenAPISession, sr_path: str, vdi_uuid: str, mkisofs: str = "mkisofs"
           ) -> None:
    assert disk_management.inject_ipxe_config(session, sr_path, vdi_uuid, MENU, *NETWORK,
                                              mkisofs) is None  # as in 0.3.4


@pytest.fixture(scope="module", params=["mkisofs", "genisoimage", "xorrisofs"])
def injected(request: pytest.FixtureRequest, root: Path, sr_path: str,
             session: XenAPISession, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, dict[str, bytes]]:
    """A boot ISO of mode 0640 rewritten by inject with each ISO builder: (image, its files)."""
    vdi_uuid, image = make_boot_iso(root, sr_path, mode=0o640)
    inject(session, sr_path, vdi_uuid, request.param)
    return image, unpack(image, tmp_path_factory.mktemp("rebuilt"))


# -- success --------------------------------------------------------------------------------------

def test_inject_writes_the_static_network_setup_and_menu_url(
        injected: tuple[Path, dict[str, bytes]]) -> None:
    assert injected[1]["netcfg.ipxe"].decode() == NETCFG


def test_inject_replaces_isolinux_cfg_to_boot_ipxe_with_netcfg(
        injected: tuple[Path, dict[str, bytes]]) -> None:
    assert injected[1]["isolinux.cfg"].decode() == ISOLINUX_CFG


def test_inject_keeps_the_other_files_of_the_iso(
        injected: tuple[Path, dict[str, bytes]]) -> None:
    files = injected[1]
    assert files["ipxe.krn"] == BOOT_FILES["ipxe.krn"]
    assert set(files) == {"boot.cat", "ipxe.krn", "isolinux.bin", "isolinux.cfg", "netcfg.ipxe"}


def test_the_rebuilt_iso_still_boots_isolinux_bin(
        injected: tuple[Path, dict[str, bytes]]) -> None:
    report = subprocess.run([XORRISO, "-no_rc", "-indev", str(injected[0]), "-report_el_torito",
                             "plain"], capture_output=True, text=True, timeout=TIMEOUT,
                            check=True).stdout
    assert "El Torito img path :   1  /isolinux.bin" in report
    assert "boot-info-table" in report


def test_inject_keeps_the_images_mode(injected: tuple[Path, dict[str, bytes]]) -> None:
    assert injected[0].stat().st_mode & 0o7777 == 0o640


def test_inject_leaves_no_staging_area_or_mount_behind(
        injected: tuple[Path, dict[str, bytes]], root: Path, sr_path: str) -> None:
    assert leftovers(root, sr_path) == []


def test_inject_a_second_time_rewrites_the_rebuilt_image(
        root: Path, sr_path: str, session: XenAPISession, tmp_path: Path) -> None:
    vdi_uuid, image = make_boot_iso(root, sr_path)
    inject(session, sr_path, vdi_uuid)
    inject(session, sr_path, vdi_uuid)
    assert unpack(image, tmp_path)["netcfg.ipxe"].decode() == NETCFG


# -- failure ------------------------------------------------------------------------------------

def test_inject_of_a_file_that_is_not_an_iso_fails_in_mount(
        root: Path, sr_path: str, session: XenAPISession) -> None:
    vdi_uuid, image = make_boot_iso(root, sr_path)
    image.write_bytes(os.urandom(100_000))
    with pytest.raises(exception.Dom0PluginError) as info:
        inject(session, sr_path, vdi_uuid)
    assert info.value.code == "OS_XENAPI_COMMAND_FAILED"
    assert info.value.params[0] == "mount" and "wrong fs type" in info.value.params[-1]


def test_a_failed_mount_leaves_the_image_unchanged_and_nothing_behind(
        root: Path, sr_path: str, session: XenAPISession) -> None:
    vdi_uuid, image = make_boot_iso(root, sr_path)
    junk = os.urandom(100_000)
    image.write_bytes(junk)
    with pytest.raises(exception.Dom0PluginError):
        inject(session, sr_path, vdi_uuid)
    assert image.read_bytes() == junk
    assert leftovers(root, sr_path) == []


def test_inject_fails_in_mkisofs_when_the_boot_image_cannot_be_patched(
        root: Path, sr_path: str, session: XenAPISession) -> None:
    # -boot-info-table needs a boot image of at least 64 bytes: xorriso gives up on this one.
    vdi_uuid, _image = make_boot_iso(root, sr_path, {**BOOT_FILES, "isolinux.bin": b"ab"})
    with pytest.raises(exception.Dom0PluginError) as info:
        inject(session, sr_path, vdi_uuid)
    assert info.value.code == "OS_XENAPI_COMMAND_FAILED"
    assert info.value.params[0] == "mkisofs"


def test_a_failed_build_leaves_the_image_unchanged_and_nothing_behind(
        root: Path, sr_path: str, session: XenAPISession) -> None:
    vdi_uuid, image = make_boot_iso(root, sr_path, {**BOOT_FILES, "isolinux.bin": b"ab"})
    before = image.read_bytes()
    with pytest.raises(exception.Dom0PluginError):
        inject(session, sr_path, vdi_uuid, "genisoimage")
    assert image.read_bytes() == before
    assert leftovers(root, sr_path) == []
