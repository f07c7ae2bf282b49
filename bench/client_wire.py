"""Benchmark 4: the client's CPU per ``VM.get_all_records`` call, 500 VMs, against the SDK.

The simulator runs as another process (``os-xenapi simulator --vms 500``), so that only the
client's work is counted: ``time.process_time()`` around each call, in this process. Six
clients make the same call on one kept-alive connection each:

* os-xenapi's :class:`~os_xenapi.client.transport.Transport` over JSON-RPC;
* the same over XML-RPC;
* os-xenapi's :class:`~os_xenapi.client.session.XenAPISession` over JSON-RPC, through
  ``call_xenapi``, with its values in 0.3.4's XML-RPC types (the default: ints as ``str``,
  datetimes as ``xmlrpc.client.DateTime``), which is what a consumer pays; and the same with
  ``native_types=True`` (JSON-RPC's own types, no conversion), to show what the conversion costs;
* the official SDK, ``XenAPI.Session`` (XML-RPC);
* the floor: a bare ``http.client`` POST to ``/jsonrpc`` and ``json.loads`` of the reply.

Targets (issue 4): JSON-RPC at most 1/10 of the SDK's CPU and within 1.3x of the floor; XML-RPC
at most 1/2 of the SDK's. Issue 10: the session's JSON-RPC path, type conversion on, within 1.3x
of the floor. In every round each client makes one call, in a rotating order, with
the garbage collector enabled as in real use (a collection runs before each call); ratios are
taken within each round, then the median over rounds.

    .venv/bin/python bench/client_wire.py [--quick]
"""

from __future__ import annotations

import gc
import http.client
import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import XenAPI
from common import median, ratio

from os_xenapi.client.session import XenAPISession
from os_xenapi.client.transport import Timeout, Transport

VMS = 500
START_TIMEOUT = 120.0  # seconds for the simulator to seed its VMs and start listening
TARGETS = {"jsonrpc_vs_sdk": 0.1, "jsonrpc_vs_floor": 1.3, "xmlrpc_vs_sdk": 0.5,
           "session_jsonrpc_vs_floor": 1.3}
CLIENTS = ("ours_jsonrpc", "ours_xmlrpc", "session_jsonrpc", "session_native", "sdk_xmlrpc",
           "floor_jsonrpc")


@contextmanager
def simulator_process(vms: int) -> Iterator[str]:
    """Start ``os-xenapi simulator`` in its own process; yield its URL; stop it afterwards."""
    script = Path(sys.executable).with_name("os-xenapi")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "os_xenapi.cli.main"]
    command += ["simulator", "--vms", str(vms), "--listen", "127.0.0.1:0", "--auth-delay", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        line = ""
        while not line.startswith("XAPI simulator listening on "):
            left = deadline - time.monotonic()
            if left <= 0 or process.poll() is not None:
                raise RuntimeError(f"the simulator did not start (last line: {line!r})")
            ready, _, _ = select.select([process.stdout], [], [], left)
            if ready:
                line = process.stdout.readline()
        yield line.split()[-1]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _clients(url: str) -> tuple[dict[str, Callable[[], Any]], Callable[[], None]]:
    """One call function per client, all logged in, and a function that closes them all."""
    timeout = Timeout(connect=10, read=300)
    ours_json = Transport(url, protocol="jsonrpc", timeout=timeout, maxsize=1)
    ours_xml = Transport(url, protocol="xmlrpc", timeout=timeout, maxsize=1)
    ours_session = XenAPISession(url, "root", "xenroot", "os-xenapi-bench", timeout=timeout,
                                 concurrent=1, protocol="jsonrpc", plugin_version_check=False)
    ours_native = XenAPISession(url, "root", "xenroot", "os-xenapi-bench", timeout=timeout,
                                concurrent=1, protocol="jsonrpc", plugin_version_check=False,
                                native_types=True)
    sdk = XenAPI.Session(url)
    sdk.login_with_password("root", "xenroot", "2.21", "os-xenapi-bench")
    session = sdk.handle
    host, port = url.removeprefix("http://").rsplit(":", 1)
    floor = http.client.HTTPConnection(host, int(port), timeout=300)
    floor_body = json.dumps({"jsonrpc": "2.0", "method": "VM.get_all_records",
                             "params": [session], "id": 1}).encode()

    def floor_call() -> Any:
        floor.request("POST", "/jsonrpc", floor_body, {"Content-Type": "application/json"})
        return json.loads(floor.getresponse().read())["result"]

    calls = {
        "ours_jsonrpc": lambda: ours_json.call("VM.get_all_records", [session]),
        "ours_xmlrpc": lambda: ours_xml.call("VM.get_all_records", [session]),
        "session_jsonrpc": lambda: ours_session.call_xenapi("VM.get_all_records"),
        "session_native": lambda: ours_native.call_xenapi("VM.get_all_records"),
        "sdk_xmlrpc": sdk.xenapi.VM.get_all_records,
        "floor_jsonrpc": floor_call,
    }

    def close() -> None:
        try:
            sdk.xenapi.session.logout()
        finally:
            sdk("close")()
            ours_json.close()
            ours_xml.close()
            ours_session.close()
            ours_native.close()
            floor.close()

    return calls, close


def _cpu(call: Callable[[], Any]) -> tuple[float, int]:
    """(CPU seconds of this process, number of records) for one call."""
    gc.collect()
    start = time.process_time()
    records = call()
    used = time.process_time() - start
    return used, len(records)


def run(quick: bool = False, vms: int = VMS) -> dict[str, Any]:
    rounds = 3 if quick else 12
    times: dict[str, list[float]] = {name: [] for name in CLIENTS}
    with simulator_process(vms) as url:
        calls, close = _clients(url)
        try:
            counts = {name: _cpu(call)[1] for name, call in calls.items()}  # warm-up
            if len(set(counts.values())) != 1:
                raise RuntimeError(f"the clients got different numbers of VMs: {counts}")
            for index in range(rounds):
                order = CLIENTS[index % len(CLIENTS):] + CLIENTS[:index % len(CLIENTS)]
                for name in order:
                    times[name].append(_cpu(calls[name])[0])
        finally:
            close()

    def per_round(measured: str, reference: str) -> float:
        return median([ratio(a, b) for a, b in zip(times[measured], times[reference],
                                                     strict=True)])

    ms = {name: median(values) * 1000 for name, values in times.items()}
    ratios = {
        "jsonrpc_vs_sdk": per_round("ours_jsonrpc", "sdk_xmlrpc"),
        "jsonrpc_vs_floor": per_round("ours_jsonrpc", "floor_jsonrpc"),
        "xmlrpc_vs_sdk": per_round("ours_xmlrpc", "sdk_xmlrpc"),
        "session_jsonrpc_vs_floor": per_round("session_jsonrpc", "floor_jsonrpc"),
        "session_native_vs_floor": per_round("session_native", "floor_jsonrpc"),
    }
    met = {name: ratios[name] <= target for name, target in TARGETS.items()}
    informative = ratios["session_native_vs_floor"]

    def verdict(name: str) -> str:
        return f"{ratios[name]:.3f}x ({'met' if met[name] else 'MISSED'}: <= {TARGETS[name]})"

    return {
        "name": "client_wire",
        "title": f"client CPU per VM.get_all_records, {vms} seeded VMs "
                 f"({counts['sdk_xmlrpc']} records), server in another process",
        "rounds": rounds,
        "records": counts["sdk_xmlrpc"],
        "cpu_ms": ms,
        "cpu_ms_rounds": {name: [v * 1000 for v in values] for name, values in times.items()},
        "ratios": ratios,
        "targets": TARGETS,
        "targets_met": met,
        "rows": [
            ["official SDK, XML-RPC", f"{ms['sdk_xmlrpc']:.1f}", "ms CPU", "", ""],
            ["bare http.client + json.loads", f"{ms['floor_jsonrpc']:.1f}", "ms CPU", "", ""],
            ["os-xenapi, JSON-RPC", f"{ms['ours_jsonrpc']:.1f}", "ms CPU", "SDK",
             verdict("jsonrpc_vs_sdk")],
            ["os-xenapi, JSON-RPC", f"{ms['ours_jsonrpc']:.1f}", "ms CPU", "bare floor",
             verdict("jsonrpc_vs_floor")],
            ["os-xenapi, XML-RPC", f"{ms['ours_xmlrpc']:.1f}", "ms CPU", "SDK",
             verdict("xmlrpc_vs_sdk")],
            ["XenAPISession, JSON-RPC, 0.3.4's types", f"{ms['session_jsonrpc']:.1f}", "ms CPU",
             "bare floor", verdict("session_jsonrpc_vs_floor")],
            ["XenAPISession, JSON-RPC, native types", f"{ms['session_native']:.1f}", "ms CPU",
             "bare floor", f"{informative:.3f}x (no target: what the conversion is measured by)"],
        ],
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
