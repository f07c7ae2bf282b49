"""Stopping the simulator is quick and frees its state directory at once, even while a client
holds an ``event.from`` long-poll: the requests in progress are cancelled, as by a restart."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import time
import xmlrpc.client
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from os_xenapi.simulator import Simulator
from os_xenapi.simulator.faults import Fault

POLL = 30.0  # seconds the held event.from would wait for an event
QUICK = 1.0  # the most a stop may take
START_TIMEOUT = 30.0


def hold_event_from(url: str, session: str) -> tuple[threading.Thread, list[object]]:
    """A thread blocked in event.from on ``url``; the list gets its outcome."""
    outcome: list[object] = []

    def poll() -> None:
        proxy = xmlrpc.client.ServerProxy(url)
        token = proxy.event_from(session, ["VM"], "", 0.0)["Value"]["token"]
        try:
            outcome.append(proxy.event_from(session, ["VM"], token, POLL))
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return thread, outcome


def wait_until(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)


def test_stop_cancels_a_long_poll_and_frees_the_state_dir(tmp_path: Path) -> None:
    sim = Simulator(state_dir=str(tmp_path), auth_failure_delay=0).start()
    try:
        proxy = xmlrpc.client.ServerProxy(sim.url)
        session = proxy.session.login_with_password(sim.username, sim.password, "", "t")["Value"]
        seen = sim.faults.add(Fault.latency("event.from", 0.001))  # counts the calls that arrive
        thread, outcome = hold_event_from(sim.url, session)
        wait_until(lambda: seen.calls == 2, "the long-poll reaching the simulator")
        started = time.monotonic()
    finally:
        sim.stop()
    stopped = time.monotonic() - started
    assert stopped < QUICK, f"stop took {stopped:.2f} s"
    thread.join(timeout=5)
    assert outcome and isinstance(outcome[0], Exception), "the long-poll was cut, not answered"
    with Simulator(state_dir=str(tmp_path)) as again:  # the lock is free at once
        assert again.url


def control_faults(url: str) -> list[dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", "/_simulator/faults")
        return json.loads(conn.getresponse().read())["faults"]
    finally:
        conn.close()


def add_counting_fault(url: str) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("POST", "/_simulator/faults",
                     json.dumps({"method": "event.from", "action": "latency", "seconds": 0.001}),
                     {"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def start_command(state_dir: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "os_xenapi.cli.main", "simulator", "--state-dir", str(state_dir),
         "--auth-delay", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()  # the listening line comes first, or nothing on failure
    return process, line


def test_sigterm_with_a_long_poll_exits_at_once_and_a_restart_gets_the_state_dir(
        tmp_path: Path) -> None:
    first, line = start_command(tmp_path)
    second = None
    try:
        assert line.startswith("XAPI simulator listening on "), (line, first.stderr.read())
        url = line.split()[-1]
        proxy = xmlrpc.client.ServerProxy(url)
        session = proxy.session.login_with_password("root", "xenroot", "", "t")["Value"]
        add_counting_fault(url)
        thread, outcome = hold_event_from(url, session)
        wait_until(lambda: control_faults(url)[0]["calls"] == 2, "the long-poll arriving")

        started = time.monotonic()
        first.send_signal(signal.SIGTERM)
        while (line := first.stdout.readline()) not in ("XAPI simulator stopped.\n", ""):
            pass
        stopped = time.monotonic() - started
        assert line == "XAPI simulator stopped.\n"
        assert stopped < QUICK, f"'stopped' came {stopped:.2f} s after SIGTERM"
        # At once, while the first may still be exiting: the state directory is already free.
        second, line = start_command(tmp_path)
        assert line.startswith("XAPI simulator listening on "), (line, second.stderr.read())
        assert first.wait(timeout=START_TIMEOUT) == 0
        thread.join(timeout=5)
        assert outcome and isinstance(outcome[0], Exception)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            if process is not None:
                process.stdout.close()
                process.stderr.close()
