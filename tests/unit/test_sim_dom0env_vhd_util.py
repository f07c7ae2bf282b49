"""The simulated dom0's VHD support: simvhd (the format), the vhd-util stand-in run as a plugin
runs it, and a real VHD chain import by the workarounds plugin through it."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

import pytest

from os_xenapi.simulator.plugins import DOM0ENV, dom0_environment, dom0env_module
from os_xenapi.simulator.vhd import VhdSource
from os_xenapi.simulator.vhd_reader import VhdReader

MiB = 1024 * 1024
VHD_UTIL = DOM0ENV / "bin" / "vhd-util"
PLUGINS = Path(__file__).resolve().parents[2] / "src/os_xenapi/dom0/etc/xapi.d/plugins"
SR_UUID = "0f5a7c3e-4b1d-4e2f-9a8b-7c6d5e4f3a2b"
SR_PATH = "/var/run/sr-mount/" + SR_UUID
OLD = ["bbbbbbbb-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"]
NEW = ["aaaaaaaa-0000-4000-8000-000000000002", "aaaaaaaa-0000-4000-8000-000000000001"]


simvhd = dom0env_module("simvhd")


def qemu_img() -> str:
    """qemu-img; its absence fails the test unless OS_XENAPI_ALLOW_MISSING_QEMU=1."""
    path = shutil.which("qemu-img")
    if path:
        return path
    if os.environ.get("OS_XENAPI_ALLOW_MISSING_QEMU") == "1":
        pytest.skip("qemu-img is absent and OS_XENAPI_ALLOW_MISSING_QEMU=1")
    pytest.fail("qemu-img is missing (Debian qemu-utils)")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A scratch DOM0_ROOT holding an SR mount directory."""
    made = tmp_path / "dom0"
    (made / "var/run/sr-mount" / SR_UUID).mkdir(parents=True)
    (made / "dev").mkdir()
    return made


@pytest.fixture()
def sr(root: Path) -> Path:
    return root / "var/run/sr-mount" / SR_UUID


def dom0_env(root: Path | None) -> dict[str, str]:
    """The environment the simulator gives plugins (only what vhd-util needs of it)."""
    env = dom0_environment(root or "")
    if root is None:
        del env["DOM0_ROOT"]
    return env


def vhd_util(root: Path | None, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([str(VHD_UTIL), *map(str, args)], env=dom0_env(root),
                          cwd=str(root or "/"), capture_output=True, text=True, timeout=60,
                          check=False)


def chain(sr: Path, data: dict[int, bytes] | None = None) -> tuple[Path, Path]:
    """base.vhd (4 MiB, "base" at 0) and its child leaf.vhd ("leaf" at 4096)."""
    base, leaf = sr / "base.vhd", sr / "leaf.vhd"
    simvhd.create(str(base), 4 * MiB)
    simvhd.write(str(base), 0, b"base" * 1024)
    simvhd.create(str(leaf), 0, parent=str(base))
    simvhd.write(str(leaf), 4096, b"leaf" * 256)
    return base, leaf


def poke(path: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes at offset (negative: from the end) without the VHD code's help."""
    with open(path, "r+b") as handle:
        handle.seek(offset, os.SEEK_END if offset < 0 else os.SEEK_SET)
        handle.write(data)


def set_footer(path: Path, **fields: object) -> None:
    """Change footer fields through simvhd, both copies rewritten with good checksums."""
    vhd = simvhd.Vhd(str(path), writable=True)
    with vhd:
        for name, value in fields.items():
            setattr(vhd.footer, name, value)
        vhd.save_metadata()


# -- simvhd: the format ------------------------------------------------------------------------

def test_a_new_vhd_reads_as_zeros(sr: Path) -> None:
    simvhd.create(str(sr / "a.vhd"), 3 * MiB + 1)
    assert simvhd.read(str(sr / "a.vhd"), 0, 3 * MiB + 512) == bytes(3 * MiB + 512)


def test_written_bytes_read_back_across_a_block_boundary(sr: Path) -> None:
    path = str(sr / "a.vhd")
    simvhd.create(path, 6 * MiB)
    data = os.urandom(5000)
    simvhd.write(path, 2 * MiB - 1234, data)
    assert simvhd.read(path, 2 * MiB - 2000, 7000) == bytes(766) + data + bytes(1234)


def test_qemu_img_reads_what_simvhd_wrote(sr: Path, tmp_path: Path) -> None:
    path, raw = sr / "a.vhd", tmp_path / "a.raw"
    simvhd.create(str(path), 5 * MiB)
    simvhd.write(str(path), 700, b"x" * 3000)
    simvhd.write(str(path), 4 * MiB + 3, b"y" * 9)
    subprocess.run([qemu_img(), "convert", "-f", "vpc", "-O", "raw", str(path), str(raw)],
                   check=True, timeout=60)
    assert raw.read_bytes() == simvhd.read(str(path), 0, 5 * MiB)


def test_the_simulators_importer_reads_what_simvhd_wrote(sr: Path) -> None:
    path = sr / "a.vhd"
    simvhd.create(str(path), 5 * MiB)
    simvhd.write(str(path), 2 * MiB + 512, b"z" * 1000)
    disk = bytearray(5 * MiB)
    with VhdReader() as reader:
        for offset, data in reader.feed(path.read_bytes()):
            disk[offset:offset + len(data)] = data
        reader.finish()
    assert bytes(disk) == simvhd.read(str(path), 0, 5 * MiB)


def test_simvhd_reads_what_the_simulators_exporter_wrote(tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    with open(raw, "wb") as handle:
        handle.truncate(6 * MiB)
        handle.seek(3 * MiB + 5)
        handle.write(b"exported")
    with VhdSource(raw, 6 * MiB) as source:
        (tmp_path / "disk.vhd").write_bytes(b"".join(source.chunks()))
    assert simvhd.read(str(tmp_path / "disk.vhd"), 0, 6 * MiB) == raw.read_bytes()


def test_a_child_reads_its_parent_where_it_holds_nothing(sr: Path) -> None:
    _base, leaf = chain(sr)
    assert simvhd.read(str(leaf), 0, 5120) == b"base" * 1024 + b"leaf" * 256


def test_a_partial_sector_write_keeps_the_parents_bytes_around_it(sr: Path) -> None:
    _base, leaf = chain(sr)
    simvhd.write(str(leaf), 10, b"XY")
    assert simvhd.read(str(leaf), 0, 16) == b"basebaseba" + b"XY" + b"base"


def test_info_of_a_child_names_its_parent_and_the_parents_uuid(sr: Path) -> None:
    base, leaf = chain(sr)
    info = simvhd.info(str(leaf))
    assert (info["type"], info["size"], info["parent"], info["parent_uuid"]) == (
        "differencing", 4 * MiB, str(base), simvhd.info(str(base))["uuid"])


def test_a_child_names_its_parent_as_libvhd_does(sr: Path) -> None:
    base, leaf = chain(sr)
    with simvhd.Vhd(str(leaf)) as vhd:
        assert vhd.header.parent_timestamp == simvhd.info(str(base))["timestamp"]
        assert vhd.header.parent_name == "base.vhd"
        assert vhd.locators() == [(0, simvhd.MACX, "./base.vhd")]
    assert b"file://./base.vhd" in leaf.read_bytes()[1536:2048]


def test_without_a_locator_the_parent_is_found_by_its_unicode_name(sr: Path) -> None:
    base, leaf = chain(sr)
    with simvhd.Vhd(str(leaf), writable=True) as vhd:
        vhd.header.locators = [(0, 0, 0, 0, 0)] * 8
        vhd.save_metadata()
    assert simvhd.info(str(leaf))["parent"] == str(base)


def test_hidden_is_the_footer_byte_after_saved_state(sr: Path) -> None:
    simvhd.create(str(sr / "h.vhd"), MiB, hidden=True)
    data = (sr / "h.vhd").read_bytes()
    assert (data[-512 + 85], data[85], simvhd.info(str(sr / "h.vhd"))["hidden"]) == (1, 1, True)


def test_create_takes_the_uuid_given(sr: Path) -> None:
    simvhd.create(str(sr / "u.vhd"), MiB, uuid=NEW[0])
    assert simvhd.info(str(sr / "u.vhd"))["uuid"] == NEW[0]


def test_create_never_replaces_a_file(sr: Path) -> None:
    (sr / "a.vhd").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        simvhd.create(str(sr / "a.vhd"), MiB)
    assert (sr / "a.vhd").read_bytes() == b"keep"


def test_a_file_without_a_valid_footer_is_a_vhd_error_naming_the_footer(sr: Path) -> None:
    (sr / "junk.vhd").write_bytes(b"j" * 4096)
    with pytest.raises(simvhd.VhdError, match="footer"):
        simvhd.info(str(sr / "junk.vhd"))


def test_reading_past_the_end_of_the_disk_is_refused(sr: Path) -> None:
    simvhd.create(str(sr / "a.vhd"), MiB)
    with pytest.raises(simvhd.VhdError, match="outside the 1048576-byte disk"):
        simvhd.read(str(sr / "a.vhd"), MiB - 1, 2)


# -- vhd-util: the subcommands -----------------------------------------------------------------

def test_create_makes_a_dynamic_vhd_of_whole_2_mib_blocks(root: Path, sr: Path) -> None:
    done = vhd_util(root, "create", "-n", sr / "a.vhd", "-s", "5")
    assert (done.returncode, done.stdout) == (0, "")
    assert (simvhd.info(str(sr / "a.vhd"))["type"], simvhd.info(str(sr / "a.vhd"))["size"]) == (
        "dynamic", 6 * MiB)


def test_create_without_a_size_prints_usage_and_exits_einval(root: Path, sr: Path) -> None:
    done = vhd_util(root, "create", "-n", sr / "a.vhd")
    assert done.returncode == 22 and done.stdout.startswith("options: <-n name> <-s size (MB)>")
    assert not (sr / "a.vhd").exists()


def test_create_refuses_to_replace_a_file(root: Path, sr: Path) -> None:
    (sr / "a.vhd").write_bytes(b"keep")
    done = vhd_util(root, "create", "-n", sr / "a.vhd", "-s", "2")
    assert done.returncode == 1 and "does not replace" in done.stderr
    assert (sr / "a.vhd").read_bytes() == b"keep"


def test_snapshot_makes_a_child_of_the_parent(root: Path, sr: Path) -> None:
    base, _leaf = chain(sr)
    assert vhd_util(root, "snapshot", "-n", sr / "snap.vhd", "-p", base).returncode == 0
    assert vhd_util(root, "query", "-n", sr / "snap.vhd", "-p").stdout == f"{base}\n"


def test_snapshot_of_an_empty_child_links_past_it_as_blktap_does(root: Path, sr: Path) -> None:
    base, _leaf = chain(sr)
    simvhd.create(str(sr / "empty.vhd"), 0, parent=str(base))
    vhd_util(root, "snapshot", "-n", sr / "snap.vhd", "-p", sr / "empty.vhd")
    assert simvhd.info(str(sr / "snap.vhd"))["parent"] == str(base)


def test_snapshot_beyond_the_depth_limit_exits_enospc(root: Path, sr: Path) -> None:
    _base, leaf = chain(sr)
    done = vhd_util(root, "snapshot", "-n", sr / "snap.vhd", "-p", leaf, "-l", "2")
    assert (done.returncode, done.stdout) == (
        28, "snapshot depth exceeded: current depth: 2, limit: 2\n")
    assert not (sr / "snap.vhd").exists()


def test_query_prints_the_flags_answers_in_blktaps_order(root: Path, sr: Path) -> None:
    base, leaf = chain(sr)
    done = vhd_util(root, "query", "-d", "-f", "-p", "-v", "-n", leaf)
    assert (done.returncode, done.stdout) == (0, f"4\n{base}\nhidden: 0\nchain depth: 2\n")


def test_query_s_is_the_physical_size(root: Path, sr: Path) -> None:
    _base, leaf = chain(sr)
    assert vhd_util(root, "query", "-n", leaf, "-s").stdout == f"{leaf.stat().st_size}\n"


def test_query_p_of_a_base_vhd_says_it_has_no_parent(root: Path, sr: Path) -> None:
    base, _leaf = chain(sr)
    done = vhd_util(root, "query", "-n", base, "-p")
    assert (done.returncode, done.stdout) == (0, f"{base} has no parent\n")


def test_query_p_with_the_parent_gone_says_query_failed(root: Path, sr: Path) -> None:
    base, leaf = chain(sr)
    base.unlink()
    done = vhd_util(root, "query", "-n", leaf, "-p")
    assert (done.returncode, done.stdout) == (2, "query failed\n")


@pytest.mark.parametrize(("content", "code"), [(None, 2), (b"not a vhd" * 100, 22)])
def test_query_of_a_missing_or_broken_file_cannot_open_it(root: Path, sr: Path,
                                                          content: bytes | None,
                                                          code: int) -> None:
    if content is not None:
        (sr / "x.vhd").write_bytes(content)
    done = vhd_util(root, "query", "-n", sr / "x.vhd", "-v")
    assert (done.returncode, done.stdout) == (code, f"error opening {sr / 'x.vhd'}: -{code}\n")


def test_an_unknown_option_prints_getopts_message_and_usage(root: Path) -> None:
    done = vhd_util(root, "query", "-x")
    assert (done.returncode, done.stderr) == (22, "query: invalid option -- 'x'\n")
    assert done.stdout.startswith("options: <-n name>")


def test_an_unknown_command_prints_help_and_exits_0_as_blktaps_does(root: Path) -> None:
    done = vhd_util(root, "frobnicate")
    assert (done.returncode, done.stderr) == (0, "invalid COMMAND frobnicate\n")
    assert done.stdout.startswith("usage: vhd-util COMMAND [OPTIONS]\nCOMMAND := { create |")


def test_a_command_that_is_not_simulated_exits_1_saying_so(root: Path, sr: Path) -> None:
    done = vhd_util(root, "coalesce", "-n", sr / "a.vhd")
    assert done.returncode == 1 and "not simulated" in done.stderr


def test_check_of_a_good_chain_says_each_is_valid(root: Path, sr: Path) -> None:
    base, leaf = chain(sr)
    done = vhd_util(root, "check", "-n", leaf, "-p")
    assert (done.returncode, done.stdout) == (0, f"{leaf} is valid\n{base} is valid\n")


@pytest.mark.parametrize(("offset", "data", "line"), [
    (-512, b"XXXXXXXX", "primary footer invalid: invalid cookie"),
    (-400, b"\x01", "primary footer invalid: invalid checksum"),
    (512, b"XXXXXXXX", "header is invalid: invalid cookie"),
    (600, b"\x01", "header is invalid: invalid checksum"),
])
def test_check_names_the_broken_part(root: Path, sr: Path, offset: int, data: bytes,
                                     line: str) -> None:
    _base, leaf = chain(sr)
    poke(leaf, offset, data)
    done = vhd_util(root, "check", "-n", leaf)
    assert done.returncode == 22
    assert done.stdout.splitlines()[:2] == [line, f"{leaf} appears invalid; dumping metadata"]


def test_check_i_ignores_a_broken_primary_footer(root: Path, sr: Path) -> None:
    _base, leaf = chain(sr)
    poke(leaf, -512, b"XXXXXXXX")
    assert vhd_util(root, "check", "-n", leaf, "-i").stdout == f"{leaf} is valid\n"


def test_check_refuses_a_footer_timestamp_in_the_future(root: Path, sr: Path) -> None:
    _base, leaf = chain(sr)
    set_footer(leaf, timestamp=simvhd.vhd_time() + 86400)
    assert vhd_util(root, "check", "-n", leaf).stdout.splitlines()[0] == \
        "primary footer invalid: creation time in future"
    assert vhd_util(root, "check", "-n", leaf, "-t").returncode == 0


def test_check_refuses_a_bat_entry_beyond_the_end(root: Path, sr: Path) -> None:
    base, _leaf = chain(sr)
    poke(base, 1536, struct.pack(">I", 0x100000))
    assert vhd_util(root, "check", "-n", base).stdout.splitlines()[0] == \
        "block 0 (offset 0x100000) clobbers footer"


def test_check_of_a_child_whose_parent_is_gone_cannot_resolve_it(root: Path, sr: Path) -> None:
    base, leaf = chain(sr)
    base.unlink()
    done = vhd_util(root, "check", "-n", leaf, "-p")
    assert (done.returncode, done.stdout.splitlines()[0]) == (
        2, "error resolving ./base.vhd: -2")


def test_check_of_a_child_whose_parent_was_replaced_names_the_uuid(root: Path, sr: Path) -> None:
    base, leaf = chain(sr)
    base.unlink()
    simvhd.create(str(base), 4 * MiB)
    done = vhd_util(root, "check", "-n", leaf)
    assert (done.returncode, done.stdout.splitlines()[0]) == (
        22, f"invalid parent {base}: invalid parent uuid")


def test_check_p_checks_the_parents_too(root: Path, sr: Path) -> None:
    base, leaf = chain(sr)
    set_footer(base, timestamp=simvhd.vhd_time() + 86400)
    done = vhd_util(root, "check", "-n", leaf, "-p")
    lines = done.stdout.splitlines()
    assert (done.returncode, lines[:2]) == (
        22, [f"{leaf} is valid", "primary footer invalid: creation time in future"])
    assert lines[-1] == "error checking parents: -22"


def test_repair_restores_the_primary_footer_from_its_copy(root: Path, sr: Path) -> None:
    _base, leaf = chain(sr)
    poke(leaf, -512, b"XXXXXXXX")
    assert vhd_util(root, "repair", "-n", leaf).returncode == 0
    assert vhd_util(root, "check", "-n", leaf).stdout == f"{leaf} is valid\n"
    assert simvhd.read(str(leaf), 4096, 8) == b"leafleaf"


def test_repair_without_any_good_footer_cannot_open_and_writes_nothing(root: Path,
                                                                       sr: Path) -> None:
    _base, leaf = chain(sr)
    poke(leaf, -512, b"XXXXXXXX")
    poke(leaf, 0, b"XXXXXXXX")
    before = leaf.read_bytes()
    done = vhd_util(root, "repair", "-n", leaf)
    assert (done.returncode, done.stdout) == (22, f"error opening {leaf}: -22\n")
    assert leaf.read_bytes() == before


def test_modify_points_a_child_at_a_new_parent(root: Path, sr: Path) -> None:
    base, leaf = chain(sr)
    moved = sr / "moved.vhd"
    base.rename(moved)
    assert vhd_util(root, "modify", "-n", leaf, "-p", moved).returncode == 0
    assert vhd_util(root, "query", "-n", leaf, "-p").stdout == f"{moved}\n"
    assert vhd_util(root, "check", "-n", leaf, "-p").returncode == 0


def test_modify_of_a_dynamic_vhd_fails_with_einval_and_writes_nothing(root: Path,
                                                                      sr: Path) -> None:
    base, leaf = chain(sr)
    before = base.read_bytes()
    done = vhd_util(root, "modify", "-n", base, "-p", leaf)
    assert (done.returncode, done.stdout) == (22, f"failed to set parent to '{leaf}': -22\n")
    assert base.read_bytes() == before


def test_modify_to_a_missing_parent_fails_with_enoent_and_writes_nothing(root: Path,
                                                                         sr: Path) -> None:
    _base, leaf = chain(sr)
    before = leaf.read_bytes()
    done = vhd_util(root, "modify", "-n", leaf, "-p", sr / "gone.vhd")
    assert done.returncode == 2 and leaf.read_bytes() == before


def test_set_hidden_sets_the_flag_query_f_reports(root: Path, sr: Path) -> None:
    base, _leaf = chain(sr)
    assert vhd_util(root, "set", "-n", base, "-f", "hidden", "-v", "1").returncode == 0
    assert vhd_util(root, "query", "-n", base, "-f").stdout == "hidden: 1\n"
    assert vhd_util(root, "check", "-n", base).returncode == 0


@pytest.mark.parametrize(("field", "value", "line"), [
    ("colour", "1", "invalid field colour"), ("hidden", "300", "invalid value 300")])
def test_set_refuses_a_bad_field_or_value_with_usage(root: Path, sr: Path, field: str,
                                                     value: str, line: str) -> None:
    base, _leaf = chain(sr)
    done = vhd_util(root, "set", "-n", base, "-f", field, "-v", value)
    assert (done.returncode, done.stdout.splitlines()[0]) == (22, line)


# -- vhd-util: paths outside the simulated dom0 ------------------------------------------------

def test_without_dom0_root_vhd_util_refuses(sr: Path) -> None:
    done = vhd_util(None, "query", "-n", sr / "a.vhd", "-v")
    assert done.returncode == 1 and "DOM0_ROOT" in done.stderr


@pytest.mark.parametrize("how", ["outside", "dotdot", "symlink", "device"])
def test_a_path_out_of_the_dom0_is_refused(root: Path, sr: Path, tmp_path: Path,
                                           how: str) -> None:
    outside = tmp_path / "outside.vhd"
    simvhd.create(str(outside), MiB)
    before = outside.read_bytes()
    target = {"outside": outside, "dotdot": sr / "../../../../../outside.vhd",
              "symlink": sr / "link.vhd", "device": root / "dev" / "xvdb"}[how]
    (sr / "link.vhd").symlink_to(outside)
    (root / "dev" / "xvdb").symlink_to("/dev/null")  # a disk node, but of a device
    done = vhd_util(root, "set", "-n", target, "-f", "hidden", "-v", "1")
    assert done.returncode == 1 and done.stderr.startswith("vhd-util: -n ")
    assert outside.read_bytes() == before


def test_a_parent_named_outside_the_dom0_is_refused(root: Path, sr: Path,
                                                    tmp_path: Path) -> None:
    outside = tmp_path / "outside.vhd"
    simvhd.create(str(outside), MiB)
    simvhd.create(str(sr / "child.vhd"), 0, parent=str(outside))
    done = vhd_util(root, "check", "-n", sr / "child.vhd")
    assert done.returncode == 1 and "outside the simulated dom0" in done.stderr


# -- a real import: the workarounds plugin through vhd-util ------------------------------------

def safe_copy_vdis(root: Path, vdis: list[str], uuid_stack: list[str]) -> dict:
    """Run plugins/workarounds.py as XAPI does (argv[1] the methodCall) in the simulated dom0."""
    params = json.dumps({"args": [SR_PATH, vdis, uuid_stack], "kwargs": {}})
    call = xmlrpc.client.dumps(("OpaqueRef:test", {"params": params}), "safe_copy_vdis")
    done = subprocess.run([sys.executable, str(PLUGINS / "workarounds.py"), call],
                          env=dom0_env(root), cwd=str(root), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    (answer,), _method = xmlrpc.client.loads(done.stdout)
    return answer


def sr_chain(sr: Path, hidden: bool = False) -> None:
    """OLD[0].vhd (the leaf, "leaf" at 4096) on OLD[1].vhd ("base" at 0)."""
    base, leaf = chain(sr)
    set_footer(leaf, hidden=1 if hidden else 0)
    base.rename(sr / f"{OLD[1]}.vhd")
    leaf.rename(sr / f"{OLD[0]}.vhd")
    with simvhd.Vhd(str(sr / f"{OLD[0]}.vhd"), writable=True) as vhd:
        vhd.point_at(str(sr / f"{OLD[1]}.vhd"))
        vhd.save_metadata()


def test_safe_copy_vdis_imports_the_chain_under_the_new_uuids(root: Path, sr: Path) -> None:
    sr_chain(sr)
    answer = safe_copy_vdis(root, OLD, NEW)
    assert answer == {"Status": "Success", "Value": json.dumps({"root": {"uuid": NEW[1]}})}
    assert sorted(os.listdir(sr)) == sorted(f"{uuid}.vhd" for uuid in OLD + NEW)


def test_safe_copy_vdis_links_each_copy_to_the_new_parent(root: Path, sr: Path) -> None:
    sr_chain(sr)
    safe_copy_vdis(root, OLD, NEW)
    leaf, parent = simvhd.info(str(sr / f"{NEW[1]}.vhd")), simvhd.info(str(sr / f"{NEW[0]}.vhd"))
    assert (leaf["parent"], leaf["parent_uuid"]) == (str(sr / f"{NEW[0]}.vhd"), parent["uuid"])
    assert parent["parent"] is None


def test_safe_copy_vdis_copies_read_as_the_originals(root: Path, sr: Path) -> None:
    sr_chain(sr)
    safe_copy_vdis(root, OLD, NEW)
    assert simvhd.read(str(sr / f"{NEW[1]}.vhd"), 0, 4 * MiB) == \
        simvhd.read(str(sr / f"{OLD[0]}.vhd"), 0, 4 * MiB)


def test_safe_copy_vdis_repairs_a_broken_primary_footer(root: Path, sr: Path) -> None:
    sr_chain(sr)
    poke(sr / f"{OLD[0]}.vhd", -512, b"XXXXXXXX")
    assert safe_copy_vdis(root, OLD, NEW)["Status"] == "Success"
    assert vhd_util(root, "check", "-n", sr / f"{NEW[1]}.vhd").returncode == 0


def test_safe_copy_vdis_of_a_hidden_leaf_is_bad_data(root: Path, sr: Path) -> None:
    sr_chain(sr, hidden=True)
    answer = safe_copy_vdis(root, OLD, NEW)
    assert answer["ErrorDescription"] == [
        "OS_XENAPI_BAD_DATA", f"{NEW[1]}.vhd", "is hidden (a base copy, not a leaf)"]
    assert sorted(os.listdir(sr)) == sorted(f"{uuid}.vhd" for uuid in OLD)


def test_safe_copy_vdis_with_a_footer_from_the_future_is_bad_data(root: Path, sr: Path) -> None:
    sr_chain(sr)
    set_footer(sr / f"{OLD[0]}.vhd", timestamp=simvhd.vhd_time(time.time() + 86400))
    answer = safe_copy_vdis(root, OLD, NEW)
    assert answer["ErrorDescription"][:2] == ["OS_XENAPI_BAD_DATA", f"{NEW[1]}.vhd"]
    assert answer["ErrorDescription"][2].startswith("invalid footer: ")


def test_safe_copy_vdis_without_the_parent_fails_and_leaves_the_sr_alone(root: Path,
                                                                         sr: Path) -> None:
    sr_chain(sr)
    answer = safe_copy_vdis(root, OLD[:1], NEW[1:])
    assert answer["Status"] == "Failure"
    assert sorted(os.listdir(sr)) == sorted(f"{uuid}.vhd" for uuid in OLD)


def test_safe_copy_vdis_without_the_parent_is_bad_data(root: Path, sr: Path) -> None:
    sr_chain(sr)
    answer = safe_copy_vdis(root, OLD[:1], NEW[1:])
    assert answer["ErrorDescription"][0] == "OS_XENAPI_BAD_DATA"


def test_a_locator_out_of_the_dom0_is_never_looked_at(root: Path, sr: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Which parent a VHD names must not tell whether some file of the real machine exists.
    monkeypatch.setenv("DOM0_ROOT", str(root))
    outside = tmp_path / "outside.vhd"
    simvhd.create(str(outside), MiB)
    simvhd.create(str(sr / "outside.vhd"), MiB)  # the parent's unicode name, found in the SR
    simvhd.create(str(sr / "child.vhd"), 0, parent=str(outside))
    while_there = simvhd.info(str(sr / "child.vhd"))["parent"]
    outside.unlink()
    assert simvhd.info(str(sr / "child.vhd"))["parent"] == while_there == str(sr / "outside.vhd")
