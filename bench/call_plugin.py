"""Benchmark 4: the latency of ``host.call_plugin`` on a trivial plugin function.

The official ``XenAPI.Session`` calls ``host.call_plugin(host, "noop.py", "noop", {})``; the
plugin is a plain ``XenAPIPlugin.dispatch`` file whose function returns ``""``. Next to it, in
the same rounds and with the same environment the simulator gives plugins:

* ``python3 -c pass``: what starting the interpreter costs, the floor of any plugin call;
* the plugin itself with the same ``argv`` (``[path, methodCall XML]``), spawned directly: the
  interpreter plus ``XenAPIPlugin``'s imports, parsing and answer, with no XAPI around it.

So ``call_plugin - bare plugin`` is what the XAPI path adds (the HTTP round-trip, dispatch,
spawning through asyncio, reading the answer) and ``bare plugin / python -c pass`` what the
plugin machinery costs over the interpreter. Each round times a short slice of each target in
rotating order; times are medians (and p95) over all calls, ratios and the difference are
taken within each round and then the median over rounds.

    .venv/bin/python bench/call_plugin.py [--quick]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import close_session, median, percentile, ratio, sdk_session

from os_xenapi.simulator.codec import encode_xmlrpc_call
from os_xenapi.simulator.plugins import DOM0ENV, PLUGIN_PATH, interpreter
from os_xenapi.simulator.runner import Simulator

PLUGIN = "noop.py"
SOURCE = '''#!/usr/bin/env python3
import XenAPIPlugin


def noop(session, args):
    return ""


if __name__ == "__main__":
    XenAPIPlugin.dispatch({"noop": noop})
'''
STEP = 60.0  # seconds any single spawn or call may take before the benchmark gives up


def _environment(sim: Simulator) -> dict[str, str]:
    """The environment the simulator gives its plugins (less the xenstore socket, unused here)."""
    return {"PATH": PLUGIN_PATH, "XAPI_SIM_PYTHON": interpreter(),
            "PYTHONPATH": str(DOM0ENV / "lib"),
            "XAPI_SIM_SOCKET": str(sim.unix_path)}


def _timed(fn: Any, count: int, seconds: float) -> list[float]:
    """Seconds taken by each of up to ``count`` calls of ``fn``, stopping after ``seconds``."""
    clock = time.perf_counter
    deadline = clock() + seconds
    times = []
    while len(times) < count:
        start = clock()
        fn()
        times.append(clock() - start)
        if clock() >= deadline:
            break
    return times


def _spawn(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, capture_output=True,
                          timeout=STEP, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr[-500:]!r}")


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 3 if quick else 8
    calls = 4 if quick else 10  # per target per round
    round_cap = 10.0  # seconds per target per round

    plugins = Path(tempfile.mkdtemp(prefix="bench-plugins-"))
    try:
        (plugins / PLUGIN).write_text(SOURCE)
        (plugins / PLUGIN).chmod(0o755)
        with Simulator(hosts=1, vms=0, auth_failure_delay=0, plugins_dir=plugins) as sim:
            session = sdk_session(sim.url, sim.username, sim.password)
            try:
                host = session.xenapi.host.get_all()[0]
                env = _environment(sim)
                python3 = shutil.which("python3", path=env["PATH"])
                if python3 is None:
                    raise RuntimeError("no python3 on the plugins' PATH")
                call = encode_xmlrpc_call("noop", [session.handle, {}]).decode()
                targets = {
                    "call_plugin": lambda: session.xenapi.host.call_plugin(
                        host, PLUGIN, "noop", {}),
                    "bare_plugin": lambda: _spawn([str(plugins / PLUGIN), call], env),
                    "python_pass": lambda: _spawn([python3, "-c", "pass"], env),
                }
                if targets["call_plugin"]() != "":
                    raise RuntimeError("the noop plugin answered something else than ''")
                for fn in targets.values():  # warm-up: page cache, .pyc files
                    _timed(fn, 3, round_cap)
                per_round: dict[str, list[list[float]]] = {name: [] for name in targets}
                order = list(targets)
                for index in range(rounds):
                    for name in order[index % 3:] + order[: index % 3]:
                        per_round[name].append(_timed(targets[name], calls, round_cap))
            finally:
                close_session(session)
    finally:
        shutil.rmtree(plugins, ignore_errors=True)

    ms = {name: [t * 1000 for slice_ in slices for t in slice_]
          for name, slices in per_round.items()}
    med = {name: median(values) for name, values in ms.items()}
    p95 = {name: percentile(values, 95) for name, values in ms.items()}
    # Ratios and differences within each round, then their median over rounds (as in run.py).
    round_med = {name: [median(s) * 1000 for s in slices] for name, slices in per_round.items()}
    pairs = list(zip(round_med["call_plugin"], round_med["bare_plugin"], round_med["python_pass"],
                     strict=True))
    over_plugin = median([call - bare for call, bare, _ in pairs])
    call_vs_bare = median([ratio(call, bare) for call, bare, _ in pairs])
    bare_vs_floor = median([ratio(bare, floor) for _, bare, floor in pairs])
    return {
        "name": "call_plugin",
        "title": "host.call_plugin of a noop plugin, SDK, vs bare spawns",
        "rounds": rounds,
        "calls_per_round": calls,
        "python3": python3,
        "median_ms": med,
        "p95_ms": p95,
        "samples": len(ms["call_plugin"]),
        "xapi_path_ms_over_bare_plugin": over_plugin,
        "round_median_ms": round_med,
        "ratio_call_plugin_vs_bare_plugin": call_vs_bare,
        "ratio_bare_plugin_vs_python_pass": bare_vs_floor,
        "rows": [
            ["host.call_plugin, median", f"{med['call_plugin']:.1f}", "ms", "", ""],
            ["host.call_plugin, p95", f"{p95['call_plugin']:.1f}", "ms", "", ""],
            ["bare plugin spawn, median", f"{med['bare_plugin']:.1f}", "ms", "reference",
             f"call/bare {call_vs_bare:.2f}x"],
            ["bare plugin spawn, p95", f"{p95['bare_plugin']:.1f}", "ms", "", ""],
            ["python3 -c pass, median", f"{med['python_pass']:.1f}", "ms", "floor",
             f"bare/floor {bare_vs_floor:.2f}x"],
            ["python3 -c pass, p95", f"{p95['python_pass']:.1f}", "ms", "", ""],
            ["XAPI path over bare plugin", f"{over_plugin:.1f}", "ms/call", "", ""],
        ],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
