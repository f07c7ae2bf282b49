"""host.call_plugin, through the official XenAPI SDK over real sockets: what the plugin receives,
what XAPI makes of its answer, which file runs, Async calls, cancellation and stop.

The plugins run are those of tests/functional/plugins (``probe.py`` and XAPI's example ``echo``);
what the client sees is what XAPI gives (shared/xapi/PROTOCOL.md section 3, and xen-api's
``xapi_plugins.ml`` and ``xMLRPC.ml``).
"""

from __future__ import annotations

import json
import stat
import time
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import XenAPI

from os_xenapi.simulator import Simulator

PLUGINS = Path(__file__).resolve().parent / "plugins"
PROBE = "probe.py"
GiB = 1024**3


def login(sim: Simulator) -> XenAPI.Session:
    session = XenAPI.Session(sim.url)
    session.xenapi.login_with_password(sim.username, sim.password, "1.0", "plugin-test")
    return session


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(auth_failure_delay=0, plugins_dir=PLUGINS) as sim:
        yield sim


@pytest.fixture(scope="module")
def session(sim: Simulator) -> Iterator[XenAPI.Session]:
    session = login(sim)
    yield session
    session.xenapi.session.logout()


@pytest.fixture(scope="module")
def x(session: XenAPI.Session) -> Any:
    return session.xenapi


@pytest.fixture(scope="module")
def host(x: Any) -> str:
    return x.host.get_all()[0]


def probe(x: Any, on: str, fn: str, **args: str) -> str:
    """``fn`` of probe.py run on host ``on`` with ``args``."""
    return x.host.call_plugin(on, PROBE, fn, args)


def failure(call: Any, *args: Any) -> list[str]:
    with pytest.raises(XenAPI.Failure) as info:
        call(*args)
    return info.value.details


def probe_failure(x: Any, on: str, fn: str, **args: str) -> list[str]:
    return failure(x.host.call_plugin, on, PROBE, fn, args)


def wait_for_task(x: Any, task: str) -> dict[str, Any]:
    """The task's record once it has finished, following it with event.from."""
    token = ""
    for _ in range(100):
        record = x.task.get_record(task)
        if record["status"] not in ("pending", "cancelling"):
            return record
        token = getattr(x.event, "from")([f"task/{task}"], token, 5.0)["token"]
    raise AssertionError(f"task {task} did not finish")


def wait_for_pids(x: Any, host: str) -> list[int]:
    """The pids the probe's ``hang`` publishes in the host's other_config, once it has."""
    token = ""
    for _ in range(100):
        pids = x.host.get_other_config(host).get("probe-pid")
        if pids:
            x.host.remove_from_other_config(host, "probe-pid")
            return [int(pid) for pid in pids.split()]
        token = getattr(x.event, "from")([f"host/{host}"], token, 5.0)["token"]
    raise AssertionError("the plugin never published its pid")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def wait_until_gone(pids: list[int], seconds: float = 10.0) -> list[int]:
    """The pids still alive after ``seconds`` (SIGKILL is delivered at once, but not reaped)."""
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [pid for pid in pids if alive(pid)]


# -- what the plugin receives ---------------------------------------------------------------------

def test_plugin_function_returns_its_string(x: Any, host: str) -> None:
    assert probe(x, host, "echo", a="1", b="") == '{"a": "1", "b": ""}'


def test_plugin_gets_the_call_as_its_only_argument(x: Any, host: str) -> None:
    argv = json.loads(probe(x, host, "environment"))["argv"]
    assert len(argv) == 2
    assert argv[0] == str(PLUGINS / PROBE)


def test_plugin_call_carries_the_callers_session_and_the_args(
    session: XenAPI.Session, x: Any, host: str
) -> None:
    argv = json.loads(probe(x, host, "environment", key="value"))["argv"]
    params, method = xmlrpc.client.loads(argv[1])
    assert method == "environment"
    assert params == (session._session, {"key": "value"})


def test_plugin_call_is_written_with_untyped_values_and_no_header(x: Any, host: str) -> None:
    call = json.loads(probe(x, host, "environment", key="value"))["argv"][1]
    assert call.startswith("<methodCall><methodName>environment</methodName>")
    assert "<member><name>key</name><value>value</value></member>" in call
    assert "<string>" not in call


def test_plugin_without_suffix_is_called_by_its_bare_name(x: Any, host: str) -> None:
    assert x.host.call_plugin(host, "echo", "main", {"k": "v"}) == "args were: {'k': 'v'}"


# -- what XAPI makes of the answer ----------------------------------------------------------------

def test_blank_string_result_reads_as_an_empty_string(x: Any, host: str) -> None:
    assert probe(x, host, "whitespace") == ""


def test_failure_raised_by_the_plugin_reaches_the_client_as_is(x: Any, host: str) -> None:
    assert probe_failure(x, host, "fail", code="SR_BACKEND_FAILURE_44") == [
        "SR_BACKEND_FAILURE_44", "first", "second"]


def test_other_exception_is_a_plugin_failure_naming_function_class_and_message(
    x: Any, host: str
) -> None:
    assert probe_failure(x, host, "crash") == [
        "XENAPI_PLUGIN_FAILURE", "crash", "ValueError", "the probe was asked to fail"]


def test_none_result_fails_inside_xenapiplugin(x: Any, host: str) -> None:
    assert probe_failure(x, host, "none") == [
        "XENAPI_PLUGIN_FAILURE", "none", "TypeError",
        "cannot marshal None unless allow_none is enabled"]


def test_unknown_function_is_unknown_xenapi_plugin_function(x: Any, host: str) -> None:
    assert probe_failure(x, host, "no_such_function") == [
        "UNKNOWN_XENAPI_PLUGIN_FUNCTION", "no_such_function"]


def test_non_zero_exit_reports_stdout_and_stderr(x: Any, host: str) -> None:
    assert probe_failure(x, host, "exit_non_zero") == [
        "XENAPI_PLUGIN_FAILURE", "non-zero exit", "partial output\n", "something went wrong\n"]


def test_death_by_signal_names_the_signal(x: Any, host: str) -> None:
    assert probe_failure(x, host, "kill_self") == [
        "XENAPI_PLUGIN_FAILURE", "signal: SIGKILL", "about to die\n", ""]


def test_output_that_is_not_xml_fails_to_parse(x: Any, host: str) -> None:
    assert probe_failure(x, host, "junk") == [
        "XENAPI_PLUGIN_FAILURE", "failed to parse plugin output", "this is not XML\n",
        "expected root element line 1"]


def test_no_output_fails_to_parse(x: Any, host: str) -> None:
    assert probe_failure(x, host, "nothing") == [
        "XENAPI_PLUGIN_FAILURE", "failed to parse plugin output", "",
        "unexpected end of input line 1"]


def test_xmlrpc_fault_is_a_plugin_failure_with_code_and_reason(x: Any, host: str) -> None:
    assert probe_failure(x, host, "fault") == ["XENAPI_PLUGIN_FAILURE", "fault", "7", "seven"]


def test_reply_without_a_status_struct_is_an_internal_error(x: Any, host: str) -> None:
    assert probe_failure(x, host, "bare_value") == [
        "INTERNAL_ERROR",
        "XMLRPC.RunTimeTypeError(\"unbox: Element=string should contain 'struct'\", _)"]


def test_non_string_result_is_an_internal_error(x: Any, host: str) -> None:
    assert probe_failure(x, host, "non_string") == [
        "INTERNAL_ERROR",
        "XMLRPC.RunTimeTypeError(\"unbox: Element=int should contain 'string'\", _)"]


def test_output_after_the_reply_is_ignored(x: Any, host: str) -> None:
    assert probe(x, host, "trailing_junk") == "kept"


# -- which plugin runs ----------------------------------------------------------------------------

def test_unknown_plugin_is_xenapi_missing_plugin(x: Any, host: str) -> None:
    assert failure(x.host.call_plugin, host, "nope.py", "echo", {}) == [
        "XENAPI_MISSING_PLUGIN", "nope.py"]


def test_plugin_name_must_match_the_file_name_exactly(x: Any, host: str) -> None:
    assert failure(x.host.call_plugin, host, "probe", "echo", {}) == [
        "XENAPI_MISSING_PLUGIN", "probe"]


@pytest.mark.parametrize("name", ["../plugins/probe.py", "./probe.py", "/bin/true", "."])
def test_paths_never_reach_outside_the_plugins_directory(x: Any, host: str, name: str) -> None:
    assert failure(x.host.call_plugin, host, name, "echo", {}) == ["XENAPI_MISSING_PLUGIN", name]


def test_host_must_be_a_host(x: Any) -> None:
    vm = x.VM.get_all()[0]
    assert failure(x.host.call_plugin, vm, PROBE, "echo", {}) == ["HANDLE_INVALID", "host", vm]


def test_args_must_map_strings_to_strings(x: Any, host: str) -> None:
    assert failure(x.host.call_plugin, host, PROBE, "echo", {"n": 1}) == [
        "FIELD_TYPE_ERROR", "args"]


# -- calling back into XAPI ------------------------------------------------------------------------

def test_plugin_reads_the_host_record_with_the_callers_session(x: Any, host: str) -> None:
    assert json.loads(probe(x, host, "host_record", host=host)) == {
        "uuid": x.host.get_uuid(host), "name_label": x.host.get_name_label(host)}


def test_plugin_attaches_a_disk_to_dom0_with_the_callers_session(x: Any, host: str) -> None:
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    vdi = x.VDI.create({"name_label": "for dom0", "name_description": "", "SR": sr,
                        "virtual_size": str(GiB), "type": "user", "sharable": False,
                        "read_only": False, "other_config": {}})
    vbd = probe(x, host, "attach_to_dom0", host=host, vdi=vdi)
    try:
        assert x.VBD.get_VM(vbd) == x.host.get_control_domain(host)
        assert x.VBD.get_VDI(vbd) == vdi
    finally:
        x.VBD.destroy(vbd)
        x.VDI.destroy(vdi)


# -- Async, cancel, stop --------------------------------------------------------------------------

def test_async_call_plugin_task_result_is_the_string_as_xmlrpc(x: Any, host: str) -> None:
    task = x.Async.host.call_plugin(host, PROBE, "echo", {"a": "<&>"})
    record = wait_for_task(x, task)
    assert record["status"] == "success"
    assert record["result"] == '<value>{"a": "&lt;&amp;&gt;"}</value>'
    x.task.destroy(task)


def test_async_call_plugin_failure_is_the_tasks_error_info(x: Any, host: str) -> None:
    task = x.Async.host.call_plugin(host, PROBE, "fail", {})
    record = wait_for_task(x, task)
    assert (record["status"], record["error_info"]) == (
        "failure", ["PROBE_FAILURE", "first", "second"])
    x.task.destroy(task)


def test_cancelling_the_task_kills_the_plugin_and_its_children(x: Any, host: str) -> None:
    task = x.Async.host.call_plugin(host, PROBE, "hang", {"host": host})
    pids = wait_for_pids(x, host)
    x.task.cancel(task)
    record = wait_for_task(x, task)
    assert (record["status"], record["error_info"]) == ("cancelled", ["TASK_CANCELLED", task])
    assert wait_until_gone(pids) == []
    x.task.destroy(task)


def test_stopping_the_simulator_kills_running_plugins() -> None:
    sim = Simulator(auth_failure_delay=0, plugins_dir=PLUGINS).start()
    try:
        session = login(sim)
        x = session.xenapi
        host = x.host.get_all()[0]
        x.Async.host.call_plugin(host, PROBE, "hang", {"host": host})
        pids = wait_for_pids(x, host)
    finally:
        started = time.monotonic()
        sim.stop()
    assert time.monotonic() - started < 10  # not the server's 60 s grace for open requests
    assert wait_until_gone(pids) == []


# -- files that cannot run ----------------------------------------------------------------------

@pytest.fixture
def odd_plugins(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """A simulator serving a directory with a plugin without its exec bit, one without a
    shebang, one whose interpreter is missing, and a directory."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    text = (PLUGINS / PROBE).read_text()
    for name, content, mode in [
        ("no_exec_bit.py", text, 0o644),
        ("no_shebang.py", text.split("\n", 1)[1], 0o755),
        ("no_interpreter.py", "#!/nonexistent/python3\n" + text.split("\n", 1)[1], 0o755),
    ]:
        (plugins / name).write_text(content)
        (plugins / name).chmod(mode)
    (plugins / "a_directory").mkdir()
    with Simulator(auth_failure_delay=0, plugins_dir=plugins) as sim:
        session = login(sim)
        yield session.xenapi, session.xenapi.host.get_all()[0]
        session.xenapi.session.logout()


@pytest.mark.parametrize("name", ["no_exec_bit.py", "no_shebang.py", "no_interpreter.py",
                                  "a_directory"])
def test_file_that_cannot_be_executed_is_a_silent_non_zero_exit(
    odd_plugins: tuple[Any, str], name: str
) -> None:
    # forkexecd's helper exits 126 (127 for a missing file) when execv fails, with no output.
    x, host = odd_plugins
    assert failure(x.host.call_plugin, host, name, "echo", {}) == [
        "XENAPI_PLUGIN_FAILURE", "non-zero exit", "", ""]


def test_plugins_dir_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plugins_dir .*nowhere.* does not exist"):
        Simulator(plugins_dir=tmp_path / "nowhere")


def test_checked_in_plugins_keep_their_exec_bit() -> None:
    for path in PLUGINS.iterdir():
        if path.is_file():
            assert path.stat().st_mode & stat.S_IXUSR, f"{path} lost its exec bit"
