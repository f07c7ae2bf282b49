"""SR and PBD rules and the OpenStack volume flows, through the official XenAPI SDK against a
running two-host simulator (shared/xapi/PROTOCOL.md sections 2.3, 5.4 and 7 item 10)."""

from __future__ import annotations

import re
import uuid as uuidlib
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
import XenAPI

from os_xenapi.simulator import Simulator
from os_xenapi.simulator.sm.targets import storage_of

GiB = 1024**3
NULL = "OpaqueRef:NULL"
NOVA_SR_NAMESPACE = uuidlib.UUID("3cca4135-a809-5bb3-af62-275fbfe87178")
_names = count()


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(hosts=2, auth_failure_delay=0) as sim:
        yield sim


@pytest.fixture(scope="module")
def x(sim: Simulator) -> Iterator[Any]:
    session = XenAPI.Session(sim.url)
    session.xenapi.login_with_password(sim.username, sim.password, "1.0", "storage-test")
    yield session.xenapi
    session.xenapi.session.logout()


@pytest.fixture(scope="module")
def master(x: Any) -> str:
    return x.pool.get_master(x.pool.get_all()[0])


@pytest.fixture(scope="module")
def other_host(x: Any, master: str) -> str:
    return next(h for h in x.host.get_all() if h != master)


@pytest.fixture
def nfs(sim: Simulator) -> dict[str, str]:
    """The device_config of a fresh 10 GiB NFS export."""
    path = f"/srv/nfs{next(_names)}"
    sim.add_nfs_export("10.2.0.5", path, size=10 * GiB)
    return {"server": "10.2.0.5", "serverpath": path}


@pytest.fixture
def iscsi(sim: Simulator) -> dict[str, str]:
    """The device_config of a fresh CHAP-protected target with LUN 0 (5 GiB) and LUN 1 (1 GiB)."""
    iqn = f"iqn.2026-01.org.example:vol{next(_names)}"
    sim.add_iscsi_target("10.1.0.5", iqn, luns=[5 * GiB, GiB], chap_user="nova",
                         chap_password="s3cret")
    return {"target": "10.1.0.5", "port": "3260", "targetIQN": iqn, "chapuser": "nova",
            "chappassword": "s3cret"}


@pytest.fixture
def made(x: Any) -> Iterator[list[str]]:
    """SRs a test makes; they are unplugged and forgotten afterwards."""
    srs: list[str] = []
    yield srs
    for sr in srs:
        if sr in x.SR.get_all():
            for pbd in x.SR.get_PBDs(sr):
                x.PBD.unplug(pbd)
            x.SR.forget(sr)


def failure(call: Any, *args: Any) -> list[str]:
    with pytest.raises(XenAPI.Failure) as info:
        call(*args)
    return info.value.details


def create(x: Any, host: str, made: list[str], sr_type: str, config: dict[str, str],
           shared: bool = False) -> str:
    sr = x.SR.create(host, config, "0", "sr", "", sr_type, "user", shared, {})
    made.append(sr)
    return sr


def introduce(x: Any, made: list[str], sr_type: str, uuid: str = "") -> str:
    sr = x.SR.introduce(uuid, "sr", "", sr_type, "", False, {})
    made.append(sr)
    return sr


def new_vdi(x: Any, sr: str, size: int = GiB) -> str:
    return x.VDI.create({"SR": sr, "virtual_size": str(size), "type": "user", "sharable": False,
                         "read_only": False, "other_config": {}, "name_label": "vol"})


def running_vm(x: Any, host: str) -> str:
    vm = x.VM.clone(x.VM.get_by_name_label("Debian Bookworm 12")[0], f"vm{next(_names)}")
    other = x.VM.get_other_config(vm)
    default_sr = x.pool.get_default_SR(x.pool.get_all()[0])
    other["disks"] = other["disks"].replace('sr=""', f'sr="{x.SR.get_uuid(default_sr)}"')
    x.VM.set_other_config(vm, other)
    x.VM.provision(vm)
    x.VM.start_on(vm, host, False, False)
    return vm


def disk_vbd(vm: str, vdi: str, userdevice: str = "1") -> dict[str, Any]:
    return {"VM": vm, "VDI": vdi, "userdevice": userdevice, "bootable": False, "mode": "RW",
            "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
            "qos_algorithm_type": "", "qos_algorithm_params": {}, "qos_supported_algorithms": []}


def vdi_file(sim: Simulator, uuid: str) -> str:
    return str(sim.run(lambda xapi: xapi.vdis.path(uuid)))


# -- SR.create / introduce -------------------------------------------------------------------------

def test_sr_create_plugs_a_pbd_and_takes_the_size_of_the_export(x: Any, master: str,
                                                                nfs: dict, made: list) -> None:
    sr = create(x, master, made, "nfs", nfs)
    record = x.SR.get_record(sr)
    assert (record["type"], int(record["physical_size"]), record["VDIs"]) == ("nfs", 10 * GiB, [])
    [pbd] = record["PBDs"]
    assert x.PBD.get_record(pbd)["currently_attached"] is True
    assert x.PBD.get_host(pbd) == master and x.PBD.get_device_config(pbd) == nfs


def test_shared_sr_create_makes_a_plugged_pbd_on_every_host(x: Any, master: str, nfs: dict,
                                                            made: list) -> None:
    sr = create(x, master, made, "nfs", nfs, shared=True)
    pbds = x.SR.get_PBDs(sr)
    assert {x.PBD.get_host(p) for p in pbds} == set(x.host.get_all())
    assert all(x.PBD.get_currently_attached(p) for p in pbds)


def test_sr_create_on_iscsi_records_the_target_in_sm_config(x: Any, master: str, iscsi: dict,
                                                            made: list) -> None:
    sm_config = x.SR.get_sm_config(create(x, master, made, "iscsi", iscsi))
    assert sm_config["targetIQN"] == iscsi["targetIQN"] and sm_config["datatype"] == "ISCSI"


def test_sr_introduce_starts_with_unknown_sizes_and_no_pbds_or_vdis(x: Any, made: list) -> None:
    record = x.SR.get_record(introduce(x, made, "NFS"))
    assert (record["type"], record["physical_size"], record["physical_utilisation"],
            record["virtual_allocation"]) == ("nfs", "-1", "-1", "0")
    assert (record["PBDs"], record["VDIs"]) == ([], [])


def test_sr_introduce_of_a_known_uuid_is_refused(x: Any, made: list) -> None:
    uuid = x.SR.get_uuid(introduce(x, made, "nfs"))
    assert failure(x.SR.introduce, uuid, "", "", "nfs", "", False, {}) == [
        "SR_UUID_EXISTS", uuid]


def test_sr_make_is_deprecated(x: Any, master: str) -> None:
    assert failure(x.SR.make, master, {}, "0", "", "", "nfs", "", {}) == ["MESSAGE_DEPRECATED"]


def test_supported_types_have_an_sm_record_each(x: Any) -> None:
    types = x.SR.get_supported_types()
    assert {"nfs", "iscsi", "lvmoiscsi", "ext", "lvm", "smb", "iso"} <= set(types)
    assert set(types) <= {rec["type"] for rec in x.SM.get_all_records().values()}


# -- SR.scan / forget / destroy ----------------------------------------------------------------------

def test_sr_scan_without_a_plugged_pbd_is_refused(x: Any, made: list) -> None:
    sr = introduce(x, made, "nfs")
    assert failure(x.SR.scan, sr) == ["SR_HAS_NO_PBDS", sr]


def test_sr_scan_counts_the_bytes_written_to_its_vdis(sim: Simulator, x: Any, master: str,
                                                      nfs: dict, made: list) -> None:
    sr = create(x, master, made, "nfs", nfs)
    vdi = new_vdi(x, sr)
    with open(vdi_file(sim, x.VDI.get_uuid(vdi)), "r+b") as handle:
        handle.write(b"\x01" * (1 << 20))
    x.SR.scan(sr)
    assert 1 << 20 <= int(x.SR.get_physical_utilisation(sr)) < 2 << 20
    assert int(x.SR.get_virtual_allocation(sr)) == GiB
    assert int(x.VDI.get_physical_utilisation(vdi)) == int(x.SR.get_physical_utilisation(sr))


def test_sr_update_recomputes_the_sizes(sim: Simulator, x: Any, master: str, nfs: dict,
                                        made: list) -> None:
    sr = create(x, master, made, "nfs", nfs)
    vdi = new_vdi(x, sr)
    with open(vdi_file(sim, x.VDI.get_uuid(vdi)), "r+b") as handle:
        handle.write(b"\x01" * 4096)
    x.SR.update(sr)
    assert int(x.SR.get_physical_utilisation(sr)) >= 4096
    assert int(x.SR.get_physical_size(sr)) == 10 * GiB


def test_sr_forget_with_a_plugged_pbd_is_refused(x: Any, master: str, nfs: dict,
                                                 made: list) -> None:
    sr = create(x, master, made, "nfs", nfs)
    assert failure(x.SR.forget, sr) == ["SR_HAS_PBD", sr]


def test_sr_forget_drops_its_pbds_and_vdi_records(x: Any, master: str, nfs: dict,
                                                  made: list) -> None:
    sr = create(x, master, made, "nfs", nfs)
    vdi, [pbd] = new_vdi(x, sr), x.SR.get_PBDs(sr)
    x.PBD.unplug(pbd)
    x.SR.forget(sr)
    assert sr not in x.SR.get_all()
    assert pbd not in x.PBD.get_all() and vdi not in x.VDI.get_all()


def test_sr_destroy_with_a_plugged_pbd_is_refused(x: Any, master: str, nfs: dict,
                                                  made: list) -> None:
    sr = create(x, master, made, "nfs", nfs)
    assert failure(x.SR.destroy, sr) == ["SR_HAS_PBD", sr]


def test_sr_destroy_without_pbds_is_refused(x: Any, made: list) -> None:
    sr = introduce(x, made, "nfs")
    assert failure(x.SR.destroy, sr) == ["SR_HAS_NO_PBDS", sr]


def test_sr_destroy_with_managed_vdis_is_refused(x: Any, master: str, nfs: dict,
                                                 made: list) -> None:
    sr = create(x, master, made, "nfs", nfs)
    new_vdi(x, sr)
    x.PBD.unplug(x.SR.get_PBDs(sr)[0])
    assert failure(x.SR.destroy, sr) == ["SR_NOT_EMPTY"]


def test_sr_destroy_while_forgotten_vdis_remain_on_the_export_is_refused(
        x: Any, master: str, nfs: dict, made: list) -> None:
    sr = create(x, master, made, "nfs", nfs)
    x.VDI.forget(new_vdi(x, sr))
    x.PBD.unplug(x.SR.get_PBDs(sr)[0])
    assert failure(x.SR.destroy, sr) == ["SR_NOT_EMPTY"]
    assert sr in x.SR.get_all()


def test_sr_destroy_removes_the_sr_from_its_storage(x: Any, master: str, nfs: dict,
                                                    made: list) -> None:
    sr = create(x, master, made, "nfs", nfs)
    [pbd] = x.SR.get_PBDs(sr)
    x.PBD.unplug(pbd)
    x.SR.destroy(sr)
    assert sr not in x.SR.get_all() and pbd not in x.PBD.get_all()
    assert "<UUID>" not in x.SR.probe(master, nfs, "nfs", {})


# -- PBDs --------------------------------------------------------------------------------------------

def test_pbd_create_stores_a_secret_instead_of_the_chap_password(x: Any, master: str,
                                                                 iscsi: dict, made: list) -> None:
    pbd = x.PBD.create({"host": master, "SR": introduce(x, made, "iscsi"),
                        "device_config": iscsi})
    config = x.PBD.get_device_config(pbd)
    assert "chappassword" not in config and config["chapuser"] == "nova"
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", config["chappassword_secret"])


def test_pbd_set_device_config_moves_passwords_to_secrets(x: Any, master: str, iscsi: dict,
                                                          made: list) -> None:
    pbd = x.PBD.create({"host": master, "SR": introduce(x, made, "iscsi"),
                        "device_config": {}})
    x.PBD.set_device_config(pbd, iscsi)
    assert set(x.PBD.get_device_config(pbd)) == {*iscsi, "chappassword_secret"} - {"chappassword"}


def test_no_record_holds_a_device_config_password(x: Any, master: str, iscsi: dict,
                                                  made: list) -> None:
    sr = create(x, master, made, "iscsi", iscsi)
    dumped = repr([x.SR.get_all_records(), x.PBD.get_all_records(), x.VDI.get_all_records()])
    assert "s3cret" not in dumped and x.SR.get_PBDs(sr)


def test_pbd_create_for_a_host_that_has_one_is_refused(x: Any, master: str, made: list) -> None:
    sr = introduce(x, made, "nfs")
    first = x.PBD.create({"host": master, "SR": sr, "device_config": {}})
    assert failure(x.PBD.create, {"host": master, "SR": sr, "device_config": {}}) == [
        "PBD_EXISTS", sr, master, first]


def test_pbd_create_with_an_srmaster_key_is_refused(x: Any, master: str, made: list) -> None:
    record = {"host": master, "SR": introduce(x, made, "nfs"),
              "device_config": {"SRmaster": "true"}}
    assert failure(x.PBD.create, record) == [
        "VALUE_NOT_SUPPORTED", "SRmaster", "true", "This key is for internal use only"]


def test_pbd_plug_of_a_plugged_pbd_does_nothing(x: Any, master: str, nfs: dict,
                                                made: list) -> None:
    [pbd] = x.SR.get_PBDs(create(x, master, made, "nfs", nfs))
    x.PBD.plug(pbd)
    assert x.PBD.get_currently_attached(pbd) is True


def test_pbd_unplug_of_an_unplugged_pbd_does_nothing(x: Any, master: str, made: list) -> None:
    pbd = x.PBD.create({"host": master, "SR": introduce(x, made, "nfs"), "device_config": {}})
    x.PBD.unplug(pbd)
    assert x.PBD.get_currently_attached(pbd) is False


def test_pbd_destroy_while_plugged_is_refused(x: Any, master: str, nfs: dict,
                                              made: list) -> None:
    [pbd] = x.SR.get_PBDs(create(x, master, made, "nfs", nfs))
    assert failure(x.PBD.destroy, pbd) == ["OPERATION_NOT_ALLOWED", "PBD is currently attached"]


def test_pbd_destroy_forgets_the_secrets_of_its_device_config(sim: Simulator, x: Any,
                                                              master: str, iscsi: dict,
                                                              made: list) -> None:
    def secrets() -> int:
        return sim.run(lambda xapi: len(storage_of(xapi).secrets))

    before = secrets()
    pbd = x.PBD.create({"host": master, "SR": introduce(x, made, "iscsi"),
                        "device_config": iscsi})
    assert secrets() == before + 1
    x.PBD.destroy(pbd)
    assert secrets() == before


def test_pbd_plug_with_a_wrong_chap_password_fails_the_login(x: Any, master: str, iscsi: dict,
                                                             made: list) -> None:
    pbd = x.PBD.create({"host": master, "SR": introduce(x, made, "iscsi"),
                        "device_config": {**iscsi, "chappassword": "guess"}})
    assert failure(x.PBD.plug, pbd)[0] == "SR_BACKEND_FAILURE_68"
    assert x.PBD.get_currently_attached(pbd) is False


def test_pbd_plug_of_an_iscsi_sr_counts_its_sessions(x: Any, master: str, iscsi: dict,
                                                     made: list) -> None:
    pbd = x.PBD.create({"host": master, "SR": introduce(x, made, "iscsi"),
                        "device_config": iscsi})
    x.PBD.plug(pbd)
    assert x.PBD.get_other_config(pbd) == {"iscsi_sessions": "1"}
    x.PBD.unplug(pbd)
    assert x.PBD.get_other_config(pbd) == {}


def test_pbd_plug_of_an_nfs_sr_missing_from_the_export_fails_the_mount(
        x: Any, master: str, nfs: dict, made: list) -> None:
    pbd = x.PBD.create({"host": master, "SR": introduce(x, made, "nfs"), "device_config": nfs})
    assert failure(x.PBD.plug, pbd)[:2] == ["SR_BACKEND_FAILURE_73", ""]


def test_non_shared_sr_plugs_on_one_host_at_a_time(x: Any, master: str, other_host: str,
                                                   nfs: dict, made: list) -> None:
    sr = create(x, master, made, "nfs", nfs)
    pbd = x.PBD.create({"host": other_host, "SR": sr, "device_config": nfs})
    assert failure(x.PBD.plug, pbd) == ["SR_NOT_SHARABLE", sr, master]


def test_pbd_unplug_while_a_running_vm_uses_a_vdi_is_refused(x: Any, master: str, nfs: dict,
                                                             made: list) -> None:
    sr = create(x, master, made, "nfs", nfs)
    vdi, vm = new_vdi(x, sr), running_vm(x, master)
    vbd = x.VBD.create(disk_vbd(vm, vdi))
    x.VBD.plug(vbd)
    try:
        assert failure(x.PBD.unplug, x.SR.get_PBDs(sr)[0]) == ["VDI_IN_USE", vdi]
    finally:
        x.VM.hard_shutdown(vm)


# -- the OpenStack flows (PROTOCOL.md section 5.4) ---------------------------------------------------

def test_nova_attaches_an_iscsi_volume_and_detaches_it(x: Any, master: str, iscsi: dict) -> None:
    params = {**iscsi, "backend-kind": "vbd"}
    sr_uuid = str(uuidlib.uuid5(NOVA_SR_NAMESPACE,
                                f"{iscsi['target']}/{iscsi['port']}/{iscsi['targetIQN']}"))
    sr = x.SR.introduce(sr_uuid, f"tempSR-{sr_uuid}", "", "iscsi", "", False, params)
    pbd = x.PBD.create({"host": master, "SR": sr, "device_config": params})
    x.PBD.plug(pbd)
    x.SR.scan(sr)
    vdi = next(v for v in x.SR.get_VDIs(sr) if x.VDI.get_sm_config(v).get("LUNid") == "1")
    assert x.VDI.get_record(vdi)["managed"] and int(x.VDI.get_virtual_size(vdi)) == GiB
    vm = running_vm(x, master)
    vbd = x.VBD.create(disk_vbd(vm, vdi))
    x.VBD.add_to_other_config(vbd, "osvol", "True")
    x.VBD.plug(vbd)
    assert (x.VBD.get_currently_attached(vbd), x.VBD.get_device(vbd)) == (True, "xvdb")
    x.VBD.unplug(vbd)
    x.VBD.destroy(vbd)
    x.VM.hard_shutdown(vm)
    x.PBD.unplug(pbd)
    x.SR.forget(sr)
    assert sr not in x.SR.get_all() and pbd not in x.PBD.get_all()
    assert vdi not in x.VDI.get_all()


def test_cinder_nfs_volume_survives_forget_and_introduce(sim: Simulator, x: Any, master: str,
                                                         nfs: dict, made: list) -> None:
    sr = x.SR.create(master, nfs, "0", "cinder", "", "nfs", "", False, {})
    vdi = x.VDI.create({"SR": sr, "virtual_size": str(GiB), "type": "User", "sharable": False,
                        "read_only": False, "other_config": {}})
    vdi_uuid, sr_uuid = x.VDI.get_uuid(vdi), x.SR.get_uuid(sr)
    with open(vdi_file(sim, vdi_uuid), "r+b") as handle:
        handle.write(b"volume data")
    for pbd in x.SR.get_PBDs(sr):
        x.PBD.unplug(pbd)
    x.SR.forget(sr)
    assert failure(x.VDI.get_by_uuid, vdi_uuid) == ["UUID_INVALID", "VDI", vdi_uuid]
    sr = x.SR.introduce(sr_uuid, "cinder", "", "nfs", "", False, {})
    made.append(sr)
    pbd = x.PBD.create({"host": master, "SR": sr, "device_config": nfs})
    x.PBD.plug(pbd)
    x.SR.scan(sr)
    found = x.VDI.get_by_uuid(vdi_uuid)
    assert (x.VDI.get_SR(found), int(x.VDI.get_virtual_size(found))) == (sr, GiB)
    with open(vdi_file(sim, vdi_uuid), "rb") as handle:
        assert handle.read(11) == b"volume data"
