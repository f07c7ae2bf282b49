"""One simulated pool: its database, its hosts' addresses, its credentials, and its sessions.

This is the simulator without the network: :mod:`.server` feeds it calls arriving on each host's
address, and tests may drive it directly through :meth:`Xapi.call`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .db import Database
from .dispatch import Context, build_table, call
from .errors import ApiError
from .faults import Faults
from .session_limits import SessionLimits
from .sm.targets import storage_of
from .tasks import Tasks
from .values import DateTime
from .vdi_store import VdiStore

COMPLETED_TASK_TIMEOUT = 3900.0
PENDING_TASK_TIMEOUT = 86400.0
INACTIVE_SESSION_TIMEOUT = 86400.0


@dataclass
class Config:
    """Settings of one simulated pool; the defaults are XAPI's where XAPI has one."""

    username: str = "root"
    password: str = "xenroot"
    auth_failure_delay: float = 5.0  # seconds XAPI sleeps before SESSION_AUTHENTICATION_FAILED
    operation_delay: float = 0.0  # seconds a simulated VM operation takes, for tests of progress
    state_dir: str = ""  # where VDI files (and, when persistent, the pool's state) live
    hosts: int = 1
    vms: int = 0
    plugins_dir: str = ""  # dom0 plugins served by host.call_plugin; "" = os-xenapi's own
    dom0_root: str = ""  # the simulated dom0's root directory; "" = <state_dir>/dom0
    unix_path: str = ""  # the pool's Unix socket, which plugins reach as XAPI's local socket
    persistent: bool = False  # keep the pool in state_dir/state.json and load it from there
    idle_timeout: float = 60.0  # seconds a connection may take to send each request's headers
    body_timeout: float = 60.0  # seconds an RPC request may take to send its body


class Xapi:
    """The pool's state and the entry point of every call."""

    def __init__(self, config: Config | None = None, addresses: list[str] | None = None, *,
                 interrupted: Callable[[], bool] | None = None) -> None:
        """A new pool (or the saved one, when persistent); ``interrupted`` may stop the seeding
        of its VMs with :class:`~.errors.Interrupted`."""
        from . import persist, seed

        self.config = config or Config()
        self.db = Database()
        self.table = build_table()
        self.tasks = Tasks(self)
        state_dir = self.config.state_dir or tempfile.mkdtemp(prefix="xapi-sim-state-")
        self.state_dir = Path(state_dir)
        self.vdis = VdiStore(self.state_dir / "vdis")
        self.local_sessions: set[str] = set()  # from slave_local_login*: valid on any host
        self.session_limits = SessionLimits(self)
        self._second, self._second_text = -1, DateTime.now()
        count = max(1, self.config.hosts)
        self.addresses = addresses or [f"127.0.0.{i + 1}" for i in range(count)]
        self.faults = Faults(self.table)
        if self.config.persistent and persist.has_state(self.state_dir):
            persist.load(self)  # the saved pool, hosts and addresses included, instead of a seed
        else:
            self.pool = seed.build_pool(self, self.addresses)
            if self.config.vms:
                seed.add_vms(self, self.config.vms, interrupted=interrupted)
        storage_of(self)  # VDIs made from now on get their files at once

    # -- hosts ------------------------------------------------------------------------------

    @property
    def master(self) -> str:
        return self.db.get("pool", self.pool)["master"]

    def host_by_address(self, address: str) -> str:
        for ref, record in self.db.all("host").items():
            if record["address"] == address:
                return ref
        return self.master

    def master_address(self) -> str:
        return self.db.get("host", self.master)["address"]

    # -- sessions ---------------------------------------------------------------------------

    def check_session(self, ctx: Context, session: str) -> None:
        """XAPI's session check: the ref must be live, and a pool session must be on the master."""
        record = self.db.all("session").get(session)
        if record is None:
            raise ApiError("SESSION_INVALID", session)
        if not record["pool"] and ctx.host != self.master and session not in self.local_sessions:
            raise ApiError("HOST_IS_SLAVE", self.master_address())
        # As XAPI's session_check: a session in use stays young, for the inactivity timeout and
        # for the caps, which destroy the least recently active first. Written in place, with
        # no database event: XAPI refreshes it only once per threshold_last_active, and an
        # event on every call would wake every event.from waiter for nothing.
        now = self._now()
        if record["last_active"] < now:
            record["last_active"] = now

    def _now(self) -> DateTime:
        """DateTime.now(), formatted once a second only: every checked call asks for it."""
        second = int(time.time())
        if second != self._second:
            self._second, self._second_text = second, DateTime.now()
        return self._second_text

    # -- calls ------------------------------------------------------------------------------

    async def call(
        self, method: str, params: list[Any], host: str | None = None, local: bool = False
    ) -> Any:
        """Run one API call as if it arrived at ``host`` (default: the master)."""
        ctx = Context(self, host or self.master, local=local)
        return await call(self, ctx, method, params)

    def collect_garbage(self, now: float | None = None) -> int:
        """Drop what XAPI's database GC drops; returns how many objects went.

        Completed tasks go 65 min after they finished, pending ones after a day, and sessions
        after a day without activity (``xapi_globs.ml``: completed/pending_task_timeout,
        inactive_session_timeout).
        """
        now = time.time() if now is None else now
        doomed: list[tuple[str, str]] = []
        for ref, task in self.db.all("task").items():
            if task["status"] in ("pending", "cancelling"):
                if now - task["created"].to_datetime().timestamp() > PENDING_TASK_TIMEOUT:
                    doomed.append(("task", ref))
            elif now - task["finished"].to_datetime().timestamp() > COMPLETED_TASK_TIMEOUT:
                doomed.append(("task", ref))
        for ref, session in self.db.all("session").items():
            if now - session["last_active"].to_datetime().timestamp() > INACTIVE_SESSION_TIMEOUT:
                doomed.append(("session", ref))
        for cls, ref in doomed:
            self.local_sessions.discard(ref)
            self.db.destroy(cls, ref)
        self.session_limits.prune()
        self.tasks.sessions_with_pending_tasks()  # forgets the owners of tasks that ended
        return len(doomed)

    def list_methods(self) -> list[str]:
        return sorted(self.table)
