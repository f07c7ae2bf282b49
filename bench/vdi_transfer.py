"""Benchmark 5: VDI transfer throughput through ``/import_raw_vdi`` and ``/export_raw_vdi``.

A 256 MiB VDI full of random bytes moves through the simulator three ways, each done by two
clients against the same simulator:

* upload raw: Python ``http.client`` (the SDK's session, a task adopted, as nova does, the body
  read from a file and sent in 1 MiB pieces) next to ``curl -T file``;
* download raw and download VHD: ``http.client`` reading 1 MiB pieces into a file next to
  ``curl -o file``.

Throughput is in MB/s (10^6 bytes per second) of VDI bytes, measured to the end of the response
(the simulator closes the connection once the task is complete), after one unmeasured upload
that allocates the VDI's file. The ratio is Python / curl throughput, taken within each round,
then the median over rounds. curl runs as its own process, while the Python client shares the
interpreter with the simulator, as a test suite's client does. Every upload's task is checked,
and the first round's downloads are compared with the source.

    .venv/bin/python bench/vdi_transfer.py [--quick]
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import close_session, median, ratio, sdk_session

from os_xenapi.simulator.runner import Simulator

MiB = 1024 * 1024
PIECE = MiB
TIMEOUT = 120.0  # seconds any one transfer may take


def _address(sim: Simulator) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(sim.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _python_put(sim: Simulator, query: str, source: Path) -> None:
    conn = http.client.HTTPConnection(*_address(sim), timeout=TIMEOUT)
    try:
        conn.putrequest("PUT", "/import_raw_vdi?" + query, skip_accept_encoding=True)
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(source.stat().st_size))
        conn.endheaders()
        with open(source, "rb") as handle:
            while piece := handle.read(PIECE):
                conn.send(piece)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"import answered HTTP {response.status}")
    finally:
        conn.close()


def _python_get(sim: Simulator, query: str, target: Path) -> None:
    conn = http.client.HTTPConnection(*_address(sim), timeout=TIMEOUT)
    try:
        conn.request("GET", "/export_raw_vdi?" + query)
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"export answered HTTP {response.status}")
        with open(target, "wb") as handle:
            while piece := response.read(PIECE):
                handle.write(piece)
    finally:
        conn.close()


def _curl(*args: str) -> None:
    subprocess.run(["curl", "--silent", "--show-error", "--fail", *args], check=True,
                   timeout=TIMEOUT, stdout=subprocess.DEVNULL)


def _sha256(path: Path, skip_head: int = 0, skip_tail: int = 0) -> str:
    """The file's SHA-256, leaving out its first ``skip_head`` and last ``skip_tail`` bytes."""
    digest = hashlib.sha256()
    left = path.stat().st_size - skip_head - skip_tail
    with open(path, "rb") as handle:
        handle.seek(skip_head)
        while left > 0 and (piece := handle.read(min(4 * MiB, left))):
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def run(quick: bool = False) -> dict[str, Any]:
    if shutil.which("curl") is None:
        raise RuntimeError("curl is missing: run scripts/install-system-deps.sh")
    size = 64 * MiB if quick else 256 * MiB
    rounds = 1 if quick else 5
    with tempfile.TemporaryDirectory(prefix="bench-vdi-") as tmp, \
            Simulator(auth_failure_delay=0) as sim:
        work = Path(tmp)
        source = work / "source.raw"
        with open(source, "wb") as handle:
            for _ in range(size // (4 * MiB)):
                handle.write(os.urandom(4 * MiB))
        expected = _sha256(source)
        session = sdk_session(sim.url, sim.username, sim.password)
        x = session.xenapi
        try:
            sr = x.pool.get_default_SR(x.pool.get_all()[0])
            vdi = x.VDI.create({"name_label": "bench", "name_description": "", "SR": sr,
                                "virtual_size": str(size), "type": "user", "sharable": False,
                                "read_only": False, "other_config": {}})
            base = f"{sim.url}/import_raw_vdi?"

            def query(**extra: str) -> str:
                return urllib.parse.urlencode({"session_id": session._session, "vdi": vdi,
                                               **extra})

            def upload(client: str) -> None:
                task = x.task.create(f"bench upload ({client})", "")
                if client == "python":
                    _python_put(sim, query(task_id=task), source)
                else:
                    _curl("--upload-file", str(source), base + query(task_id=task))
                status = x.task.get_status(task)
                x.task.destroy(task)
                if status != "success":
                    raise RuntimeError(f"upload by {client} ended {status}")

            def download(fmt: str) -> Callable[[str], None]:
                def fetch(client: str) -> None:
                    target = work / f"{client}.{fmt}"
                    if client == "python":
                        _python_get(sim, query(format=fmt), target)
                    else:
                        _curl("--output", str(target),
                              f"{sim.url}/export_raw_vdi?" + query(format=fmt))
                return fetch

            operations = {"upload_raw": upload, "download_raw": download("raw"),
                          "download_vhd": download("vhd")}
            seconds: dict[str, dict[str, list[float]]] = {
                name: {"python": [], "curl": []} for name in operations}
            upload("curl")  # warm-up: the first write into a fresh file allocates its blocks
            for index in range(rounds):
                for name, operation in operations.items():
                    clients = ["python", "curl"] if index % 2 == 0 else ["curl", "python"]
                    for client in clients:
                        start = time.perf_counter()
                        operation(client)
                        seconds[name][client].append(time.perf_counter() - start)
                    if index == 0:
                        _check(name, work, expected)
        finally:
            close_session(session)

    rate = {name: {client: median([size / 1e6 / s for s in values])
                   for client, values in by_client.items()}
            for name, by_client in seconds.items()}
    labels = {"upload_raw": "upload raw (PUT)", "download_raw": "download raw (GET)",
              "download_vhd": "download VHD (GET)"}
    # Python / curl throughput within each round (curl's time / Python's), then the median.
    ratios = {name: median([ratio(c, p) for p, c in zip(t["python"], t["curl"], strict=True)])
              for name, t in seconds.items()}
    rows = [[f"{labels[name]}, Python http.client", f"{rate[name]['python']:.0f}", "MB/s",
             f"curl {rate[name]['curl']:.0f} MB/s", f"{ratios[name]:.2f}x"]
            for name in operations]
    return {
        "name": "vdi_transfer",
        "title": f"VDI transfer of {size // MiB} MiB of random data, Python client vs curl",
        "vdi_mib": size // MiB,
        "rounds": rounds,
        "mb_per_s": rate,
        "ratio_python_vs_curl": ratios,
        "seconds": seconds,
        "rows": rows,
    }


def _check(name: str, work: Path, expected: str) -> None:
    """The downloads of the first round must hold the uploaded bytes."""
    if name == "download_raw":
        for client in ("python", "curl"):
            if _sha256(work / f"{client}.raw") != expected:
                raise RuntimeError(f"raw download by {client} differs from the upload")
    if name == "download_vhd":
        # Two exports of one VDI differ only in their footers (unique id and timestamp).
        python, curl = work / "python.vhd", work / "curl.vhd"
        if _sha256(python, 512, 512) != _sha256(curl, 512, 512):
            raise RuntimeError("the VHD downloads of python and curl differ")


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
