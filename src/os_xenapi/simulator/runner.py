"""``Simulator``: a whole simulated pool served on loopback from a background thread.

    with Simulator(hosts=1, vms=0) as sim:
        session = XenAPI.Session(sim.url)
        session.login_with_password(sim.username, sim.password)

Faults, session expiry, master moves, unreachable hosts and restarts: see :mod:`.control`. With
``state_dir`` the pool is kept there and loaded from there on the next start (:mod:`.persist`).
``idle_timeout`` and ``body_timeout`` bound how long a client may take to send a request's headers
and an RPC body (:mod:`.server`).
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .control import Control, SimulatorControls
from .persist import StateDir
from .plugins import close_dom0, directory_setting
from .server import CANCEL_TIMEOUT, Server
from .xapi import Config, Xapi

T = TypeVar("T")
GC_INTERVAL = 60.0  # seconds between two sweeps of expired tasks and sessions


def _positive(name: str, seconds: float) -> float:
    """``seconds`` if it is a positive number; ValueError naming ``name`` otherwise."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {seconds!r}")
    return float(seconds)


DEFAULT_PASSWORD = "xenroot"


class Simulator(SimulatorControls):
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
        password: str = DEFAULT_PASSWORD,
        auth_failure_delay: float = 5.0,
        operation_delay: float = 0.0,
        state_dir: str | None = None,
        plugins_dir: str | os.PathLike[str] | None = None,
        dom0_root: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = 60.0,
        body_timeout: float = 60.0,
    ) -> None:
        first = listen.split(".")
        if len(first) != 4:
            raise ValueError(f"listen must be an IPv4 address, not {listen!r}")
        if password == DEFAULT_PASSWORD and not listen.startswith("127."):
            raise ValueError(f"listen {listen!r} is not a loopback address, and anyone who can "
                             "reach it could log in with the default password: choose one "
                             "(password=...)")
        base = int(first[3])
        self.addresses = [".".join(first[:3] + [str(base + i)]) for i in range(max(1, hosts))]
        self.config = Config(
            username=username,
            password=password,
            auth_failure_delay=auth_failure_delay,
            operation_delay=operation_delay,
            hosts=max(1, hosts),
            vms=vms,
            persistent=state_dir is not None,  # a saved pool there wins over hosts and vms
            plugins_dir=directory_setting("plugins_dir", plugins_dir, must_exist=True),
            dom0_root=directory_setting("dom0_root", dom0_root),
            idle_timeout=_positive("idle_timeout", idle_timeout),
            body_timeout=_positive("body_timeout", body_timeout),
        )
        self.state_dir = state_dir
        self.ssl_context = ssl_context  # HTTPS instead of HTTP on the hosts' addresses
        self.port = port
        self._tempdir: str | None = None
        self.unix_path = unix_path
        self.loop: asyncio.AbstractEventLoop | None = None
        self.xapi: Xapi | None = None
        self._server: Server | None = None
        self.control: Control | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._interrupt: threading.Event | None = None

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
        scheme = "https" if self.ssl_context is not None else "http"
        return [f"{scheme}://{address}:{self.port}" for address in self.addresses]

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, *, interrupt: threading.Event | None = None) -> Simulator:
        """Build the pool and serve it; returns once every listener accepts connections.

        Setting ``interrupt`` (from a signal handler, say) while the VMs are being built stops
        the start at once with :class:`~.errors.Interrupted`; nothing is served or saved.
        Raises :class:`~.listen_errors.ListenError` (an OSError) naming a listener that cannot
        open, and :class:`~.persist.StateError` for an unusable state directory.
        """
        self._interrupt = interrupt
        self._tempdir = tempfile.mkdtemp(prefix="xapi-sim-")
        if self.unix_path is None:
            self.unix_path = os.path.join(self._tempdir, "xapi")
        self.config.state_dir = self.state_dir or os.path.join(self._tempdir, "state")
        self.config.unix_path = self.unix_path
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
            self.loop.close()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._shutdown())
        self.loop.close()

    async def _start(self) -> None:
        state = StateDir(self.config.state_dir) if self.config.persistent else None
        try:
            interrupt = self._interrupt
            self.xapi = Xapi(self.config, self.addresses,
                             interrupted=interrupt.is_set if interrupt is not None else None)
            self.addresses = self.xapi.addresses  # a saved pool comes with its own hosts
            self._server = Server(self.xapi, self.port, self.unix_path, self.ssl_context)
            self.control = Control(self.xapi, self._server, state)
            self._server.control = self.control
            await self._server.start()
        except BaseException:
            if self._server is not None:
                await self._server.stop()  # what started before the failure
            if state is not None:
                state.release()
            raise
        self.port = self._server.port
        self.control.start()
        self._gc = asyncio.get_running_loop().create_task(self._collect_garbage())

    async def _collect_garbage(self) -> None:
        while True:
            await asyncio.sleep(GC_INTERVAL)
            assert self.xapi is not None
            self.xapi.collect_garbage()

    async def _shutdown(self) -> None:
        if self.xapi is not None:
            await close_dom0(self.xapi)  # first: a running plugin would hold up the server's stop
        if self._server is not None:
            await self._server.stop()  # cancels the requests in progress, as a restart does
        if self.xapi is not None:
            await self.xapi.tasks.cancel_running(CANCEL_TIMEOUT)  # their tasks end cancelled
        if self.control is not None:
            await self.control.close()  # the last write of the state, and the lock released
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

    # -- simulated storage (see sm/targets.py) ------------------------------------------------------

    def add_iscsi_target(self, address: str, iqn: str, **options: Any) -> Any:
        """Declare an iSCSI target the hosts can reach (``StorageWorld.add_iscsi_target``).

        Returns a copy of the declared target, LUN SCSI ids included.
        """
        from .sm.targets import storage_of

        return copy.deepcopy(self.run(
            lambda xapi: storage_of(xapi).add_iscsi_target(address, iqn, **options)))

    def add_nfs_export(self, server: str, path: str, **options: Any) -> Any:
        """Declare an NFS export the hosts can mount (``StorageWorld.add_nfs_export``)."""
        from .sm.targets import storage_of

        return copy.deepcopy(self.run(
            lambda xapi: storage_of(xapi).add_nfs_export(server, path, **options)))
