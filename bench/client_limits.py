"""Benchmark 9: what a hostile host can make the client wait for and hold in memory.

Each scenario runs the client in a process of its own (so that its peak RSS is its own) against
a small hostile server in this process:

* ``huge``: every POST is answered with a 1 GiB JSON-RPC reply, ``Content-Length`` given;
* ``huge_chunked``: the same 1 GiB reply, chunked (no length up front);
* ``trickle``: the reply comes one byte every 2 s; the client is ``XenAPISession(timeout=5)``;
* ``closed``: nothing listens on the port; the client is ``XenAPISession``.

For each it reports the time from the call to its error (or to its return), the error's class
and first words, the client's peak RSS (``VmHWM``) and, as the reference, the peak RSS of the same
process just before the call (interpreter plus os-xenapi imported). The goals (issue 9) are a
peak under 300 MiB for the 1 GiB reply and an error within ``timeout + 1`` s for the trickle. A
client that has not answered after ``--give-up`` seconds (default 30) is killed and reported so.

    .venv/bin/python bench/client_limits.py [--only NAME ...] [--give-up SECONDS]

To measure another checkout's client side by side (the code before a fix), run it with
``PYTHONPATH=/path/to/that/checkout/src``.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

GiB = 1 << 30
CHUNK = 1 << 20
TRICKLE_PAUSE = 2.0  # seconds between two bytes of the trickled reply
SESSION_TIMEOUT = 5  # XenAPISession(timeout=...) of the trickle scenario
SCENARIOS = ("huge", "huge_chunked", "trickle", "closed")

# --------------------------------------------------------------------------- hostile servers


def read_request(conn: socket.socket) -> bool:
    """Read one HTTP request (headers and Content-Length body); False at end of stream."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        rest += chunk
    return True


def _huge(conn: socket.socket, chunked: bool) -> None:
    prefix, suffix = b'{"jsonrpc":"2.0","id":1,"result":"', b'"}'
    size = GiB
    filler = b"A" * CHUNK
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else (
        b"Content-Length: %d\r\n\r\n" % size)
    conn.sendall(head)
    pieces = [prefix]
    left = size - len(prefix) - len(suffix)
    while left > 0:
        pieces.append(filler[:min(left, CHUNK)])
        left -= len(pieces[-1])
        for piece in pieces:
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        pieces = []
    conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(suffix), suffix) if chunked else suffix)


def _trickle(conn: socket.socket, stop: threading.Event) -> None:
    reply = (b'{"jsonrpc":"2.0","id":1,"result":"OpaqueRef:' + b"t" * 64 + b'"}')
    message = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(reply), reply))
    for index in range(len(message)):
        conn.sendall(message[index:index + 1])
        if stop.wait(TRICKLE_PAUSE):
            return


class Hostile:
    """A TCP server on 127.0.0.1 that answers each request with ``answer(conn)``."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self.stop = threading.Event()
        self._answer = answer
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                while not self.stop.is_set() and read_request(conn):
                    self._answer(conn)
            except OSError:
                pass  # the client went away: what it is meant to do

    def __enter__(self) -> Hostile:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(5)
        self._server.close()


# --------------------------------------------------------------------------- the client side


def _peak_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def client(scenario: str, url: str) -> dict[str, Any]:
    """Run one scenario's call in this process; what happened, as a dict."""
    warnings: list[str] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(record.getMessage())

    logging.getLogger("os_xenapi").addHandler(Count(logging.WARNING))
    from os_xenapi.client.session import XenAPISession
    from os_xenapi.client.transport import Transport

    if scenario in ("huge", "huge_chunked"):
        transport = Transport(url, protocol="jsonrpc")

        def call() -> Any:
            return transport.call("VM.get_all_records", ["OpaqueRef:x"])
    else:
        timeout = SESSION_TIMEOUT if scenario == "trickle" else 10

        def call() -> Any:
            return XenAPISession(url, "root", "pw", timeout=timeout)
    before = _peak_kib()
    started = time.monotonic()
    try:
        result = call()
        outcome = f"returned a {type(result).__name__} of {len(result)} items" if hasattr(
            result, "__len__") else f"returned {type(result).__name__}"
    except Exception as exc:  # noqa: BLE001 - what it raised is the figure
        outcome = f"{type(exc).__name__}: {str(exc)[:160]}"
    elapsed = time.monotonic() - started
    return {"scenario": scenario, "seconds": round(elapsed, 2), "outcome": outcome,
            "peak_mib": round(_peak_kib() / 1024, 1), "baseline_mib": round(before / 1024, 1),
            "warnings": len(warnings)}


# --------------------------------------------------------------------------- driver


def _servers(scenario: str) -> Any:
    if scenario == "huge":
        return Hostile(lambda conn: _huge(conn, chunked=False))
    if scenario == "huge_chunked":
        return Hostile(lambda conn: _huge(conn, chunked=True))
    if scenario == "trickle":
        holder: list[Hostile] = []
        server = Hostile(lambda conn: _trickle(conn, holder[0].stop))
        holder.append(server)
        return server
    return _Closed()


class _Closed:
    """A port nothing listens on (bound, then closed)."""

    def __enter__(self) -> _Closed:
        with socket.create_server(("127.0.0.1", 0)) as probe:
            self.url = f"http://127.0.0.1:{probe.getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def measure(scenario: str, give_up: float) -> dict[str, Any]:
    with _servers(scenario) as server:
        command = [sys.executable, __file__, "--client", scenario, server.url]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=give_up,
                                  check=False)
        except subprocess.TimeoutExpired:
            return {"scenario": scenario, "seconds": f"> {give_up:g}",
                    "outcome": f"no error after {give_up:g} s (killed)"}
    if done.returncode != 0:
        return {"scenario": scenario, "outcome": f"client failed: {done.stderr[-300:]}"}
    return json.loads(done.stdout)


def run(quick: bool = False, only: tuple[str, ...] = SCENARIOS,
        give_up: float = 30.0) -> dict[str, Any]:
    del quick  # every scenario is short already
    results = [measure(name, give_up) for name in only]
    rows = []
    for item in results:
        rows.append([f"{item['scenario']}: time to error", str(item.get("seconds")), "s",
                     str(SESSION_TIMEOUT) if item["scenario"] == "trickle" else "", ""])
        if "peak_mib" in item:
            rows.append([f"{item['scenario']}: peak RSS", str(item["peak_mib"]), "MiB",
                         str(item["baseline_mib"]),
                         f"{item['peak_mib'] / item['baseline_mib']:.2f}"])
    return {"name": "client_limits", "title": "client against hostile hosts", "results": results,
            "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=SCENARIOS)
    parser.add_argument("--give-up", type=float, default=30.0)
    parser.add_argument("--client", nargs=2, metavar=("SCENARIO", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(client(*args.client)))
        return
    report = run(only=tuple(args.only or SCENARIOS), give_up=args.give_up)
    for item in report["results"]:
        print(json.dumps(item))


if __name__ == "__main__":
    main()
