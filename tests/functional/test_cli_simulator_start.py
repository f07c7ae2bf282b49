"""``os-xenapi simulator`` at start-up: Ctrl+C while the pool is being built stops at once (a
real process, real signals), ``--vms`` has a ceiling, and every refusal names what the user gave
(the command run in-process by click's runner: the same code, without a Python start-up each)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from os_xenapi.cli.simulator_cmd import MAX_VMS, simulator

COMMAND = [sys.executable, "-m", "os_xenapi.cli.main", "simulator"]
TIMEOUT = 60.0


def run(*args: str) -> Result:
    """``os-xenapi simulator ARGS`` in this process; it must fail before serving anything."""
    result = CliRunner().invoke(simulator, list(args))
    assert "listening" not in result.stdout
    return result


def wait_for_file(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        assert process.poll() is None, "the command ended before building the pool"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_while_the_vms_are_built_stops_at_once(tmp_path: Path,
                                                             stop_signal: signal.Signals) -> None:
    state = tmp_path / "state"
    process = subprocess.Popen([*COMMAND, "--vms", str(MAX_VMS), "--state-dir", str(state)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_file(state / ".lock", process)  # taken just before the VMs are built
        started = time.monotonic()
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=TIMEOUT)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "listening" not in out
    assert out.strip() == "XAPI simulator stopped.", (out, err)
    assert err == ""
    assert process.returncode == 0
    assert elapsed < 2.0, f"took {elapsed:.2f} s (building {MAX_VMS} VMs takes 15 to 20 s)"
    assert not (state / "state.json").exists(), "a half-built pool is not saved"


@pytest.mark.parametrize("vms", [MAX_VMS + 1, 10**9])
def test_vms_past_the_ceiling_are_refused_naming_it(vms: int) -> None:
    result = run("--vms", str(vms))
    assert result.exit_code == 2
    assert f"--vms {vms}" in result.stderr
    assert str(MAX_VMS) in result.stderr


def test_a_unix_socket_in_a_missing_directory_is_named(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "xapi"
    result = run("--unix", str(path))
    assert result.exit_code == 1
    assert f"--unix {path}" in result.stderr
    assert str(path.parent) in result.stderr
    assert "does not exist" in result.stderr


def test_a_unix_socket_path_too_long_is_named(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 120)
    result = run("--unix", str(path))
    assert result.exit_code == 1
    assert f"--unix {path}" in result.stderr
    assert "108" in result.stderr or "107" in result.stderr


def test_a_unix_socket_another_server_listens_on_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "xapi"
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        other.listen()
        result = run("--unix", str(path))
        assert result.exit_code == 1
        assert f"--unix {path}" in result.stderr
        assert "in use" in result.stderr
        assert path.exists()
        probe = socket.socket(socket.AF_UNIX)
        probe.connect(str(path))  # still the other server's socket
        probe.close()


def test_a_regular_file_in_the_way_of_the_unix_socket_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    result = run("--unix", str(path))
    assert result.exit_code == 1
    assert f"--unix {path}" in result.stderr
    assert path.read_text() == "keep me"


def test_a_port_in_use_is_named_with_the_listen_value() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = run("--listen", f"127.0.0.1:{port}")
    assert result.exit_code == 1
    assert f"--listen 127.0.0.1:{port}" in result.stderr
    assert "in use" in result.stderr


def test_an_address_of_another_machine_is_named_with_the_listen_value() -> None:
    result = run("--listen", "198.51.100.77:0", "--password", "x")  # TEST-NET-1: not ours
    assert result.exit_code == 1
    assert "--listen 198.51.100.77:0" in result.stderr
    assert "not an address of this machine" in result.stderr


def test_a_state_dir_in_use_is_named_with_the_option(tmp_path: Path) -> None:
    import fcntl

    state = tmp_path / "state"
    state.mkdir()
    with open(state / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run("--state-dir", str(state))
    assert result.exit_code == 1
    assert f"--state-dir {state}" in result.stderr
    assert "in use" in result.stderr


def test_a_password_in_argv_is_not_echoed_in_errors(tmp_path: Path) -> None:
    result = run("--listen", "198.51.100.77:0", "--password", "hunter2-secret")
    assert "hunter2-secret" not in result.stderr + result.stdout


