"""``Simulator``: a whole simulated pool served on loopback from a background thread.

    with Simulator(hosts=1, vms=0) as sim:
        session = XenAPI.Session(sim.url)
        session.login_with_password(sim.username, sim.password)
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .server import Server
from .xapi import Config, Xapi

T = TypeVar("T")
GC_INTERVAL = 60.0  # seconds between two sweeps of expired tasks and sessions


class Simulator:
    """A running XAPI simulator; use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(
        self,
        hosts: int = 1,
        vms: int = 0,
        *,
        listen: str = "127.0.0.1",
        port: int = 0,
        unix_path: str | None = None,
        username: str = "root",
        password: str = "xenroot",
        auth_failure_delay: float = 5.0,
        operation_delay: float = 0.0,
        state_dir: str | None = None,
    ) -> None:
        first = listen.split(".")
        if len(first) != 4:
            raise ValueError(f"listen must be an IPv4 address, not {listen!r}")
        base = int(first[3])
        self.addresses = [".".join(first[:3] + [str(base + i)]) for i in range(max(1, hosts))]
        self.config = Config(
            username=username,
            password=password,
            auth_failure_delay=auth_failure_delay,
            operation_delay=operation_delay,
            hosts=max(1, hosts),
            vms=vms,
        )
        self.state_dir = state_dir
        self.port = port
        self._tempdir: str | None = None
        self.unix_path = unix_path
        self.loop: asyncio.AbstractEventLoop | None = None
        self.xapi: Xapi | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- what clients need --------------------------------------------------------------------

    @property
    def username(self) -> str:
        return self.config.username

    @property
    def password(self) -> str:
        return self.config.password

    @property
    def url(self) -> str:
        """The master's URL, ``http://127.0.0.1:PORT``."""
        return self.urls[0]

    @property
    def urls(self) -> list[str]:
        """Every host's URL, master first (as long as the master has not been moved)."""
        return [f"http://{address}:{self.port}" for address in self.addresses]

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> Simulator:
        self._tempdir = tempfile.mkdtemp(prefix="xapi-sim-")
        if self.unix_path is None:
            self.unix_path = os.path.join(self._tempdir, "xapi")
        self.config.state_dir = self.state_dir or os.path.join(self._tempdir, "state")
        self._thread = threading.Thread(target=self._main, name="xapi-simulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self.stop()
            raise self._error
        return self

    def _main(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._shutdown())
        self.loop.close()

    async def _start(self) -> None:
        self.xapi = Xapi(self.config, self.addresses)
        self._server = Server(self.xapi, self.port, self.unix_path)
        await self._server.start()
        self.port = self._server.port
        self._gc = asyncio.get_running_loop().create_task(self._collect_garbage())

    async def _collect_garbage(self) -> None:
        while True:
            await asyncio.sleep(GC_INTERVAL)
            assert self.xapi is not None
            self.xapi.collect_garbage()

    async def _shutdown(self) -> None:
        if self._server is not None:
            await self._server.stop()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        if self.loop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._tempdir:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reaching inside, from tests ------------------------------------------------------------

    def run(self, fn: Callable[[Xapi], T]) -> T:
        """Run ``fn(xapi)`` on the simulator's loop and return its result (thread-safe)."""
        assert self.loop is not None and self.xapi is not None
        xapi = self.xapi

        async def job() -> T:
            return fn(xapi)

        return asyncio.run_coroutine_threadsafe(job(), self.loop).result(timeout=60)

    def call(self, method: str, *params: Any, host: int = 0) -> Any:
        """Make one API call inside the simulator (no network), as if sent to host ``host``."""
        assert self.loop is not None and self.xapi is not None
        xapi = self.xapi
        host_ref = xapi.host_by_address(self.addresses[host])

        async def job() -> Any:
            # A copy, so that the caller's thread never shares a live record with the loop.
            return copy.deepcopy(await xapi.call(method, list(params), host_ref))

        return asyncio.run_coroutine_threadsafe(job(), self.loop).result(timeout=60)
