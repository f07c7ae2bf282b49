"""Benchmark 7: 8 threads calling ``VM.get_record`` through one XenAPISession, against the SDK.

The simulator runs as another process (``os-xenapi simulator --vms 100``). Eight threads call
``VM.get_record`` on the seeded VMs in turn, as fast as they can, for a bounded time:

* os-xenapi: one ``XenAPISession(concurrent=8)`` shared by the eight threads (JSON-RPC, which
  ``protocol="auto"`` picks), and the same forced to XML-RPC;
* the official SDK: eight ``XenAPI.Session`` objects, one per thread (a Session is not
  thread-safe), each logged in on its own.

The target (issue 4) is ours >= the SDK's calls per second. Each client runs in every round,
in a rotating order, for ``seconds / rounds``; rates are total calls over total time.

    .venv/bin/python bench/client_sessions.py [--quick | --long]

5 s per client by default (``make bench``), 2 s with ``--quick``, 20 s with ``--long``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import XenAPI
from client_wire import simulator_process

from os_xenapi.client.session import XenAPISession

THREADS = 8
VMS = 100
SECONDS = {"quick": 2.0, "default": 5.0, "long": 20.0}
WARM_UP = 0.5
CLIENTS = ("ours_jsonrpc", "ours_xmlrpc", "sdk")
TARGET = 1.0  # ours / SDK, calls per second


def _drive(calls: list[Callable[[str], Any]], refs: list[str], seconds: float) -> tuple[int, float]:
    """Run ``calls[i]`` in thread i over ``refs`` until ``seconds`` pass; (calls, elapsed)."""
    counts = [0] * len(calls)
    errors: list[BaseException] = []
    gate = threading.Barrier(len(calls) + 1)
    deadline = [0.0]

    def work(index: int) -> None:
        call = calls[index]
        gate.wait()
        clock = time.perf_counter
        done = 0
        try:
            while clock() < deadline[0]:
                call(refs[(index * 7 + done) % len(refs)])
                done += 1
        except BaseException as exc:  # noqa: BLE001 - reported after the run
            errors.append(exc)
        counts[index] = done

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    deadline[0] = start + seconds
    gate.wait()
    for thread in threads:
        thread.join(seconds + 60)
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} thread(s) failed: {errors[0]!r}")
    return sum(counts), elapsed


def run(quick: bool = False, long: bool = False) -> dict[str, Any]:
    seconds = SECONDS["quick" if quick else "long" if long else "default"]
    rounds = 1 if quick else 2
    totals = {name: [0, 0.0] for name in CLIENTS}
    with simulator_process(VMS) as url:
        ours = XenAPISession(url, "root", "xenroot", "os-xenapi-bench", concurrent=THREADS)
        ours_xml = XenAPISession(url, "root", "xenroot", "os-xenapi-bench", concurrent=THREADS,
                                 protocol="xmlrpc")
        sdks = []
        try:
            for _ in range(THREADS):
                sdk = XenAPI.Session(url)
                sdks.append(sdk)
                sdk.xenapi.login_with_password("root", "xenroot", "2.21", "os-xenapi-bench")
            refs = sorted(ref for ref, vm in ours.VM.get_all_records().items()
                          if not vm["is_a_template"])
            callers = {
                "ours_jsonrpc": [ours.VM.get_record] * THREADS,
                "ours_xmlrpc": [ours_xml.VM.get_record] * THREADS,
                "sdk": [sdk.xenapi.VM.get_record for sdk in sdks],
            }
            for name in CLIENTS:  # warm-up: connections made, sessions logged in
                _drive(callers[name], refs, WARM_UP)
            for index in range(rounds):
                order = CLIENTS[index % len(CLIENTS):] + CLIENTS[:index % len(CLIENTS)]
                for name in order:
                    count, elapsed = _drive(callers[name], refs, seconds / rounds)
                    totals[name][0] += count
                    totals[name][1] += elapsed
            protocol = ours.protocol
        finally:
            ours.close()
            ours_xml.close()
            for sdk in sdks:
                try:
                    sdk.xenapi.session.logout()
                finally:
                    sdk("close")()
    rates = {name: calls / elapsed for name, (calls, elapsed) in totals.items()}
    ratio = rates["ours_jsonrpc"] / rates["sdk"]
    ratio_xml = rates["ours_xmlrpc"] / rates["sdk"]
    verdict = f"{ratio:.2f}x ({'met' if ratio >= TARGET else 'MISSED'}: >= {TARGET})"
    return {
        "name": "client_sessions",
        "title": f"{THREADS} threads doing VM.get_record for {seconds:g} s per client, "
                 f"{VMS} VMs, server in another process",
        "seconds_per_client": seconds,
        "threads": THREADS,
        "calls": {name: totals[name][0] for name in CLIENTS},
        "calls_per_second": rates,
        "ours_protocol": protocol,
        "ratio": ratio,
        "ratio_xmlrpc": ratio_xml,
        "target": TARGET,
        "target_met": ratio >= TARGET,
        "rows": [
            ["8 official SDK sessions (XML-RPC)", f"{rates['sdk']:.0f}", "calls/s", "", ""],
            ["1 XenAPISession, concurrent=8", f"{rates['ours_jsonrpc']:.0f}", "calls/s",
             "SDK", verdict],
            ["1 XenAPISession, XML-RPC forced", f"{rates['ours_xmlrpc']:.0f}", "calls/s",
             "SDK", f"{ratio_xml:.2f}x"],
        ],
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv, long="--long" in sys.argv), indent=2))
