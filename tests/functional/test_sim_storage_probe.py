"""What the simulated SM drivers say about device_configs, through the official XenAPI SDK:
the SR_BACKEND_FAILURE_<n> of every missing or bad key per SR type, and SR.probe / SR.probe_ext
outputs (shared/xapi/PROTOCOL.md sections 5.1-5.3)."""

from __future__ import annotations

import re
import xml.dom.minidom
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
import XenAPI

from os_xenapi.simulator import Simulator
from os_xenapi.simulator.sm.targets import storage_of

GiB = 1024**3
CHAP_TARGET, CHAP_IQN = "10.1.0.5", "iqn.2026-01.org.example:chap"
ODD_PORT_TARGET, ODD_PORT_IQN = "10.1.0.6", "iqn.2026-01.org.example:odd-port"
NFS_SERVER = "10.2.0.5"
SMB_SHARE = "//10.3.0.5/share"
LOGIN_FAILED = ("ISCSI login failed - check access settings for the initiator on the storage, "
                "if CHAP is used verify CHAP credentials")
_paths = count()


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(auth_failure_delay=0) as sim:
        sim.add_iscsi_target(CHAP_TARGET, CHAP_IQN, luns=[5 * GiB, GiB], chap_user="nova",
                             chap_password="s3cret")
        sim.add_iscsi_target(ODD_PORT_TARGET, ODD_PORT_IQN, port=3261)
        sim.add_nfs_export(NFS_SERVER, "/srv/v3only", versions=["3"])
        sim.run(lambda x: storage_of(x).add_smb_share(SMB_SHARE, username="win",
                                                       password="pw"))
        yield sim


@pytest.fixture(scope="module")
def x(sim: Simulator) -> Iterator[Any]:
    session = XenAPI.Session(sim.url)
    session.xenapi.login_with_password(sim.username, sim.password, "1.0", "storage-probe-test")
    yield session.xenapi
    session.xenapi.session.logout()


@pytest.fixture(scope="module")
def host(x: Any) -> str:
    return x.host.get_all()[0]


@pytest.fixture
def export(sim: Simulator) -> str:
    """A fresh NFS export on NFS_SERVER, so that SR lists start empty."""
    path = f"/srv/export{next(_paths)}"
    sim.add_nfs_export(NFS_SERVER, path, size=3 * GiB)
    return path


def failure(call: Any, *args: Any) -> list[str]:
    with pytest.raises(XenAPI.Failure) as info:
        call(*args)
    return info.value.details


def create(x: Any, host: str, sr_type: str, device_config: dict[str, str]) -> str:
    return x.SR.create(host, device_config, "0", "test", "", sr_type, "user", False, {})


def elements(text: str, tag: str) -> list[str]:
    return [node.firstChild.data if node.firstChild else ""
            for node in xml.dom.minidom.parseString(text).getElementsByTagName(tag)]


CHAP = {"target": CHAP_TARGET, "targetIQN": CHAP_IQN, "chapuser": "nova",
        "chappassword": "s3cret"}

# (SR type, device_config, SM error number, description) for SR.create.
BAD_CONFIGS = {
    "iscsi-no-target": ("iscsi", {}, 95, "The request is missing the target parameter"),
    "iscsi-port-not-a-number": (
        "iscsi", {"target": CHAP_TARGET, "port": "x"}, 142,
        "Incorrect value for iSCSI port, must be a number between 1 and 65535"),
    "iscsi-port-out-of-range": (
        "iscsi", {"target": CHAP_TARGET, "port": "65536"}, 142,
        "Incorrect value for iSCSI port, must be a number between 1 and 65535"),
    "iscsi-no-target-iqn": (
        "iscsi", {"target": CHAP_TARGET}, 96,
        "The request is missing or has an incorrect target IQN parameter"),
    "iscsi-unreachable-target": (
        "iscsi", {"target": "10.1.0.99", "targetIQN": CHAP_IQN}, 141,
        "Unable to connect to ISCSI service on target"),
    "iscsi-unknown-iqn": (
        "iscsi", {"target": CHAP_TARGET, "targetIQN": "iqn.2026-01.org.example:nope"}, 83,
        "ISCSI discovery failed [opterr=check target settings]"),
    "iscsi-wrong-chap": ("iscsi", {**CHAP, "chappassword": "wrong"}, 68, LOGIN_FAILED),
    "iscsi-missing-chap": ("iscsi", {"target": CHAP_TARGET, "targetIQN": CHAP_IQN}, 68,
                           LOGIN_FAILED),
    "lvmoiscsi-no-scsiid": ("lvmoiscsi", CHAP, 107,
                            "The SCSIid parameter is missing or incorrect"),
    "lvmoiscsi-unknown-scsiid": (
        "lvmoiscsi", {**CHAP, "SCSIid": "36000nope"}, 47,
        "The SR is not available [opterr=ISCSI device failed to appear]"),
    "lvmoiscsi-wrong-chap-is-unavailable": (
        "lvmoiscsi", {**CHAP, "chappassword": "wrong", "SCSIid": "36000nope"}, 47,
        f"The SR is not available [opterr={LOGIN_FAILED}]"),
    "nfs-no-server": ("nfs", {}, 102, "The request is missing the server parameter"),
    "nfs-no-serverpath": ("nfs", {"server": NFS_SERVER}, 101,
                          "The request is missing the serverpath parameter"),
    "nfs-invalid-version": ("nfs", {"server": NFS_SERVER, "serverpath": "/srv/v3only",
                                    "nfsversion": "5"}, 1200, "Invalid nfsversion."),
    "nfs-unsupported-version": (
        "nfs", {"server": NFS_SERVER, "serverpath": "/srv/v3only", "nfsversion": "4.1"}, 72,
        "Required NFS server version unsupported [opterr=Unsupported NFS version: 4.1]"),
    "nfs-unknown-server": ("nfs", {"server": "10.2.0.99", "serverpath": "/srv"}, 108,
                           "Unable to detect an NFS service on this target."),
    "nfs-path-not-exported": (
        "nfs", {"server": NFS_SERVER, "serverpath": "/srv/secret"}, 73,
        f"NFS mount error [opterr=mount failed on server `{NFS_SERVER}` with return code 32]"),
    "smb-no-server": ("smb", {}, 102, "The request is missing the server parameter"),
    "smb-unknown-share": ("smb", {"server": "//10.3.0.5/other"}, 111,
                          "SMB mount error [opterr=mount failed with return code 32]"),
    "smb-wrong-password": ("smb", {"server": SMB_SHARE, "username": "win", "password": "no"}, 111,
                           "SMB mount error [opterr=mount failed with return code 32]"),
    "ext-no-device": ("ext", {}, 90, "The request is missing the device parameter"),
    "ext-relative-device": ("ext", {"device": "sdb"}, 91,
                            "The device is not a valid path [opterr=path is sdb]"),
    "lvm-no-device": ("lvm", {"device": ""}, 90, "The request is missing the device parameter"),
    "file-no-location": ("file", {}, 94, "The request is missing the location parameter"),
    "iso-no-location": ("iso", {}, 94, "The request is missing the location parameter"),
    "iso-bad-cifs-location": (
        "iso", {"location": "server:/isos", "type": "cifs"}, 225,
        "Incorrect Location string format. String must be in the format SERVER:PATH for NFS "
        "targets, or \\\\SERVER\\PATH for CIFS targets"),
    "lvmohba-no-scsiid": ("lvmohba", {}, 107, "The SCSIid parameter is missing or incorrect"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=list(BAD_CONFIGS))
def test_sr_create_reports_the_sm_error_of_a_bad_device_config(x: Any, host: str,
                                                               case: str) -> None:
    sr_type, device_config, number, description = BAD_CONFIGS[case]
    before = set(x.SR.get_all())
    details = failure(create, x, host, sr_type, device_config)
    assert details[:3] == [f"SR_BACKEND_FAILURE_{number}", "", description]
    assert set(x.SR.get_all()) == before  # a failed create leaves no SR behind


def test_sr_create_of_an_unknown_type_is_an_unknown_driver(x: Any, host: str) -> None:
    assert failure(create, x, host, "zfs", {}) == ["SR_UNKNOWN_DRIVER", "zfs"]


def test_sr_probe_of_an_unknown_type_is_an_unknown_driver(x: Any, host: str) -> None:
    assert failure(x.SR.probe, host, {}, "zfs", {}) == ["SR_UNKNOWN_DRIVER", "zfs"]


# -- SR.probe ------------------------------------------------------------------------------------

def test_iscsi_probe_without_target_iqn_lists_the_iqns_on_stderr(x: Any, host: str) -> None:
    details = failure(x.SR.probe, host, {"target": CHAP_TARGET}, "iscsi", {})
    assert details[0] == "SR_BACKEND_FAILURE_96"
    assert elements(details[3], "TargetIQN") == [CHAP_IQN, "*"]
    assert elements(details[3], "IPAddress") == [CHAP_TARGET, CHAP_TARGET]
    assert elements(details[3], "Port") == []  # the default port is not written


def test_iscsi_probe_writes_a_port_that_is_not_the_default(x: Any, host: str) -> None:
    details = failure(x.SR.probe, host, {"target": ODD_PORT_TARGET, "port": "3261"}, "iscsi", {})
    assert elements(details[3], "Port") == ["3261", "3261"]


def test_iscsi_probe_with_wrong_chap_fails_the_discovery(x: Any, host: str) -> None:
    config = {"target": CHAP_TARGET, "chapuser": "nova", "chappassword": "wrong"}
    assert failure(x.SR.probe, host, config, "iscsi", {})[:3] == [
        "SR_BACKEND_FAILURE_68", "", LOGIN_FAILED]


def test_iscsi_probe_lists_the_srs_using_the_target_iqn(x: Any, host: str) -> None:
    sr = create(x, host, "iscsi", CHAP)
    try:
        found = x.SR.probe(host, CHAP, "iscsi", {})
        assert elements(found, "UUID") == [x.SR.get_uuid(sr)]
        assert elements(found, "TargetIQN") == [CHAP_IQN]
    finally:
        for pbd in x.SR.get_PBDs(sr):
            x.PBD.unplug(pbd)
        x.SR.forget(sr)


def test_lvmoiscsi_probe_without_scsiid_lists_the_luns_on_stderr(sim: Simulator, x: Any,
                                                                 host: str) -> None:
    luns = sim.run(lambda xapi: [lun.scsi_id for t in storage_of(xapi).iscsi_targets
                                 if t.iqn == CHAP_IQN for lun in t.luns])
    details = failure(x.SR.probe, host, CHAP, "lvmoiscsi", {})
    assert details[0] == "SR_BACKEND_FAILURE_107"
    assert elements(details[3], "SCSIid") == luns
    assert elements(details[3], "size") == [str(5 * GiB), str(GiB)]


def test_nfs_probe_without_serverpath_lists_the_exports_on_stderr(x: Any, host: str,
                                                                  export: str) -> None:
    details = failure(x.SR.probe, host, {"server": NFS_SERVER}, "nfs", {})
    assert details[0] == "SR_BACKEND_FAILURE_101"
    assert export in elements(details[3], "Path")
    assert set(elements(details[3], "Target")) == {NFS_SERVER}


def test_nfs_probe_lists_the_sr_directories_on_the_export(x: Any, host: str,
                                                          export: str) -> None:
    config = {"server": NFS_SERVER, "serverpath": export}
    assert elements(x.SR.probe(host, config, "nfs", {}), "UUID") == []
    sr = create(x, host, "nfs", config)
    assert elements(x.SR.probe(host, config, "nfs", {}), "UUID") == [x.SR.get_uuid(sr)]


def test_probe_keeps_no_secret_after_it_returns(sim: Simulator, x: Any, host: str) -> None:
    def secrets() -> int:
        return sim.run(lambda xapi: len(storage_of(xapi).secrets))

    before = secrets()
    x.SR.probe(host, CHAP, "iscsi", {})
    failure(x.SR.probe, host, {**CHAP, "chappassword": "wrong", "targetIQN": ""}, "iscsi", {})
    assert secrets() == before


# -- SR.probe_ext --------------------------------------------------------------------------------

def test_probe_ext_offers_one_configuration_per_export(x: Any, host: str, export: str) -> None:
    results = x.SR.probe_ext(host, {"server": NFS_SERVER}, "nfs", {})
    offered = {r["configuration"]["serverpath"]: r for r in results}
    assert export in offered
    assert offered[export]["configuration"] == {"server": NFS_SERVER, "serverpath": export}
    assert offered[export]["complete"] is True and "sr" not in offered[export]


def test_probe_ext_describes_the_srs_found(x: Any, host: str, export: str) -> None:
    config = {"server": NFS_SERVER, "serverpath": export}
    sr = create(x, host, "nfs", config)
    [result] = x.SR.probe_ext(host, config, "nfs", {})
    assert result["sr"]["uuid"] == x.SR.get_uuid(sr)
    assert result["sr"]["name_label"] == "test"
    assert int(result["sr"]["total_space"]) == 3 * GiB
    assert result["sr"]["health"] == "healthy"


def test_probe_ext_of_an_empty_export_is_one_complete_result_without_sr(
        x: Any, host: str, export: str) -> None:
    config = {"server": NFS_SERVER, "serverpath": export}
    assert x.SR.probe_ext(host, config, "nfs", {}) == [
        {"configuration": config, "complete": True, "extra_info": {}}]


def test_probe_ext_marks_an_iscsi_iqn_complete_for_a_lun_per_vdi_sr(x: Any, host: str) -> None:
    results = x.SR.probe_ext(host, {"target": ODD_PORT_TARGET, "port": "3261"}, "iscsi", {})
    assert [(r["configuration"]["targetIQN"], r["complete"]) for r in results] == [
        (ODD_PORT_IQN, True)]


def test_probe_ext_marks_an_iscsi_iqn_incomplete_for_lvm_which_needs_a_lun(x: Any,
                                                                           host: str) -> None:
    results = x.SR.probe_ext(host, {"target": ODD_PORT_TARGET, "port": "3261"}, "lvmoiscsi", {})
    assert {r["configuration"]["targetIQN"]: r["complete"] for r in results} == {
        ODD_PORT_IQN: False, "*": False}


def test_probe_ext_offers_each_lun_to_lvm_over_iscsi(x: Any, host: str) -> None:
    results = x.SR.probe_ext(host, CHAP, "lvmoiscsi", {})
    assert len(results) == 2 and all(r["complete"] for r in results)
    assert all(re.fullmatch(r"36[0-9a-f]{30}", r["configuration"]["SCSIid"]) for r in results)
    assert all("chappassword_secret" not in r["configuration"] for r in results)


def test_probe_ext_raises_the_error_of_a_config_it_cannot_complete(x: Any, host: str) -> None:
    assert failure(x.SR.probe_ext, host, {}, "iscsi", {})[0] == "SR_BACKEND_FAILURE_95"
