"""File-based SRs in the simulated dom0: /var/run/sr-mount/<SR uuid>/<VDI uuid>.vhd, end to end.

A simulator over real sockets, the official SDK as client and referee, a scratch dom0 root,
os-xenapi's own dom0 plugins and a tiny one (written below into the same plugins directory) that
looks at the SR's files from inside dom0 with the dom0 environment's simvhd. The VHD chains the tests drop into an SR are made with
that same simvhd, loaded from the dom0 environment; qemu-img judges the rendered VHDs.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import shutil
import subprocess
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import XenAPI

from os_xenapi.client import disk_management
from os_xenapi.client.retry import Retry
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.plugins import default_plugins_dir, dom0env_module

MiB = 1024 * 1024
SIZE = 8 * MiB
LOOK = '''#!/usr/bin/env python3
"""What dom0 sees of a path under DOM0_ROOT: its entries, or a VHD's info and bytes' digest."""
import hashlib
import json
import os

import XenAPIPlugin
import simvhd


def _path(args):
    return os.environ["DOM0_ROOT"] + args["path"]


def entries(session, args):
    return json.dumps(sorted(os.listdir(_path(args))))


def vhd(session, args):
    info = simvhd.info(_path(args))
    data = simvhd.read(_path(args), 0, info["size"])
    return json.dumps({"info": info, "sha256": hashlib.sha256(data).hexdigest()})


XenAPIPlugin.dispatch({"entries": entries, "vhd": vhd})
'''


simvhd = dom0env_module("simvhd")


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """os-xenapi's own dom0 plugins, and the look plugin."""
    made = tmp_path_factory.mktemp("xapi.d") / "plugins"
    shutil.copytree(default_plugins_dir(), made, ignore=shutil.ignore_patterns("__pycache__"))
    (made / "look").write_text(LOOK)
    (made / "look").chmod(0o755)
    return made


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dom0")


@pytest.fixture(scope="module")
def sim(root: Path, plugins: Path) -> Iterator[Simulator]:
    with Simulator(auth_failure_delay=0, dom0_root=root, plugins_dir=plugins) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def session(sim: Simulator) -> Iterator[Any]:
    sdk = XenAPI.Session(sim.url)
    sdk.xenapi.login_with_password(sim.username, sim.password, "1.0", "sr-mount-test")
    yield sdk
    sdk.xenapi.session.logout()


@pytest.fixture(scope="module")
def x(session: Any) -> Any:
    return session.xenapi


@pytest.fixture(scope="module")
def default_sr(x: Any) -> str:
    return x.pool.get_default_SR(x.pool.get_all()[0])


@pytest.fixture
def file_sr(x: Any, tmp_path: Path) -> str:
    """A fresh ``file`` SR, attached on the master."""
    host = x.host.get_all()[0]
    return x.SR.create(host, {"location": f"/srv/{tmp_path.name}"}, "0", "files", "", "file",
                       "user", False, {})


# -- helpers --------------------------------------------------------------------------------------


def mount(root: Path, x: Any, sr: str) -> Path:
    return root / "var/run/sr-mount" / x.SR.get_uuid(sr)


def look(x: Any, fn: str, path: str) -> Any:
    """Run the look plugin (which also brings the sr-mount directories up to date)."""
    return json.loads(x.host.call_plugin(x.host.get_all()[0], "look", fn, {"path": path}))


def new_vdi(x: Any, sr: str, size: int = SIZE) -> str:
    return x.VDI.create({"SR": sr, "virtual_size": str(size), "type": "user", "sharable": False,
                         "read_only": False, "other_config": {}, "name_label": "sr-mount"})


def transfer(sim: Simulator, session: Any, method: str, vdi: str, body: bytes | None = None
             ) -> bytes:
    """PUT /import_raw_vdi or GET /export_raw_vdi of ``vdi``; returns the body read back."""
    address = urllib.parse.urlsplit(sim.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    handler = "/import_raw_vdi" if method == "PUT" else "/export_raw_vdi"
    query = urllib.parse.urlencode({"session_id": session._session, "vdi": vdi})
    try:
        conn.request(method, f"{handler}?{query}", body=body)
        response = conn.getresponse()
        data = response.read()
        assert response.status == 200, (response.status, data[:200])
        return data
    finally:
        conn.close()


def drop(directory: Path, size: int = SIZE, parent: str | None = None, hidden: bool = False,
         writes: tuple[tuple[int, bytes], ...] = ()) -> str:
    """A VHD made as a plugin would make it, <uuid>.vhd in ``directory``; returns the uuid."""
    name = str(uuid.uuid4())
    path = str(directory / f"{name}.vhd")
    simvhd.create(path, size, parent=str(directory / f"{parent}.vhd") if parent else None,
                  uuid=name, hidden=hidden)
    for offset, data in writes:
        simvhd.write(path, offset, data)
    return name


def record(x: Any, vdi_uuid: str) -> dict[str, Any]:
    return x.VDI.get_record(x.VDI.get_by_uuid(vdi_uuid))


def gone(x: Any, vdi_uuid: str) -> bool:
    try:
        x.VDI.get_by_uuid(vdi_uuid)
    except XenAPI.Failure as failure:
        return failure.details[0] == "UUID_INVALID"
    return False


def qemu_raw(path: Path, out: Path) -> bytes:
    qemu = shutil.which("qemu-img")
    if qemu is None:
        pytest.skip("qemu-img is not installed")
    subprocess.run([qemu, "convert", "-f", "vpc", "-O", "raw", str(path), str(out)], check=True)
    return out.read_bytes()


# -- the default SR and rendering -----------------------------------------------------------------


def test_the_default_sr_is_an_ext_sr_shown_under_sr_mount(root: Path, x: Any,
                                                          default_sr: str) -> None:
    assert x.SR.get_type(default_sr) == "ext"
    vdi = x.VDI.get_uuid(new_vdi(x, default_sr))
    path = f"/var/run/sr-mount/{x.SR.get_uuid(default_sr)}"
    assert f"{vdi}.vhd" in look(x, "entries", path)
    assert mount(root, x, default_sr).is_dir() and not mount(root, x, default_sr).is_symlink()


def test_a_vdis_bytes_are_a_vhd_in_the_sr_before_the_next_plugin(
        root: Path, sim: Simulator, session: Any, x: Any, default_sr: str, tmp_path: Path
) -> None:
    data = random.Random(1).randbytes(3 * MiB)
    vdi = new_vdi(x, default_sr)
    transfer(sim, session, "PUT", vdi, data)
    name = f"{x.VDI.get_uuid(vdi)}.vhd"
    seen = look(x, "vhd", f"/var/run/sr-mount/{x.SR.get_uuid(default_sr)}/{name}")
    whole = data + bytes(SIZE - len(data))
    assert seen["sha256"] == hashlib.sha256(whole).hexdigest()
    assert seen["info"]["type"] == "dynamic" and seen["info"]["uuid"] == x.VDI.get_uuid(vdi)
    assert qemu_raw(mount(root, x, default_sr) / name, tmp_path / "raw") == whole


def test_a_changed_vdi_is_rendered_again_before_the_next_plugin(
        sim: Simulator, session: Any, x: Any, default_sr: str) -> None:
    vdi = new_vdi(x, default_sr)
    path = f"/var/run/sr-mount/{x.SR.get_uuid(default_sr)}/{x.VDI.get_uuid(vdi)}.vhd"
    transfer(sim, session, "PUT", vdi, b"first" * 1000)
    look(x, "vhd", path)
    second = b"second" * 2000
    transfer(sim, session, "PUT", vdi, second)
    seen = look(x, "vhd", path)
    assert seen["sha256"] == hashlib.sha256(second + bytes(SIZE - len(second))).hexdigest()


def test_an_unchanged_vdi_is_not_rendered_again(sim: Simulator, root: Path, x: Any,
                                                default_sr: str) -> None:
    vdi = new_vdi(x, default_sr)
    name = x.VDI.get_uuid(vdi)
    store = sim.run(lambda xapi: xapi.vdis.path(name))
    os.utime(store, ns=(10**18, 10**18))  # long settled: its mtime shows every write
    directory = f"/var/run/sr-mount/{x.SR.get_uuid(default_sr)}"
    look(x, "entries", directory)
    before = os.stat(mount(root, x, default_sr) / f"{name}.vhd")
    look(x, "entries", directory)
    after = os.stat(mount(root, x, default_sr) / f"{name}.vhd")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_copy_made_by_safe_copy_vdis_becomes_a_vdi_at_the_next_scan(
        sim: Simulator, session: Any, x: Any, default_sr: str) -> None:
    data = random.Random(8).randbytes(2 * MiB + 512)
    vdi = new_vdi(x, default_sr)
    transfer(sim, session, "PUT", vdi, data)
    copy = str(uuid.uuid4())
    with XenAPISession(sim.url, sim.username, sim.password, "sr-mount-test",
                       retry=Retry(wait=0.01, backoff=0.0)) as client:
        made = disk_management.safe_copy_vdis(
            client, f"/var/run/sr-mount/{x.SR.get_uuid(default_sr)}", [x.VDI.get_uuid(vdi)],
            [copy])
    assert made == {"root": {"uuid": copy}}
    x.SR.scan(default_sr)
    exported = transfer(sim, session, "GET", x.VDI.get_by_uuid(copy))
    assert exported == data + bytes(SIZE - len(data))


# -- attach and detach ----------------------------------------------------------------------------


def test_a_file_sr_has_its_directory_only_while_attached(root: Path, x: Any,
                                                         file_sr: str) -> None:
    directory = mount(root, x, file_sr)
    assert directory.is_dir()
    pbd = x.SR.get_PBDs(file_sr)[0]
    x.PBD.unplug(pbd)
    assert not directory.exists()
    x.PBD.plug(pbd)
    assert directory.is_dir()


def test_what_a_detached_sr_holds_comes_back_on_attach(sim: Simulator, root: Path, x: Any,
                                                       file_sr: str) -> None:
    directory = mount(root, x, file_sr)
    (directory / ".os-xenapi-staging-abc").mkdir()
    (directory / ".os-xenapi-staging-abc" / "0.vhd").write_bytes(b"staged")
    (directory / "notes.txt").write_text("mine")
    dropped = drop(directory, writes=((0, b"dropped"),))
    pbd = x.SR.get_PBDs(file_sr)[0]
    x.PBD.unplug(pbd)
    parked = Path(sim.config.state_dir) / "sr-mount" / x.SR.get_uuid(file_sr)
    assert (parked / "notes.txt").read_text() == "mine"
    x.PBD.plug(pbd)
    assert (directory / ".os-xenapi-staging-abc" / "0.vhd").read_bytes() == b"staged"
    assert (directory / "notes.txt").read_text() == "mine"
    assert record(x, dropped)["SR"] == file_sr  # the scan after attaching took it in


def test_a_mount_path_that_is_a_symlink_is_left_alone(root: Path, x: Any, file_sr: str,
                                                      tmp_path: Path) -> None:
    directory = mount(root, x, file_sr)
    pbd = x.SR.get_PBDs(file_sr)[0]
    x.PBD.unplug(pbd)
    outside = tmp_path / "outside"
    outside.mkdir()
    directory.symlink_to(outside)
    x.PBD.plug(pbd)
    new_vdi(x, file_sr)
    look(x, "entries", "/")
    x.PBD.unplug(pbd)
    assert directory.is_symlink() and list(outside.iterdir()) == []


def test_nothing_is_made_outside_the_dom0_root_through_a_symlinked_var_run(
        tmp_path: Path) -> None:
    root, outside = tmp_path / "dom0", tmp_path / "outside"
    (root / "var").mkdir(parents=True)
    outside.mkdir()
    (root / "var/run").symlink_to(outside)
    with Simulator(auth_failure_delay=0, dom0_root=root) as started:
        sdk = XenAPI.Session(started.url)
        sdk.xenapi.login_with_password(started.username, started.password, "1.0", "outside")
        sr = sdk.xenapi.pool.get_default_SR(sdk.xenapi.pool.get_all()[0])
        new_vdi(sdk.xenapi, sr)
        sdk.xenapi.SR.scan(sr)
    assert list(outside.iterdir()) == []


# state/sr-mount/<uuid> is where a detached SR's directory is parked: "../../outside/x" from
# there is tmp/outside/x.
@pytest.mark.parametrize("escape", ["../../outside/marker", "{outside}/empty",
                                    "../../outside/victim"])
def test_an_sr_uuid_that_is_a_path_gets_no_directory_anywhere(tmp_path: Path,
                                                              escape: str) -> None:
    # SR.introduce takes any uuid; as a path it would move directories into and out of the
    # dom0 root and the state directory (found by an attack on the simulator).
    state, outside = tmp_path / "state", tmp_path / "outside"
    (outside / "victim").mkdir(parents=True)
    (outside / "victim" / "secret").write_text("mine")
    (outside / "empty").mkdir()
    before = sorted(str(p) for p in outside.rglob("*"))
    with Simulator(auth_failure_delay=0, state_dir=state) as started:
        sdk = XenAPI.Session(started.url)
        sdk.xenapi.login_with_password(started.username, started.password, "1.0", "escape")
        x = sdk.xenapi
        sr = x.SR.introduce(escape.format(outside=outside), "escape", "", "file", "", False, {})
        pbd = x.PBD.create({"host": x.host.get_all()[0], "SR": sr,
                            "device_config": {"location": "/l"}, "other_config": {}})
        x.PBD.plug(pbd)
        vdi = new_vdi(x, sr)
        x.host.call_plugin(x.host.get_all()[0], "dom0_plugin_version.py", "get_version", {})
        x.PBD.unplug(pbd)  # detach: the SR's directory would be parked
        assert sorted(str(p) for p in outside.rglob("*")) == before
        x.PBD.plug(pbd)  # attach: a parked directory would be brought in
        assert sorted(str(p) for p in outside.rglob("*")) == before
        x.VDI.destroy(vdi)
        x.PBD.unplug(pbd)
        x.SR.destroy(sr)  # would remove the SR's directory, found wherever the uuid leads
        sdk.xenapi.session.logout()
    assert sorted(str(p) for p in outside.rglob("*")) == before
    assert (outside / "victim" / "secret").read_text() == "mine"


def test_a_forgotten_sr_finds_its_vdis_and_dropped_vhds_again(root: Path, x: Any,
                                                              tmp_path: Path) -> None:
    host = x.host.get_all()[0]
    config = {"location": f"/srv/{tmp_path.name}"}
    sr = x.SR.create(host, config, "0", "files", "", "file", "user", False, {})
    sr_uuid = x.SR.get_uuid(sr)
    kept = x.VDI.get_uuid(new_vdi(x, sr))
    dropped = drop(mount(root, x, sr), writes=((0, b"dropped"),))
    x.PBD.unplug(x.SR.get_PBDs(sr)[0])
    x.SR.forget(sr)
    sr = x.SR.introduce(sr_uuid, "again", "", "file", "user", False, {})
    x.PBD.plug(x.PBD.create({"host": host, "SR": sr, "device_config": config,
                             "other_config": {}}))
    assert {record(x, kept)["SR"], record(x, dropped)["SR"]} == {sr}
    assert (mount(root, x, sr) / f"{kept}.vhd").exists()


# -- SR.scan --------------------------------------------------------------------------------------


def test_scan_makes_a_vdi_of_a_dropped_vhd(sim: Simulator, session: Any, root: Path, x: Any,
                                           file_sr: str) -> None:
    data = random.Random(2).randbytes(MiB + 1000)
    name = drop(mount(root, x, file_sr), writes=((4096, data),))
    x.SR.scan(file_sr)
    made = record(x, name)
    assert (made["SR"], made["type"], made["location"], made["virtual_size"]) == (
        file_sr, "user", name, str(SIZE))
    assert made["managed"] and not made["read_only"] and "vhd-parent" not in made["sm_config"]
    exported = transfer(sim, session, "GET", x.VDI.get_by_uuid(name))
    assert exported == bytes(4096) + data + bytes(SIZE - 4096 - len(data))


def test_scan_makes_vdis_of_a_two_vhd_chain(sim: Simulator, session: Any, root: Path, x: Any,
                                            file_sr: str) -> None:
    directory = mount(root, x, file_sr)
    base = drop(directory, hidden=True, writes=((0, b"B" * (3 * MiB)),))
    leaf = drop(directory, parent=base, writes=((MiB - 100, b"L" * 300), (5 * MiB, b"tail")))
    x.SR.scan(file_sr)
    parent, child = record(x, base), record(x, leaf)
    assert not parent["managed"] and parent["read_only"]
    assert child["managed"] and not child["read_only"]
    assert child["sm_config"]["vhd-parent"] == base
    overlay = bytearray(b"B" * (3 * MiB) + bytes(SIZE - 3 * MiB))
    overlay[MiB - 100: MiB + 200] = b"L" * 300
    overlay[5 * MiB: 5 * MiB + 4] = b"tail"
    assert transfer(sim, session, "GET", x.VDI.get_by_uuid(leaf)) == bytes(overlay)
    assert simvhd.read(str(directory / f"{leaf}.vhd"), 0, SIZE) == bytes(overlay)


def test_scan_skips_and_keeps_files_that_are_not_vhds(root: Path, x: Any, file_sr: str) -> None:
    directory = mount(root, x, file_sr)
    junk = str(uuid.uuid4())
    (directory / f"{junk}.vhd").write_bytes(b"not a vhd" * 100)
    (directory / "image.vhd").write_bytes(b"not named by a uuid")
    before = set(x.SR.get_VDIs(file_sr))
    x.SR.scan(file_sr)
    assert set(x.SR.get_VDIs(file_sr)) == before and gone(x, junk)
    assert (directory / f"{junk}.vhd").exists() and (directory / "image.vhd").exists()


def test_scan_skips_a_vhd_whose_parent_is_missing(root: Path, x: Any, file_sr: str) -> None:
    directory = mount(root, x, file_sr)
    base = drop(directory)
    leaf = drop(directory, parent=base)
    (directory / f"{base}.vhd").rename(directory / "elsewhere")
    x.SR.scan(file_sr)
    assert gone(x, leaf) and (directory / f"{leaf}.vhd").exists()


def test_scan_skips_a_vhd_whose_parent_is_another_disk(root: Path, x: Any,
                                                        file_sr: str) -> None:
    directory = mount(root, x, file_sr)
    base = drop(directory)
    leaf = drop(directory, parent=base)
    os.unlink(directory / f"{base}.vhd")
    simvhd.create(str(directory / f"{base}.vhd"), SIZE)  # same name, another unique id
    x.SR.scan(file_sr)
    assert gone(x, leaf)
    assert record(x, base)["managed"]  # the impostor itself is a valid VHD


def test_scan_ignores_a_hidden_leaf(root: Path, x: Any, file_sr: str) -> None:
    hidden = drop(mount(root, x, file_sr), hidden=True)
    x.SR.scan(file_sr)
    assert gone(x, hidden)


def test_scan_forgets_a_vdi_whose_file_vanished(root: Path, x: Any, file_sr: str) -> None:
    vdi = new_vdi(x, file_sr)
    name = x.VDI.get_uuid(vdi)
    path = mount(root, x, file_sr) / f"{name}.vhd"
    x.SR.scan(file_sr)
    path.unlink()
    x.SR.scan(file_sr)
    assert gone(x, name) and not path.exists()


def test_scan_reads_back_a_vdi_file_a_plugin_rewrote(sim: Simulator, session: Any, root: Path,
                                                     x: Any, file_sr: str) -> None:
    vdi = new_vdi(x, file_sr)
    name = x.VDI.get_uuid(vdi)
    path = mount(root, x, file_sr) / f"{name}.vhd"
    x.SR.scan(file_sr)
    simvhd.write(str(path), 1000, b"rewritten")
    x.SR.scan(file_sr)
    assert transfer(sim, session, "GET", vdi)[1000:1009] == b"rewritten"


# -- VDI and SR life cycle ------------------------------------------------------------------------


def test_vdi_destroy_removes_its_file(root: Path, x: Any, file_sr: str) -> None:
    vdi = new_vdi(x, file_sr)
    path = mount(root, x, file_sr) / f"{x.VDI.get_uuid(vdi)}.vhd"
    x.SR.scan(file_sr)
    assert path.exists()
    x.VDI.destroy(vdi)
    assert not path.exists()


def test_vdi_forget_leaves_its_file_for_the_next_scan(root: Path, x: Any, file_sr: str) -> None:
    name = drop(mount(root, x, file_sr), writes=((0, b"kept"),))
    x.SR.scan(file_sr)
    x.VDI.forget(x.VDI.get_by_uuid(name))
    assert (mount(root, x, file_sr) / f"{name}.vhd").exists()
    x.SR.scan(file_sr)
    assert record(x, name)["SR"] == file_sr


def test_sr_destroy_refuses_while_a_vhd_was_never_scanned(root: Path, x: Any,
                                                         file_sr: str) -> None:
    drop(mount(root, x, file_sr))
    x.PBD.unplug(x.SR.get_PBDs(file_sr)[0])
    with pytest.raises(XenAPI.Failure) as info:
        x.SR.destroy(file_sr)
    assert info.value.details[0] == "SR_NOT_EMPTY"  # SM fault 39, as XAPI maps it


def test_sr_destroy_removes_the_srs_files(sim: Simulator, root: Path, x: Any,
                                          file_sr: str) -> None:
    sr_uuid = x.SR.get_uuid(file_sr)
    vdi = new_vdi(x, file_sr)
    x.SR.scan(file_sr)
    x.VDI.destroy(vdi)
    x.PBD.unplug(x.SR.get_PBDs(file_sr)[0])
    x.SR.destroy(file_sr)
    assert not (Path(sim.config.state_dir) / "sr-mount" / sr_uuid).exists()
    assert not (root / "var/run/sr-mount" / sr_uuid).exists()


# -- persistence ----------------------------------------------------------------------------------


def test_a_scanned_chain_keeps_its_bytes_across_a_restart(tmp_path: Path) -> None:
    state, root = tmp_path / "state", tmp_path / "dom0"

    def start() -> tuple[Simulator, Any]:
        started = Simulator(auth_failure_delay=0, state_dir=str(state), dom0_root=root).start()
        sdk = XenAPI.Session(started.url)
        sdk.xenapi.login_with_password(started.username, started.password, "1.0", "restart")
        return started, sdk

    first, sdk = start()
    try:
        sr = sdk.xenapi.pool.get_default_SR(sdk.xenapi.pool.get_all()[0])
        sdk.xenapi.SR.scan(sr)
        directory = mount(root, sdk.xenapi, sr)
        base = drop(directory, writes=((0, b"base" * 1000),))
        leaf = drop(directory, parent=base, writes=((2, b"leaf"),))
        sdk.xenapi.SR.scan(sr)
        expected = simvhd.read(str(directory / f"{leaf}.vhd"), 0, SIZE)
    finally:
        first.stop()
    second, sdk = start()
    try:
        exported = transfer(second, sdk, "GET", sdk.xenapi.VDI.get_by_uuid(leaf))
        assert exported == expected
        assert sdk.xenapi.VDI.get_sm_config(sdk.xenapi.VDI.get_by_uuid(leaf)) == {
            "vhd-parent": base}
    finally:
        second.stop()
