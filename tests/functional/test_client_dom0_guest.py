"""The client's guest-facing plugin calls (host_xenstore, host_agent) end to end: XenAPISession
against a simulator that runs os-xenapi's own dom0 plugins, on a running VM's xenstore home."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from os_xenapi.client import exception, host_agent, host_xenstore
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.guest_agent import DEFAULT_FEATURES
from os_xenapi.simulator.plugins import dom0_of

ORIGINATOR = "dom0-guest-tests"
REQUEST = "6d6e0d2c-5b1e-4a43-9d59-2f4c8c1f0a11"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    root = tmp_path_factory.mktemp("dom0")
    with Simulator(vms=1, auth_failure_delay=0, dom0_root=root) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def vm(session: XenAPISession) -> str:
    """The pool's one VM."""
    return next(ref for ref, rec in session.call_xenapi("VM.get_all_records").items()
                if not rec["is_a_template"] and not rec["is_control_domain"])


@pytest.fixture(scope="module")
def domid(session: XenAPISession, vm: str) -> Iterator[int]:
    """The domid of the pool's one VM, started for these tests and stopped after them."""
    session.call_xenapi("VM.start", vm, False, False)
    yield int(session.call_xenapi("VM.get_domid", vm))
    session.call_xenapi("VM.hard_shutdown", vm)


def server_read(sim: Simulator, path: str) -> str | None:
    """What the simulated xenstore of the master holds at ``path``, read on the server side."""
    def read(xapi: Any) -> str | None:
        store = dom0_of(xapi).xenstore
        host = xapi.master
        return store.read(host, path) if store.exists(host, path) else None
    return sim.run(read)


# ----------------------------------------------------------------------------- host_xenstore


def test_write_record_returns_the_value_as_json_text_and_stores_it_as_given(
    sim: Simulator, session: XenAPISession, domid: int,
) -> None:
    assert host_xenstore.write_record(session, domid, "data/greeting", "hello") == '"hello"'
    assert server_read(sim, f"/local/domain/{domid}/data/greeting") == "hello"


def test_write_record_of_a_json_value_returns_it_unchanged(sim: Simulator,
                                                           session: XenAPISession,
                                                           domid: int) -> None:
    value = '{"name": "resetnetwork", "value": ""}'
    assert host_xenstore.write_record(session, domid, "data/json", value) == value
    assert server_read(sim, f"/local/domain/{domid}/data/json") == value


def test_read_record_returns_a_stored_json_value_as_stored(session: XenAPISession,
                                                           domid: int) -> None:
    host_xenstore.write_record(session, domid, "data/answer", '{"x": 1}')
    assert host_xenstore.read_record(session, domid, "data/answer") == '{"x": 1}'


@pytest.mark.parametrize(("stored", "read"), [
    ("web-1", '"web-1"'), ("1.0.0", '"1.0.0"'), ("42", "42"), ("true", "true"),
    ("  padded  ", '"padded"'), ("", '""'), ('"quoted"', '"quoted"'), ("ünï", '"\\u00fcn\\u00ef"'),
])
def test_read_record_gives_json_text_as_0_3_4_did(sim: Simulator, session: XenAPISession,
                                                  domid: int, stored: str, read: str) -> None:
    sim.run(lambda xapi: dom0_of(xapi).xenstore.write(
        xapi.master, f"/local/domain/{domid}/data/typed", stored))
    answer = host_xenstore.read_record(session, domid, "data/typed")
    assert answer == read and json.loads(answer) == json.loads(read)


def test_read_record_of_a_missing_path_is_quoted_none_when_ignored(session: XenAPISession,
                                                                  domid: int) -> None:
    # Nova's _pv_driver_version_reported compares the answer with '"None"'
    assert host_xenstore.read_record(session, domid, "data/never-written") == '"None"'


def test_read_record_of_a_missing_path_is_not_found_unless_ignored(
    session: XenAPISession, domid: int,
) -> None:
    with pytest.raises(exception.PluginNotFound):
        host_xenstore.read_record(session, domid, "data/never-written",
                                  ignore_missing_path=False)


def test_delete_record_removes_the_path_and_answers_an_empty_json_string(
    sim: Simulator, session: XenAPISession, domid: int,
) -> None:
    host_xenstore.write_record(session, domid, "data/doomed", "x")
    assert host_xenstore.delete_record(session, domid, "data/doomed") == '""'
    assert server_read(sim, f"/local/domain/{domid}/data/doomed") is None
    assert host_xenstore.delete_record(session, domid, "data/doomed") == '""'  # already gone


def test_list_records_returns_the_tree_below_a_path(session: XenAPISession, domid: int) -> None:
    host_xenstore.write_record(session, domid, "data/tree/a", "1")
    host_xenstore.write_record(session, domid, "data/tree/b/c", "2")
    assert host_xenstore.list_records(session, domid, "data/tree") == {
        "a": "1", "b": "", "b/c": "2"}


@pytest.mark.parametrize("path", ["../0/name", "/local/domain/0/name", "data/../../0",
                                  "data/$(reboot)", "data;rm -rf /", ""])
def test_hostile_xenstore_path_is_an_invalid_argument_naming_path(
    sim: Simulator, session: XenAPISession, domid: int, path: str,
) -> None:
    before = server_read(sim, "/local/domain/0/name")
    with pytest.raises(exception.PluginInvalidArgument) as info:
        host_xenstore.write_record(session, domid, path, "pwned")
    assert info.value.argument == "path"
    assert server_read(sim, "/local/domain/0/name") == before


@pytest.mark.parametrize("dom_id", [0, -1, 40000, "1; reboot", None])
def test_dom0_or_bad_dom_id_is_an_invalid_argument_naming_dom_id(
    session: XenAPISession, dom_id: Any,
) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        host_xenstore.read_record(session, dom_id, "name")
    assert info.value.argument == "dom_id"


def test_non_string_value_is_an_invalid_argument_naming_value(session: XenAPISession,
                                                              domid: int) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        host_xenstore.write_record(session, domid, "data/x", {"not": "a string"})  # type: ignore[arg-type]
    assert info.value.argument == "value"


# -------------------------------------------------------------------------------- host_agent


# The simulator's guest agent (os_xenapi.simulator.guest_agent) answers in every running guest.


@pytest.fixture
def agent(sim: Simulator, vm: str, domid: int) -> Iterator[str]:
    """The VM's agent as the simulator starts it, set back that way after each test."""
    yield vm
    sim.set_guest_agent(vm, mode="answer", features=list(DEFAULT_FEATURES))


def test_agent_version_returns_the_agents_answer_as_json_text(sim: Simulator,
                                                              session: XenAPISession,
                                                              agent: str, domid: int) -> None:
    answer = host_agent.version(session, REQUEST, domid, 10)
    assert isinstance(answer, str)  # Nova's _call_agent json.loads it
    assert json.loads(answer) == {"returncode": "0", "message": sim.guest_agent(agent).version}
    assert sim.guest_agent(agent).requests[-1] == {"name": "version", "value": "agent"}


@pytest.mark.parametrize(("call", "extra", "request_name"), [
    (host_agent.key_init, {"pub": "1234567890"}, "keyinit"),
    (host_agent.agent_update, {"url": "http://agents.example/a.tgz",
                               "md5sum": "d41d8cd98f00b204e9800998ecf8427e"}, "agentupdate"),
    (host_agent.password, {"enc_pass": "c2VjcmV0"}, "password"),
    (host_agent.inject_file, {"b64_path": "L2V0Yy9tb3Rk", "b64_contents": "aGk="}, "file_inject"),
    (host_agent.reset_network, {}, "resetnetwork"),
])
def test_every_agent_call_returns_the_answer_as_json_text(
    sim: Simulator, session: XenAPISession, agent: str, domid: int, call: Any,
    extra: dict[str, str], request_name: str,
) -> None:
    answer = call(session, REQUEST, domid, "10", **extra)  # Nova passes strings
    assert isinstance(answer, str)
    assert sorted(json.loads(answer)) == ["message", "returncode"]
    assert sim.guest_agent(agent).requests[-1]["name"] == request_name


def test_agent_answer_is_removed_from_xenstore(sim: Simulator, session: XenAPISession,
                                               agent: str, domid: int) -> None:
    host_agent.reset_network(session, REQUEST, domid, 10)
    assert server_read(sim, f"/local/domain/{domid}/data/guest/{REQUEST}") is None


def test_agent_key_init_sends_the_public_key(sim: Simulator, session: XenAPISession,
                                             agent: str, domid: int) -> None:
    answer = json.loads(host_agent.key_init(session, REQUEST, domid, 10,
                                            pub="12345678901234567890"))
    assert sim.guest_agent(agent).requests[-1] == {"name": "keyinit",
                                                   "value": "12345678901234567890"}
    assert answer["returncode"] == "D0" and answer["message"].isdigit()


def test_agent_inject_file_asks_features_then_sends_path_and_contents(
    sim: Simulator, session: XenAPISession, agent: str, domid: int,
) -> None:
    host_agent.inject_file(session, REQUEST, domid, 10, b64_path="L2V0Yy9tb3Rk",
                           b64_contents="aGk=")
    requests = sim.guest_agent(agent).requests[-2:]
    assert [r["name"] for r in requests] == ["features", "file_inject"]
    assert requests[1]["value"] == {"b64_path": "L2V0Yy9tb3Rk", "b64_file": "aGk="}
    assert sim.guest_agent(agent).files["/etc/motd"] == b"hi"


def test_agent_without_file_injection_is_not_supported(sim: Simulator, session: XenAPISession,
                                                       agent: str, domid: int) -> None:
    sim.set_guest_agent(agent, features=["features", "password"])
    with pytest.raises(exception.Dom0PluginError) as info:
        host_agent.inject_file(session, REQUEST, domid, 10, b64_path="eA==", b64_contents="eA==")
    assert info.value.code == "OS_XENAPI_NOT_SUPPORTED"


def test_agent_that_never_answers_times_out_as_a_retryable_typed_error(
    sim: Simulator, session: XenAPISession, agent: str, domid: int,
) -> None:
    sim.set_guest_agent(agent, mode="silent")
    with pytest.raises(exception.Dom0PluginError) as info:
        host_agent.version(session, REQUEST, domid, 1)
    assert (info.value.code, info.value.retryable) == ("OS_XENAPI_TIMEOUT", True)
    assert server_read(sim, f"/local/domain/{domid}/data/host/{REQUEST}") is None


def test_agent_update_refuses_a_non_http_url_naming_url(session: XenAPISession,
                                                        domid: int) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        host_agent.agent_update(session, REQUEST, domid, 5, url="file:///etc/shadow",
                                md5sum="d41d8cd98f00b204e9800998ecf8427e")
    assert info.value.argument == "url"


def test_agent_request_id_with_a_path_is_an_invalid_argument_naming_id(
    session: XenAPISession, domid: int,
) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        host_agent.password(session, "../../0/x", domid, 5, enc_pass="abc")
    assert info.value.argument == "id"
