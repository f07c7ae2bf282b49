"""Benchmark 1: small calls per second, one client, one kept-alive HTTP/1.1 connection.

The official ``XenAPI.Session`` calls ``host.get_API_version_major`` again and again against

* the simulator;
* a stdlib ``SimpleXMLRPCServer`` (HTTP/1.1 keep-alive) answering the same ``{Status, Value}``
  struct: what the simplest Python XML-RPC server does for the same call;
* a bare aiohttp server answering every POST with the simulator's own reply bytes: the floor of
  the simulator's stack (aiohttp plus the client), with no decoding, dispatch or encoding.

The three are measured side by side: each round runs a short slice of calls on every target in
turn (in rotating order), so that a machine that speeds up or slows down over a few seconds
affects all three alike.  Rates are medians over rounds; ratios are medians of the ratios taken
within each round.

    .venv/bin/python bench/small_calls.py [--quick]
"""

from __future__ import annotations

import http.client
import sys
import xmlrpc.client
from typing import Any

from common import (
    FixedBodyServer,
    StdlibXmlRpcServer,
    bounded_loop,
    close_session,
    median,
    ratio,
    sdk_session,
)

from os_xenapi.simulator.runner import Simulator

METHOD = "host.get_API_version_major"


def _raw_reply(port: int, session_ref: str, host_ref: str) -> bytes:
    """The exact bytes the simulator answers the benchmarked call with."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/", xmlrpc.client.dumps((session_ref, host_ref), METHOD))
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{METHOD} answered HTTP {response.status}")
        return body
    finally:
        conn.close()


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 10 if quick else 30
    calls = 100 if quick else 150  # per target per round: short slices follow a drifting machine
    round_cap = 2.0  # seconds per target per round, whatever the call rate
    warmup = 200

    with Simulator(hosts=1, vms=0, auth_failure_delay=0) as sim:
        simulator = sdk_session(sim.url, sim.username, sim.password)
        host = simulator.xenapi.host.get_all()[0]
        value = simulator.xenapi.host.get_API_version_major(host)
        reply = _raw_reply(sim.port, simulator.handle, host)
        stdlib_results = {
            "session.login_with_password": {"Status": "Success", "Value": "OpaqueRef:bench"},
            "session.logout": {"Status": "Success", "Value": ""},
            METHOD: {"Status": "Success", "Value": value},
        }
        with StdlibXmlRpcServer(stdlib_results) as stdlib, FixedBodyServer(reply) as floor:
            sessions = {"simulator": simulator}
            try:
                sessions["stdlib_xmlrpc"] = sdk_session(stdlib.url)
                # The floor answers everything with the reply: its "session ref" is that value.
                sessions["aiohttp_floor"] = sdk_session(floor.url)
                for name, session in sessions.items():
                    call = session.xenapi.host.get_API_version_major
                    if call(host) != value:
                        raise RuntimeError(f"{name} answered {METHOD} differently")
                    bounded_loop(lambda call=call: call(host), warmup, round_cap)
                rates: dict[str, list[float]] = {name: [] for name in sessions}
                order = list(sessions)
                for index in range(rounds):
                    turn = order[index % len(order):] + order[: index % len(order)]
                    for name in turn:
                        call = sessions[name].xenapi.host.get_API_version_major
                        done, elapsed = bounded_loop(
                            lambda call=call: call(host), calls, round_cap
                        )
                        rates[name].append(done / elapsed)
            finally:
                # The stdlib server serves one connection at a time: close before it stops.
                for name, session in sessions.items():
                    close_session(session, logout=name == "simulator")

    rate = {name: median(values) for name, values in rates.items()}
    sim_rate, std_rate, floor_rate = rate["simulator"], rate["stdlib_xmlrpc"], rate["aiohttp_floor"]
    sims = rates["simulator"]
    vs_stdlib = median([ratio(a, b) for a, b in zip(sims, rates["stdlib_xmlrpc"], strict=True)])
    vs_floor = median([ratio(a, b) for a, b in zip(sims, rates["aiohttp_floor"], strict=True)])
    over_floor = median(
        [1e6 / a - 1e6 / b for a, b in zip(sims, rates["aiohttp_floor"], strict=True)]
    )
    return {
        "name": "small_calls",
        "title": f"{METHOD}, SDK, one kept-alive connection",
        "rounds": rounds,
        "calls_per_round": calls,
        "calls_per_s": rate,
        "calls_per_s_rounds": rates,
        "us_per_call": {name: 1e6 / value for name, value in rate.items()},
        "ratio_simulator_vs_stdlib": vs_stdlib,
        "ratio_simulator_vs_floor": vs_floor,
        "simulator_us_over_floor": over_floor,
        "rows": [
            ["simulator", f"{sim_rate:,.0f}", "calls/s", "", ""],
            ["stdlib SimpleXMLRPCServer", f"{std_rate:,.0f}", "calls/s", "reference",
             f"sim/ref {vs_stdlib:.2f}x"],
            ["bare aiohttp, fixed body", f"{floor_rate:,.0f}", "calls/s", "floor",
             f"sim/floor {vs_floor:.2f}x"],
            ["simulator time over floor", f"{over_floor:,.0f}", "us/call", "", ""],
        ],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
