"""The simulated dom0 around plugins, through the official XenAPI SDK over real sockets: its root
directory and environment, the xenstore commands, extensions (host.call_extension), and the ways
projects get a simulator serving their plugins (the pytest helpers and ``os-xenapi simulator``).

The plugin run is tests/functional/plugins/probe.py; shared/xapi/PROTOCOL.md section 3.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import XenAPI

from os_xenapi.simulator import Simulator
from os_xenapi.simulator.plugins import DOM0ENV, default_plugins_dir, dom0_of
from os_xenapi.testing.plugin import simulator_with_plugins

pytest_plugins = ["pytester"]

PLUGINS = Path(__file__).resolve().parent / "plugins"
PROBE = "probe.py"


def login(sim: Simulator) -> XenAPI.Session:
    session = XenAPI.Session(sim.url)
    session.xenapi.login_with_password(sim.username, sim.password, "1.0", "dom0-test")
    return session


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(vms=1, auth_failure_delay=0, plugins_dir=PLUGINS) as sim:
        yield sim


@pytest.fixture(scope="module")
def x(sim: Simulator) -> Iterator[Any]:
    session = login(sim)
    yield session.xenapi
    session.xenapi.session.logout()


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


def xenstore(x: Any, host: str, command: str, *argv: str) -> dict[str, Any]:
    """Runs xenstore-<command> inside a plugin on ``host``; its status, stdout and stderr."""
    return json.loads(probe(x, host, "xenstore", command=command, argv=json.dumps(argv)))


# -- the dom0 around the plugin ------------------------------------------------------------------

def test_plugin_runs_in_the_dom0_root_and_writes_files_there(sim: Simulator, x: Any,
                                                              host: str) -> None:
    where = json.loads(probe(x, host, "dom0_file", text="configured"))
    root = sim.run(lambda xapi: str(dom0_of(xapi).root))
    assert where == {"path": os.path.join(root, "etc", "probe.conf"), "cwd": root}
    assert Path(where["path"]).read_text() == "configured"


def test_plugin_environment_holds_only_what_dom0_gives(x: Any, host: str) -> None:
    env = json.loads(probe(x, host, "environment"))["env"]
    env.pop("LC_CTYPE", None)  # set by Python itself when no locale is given (PEP 538)
    assert sorted(env) == ["DOM0_ROOT", "PATH", "PYTHONPATH", "XAPI_SIM_HOST",
                           "XAPI_SIM_PYTHON", "XAPI_SIM_SOCKET", "XENSTORED_SIM_SOCKET"]
    assert env["PATH"] == str(DOM0ENV / "bin")
    assert os.path.isabs(env["XAPI_SIM_PYTHON"]) and os.access(env["XAPI_SIM_PYTHON"], os.X_OK)
    assert env["XAPI_SIM_HOST"] == x.host.get_uuid(host)


def test_member_host_plugin_runs_on_that_host() -> None:
    with Simulator(hosts=2, auth_failure_delay=0, plugins_dir=PLUGINS) as pool:
        session = login(pool)
        try:
            x = session.xenapi
            master = x.pool.get_master(x.pool.get_all()[0])
            member = next(h for h in x.host.get_all() if h != master)
            env = json.loads(x.host.call_plugin(member, PROBE, "environment", {}))["env"]
            assert env["XAPI_SIM_HOST"] == x.host.get_uuid(member)
        finally:
            session.xenapi.session.logout()


# -- xenstore ------------------------------------------------------------------------------------

def test_xenstore_commands_write_and_read_back(x: Any, host: str) -> None:
    assert xenstore(x, host, "write", "/local/domain/0/data/probe", "hello")["status"] == 0
    assert xenstore(x, host, "read", "/local/domain/0/data/probe") == {
        "status": 0, "stdout": "hello\n", "stderr": ""}
    assert xenstore(x, host, "rm", "/local/domain/0/data/probe")["status"] == 0
    assert xenstore(x, host, "exists", "/local/domain/0/data/probe")["status"] == 1


def test_xenstore_relative_paths_start_at_dom0s_home(x: Any, host: str) -> None:
    assert xenstore(x, host, "read", "name")["stdout"] == "Domain-0\n"


def test_xenstore_read_of_a_missing_path_fails_as_the_real_tool(x: Any, host: str) -> None:
    assert xenstore(x, host, "read", "/no/such/key") == {
        "status": 1, "stdout": "", "stderr": "xenstore-read: couldn't read path /no/such/key\n"}


def test_xenstore_ls_prints_the_tree_indented(x: Any, host: str) -> None:
    xenstore(x, host, "write", "/local/domain/0/data/a/b", "x\ty")
    try:
        listing = xenstore(x, host, "ls", "/local/domain/0/data")
        assert listing["stdout"] == 'a = ""\n b = "x\\ty"\n'
        full = xenstore(x, host, "ls", "-f", "/local/domain/0/data")
        assert full["stdout"] == ('/local/domain/0/data/a = ""\n'
                                  '/local/domain/0/data/a/b = "x\\ty"\n')
    finally:
        xenstore(x, host, "rm", "/local/domain/0/data/a")


def test_running_vm_has_a_xenstore_domain_until_it_halts(x: Any, host: str) -> None:
    vm = next(ref for ref, rec in x.VM.get_all_records().items()
              if not rec["is_a_template"] and not rec["is_control_domain"])
    x.VM.start(vm, False, False)
    try:
        home = f"/local/domain/{x.VM.get_domid(vm)}"
        assert xenstore(x, host, "read", f"{home}/name")["stdout"] == x.VM.get_name_label(vm) + "\n"
        assert xenstore(x, host, "read", f"{home}/vm")["stdout"] == f"/vm/{x.VM.get_uuid(vm)}\n"
    finally:
        x.VM.hard_shutdown(vm)
    assert xenstore(x, host, "exists", home)["status"] == 1


# -- extensions ---------------------------------------------------------------------------------

EXTENSION = '''#!/usr/bin/env python3
import json, sys, xmlrpc.client
if sys.argv[1:] != ["--xmlrpc"]:
    sys.exit("expected --xmlrpc, got %r" % sys.argv[1:])
params, method = xmlrpc.client.loads(sys.stdin.read())
if params and params[0] == "fail":
    reply = {"Status": "Failure", "ErrorDescription": ["TEST_FAILED", "because"]}
elif params and params[0] == "odd":
    reply = {"Status": "Failure", "ErrorDescription": [1, 2]}
else:
    reply = {"Status": "Success", "Value": json.dumps([method, list(params)])}
print(xmlrpc.client.dumps((reply,), methodresponse=True))
'''


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """A simulator whose dom0 has the extension ``Test.test`` next to its plugins."""
    root = tmp_path_factory.mktemp("xapi.d")
    shutil.copytree(PLUGINS, root / "plugins")
    (root / "extensions").mkdir()
    (root / "extensions" / "Test.test").write_text(EXTENSION)
    (root / "extensions" / "Test.test").chmod(0o755)
    with Simulator(auth_failure_delay=0, plugins_dir=root / "plugins") as sim:
        session = login(sim)
        yield session.xenapi, session.xenapi.host.get_all()[0]
        session.xenapi.session.logout()


def test_has_extension_tells_which_extensions_exist(extended: tuple[Any, str]) -> None:
    x, host = extended
    assert (x.host.has_extension(host, "Test.test"), x.host.has_extension(host, "Nope")) == (
        True, False)


def test_call_extension_returns_the_extensions_value(extended: tuple[Any, str]) -> None:
    x, host = extended
    call = json.dumps({"method": "Test.test", "params": ["a", "b"], "id": 1})
    assert json.loads(x.host.call_extension(host, call)) == ["Test.test", ["a", "b"]]


def test_call_extension_failure_is_raised_as_the_extensions_error(
    extended: tuple[Any, str]
) -> None:
    x, host = extended
    call = json.dumps({"method": "Test.test", "params": ["fail"], "id": 1})
    assert failure(x.host.call_extension, host, call) == ["TEST_FAILED", "because"]


def test_call_extension_failure_that_is_not_strings_is_a_protocol_failure(
    extended: tuple[Any, str]
) -> None:
    x, host = extended
    call = json.dumps({"method": "Test.test", "params": ["odd"], "id": 1})
    assert failure(x.host.call_extension, host, call) == ["EXTENSION_PROTOCOL_FAILURE", "[1, 2]"]


def test_call_extension_unknown_is_message_method_unknown(extended: tuple[Any, str]) -> None:
    x, host = extended
    call = json.dumps({"method": "Nope.nope", "params": [], "id": 1})
    assert failure(x.host.call_extension, host, call) == ["MESSAGE_METHOD_UNKNOWN", "Nope.nope"]


# -- how projects get such a simulator ------------------------------------------------------------

def test_simulator_with_plugins_serves_the_directory_it_is_given(tmp_path: Path) -> None:
    with simulator_with_plugins(PLUGINS, dom0_root=tmp_path / "root") as sim:
        session = login(sim)
        x = session.xenapi
        where = json.loads(probe(x, x.host.get_all()[0], "dom0_file", text="t"))
        session.xenapi.session.logout()
    assert where["path"] == str(tmp_path / "root" / "etc" / "probe.conf")


def test_fixture_with_plugins_serves_os_xenapis_own_plugins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        from pathlib import Path
        from os_xenapi.simulator.plugins import dom0_of

        def test_plugins_dir(xapi_simulator_with_plugins):
            served = xapi_simulator_with_plugins.run(lambda xapi: dom0_of(xapi).plugins_dir)
            assert served == Path({str(default_plugins_dir())!r})
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def first_line(process: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The first line the process prints, or a test failure after ``timeout`` seconds."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"the simulator printed nothing within {timeout} s")


def test_command_serves_the_plugins_dir_and_dom0_root_it_is_given(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "os_xenapi.cli.main", "simulator", "--auth-delay", "0",
         "--plugins-dir", str(PLUGINS), "--dom0-root", str(tmp_path / "root")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = re.fullmatch(r"XAPI simulator listening on (\S+)\n", first_line(process))
        assert url is not None
        session = XenAPI.Session(url.group(1))
        session.xenapi.login_with_password("root", "xenroot", "1.0", "plugin-test")
        x = session.xenapi
        where = json.loads(probe(x, x.host.get_all()[0], "dom0_file", text="t"))
        session.xenapi.session.logout()
        assert where["path"] == str(tmp_path / "root" / "etc" / "probe.conf")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)


def test_command_refuses_a_plugins_dir_that_does_not_exist(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "os_xenapi.cli.main", "simulator",
         "--plugins-dir", str(tmp_path / "nowhere")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert "--plugins-dir" in done.stderr and "does not exist" in done.stderr
