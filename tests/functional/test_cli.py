"""The ``os-xenapi`` command, run as a real process: the simulator it serves and the demo.

The address checks are also pinned through their pure functions, so that accepting a
non-loopback address can be tested without binding one.
"""

from __future__ import annotations

import http.client
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import click
import pytest
import XenAPI

from os_xenapi.cli.simulator_cmd import check_host_count, check_listen_address, parse_listen
from os_xenapi.simulator import Simulator

COMMAND = [sys.executable, "-m", "os_xenapi.cli.main"]
START_TIMEOUT = 30.0  # seconds for the listening line to appear
STOP_TIMEOUT = 15.0  # seconds for a clean exit after a stop signal
LISTENING = re.compile(r"^XAPI simulator listening on (http://127\.0\.0\.1:(\d+))$")


class Lines:
    """The lines a process prints, read on a thread so that every wait is bounded."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def next(self, timeout: float = START_TIMEOUT) -> str:
        """The next line; fails the test at end of output or after ``timeout`` seconds."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output within {timeout} s")
        if line is None:
            pytest.fail("the process closed its output")
        return line

    def until(self, prefix: str) -> list[str]:
        """Lines up to and including the first that starts with ``prefix``."""
        lines = [self.next()]
        while not lines[-1].startswith(prefix):
            lines.append(self.next())
        return lines

    def rest(self) -> list[str]:
        """What is left once the process has exited."""
        self._thread.join(timeout=STOP_TIMEOUT)
        lines = []
        while (line := self._queue.get_nowait()) is not None:
            lines.append(line)
        return lines


@contextmanager
def simulator_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], Lines]]:
    """``os-xenapi simulator ARGS`` as a child process; killed at the end if still running."""
    process = subprocess.Popen(
        [*COMMAND, "simulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process, Lines(process.stdout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
        process.stdout.close()
        process.stderr.close()


def run_command(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``os-xenapi ARGS`` to completion, with no terminal."""
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


class UnixTransport(xmlrpc.client.Transport):
    """XML-RPC over HTTP on a Unix socket, as XAPI's dom0 clients talk to it."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def make_connection(self, host: str) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection("localhost")
        connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.sock.connect(self._path)
        return connection


# -- os-xenapi simulator ------------------------------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_simulator_serves_a_pool_until_a_stop_signal(stop_signal: signal.Signals) -> None:
    with simulator_process("--listen", "127.0.0.1:0", "--hosts", "2") as (process, lines):
        listening = LISTENING.match(lines.next())
        assert listening, "the first line announces the URL"
        url, port = listening.group(1), listening.group(2)
        announced = lines.until("Stop with")
        assert any(line.startswith("Unix socket: /") for line in announced)
        assert f"Host 1 (master): {url}" in announced
        assert f"Host 2: http://127.0.0.2:{port}" in announced

        session = XenAPI.Session(url)
        session.login_with_password("root", "xenroot", "2.21", "test_cli")
        assert len(session.xenapi.host.get_all()) == 2
        session.xenapi.session.logout()

        process.send_signal(stop_signal)
        assert process.wait(timeout=STOP_TIMEOUT) == 0
        assert lines.rest() == ["XAPI simulator stopped."]
        assert process.stderr.read() == ""


def test_simulator_serves_the_unix_socket_it_is_given(tmp_path) -> None:
    path = str(tmp_path / "xapi")
    with simulator_process("--unix", path) as (process, lines):
        lines.until("Stop with")
        proxy = xmlrpc.client.ServerProxy("http://localhost/", transport=UnixTransport(path))
        reply = proxy.session.login_with_password("root", "xenroot")
        assert reply["Status"] == "Success"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_TIMEOUT) == 0


def test_simulator_uses_the_credentials_it_is_given() -> None:
    args = ("--user", "admin", "--password", "s3cret", "--auth-delay", "0")
    with simulator_process(*args) as (process, lines):
        url = LISTENING.match(lines.next()).group(1)
        announced = lines.until("Stop with")
        assert "s3cret" not in "\n".join(announced)
        session = XenAPI.Session(url)
        with pytest.raises(XenAPI.Failure) as failure:
            session.login_with_password("root", "xenroot")
        assert failure.value.details[0] == "SESSION_AUTHENTICATION_FAILED"
        session.login_with_password("admin", "s3cret")
        session.xenapi.session.logout()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_TIMEOUT) == 0


def test_simulator_refuses_a_non_loopback_address_without_a_password() -> None:
    result = run_command("simulator", "--listen", "192.0.2.10:8080", timeout=30)
    assert result.returncode == 2
    assert "192.0.2.10" in result.stderr
    assert "--password" in result.stderr


def test_simulator_refuses_ipv6_clearly() -> None:
    result = run_command("simulator", "--listen", "[::1]:8080", timeout=30)
    assert result.returncode == 2
    assert "IPv4" in result.stderr


def test_simulator_refuses_a_wildcard_address_even_with_a_password() -> None:
    result = run_command("simulator", "--listen", "0.0.0.0:8080", "--password", "x", timeout=30)
    assert result.returncode == 2
    assert "0.0.0.0" in result.stderr


def test_non_loopback_address_is_accepted_with_a_password() -> None:
    check_listen_address("192.0.2.10", password_given=True)


def test_non_loopback_address_is_refused_without_a_password() -> None:
    with pytest.raises(click.UsageError, match="192.0.2.10"):
        check_listen_address("192.0.2.10", password_given=False)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1"])
def test_loopback_addresses_need_no_password(host: str) -> None:
    check_listen_address(host, password_given=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("8080", ("127.0.0.1", 8080)),
        ("127.0.0.3", ("127.0.0.3", 0)),
        ("localhost:0", ("127.0.0.1", 0)),
    ],
)
def test_listen_takes_host_port_or_either(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["[::1]:80", "::1", "127.0.0.1:65536", "xen.example:80", ""])
def test_listen_refuses_what_the_simulator_cannot_bind(value: str) -> None:
    with pytest.raises(click.UsageError):
        parse_listen(value)


def test_hosts_must_fit_after_the_listen_address() -> None:
    check_host_count("127.0.0.250", 6)
    with pytest.raises(click.UsageError, match="127.0.0.255"):
        check_host_count("127.0.0.250", 7)


# -- os-xenapi demo -----------------------------------------------------------------------------


def test_demo_tours_a_simulated_pool_and_exits_0() -> None:
    result = run_command("demo")
    assert result.returncode == 0, result.stderr
    for heading in (
        "os-xenapi demo",
        "Pool",
        "Hosts",
        "VMs",
        "Async.VM.start",
        "Events caused by Async.VM.start",
        "Logged out.",
        "Simulator stopped.",
    ):
        assert heading in result.stdout
    assert result.stderr == ""


def test_the_default_password_typed_out_does_not_open_a_network_address() -> None:
    done = subprocess.run([*COMMAND, "simulator", "--listen", "192.0.2.10", "--password",
                           "xenroot"], capture_output=True, text=True, timeout=START_TIMEOUT,
                          check=False)
    assert done.returncode == 2
    assert "refusing to listen on 192.0.2.10" in done.stderr


def test_the_python_simulator_refuses_a_network_address_with_the_default_password() -> None:
    with pytest.raises(ValueError, match="192.0.2.10.*default password"):
        Simulator(listen="192.0.2.10")
