"""The simulated dom0 that runs plugins and extensions for ``host.call_plugin`` and friends.

A plugin runs as XAPI runs it (``xapi_plugins.ml`` through forkexecd): the file named exactly
``plugin`` in the plugins directory, executed directly (so it needs its exec bit and a shebang;
no shell), with ``argv = [path, methodCall XML]``, stdin on ``/dev/null``, in a new session
(process group), and no timeout. Stdout and stderr go to temporary files, as forkexecd's log
files, so a plugin that leaves a background child holding them open does not hang the call.
If the call is cancelled (``task.cancel`` of an ``Async.host.call_plugin``) or the simulator
stops, the plugin's whole process group is killed and the task ends ``cancelled``: the simulator
leaks no processes. (XAPI itself does not kill a plugin whose task is cancelled: nothing in
``xapi_plugins.ml`` watches for cancellation.)

What a plugin finds around it, instead of a real dom0:

``PYTHONPATH``
    ``dom0env/lib``, which holds ``XenAPI`` (``xapi_local()`` reaches this simulator) and
    ``XenAPIPlugin`` (``dispatch``, ``Failure``): the modules dom0 installs for plugins.
``PATH``
    ``dom0env/bin`` and nothing else: the ``xenstore-*`` commands backed by the host's simulated
    xenstore, the network stand-ins (``ip``, ``ovs-vsctl``, ``ovs-ofctl``, ``ovsdb-client``,
    ``brctl``, ``iptables-save``/``-restore`` and the ip6tables pair, ``ipset``, ``conntrack``,
    ``sysctl``), ``lspci``, and the disk, ISO, VHD and copy stand-ins (``sfdisk``, ``kpartx``,
    ``mkfs``, ``mkswap``, ``mount``, ``umount``, ``mkisofs``, ``vhd-util``, ``rsync``, ``ssh``...),
    which act only on files under ``DOM0_ROOT``; see ``dom0env/README.md``. Deliberately not
    XAPI's ``/sbin:/usr/sbin:/bin:/usr/bin``: here those hold the real machine's programs, and a
    plugin (run as root) calling ``sysctl -w`` or ``iptables-restore`` would change the real
    host. A program the simulated dom0 lacks is therefore missing, as a plugin sees it. The
    stand-ins that need a real tool (mke2fs, xorriso, rsync) run it by an absolute path from a
    fixed list (``dom0env/lib/simtools.py``), never through a PATH.
``XAPI_SIM_PYTHON``
    The interpreter ``dom0env/bin/python3`` runs, resolved once to an absolute path when the
    simulated dom0 is made (:func:`interpreter`), so that ``#!/usr/bin/env python3`` finds a
    Python without a PATH that leads to the real machine.
``DOM0_ROOT``
    The simulated dom0's root directory (``--dom0-root``; by default ``dom0`` in the state
    directory), also the plugin's working directory. **For plugin authors**: a file dom0 keeps
    at ``/etc/foo`` lives at ``os.path.join(os.environ.get("DOM0_ROOT", "/"), "etc/foo")``;
    written that way, the same plugin touches the real ``/etc/foo`` in a real dom0.
``XAPI_SIM_SOCKET``, ``XENSTORED_SIM_SOCKET``, ``XAPI_SIM_HOST``
    The simulator's Unix socket (XAPI's ``/var/lib/xcp/xapi``), the xenstore socket of
    :mod:`.xenstore`, and the uuid of the host the plugin runs on.

Nothing else of the simulator's environment is passed on: forkexecd gives a plugin only PATH.
Before each plugin or extension starts, the VDIs of attached file-based SRs are brought up to date
as ``/var/run/sr-mount/<SR uuid>/<VDI uuid>.vhd`` under the dom0 root (:mod:`.sr_mount`), so
that a plugin reading an SR's VHD files finds every VDI's current bytes.

Extensions (``host.call_extension``) run the same way from the ``extensions`` directory next to
the plugins directory, with ``argv = [path, "--xmlrpc"]`` and the call on stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import weakref
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from .. import dom0_files
from . import dom0_root
from .errors import ApiError
from .guest_agent import GuestAgents
from .plugin_reply import Finished
from .sr_mount import mounts_of
from .xenstore import Xenstore, XenstoreServer

if TYPE_CHECKING:
    from .xapi import Xapi

LOG = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
DOM0ENV = HERE / "dom0env"
# XAPI's forkhelpers.ml default_path is /sbin:/usr/sbin:/bin:/usr/bin; the simulated dom0 has
# its stand-ins only (see PATH above).
PLUGIN_PATH = str(DOM0ENV / "bin")
# Where the Python for dom0env/bin/python3 may be, in order: the simulator's own interpreter
# (its real file, so that a venv's or a symlink's directory never matters), then dom0's place.
PYTHONS = (lambda: os.path.realpath(sys.executable), lambda: "/usr/bin/python3")


def interpreter() -> str:
    """The absolute path of the Python the simulated dom0's ``python3`` runs.

    Raises RuntimeError when none of :data:`PYTHONS` is an executable file.
    """
    for candidate in PYTHONS:
        path = candidate()
        if os.path.isabs(path) and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise RuntimeError("the simulated dom0 has no Python: neither the simulator's own "
                       "interpreter nor /usr/bin/python3 is an executable file")


def dom0_environment(root: str | os.PathLike[str], python: str | None = None) -> dict[str, str]:
    """What every program of the simulated dom0 rooted at ``root`` finds in its environment:
    the stand-ins' PATH, their Python (:func:`interpreter` unless given), the plugin modules,
    DOM0_ROOT. Test suites run a stand-in or a plugin by hand with this; the simulator adds
    the sockets and the host."""
    return {
        "PATH": PLUGIN_PATH,
        "XAPI_SIM_PYTHON": python or interpreter(),
        "PYTHONPATH": str(DOM0ENV / "lib"),
        "DOM0_ROOT": str(root),
    }


def dom0env_module(name: str) -> ModuleType:
    """A self-contained module of the simulated dom0's ``lib`` (``simvhd``, ``simpaths``), loaded
    from its file: test suites build VHD chains with ``simvhd`` as the dom0 tools read them.

    Raises FileNotFoundError for a name the dom0 environment does not have.
    """
    path = DOM0ENV / "lib" / f"{name}.py"
    if not name.isidentifier() or not path.is_file():
        raise FileNotFoundError(f"the simulated dom0 has no module {name!r}")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_plugins_dir() -> Path:
    """os-xenapi's own dom0 plugins, served when no other directory is configured: the package
    data of this installation (:mod:`os_xenapi.dom0_files`), in a checkout and a wheel alike."""
    return dom0_files.plugins_dir()


def directory_setting(
    name: str, value: str | os.PathLike[str] | None, must_exist: bool = False
) -> str:
    """``value`` as an absolute path for :class:`~.xapi.Config` ("" when unset).

    Raises ValueError naming the setting when ``value`` is a file, or is missing although it
    must exist.
    """
    if value is None or value == "":
        return ""
    path = Path(value).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} {str(value)!r} is a file; it must be a directory")
    if must_exist and not path.is_dir():
        raise ValueError(f"{name} {str(value)!r} does not exist; it must be a directory")
    return str(path)


def find_file(directory: Path, name: str) -> Path | None:
    """``directory/name`` if ``name`` is exactly one of its entries (XAPI's ``find_plugin``)."""
    try:
        entries = os.listdir(directory)
    except OSError:
        return None
    return directory / name if name in entries else None


class Dom0:
    """One pool's simulated dom0: where plugins live, what they see, and which are running."""

    def __init__(self, xapi: Xapi) -> None:
        self.xapi = xapi
        self.xenstore = Xenstore(lambda: xapi.db)  # a restart gives the pool a new database
        self.guest_agents = GuestAgents(self.xenstore)  # nova-agent in each guest
        self.python = interpreter()
        self._started = time.time()  # the boot time of hosts whose record gives none
        self._seeded = False
        self._server: XenstoreServer | None = None
        self._socket_dir: str | None = None
        self._starting: asyncio.Lock | None = None
        self._running: set[asyncio.subprocess.Process] = set()
        self._closed = False

    # -- where things are -------------------------------------------------------------------

    @property
    def plugins_dir(self) -> Path:
        configured = self.xapi.config.plugins_dir
        return Path(configured) if configured else default_plugins_dir()

    @property
    def extensions_dir(self) -> Path:
        return self.plugins_dir.parent / "extensions"

    @property
    def root(self) -> Path:
        """The dom0 root directory, made on first use."""
        configured = self.xapi.config.dom0_root
        root = Path(configured) if configured else self.xapi.state_dir / "dom0"
        root.mkdir(parents=True, exist_ok=True)
        return root.resolve()

    def find_plugin(self, name: str) -> Path:
        """The plugin file ``name``; raises XENAPI_MISSING_PLUGIN [name] if there is none."""
        path = find_file(self.plugins_dir, name)
        if path is None:
            raise ApiError("XENAPI_MISSING_PLUGIN", name)
        return path

    def find_extension(self, name: str) -> Path:
        """The extension file ``name``; raises MESSAGE_METHOD_UNKNOWN [name] as XAPI does."""
        path = find_file(self.extensions_dir, name)
        if path is None:
            raise ApiError("MESSAGE_METHOD_UNKNOWN", name)
        return path

    # -- what a plugin sees ------------------------------------------------------------------

    async def environment(self, host: str) -> dict[str, str]:
        """The environment of a plugin running on ``host``; starts the xenstore socket."""
        await self._serve_xenstore()
        assert self._server is not None
        env = dom0_environment(self.root, self.python)
        env.update({
            "XENSTORED_SIM_SOCKET": self._server.path,
            "XAPI_SIM_HOST": self.xapi.db.get("host", host)["uuid"],
        })
        if self.xapi.config.unix_path:
            env["XAPI_SIM_SOCKET"] = self.xapi.config.unix_path
        return env

    async def _serve_xenstore(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._server is not None:
                return
            # A short directory of its own: Unix socket paths are limited to about 100 bytes.
            self._socket_dir = tempfile.mkdtemp(prefix="xapi-sim-xs-")
            server = XenstoreServer(self.xenstore, os.path.join(self._socket_dir, "socket"))
            await server.start()
            self._server = server

    # -- running ------------------------------------------------------------------------------

    async def run(
        self, host: str, path: Path, args: list[str], stdin: bytes | None = None
    ) -> Finished:
        """Run ``path`` with ``args`` on ``host`` until it ends; kill it if cancelled.

        A file that cannot be executed ends as forkexecd's helper ends when execv fails:
        exit status 127 when it is missing, 126 otherwise, with no output.
        """
        if self._closed:
            raise ApiError("INTERNAL_ERROR", "the simulated dom0 is shutting down")
        env = await self.environment(host)
        try:
            await mounts_of(self.xapi).sync()
        except (OSError, ValueError) as exc:  # the plugin may not need the SRs: run it anyway
            LOG.warning("could not bring the sr-mount directories up to date: %s", exc)
        await self._kernel_files(host)
        feed = asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                process = await asyncio.create_subprocess_exec(
                    str(path), *args, stdin=feed, stdout=out, stderr=err, cwd=self.root,
                    env=env, start_new_session=True,
                )
            except FileNotFoundError:
                return Finished(127, b"", b"")
            except OSError:  # no exec bit, no shebang, a directory...
                return Finished(126, b"", b"")
            self._running.add(process)
            try:
                if stdin is not None:
                    await self._feed(process, stdin)
                returncode = await process.wait()
            except BaseException:
                await self._kill(process)
                raise
            finally:
                self._running.discard(process)
            out.seek(0)
            err.seek(0)
            return Finished(returncode, out.read(), err.read())

    async def _kernel_files(self, host: str) -> None:
        """Bring /proc up to date for ``host`` (and make /proc/sys and /sys once)."""
        files = dom0_root.proc_files(self.xapi.db, host, self._started)
        network = None if self._seeded else dom0_root.network_state(self.xapi.db)
        root = self.root

        def write() -> None:
            if not self._seeded:
                dom0_root.seed(root, network)
                self._seeded = True
            dom0_root.refresh(root, files)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:  # a link or a file where a directory belongs: leave it
            LOG.warning("could not write the simulated dom0's /proc and /sys: %s", exc)

    @staticmethod
    async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(data)
            await process.stdin.drain()
        process.stdin.close()

    @staticmethod
    async def _kill(process: asyncio.subprocess.Process) -> None:
        """Kill the process and its group (it leads a session of its own), and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        # Shielded: a second cancellation must not leave a zombie behind.
        await asyncio.shield(process.wait())

    @property
    def running(self) -> int:
        """How many plugins or extensions are running now."""
        return len(self._running)

    async def close(self) -> None:
        """Kill every running plugin, stop the xenstore socket, and refuse new runs."""
        self._closed = True
        await asyncio.gather(*(self._kill(p) for p in list(self._running)),
                             return_exceptions=True)
        if self._server is not None:
            await self._server.close()
            self._server = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None


_DOM0S: weakref.WeakKeyDictionary[Xapi, Dom0] = weakref.WeakKeyDictionary()


def dom0_of(xapi: Xapi) -> Dom0:
    """The simulated dom0 of ``xapi``'s pool, made on first use."""
    dom0 = _DOM0S.get(xapi)
    if dom0 is None:
        dom0 = _DOM0S[xapi] = Dom0(xapi)
    return dom0


async def close_dom0(xapi: Xapi) -> None:
    """Stop what ``xapi``'s dom0 runs (plugins, the xenstore socket); call on the loop."""
    dom0 = _DOM0S.get(xapi)
    if dom0 is not None:
        await dom0.close()
