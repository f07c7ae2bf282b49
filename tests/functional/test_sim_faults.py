"""Fault injection and the simulator's control API, over real sockets.

Each fault kind is driven through the official SDK or plain http.client, and each test checks
both what the client sees and that the fault counted the hit. The control operations (session
expiry, master move, unreachable hosts, restart) are checked through the Python API and over
HTTP under /_simulator/.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import XenAPI

from os_xenapi.simulator import Simulator
from os_xenapi.simulator.control import ControlError
from os_xenapi.simulator.faults import Fault

WAIT = 5.0  # seconds a test waits for something the simulator is about to do


# --------------------------------------------------------------------------- plumbing


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the simulator's Unix socket, as dom0 tools talk to XAPI."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def connect(target: str) -> http.client.HTTPConnection:
    """A connection to a URL, or to a Unix socket given by its path."""
    if target.startswith("/"):
        return UnixHTTPConnection(target)
    parts = urlsplit(target)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)


def raw_call(target: str, method: str, *params: Any, path: str = "/") -> dict[str, Any]:
    """One XML-RPC call on a fresh connection; the decoded ``{Status, Value|ErrorDescription}``."""
    conn = connect(target)
    try:
        body = xmlrpc.client.dumps(params, method)
        conn.request("POST", path, body, {"Content-Type": "text/xml"})
        body = conn.getresponse().read()
    finally:
        conn.close()
    (value,), _ = xmlrpc.client.loads(body)
    return value


def control(target: str, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    """One control API request; (HTTP status, decoded JSON)."""
    conn = connect(target)
    try:
        payload = None if body is None else json.dumps(body)
        conn.request(method, "/_simulator" + path, payload, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def pool_label(sim: Simulator) -> str:
    return sim.run(lambda xapi: xapi.db.get("pool", xapi.pool)["name_label"])


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait, at most WAIT seconds, until ``condition()`` holds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WAIT} s")
        time.sleep(0.01)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(hosts=2, auth_failure_delay=0) as running:
        yield running


@pytest.fixture
def login() -> Iterator[Callable[[str], Any]]:
    """Logs in with the official SDK to a URL; the sessions' connections close at the end."""
    made: list[Any] = []

    def log_in(url: str) -> Any:
        session = XenAPI.Session(url)
        made.append(session)
        session.xenapi.login_with_password("root", "xenroot", "2.21", "test_sim_faults")
        return session

    yield log_in
    for session in made:
        session("close")()


@pytest.fixture
def session(sim: Simulator, login: Callable[[str], Any]) -> Any:
    return login(sim.url)


# --------------------------------------------------------------------------- fault kinds


def test_latency_delays_the_call_by_its_seconds(sim: Simulator, session: Any) -> None:
    fault = sim.faults.add(Fault.latency("pool.get_all", 0.3))
    started = time.monotonic()
    session.xenapi.pool.get_all()
    assert time.monotonic() - started >= 0.3
    assert fault.hits == 1


def test_fail_answers_the_nth_call_with_its_error(sim: Simulator, session: Any) -> None:
    fault = sim.faults.add(Fault.fail("VM.get_all", "SR_BACKEND_FAILURE_46", "", "busy", nth=2))
    session.xenapi.VM.get_all()
    with pytest.raises(XenAPI.Failure) as failed:
        session.xenapi.VM.get_all()
    session.xenapi.VM.get_all()
    assert failed.value.details == ["SR_BACKEND_FAILURE_46", "", "busy"]
    assert (fault.calls, fault.hits) == (3, 1)


def test_fail_with_times_fails_the_first_calls_then_lets_them_through(
    sim: Simulator, session: Any
) -> None:
    fault = sim.add_fault("VM.get_all", "fail", error=["HOST_OFFLINE", "x"], times=2)
    for _ in range(2):
        with pytest.raises(XenAPI.Failure):
            session.xenapi.VM.get_all()
    assert session.xenapi.VM.get_all()
    assert fault.hits == 2


def test_a_failed_call_does_not_run(sim: Simulator, session: Any) -> None:
    pool = session.xenapi.pool.get_all()[0]
    sim.faults.add(Fault.fail("pool.set_name_label", "INTERNAL_ERROR", "injected"))
    with pytest.raises(XenAPI.Failure):
        session.xenapi.pool.set_name_label(pool, "changed")
    assert pool_label(sim) == ""


def test_drop_before_closes_the_connection_and_the_call_does_not_run(
    sim: Simulator, session: Any
) -> None:
    pool = session.xenapi.pool.get_all()[0]
    fault = sim.faults.add(Fault.drop("pool.set_name_label"))
    with pytest.raises(ConnectionError):
        raw_call(sim.url, "pool.set_name_label", session._session, pool, "changed")
    assert pool_label(sim) == ""
    assert fault.hits == 1


def test_drop_after_runs_the_call_but_sends_no_reply(sim: Simulator, session: Any) -> None:
    pool = session.xenapi.pool.get_all()[0]
    fault = sim.faults.add(Fault.drop("pool.set_name_label", after=True))
    with pytest.raises(ConnectionError):
        raw_call(sim.url, "pool.set_name_label", session._session, pool, "changed")
    assert pool_label(sim) == "changed"
    assert fault.hits == 1


def test_the_sdk_sends_a_dropped_call_again_so_drop_after_runs_it_twice(
    sim: Simulator, session: Any
) -> None:
    template = session.xenapi.VM.get_by_name_label("Debian Bookworm 12")[0]
    fault = sim.faults.add(Fault.drop("VM.clone", after=True, nth=1))
    session.xenapi.VM.clone(template, "cloned once?")
    assert len(session.xenapi.VM.get_by_name_label("cloned once?")) == 2
    assert (fault.calls, fault.hits) == (2, 1)


def test_a_connection_dropped_on_every_call_reaches_the_sdk_as_an_error(
    sim: Simulator, session: Any
) -> None:
    fault = sim.faults.add(Fault.drop("host.get_all"))
    with pytest.raises(ConnectionError):
        session.xenapi.host.get_all()
    assert fault.hits == 2  # the SDK's transport tried a second time


def test_http_status_answers_with_that_status_and_the_call_does_not_run(
    sim: Simulator, session: Any
) -> None:
    pool = session.xenapi.pool.get_all()[0]
    fault = sim.faults.add(Fault.http_status("pool.set_name_label", 503))
    with pytest.raises(xmlrpc.client.ProtocolError) as refused:
        session.xenapi.pool.set_name_label(pool, "changed")
    assert refused.value.errcode == 503
    assert pool_label(sim) == ""
    assert fault.hits == 1


def test_faults_apply_to_json_rpc(sim: Simulator, session: Any) -> None:
    sim.faults.add(Fault.fail("host.get_all", "HOST_OFFLINE", "h"))
    conn = connect(sim.url)
    request = {"jsonrpc": "2.0", "method": "host.get_all", "params": [session._session], "id": 7}
    conn.request("POST", "/jsonrpc", json.dumps(request), {"Content-Type": "application/json"})
    reply = json.loads(conn.getresponse().read())
    conn.close()
    assert reply["error"] == {"code": 1, "message": "HOST_OFFLINE", "data": ["h"]}


def test_faults_apply_on_the_unix_socket(sim: Simulator) -> None:
    fault = sim.faults.add(Fault.drop("session.login_with_password"))
    assert sim.unix_path is not None
    with pytest.raises(ConnectionError):
        raw_call(sim.unix_path, "session.login_with_password", "root", "")
    assert fault.hits == 1


def test_a_pattern_with_an_underscore_names_the_same_method(
    sim: Simulator, session: Any
) -> None:
    sim.faults.add(Fault.fail("VM_get_all", "HOST_OFFLINE"))
    with pytest.raises(XenAPI.Failure):
        session.xenapi.VM.get_all()


def test_an_async_pattern_leaves_the_synchronous_call_alone(
    sim: Simulator, session: Any
) -> None:
    fault = sim.faults.add(Fault.fail("Async.VM.get_all_records", "HOST_OFFLINE"))
    session.xenapi.VM.get_all_records()
    assert fault.calls == 0


def test_a_plain_pattern_also_matches_the_async_call(sim: Simulator, session: Any) -> None:
    template = session.xenapi.VM.get_by_name_label("Debian Bookworm 12")[0]
    sim.faults.add(Fault.fail("VM.clone", "HOST_OFFLINE"))
    with pytest.raises(XenAPI.Failure) as failed:
        session.xenapi.Async.VM.clone(template, "never")
    assert failed.value.details == ["HOST_OFFLINE"]


def test_the_star_pattern_matches_every_method(sim: Simulator, session: Any) -> None:
    fault = sim.faults.add(Fault.fail("*", "HOST_OFFLINE"))
    for call in (session.xenapi.VM.get_all, session.xenapi.SR.get_all):
        with pytest.raises(XenAPI.Failure):
            call()
    assert fault.hits == 2


def test_a_fault_counts_only_the_calls_of_its_method(sim: Simulator, session: Any) -> None:
    fault = sim.faults.add(Fault.fail("VM.start", "HOST_OFFLINE"))
    session.xenapi.VM.get_all()
    session.xenapi.host.get_all()
    assert (fault.calls, fault.hits) == (0, 0)


def test_when_two_faults_are_due_the_earlier_one_acts(sim: Simulator, session: Any) -> None:
    first = sim.faults.add(Fault.fail("VM.get_all", "FIRST"))
    second = sim.faults.add(Fault.fail("*", "SECOND"))
    with pytest.raises(XenAPI.Failure) as failed:
        session.xenapi.VM.get_all()
    assert failed.value.details == ["FIRST"]
    assert (first.hits, second.hits, second.calls) == (1, 0, 1)


def test_latency_adds_to_another_fault_on_the_same_call(sim: Simulator, session: Any) -> None:
    slow = sim.faults.add(Fault.latency("VM.get_all", 0.2))
    sim.faults.add(Fault.fail("VM.get_all", "HOST_OFFLINE"))
    started = time.monotonic()
    with pytest.raises(XenAPI.Failure):
        session.xenapi.VM.get_all()
    assert time.monotonic() - started >= 0.2
    assert slow.hits == 1


def test_a_removed_fault_stops_acting(sim: Simulator, session: Any) -> None:
    fault = sim.faults.add(Fault.fail("VM.get_all", "HOST_OFFLINE"))
    sim.faults.remove(fault.id)
    assert session.xenapi.VM.get_all()
    assert sim.faults.list() == []


def test_an_unknown_method_pattern_is_refused_naming_it(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="VM.fly"):
        sim.faults.add(Fault.fail("VM.fly", "X"))


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"action": "fail", "error": ["X"], "when": 2}, "'when'"),
        ({"action": "explode"}, "explode"),
        ({"action": "fail", "error": ["X"], "nth": 1, "times": 2}, "not both"),
        ({"action": "fail", "error": []}, "'error'"),
        ({"action": "latency", "seconds": -1}, "'seconds'"),
        ({"action": "http_status", "status": 200}, "'status'"),
        ({"action": "drop_before", "nth": 0}, "'nth'"),
        ({"method": "VM.start"}, "'action'"),
        ({"action": "fail", "error": ["X"], "status": 503}, "'status' goes with"),
    ],
)
def test_a_bad_fault_spec_is_refused_naming_what_is_wrong(spec: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Fault.from_json(spec)


def test_assert_all_hit_names_the_faults_not_hit(sim: Simulator, session: Any) -> None:
    sim.faults.add(Fault.fail("VM.get_all", "HOST_OFFLINE", nth=1))
    sim.faults.add(Fault.fail("VM.start", "HOST_OFFLINE"))
    with pytest.raises(XenAPI.Failure):
        session.xenapi.VM.get_all()
    with pytest.raises(AssertionError, match=r"fault #2 .*VM\.start") as short:
        sim.faults.assert_all_hit()
    assert "#1" not in str(short.value)


def test_assert_all_hit_wants_every_call_that_times_asked_for(
    sim: Simulator, session: Any
) -> None:
    sim.faults.add(Fault.fail("VM.get_all", "HOST_OFFLINE", times=2))
    with pytest.raises(XenAPI.Failure):
        session.xenapi.VM.get_all()
    with pytest.raises(AssertionError, match="1 hit"):
        sim.faults.assert_all_hit()
    with pytest.raises(XenAPI.Failure):
        session.xenapi.VM.get_all()
    sim.faults.assert_all_hit()


# --------------------------------------------------------------------------- control API over HTTP


def test_control_api_adds_a_fault_and_lists_it_with_its_hits(
    sim: Simulator, session: Any
) -> None:
    status, added = control(
        sim.url, "POST", "/faults",
        {"method": "VM.get_all", "action": "fail", "error": ["HOST_OFFLINE"], "nth": 1},
    )
    with pytest.raises(XenAPI.Failure):
        session.xenapi.VM.get_all()
    listed = control(sim.url, "GET", "/faults")
    assert status == 200
    assert listed == (200, {"faults": [dict(added["fault"], calls=1, hits=1)]})


def test_control_api_deletes_every_fault(sim: Simulator, session: Any) -> None:
    control(sim.url, "POST", "/faults", {"method": "*", "action": "fail", "error": ["X"]})
    status, removed = control(sim.url, "DELETE", "/faults")
    assert status == 200 and len(removed["removed"]) == 1
    assert session.xenapi.VM.get_all()


def test_control_api_deletes_one_fault_by_id(sim: Simulator) -> None:
    _, added = control(sim.url, "POST", "/faults", {"action": "drop_before"})
    fault_id = added["fault"]["id"]
    assert control(sim.url, "DELETE", f"/faults/{fault_id}")[0] == 200
    assert control(sim.url, "DELETE", f"/faults/{fault_id}")[0] == 404


def test_control_api_refuses_a_bad_fault_with_400_naming_the_problem(sim: Simulator) -> None:
    status, reply = control(sim.url, "POST", "/faults", {"action": "fail", "error": "X"})
    assert status == 400
    assert "'error'" in reply["error"]


def test_control_api_refuses_a_body_that_is_not_json(sim: Simulator) -> None:
    conn = connect(sim.url)
    conn.request("POST", "/_simulator/faults", "{nope", {"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 400
    assert "not JSON" in json.loads(response.read())["error"]
    conn.close()


def test_control_api_is_not_served_by_a_pool_member(sim: Simulator) -> None:
    status, reply = control(sim.urls[1], "GET", "/faults")
    assert status == 404
    assert "master" in reply["error"]


def test_control_api_is_served_on_the_unix_socket(sim: Simulator) -> None:
    assert sim.unix_path is not None
    assert control(sim.unix_path, "GET", "/faults") == (200, {"faults": []})


def test_control_api_answers_404_for_an_unknown_route(sim: Simulator) -> None:
    status, reply = control(sim.url, "POST", "/reboot")
    assert status == 404
    assert "/_simulator/reboot" in reply["error"]


def test_control_api_lists_the_hosts(sim: Simulator) -> None:
    status, reply = control(sim.url, "GET", "/hosts")
    assert status == 200
    assert [(h["index"], h["address"], h["master"], h["reachable"]) for h in reply["hosts"]] == [
        (0, "127.0.0.1", True, True), (1, "127.0.0.2", False, True)]


# --------------------------------------------------------------------------- sessions


def test_an_expired_session_gets_session_invalid(sim: Simulator, session: Any) -> None:
    ref = session._session
    sim.expire_session(ref)
    reply = raw_call(sim.url, "VM.get_all", ref)
    assert reply["ErrorDescription"] == ["SESSION_INVALID", ref]


def test_the_sdk_logs_in_again_after_its_session_expired(sim: Simulator, session: Any) -> None:
    before = session._session
    sim.expire_session(before)
    assert session.xenapi.VM.get_all()
    assert session._session != before


def test_control_api_expires_every_session(sim: Simulator, login: Callable[[str], Any]) -> None:
    sessions = [login(sim.url)._session for _ in range(2)]
    status, reply = control(sim.url, "POST", "/sessions/expire", {})
    assert status == 200 and sorted(reply["expired"]) == sorted(sessions)
    assert raw_call(sim.url, "VM.get_all", sessions[0])["ErrorDescription"][0] == "SESSION_INVALID"


def test_control_api_expires_one_session(sim: Simulator, login: Callable[[str], Any]) -> None:
    kept, expired = login(sim.url)._session, login(sim.url)._session
    assert control(sim.url, "POST", "/sessions/expire", {"session": expired})[0] == 200
    assert raw_call(sim.url, "VM.get_all", kept)["Status"] == "Success"


def test_expiring_an_unknown_session_is_refused(sim: Simulator) -> None:
    with pytest.raises(ControlError, match="no session"):
        sim.expire_session("OpaqueRef:nobody")


# --------------------------------------------------------------------------- the master


def test_after_a_master_move_the_old_master_answers_host_is_slave(sim: Simulator) -> None:
    sim.move_master(1)
    reply = raw_call(sim.urls[0], "session.login_with_password", "root", "xenroot")
    assert reply["ErrorDescription"] == ["HOST_IS_SLAVE", "127.0.0.2"]


def test_control_api_moves_the_master_and_clients_log_in_to_the_new_one(
    sim: Simulator, login: Callable[[str], Any]
) -> None:
    status, reply = control(sim.url, "POST", "/master", {"host_index": 1})
    assert (status, reply["address"]) == (200, "127.0.0.2")
    assert login(sim.urls[1]).xenapi.host.get_all()


def test_the_control_api_follows_the_master(sim: Simulator) -> None:
    sim.move_master(1)
    assert control(sim.urls[1], "GET", "/faults")[0] == 200
    assert control(sim.urls[0], "GET", "/faults")[0] == 404


def test_moving_the_master_to_a_host_that_does_not_exist_is_refused(sim: Simulator) -> None:
    status, reply = control(sim.url, "POST", "/master", {"host_index": 5})
    assert status == 404
    assert "0 to 1" in reply["error"]


# --------------------------------------------------------------------------- reachability


def test_an_unreachable_host_refuses_connections(sim: Simulator) -> None:
    sim.set_host_reachable(1, False)
    with pytest.raises(ConnectionRefusedError):
        raw_call(sim.urls[1], "system.listMethods")
    assert raw_call(sim.urls[0], "system.listMethods")["Status"] == "Success"


def test_an_unreachable_host_cuts_its_open_connections(sim: Simulator) -> None:
    conn = connect(sim.urls[1])
    body = xmlrpc.client.dumps((), "system.listMethods")
    conn.request("POST", "/", body)
    conn.getresponse().read()
    sim.set_host_reachable(1, False)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        conn.request("POST", "/", body)
        conn.getresponse().read()
    conn.close()


def test_a_host_reachable_again_serves_on_the_same_address_and_port(sim: Simulator) -> None:
    sim.set_host_reachable(1, False)
    sim.set_host_reachable(1, True)
    assert raw_call(sim.urls[1], "system.listMethods")["Status"] == "Success"


def test_control_api_makes_a_member_unreachable_and_reachable(sim: Simulator) -> None:
    status, reply = control(sim.url, "POST", "/hosts/1/unreachable")
    assert (status, reply["host"]["reachable"]) == (200, False)
    with pytest.raises(ConnectionRefusedError):
        raw_call(sim.urls[1], "system.listMethods")
    assert control(sim.url, "POST", "/hosts/1/reachable")[0] == 200
    assert raw_call(sim.urls[1], "system.listMethods")["Status"] == "Success"


def test_the_master_made_unreachable_over_http_still_answers_that_request(
    sim: Simulator,
) -> None:
    status, reply = control(sim.url, "POST", "/hosts/0/unreachable")
    assert (status, reply["host"]["master"]) == (200, True)
    with pytest.raises(ConnectionRefusedError):
        raw_call(sim.url, "system.listMethods")


# --------------------------------------------------------------------------- restart


def test_restart_keeps_the_port_and_the_pool(
    sim: Simulator, session: Any, login: Callable[[str], Any]
) -> None:
    template = session.xenapi.VM.get_by_name_label("Debian Bookworm 12")[0]
    vm = session.xenapi.VM.clone(template, "kept")
    port = sim.port
    sim.restart()
    assert sim.port == port
    assert login(sim.url).xenapi.VM.get_by_name_label("kept") == [vm]


def test_a_logged_in_sdk_session_carries_on_after_a_restart(
    sim: Simulator, session: Any
) -> None:
    session.xenapi.VM.get_all()  # a kept-alive connection, which the restart cuts
    sim.restart()
    assert session.xenapi.host.get_all()


def test_sessions_do_not_survive_a_restart(sim: Simulator, session: Any) -> None:
    ref = session._session
    sim.restart()
    assert raw_call(sim.url, "VM.get_all", ref)["ErrorDescription"] == ["SESSION_INVALID", ref]


def test_tasks_do_not_survive_a_restart(sim: Simulator, session: Any) -> None:
    task = session.xenapi.task.create("before the restart", "")
    sim.restart()
    with pytest.raises(XenAPI.Failure) as gone:
        session.xenapi.task.get_status(task)
    assert gone.value.details == ["HANDLE_INVALID", "task", task]


def test_restart_cuts_a_call_in_progress(sim: Simulator, session: Any) -> None:
    token = session.xenapi.event_from(["vm"], "", 0.0)["token"]
    arrived = sim.faults.add(Fault.latency("event.from", 0.001))  # counts the call's arrival
    outcome: list[BaseException | dict[str, Any]] = []

    def long_poll() -> None:
        try:
            outcome.append(raw_call(sim.url, "event.from", session._session, ["vm"], token, 30.0))
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test looks at
            outcome.append(exc)

    poller = threading.Thread(target=long_poll)
    poller.start()
    wait_for(lambda: arrived.calls == 1, "the event.from call")
    sim.restart()
    poller.join(timeout=WAIT)
    assert not poller.is_alive()
    assert isinstance(outcome[0], ConnectionError)


def test_control_api_restart_answers_once_the_simulator_serves_again(
    sim: Simulator, session: Any
) -> None:
    status, reply = control(sim.url, "POST", "/restart")
    assert (status, reply["port"]) == (200, sim.port)
    assert session.xenapi.VM.get_all()


def test_a_restart_asked_on_the_unix_socket_serves_it_again(sim: Simulator) -> None:
    assert sim.unix_path is not None
    assert control(sim.unix_path, "POST", "/restart")[0] == 200
    reply = raw_call(sim.unix_path, "session.login_with_password", "root", "")
    assert reply["Status"] == "Success"


def test_an_unreachable_host_stays_unreachable_across_a_restart(sim: Simulator) -> None:
    sim.set_host_reachable(1, False)
    sim.restart()
    with pytest.raises(ConnectionRefusedError):
        raw_call(sim.urls[1], "system.listMethods")


def test_faults_survive_a_restart(sim: Simulator, session: Any) -> None:
    sim.faults.add(Fault.fail("VM.get_all", "HOST_OFFLINE"))
    sim.restart()
    with pytest.raises(XenAPI.Failure):
        session.xenapi.VM.get_all()
