"""Benchmark 8: ``host.call_plugin`` of each os-xenapi dom0 plugin through the simulator.

The official ``XenAPI.Session`` calls the cheapest function of every plugin in
``src/os_xenapi/dom0/etc/xapi.d/plugins`` (JSON ``params``, as ``XenAPISession`` sends them)
against a simulator that runs the real plugin files in a scratch dom0 root seeded with the
``/proc`` and ``/etc`` files they read. Plugins whose every function needs a guest agent, an
image service, an SR of VHDs or ssh are timed on a call their argument check refuses (marked
"refused"): that still pays for the spawn, the imports and the JSON decoding. Next to them, in
the same rounds and environment, ``python3 -c pass``: the floor of any plugin call. Times are
medians over all calls; each ratio is taken within a round, then the median over rounds.

    .venv/bin/python bench/dom0_plugins.py [--quick]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import close_session, median, ratio, sdk_session

from os_xenapi.simulator.plugins import DOM0ENV, PLUGIN_PATH, interpreter
from os_xenapi.simulator.runner import Simulator

STEP = 60.0  # seconds any single call may take before the benchmark gives up
BAD_UUID = {"kwargs": {"instance_uuid": "not-a-uuid"}}
# plugin: (function, params or None, True when the call is refused on purpose)
CALLS: dict[str, tuple[str, dict[str, Any] | None, bool]] = {
    "dom0_plugin_version": ("get_version", None, False),
    "xenstore": ("read_record", {"kwargs": {"dom_id": 7, "path": "data/bench",
                                            "ignore_missing_path": True}}, False),
    "xenhost": ("host_uptime", None, False),
    "bandwidth": ("fetch_all_bandwidth", None, False),
    "config_file": ("get_val", {"args": ["relax-xsm-sr-check"]}, False),
    "console": ("get_console_log", {"args": [7]}, False),
    "kernel": ("remove_kernel_ramdisk", {"kwargs": {"kernel_file": "/boot/guest/gone"}}, False),
    "partition_utils": ("wait_for_dev", {"args": ["/dev/xvdb", 0]}, False),
    # The simulated dom0's own ip stand-in: the real machine's commands are out of reach.
    "netwrap": ("run_command", {"kwargs": {"cmd": ["ip", "-o", "link", "show"]}}, False),
    "agent": ("version", {"kwargs": {"id": "bench", "dom_id": 0}}, True),
    "migration": ("move_vhds_into_sr", BAD_UUID, True),
    "ipxe": ("inject", {"kwargs": {"sr_path": "/etc"}}, True),
    "glance": ("download_vhd2", {"kwargs": {"image_id": "../x"}}, True),
    "workarounds": ("safe_copy_vdis", {"kwargs": {"sr_path": "/etc"}}, True),
}
DOM0_FILES = {
    "proc/uptime": "12345.67 1000.00\n",
    "proc/loadavg": "0.10 0.20 0.30 1/100 42\n",
    "proc/net/dev": "Inter-|   Receive\n face |bytes\n vif7.0: " + " ".join(["1"] * 16) + "\n",
    "etc/xapi.conf": "relax-xsm-sr-check = true\n",
    "var/log/xen/guest/console.7": "login: \n",
    "dev/xvdb": "",
}


def _seed(root: Path) -> None:
    for name, text in DOM0_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def _timed(fn: Any, count: int, seconds: float) -> list[float]:
    """Seconds taken by each of up to ``count`` calls of ``fn``, stopping after ``seconds``."""
    clock = time.perf_counter
    deadline = clock() + seconds
    times: list[float] = []
    while len(times) < count:
        start = clock()
        fn()
        times.append(clock() - start)
        if clock() >= deadline:
            break
    return times


def _plugin_call(session: Any, host: str, plugin: str) -> Any:
    """A function making the benchmark's call of ``plugin``; it raises if the answer is wrong."""
    fn, params, refused = CALLS[plugin]
    args = {} if params is None else {"params": json.dumps(params)}

    def call() -> None:
        try:
            json.loads(session.xenapi.host.call_plugin(host, plugin + ".py", fn, args))
        except Exception as exc:  # noqa: BLE001 - only the expected refusal is let through
            details = getattr(exc, "details", [None])
            if not (refused and details[0] == "OS_XENAPI_INVALID_ARGUMENT"):
                raise RuntimeError(f"{plugin}.{fn} failed: {details}") from None
        else:
            if refused:
                raise RuntimeError(f"{plugin}.{fn} was expected to refuse its arguments")
    return call


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 3 if quick else 6
    calls = 3 if quick else 6  # per target per round
    round_cap = 10.0  # seconds per target per round
    root = Path(tempfile.mkdtemp(prefix="bench-dom0-"))
    try:
        _seed(root)
        with Simulator(hosts=1, vms=0, auth_failure_delay=0, dom0_root=root) as sim:
            session = sdk_session(sim.url, sim.username, sim.password)
            try:
                host = session.xenapi.host.get_all()[0]
                env = {"PATH": PLUGIN_PATH, "XAPI_SIM_PYTHON": interpreter(),
                       "PYTHONPATH": str(DOM0ENV / "lib")}
                python3 = shutil.which("python3", path=env["PATH"])
                if python3 is None:
                    raise RuntimeError("no python3 on the plugins' PATH")
                targets = {plugin: _plugin_call(session, host, plugin) for plugin in CALLS}
                targets["python3 -c pass"] = lambda: subprocess.run(
                    [python3, "-c", "pass"], env=env, check=True, timeout=STEP)
                for fn in targets.values():  # warm-up, and a check that every call works
                    _timed(fn, 2, round_cap)
                per_round: dict[str, list[float]] = {name: [] for name in targets}
                samples: dict[str, list[float]] = {name: [] for name in targets}
                order = list(targets)
                for index in range(rounds):
                    shift = index % len(order)
                    for name in order[shift:] + order[:shift]:
                        times = _timed(targets[name], calls, round_cap)
                        samples[name].extend(t * 1000 for t in times)
                        per_round[name].append(median(times) * 1000)
            finally:
                close_session(session)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    floor = "python3 -c pass"
    med = {name: median(values) for name, values in samples.items()}
    ratios = {name: median([ratio(value, base) for value, base in
                            zip(per_round[name], per_round[floor], strict=True)])
              for name in CALLS}
    rows = [[f"{plugin}.{CALLS[plugin][0]}" + (" (refused)" if CALLS[plugin][2] else ""),
             f"{med[plugin]:.1f}", "ms", "python3 -c pass", f"{ratios[plugin]:.2f}x"]
            for plugin in CALLS]
    rows.append([floor + ", median", f"{med[floor]:.1f}", "ms", "floor", ""])
    return {
        "name": "dom0_plugins",
        "title": "host.call_plugin of each dom0 plugin's cheapest call vs python3 -c pass",
        "rounds": rounds,
        "calls_per_round": calls,
        "python3": python3,
        "median_ms": med,
        "round_median_ms": per_round,
        "ratio_vs_python_pass": ratios,
        "refused_on_purpose": sorted(p for p, (_, _, refused) in CALLS.items() if refused),
        "rows": rows,
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
