"""dom0lib.paths: DOM0_ROOT, confinement of caller paths, bounded reads, atomic writes.

Plugin files are imported in-process with a stand-in XenAPIPlugin (stubs/XenAPIPlugin.py)
put into sys.modules only while they load (see harness.py); XenAPI is the official SDK.
"""

import os

import pytest

from . import harness

lib = harness.dom0lib()
paths = lib.paths
errors = lib.errors


def test_host_path_is_unchanged_without_dom0_root(monkeypatch):
    monkeypatch.delenv("DOM0_ROOT")
    assert paths.host_path("/boot/guest") == "/boot/guest"


def test_host_path_is_under_dom0_root(dom0_root):
    assert paths.host_path("/boot/guest") == str(dom0_root / "boot" / "guest")


def test_host_path_refuses_relative_paths():
    with pytest.raises(ValueError):
        paths.host_path("boot/guest")


def test_dom0_root_that_is_not_a_directory_is_an_internal_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DOM0_ROOT", str(tmp_path / "missing"))
    with pytest.raises(errors.PluginError) as info:
        paths.host_path("/etc")
    assert info.value.code == errors.INTERNAL_ERROR


def test_confine_returns_the_resolved_path_inside_the_base(tmp_path):
    assert paths.confine(str(tmp_path), "a/b", "arg") == str(tmp_path / "a" / "b")


@pytest.mark.parametrize("relative,reason", [
    ("../etc/shadow", "must not contain '..'"),
    ("a/../../etc", "must not contain '..'"),
    ("/etc/shadow", "must be relative to its directory, not absolute"),
    ("", "must be a non-empty relative path"),
    ("a\x00b", "must not contain NUL characters"),
])
def test_confine_refuses_paths_that_leave_the_base(tmp_path, relative, reason):
    with pytest.raises(errors.InvalidArgument) as info:
        paths.confine(str(tmp_path), relative, "arg")
    assert (info.value.argument, info.value.reason) == ("arg", reason)


def test_confine_refuses_a_symlink_that_escapes(tmp_path):
    base = tmp_path / "owned"
    base.mkdir()
    os.symlink("/etc/passwd", str(base / "link"))
    with pytest.raises(errors.InvalidArgument) as info:
        paths.confine(str(base), "link", "arg")
    assert "symlink escape" in info.value.reason


def test_confine_accepts_a_symlink_that_stays_inside(tmp_path):
    (tmp_path / "real").write_text("x")
    os.symlink("real", str(tmp_path / "alias"))
    assert paths.confine(str(tmp_path), "alias", "arg") == str(tmp_path / "real")


def test_read_tail_returns_the_end_of_a_long_file(tmp_path):
    (tmp_path / "log").write_bytes(b"a" * 10 + b"0123456789")
    assert paths.read_tail(str(tmp_path / "log"), 10) == b"0123456789"


def test_read_tail_of_a_missing_file_is_not_found(tmp_path):
    with pytest.raises(errors.PluginError) as info:
        paths.read_tail(str(tmp_path / "missing"), 10, what="console log")
    assert info.value.details == ["console log", str(tmp_path / "missing")]


def test_read_tail_does_not_follow_a_final_symlink(tmp_path):
    (tmp_path / "real").write_text("x")
    os.symlink("real", str(tmp_path / "link"))
    with pytest.raises(errors.PluginError) as info:
        paths.read_tail(str(tmp_path / "link"), 10)
    assert info.value.details[1].endswith("(a symlink, not followed)")


def test_read_tail_refuses_a_fifo(tmp_path):
    os.mkfifo(str(tmp_path / "fifo"))
    with pytest.raises(errors.PluginError) as info:
        paths.read_tail(str(tmp_path / "fifo"), 10)
    assert info.value.code == errors.NOT_FOUND


def test_read_bounded_refuses_a_fifo(tmp_path):
    os.mkfifo(str(tmp_path / "fifo"))
    with pytest.raises(errors.PluginError) as info:
        paths.read_bounded(str(tmp_path / "fifo"), 10)
    assert info.value.code == errors.NOT_FOUND


def test_read_bounded_reads_proc_files_whose_size_is_zero():
    assert paths.read_bounded("/proc/self/stat", 65536).startswith(str(os.getpid()).encode())


def test_read_bounded_refuses_an_oversized_file(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 11)
    with pytest.raises(errors.PluginError) as info:
        paths.read_bounded(str(tmp_path / "big"), 10)
    assert info.value.code == errors.TOO_LARGE


def test_write_atomically_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "conf" / "x.json"
    paths.write_atomically(str(target), b"one")
    paths.write_atomically(str(target), b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(str(target.parent)) == ["x.json"]
