"""VDI operations on SRs of the simulated storage, through the official XenAPI SDK: files in the
VdiStore, space checks, forget and introduce, clone, snapshot, copy, resize and update
(shared/xapi/PROTOCOL.md sections 2.3 and 4)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
import XenAPI

from os_xenapi.simulator import Simulator

GiB = 1024**3
MiB = 1024**2
NULL = "OpaqueRef:NULL"
_names = count()


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(auth_failure_delay=0) as sim:
        yield sim


@pytest.fixture(scope="module")
def x(sim: Simulator) -> Iterator[Any]:
    session = XenAPI.Session(sim.url)
    session.xenapi.login_with_password(sim.username, sim.password, "1.0", "storage-vdi-test")
    yield session.xenapi
    session.xenapi.session.logout()


@pytest.fixture(scope="module")
def host(x: Any) -> str:
    return x.host.get_all()[0]


@pytest.fixture
def made(x: Any) -> Iterator[list[str]]:
    srs: list[str] = []
    yield srs
    for sr in srs:
        if sr in x.SR.get_all():
            for pbd in x.SR.get_PBDs(sr):
                x.PBD.unplug(pbd)
            x.SR.forget(sr)


@pytest.fixture
def nfs_sr(sim: Simulator, x: Any, host: str, made: list) -> str:
    """A plugged NFS SR on a fresh 4 GiB export."""
    path = f"/srv/vdi{next(_names)}"
    sim.add_nfs_export("10.2.0.7", path, size=4 * GiB)
    sr = x.SR.create(host, {"server": "10.2.0.7", "serverpath": path}, "0", "nfs", "", "nfs",
                     "user", False, {})
    made.append(sr)
    return sr


@pytest.fixture
def iscsi_config(sim: Simulator) -> dict[str, str]:
    iqn = f"iqn.2026-01.org.example:lun{next(_names)}"
    sim.add_iscsi_target("10.1.0.7", iqn, luns=[2 * GiB, GiB])
    return {"target": "10.1.0.7", "targetIQN": iqn}


@pytest.fixture
def iscsi_sr(x: Any, host: str, iscsi_config: dict, made: list) -> str:
    """A plugged LUN-per-VDI SR whose scan found LUN 0 (2 GiB) and LUN 1 (1 GiB)."""
    sr = x.SR.create(host, iscsi_config, "0", "luns", "", "iscsi", "", False, {})
    made.append(sr)
    return sr


@pytest.fixture
def lvm_sr(x: Any, host: str, iscsi_config: dict, made: list, sim: Simulator) -> str:
    """A thick LVM SR on the 2 GiB LUN 0 of a fresh target."""
    scsi_id = sim.run(lambda xapi: next(
        t for t in xapi.storage.iscsi_targets if t.iqn == iscsi_config["targetIQN"]
    ).luns[0].scsi_id)
    sr = x.SR.create(host, {**iscsi_config, "SCSIid": scsi_id}, "0", "lvm", "", "lvmoiscsi", "",
                     False, {})
    made.append(sr)
    return sr


def failure(call: Any, *args: Any) -> list[str]:
    with pytest.raises(XenAPI.Failure) as info:
        call(*args)
    return info.value.details


def new_vdi(x: Any, sr: str, size: int = GiB, **overrides: Any) -> str:
    return x.VDI.create({"SR": sr, "virtual_size": str(size), "type": "user", "sharable": False,
                         "read_only": False, "other_config": {}, "name_label": "vol",
                         **overrides})


def path_of(sim: Simulator, x: Any, vdi: str) -> str:
    uuid = x.VDI.get_uuid(vdi)
    return str(sim.run(lambda xapi: xapi.vdis.path(uuid)))


def write(sim: Simulator, x: Any, vdi: str, data: bytes, offset: int = 0) -> None:
    with open(path_of(sim, x, vdi), "r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def read(sim: Simulator, x: Any, vdi: str, size: int, offset: int = 0) -> bytes:
    with open(path_of(sim, x, vdi), "rb") as handle:
        handle.seek(offset)
        return handle.read(size)


# -- create, destroy, forget ----------------------------------------------------------------------

def test_vdi_create_makes_a_sparse_file_of_the_virtual_size(sim: Simulator, x: Any,
                                                            nfs_sr: str) -> None:
    vdi = new_vdi(x, nfs_sr, GiB)
    stat = os.stat(path_of(sim, x, vdi))
    assert stat.st_size == GiB and stat.st_blocks * 512 < MiB
    assert x.VDI.get_sm_config(vdi) == {"vdi_type": "vhd"}


def test_vdi_create_beyond_the_sr_size_is_sr_full(x: Any, nfs_sr: str) -> None:
    assert failure(new_vdi, x, nfs_sr, 5 * GiB) == ["SR_FULL", str(5 * GiB), str(4 * GiB)]


def test_vdi_create_beyond_a_thick_srs_free_space_is_no_space(x: Any, lvm_sr: str) -> None:
    new_vdi(x, lvm_sr, GiB + GiB // 2)
    assert failure(new_vdi, x, lvm_sr, GiB) == [
        "SR_BACKEND_FAILURE_44", "", "There is insufficient space", ""]


def test_vdi_create_on_a_lun_per_vdi_sr_finds_no_free_lun(x: Any, iscsi_sr: str) -> None:
    assert failure(new_vdi, x, iscsi_sr, GiB)[:3] == [
        "SR_BACKEND_FAILURE_44", "", "There is insufficient space"]


def test_vdi_destroy_removes_its_file(sim: Simulator, x: Any, nfs_sr: str) -> None:
    vdi = new_vdi(x, nfs_sr)
    path = path_of(sim, x, vdi)
    x.VDI.destroy(vdi)
    assert not os.path.exists(path)


def test_vdi_forget_keeps_the_file_and_a_scan_brings_the_vdi_back(sim: Simulator, x: Any,
                                                                  nfs_sr: str) -> None:
    vdi = new_vdi(x, nfs_sr)
    uuid, path = x.VDI.get_uuid(vdi), path_of(sim, x, vdi)
    x.VDI.forget(vdi)
    assert vdi not in x.VDI.get_all() and os.path.exists(path)
    x.SR.scan(nfs_sr)
    back = x.VDI.get_by_uuid(uuid)
    assert (x.VDI.get_name_label(back), x.VDI.get_SR(back)) == ("vol", nfs_sr)


def test_vdi_destroyed_stays_gone_after_a_scan(x: Any, nfs_sr: str) -> None:
    vdi = new_vdi(x, nfs_sr)
    uuid = x.VDI.get_uuid(vdi)
    x.VDI.destroy(vdi)
    x.SR.scan(nfs_sr)
    assert failure(x.VDI.get_by_uuid, uuid) == ["UUID_INVALID", "VDI", uuid]


# -- introduce ---------------------------------------------------------------------------------------

def introduce_args(sr: str, location: str, sm_config: dict[str, str]) -> list[Any]:
    """The 11 positional parameters nova passes to VDI.introduce; the rest take defaults."""
    return ["", "volume", "", sr, "user", False, False, {}, location, {}, sm_config]


def test_vdi_introduce_on_an_sr_without_vdi_introduce_is_refused(x: Any, nfs_sr: str) -> None:
    assert failure(x.VDI.introduce, *introduce_args(nfs_sr, "", {})) == [
        "SR_OPERATION_NOT_SUPPORTED", nfs_sr]


def test_vdi_introduce_with_a_location_in_use_is_refused(x: Any, iscsi_sr: str) -> None:
    location = x.VDI.get_location(x.SR.get_VDIs(iscsi_sr)[0])
    assert failure(x.VDI.introduce, *introduce_args(iscsi_sr, location, {"LUNid": "0"})) == [
        "LOCATION_NOT_UNIQUE", iscsi_sr, location]


def test_vdi_introduce_finds_a_forgotten_lun_by_its_lun_id(x: Any, iscsi_sr: str) -> None:
    lun1 = next(v for v in x.SR.get_VDIs(iscsi_sr) if x.VDI.get_sm_config(v)["LUNid"] == "1")
    uuid = x.VDI.get_uuid(lun1)
    x.VDI.forget(lun1)
    vdi = x.VDI.introduce(*introduce_args(iscsi_sr, "", {"LUNid": "1"}))
    record = x.VDI.get_record(vdi)
    assert (record["uuid"], record["name_label"], record["managed"]) == (uuid, "volume", True)
    assert int(record["virtual_size"]) == GiB


def test_vdi_introduce_of_an_unknown_lun_is_unavailable(x: Any, iscsi_sr: str) -> None:
    assert failure(x.VDI.introduce, *introduce_args(iscsi_sr, "", {"LUNid": "7"}))[:3] == [
        "SR_BACKEND_FAILURE_46", "", "The VDI is not available"]


# -- clone, snapshot, copy -------------------------------------------------------------------------

def test_vdi_clone_copies_the_bytes(sim: Simulator, x: Any, nfs_sr: str) -> None:
    vdi = new_vdi(x, nfs_sr, 8 * MiB)
    write(sim, x, vdi, b"boot sector", offset=3 * MiB)
    clone = x.VDI.clone(vdi, {})
    assert clone != vdi and x.VDI.get_SR(clone) == nfs_sr
    assert read(sim, x, clone, 11, offset=3 * MiB) == b"boot sector"


def test_vdi_snapshot_records_what_it_is_a_snapshot_of(x: Any, nfs_sr: str) -> None:
    vdi = new_vdi(x, nfs_sr)
    snap = x.VDI.snapshot(vdi, {})
    record = x.VDI.get_record(snap)
    assert (record["is_a_snapshot"], record["snapshot_of"]) == (True, vdi)
    assert record["snapshot_time"].value != "19700101T00:00:00Z"
    assert x.VDI.get_snapshots(vdi) == [snap]


def test_vdi_copy_into_another_sr_copies_the_bytes(sim: Simulator, x: Any, nfs_sr: str,
                                                   lvm_sr: str) -> None:
    vdi = new_vdi(x, nfs_sr, 8 * MiB)
    write(sim, x, vdi, b"payload")
    copy = x.VDI.copy(vdi, lvm_sr, NULL, NULL)
    assert x.VDI.get_SR(copy) == lvm_sr and read(sim, x, copy, 7) == b"payload"


def test_vdi_copy_into_an_existing_vdi_writes_it(sim: Simulator, x: Any, nfs_sr: str) -> None:
    source, target = new_vdi(x, nfs_sr, 8 * MiB), new_vdi(x, nfs_sr, 16 * MiB)
    write(sim, x, source, b"payload")
    assert x.VDI.copy(source, NULL, NULL, target) == target
    assert read(sim, x, target, 7) == b"payload"
    assert os.path.getsize(path_of(sim, x, target)) == 16 * MiB


def test_vdi_copy_into_a_smaller_vdi_is_refused(x: Any, nfs_sr: str) -> None:
    source, target = new_vdi(x, nfs_sr, 16 * MiB), new_vdi(x, nfs_sr, 8 * MiB)
    assert failure(x.VDI.copy, source, NULL, NULL, target) == [
        "VDI_TOO_SMALL", target, str(16 * MiB)]


def test_vdi_copy_into_a_read_only_vdi_is_refused(x: Any, nfs_sr: str) -> None:
    source, target = new_vdi(x, nfs_sr), new_vdi(x, nfs_sr, read_only=True)
    assert failure(x.VDI.copy, source, NULL, NULL, target) == ["VDI_READONLY", target]


# -- resize and update -------------------------------------------------------------------------------

def test_vdi_resize_grows_the_vdi_and_its_file(sim: Simulator, x: Any, nfs_sr: str) -> None:
    vdi = new_vdi(x, nfs_sr, GiB)
    x.VDI.resize(vdi, str(2 * GiB))
    assert int(x.VDI.get_virtual_size(vdi)) == 2 * GiB
    assert os.path.getsize(path_of(sim, x, vdi)) == 2 * GiB


def test_vdi_resize_cannot_shrink(x: Any, nfs_sr: str) -> None:
    vdi = new_vdi(x, nfs_sr, GiB)
    assert failure(x.VDI.resize, vdi, str(GiB // 2)) == [
        "SR_BACKEND_FAILURE_79", "", "VDI Invalid size [opterr=shrinking not allowed]", ""]


def test_vdi_update_reads_the_allocated_bytes(sim: Simulator, x: Any, nfs_sr: str) -> None:
    vdi = new_vdi(x, nfs_sr, 8 * MiB)
    write(sim, x, vdi, b"\xff" * (2 * MiB))
    x.VDI.update(vdi)
    assert 2 * MiB <= int(x.VDI.get_physical_utilisation(vdi)) < 3 * MiB


def test_vm_clone_copies_the_bytes_of_its_disks(sim: Simulator, x: Any, nfs_sr: str) -> None:
    vdi = new_vdi(x, nfs_sr, 8 * MiB)
    write(sim, x, vdi, b"disk data")
    vm = x.VM.clone(x.VM.get_by_name_label("Debian Bookworm 12")[0], f"vm{next(_names)}")
    x.VBD.create({"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW",
                  "type": "Disk", "empty": False, "other_config": {}, "qos_algorithm_type": "",
                  "qos_algorithm_params": {}})
    clone = x.VM.clone(vm, "clone")
    try:
        [copied] = [x.VBD.get_VDI(v) for v in x.VM.get_VBDs(clone)]
        assert copied != vdi and read(sim, x, copied, 9) == b"disk data"
    finally:
        for each in (clone, vm):
            x.VM.destroy(each)
