"""The simulated dom0's Python modules (XenAPIPlugin, XenAPI, simxenstore), run as dom0 runs them:
plugins as subprocesses given the methodCall XML that XAPI writes, in argv[1]."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import threading
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from xmlrpc.server import SimpleXMLRPCServer

import pytest

from os_xenapi.simulator.codec import encode_xmlrpc_call
from os_xenapi.simulator.plugins import DOM0ENV

LIB = DOM0ENV / "lib"
SESSION = "OpaqueRef:11111111-2222-3333-4444-555555555555"
PLUGINS_UNDER_TEST = Path(__file__).resolve().parents[1] / "functional" / "plugins"


def write_plugin(directory: Path, body: str) -> Path:
    """An executable plugin file whose functions are ``body``, dispatched by name."""
    path = directory / "plugin.py"
    path.write_text(
        f"#!{sys.executable}\n"
        "import sys\nimport XenAPIPlugin\n\n"
        f"{body}\n\n"
        "if __name__ == '__main__':\n"
        "    table = {k: v for k, v in dict(globals()).items() if k.startswith('f_')}\n"
        "    XenAPIPlugin.dispatch(table)\n"
    )
    path.chmod(0o755)
    return path


def run_as_xapi(path: Path, fn: str, args: dict[str, str] | None = None,
                argv: list[str] | None = None, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess:
    """Run ``path`` as XAPI does: argv [path, methodCall], only PATH and PYTHONPATH set."""
    call = encode_xmlrpc_call(fn, [SESSION, args or {}]).decode()
    environment = {"PATH": os.defpath, "PYTHONPATH": str(LIB), **(env or {})}
    return subprocess.run([str(path), *([call] if argv is None else argv)], env=environment,
                          capture_output=True, text=True, timeout=60, check=False)


def answer(done: subprocess.CompletedProcess) -> dict[str, Any]:
    """The ``{Status, ...}`` struct a plugin printed."""
    assert done.returncode == 0, done.stderr
    (struct,), method = xmlrpc.client.loads(done.stdout)
    assert method is None
    return struct


# -- XenAPIPlugin.dispatch --------------------------------------------------------------------

def test_dispatch_prints_success_with_the_functions_string(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path, "def f_echo(session, args):\n    return args['word']")
    assert answer(run_as_xapi(plugin, "f_echo", {"word": "hello"})) == {
        "Status": "Success", "Value": "hello"}


def test_dispatch_prints_status_before_value(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path, "def f_echo(session, args):\n    return 'x'")
    stdout = run_as_xapi(plugin, "f_echo").stdout
    assert stdout.index("<name>Status</name>") < stdout.index("<name>Value</name>")


def test_dispatch_prints_a_failure_as_code_then_params(tmp_path: Path) -> None:
    plugin = write_plugin(
        tmp_path, "def f_fail(session, args):\n"
        "    raise XenAPIPlugin.Failure('VDI_IN_USE', ['OpaqueRef:x', 'destroy'])")
    assert answer(run_as_xapi(plugin, "f_fail")) == {
        "Status": "Failure", "ErrorDescription": ["VDI_IN_USE", "OpaqueRef:x", "destroy"]}


def test_dispatch_wraps_other_exceptions_with_function_class_and_message(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path, "def f_boom(session, args):\n    raise KeyError('disk')")
    assert answer(run_as_xapi(plugin, "f_boom"))["ErrorDescription"] == [
        "XENAPI_PLUGIN_FAILURE", "f_boom", "KeyError", "'disk'"]


def test_failure_params_must_be_a_list(tmp_path: Path) -> None:
    plugin = write_plugin(
        tmp_path, "def f_fail(session, args):\n    raise XenAPIPlugin.Failure('CODE', ('a',))")
    description = answer(run_as_xapi(plugin, "f_fail"))["ErrorDescription"]
    assert description[:3] == ["XENAPI_PLUGIN_FAILURE", "f_fail", "TypeError"]
    assert "must be a list" in description[3]


def test_dispatch_answers_an_unknown_function(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path, "def f_echo(session, args):\n    return ''")
    assert answer(run_as_xapi(plugin, "f_other"))["ErrorDescription"] == [
        "UNKNOWN_XENAPI_PLUGIN_FUNCTION", "f_other"]


@pytest.mark.parametrize("argv", [[], ["<methodCall/>", "extra"]])
def test_dispatch_raises_on_any_other_argument_count(tmp_path: Path, argv: list[str]) -> None:
    plugin = write_plugin(tmp_path, "def f_echo(session, args):\n    return ''")
    done = run_as_xapi(plugin, "f_echo", argv=argv)
    assert (done.returncode, done.stdout) == (1, "")
    assert "exactly one argument" in done.stderr


def test_dispatch_lets_system_exit_through(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path, "def f_quit(session, args):\n    sys.exit(4)")
    done = run_as_xapi(plugin, "f_quit")
    assert (done.returncode, done.stdout) == (4, "")


def test_dispatch_hands_over_a_local_session_with_the_callers_ref(tmp_path: Path) -> None:
    plugin = write_plugin(
        tmp_path, "def f_who(session, args):\n"
        "    return session.handle + ' ' + session('transport').socket_path")
    done = run_as_xapi(plugin, "f_who", env={"XAPI_SIM_SOCKET": "/run/sim/xapi"})
    assert answer(done)["Value"] == f"{SESSION} /run/sim/xapi"


def test_local_session_defaults_to_xapis_socket(tmp_path: Path) -> None:
    plugin = write_plugin(
        tmp_path, "def f_where(session, args):\n    return session('transport').socket_path")
    assert answer(run_as_xapi(plugin, "f_where"))["Value"] == "/var/lib/xcp/xapi"


# -- XenAPI -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dom0_xenapi() -> ModuleType:
    """dom0env's XenAPI, loaded under another name: the official SDK owns ``XenAPI`` here."""
    spec = importlib.util.spec_from_file_location("dom0env_XenAPI", LIB / "XenAPI.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeXapi:
    """A stdlib XML-RPC server answering like XAPI, whose sessions can be made to expire."""

    def __init__(self) -> None:
        self.server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)
        self.logins = 0
        self.valid: set[str] = set()
        self.server.register_function(self.login, "session.login_with_password")
        self.server.register_function(self.logout, "session.logout")
        self.server.register_function(lambda s: self.ok(s, ["OpaqueRef:pool"]), "pool.get_all")
        self.server.register_function(lambda s, p: self.ok(s, "OpaqueRef:h"), "pool.get_master")
        self.server.register_function(lambda s, h: self.ok(s, "2"), "host.get_API_version_major")
        self.server.register_function(lambda s, h: self.ok(s, "21"), "host.get_API_version_minor")
        self.server.register_function(lambda s, v: self.ok(s, v.upper()), "VM.get_name_label")
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def login(self, user: str, password: str, *_rest: str) -> dict[str, Any]:
        if password != "secret":
            return {"Status": "Failure",
                    "ErrorDescription": ["SESSION_AUTHENTICATION_FAILED", user, "bad"]}
        self.logins += 1
        ref = f"OpaqueRef:session-{self.logins}"
        self.valid.add(ref)
        return {"Status": "Success", "Value": ref}

    def logout(self, session: str) -> dict[str, Any]:
        self.valid.discard(session)
        return {"Status": "Success", "Value": ""}

    def ok(self, session: str, value: Any) -> dict[str, Any]:
        if session not in self.valid:
            return {"Status": "Failure", "ErrorDescription": ["SESSION_INVALID", session]}
        return {"Status": "Success", "Value": value}


@pytest.fixture
def fake_xapi() -> Iterator[FakeXapi]:
    fake = FakeXapi()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    fake.thread.join(timeout=10)


def test_session_call_sends_the_session_first(dom0_xenapi: ModuleType,
                                              fake_xapi: FakeXapi) -> None:
    session = dom0_xenapi.Session(fake_xapi.url)
    session.xenapi.login_with_password("root", "secret", "1.0", "test")
    assert session.xenapi.VM.get_name_label("vm") == "VM"
    assert session.API_version == "2.21"


def test_xenapi_request_puts_the_session_first(dom0_xenapi: ModuleType,
                                               fake_xapi: FakeXapi) -> None:
    session = dom0_xenapi.Session(fake_xapi.url)
    session.login_with_password("root", "secret")
    assert session.xenapi_request("VM.get_name_label", ("vm",)) == "VM"


def test_session_failure_carries_the_error_description(dom0_xenapi: ModuleType,
                                                       fake_xapi: FakeXapi) -> None:
    session = dom0_xenapi.Session(fake_xapi.url)
    with pytest.raises(dom0_xenapi.Failure) as info:
        session.xenapi.login_with_password("root", "wrong")
    assert info.value.details == ["SESSION_AUTHENTICATION_FAILED", "root", "bad"]


def test_session_logs_in_again_when_its_session_expired(dom0_xenapi: ModuleType,
                                                        fake_xapi: FakeXapi) -> None:
    session = dom0_xenapi.Session(fake_xapi.url)
    session.xenapi.login_with_password("root", "secret")
    fake_xapi.valid.clear()
    assert session.xenapi.VM.get_name_label("vm") == "VM"
    assert fake_xapi.logins == 2


def test_session_given_a_ref_does_not_log_in_again(dom0_xenapi: ModuleType,
                                                   fake_xapi: FakeXapi) -> None:
    session = dom0_xenapi.Session(fake_xapi.url)
    session._session = "OpaqueRef:expired"
    with pytest.raises(dom0_xenapi.Failure) as info:
        session.xenapi.VM.get_name_label("vm")
    assert info.value.details == ["SESSION_INVALID", "OpaqueRef:expired"]


def test_logout_forgets_the_session(dom0_xenapi: ModuleType, fake_xapi: FakeXapi) -> None:
    session = dom0_xenapi.Session(fake_xapi.url)
    session.xenapi.login_with_password("root", "secret")
    session.xenapi.session.logout()
    assert (session.handle, fake_xapi.valid) == (None, set())


def test_reply_without_status_is_an_internal_error_failure(dom0_xenapi: ModuleType) -> None:
    with pytest.raises(dom0_xenapi.Failure) as info:
        dom0_xenapi._result("bare")
    assert info.value.details[0] == "INTERNAL_ERROR"


# -- simxenstore (without a xenstore: its argument checks) ------------------------------------

@pytest.fixture(scope="module")
def simxenstore() -> ModuleType:
    spec = importlib.util.spec_from_file_location("simxenstore", LIB / "simxenstore.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("command, argv", [("read", []), ("write", ["key"]), ("rm", []),
                                           ("ls", ["/a", "/b"]), ("read", ["-x", "key"])])
def test_xenstore_command_with_bad_arguments_prints_usage(simxenstore: ModuleType, command: str,
                                                          argv: list[str]) -> None:
    err = io.StringIO()
    assert simxenstore.main(command, argv, out=io.StringIO(), err=err) == 2
    assert "Usage: xenstore-" + command in err.getvalue()


def test_xenstore_command_outside_a_plugin_says_why_it_cannot_run(
    simxenstore: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XENSTORED_SIM_SOCKET", raising=False)
    err = io.StringIO()
    assert simxenstore.main("read", ["name"], out=io.StringIO(), err=err) == 1
    assert "XENSTORED_SIM_SOCKET is not set" in err.getvalue()


def test_xenstore_ls_escapes_control_characters(simxenstore: ModuleType) -> None:
    assert simxenstore.sanitise("a\\b\tc\nd\x01") == "a\\\\b\\tc\\nd\\001"


# -- Python 3.6 ---------------------------------------------------------------------------------

def test_dom0_code_runs_on_python_3_6() -> None:
    pytest.importorskip("vermin")
    done = subprocess.run(
        [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())",
         "-t=3.6-", "--violations", "--no-tips", "-q", str(DOM0ENV), str(PLUGINS_UNDER_TEST)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
