"""workarounds plugin: safe_copy_vdis copies a VHD chain within its SR under new UUIDs.

vhd-util is stubs/fake_vhd_util.py behind FakeCommands; the SR is a directory under the
scratch DOM0_ROOT (vhdfakes.py).
"""

import json
import os

import pytest

from . import harness, refusals, vhdfakes
from .vhdfakes import NEW_UUIDS, OLD_UUIDS, SR_PATH

CODES = harness.dom0lib().errors


@pytest.fixture
def sr(dom0_root, commands):
    vhdfakes.use_vhd_util(commands)
    sr_dir = vhdfakes.make_sr(dom0_root)
    vhdfakes.make_chain(sr_dir, OLD_UUIDS[:2])
    return sr_dir


def test_safe_copy_vdis_returns_the_new_leaf_uuid(sr):
    result = harness.call("workarounds", "safe_copy_vdis", SR_PATH, OLD_UUIDS[:2], NEW_UUIDS[1:])
    assert result == {"root": {"uuid": NEW_UUIDS[2]}}


def test_safe_copy_vdis_links_the_copies_into_their_own_chain(sr):
    harness.call("workarounds", "safe_copy_vdis", SR_PATH, OLD_UUIDS[:2], NEW_UUIDS[1:])
    assert vhdfakes.chain_from(sr, NEW_UUIDS[2]) == [
        (NEW_UUIDS[2], "data-of-" + OLD_UUIDS[0]), (NEW_UUIDS[1], "data-of-" + OLD_UUIDS[1])]


def test_safe_copy_vdis_copies_rather_than_links(sr):
    harness.call("workarounds", "safe_copy_vdis", SR_PATH, OLD_UUIDS[:2], NEW_UUIDS[1:])
    original = os.stat(str(sr / (OLD_UUIDS[0] + ".vhd")))
    copy = os.stat(str(sr / (NEW_UUIDS[2] + ".vhd")))
    assert original.st_ino != copy.st_ino and original.st_nlink == 1


def test_safe_copy_vdis_leaves_the_originals_and_no_staging_behind(sr):
    harness.call("workarounds", "safe_copy_vdis", SR_PATH, OLD_UUIDS[:2], NEW_UUIDS[1:])
    assert sorted(os.listdir(str(sr))) == sorted(
        [u + ".vhd" for u in OLD_UUIDS[:2]] + [u + ".vhd" for u in NEW_UUIDS[1:]])
    assert vhdfakes.chain_from(sr, OLD_UUIDS[0])[1][0] == OLD_UUIDS[1]


def test_safe_copy_vdis_of_a_missing_vhd_is_not_found_and_changes_nothing(sr, failure):
    before = refusals.tree_state(sr)
    with pytest.raises(failure) as info:
        harness.call("workarounds", "safe_copy_vdis", SR_PATH, [OLD_UUIDS[2]], NEW_UUIDS[2:])
    assert info.value.params == [CODES.NOT_FOUND, "VHD", OLD_UUIDS[2]]
    assert refusals.tree_state(sr) == before


def test_safe_copy_vdis_on_an_unmounted_sr_is_not_found(dom0_root, commands, failure):
    with pytest.raises(failure) as info:
        harness.call("workarounds", "safe_copy_vdis", SR_PATH, OLD_UUIDS[:1], NEW_UUIDS[2:])
    assert info.value.params == [CODES.NOT_FOUND, "SR mount", SR_PATH]


def test_safe_copy_vdis_with_too_few_new_uuids_changes_nothing(sr, failure):
    before = refusals.tree_state(sr)
    with pytest.raises(failure) as info:
        harness.call("workarounds", "safe_copy_vdis", SR_PATH, OLD_UUIDS[:2], NEW_UUIDS[2:])
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "workarounds.safe_copy_vdis",
                                     "uuid_stack"]
    assert refusals.tree_state(sr) == before


def test_safe_copy_vdis_never_overwrites_a_vdi_of_the_sr(sr, failure):
    before = refusals.tree_state(sr)
    with pytest.raises(failure) as info:
        harness.call("workarounds", "safe_copy_vdis", SR_PATH, OLD_UUIDS[:1], [OLD_UUIDS[1]])
    assert info.value.params[2:] == ["uuid_stack", f"names VDI {OLD_UUIDS[1]}, which the SR "
                                                   "already holds"]
    assert refusals.tree_state(sr) == before


def test_a_vhd_symlinked_out_of_the_sr_is_refused(sr, tmp_path, failure):
    outside = tmp_path / "outside.vhd"
    vhdfakes.fake_vhd_util().make(outside)
    os.symlink(str(outside), str(sr / (OLD_UUIDS[2] + ".vhd")))
    with pytest.raises(failure) as info:
        harness.call("workarounds", "safe_copy_vdis", SR_PATH, [OLD_UUIDS[2]], NEW_UUIDS[2:])
    assert info.value.params[2:] == ["vdi_uuids", "resolves outside its directory (symlink "
                                                  "escape)"]


def test_an_sr_mount_symlinked_elsewhere_is_refused(dom0_root, commands, tmp_path, failure):
    mount = dom0_root / "var" / "run" / "sr-mount"
    mount.mkdir(parents=True)
    os.symlink(str(tmp_path), str(mount / vhdfakes.SR_UUID))
    with pytest.raises(failure) as info:
        harness.call("workarounds", "safe_copy_vdis", SR_PATH, OLD_UUIDS[:1], NEW_UUIDS[2:])
    assert info.value.params[2] == "sr_path"


HOSTILE = [
    ({"sr_path": "/var/run/sr-mount/../../../etc", "vdi_uuids": OLD_UUIDS[:1],
      "uuid_stack": NEW_UUIDS}, "sr_path"),
    ({"sr_path": "/etc", "vdi_uuids": OLD_UUIDS[:1], "uuid_stack": NEW_UUIDS}, "sr_path"),
    ({"sr_path": SR_PATH + "/x", "vdi_uuids": OLD_UUIDS[:1], "uuid_stack": NEW_UUIDS},
     "sr_path"),
    ({"sr_path": SR_PATH, "vdi_uuids": ["../../etc/passwd"], "uuid_stack": NEW_UUIDS},
     "vdi_uuids"),
    ({"sr_path": SR_PATH, "vdi_uuids": OLD_UUIDS[:1], "uuid_stack": ["$(reboot)"]},
     "uuid_stack"),
    ({"sr_path": SR_PATH, "vdi_uuids": [], "uuid_stack": NEW_UUIDS}, "vdi_uuids"),
    ({"sr_path": SR_PATH, "vdi_uuids": OLD_UUIDS[:1] * 31, "uuid_stack": NEW_UUIDS},
     "vdi_uuids"),
    ({"sr_path": SR_PATH, "vdi_uuids": OLD_UUIDS[0], "uuid_stack": NEW_UUIDS}, "vdi_uuids"),
    ({"sr_path": 7, "vdi_uuids": OLD_UUIDS[:1], "uuid_stack": NEW_UUIDS}, "sr_path"),
]


@pytest.mark.parametrize("kwargs,argument", HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_argument_is_refused_and_changes_nothing(sr, commands, dom0_root, failure,
                                                        kwargs, argument):
    refusals.assert_refused("workarounds", "safe_copy_vdis", kwargs, argument, commands,
                            dom0_root, failure)


@pytest.mark.parametrize("name,raw", refusals.NOT_JSON_PARAMS,
                         ids=[name for name, _ in refusals.NOT_JSON_PARAMS])
def test_params_that_are_not_the_json_protocol_are_refused(sr, commands, dom0_root, failure,
                                                           name, raw):
    refusals.assert_refused("workarounds", "safe_copy_vdis", {}, "params", commands, dom0_root,
                            failure, raw_params=raw)


def test_runs_under_the_dom0_python_the_way_xapi_runs_it(sr, dom0_root, tmp_path):
    bin_dir = vhdfakes.install_vhd_util_launcher(tmp_path / "bin")
    params = {"args": [SR_PATH, OLD_UUIDS[:2], NEW_UUIDS[1:]]}
    status = harness.run_like_xapi(
        harness.PLUGINS / "workarounds.py", "safe_copy_vdis", {"params": json.dumps(params)},
        env_extra={"DOM0_ROOT": str(dom0_root),
                   "PATH": str(bin_dir) + os.pathsep + os.environ["PATH"]})
    assert status == ("Success", json.dumps({"root": {"uuid": NEW_UUIDS[2]}}))
