"""xenhost.host_join: Nova's pool code adds a host to the pool through the master's plugin.

The plugin logs in to the joining host, shuts its compute VM down, calls pool.join there and
starts the compute VM again. The simulator has no pool.join, so the joining host's XAPI is a
FakeJoiningHost here (the one place no real counterpart can run); this host's own session is
the RecordingXapi of test_xenhost. The join against a second simulator, up to the call the
simulator lacks, is in tests/functional/test_client_dom0_host_join.py. The resume loop runs on
a fake clock.
"""

import logging
import types

import pytest
import XenAPI

from . import harness
from .test_xenhost import RecordingXapi

LIB = harness.dom0lib()
CODES = LIB.errors
COMPUTE_UUID = "6f1c2a54-aaaa-4bbb-8ccc-444455556666"
PASSWORD = "slave-Secret-1"
MASTER_PASS = "master-Secret-2"
# Nova's pool._join_slave, key for key ('force' is jsonutils.dumps of a boolean).
NOVA_ARGS = {"compute_uuid": COMPUTE_UUID, "url": "http://192.0.2.7", "user": "root",
             "password": PASSWORD, "force": "false", "master_addr": "192.0.2.1",
             "master_user": "root", "master_pass": MASTER_PASS}


class FakeJoiningHost:
    """The joining host's XAPI as XenAPI.Session(url) reaches it: records every call; after a
    successful pool.join its XAPI restarts, so every later call fails to connect."""

    def __init__(self):
        self.calls = []
        self.urls = []
        self.restarted = False
        self.fail = {}

    def session(self, url, *args, **kwargs):
        self.urls.append(url)
        return types.SimpleNamespace(xenapi=_Proxy(self, ""))

    def call(self, name, args):
        self.calls.append((name, args))
        if self.restarted:
            raise ConnectionRefusedError(111, "Connection refused")
        if name in self.fail:
            raise self.fail[name]
        if name in ("pool.join", "pool.join_force"):
            self.restarted = True
        if name == "VM.get_by_uuid":
            return "OpaqueRef:compute"
        return ""

    def names(self):
        return [name for name, _ in self.calls]


class _Proxy:
    def __init__(self, host, prefix):
        self._host, self._prefix = host, prefix

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Proxy(self._host, self._prefix + "." + name if self._prefix else name)

    def __call__(self, *args):
        return self._host.call(self._prefix, args)


@pytest.fixture
def joining(monkeypatch):
    host = FakeJoiningHost()
    monkeypatch.setattr(LIB.pooljoin.XenAPI, "Session", host.session)
    return host


@pytest.fixture
def pool_clock(monkeypatch):
    now = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(LIB.pooljoin, "clock", lambda: now[0])
    monkeypatch.setattr(LIB.pooljoin, "sleep", sleep)
    return sleeps


def _local(power_state="Halted", answers=None):
    xapi = RecordingXapi(dict({"VM.get_by_uuid": "OpaqueRef:compute-in-pool",
                               "VM.get_power_state": power_state}, **(answers or {})))
    return types.SimpleNamespace(xenapi=xapi), xapi


def _join(session, **changes):
    return harness.call_plain("xenhost", "host_join", dict(NOVA_ARGS, **changes),
                              session=session)


def test_novas_call_joins_the_host_and_starts_its_compute_vm_through_the_pool(joining,
                                                                              pool_clock):
    session, local = _local()
    assert _join(session) == "null"
    assert joining.urls == ["http://192.0.2.7"]
    assert joining.calls[:4] == [
        ("login_with_password", ("root", PASSWORD, "1.0", "os-xenapi host_join")),
        ("VM.get_by_uuid", (COMPUTE_UUID,)),
        ("VM.clean_shutdown", ("OpaqueRef:compute",)),
        ("pool.join", ("192.0.2.1", "root", MASTER_PASS)),
    ]
    assert local.calls[-1] == ("VM.start", ("OpaqueRef:compute-in-pool", False, True))
    assert pool_clock == []


def test_force_uses_pool_join_force(joining, pool_clock):
    session, _ = _local()
    _join(session, force="true")
    assert "pool.join_force" in joining.names() and "pool.join" not in joining.names()


def test_the_json_form_joins_too(joining, pool_clock):
    session, local = _local()
    kwargs = dict(NOVA_ARGS, force=False)
    assert harness.call("xenhost", "host_join", session=session, **kwargs) is None
    assert local.names()[-1] == "VM.start"


def test_a_compute_vm_already_running_in_the_pool_is_left_alone(joining, pool_clock):
    session, local = _local(power_state="Running")
    _join(session)
    assert "VM.start" not in local.names()


def test_a_failed_join_restarts_the_compute_vm_on_the_joining_host_and_passes_the_error(
        joining, pool_clock, failure):
    joining.fail["pool.join"] = XenAPI.Failure(
        ["POOL_JOINING_HOST_MUST_HAVE_SAME_PRODUCT_VERSION"])
    session, local = _local()
    with pytest.raises(failure) as info:
        _join(session)
    assert info.value.params == ["POOL_JOINING_HOST_MUST_HAVE_SAME_PRODUCT_VERSION"]
    assert joining.calls[-2] == ("VM.start", ("OpaqueRef:compute", False, True))
    assert joining.names()[-1] == "session.logout"
    assert local.calls == []


def test_passwords_in_xapis_error_are_hidden(joining, pool_clock, failure):
    joining.fail["pool.join"] = XenAPI.Failure(
        ["POOL_JOINING_HOST_CONNECTION_FAILED", f"login as root/{MASTER_PASS} refused",
         PASSWORD])
    session, _ = _local()
    with pytest.raises(failure) as info:
        _join(session)
    assert info.value.params == ["POOL_JOINING_HOST_CONNECTION_FAILED",
                                 "login as root/(hidden) refused", "(hidden)"]


def test_a_wrong_password_for_the_joining_host_stops_before_anything_changes(joining,
                                                                             failure):
    joining.fail["login_with_password"] = XenAPI.Failure(
        ["SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"])
    session, local = _local()
    with pytest.raises(failure) as info:
        _join(session)
    assert info.value.params == ["SESSION_AUTHENTICATION_FAILED", "root",
                                 "Authentication failure"]
    assert joining.names() == ["login_with_password"]
    assert local.calls == []


def test_an_unreachable_joining_host_is_retryable_and_names_no_address(joining, failure):
    joining.fail["login_with_password"] = ConnectionRefusedError(
        111, "Connection refused to http://root:x@192.0.2.7")
    session, _ = _local()
    with pytest.raises(failure) as info:
        _join(session)
    assert info.value.params == [CODES.RETRYABLE, "joining host",
                                 "cannot reach it (ConnectionRefusedError)"]


def test_a_compute_vm_that_never_comes_back_is_a_cleanup_failure_after_the_wait(
        joining, pool_clock, failure):
    def unknown(uuid):
        raise XenAPI.Failure(["UUID_INVALID", "VM", uuid])

    session, _ = _local(answers={"VM.get_by_uuid": unknown})
    with pytest.raises(failure) as info:
        _join(session)
    assert info.value.params[:3] == [CODES.CLEANUP_FAILED, "compute VM", COMPUTE_UUID]
    assert "UUID_INVALID" in info.value.params[3]
    assert sum(pool_clock) <= LIB.pooljoin.RESUME_SECONDS
    assert len(pool_clock) == int(LIB.pooljoin.RESUME_SECONDS / LIB.pooljoin.RESUME_PAUSE)


def test_the_compute_vm_is_started_once_the_pool_knows_it(joining, pool_clock):
    seen = []

    def appears_later(uuid):
        seen.append(uuid)
        if len(seen) < 3:
            raise XenAPI.Failure(["UUID_INVALID", "VM", uuid])
        return "OpaqueRef:compute-in-pool"

    session, local = _local(answers={"VM.get_by_uuid": appears_later})
    _join(session)
    assert pool_clock == [LIB.pooljoin.RESUME_PAUSE] * 2
    assert local.calls[-1][0] == "VM.start"


def test_no_password_reaches_a_log_line(joining, pool_clock, failure, caplog):
    caplog.set_level(logging.DEBUG)
    session, _ = _local()
    _join(session)
    joining.restarted = False
    joining.fail["pool.join"] = XenAPI.Failure(["POOL_JOINING_HOST_CONNECTION_FAILED",
                                                MASTER_PASS])
    with pytest.raises(failure):
        _join(session)
    assert caplog.records
    assert PASSWORD not in caplog.text and MASTER_PASS not in caplog.text


@pytest.mark.parametrize("changes,argument", [
    ({"url": "http://root:pw@192.0.2.7"}, "url"),
    ({"url": "ftp://192.0.2.7"}, "url"),
    ({"compute_uuid": "not-a-uuid"}, "compute_uuid"),
    ({"master_addr": "-oProxyCommand=x"}, "master_addr"),
    ({"password": "a\nb"}, "password"),
    ({"force": "maybe"}, "force"),
    ({"extra": "1"}, "extra"),
], ids=["userinfo", "scheme", "uuid", "address", "control-character", "force", "unknown-key"])
def test_bad_arguments_are_refused_before_any_call_and_never_echoed(joining, failure, changes,
                                                                    argument):
    session, local = _local()
    with pytest.raises(failure) as info:
        _join(session, **changes)
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "xenhost.host_join", argument]
    assert joining.calls == [] and local.calls == []
    assert "pw" not in info.value.params[3] and "\n" not in info.value.params[3]


def test_a_missing_password_is_refused(joining, failure):
    args = dict(NOVA_ARGS)
    del args["master_pass"]
    with pytest.raises(failure) as info:
        harness.call_plain("xenhost", "host_join", args, session=_local()[0])
    assert info.value.params[2:] == ["master_pass", "is required"]
    assert joining.calls == []

