"""dom0lib.vhdchain: importing a staged VHD chain into an SR, and every way it refuses to.

vhd-util is stubs/fake_vhd_util.py behind FakeCommands. After any refusal the SR must hold
exactly what it held before.
"""

import os

import pytest

from . import harness, refusals, vhdfakes
from .vhdfakes import NEW_UUIDS

LIB = harness.dom0lib()
CODES = LIB.errors


@pytest.fixture
def sr(dom0_root, commands):
    vhdfakes.use_vhd_util(commands)
    return vhdfakes.make_sr(dom0_root)


@pytest.fixture
def stage(sr):
    area = sr / ".os-xenapi-staging-test"
    area.mkdir()
    return area


def _stage(stage, names_and_parents):
    for name, parent in names_and_parents:
        vhdfakes.fake_vhd_util().make(stage / name, parent=parent, payload=name)


def _import(sr, stage, uuid_stack=NEW_UUIDS):
    return LIB.vhdchain.import_vhds(str(sr), str(stage), list(uuid_stack))


def _sr_state(sr, stage):
    """The SR's files, leaving out the staging area the import works in."""
    inside = os.path.join(sr.name, stage.name)
    return {path: state for path, state in refusals.tree_state(sr.parent).items()
            if path != inside and not path.startswith(inside + os.sep)}


def _refused(sr, stage, uuid_stack=NEW_UUIDS):
    before = _sr_state(sr, stage)
    with pytest.raises(LIB.errors.PluginError) as info:
        _import(sr, stage, uuid_stack)
    assert _sr_state(sr, stage) == before
    return info.value


def test_a_numbered_chain_gets_uuids_from_the_end_of_the_stack(sr, stage):
    _stage(stage, [("0.vhd", None), ("1.vhd", None)])
    assert _import(sr, stage) == NEW_UUIDS[2]
    assert vhdfakes.chain_from(sr, NEW_UUIDS[2]) == [(NEW_UUIDS[2], "0.vhd"),
                                                     (NEW_UUIDS[1], "1.vhd")]


def test_imported_files_leave_staging(sr, stage):
    _stage(stage, [("0.vhd", None)])
    _import(sr, stage)
    assert os.listdir(str(stage)) == []


def test_old_style_snap_image_base_names_are_numbered(sr, stage):
    _stage(stage, [("snap.vhd", None), ("image.vhd", None), ("base.vhd", None)])
    _import(sr, stage)
    assert [payload for _, payload in vhdfakes.chain_from(sr, NEW_UUIDS[2])] == [
        "snap.vhd", "image.vhd", "base.vhd"]


def test_a_single_vhd_of_any_name_is_the_leaf(sr, stage):
    _stage(stage, [("disk.vhd", None)])
    assert _import(sr, stage) == NEW_UUIDS[2]


def test_a_legacy_swap_vhd_is_left_out_of_the_chain(sr, stage):
    _stage(stage, [("0.vhd", None), ("swap.vhd", None)])
    _import(sr, stage)
    assert vhdfakes.vhd_names(sr) == [NEW_UUIDS[2] + ".vhd"]


def test_a_gap_in_the_numbers_is_bad_data(sr, stage):
    _stage(stage, [("0.vhd", None), ("2.vhd", None)])
    error = _refused(sr, stage)
    assert (error.code, error.details[0]) == (CODES.BAD_DATA, "VHD chain")


def test_an_empty_staging_area_is_bad_data(sr, stage):
    assert _refused(sr, stage).details == ["VHD chain", "holds no VHD"]


def test_a_chain_longer_than_the_storage_manager_allows_is_bad_data(sr, stage):
    _stage(stage, [(f"{n}.vhd", None) for n in range(31)])
    assert _refused(sr, stage).details == ["VHD chain", "is longer than 30 VHDs"]


def test_too_few_uuids_is_an_invalid_uuid_stack(sr, stage):
    _stage(stage, [("0.vhd", None), ("1.vhd", None)])
    error = _refused(sr, stage, NEW_UUIDS[2:])
    assert error.details == ["uuid_stack", "has 1 UUIDs for a chain of 2 VHDs"]


def test_a_repeated_uuid_is_an_invalid_uuid_stack(sr, stage):
    _stage(stage, [("0.vhd", None), ("1.vhd", None)])
    assert _refused(sr, stage, [NEW_UUIDS[0], NEW_UUIDS[0]]).details == [
        "uuid_stack", "repeats a UUID"]


def test_a_hidden_leaf_is_refused(sr, stage):
    vhdfakes.fake_vhd_util().make(stage / "0.vhd", hidden=True)
    error = _refused(sr, stage)
    assert error.details == [NEW_UUIDS[2] + ".vhd", "is hidden (a base copy, not a leaf)"]


def test_an_invalid_vhd_is_repaired_once_and_then_imported(sr, stage, commands):
    vhdfakes.fake_vhd_util().make(stage / "0.vhd", invalid="footer invalid: bad checksum",
                                  repairable=True)
    _import(sr, stage)
    assert ["vhd-util", "repair", "-n", str(stage / (NEW_UUIDS[2] + ".vhd"))] in commands.calls


def test_an_unrepairable_future_timestamp_is_refused_with_a_clock_hint(sr, stage):
    vhdfakes.fake_vhd_util().make(stage / "0.vhd",
                                  invalid="footer invalid: invalid timestamp in the future")
    error = _refused(sr, stage)
    assert error.code == CODES.BAD_DATA
    assert error.details[1] == ("invalid footer: invalid timestamp in the future (check that "
                                "both hosts' clocks are right)")


def test_a_parent_outside_the_chain_is_refused(sr, stage, tmp_path):
    vhdfakes.fake_vhd_util().make(tmp_path / "outside.vhd")
    relative = os.path.relpath(str(tmp_path / "outside.vhd"), str(stage))
    _stage(stage, [("0.vhd", relative)])
    assert _refused(sr, stage).details == [NEW_UUIDS[2] + ".vhd",
                                           "names a parent outside the chain"]


def test_a_missing_parent_is_refused(sr, stage):
    _stage(stage, [("0.vhd", "gone.vhd")])
    assert _refused(sr, stage).details == [NEW_UUIDS[2] + ".vhd", "its parent VHD is missing"]


def test_an_existing_vdi_in_the_sr_is_never_replaced(sr, stage):
    vhdfakes.fake_vhd_util().make(sr / (NEW_UUIDS[2] + ".vhd"), payload="precious")
    _stage(stage, [("0.vhd", None)])
    error = _refused(sr, stage)
    assert error.details[0] == "uuid_stack"


def test_a_failure_while_moving_into_the_sr_takes_back_what_was_moved(sr, stage, monkeypatch):
    _stage(stage, [("0.vhd", None), ("1.vhd", None)])
    real_link = os.link
    calls = []

    def link_fails_the_second_time(source, target, **kwargs):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_link(source, target, **kwargs)

    monkeypatch.setattr(LIB.vhdchain.os, "link", link_fails_the_second_time)
    with pytest.raises(OSError):
        _import(sr, stage)
    assert vhdfakes.vhd_names(sr) == []
