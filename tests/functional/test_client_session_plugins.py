"""XenAPISession's plugin calls against the simulator running dom0 plugins: os-xenapi's own
(src/os_xenapi/dom0/etc/xapi.d/plugins, the JSON protocol 3.0) and small test plugins written
here, for the plugin API version check, typed errors and retries."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import exception
from os_xenapi.client.plugin_calls import is_retryable_plugin_error, plugin_file
from os_xenapi.client.retry import Retry
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

ORIGINATOR = "plugin-tests"
QUICK = Retry(wait=0.01, backoff=0.0)

VERSION_PLUGIN = '''#!/usr/bin/env python3
import json
import XenAPIPlugin


def get_version(session, args):
    return json.dumps(VERSION)


if __name__ == "__main__":
    XenAPIPlugin.dispatch({"get_version": get_version})
'''

# Fails with OS_XENAPI_BUSY until it has been called 3 times (counted in the file it is given).
FLAKY_PLUGIN = '''#!/usr/bin/env python3
import json
import XenAPIPlugin


def busy_twice(session, args):
    counter = json.loads(args["params"])["args"][0]
    try:
        with open(counter) as stream:
            count = int(stream.read())
    except FileNotFoundError:
        count = 0
    with open(counter, "w") as stream:
        stream.write(str(count + 1))
    if count < 2:
        raise XenAPIPlugin.Failure("OS_XENAPI_BUSY", ["flaky.lock", "5"])
    return json.dumps({"calls": count + 1, "host_uuid": args["host_uuid"]})


def echo(session, args):
    return json.dumps(args, sort_keys=True)


def not_json(session, args):
    return "<not json>"


if __name__ == "__main__":
    XenAPIPlugin.dispatch({"busy_twice": busy_twice, "echo": echo, "not_json": not_json})
'''


def write_plugin(directory: Path, name: str, text: str) -> None:
    path = directory / name
    path.write_text(text)
    os.chmod(path, 0o755)


def server_sessions(sim: Simulator) -> list[str]:
    return sim.run(lambda xapi: [ref for ref, s in xapi.db.all("session").items()
                                 if s["originator"] == ORIGINATOR])


def connect(sim: Simulator, **options: Any) -> XenAPISession:
    options.setdefault("retry", QUICK)
    return XenAPISession(sim.url, sim.username, sim.password, ORIGINATOR, **options)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    """One host running os-xenapi's own dom0 plugins."""
    with Simulator(auth_failure_delay=0, dom0_root=tmp_path / "dom0") as simulator:
        yield simulator


@pytest.fixture
def session(sim: Simulator) -> Iterator[XenAPISession]:
    with connect(sim) as made:
        yield made
    assert server_sessions(sim) == []


@pytest.fixture
def test_plugins(tmp_path: Path) -> Path:
    directory = tmp_path / "plugins"
    directory.mkdir()
    write_plugin(directory, "dom0_plugin_version.py", VERSION_PLUGIN.replace("VERSION", '"3.1"'))
    write_plugin(directory, "flaky.py", FLAKY_PLUGIN)
    return directory


@pytest.fixture
def flaky_sim(test_plugins: Path) -> Iterator[Simulator]:
    with Simulator(auth_failure_delay=0, plugins_dir=test_plugins) as simulator:
        yield simulator


# --------------------------------------------------------------------------- calls and results


def test_connecting_checks_the_plugin_api_version(session: XenAPISession) -> None:
    assert session.plugin_version == "3.0"


def test_serialized_calls_carry_json_both_ways_through_a_dom0_plugin(
    session: XenAPISession,
) -> None:
    value = 'a "quoted" value, ünïcode'
    assert session.call_plugin_serialized("xenstore", "write_record", 7, "data/key",
                                          value) == value
    assert session.call_plugin_serialized("xenstore", "read_record", dom_id=7,
                                          path="data/key") == value
    assert session.call_plugin_serialized("xenstore", "read_record", 7, "data/missing",
                                          ignore_missing_path=True) is None


def test_call_plugin_sends_host_uuid_and_adds_it_to_the_callers_dict(flaky_sim: Simulator) -> None:
    with connect(flaky_sim) as session:
        args = {"key": "value"}
        echoed = json.loads(session.call_plugin("flaky.py", "echo", args))
        assert echoed == {"key": "value", "host_uuid": session.host_uuid}
        assert args == {"key": "value", "host_uuid": session.host_uuid}  # as 0.3.4 did


def test_a_third_party_plugin_name_without_py_reaches_its_py_file(flaky_sim: Simulator) -> None:
    with connect(flaky_sim) as session:
        echoed = json.loads(session.call_plugin("flaky", "echo", {"k": "v"}))
        assert echoed == {"k": "v", "host_uuid": session.host_uuid}


def test_every_plugin_name_without_py_gets_the_suffix() -> None:
    assert plugin_file("xenstore") == "xenstore.py"
    assert plugin_file("xenstore.py") == "xenstore.py"
    assert plugin_file("echo") == "echo.py"
    assert plugin_file("flaky.py") == "flaky.py"
    with pytest.raises(ValueError, match="file name"):
        plugin_file("../xenstore")


def test_plain_plugin_arguments_must_be_strings(session: XenAPISession) -> None:
    with pytest.raises(TypeError, match="'dom_id' is str -> int"):
        session.call_plugin("xenstore", "read_record", {"dom_id": 1})


def test_arguments_json_cannot_carry_are_refused_before_anything_is_sent(
    session: XenAPISession,
) -> None:
    with pytest.raises(TypeError, match="xenstore.write_record: the arguments must be JSON"):
        session.call_plugin_serialized("xenstore", "write_record", 1, "k", object())
    with pytest.raises(ValueError, match="at most 131072"):
        session.call_plugin_serialized("xenstore", "write_record", 1, "k", "x" * 140_000)


def test_a_plugin_answer_that_is_not_json_is_a_clear_error(flaky_sim: Simulator) -> None:
    with connect(flaky_sim) as session:
        with pytest.raises(exception.PluginProtocolError, match="flaky.py.not_json"):
            session.call_plugin_serialized("flaky.py", "not_json")


# --------------------------------------------------------------------------- typed errors


def test_a_missing_xenstore_path_is_a_typed_plugin_not_found(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginNotFound) as missing:
        session.call_plugin_serialized("xenstore", "read_record", 7, "data/nothing")
    assert missing.value.code == "OS_XENAPI_NOT_FOUND"
    assert missing.value.details == ["OS_XENAPI_NOT_FOUND", "xenstore path",
                                     "/local/domain/7/data/nothing"]
    assert isinstance(missing.value, exception.Dom0PluginError)
    assert isinstance(missing.value, exception.Failure)


def test_an_invalid_argument_names_the_function_and_the_argument(
    session: XenAPISession,
) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as invalid:
        session.call_plugin_serialized("xenstore", "read_record", 0, "data/key")
    assert invalid.value.params[:2] == ["xenstore.read_record", "dom_id"]
    assert invalid.value.argument == "dom_id"
    assert not invalid.value.retryable


def test_an_unknown_function_is_typed_too(session: XenAPISession) -> None:
    with pytest.raises(exception.UnknownXenAPIPluginFunction):
        session.call_plugin_serialized("xenstore", "no_such_function")


# --------------------------------------------------------------------------- the version check


def test_plugins_of_another_major_version_are_refused_naming_both(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    write_plugin(old, "dom0_plugin_version.py", VERSION_PLUGIN.replace("VERSION", '"2.1"'))
    with Simulator(auth_failure_delay=0, plugins_dir=old) as sim:
        with pytest.raises(exception.PluginVersionMismatch,
                           match=r"version 2\.1, but this os-xenapi needs version 3\.0"):
            connect(sim)
        assert server_sessions(sim) == []
        with connect(sim, plugin_version_check=False) as unchecked:
            assert unchecked.plugin_version is None


def test_a_dom0_without_the_plugins_is_accepted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with Simulator(auth_failure_delay=0, plugins_dir=empty) as sim:
        with caplog.at_level(logging.WARNING, logger="os_xenapi"):
            with connect(sim) as session:
                assert session.plugin_version is None
                with pytest.raises(exception.XenAPIMissingPlugin):
                    session.call_plugin_serialized("xenstore", "read_record", 1, "x")
        assert "dom0_plugin_version.py is missing" in caplog.text
        assert server_sessions(sim) == []


# --------------------------------------------------------------------------- retries


def test_with_retry_tries_a_busy_plugin_again(flaky_sim: Simulator, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    before: list[dict] = []
    retried: list[BaseException] = []
    with connect(flaky_sim) as session:
        result = session.call_plugin_serialized_with_retry(
            "flaky.py", "busy_twice", 3, lambda kwargs: before.append(dict(kwargs)),
            lambda exc: retried.append(exc), str(counter))
        assert result == {"calls": 3, "host_uuid": session.host_uuid}
    assert len(before) == 3
    assert [type(exc) for exc in retried] == [exception.Dom0PluginError] * 2
    assert retried[0].details == ["OS_XENAPI_BUSY", "flaky.lock", "5"]


def test_with_retry_gives_up_after_num_retries(flaky_sim: Simulator, tmp_path: Path) -> None:
    with connect(flaky_sim) as session:
        with pytest.raises(exception.PluginRetriesExceeded, match="after 1 retries"):
            session.call_plugin_serialized_with_retry(
                "flaky.py", "busy_twice", 1, None, None, str(tmp_path / "counter"))


def test_with_retry_raises_other_errors_at_once(session: XenAPISession) -> None:
    calls: list[dict] = []
    with pytest.raises(exception.PluginInvalidArgument):
        session.call_plugin_serialized_with_retry(
            "xenstore", "read_record", 5, calls.append, None, 0, "x")
    assert len(calls) == 1


def test_what_counts_as_retryable() -> None:
    failure = exception.failure_from_details
    assert is_retryable_plugin_error(failure(["OS_XENAPI_BUSY", "lock", "5"]))
    assert is_retryable_plugin_error(failure(["XENAPI_PLUGIN_FAILURE", "signal: SIGKILL",
                                              "", ""]))
    assert is_retryable_plugin_error(failure(["XENAPI_PLUGIN_FAILURE", "download_vhd2",
                                              "RetryableError", "later"]))
    assert is_retryable_plugin_error(exception.ConnectionLost("reset"))
    assert not is_retryable_plugin_error(exception.TLSError("bad certificate"))
    assert not is_retryable_plugin_error(failure(["OS_XENAPI_NOT_FOUND", "file", "/x"]))


# --------------------------------------------------------------------------- xapi.conf


def test_xsm_sr_check_follows_xapi_conf_and_else_the_platform_version(tmp_path: Path) -> None:
    root = tmp_path / "dom0"
    with Simulator(auth_failure_delay=0, dom0_root=root) as sim:
        with connect(sim) as unset:
            assert unset.is_xsm_sr_check_relaxed() is True  # platform 3.4.0 >= 2.1.0
        (root / "etc").mkdir(parents=True, exist_ok=True)
        (root / "etc" / "xapi.conf").write_text("# settings\nrelax-xsm-sr-check = false\n")
        with connect(sim) as configured:
            assert configured.is_xsm_sr_check_relaxed() is False
        assert server_sessions(sim) == []
