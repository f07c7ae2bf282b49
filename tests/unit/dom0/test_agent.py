"""agent plugin: requests to the guest agent through xenstore, with timeouts and reboot detection.

The xenstore-* commands are faked at dom0lib.commands.spawn by an in-memory tree; a fake
guest agent answers requests as they are written. The poll loop runs on a fake clock:
agent.sleep advances agent.clock, so no test waits in real time.

Plugin files are imported in-process with a stand-in XenAPIPlugin (stubs/XenAPIPlugin.py)
put into sys.modules only while they load (see harness.py); XenAPI is the official SDK.
"""

import base64
import json

import pytest

from . import harness

CODES = harness.dom0lib().errors
agent = harness.load_plugin("agent")
HOST = "/local/domain/5/data/host/"
GUEST = "/local/domain/5/data/guest/"


class FakeGuestAgent:
    """Answers each request written under data/host/ as the agent does: it removes the
    request and writes its reply under data/guest/ with the same id."""

    def __init__(self, tree, commands, features="file_inject,resetnetwork", answer=True):
        self.tree = tree
        self.features = features
        self.answer = answer
        self.requests = []
        commands.on("xenstore-write", handler=self._write)

    def _write(self, argv, text):
        result = self.tree.command(argv)
        path, value = argv[-2], argv[-1]
        if path.startswith(HOST):
            request_id = path[len(HOST):]
            request = json.loads(value)
            self.requests.append(request)
            reply = self.reply_to(request)
            if reply is not None:
                # A real agent takes the request away and answers beside it.
                self.tree.remove(path)
                self.tree.write(GUEST + request_id, reply)
        return result

    def reply_to(self, request):
        if not self.answer:
            return None
        if request["name"] == "features":
            if self.features is None:
                return json.dumps({"returncode": "404", "message": "unknown command"})
            return json.dumps({"returncode": "0", "message": self.features})
        return json.dumps({"returncode": "0", "message": "did " + request["name"]})


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(agent, "clock", lambda: now[0])
    monkeypatch.setattr(agent, "sleep", sleep)
    return sleeps


@pytest.fixture
def guest(xenstore_tree, commands, clock):
    return FakeGuestAgent(xenstore_tree, commands)


def _call(function, **kwargs):
    kwargs.setdefault("id", "req-1")
    kwargs.setdefault("dom_id", 5)
    return harness.call("agent", function, **kwargs)


def test_version_returns_the_agents_decoded_answer(guest):
    assert _call("version") == {"returncode": "0", "message": "did version"}
    assert guest.requests == [{"name": "version", "value": "agent"}]


def test_answered_request_leaves_no_answer_node_behind(guest, xenstore_tree):
    _call("version")
    assert GUEST + "req-1" not in xenstore_tree.nodes


def test_arguments_can_be_given_in_0_3_4_order(guest):
    assert harness.call("agent", "version", "req-2", "5", 10)["message"] == "did version"


def test_key_init_sends_the_public_key(guest):
    _call("key_init", pub="1234567890")
    assert guest.requests == [{"name": "keyinit", "value": "1234567890"}]


def test_password_sends_the_encrypted_password(guest):
    _call("password", enc_pass="U2FsdGVkX1+abc/def=\n")
    assert guest.requests == [{"name": "password", "value": "U2FsdGVkX1+abc/def=\n"}]


def test_resetnetwork_sends_an_empty_value(guest):
    _call("resetnetwork")
    assert guest.requests == [{"name": "resetnetwork", "value": ""}]


def test_agentupdate_sends_url_and_md5sum(guest):
    _call("agentupdate", url="https://example.com/agent.tgz", md5sum="0" * 32)
    assert guest.requests == [{"name": "agentupdate",
                               "value": "https://example.com/agent.tgz," + "0" * 32}]


def test_agentupdate_refuses_a_url_with_a_comma(guest, failure, commands):
    with pytest.raises(failure) as info:
        _call("agentupdate", url="https://example.com/a,b", md5sum="0" * 32)
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "agent.agentupdate", "url"]
    assert commands.calls == []


def test_inject_file_sends_path_and_contents_to_file_inject_agents(guest):
    b64_path = base64.b64encode(b"/etc/motd").decode()
    b64_contents = base64.b64encode(b"hello").decode()
    _call("inject_file", b64_path=b64_path, b64_contents=b64_contents)
    assert guest.requests[1] == {"name": "file_inject",
                                 "value": {"b64_path": b64_path, "b64_file": b64_contents}}


def test_inject_file_joins_path_and_contents_for_old_injectfile_agents(guest):
    guest.features = "injectfile"
    _call("inject_file", b64_path=base64.b64encode(b"/etc/motd").decode(),
          b64_contents=base64.b64encode(b"hello").decode())
    assert guest.requests[1]["name"] == "injectfile"
    assert base64.b64decode(guest.requests[1]["value"]) == b"/etc/motd,hello"


def test_inject_file_without_the_feature_is_not_supported(guest, failure, xenstore_tree):
    guest.features = None
    with pytest.raises(failure) as info:
        _call("inject_file", b64_path="L2V0Yw==", b64_contents="aGk=")
    assert info.value.params[0] == CODES.NOT_SUPPORTED
    assert [request["name"] for request in guest.requests] == ["features"]
    assert not any(node.startswith(HOST) for node in xenstore_tree.nodes)


def test_inject_file_too_large_for_one_xenstore_message_writes_nothing(guest, failure,
                                                                       xenstore_tree):
    big = base64.b64encode(b"x" * 2200).decode()
    with pytest.raises(failure) as info:
        _call("inject_file", b64_path=big, b64_contents=big)
    assert info.value.params == [CODES.TOO_LARGE, "agent request", "4096 bytes"]
    assert [request["name"] for request in guest.requests] == ["features"]


def test_unanswered_request_times_out_and_is_withdrawn(guest, clock, failure, xenstore_tree):
    guest.answer = False
    with pytest.raises(failure) as info:
        _call("version", timeout=3)
    assert info.value.params[:3] == [CODES.TIMEOUT, "agent answer", "3"]
    assert HOST + "req-1" not in xenstore_tree.nodes
    assert sum(clock) == pytest.approx(3.0) and len(clock) == 6


def test_late_answer_within_the_timeout_is_returned(guest, clock, commands, xenstore_tree):
    guest.answer = False
    original_sleep = agent.sleep

    def sleep_then_answer(seconds):
        original_sleep(seconds)
        if len(clock) == 4:
            xenstore_tree.write(GUEST + "req-1", '{"returncode": "0", "message": "late"}')

    agent.sleep = sleep_then_answer
    assert _call("version", timeout=30)["message"] == "late"


def test_domain_that_disappears_while_waiting_is_reboot_detected(guest, clock, failure,
                                                                 xenstore_tree):
    guest.answer = False
    original_sleep = agent.sleep

    def sleep_through_reboot(seconds):
        original_sleep(seconds)
        xenstore_tree.remove("/local/domain/5/name")

    agent.sleep = sleep_through_reboot
    with pytest.raises(failure) as info:
        _call("version", timeout=30)
    assert info.value.params[:2] == [CODES.REBOOT_DETECTED, "5"]
    assert len(clock) == 1


# -- the text markers Nova classifies agent failures by (0.3.4's, kept beside the codes) ----

def test_a_timeout_ends_with_the_timeout_marker_nova_looks_for(guest, clock, failure):
    guest.answer = False
    with pytest.raises(failure) as info:
        _call("version", timeout=3)
    assert info.value.params[0] == CODES.TIMEOUT
    assert harness.nova_marker(info.value.params).startswith("TIMEOUT: ")
    assert "3 seconds" in info.value.params[-1]


def test_a_reboot_ends_with_the_reboot_marker_nova_looks_for(guest, clock, failure,
                                                            xenstore_tree):
    guest.answer = False
    original_sleep = agent.sleep

    def sleep_through_reboot(seconds):
        original_sleep(seconds)
        xenstore_tree.remove("/local/domain/5/name")

    agent.sleep = sleep_through_reboot
    with pytest.raises(failure) as info:
        _call("key_init", pub="123")
    assert info.value.params[0] == CODES.REBOOT_DETECTED
    assert harness.nova_marker(info.value.params).startswith("REBOOT: ")


def test_no_file_injection_ends_with_the_not_implemented_marker(guest, failure):
    guest.features = None
    with pytest.raises(failure) as info:
        _call("inject_file", b64_path="L2V0Yw==", b64_contents="aGk=")
    assert info.value.params[0] == CODES.NOT_SUPPORTED
    assert harness.nova_marker(info.value.params).startswith("NOT IMPLEMENTED: ")


def test_other_agent_failures_carry_no_marker(guest, failure):
    guest.reply_to = lambda request: "OK, done"
    with pytest.raises(failure) as info:
        _call("version")
    marker = harness.nova_marker(info.value.params)
    assert not any(word in marker for word in ("TIMEOUT:", "REBOOT:", "NOT IMPLEMENTED:"))


# -- os-xenapi 0.3.4's plain arguments (Nova's host_agent calls) ------------------------------

def _plain(function, **args):
    args.setdefault("id", "req-1")
    args.setdefault("dom_id", "5")
    args.setdefault("timeout", "30")
    return harness.call_plain("agent", function, args)


@pytest.mark.parametrize("function,args,request_sent", [
    ("version", {}, {"name": "version", "value": "agent"}),
    ("key_init", {"pub": "4711"}, {"name": "keyinit", "value": "4711"}),
    ("password", {"enc_pass": "U2FsdGVk\n"}, {"name": "password", "value": "U2FsdGVk\n"}),
    ("resetnetwork", {}, {"name": "resetnetwork", "value": ""}),
    ("agentupdate", {"url": "http://u/a.tgz", "md5sum": "a" * 32},
     {"name": "agentupdate", "value": "http://u/a.tgz," + "a" * 32}),
], ids=["version", "key_init", "password", "resetnetwork", "agentupdate"])
def test_plain_arguments_send_the_request_and_answer_the_agents_json_text(
        guest, function, args, request_sent):
    text = _plain(function, **args)
    assert isinstance(text, str)
    assert json.loads(text) == {"returncode": "0", "message": "did " + request_sent["name"]}
    assert guest.requests == [request_sent]


def test_plain_inject_file_answers_json_text(guest):
    text = _plain("inject_file", b64_path="L2V0Yy9tb3Rk", b64_contents="aGk=")
    assert json.loads(text)["message"] == "did file_inject"


def test_plain_timeout_is_optional_as_in_0_3_4(guest, clock):
    assert json.loads(harness.call_plain("agent", "version", {"id": "r", "dom_id": "5"}))
    assert clock == []


def test_plain_arguments_are_checked_like_json_ones(guest, commands, failure):
    with pytest.raises(failure) as info:
        _plain("key_init", pub="1; reboot")
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "agent.key_init", "pub"]
    assert commands.calls == []


def test_plain_timeout_keeps_the_marker(guest, clock, failure):
    guest.answer = False
    with pytest.raises(failure) as info:
        _plain("version", timeout="2")
    assert info.value.params[0] == CODES.TIMEOUT
    assert harness.nova_marker(info.value.params).startswith("TIMEOUT: ")


def test_answer_that_is_not_json_is_bad_data(guest, failure):
    guest.reply_to = lambda request: "OK, done"
    with pytest.raises(failure) as info:
        _call("version")
    assert info.value.params == [CODES.BAD_DATA, "agent answer", "not JSON"]


@pytest.mark.parametrize("request_id", ["../../0/data", "a/b", "", "x" * 65, "id; rm -rf /",
                                        "$(reboot)", "line\nbreak"])
def test_request_id_that_is_not_a_plain_name_is_refused(guest, commands, failure, request_id):
    with pytest.raises(failure) as info:
        _call("version", id=request_id)
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "agent.version", "id"]
    assert commands.calls == []


def test_timeout_out_of_range_is_refused(guest, commands, failure):
    with pytest.raises(failure) as info:
        _call("version", timeout=86400)
    assert info.value.params[2:] == ["timeout", "must be between 1 and 3600, got 86400"]
    assert commands.calls == []
