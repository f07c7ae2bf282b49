"""Run every simulator benchmark, print a table, and write ``bench/results.json``.

    .venv/bin/python bench/run.py [--quick] [--only NAME ...] [--output PATH]

Each benchmark is a module of this directory with ``run(quick: bool) -> dict``; the dict holds
its figures and the ``rows`` printed here: metric, value, unit, reference, ratio.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("small_calls", "get_all_records", "event_wakeup", "call_plugin", "vdi_transfer",
              "client_wire", "client_sessions", "dom0_plugins", "soak")
HEADERS = ("metric", "value", "unit", "reference", "ratio")


def _clean(value: Any) -> Any:
    """``value`` with NaN and infinities as null, so that results.json stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _table(results: list[dict[str, Any]]) -> str:
    rows = [row for result in results for row in result["rows"]]
    widths = [max(len(str(row[i])) for row in [HEADERS, *rows]) for i in range(len(HEADERS))]
    right = {1}  # values line up on the right

    def line(row: Any) -> str:
        cells = [
            str(cell).rjust(width) if i in right else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(["-" * w for w in widths]))
    out = [line(HEADERS), rule]
    for result in results:
        out.append(f"[{result['name']}] {result['title']} ({result['seconds']:.1f} s)")
        out.extend(line(row) for row in result["rows"])
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke test")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--output", type=Path, default=HERE / "results.json",
                        help="where to write the figures (default: bench/results.json)")
    args = parser.parse_args(argv)

    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    started = time.perf_counter()
    results = []
    failed = []
    for name in args.only or BENCHMARKS:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        begin = time.perf_counter()
        try:
            result = importlib.import_module(name).run(quick=args.quick)
        except Exception as exc:  # noqa: BLE001 - reported, and the other benchmarks still run
            traceback.print_exc()
            failed.append(name)
            error = f"{type(exc).__name__}: {exc}"
            result = {"name": name, "title": "FAILED", "error": error,
                      "rows": [["error", "", "", error[:60], ""]]}
        result["seconds"] = time.perf_counter() - begin
        results.append(result)
        gc.collect()  # the big payloads of one benchmark must not weigh on the next
    total = time.perf_counter() - started

    print()
    print(_table(results), end="")
    print(f"total {total:.1f} s. Ratios are simulator / reference (calls/s: higher is better;"
          " times: lower is better),\ntaken within each round and then the median over rounds,"
          " so they can differ from value / reference.")

    report = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "aiohttp": aiohttp.__version__,
            "quick": args.quick,
            "total_seconds": total,
        },
        "benchmarks": {result.pop("name"): result for result in results},
    }
    for result in report["benchmarks"].values():
        result.pop("rows", None)
    args.output.write_text(json.dumps(_clean(report), indent=2) + "\n")
    print(f"figures written to {args.output}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
