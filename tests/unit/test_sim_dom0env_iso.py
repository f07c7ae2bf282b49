"""The simulated dom0's mount, umount and mkisofs (genisoimage, xorrisofs) stand-ins
(dom0env/bin, helpers in dom0env/lib/simiso.py), run as subprocesses the way a plugin runs
them, in a scratch DOM0_ROOT, on ISO images the real xorriso builds and lists.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from os_xenapi.simulator.plugins import DOM0ENV, dom0_environment, interpreter

BIN = DOM0ENV / "bin"
XORRISO = "/usr/bin/xorriso"
TIMEOUT = 60.0
MOUNT_OPTIONS = "loop,ro,nosuid,nodev,noexec"
BUILD = ["-quiet", "-l", "-c", "boot.cat", "-b", "isolinux.bin", "-no-emul-boot",
         "-boot-load-size", "4", "-boot-info-table"]
BOOT_FILES = {"isolinux.bin": bytes(range(256)) * 16, "ipxe.krn": b"kernel",
              "isolinux.cfg": b"DEFAULT old\n"}

pytestmark = pytest.mark.skipif(not os.access(XORRISO, os.X_OK),
                                reason="xorriso is not installed (scripts/install-system-deps.sh)")


def xorriso(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([XORRISO, "-no_rc", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, check=True)


def make_iso(path: Path, files: dict[str, bytes], plain: bool = False,
             modes: dict[str, int] | None = None, links: dict[str, str] | None = None) -> Path:
    """An ISO at path holding files (name -> bytes), made by the real xorriso; plain=True
    leaves out Rock Ridge, so names are upper-case ISO 9660 names."""
    source = path.parent / (path.name + ".src")
    source.mkdir()
    for name, data in files.items():
        (source / name).write_bytes(data)
        (source / name).chmod((modes or {}).get(name, 0o644))
    for name, target in (links or {}).items():
        (source / name).symlink_to(target)
    xorriso("-as", "mkisofs", "-quiet", *(["--norock"] if plain else []), "-o", str(path),
            str(source))
    shutil.rmtree(source)
    return path


def listing(iso: Path) -> list[str]:
    """The names in the ISO's root directory, as xorriso lists them."""
    return [line.strip("'") for line in xorriso("-indev", str(iso), "-ls", "/").stdout.split()]


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    made = tmp_path / "dom0"
    for folder in ("var/sr/mnt", "dev"):
        (made / folder).mkdir(parents=True)
    return made


@pytest.fixture()
def iso(root: Path) -> Path:
    return make_iso(root / "var/sr/boot.iso", BOOT_FILES)


def run(root: Path, command: str, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    """Run a stand-in of dom0env/bin as a plugin would, in the scratch dom0."""
    environment = {**dom0_environment(root), **(env or {})}
    return subprocess.run([str(BIN / command), *args], env=environment, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False, cwd=root)


def mount(root: Path, iso: Path | str, mountpoint: Path | str,
          options: str = MOUNT_OPTIONS) -> subprocess.CompletedProcess:
    return run(root, "mount", "-o", options, str(iso), str(mountpoint))


def records(root: Path) -> dict:
    path = root / "var/lib/simmounts.json"
    return json.loads(path.read_text())["mounts"] if path.exists() else {}


# -- mount and umount ---------------------------------------------------------------------------

def test_mount_copies_the_iso_files_into_the_mount_point(root: Path, iso: Path) -> None:
    done = mount(root, iso, root / "var/sr/mnt")
    assert (done.returncode, done.stderr) == (0, "")
    assert {p.name: p.read_bytes() for p in (root / "var/sr/mnt").iterdir()} == BOOT_FILES


def test_mount_leaves_nothing_writable_in_the_mount_point(root: Path, iso: Path) -> None:
    assert mount(root, iso, root / "var/sr/mnt").returncode == 0
    mnt = root / "var/sr/mnt"
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o222 == 0 for p in [mnt, *mnt.iterdir()])


def test_mount_drops_setuid_bits_as_nosuid_does(root: Path) -> None:
    image = make_iso(root / "var/sr/suid.iso", {"tool": b"#!/bin/sh\n"}, modes={"tool": 0o4755})
    assert mount(root, image, root / "var/sr/mnt").returncode == 0
    assert stat.S_IMODE((root / "var/sr/mnt/tool").stat().st_mode) == 0o555


def test_mount_records_the_mount_by_its_dom0_paths(root: Path, iso: Path) -> None:
    assert mount(root, iso, root / "var/sr/mnt").returncode == 0
    assert records(root) == {"/var/sr/mnt": {"source": "/var/sr/boot.iso",
                                             "options": MOUNT_OPTIONS, "mode": 0o755}}


def test_mount_accepts_paths_relative_to_the_dom0_root(root: Path, iso: Path) -> None:
    assert mount(root, "var/sr/boot.iso", "var/sr/mnt").returncode == 0
    assert "/var/sr/mnt" in records(root)


def test_mount_leaves_the_iso_file_unchanged(root: Path, iso: Path) -> None:
    before = (iso.read_bytes(), iso.stat().st_mtime_ns)
    assert mount(root, iso, root / "var/sr/mnt").returncode == 0
    assert (iso.read_bytes(), iso.stat().st_mtime_ns) == before


def test_mount_shows_plain_iso9660_names_in_lower_case_as_linux_does(root: Path) -> None:
    image = make_iso(root / "var/sr/plain.iso", {"ipxe.krn": b"k"}, plain=True)
    assert mount(root, image, root / "var/sr/mnt").returncode == 0
    assert [p.name for p in (root / "var/sr/mnt").iterdir()] == ["ipxe.krn"]


def test_umount_empties_the_mount_point_and_gives_back_its_mode(root: Path, iso: Path) -> None:
    (root / "var/sr/mnt").chmod(0o700)
    assert mount(root, iso, root / "var/sr/mnt").returncode == 0
    done = run(root, "umount", str(root / "var/sr/mnt"))
    assert (done.returncode, done.stderr) == (0, "")
    assert list((root / "var/sr/mnt").iterdir()) == []
    assert stat.S_IMODE((root / "var/sr/mnt").stat().st_mode) == 0o700


def test_umount_drops_the_record(root: Path, iso: Path) -> None:
    assert mount(root, iso, root / "var/sr/mnt").returncode == 0
    assert run(root, "umount", str(root / "var/sr/mnt")).returncode == 0
    assert records(root) == {}


def test_umount_removes_a_symlink_of_the_image_but_not_its_target(root: Path,
                                                                  tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.write_text("keep")
    image = make_iso(root / "var/sr/link.iso", {"a": b"a"}, links={"out": str(outside)})
    assert mount(root, image, root / "var/sr/mnt").returncode == 0
    assert os.readlink(root / "var/sr/mnt/out") == str(outside)
    assert run(root, "umount", str(root / "var/sr/mnt")).returncode == 0
    assert outside.read_text() == "keep"


def test_a_mount_point_can_be_mounted_again_after_umount(root: Path, iso: Path) -> None:
    for _ in range(2):
        assert mount(root, iso, root / "var/sr/mnt").returncode == 0
        assert run(root, "umount", str(root / "var/sr/mnt")).returncode == 0


REFUSED_MOUNTS = {
    "no loop": ("ro", "missing"),
    "no ro": ("loop", "missing"),
    "rw": ("loop,rw", "rw"),
    "an option that is not simulated": ("loop,ro,uid=0", "uid=0"),
}


@pytest.mark.parametrize("options,message", REFUSED_MOUNTS.values(), ids=list(REFUSED_MOUNTS))
def test_mount_refuses_anything_but_a_read_only_loop_mount(root: Path, iso: Path, options: str,
                                                           message: str) -> None:
    done = mount(root, iso, root / "var/sr/mnt", options)
    assert done.returncode == 32 and message in done.stderr
    assert list((root / "var/sr/mnt").iterdir()) == [] and records(root) == {}


def test_mount_without_arguments_does_not_list_mounts(root: Path) -> None:
    done = run(root, "mount")
    assert (done.returncode, done.stdout) == (32, "")
    assert "give an ISO file and a mount point" in done.stderr


def test_mount_refuses_another_file_system_type(root: Path, iso: Path) -> None:
    done = run(root, "mount", "-t", "ext4", "-o", MOUNT_OPTIONS, str(iso), "var/sr/mnt")
    assert done.returncode == 32 and "'ext4' is not simulated" in done.stderr


def test_mount_refuses_a_disk_node_as_a_device(root: Path, iso: Path, tmp_path: Path) -> None:
    vdi = tmp_path / "vdi"
    shutil.copyfile(iso, vdi)
    (root / "dev/xvdb").symlink_to(vdi)
    done = mount(root, root / "dev/xvdb", root / "var/sr/mnt")
    assert done.returncode == 32 and "is a device" in done.stderr


def test_mount_refuses_a_real_device(root: Path) -> None:
    (root / "var/null").symlink_to("/dev/null")
    done = mount(root, root / "var/null", root / "var/sr/mnt")
    assert done.returncode == 32 and "outside the simulated dom0" in done.stderr


def test_mount_refuses_an_iso_outside_the_root(root: Path, tmp_path: Path) -> None:
    image = make_iso(tmp_path / "outside.iso", {"a": b"a"})
    done = mount(root, image, root / "var/sr/mnt")
    assert done.returncode == 32 and "outside the simulated dom0" in done.stderr


def test_mount_refuses_to_climb_out_of_the_root(root: Path, iso: Path) -> None:
    done = mount(root, iso, root / "var/sr/mnt/../../../../x")
    assert done.returncode == 32 and "outside the simulated dom0" in done.stderr


def test_mount_refuses_a_mount_point_outside_the_root(root: Path, iso: Path,
                                                      tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    done = mount(root, iso, tmp_path / "elsewhere")
    assert done.returncode == 32 and "outside the simulated dom0" in done.stderr
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_mount_refuses_a_mount_point_that_is_not_empty(root: Path, iso: Path) -> None:
    (root / "var/sr/mnt/file").write_text("x")
    done = mount(root, iso, root / "var/sr/mnt")
    assert done.returncode == 32 and "not empty" in done.stderr
    assert [p.name for p in (root / "var/sr/mnt").iterdir()] == ["file"]


def test_mount_refuses_a_mount_point_already_mounted(root: Path, iso: Path) -> None:
    assert mount(root, iso, root / "var/sr/mnt").returncode == 0
    done = mount(root, iso, root / "var/sr/mnt")
    assert done.returncode == 32 and "already mounted" in done.stderr


def test_mount_refuses_everything_without_dom0_root(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "mount"), "-o", MOUNT_OPTIONS, "/tmp/x.iso", "/mnt"],
                          env={"XAPI_SIM_PYTHON": interpreter()}, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    assert done.returncode == 32 and "DOM0_ROOT" in done.stderr


def test_mount_of_a_file_that_is_not_an_iso_is_a_wrong_fs_type(root: Path) -> None:
    (root / "var/sr/junk.img").write_bytes(os.urandom(70_000))
    done = mount(root, root / "var/sr/junk.img", root / "var/sr/mnt")
    assert done.returncode == 32 and "wrong fs type" in done.stderr
    assert list((root / "var/sr/mnt").iterdir()) == [] and records(root) == {}


def test_mount_of_an_iso_xorriso_cannot_read_leaves_the_mount_point_empty(root: Path,
                                                                          iso: Path) -> None:
    truncated = root / "var/sr/truncated.iso"
    truncated.write_bytes(iso.read_bytes()[:40_960])  # the descriptors, not the tree
    done = mount(root, truncated, root / "var/sr/mnt")
    assert done.returncode == 32 and "wrong fs type" in done.stderr and "xorriso" in done.stderr
    assert list((root / "var/sr/mnt").iterdir()) == [] and records(root) == {}


def test_umount_of_a_directory_not_mounted_says_not_mounted(root: Path) -> None:
    done = run(root, "umount", str(root / "var/sr/mnt"))
    assert done.returncode == 32 and "not mounted" in done.stderr


def test_umount_of_a_missing_path_says_not_mounted(root: Path) -> None:
    done = run(root, "umount", str(root / "var/sr/nothing"))
    assert done.returncode == 32 and "not mounted" in done.stderr


def test_umount_refuses_options(root: Path, iso: Path) -> None:
    assert mount(root, iso, root / "var/sr/mnt").returncode == 0
    done = run(root, "umount", "-l", str(root / "var/sr/mnt"))
    assert done.returncode == 32 and "options are not simulated" in done.stderr
    assert (root / "var/sr/mnt/ipxe.krn").exists()


def test_umount_refuses_a_path_outside_the_root(root: Path, tmp_path: Path) -> None:
    done = run(root, "umount", str(tmp_path))
    assert done.returncode == 32 and "outside the simulated dom0" in done.stderr


# -- mkisofs, genisoimage, xorrisofs ------------------------------------------------------------

@pytest.fixture()
def tree(root: Path) -> Path:
    made = root / "var/sr/tree"
    made.mkdir()
    for name, data in BOOT_FILES.items():
        (made / name).write_bytes(data)
    return made


@pytest.mark.parametrize("command", ["mkisofs", "genisoimage", "xorrisofs"])
def test_the_iso_builders_make_an_iso_that_xorriso_lists(root: Path, tree: Path,
                                                         command: str) -> None:
    output = root / "var/sr/new.iso"
    done = run(root, command, *BUILD, "-o", str(output), str(tree))
    assert done.returncode == 0, done.stderr
    assert listing(output) == ["boot.cat", "ipxe.krn", "isolinux.bin", "isolinux.cfg"]


def test_the_built_iso_boots_isolinux_bin_without_emulation(root: Path, tree: Path) -> None:
    output = root / "var/sr/new.iso"
    assert run(root, "mkisofs", *BUILD, "-o", str(output), str(tree)).returncode == 0
    report = xorriso("-indev", str(output), "-report_el_torito", "plain").stdout
    assert "El Torito img path :   1  /isolinux.bin" in report
    assert "boot-info-table" in report


def test_mkisofs_replaces_an_existing_output_file(root: Path, tree: Path) -> None:
    output = root / "var/sr/new.iso"
    output.write_bytes(b"old")
    assert run(root, "mkisofs", *BUILD, "-o", str(output), str(tree)).returncode == 0
    assert "isolinux.cfg" in listing(output)


def test_a_failed_build_leaves_no_output_file(root: Path, tree: Path) -> None:
    (tree / "isolinux.bin").write_bytes(b"ab")  # too small for -boot-info-table
    done = run(root, "mkisofs", *BUILD, "-o", str(root / "var/sr/new.iso"), str(tree))
    assert done.returncode != 0 and "too small" in done.stderr
    assert not (root / "var/sr/new.iso").exists()


REFUSED_OPTIONS = {
    "end of emulation": ["--", "-x"],
    "graft points": ["-graft-points"],
    "following symlinks": ["-f"],
    "a sort file": ["-sort", "/etc/passwd"],
    "a second source": ["var/sr"],
    "no output": None,
    "a bad load size": ["-boot-load-size", "-1"],
}


@pytest.mark.parametrize("extra", REFUSED_OPTIONS.values(), ids=list(REFUSED_OPTIONS))
def test_mkisofs_refuses_what_the_plugin_does_not_pass(root: Path, tree: Path,
                                                       extra: list[str] | None) -> None:
    output = ["-o", str(root / "var/sr/new.iso")] if extra is not None else []
    done = run(root, "mkisofs", "-quiet", *(extra or []), *output, str(tree))
    assert done.returncode == 1 and "mkisofs (simulated dom0):" in done.stderr
    assert sorted(p.name for p in (root / "var/sr").iterdir()) == ["mnt", "tree"]


def test_mkisofs_refuses_an_output_outside_the_root(root: Path, tree: Path,
                                                    tmp_path: Path) -> None:
    done = run(root, "mkisofs", "-o", str(tmp_path / "out.iso"), str(tree))
    assert done.returncode == 1 and "outside the simulated dom0" in done.stderr
    assert not (tmp_path / "out.iso").exists()


def test_mkisofs_refuses_to_write_a_disk_node(root: Path, tree: Path, tmp_path: Path) -> None:
    (tmp_path / "vdi").write_bytes(b"disk")
    (root / "dev/xvdb").symlink_to(tmp_path / "vdi")
    done = run(root, "mkisofs", "-o", str(root / "dev/xvdb"), str(tree))
    assert done.returncode == 1 and "is a device" in done.stderr
    assert (tmp_path / "vdi").read_bytes() == b"disk"


def test_mkisofs_refuses_an_output_inside_the_source(root: Path, tree: Path) -> None:
    done = run(root, "mkisofs", "-o", str(tree / "self.iso"), str(tree))
    assert done.returncode == 1 and "inside the source directory" in done.stderr


def test_mkisofs_refuses_a_source_outside_the_root(root: Path, tmp_path: Path) -> None:
    done = run(root, "mkisofs", "-o", str(root / "var/sr/new.iso"), str(tmp_path))
    assert done.returncode == 1 and "outside the simulated dom0" in done.stderr


def test_mkisofs_refuses_a_source_that_is_not_a_directory(root: Path, iso: Path) -> None:
    done = run(root, "mkisofs", "-o", str(root / "var/sr/new.iso"), str(iso))
    assert done.returncode == 1 and "no such directory" in done.stderr


@pytest.mark.parametrize("option,value", [("-b", "/etc/passwd"), ("-b", "../boot.iso"),
                                          ("-c", "a/../../x"), ("-b", "-quiet")])
def test_mkisofs_refuses_boot_paths_that_leave_the_tree(root: Path, tree: Path, option: str,
                                                        value: str) -> None:
    done = run(root, "mkisofs", option, value, "-o", str(root / "var/sr/new.iso"), str(tree))
    assert done.returncode == 1 and "relative path inside the source tree" in done.stderr


def test_mkisofs_refuses_a_boot_image_that_is_a_symlink(root: Path, tree: Path) -> None:
    (tree / "isolinux.bin").unlink()
    (tree / "isolinux.bin").symlink_to("/etc/passwd")
    done = run(root, "mkisofs", *BUILD, "-o", str(root / "var/sr/new.iso"), str(tree))
    assert done.returncode == 1 and "not a symlink" in done.stderr
