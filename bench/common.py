"""What the benchmarks share: statistics, bounded timing loops, and the reference servers.

Everything listens on 127.0.0.1 and runs in a background thread of the benchmark's own process,
like the simulator itself (``Simulator`` serves from a thread), so that the simulator and its
references pay the same price for sharing one interpreter with the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import XenAPI
from aiohttp import web

LOOPBACK = "127.0.0.1"

# -- statistics ---------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(value: float, reference: float) -> float:
    return value / reference if reference else math.nan


def bounded_loop(fn: Callable[[], Any], count: int, seconds: float) -> tuple[int, float]:
    """Call ``fn`` ``count`` times or until ``seconds`` have passed; (calls made, elapsed)."""
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    done = 0
    while done < count:
        fn()
        done += 1
        if clock() >= deadline:
            break
    return done, clock() - start


def time_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds taken, result) of one call of ``fn``, with the garbage collector held off.

    Client, server and reference share one process; a full collection set off by whichever of
    them allocates last would walk everyone's objects and land on a timing at random (as timeit
    does, collections are kept out of the measured span).
    """
    with no_gc():
        start = time.perf_counter()
        result = fn()
        return time.perf_counter() - start, result


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Collect now, then keep the garbage collector off for the span of the block."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# -- SDK sessions ---------------------------------------------------------------------------------


def sdk_session(url: str, username: str = "root", password: str = "xenroot") -> XenAPI.Session:
    """A logged-in official SDK session (it keeps one HTTP/1.1 connection)."""
    session = XenAPI.Session(url)
    session.login_with_password(username, password, "1.0", "os-xenapi-bench")
    return session


def close_session(session: XenAPI.Session, logout: bool = True) -> None:
    """Log out (if asked) and close the session's kept-alive connection."""
    try:
        if logout:
            session.xenapi.session.logout()
    finally:
        session("close")()


# -- reference servers -------------------------------------------------------------------------


class _KeepAliveHandler(SimpleXMLRPCRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as xapi and the simulator do
    disable_nagle_algorithm = True  # as aiohttp does; avoids delayed-ACK stalls on some kernels
    timeout = 30  # an idle kept-alive connection cannot pin the server for ever

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StdlibXmlRpcServer:
    """A stdlib ``SimpleXMLRPCServer`` answering each given method with a fixed result."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.server = SimpleXMLRPCServer(
            (LOOPBACK, 0), requestHandler=_KeepAliveHandler, logRequests=False, allow_none=True
        )
        for name, result in results.items():
            self.server.register_function(_constant(result), name)
        self.port = self.server.server_address[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
            name="bench-stdlib-xmlrpc", daemon=True,
        )

    def __enter__(self) -> StdlibXmlRpcServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Clients must have closed their connections by now: this server serves one at a time.
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


def _constant(result: Any) -> Callable[..., Any]:
    def answer(*_params: Any) -> Any:
        return result

    return answer


class FixedBodyServer:
    """A bare aiohttp server answering every POST with the same body: the floor of our stack."""

    def __init__(self, body: bytes, content_type: str = "text/xml") -> None:
        self.body = body
        self.content_type = content_type
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="bench-aiohttp", daemon=True)

    async def _answer(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=self.body, content_type=self.content_type)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, self.sock).start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._error = exc
            self._ready.set()
            self.loop.close()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._runner.cleanup())
        self.loop.close()

    def __enter__(self) -> FixedBodyServer:
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("the aiohttp reference server did not start")
        if self._error is not None:
            raise RuntimeError("the aiohttp reference server did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
