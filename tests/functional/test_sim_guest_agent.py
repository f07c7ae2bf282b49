"""The guest agent of a running VM answering os-xenapi's agent plugin, called through the
official XenAPI SDK as XAPI runs it, and the control API that sets how each agent behaves."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import XenAPI

from os_xenapi.simulator import Simulator
from os_xenapi.simulator.agent_keys import GENERATOR, PRIME

ORIGINATOR = "guest-agent-tests"
NOVA_PRIVATE = 0x1234567890ABCDEF1234  # as SimpleDH draws: 10 random bytes


@pytest.fixture(scope="module")
def sim(root: Path) -> Iterator[Simulator]:
    with Simulator(vms=1, auth_failure_delay=0, dom0_root=root) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def vm(x: Any) -> Iterator[str]:
    ref = next(ref for ref, rec in x.VM.get_all_records().items()
               if not rec["is_a_template"] and not rec["is_control_domain"])
    x.VM.start(ref, False, False)
    yield ref
    x.VM.hard_shutdown(ref)


@pytest.fixture
def agent(sim: Simulator, vm: str) -> Iterator[str]:
    """The VM, its agent set back to answering after the test."""
    yield vm
    sim.set_guest_agent(vm, mode="answer")


def call_agent(x: Any, vm: str, function: str, timeout: int = 10, **kwargs: Any) -> Any:
    """The agent plugin's function, called as os-xenapi's client calls it; the agent's answer."""
    kwargs.update(id="5c0ffee0-0000-4000-8000-000000000001", dom_id=int(x.VM.get_domid(vm)),
                  timeout=timeout)
    reply = x.host.call_plugin(x.host.get_all()[0], "agent.py", function,
                               {"params": json.dumps({"args": [], "kwargs": kwargs})})
    answer = json.loads(reply)
    return json.loads(answer) if isinstance(answer, str) else answer  # the agent's JSON text


def failure_text(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(XenAPI.Failure) as info:
        call(*args, **kwargs)
    return " ".join(info.value.details)


def control(sim: Simulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    parts = urlsplit(sim.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, "/_simulator" + path, None if body is None else json.dumps(body),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


# -- through the agent plugin --------------------------------------------------------------------

def test_agent_answers_its_version(sim: Simulator, x: Any, agent: str) -> None:
    sim.set_guest_agent(agent, version="2.1.0")
    try:
        assert call_agent(x, agent, "version") == {"returncode": "0", "message": "2.1.0"}
    finally:
        sim.set_guest_agent(agent, version="1.39.1")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs OpenSSL's openssl")
def test_nova_sets_the_admin_password_through_key_init_and_password(
    sim: Simulator, x: Any, agent: str,
) -> None:
    """Nova's set_admin_password: SimpleDH's key exchange, then the password encrypted with
    ``openssl aes-128-cbc -A -a -pass pass:<shared> -nosalt`` of the new password and a newline."""
    answer = call_agent(x, agent, "key_init", pub=str(pow(GENERATOR, NOVA_PRIVATE, PRIME)))
    assert answer["returncode"] == "D0"
    shared = str(pow(int(answer["message"]), NOVA_PRIVATE, PRIME))
    encrypted = subprocess.run(
        ["openssl", "aes-128-cbc", "-A", "-a", "-pass", f"pass:{shared}", "-nosalt"],
        input=b"Tr0ub4dor&3\n", capture_output=True, check=True).stdout.decode().strip("\n")
    assert call_agent(x, agent, "password", enc_pass=encrypted) == {"returncode": "0",
                                                                    "message": ""}
    assert sim.guest_agent(agent).password == "Tr0ub4dor&3"


def test_silent_agent_times_out(sim: Simulator, x: Any, agent: str) -> None:
    sim.set_guest_agent(agent, mode="silent")
    assert "OS_XENAPI_TIMEOUT" in failure_text(call_agent, x, agent, "version", timeout=1)
    assert sim.guest_agent(agent).mode == "silent"


def test_rebooting_agent_is_reported_and_the_new_domain_answers(
    sim: Simulator, x: Any, agent: str,
) -> None:
    before = x.VM.get_domid(agent)
    sim.set_guest_agent(agent, mode="reboot")
    assert "OS_XENAPI_REBOOT_DETECTED" in failure_text(call_agent, x, agent, "resetnetwork")
    assert x.VM.get_power_state(agent) == "Running" and x.VM.get_domid(agent) != before
    assert call_agent(x, agent, "resetnetwork") == {"returncode": "0", "message": ""}


# -- the control API -----------------------------------------------------------------------------

def test_control_api_shows_and_sets_the_agent_by_vm_uuid(sim: Simulator, x: Any,
                                                         agent: str) -> None:
    path = f"/vms/{x.VM.get_uuid(agent)}/agent"
    status, reply = control(sim, "POST", path, {"mode": "silent"})
    assert (status, reply["agent"]["mode"]) == (200, "silent")
    assert sim.guest_agent(agent).mode == "silent"
    status, reply = control(sim, "GET", path)
    assert status == 200 and reply["agent"]["vm"] == agent
    assert set(reply["agent"]) >= {"features", "version", "requests", "password", "files"}


def test_control_api_finds_the_agent_by_vm_ref_too(sim: Simulator, agent: str) -> None:
    status, reply = control(sim, "GET", f"/vms/{quote(agent)}/agent")
    assert (status, reply["agent"]["vm"]) == (200, agent)


@pytest.mark.parametrize(("body", "named"), [({"mode": "asleep"}, "mode"),
                                             ({}, "mode"), ({"colour": "red"}, "mode")])
def test_control_api_refuses_a_bad_setting_naming_it(sim: Simulator, agent: str,
                                                     body: dict[str, Any], named: str) -> None:
    status, reply = control(sim, "POST", f"/vms/{quote(agent)}/agent", body)
    assert status == 400 and named in reply["error"]


def test_control_api_answers_404_for_an_unknown_vm(sim: Simulator) -> None:
    status, reply = control(sim, "GET", "/vms/nope/agent")
    assert status == 404 and "nope" in reply["error"]


def test_control_api_says_dom0_runs_no_agent(sim: Simulator, x: Any) -> None:
    dom0 = next(ref for ref, rec in x.VM.get_all_records().items() if rec["is_control_domain"])
    status, reply = control(sim, "POST", f"/vms/{x.VM.get_uuid(dom0)}/agent", {"mode": "silent"})
    assert status == 400 and "control domain" in reply["error"]


def test_control_api_moves_and_freezes_the_rrd_clock(sim: Simulator) -> None:
    status, reply = control(sim, "POST", "/rrd", {"frozen": True})
    assert status == 200 and reply["rrd"]["frozen"] is True
    try:
        status, moved = control(sim, "POST", "/rrd", {"advance": 5})
        assert moved["rrd"]["time"] == reply["rrd"]["time"] + 5
        assert control(sim, "GET", "/rrd")[1] == moved
        status, refused = control(sim, "POST", "/rrd", {"advance": -1})
        assert status == 400 and "at least 0" in refused["error"]
    finally:
        control(sim, "POST", "/rrd", {"frozen": False})


def test_agent_answers_a_guest_rebooted_after_a_simulator_restart(
    sim: Simulator, x: Any, agent: str,
) -> None:
    """A restart gives the pool a new database; the guests' xenstore and agents follow it."""
    assert call_agent(x, agent, "version")["returncode"] == "0"  # the xenstore is in use
    sim.restart()
    x.VM.hard_reboot(agent)  # a new domid, known to the new database only
    assert call_agent(x, agent, "version", timeout=2)["returncode"] == "0"
