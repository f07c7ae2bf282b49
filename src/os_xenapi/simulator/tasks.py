"""Tasks: the records behind ``Async.`` calls and ``task.create``, and their completion.

An ``Async.`` call returns its task ref at once; the operation then runs on the simulator's event
loop and the task ends as XAPI ends it: ``success`` with ``result`` an XML-RPC value fragment,
``failure`` with ``error_info``, or ``cancelled`` after ``task.cancel``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .codec import encode_xmlrpc_value
from .dispatch import Context, Served
from .errors import ApiError
from .values import DateTime

if TYPE_CHECKING:
    from .xapi import Xapi

LOG = logging.getLogger(__name__)


class Tasks:
    """Creates task records and runs the operations that complete them."""

    def __init__(self, xapi: Xapi) -> None:
        self.xapi = xapi
        self.running: dict[str, asyncio.Task] = {}
        self._owners: dict[str, str] = {}  # task ref -> the session that made it (session.tasks)

    def sessions_with_pending_tasks(self) -> set[str]:
        """The sessions that made a task still pending: XAPI's GC never takes those."""
        tasks = self.xapi.db.tables["task"]
        busy = set()
        for task, session in list(self._owners.items()):
            record = tasks.get(task)
            if record is None or record["status"] not in ("pending", "cancelling"):
                del self._owners[task]
            else:
                busy.add(session)
        return busy

    def create(self, ctx: Context, label: str, description: str = "") -> str:
        """A pending task resident on the host that serves ``ctx``."""
        ref = self._record(ctx, label, description)
        if ctx.session is not None:
            self._owners[ref] = ctx.session
        return ref

    def _record(self, ctx: Context, label: str, description: str) -> str:
        return self.xapi.db.create(
            "task",
            {
                "name_label": label,
                "name_description": description,
                "status": "pending",
                "created": DateTime.now(),
                "resident_on": ctx.host,
                "progress": 0.0,
                "allowed_operations": ["cancel"],
                "type": "<none/>",
                "other_config": {},
            },
        )

    def spawn(self, ctx: Context, name: str, served: Served, values: list[Any]) -> str:
        """Start ``served`` as an Async operation; returns the task ref at once."""
        task = self.create(ctx, f"Async.{name}")
        task_ctx = Context(ctx.xapi, ctx.host, ctx.session, ctx.local, task)
        self.running[task] = asyncio.get_running_loop().create_task(
            self._run(task_ctx, served, values)
        )
        return task

    async def _run(self, ctx: Context, served: Served, values: list[Any]) -> None:
        task = ctx.task
        assert task is not None
        try:
            result = served.handler(ctx, *values)
            if served.is_coroutine:
                result = await result
        except asyncio.CancelledError:
            self.fail(task, ApiError("TASK_CANCELLED", task))
        except ApiError as exc:
            self.fail(task, exc)
        except Exception as exc:  # noqa: BLE001 - any bug becomes INTERNAL_ERROR, as in XAPI
            LOG.exception("Async operation failed")
            self.fail(task, ApiError("INTERNAL_ERROR", str(exc)))
        else:
            self.succeed(task, "" if result is None else result)
        finally:
            self.running.pop(task, None)

    async def cancel_running(self, timeout: float) -> None:
        """Cancel every running Async operation and wait, at most ``timeout`` s, for them."""
        running = list(self.running.values())
        for operation in running:
            operation.cancel()
        if running:
            await asyncio.wait(running, timeout=timeout)

    def set_progress(self, task: str | None, progress: float) -> None:
        if task and self.xapi.db.exists("task", task):
            self.xapi.db.update("task", task, progress=float(progress))

    def succeed(self, task: str, result: Any) -> None:
        if not self.xapi.db.exists("task", task):
            return
        self.xapi.db.update(
            "task",
            task,
            status="success",
            progress=1.0,
            finished=DateTime.now(),
            result=encode_xmlrpc_value(result),
            allowed_operations=[],
        )

    def fail(self, task: str, error: ApiError) -> None:
        if not self.xapi.db.exists("task", task):
            return
        cancelled = error.code == "TASK_CANCELLED"
        self.xapi.db.update(
            "task",
            task,
            status="cancelled" if cancelled else "failure",
            progress=1.0,
            finished=DateTime.now(),
            error_info=error.description,
            backtrace="()",
            allowed_operations=[],
        )

    def cancel(self, task: str) -> None:
        """``task.cancel``: stop the operation if it still runs; XAPI records ``cancelling``."""
        record = self.xapi.db.get("task", task)
        if record["status"] != "pending":
            return
        running = self.running.get(task)
        if running is None:
            # A task made by task.create: nothing runs it, so it is cancelled at once.
            self.fail(task, ApiError("TASK_CANCELLED", task))
            return
        self.xapi.db.update("task", task, status="cancelling")
        running.cancel()
