"""The path checks every file-touching stand-in of the simulated dom0 goes through (simpaths)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from os_xenapi.simulator.plugins import dom0env_module

simpaths = dom0env_module("simpaths")


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    made = tmp_path / "dom0"
    (made / "dev").mkdir(parents=True)
    (made / "var").mkdir()
    monkeypatch.setenv("DOM0_ROOT", str(made))
    yield made


def test_without_dom0_root_everything_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOM0_ROOT", raising=False)
    with pytest.raises(simpaths.Refused, match="DOM0_ROOT"):
        simpaths.inside_root("/tmp/x", "file")


def test_the_real_root_is_never_a_dom0_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOM0_ROOT", "/")
    with pytest.raises(simpaths.Refused, match="real root"):
        simpaths.dom0_root()


def test_a_relative_path_starts_at_the_dom0_root(root: Path) -> None:
    assert simpaths.inside_root("var/x", "file") == str(root / "var" / "x")


def test_climbing_out_with_dotdot_is_refused_naming_the_argument(root: Path) -> None:
    with pytest.raises(simpaths.Refused, match="disk .*outside"):
        simpaths.inside_root(str(root / "var" / ".." / ".." / "etc"), "disk")


def test_a_symlink_out_of_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.img"
    outside.write_bytes(b"x")
    (root / "var" / "link.img").symlink_to(outside)
    with pytest.raises(simpaths.Refused, match="resolves outside"):
        simpaths.regular_file(str(root / "var" / "link.img"), "disk")


def test_a_disk_node_may_point_at_a_vdi_file_outside_the_root(root: Path,
                                                              tmp_path: Path) -> None:
    vdi = tmp_path / "store.img"
    vdi.write_bytes(b"x")
    (root / "dev" / "xvdb").symlink_to(vdi)
    assert simpaths.regular_file(str(root / "dev" / "xvdb"), "disk") == str(vdi)


def test_a_disk_node_pointing_at_a_device_is_refused(root: Path) -> None:
    (root / "dev" / "xvdc").symlink_to("/dev/null")
    with pytest.raises(simpaths.Refused, match="not a regular file"):
        simpaths.regular_file(str(root / "dev" / "xvdc"), "disk")


def test_a_missing_file_is_accepted_only_when_asked(root: Path) -> None:
    target = str(root / "var" / "new.iso")
    with pytest.raises(simpaths.Refused, match="no such file"):
        simpaths.regular_file(target, "output")
    assert simpaths.regular_file(target, "output", must_exist=False) == target


def test_a_directory_must_exist_inside_the_root(root: Path) -> None:
    assert simpaths.directory(str(root / "var"), "tree") == str(root / "var")
    with pytest.raises(simpaths.Refused, match="no such directory"):
        simpaths.directory(str(root / "nope"), "tree")
    with pytest.raises(simpaths.Refused, match="outside"):
        simpaths.directory(str(root), "tree")


def test_fail_prints_the_program_and_exits_with_the_code(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    with pytest.raises(SystemExit) as stopped:
        simpaths.fail("kpartx", "no such disk", 3)
    assert stopped.value.code == 3
    assert capsys.readouterr().err == "kpartx: no such disk\n"


def test_paths_are_compared_by_component_not_by_prefix(root: Path) -> None:
    sibling = Path(str(root) + "-other")
    sibling.mkdir()
    (sibling / "f").write_bytes(b"x")
    with pytest.raises(simpaths.Refused):
        simpaths.regular_file(os.path.join(str(root), "..", sibling.name, "f"), "file")


def test_dom0env_module_refuses_a_module_the_dom0_does_not_have() -> None:
    with pytest.raises(FileNotFoundError, match="no module '../simpaths'"):
        dom0env_module("../simpaths")
    with pytest.raises(FileNotFoundError, match="no module 'nosuch'"):
        dom0env_module("nosuch")


def test_ensure_directory_makes_missing_levels_inside_the_root(root: Path) -> None:
    assert simpaths.ensure_directory("var/lib/sim") == str(root / "var" / "lib" / "sim")
    assert (root / "var" / "lib" / "sim").is_dir()


def test_ensure_directory_refuses_a_level_that_leads_out_of_the_root(root: Path,
                                                                     tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (root / "var" / "lib").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(simpaths.Refused, match="outside"):
        simpaths.ensure_directory("var/lib/sim")
    assert not (tmp_path / "elsewhere" / "sim").exists()


def test_a_refusal_names_the_path_as_dom0_knows_it(root: Path) -> None:
    with pytest.raises(simpaths.Refused) as info:
        simpaths.regular_file(str(root / "dev/xvdq"), "disk")
    assert str(info.value) == "disk /dev/xvdq: no such file"
    assert str(root) not in str(info.value)
