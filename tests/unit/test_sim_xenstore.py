"""The simulated xenstore: its tree rules, how it follows the running domains, and its socket
as the dom0 xenstore commands use it."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import threading
from collections.abc import Iterator
from types import ModuleType

import pytest

from os_xenapi.simulator.plugins import DOM0ENV
from os_xenapi.simulator.xapi import Config, Xapi
from os_xenapi.simulator.xenstore import Xenstore, XenstoreError, XenstoreServer


@pytest.fixture
def xapi(tmp_path) -> Xapi:
    return Xapi(Config(hosts=2, vms=1, state_dir=str(tmp_path)))


@pytest.fixture
def store(xapi: Xapi) -> Xenstore:
    return Xenstore(xapi.db)


@pytest.fixture
def host(xapi: Xapi) -> str:
    return xapi.master


def guest(xapi: Xapi) -> str:
    return next(ref for ref, rec in xapi.db.all("VM").items()
                if not rec["is_a_template"] and not rec["is_control_domain"])


def run_domain(xapi: Xapi, vm: str, host: str, domid: int) -> None:
    """What VM.start leaves in the database, as far as xenstore cares."""
    xapi.db.update("VM", vm, power_state="Running", domid=domid, resident_on=host)


def errno(call, *args) -> str:
    with pytest.raises(XenstoreError) as info:
        call(*args)
    return info.value.code


# -- the tree ---------------------------------------------------------------------------------

def test_dom0_has_its_domain_on_every_host(xapi: Xapi, store: Xenstore) -> None:
    for host in xapi.db.all("host"):
        assert store.read(host, "/local/domain/0/name") == "Domain-0"
        assert store.read(host, "/local/domain/0/domid") == "0"


def test_write_makes_missing_parents_with_empty_values(store: Xenstore, host: str) -> None:
    store.write(host, "/a/b/c", "v")
    assert (store.read(host, "/a"), store.read(host, "/a/b/c")) == ("", "v")


def test_reading_a_missing_node_is_enoent(store: Xenstore, host: str) -> None:
    assert errno(store.read, host, "/no/such") == "ENOENT"


@pytest.mark.parametrize("path", ["", "/a/", "//a", "/a//b", "/a b", "/a\x00", "/" + "a" * 3072])
def test_malformed_path_is_einval(store: Xenstore, host: str, path: str) -> None:
    assert errno(store.read, host, path) == "EINVAL"


def test_relative_path_starts_at_dom0s_home(store: Xenstore, host: str) -> None:
    store.write(host, "data/x", "1")
    assert store.read(host, "/local/domain/0/data/x") == "1"


def test_removing_a_missing_node_under_an_existing_parent_succeeds(store: Xenstore,
                                                                    host: str) -> None:
    store.rm(host, "/local/domain/0/data/never-written")
    assert errno(store.rm, host, "/no/such/parent") == "ENOENT"


def test_remove_with_parents_drops_emptied_parents_only(store: Xenstore, host: str) -> None:
    store.write(host, "/t/keep", "1")
    store.write(host, "/t/a/b/c", "2")
    store.rm(host, "/t/a/b/c", parents=True)
    assert (store.exists(host, "/t/a"), store.exists(host, "/t/keep")) == (False, True)


def test_root_cannot_be_removed(store: Xenstore, host: str) -> None:
    assert errno(store.rm, host, "/") == "EINVAL"


def test_walk_lists_parents_before_children_in_creation_order(store: Xenstore,
                                                              host: str) -> None:
    store.write(host, "/w/b/x", "1")
    store.write(host, "/w/a", "2")
    assert store.walk(host, "/w") == [(0, "b", ""), (1, "b/x", "1"), (0, "a", "2")]


def test_each_host_has_its_own_tree(xapi: Xapi, store: Xenstore) -> None:
    master, member = list(xapi.db.all("host"))
    store.write(master, "/only/here", "1")
    assert (store.exists(master, "/only/here"), store.exists(member, "/only/here")) == (True, False)


# -- following the domains ---------------------------------------------------------------------

def test_running_vm_gets_a_domain_tree(xapi: Xapi, store: Xenstore, host: str) -> None:
    vm = guest(xapi)
    xapi.db.update("VM", vm, xenstore_data={"vm-data/hostname": "web", "ignored": "x"},
                   platform={"viridian": "true"})
    run_domain(xapi, vm, host, 7)
    record = xapi.db.get("VM", vm)
    assert store.read(host, "/local/domain/7/name") == record["name_label"]
    assert store.read(host, "/local/domain/7/vm") == f"/vm/{record['uuid']}"
    assert store.read(host, "/local/domain/7/vm-data/hostname") == "web"
    assert store.read(host, "/local/domain/7/platform/viridian") == "true"
    assert store.read(host, "/local/domain/7/memory/target") == str(
        int(record["memory_dynamic_max"]) // 1024)
    assert not store.exists(host, "/local/domain/7/ignored")


def test_halted_vm_loses_its_domain_tree_and_what_was_written_there(
    xapi: Xapi, store: Xenstore, host: str
) -> None:
    vm = guest(xapi)
    run_domain(xapi, vm, host, 7)
    store.write(host, "/local/domain/7/data/note", "1")
    xapi.db.update("VM", vm, power_state="Halted", domid=-1, resident_on="OpaqueRef:NULL")
    assert not store.exists(host, "/local/domain/7")
    assert not store.exists(host, f"/vm/{xapi.db.get('VM', vm)['uuid']}")


def test_new_domid_gives_a_fresh_tree(xapi: Xapi, store: Xenstore, host: str) -> None:
    vm = guest(xapi)
    run_domain(xapi, vm, host, 7)
    store.write(host, "/local/domain/7/data/note", "1")
    run_domain(xapi, vm, host, 8)
    assert (store.exists(host, "/local/domain/7"), store.exists(host, "/local/domain/8/data/note"),
            store.exists(host, "/local/domain/8/name")) == (False, False, True)


# -- the socket, with the dom0 commands --------------------------------------------------------

@pytest.fixture
def served(store: Xenstore, tmp_path) -> Iterator[XenstoreServer]:
    """The xenstore served on a loop in a thread, as the simulator serves it."""
    loop = asyncio.new_event_loop()
    server = XenstoreServer(store, str(tmp_path / "xs.sock"))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
    yield server
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


@pytest.fixture
def commands(served: XenstoreServer, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("XENSTORED_SIM_SOCKET", served.path)
    monkeypatch.delenv("XAPI_SIM_HOST", raising=False)
    spec = importlib.util.spec_from_file_location("simxenstore", DOM0ENV / "lib" / "simxenstore.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(commands: ModuleType, command: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = commands.main(command, list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_commands_write_read_and_remove(commands: ModuleType) -> None:
    assert run(commands, "write", "/x/y", "1", "/x/z", "2") == (0, "", "")
    assert run(commands, "read", "-p", "/x/y", "/x/z") == (0, "/x/y: 1\n/x/z: 2\n", "")
    assert run(commands, "rm", "/x") == (0, "", "")
    assert run(commands, "exists", "/x")[0] == 1


def test_ls_of_a_missing_path_reports_enoent(commands: ModuleType) -> None:
    assert run(commands, "ls", "/nope") == (
        1, "", "xenstore-ls: xs_directory (/nope): No such file or directory\n")


def test_server_answers_a_malformed_request_with_einval(served: XenstoreServer) -> None:
    for line in (b"not json\n", b"[1]\n", json.dumps({"op": "fly", "path": "/"}).encode()):
        assert served.answer(line)["error"] == "EINVAL"


def test_server_refuses_an_unknown_host(served: XenstoreServer) -> None:
    reply = served.answer(json.dumps({"op": "read", "path": "/", "host": "no-such-uuid"}).encode())
    assert reply == {"error": "EINVAL", "message": "no host has uuid no-such-uuid"}
