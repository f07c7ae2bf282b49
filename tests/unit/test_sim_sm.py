"""The simulated storage manager without a server: the SM error table and XAPI's mapping of SM
faults, device_config secrets, declaring storage, and driver checks that need an empty world."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.simulator.db import Database
from os_xenapi.simulator.errors import ApiError
from os_xenapi.simulator.sm.base import SMCall, driver_class, srlist
from os_xenapi.simulator.sm.errors import BackendFailure, error_table, sm_error, sm_fault
from os_xenapi.simulator.sm.secrets import Secrets
from os_xenapi.simulator.sm.targets import StorageWorld
from os_xenapi.simulator.vdi_store import VdiStore

ROOT = Path(__file__).resolve().parents[2]
SHARED_XML = ROOT.parent / "shared" / "xapi" / "XE_SR_ERRORCODES.xml"


@pytest.fixture
def world(tmp_path: Path) -> StorageWorld:
    return StorageWorld(VdiStore(tmp_path / "vdis"), demo=False)


def run_driver(world: StorageWorld, sr_type: str, device_config: dict[str, str]) -> Any:
    return driver_class(sr_type)(SMCall(world, Database(), "OpaqueRef:host", device_config))


# -- the error table and XAPI's mapping -------------------------------------------------------------

def test_error_table_holds_every_code_of_the_sm() -> None:
    assert len(error_table()) == 173
    assert error_table()["ISCSILogin"][0] == 68


@pytest.mark.skipif(not SHARED_XML.exists(), reason="shared/xapi is not next to the checkout")
def test_error_table_is_what_the_generator_makes_of_the_sm_xml() -> None:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "tools" / "gen_sm_errorcodes.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    generated = ROOT / "src/os_xenapi/simulator/sm/errorcodes.json"
    assert tool.read_table(SHARED_XML) == json.loads(generated.read_text())


def test_sm_error_is_a_backend_failure_with_the_description() -> None:
    error = sm_error("ConfigTargetMissing")
    assert error.description == [
        "SR_BACKEND_FAILURE_95", "", "The request is missing the target parameter", ""]


def test_sm_error_appends_the_opterr_and_keeps_stderr() -> None:
    error = sm_error("NFSMount", opterr="mount failed", stderr="log\n")
    assert error.description == [
        "SR_BACKEND_FAILURE_73", "", "NFS mount error [opterr=mount failed]", "log\n"]


def test_sm_error_keeps_trailing_spaces_of_descriptions() -> None:
    assert sm_error("SRScan").description[2] == "The SR scan failed "


def test_sm_error_of_an_unknown_key_is_fault_1_as_xs_errors_reports_it() -> None:
    assert sm_error("NoSuchKey").description[:3] == [
        "SR_BACKEND_FAILURE_1", "", "Error reporting error, unknown key NoSuchKey"]


@pytest.mark.parametrize(("code", "expected"), [
    (39, ["SR_NOT_EMPTY"]),
    (24, ["VDI_IN_USE"]),
    (16, ["SR_DEVICE_IN_USE"]),
    (144, ["VDI_MISSING", "OpaqueRef:sr", "OpaqueRef:vdi"]),
])
def test_xapi_maps_four_sm_faults_to_its_own_errors(code: int, expected: list[str]) -> None:
    error = sm_fault(code, "ignored", sr="OpaqueRef:sr", vdi="OpaqueRef:vdi")
    assert error.description == expected and not isinstance(error, BackendFailure)


# -- secrets -------------------------------------------------------------------------------------

def test_move_passwords_replaces_every_password_key_by_a_secret() -> None:
    secrets = Secrets()
    moved = secrets.move_passwords({"chapuser": "u", "chappassword": "p",
                                    "incoming_chappassword": "q"})
    assert set(moved) == {"chapuser", "chappassword_secret", "incoming_chappassword_secret"}
    assert secrets.value(moved["chappassword_secret"]) == "p"


def test_duplicate_gives_each_copy_its_own_secret() -> None:
    secrets = Secrets()
    first = secrets.move_passwords({"chappassword": "p"})
    second = secrets.duplicate(first)
    assert second["chappassword_secret"] != first["chappassword_secret"]
    assert secrets.value(second["chappassword_secret"]) == "p" and len(secrets) == 2


def test_duplicate_of_an_unknown_secret_is_an_invalid_uuid() -> None:
    with pytest.raises(ApiError) as info:
        Secrets().duplicate({"chappassword_secret": "nope"})
    assert info.value.description == ["UUID_INVALID", "secret", "nope"]


def test_forget_in_drops_the_secrets_a_config_names() -> None:
    secrets = Secrets()
    secrets.forget_in(secrets.move_passwords({"password": "p"}))
    assert len(secrets) == 0


# -- declaring storage -----------------------------------------------------------------------------

@pytest.mark.parametrize(("call", "message"), [
    (lambda w: w.add_iscsi_target("", "iqn.x"), "needs an address and an IQN"),
    (lambda w: w.add_iscsi_target("10.0.0.1", "iqn.x", port=0), "port must be 1-65535"),
    (lambda w: w.add_iscsi_target("10.0.0.1", "iqn.x", luns=[0]), "LUN 0 size"),
    (lambda w: w.add_iscsi_target("10.0.0.1", "iqn.x", chap_user="u"), "chap_password"),
    (lambda w: w.add_nfs_export("10.0.0.2", "srv"), "must be absolute"),
    (lambda w: w.add_nfs_export("10.0.0.2", "/srv", versions=["2"]), "NFS versions"),
    (lambda w: w.add_smb_share("server/share"), "//server/share"),
])
def test_declaring_bad_storage_says_what_is_wrong(world: StorageWorld, call: Any,
                                                  message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(world)


def test_declaring_the_same_target_twice_is_refused(world: StorageWorld) -> None:
    world.add_iscsi_target("10.0.0.1", "iqn.x")
    with pytest.raises(ValueError, match="already declared"):
        world.add_iscsi_target("10.0.0.1", "iqn.x")


def test_luns_get_stable_scsi_ids_and_vdi_uuids(tmp_path: Path) -> None:
    def ids() -> list[tuple[str, str]]:
        world = StorageWorld(VdiStore(tmp_path / "v"), demo=False)
        target = world.add_iscsi_target("10.0.0.1", "iqn.x", luns=[1, 2])
        return [(lun.scsi_id, lun.vdi_uuid) for lun in target.luns]

    assert ids() == ids() and len(set(ids())) == 2


def test_a_new_world_declares_the_demo_target_and_export(tmp_path: Path) -> None:
    world = StorageWorld(VdiStore(tmp_path / "v"))
    assert [t.iqn for t in world.iscsi_targets] == ["iqn.2026-11.org.xcp-ng.sim:demo"]
    assert [(e.server, e.path) for e in world.nfs_exports] == [("192.0.2.20", "/export/xapi-sim")]


# -- drivers that need an empty world ----------------------------------------------------------------

def test_hba_create_without_any_hba_lun_is_no_such_device(world: StorageWorld) -> None:
    with pytest.raises(ApiError) as info:
        run_driver(world, "hba", {}).create(0)
    assert info.value.description[:3] == [
        "SR_BACKEND_FAILURE_19", "", "No such device [opterr=No such HBA Device detected [any]]"]


def test_lvmohba_without_scsiid_lists_the_hba_luns_on_stderr(world: StorageWorld) -> None:
    lun = world.add_hba_lun(5 * 1024**3)
    with pytest.raises(BackendFailure) as info:
        run_driver(world, "lvmohba", {})
    assert info.value.sm_code == 107
    assert f"<SCSIid>{lun.scsi_id}</SCSIid>" in info.value.stderr
    assert info.value.candidates == [{"SCSIid": lun.scsi_id}]


def test_driver_types_are_case_insensitive_and_aliases_share_a_driver() -> None:
    assert driver_class("NFS") is driver_class("nfs")
    assert driver_class("lvhdoiscsi") is driver_class("lvmoiscsi")


def test_srlist_is_pretty_printed_as_minidom_prints_it() -> None:
    assert srlist(["u1"]) == (
        '<?xml version="1.0" ?>\n<SRlist>\n\t<SR>\n\t\t<UUID>u1</UUID>\n\t</SR>\n</SRlist>\n')


def test_a_world_survives_a_round_trip_through_json(world: StorageWorld, tmp_path: Path) -> None:
    from os_xenapi.simulator.sm.targets import VdiMeta

    target = world.add_iscsi_target("10.0.0.1", "iqn.x", chap_user="u", chap_password="p")
    export = world.add_nfs_export("10.0.0.2", "/srv", versions=["3"])
    export.srs["sr-uuid"] = {"vdi-uuid": VdiMeta("vdi-uuid", 1024, name_label="vol")}
    world.add_smb_share("//10.0.0.3/share", username="u", password="p")
    world.add_hba_lun(1024)
    world.local_disk("host:/dev/sdb")
    secret = world.secrets.create("s3cret")
    again = StorageWorld.from_state(world.vdis, json.loads(json.dumps(world.to_state())))
    assert again.to_state() == world.to_state()
    assert again.iscsi_targets[0].luns[0].scsi_id == target.luns[0].scsi_id
    assert again.nfs_exports[0].srs["sr-uuid"]["vdi-uuid"].name_label == "vol"
    assert again.secrets.value(secret) == "s3cret"
