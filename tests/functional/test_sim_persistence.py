"""A simulator with a state directory comes back with the same pool, as XAPI does after a restart.

Sessions and tasks do not come back (XAPI persists neither), and the official SDK carries on by
logging in again. The last tests kill ``os-xenapi simulator --state-dir`` with SIGKILL and start
it again on the same port.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import XenAPI

from os_xenapi.simulator import Simulator
from os_xenapi.simulator.persist import STATE_FILE, StateError
from os_xenapi.simulator.vdi_store import VdiStore

WAIT = 5.0  # seconds to wait for a write the simulator is about to make
START_TIMEOUT = 30.0  # seconds for the command to announce that it listens
TEMPLATE = "Debian Bookworm 12"
MiB = 1024**2
CLASSES = ("host", "SR", "VM")  # whose objects a restarted pool must still have


def raw_call(url: str, method: str, *params: Any) -> dict[str, Any]:
    """One XML-RPC call on a fresh connection; the decoded ``{Status, Value|ErrorDescription}``."""
    proxy = xmlrpc.client.ServerProxy(url)
    try:
        return getattr(proxy, method)(*params)
    finally:
        proxy("close")()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait, at most WAIT seconds, until ``condition()`` holds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WAIT} s")
        time.sleep(0.01)


def saved(state_dir: Path) -> str:
    """The state file's text, or "" before the first write."""
    try:
        return (state_dir / STATE_FILE).read_text()
    except FileNotFoundError:
        return ""


@pytest.fixture
def login() -> Iterator[Callable[[str], Any]]:
    """Logs in with the official SDK to a URL; the sessions' connections close at the end."""
    made: list[Any] = []

    def log_in(url: str) -> Any:
        session = XenAPI.Session(url)
        made.append(session)
        session.xenapi.login_with_password("root", "xenroot", "2.21", "test_sim_persistence")
        return session

    yield log_in
    for session in made:
        session("close")()


def simulator(state_dir: Path, port: int = 0, **options: Any) -> Simulator:
    return Simulator(state_dir=str(state_dir), port=port, auth_failure_delay=0, **options)


def clone(session: Any, name: str) -> str:
    template = session.xenapi.VM.get_by_name_label(TEMPLATE)[0]
    return session.xenapi.VM.clone(template, name)


# --------------------------------------------------------------------------- writing


def test_the_state_file_is_written_soon_after_a_change(tmp_path: Path, login: Callable) -> None:
    with simulator(tmp_path) as sim:
        vm = clone(login(sim.url), "written soon")
        wait_for(lambda: vm in saved(tmp_path), "the write of the new VM")


def test_each_write_replaces_the_state_file_whole(tmp_path: Path, login: Callable) -> None:
    with simulator(tmp_path) as sim:
        session = login(sim.url)
        wait_for(lambda: saved(tmp_path) != "", "the first write")
        first = (tmp_path / STATE_FILE).stat().st_ino
        vm = clone(session, "second write")
        wait_for(lambda: vm in saved(tmp_path), "the second write")
        assert (tmp_path / STATE_FILE).stat().st_ino != first
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", STATE_FILE, "vdis"]


def test_stopping_writes_the_last_changes(tmp_path: Path, login: Callable) -> None:
    with simulator(tmp_path) as sim:
        vm = clone(login(sim.url), "just before the stop")
    assert vm in saved(tmp_path)


def test_a_restart_writes_the_state_at_once(tmp_path: Path, login: Callable) -> None:
    with simulator(tmp_path) as sim:
        vm = clone(login(sim.url), "just before the restart")
        sim.restart()
        assert vm in saved(tmp_path)


def test_sessions_and_tasks_are_not_written(tmp_path: Path, login: Callable) -> None:
    with simulator(tmp_path) as sim:
        session = login(sim.url)
        task = session.xenapi.task.create("not kept", "")
    tables = json.loads(saved(tmp_path))["tables"]
    assert "session" not in tables and "task" not in tables
    assert task not in saved(tmp_path)


# --------------------------------------------------------------------------- loading


def test_a_pool_started_again_from_its_state_dir_is_the_same_pool(
    tmp_path: Path, login: Callable
) -> None:
    with simulator(tmp_path) as sim:
        session = login(sim.url)
        vm = clone(session, "survivor")
        before = {cls: sorted(getattr(session.xenapi, cls).get_all()) for cls in CLASSES}
        uuid = session.xenapi.VM.get_uuid(vm)
    with simulator(tmp_path) as sim:
        session = login(sim.url)
        after = {cls: sorted(getattr(session.xenapi, cls).get_all()) for cls in CLASSES}
        assert after == before
        assert session.xenapi.VM.get_by_uuid(uuid) == vm


def test_a_saved_pool_wins_over_the_hosts_and_vms_arguments(
    tmp_path: Path, login: Callable
) -> None:
    with simulator(tmp_path, hosts=1) as sim:
        vms = sorted(login(sim.url).xenapi.VM.get_all())
    with simulator(tmp_path, hosts=3, vms=2) as sim:
        session = login(sim.url)
        assert (len(session.xenapi.host.get_all()), len(sim.urls)) == (1, 1)
        assert sorted(session.xenapi.VM.get_all()) == vms


def test_datetimes_come_back_as_datetimes(tmp_path: Path, login: Callable) -> None:
    with simulator(tmp_path) as sim:
        session = login(sim.url)
        metrics = session.xenapi.host_metrics.get_all()[0]
        before = session.xenapi.host_metrics.get_last_updated(metrics)
    with simulator(tmp_path) as sim:
        after = login(sim.url).xenapi.host_metrics.get_last_updated(metrics)
    assert isinstance(after, xmlrpc.client.DateTime)
    assert after == before


def test_a_session_from_before_a_restart_gets_session_invalid(
    tmp_path: Path, login: Callable
) -> None:
    with simulator(tmp_path) as sim:
        ref, port = login(sim.url)._session, sim.port
    with simulator(tmp_path, port=port) as sim:
        reply = raw_call(sim.url, "VM.get_all", ref)
    assert reply["ErrorDescription"] == ["SESSION_INVALID", ref]


def test_the_sdk_carries_on_after_the_simulator_comes_back_on_its_port(
    tmp_path: Path, login: Callable
) -> None:
    with simulator(tmp_path) as sim:
        session, port = login(sim.url), sim.port
        vms = sorted(session.xenapi.VM.get_all())
    with simulator(tmp_path, port=port):
        assert sorted(session.xenapi.VM.get_all()) == vms


def test_operations_that_died_with_the_process_are_cleared(
    tmp_path: Path, login: Callable
) -> None:
    with simulator(tmp_path, vms=1) as sim:
        vm = login(sim.url).xenapi.VM.get_all_records_where(
            'field "is_a_template" = "false" and field "is_control_domain" = "false"').popitem()[0]
    state = json.loads(saved(tmp_path))
    state["tables"]["VM"][vm].update(current_operations={"OpaqueRef:dead": "start"},
                                     allowed_operations=[])
    (tmp_path / STATE_FILE).write_text(json.dumps(state))
    with simulator(tmp_path) as sim:
        record = login(sim.url).xenapi.VM.get_record(vm)
    assert record["current_operations"] == {}
    assert "start" in record["allowed_operations"]


def test_a_domain_made_after_a_restart_gets_a_domid_no_running_domain_has(
    tmp_path: Path, login: Callable
) -> None:
    with simulator(tmp_path, vms=2) as sim:
        x = login(sim.url).xenapi
        first, second = sorted(x.VM.get_all_records_where(
            'field "is_a_template" = "false" and field "is_control_domain" = "false"'))
        x.VM.start(first, False, False)
        running = x.VM.get_domid(first)
        sim.restart()
        x.VM.start(second, False, False)
        assert x.VM.get_domid(second) != running
        x.VM.hard_reboot(first)
        assert x.VM.get_domid(first) not in (running, x.VM.get_domid(second))


def test_event_tokens_from_before_a_restart_still_work(tmp_path: Path, login: Callable) -> None:
    with simulator(tmp_path) as sim:
        token = login(sim.url).xenapi.event_from(["vm"], "", 0.0)["token"]
    with simulator(tmp_path) as sim:
        session = login(sim.url)
        template = session.xenapi.VM.get_by_name_label(TEMPLATE)[0]
        vm = clone(session, "after the restart")
        events = session.xenapi.event_from(["vm"], token, 0.0)["events"]
    assert {(e["ref"], e["operation"]) for e in events} == {(vm, "add"), (template, "mod")}


# --------------------------------------------------------------------------- refusals


def test_a_state_file_that_is_not_json_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(StateError, match=re.escape(str(tmp_path / STATE_FILE))):
        simulator(tmp_path).start()


def test_a_state_with_an_unknown_field_is_refused_naming_it(tmp_path: Path) -> None:
    with simulator(tmp_path):
        pass
    state = json.loads(saved(tmp_path))
    pool = next(iter(state["tables"]["pool"].values()))
    pool["colour"] = "blue"
    (tmp_path / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(StateError, match="colour"):
        simulator(tmp_path).start()


def test_a_state_dir_in_use_by_another_simulator_is_refused(tmp_path: Path) -> None:
    with simulator(tmp_path):
        with pytest.raises(StateError, match="in use"):
            simulator(tmp_path).start()


def test_a_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a file"
    path.write_text("")
    with pytest.raises(StateError, match="not a directory"):
        simulator(path).start()


# --------------------------------------------------------------------------- SIGKILLed command


@contextmanager
def command(state_dir: Path, listen: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``os-xenapi simulator --state-dir`` as a child process; yields it and its URL."""
    errors = open(state_dir.parent / "stderr.txt", "a")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "os_xenapi.cli.main", "simulator", "--state-dir", str(state_dir),
         "--listen", listen, "--auth-delay", "0", "--unix", str(state_dir.parent / "xapi.sock")],
        stdout=subprocess.PIPE, stderr=errors, text=True,
        env=dict(os.environ, TMPDIR=str(state_dir.parent)),  # what a SIGKILL leaves stays here
    )
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()))
        reader.start()
        reader.join(START_TIMEOUT)
        announced = re.match(r"XAPI simulator listening on (http://\S+)$", lines[0].strip()) \
            if lines else None
        if announced is None:
            process.kill()
            reader.join(START_TIMEOUT)
            pytest.fail(f"the simulator did not start: {lines} {errors.name}")
        yield process, announced.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=START_TIMEOUT)
        process.stdout.close()
        errors.close()


def sigkill(process: subprocess.Popen[str]) -> None:
    """Kill the command as a crash or the OOM killer would, and wait for it to be gone."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=START_TIMEOUT)


def same_port(url: str) -> str:
    return f"127.0.0.1:{urlsplit(url).port}"


def _vdi_record(session: Any, size: int) -> dict[str, Any]:
    sr = session.xenapi.pool.get_default_SR(session.xenapi.pool.get_all()[0])
    return {"name_label": "data", "name_description": "", "SR": sr, "virtual_size": str(size),
            "type": "user", "sharable": False, "read_only": False, "other_config": {}}


def test_a_simulator_killed_with_sigkill_comes_back_with_its_pool_on_the_same_port(
    tmp_path: Path, login: Callable
) -> None:
    state = tmp_path / "state"
    with command(state, "127.0.0.1:0") as (process, url):
        session = login(url)
        vm_uuid = session.xenapi.VM.get_uuid(clone(session, "survivor"))
        vdi_uuid = session.xenapi.VDI.get_uuid(session.xenapi.VDI.create(_vdi_record(session, MiB)))
        store = VdiStore(state / "vdis")
        with open(store.ensure(vdi_uuid, MiB), "r+b") as disk:
            disk.seek(4096)
            disk.write(b"written before the kill")
        wait_for(lambda: vm_uuid in saved(state) and vdi_uuid in saved(state), "the write")
        sigkill(process)
    with command(state, same_port(url)) as (process, again):
        session = login(again)
        assert again == url
        x = session.xenapi
        assert x.VM.get_name_label(x.VM.get_by_uuid(vm_uuid)) == "survivor"
        assert x.VDI.get_virtual_size(x.VDI.get_by_uuid(vdi_uuid)) == str(MiB)
        with open(store.path(vdi_uuid), "rb") as disk:
            disk.seek(4096)
            assert disk.read(23) == b"written before the kill"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=START_TIMEOUT) == 0


def test_after_a_sigkill_an_old_session_is_invalid_and_the_sdk_logs_in_again(
    tmp_path: Path, login: Callable
) -> None:
    state = tmp_path / "state"
    with command(state, "127.0.0.1:0") as (process, url):
        session = login(url)
        before = session._session
        wait_for(lambda: saved(state) != "", "the first write")
        sigkill(process)
    with command(state, same_port(url)):
        assert raw_call(url, "VM.get_all", before)["ErrorDescription"] == [
            "SESSION_INVALID", before]
        assert session.xenapi.VM.get_all()
        assert session._session != before
