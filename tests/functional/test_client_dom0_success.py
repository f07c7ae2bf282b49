"""The dom0 plugin calls that need a disk plugged into dom0, on their success path: XenAPISession
against a simulator that runs os-xenapi's own plugins in a scratch dom0 root, where a VBD plugged
into the control domain shows up as ``$DOM0_ROOT/dev/<device>`` holding the VDI's bytes. The
official XenAPI SDK checks the simulator's side (the VBD records, the device node).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import disk_management
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

ORIGINATOR = "dom0-success-tests"
MiB = 1024 * 1024


@pytest.fixture()
def vdi(sim: Simulator, x: Any) -> Iterator[str]:
    """A 1 MiB VDI of the default SR whose bytes are known (see :func:`contents`)."""
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    ref = x.VDI.create({"name_label": "kernel", "name_description": "", "SR": sr,
                        "virtual_size": str(MiB), "type": "user", "sharable": False,
                        "read_only": False, "other_config": {}})
    uuid = x.VDI.get_uuid(ref)
    path = Path(sim.run(lambda xapi: xapi.vdis.ensure(uuid, MiB)))
    with open(path, "r+b") as handle:
        handle.write(contents(uuid))
    yield ref
    x.VDI.destroy(ref)


def contents(uuid: str) -> bytes:
    """What the test VDI holds at its start: 4 KiB derived from its uuid."""
    return (uuid.encode() * 200)[:4096]


def dom0_vbds(x: Any) -> list[str]:
    dom0 = x.host.get_control_domain(x.host.get_all()[0])
    return x.VM.get_VBDs(dom0)


def dom0_vbd(x: Any, vdi: str, mode: str = "RO") -> str:
    dom0 = x.host.get_control_domain(x.host.get_all()[0])
    return x.VBD.create({"VM": dom0, "VDI": vdi, "userdevice": "autodetect", "bootable": False,
                         "mode": mode, "type": "Disk", "unpluggable": True, "empty": False,
                         "other_config": {}, "qos_algorithm_type": "",
                         "qos_algorithm_params": {}})


# ------------------------------------------------------------------ the simulator's dom0 devices


def test_a_vbd_plugged_into_dom0_is_a_dev_node_with_the_vdis_bytes(root: Path, x: Any,
                                                                     vdi: str) -> None:
    vbd = dom0_vbd(x, vdi)
    try:
        x.VBD.plug(vbd)
        node = root / "dev" / x.VBD.get_device(vbd)
        assert node.read_bytes()[:4096] == contents(x.VDI.get_uuid(vdi))
        x.VBD.unplug(vbd)
    finally:
        x.VBD.destroy(vbd)


def test_unplugging_a_dom0_vbd_removes_its_dev_node(root: Path, x: Any, vdi: str) -> None:
    vbd = dom0_vbd(x, vdi)
    try:
        x.VBD.plug(vbd)
        node = root / "dev" / x.VBD.get_device(vbd)
        x.VBD.unplug(vbd)
        assert not os.path.lexists(node)
    finally:
        x.VBD.destroy(vbd)


# ------------------------------------------------------------------------------ kernel.copy_vdi


def test_copy_vdi_copies_the_first_image_size_bytes_to_boot_guest(root: Path, x: Any,
                                                                   session: XenAPISession,
                                                                   vdi: str) -> None:
    uuid = x.VDI.get_uuid(vdi)
    assert disk_management.copy_vdi(session, vdi, 1000) is None  # 0.3.4 dropped the path
    assert (root / "boot/guest" / uuid).read_bytes() == contents(uuid)[:1000]


def test_copy_vdi_with_an_image_id_also_caches_the_image(root: Path, x: Any,
                                                          session: XenAPISession,
                                                          vdi: str) -> None:
    uuid = x.VDI.get_uuid(vdi)
    disk_management.copy_vdi(session, vdi, 2048, "cached-kernel")
    assert (root / "boot/guest/cached-kernel").read_bytes() == contents(uuid)[:2048]


def test_copy_vdi_leaves_no_vbd_and_no_dev_node_behind(root: Path, x: Any,
                                                        session: XenAPISession,
                                                        vdi: str) -> None:
    before = dom0_vbds(x)
    disk_management.copy_vdi(session, vdi, 512)
    assert dom0_vbds(x) == before
    assert not any((root / "dev").glob("xvd*"))


def test_a_copied_kernel_can_be_cached_then_removed(root: Path, x: Any,
                                                     session: XenAPISession, vdi: str) -> None:
    disk_management.copy_vdi(session, vdi, 512, "kernel-image")
    kernel = f"/boot/guest/{x.VDI.get_uuid(vdi)}"
    copy = "/boot/guest/3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b"
    disk_management.create_kernel_ramdisk(session, "kernel-image", copy.rsplit("/", 1)[1])
    assert (root / copy.lstrip("/")).read_bytes() == (root / kernel.lstrip("/")).read_bytes()
    disk_management.remove_kernel_ramdisk(session, kernel, copy)
    assert not (root / kernel.lstrip("/")).exists()
    assert not (root / copy.lstrip("/")).exists()

