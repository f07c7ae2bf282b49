"""Nova's calls into the dom0 plugins with os-xenapi 0.3.4's plain arguments, end to end:
XenAPISession.call_plugin with the very maps Nova (and 0.3.4's wrappers) sent, against a
simulator running os-xenapi's own plugins, checking the text Nova then parses.

host_join runs against a second simulator standing for the joining host. The simulator has no
pool.join yet, so the join itself fails there with XAPI's MESSAGE_METHOD_UNKNOWN: what this
proves is the way to it and back (login to the joining host, its compute VM shut down and
started again, XAPI's error passed on with no password in it); the join's success path is
tests/unit/dom0/test_xenhost_join.py.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import XenAPI
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.plugins import dom0_of

ORIGINATOR = "dom0-nova-calls-tests"
REQUEST = "3a1f0c6e-5b1e-4a43-9d59-2f4c8c1f0a11"
SLAVE_PASSWORD = "joining-host-Secret"


@pytest.fixture(scope="module")
def sim(root: Path) -> Iterator[Simulator]:
    with Simulator(vms=1, auth_failure_delay=0, dom0_root=root) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def vm(session: XenAPISession) -> Iterator[str]:
    """A running guest; its simulated guest agent answers the agent plugin."""
    ref = next(ref for ref, rec in session.call_xenapi("VM.get_all_records").items()
               if not rec["is_a_template"] and not rec["is_control_domain"])
    session.call_xenapi("VM.start", ref, False, False)
    yield ref
    session.call_xenapi("VM.hard_shutdown", ref)


@pytest.fixture(scope="module")
def domid(session: XenAPISession, vm: str) -> str:
    return str(session.call_xenapi("VM.get_domid", vm))


def xenstore_write(sim: Simulator, path: str, value: str) -> None:
    """Write into the master's simulated xenstore on the server side, as a guest would."""
    sim.run(lambda xapi: dom0_of(xapi).xenstore.write(xapi.master, path, value))


# ------------------------------------------------------------- 0.3.4's wrappers' plain maps


def test_read_record_of_a_missing_path_is_the_string_vmops_compares_with(
        session: XenAPISession, domid: str) -> None:
    text = session.call_plugin("xenstore.py", "read_record", {
        "dom_id": domid, "ignore_missing_path": "True", "path": "data/PVAddons/MajorVersion"})
    assert text == '"None"'


def test_write_then_read_record_answer_json_text(session: XenAPISession, domid: str) -> None:
    assert session.call_plugin("xenstore.py", "write_record", {
        "dom_id": domid, "path": "vm-data/hostname", "value": "web-1"}) == '"web-1"'
    assert session.call_plugin("xenstore.py", "read_record", {
        "dom_id": domid, "ignore_missing_path": "True", "path": "vm-data/hostname"}) == '"web-1"'


def test_agent_version_answers_the_agents_json_text(sim: Simulator, session: XenAPISession,
                                                    vm: str, domid: str) -> None:
    sim.set_guest_agent(vm, version="1.0.2")
    text = session.call_plugin("agent.py", "version",
                               {"dom_id": domid, "id": REQUEST, "timeout": "30"})
    assert json.loads(text) == {"returncode": "0", "message": "1.0.2"}


def test_agent_timeout_carries_the_marker_novas_agent_code_raises_agenttimeout_on(
        sim: Simulator, session: XenAPISession, vm: str, domid: str) -> None:
    sim.set_guest_agent(vm, mode="silent")
    try:
        with pytest.raises(XenAPI.Failure) as info:
            session.call_plugin("agent.py", "resetnetwork",
                                {"dom_id": domid, "id": "no-answer", "timeout": "1"})
    finally:
        sim.set_guest_agent(vm, mode="answer")
    assert info.value.details[0] == "OS_XENAPI_TIMEOUT"
    assert "TIMEOUT:" in info.value.details[-1].splitlines()[-1]


def test_console_log_is_the_base64_text_vmops_decodes(root: Path, session: XenAPISession,
                                                      domid: str) -> None:
    logs = root / "var" / "log" / "xen" / "guest"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"console.{domid}").write_bytes(b"login: ")
    text = session.call_plugin("console.py", "get_console_log", {"dom_id": domid})
    assert zlib.decompress(base64.b64decode(text)) == b"login: "


def test_kernel_remove_answers_ok_with_0_3_4s_hyphenated_keys(root: Path,
                                                              session: XenAPISession) -> None:
    (root / "boot" / "guest").mkdir(parents=True, exist_ok=True)
    (root / "boot" / "guest" / "k1").write_bytes(b"kernel")
    assert session.call_plugin("kernel.py", "remove_kernel_ramdisk",
                               {"kernel-file": "/boot/guest/k1"}) == "ok"
    assert not (root / "boot" / "guest" / "k1").exists()


# --------------------------------------------------------------- Nova's direct calls


def test_the_dom0_firewall_drivers_iptables_calls(session: XenAPISession) -> None:
    rules = "*filter\n:nova-filter-top - [0:0]\n-A FORWARD -j nova-filter-top\nCOMMIT\n"
    restored = session.call_plugin("xenhost.py", "iptables_config", {
        "cmd_args": json.dumps(["iptables-restore", "-c"]), "run_as_root": "True",
        "process_input": rules, "attempts": "5"})
    assert json.loads(restored) == {"out": "", "err": ""}
    saved = json.loads(session.call_plugin("xenhost.py", "iptables_config", {
        "cmd_args": json.dumps(["iptables-save", "-c"]), "run_as_root": "True",
        "attempts": "5"}))
    assert "-A FORWARD -j nova-filter-top" in saved["out"]


@pytest.fixture(scope="module")
def joining_host() -> Iterator[Simulator]:
    with Simulator(vms=1, auth_failure_delay=0, password=SLAVE_PASSWORD) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def compute_vm(joining_host: Simulator) -> Iterator[tuple[Any, str]]:
    """The joining host's nova-compute VM, running, and the official SDK logged in there."""
    official = __import__("XenAPI").Session(joining_host.url)
    official.xenapi.login_with_password(joining_host.username, SLAVE_PASSWORD, "1.0",
                                        ORIGINATOR)
    xapi = official.xenapi
    vm = next(ref for ref, rec in xapi.VM.get_all_records().items()
              if not rec["is_a_template"] and not rec["is_control_domain"])
    xapi.VM.start(vm, False, False)
    yield xapi, vm
    xapi.session.logout()


def test_pool_join_runs_on_the_joining_host_which_gets_its_compute_vm_back(
        session: XenAPISession, joining_host: Simulator, compute_vm: tuple[Any, str]) -> None:
    xapi, vm = compute_vm
    args = {"compute_uuid": xapi.VM.get_uuid(vm), "url": joining_host.url,
            "user": joining_host.username, "password": SLAVE_PASSWORD,
            "force": json.dumps(False), "master_addr": "127.0.0.1",
            "master_user": "root", "master_pass": "master-Secret"}
    domid_before = xapi.VM.get_domid(vm)
    with pytest.raises(XenAPI.Failure) as info:
        session.call_plugin("xenhost.py", "host_join", args)
    assert info.value.details == ["MESSAGE_METHOD_UNKNOWN", "pool.join"]
    assert xapi.VM.get_power_state(vm) == "Running"
    assert xapi.VM.get_domid(vm) != domid_before  # shut down for the join, then started again
    assert not any(secret in str(info.value) for secret in (SLAVE_PASSWORD, "master-Secret"))


def test_a_wrong_password_for_the_joining_host_changes_nothing(
        session: XenAPISession, joining_host: Simulator, compute_vm: tuple[Any, str]) -> None:
    xapi, vm = compute_vm
    args = {"compute_uuid": xapi.VM.get_uuid(vm), "url": joining_host.url, "user": "root",
            "password": "wrong", "force": "false", "master_addr": "127.0.0.1",
            "master_user": "root", "master_pass": "master-Secret"}
    domid_before = xapi.VM.get_domid(vm)
    with pytest.raises(XenAPI.Failure) as info:
        session.call_plugin("xenhost.py", "host_join", args)
    assert info.value.details[0] == "SESSION_AUTHENTICATION_FAILED"
    assert xapi.VM.get_domid(vm) == domid_before
