"""``Async.`` calls: start one, follow its task, return its result, clean up after it.

    vm = run_async(session, "VM.clone", template, "web-2", timeout=300,
                   progress=lambda fraction: print(f"{fraction:.0%}"))

XAPI answers ``Async.<Class>.<message>`` with a task ref at once and runs the operation behind
it. :func:`wait_for_task` follows the task with ``event.from`` on ``task/<ref>`` (the call blocks
in XAPI until the task changes, so there is no polling), reports each new ``progress`` to the
callback, and when the task ends returns the result: XAPI stores it as an XML-RPC ``<value>``
fragment string, which is decoded here into a Python value (``""`` for a void message). A failed
task raises the typed failure of its ``error_info``; a cancelled one TaskCancelled.

If the wait ends early (``timeout`` passed: TaskTimeout; KeyboardInterrupt; an exception from the
progress callback; a lost connection), the task is cancelled and the wait for it to stop is short.
Either way the task is destroyed afterwards (XAPI marks a still-running one for destruction), so
no task is left behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from . import exception, wire

LOG = logging.getLogger(__name__)

ACTIVE = frozenset({"pending", "cancelling"})
POLL = 30.0  # seconds one event.from may wait in XAPI
READ_MARGIN = 30.0  # seconds of read timeout beyond an event.from's own wait
CANCEL_WAIT = 10.0  # seconds to wait for a cancelled task to stop
NO_TIMEOUT = 86400.0  # XAPI destroys pending tasks after a day (pending_task_timeout)
_RESTART = frozenset({"EVENTS_LOST", "EVENT_FROM_TOKEN_PARSE_FAILURE"})


class _Caller(Protocol):
    def call_xenapi(self, method: str, *args: Any, timeout: Any = None) -> Any: ...


def run_async(session: _Caller, method: str, *args: Any, timeout: float | None = None,
              progress: Callable[[float], Any] | None = None) -> Any:
    """Call ``Async.<method>(*args)``, wait for its task, destroy it, return the result value.

    Raises the task's failure, TaskCancelled, TaskTimeout after ``timeout`` seconds (the task
    is cancelled), or what starting the call raised.
    """
    if method.startswith("Async."):
        method = method[len("Async."):]
    task = session.call_xenapi(f"Async.{method}", *args)
    return wait_for_task(session, task, timeout=timeout, progress=progress)


def wait_for_task(session: _Caller, task: str, *, timeout: float | None = None,
                  progress: Callable[[float], Any] | None = None, destroy: bool = True) -> Any:
    """Wait for ``task`` to end and return its decoded result (see the module docstring).

    ``progress(fraction)`` is called with each new progress value, 1.0 last on success.
    With ``destroy`` (the default) the task is destroyed afterwards, whatever happened.
    """
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise ValueError(f"timeout must be positive seconds or None, not {timeout!r}")
    try:
        try:
            record = _follow(session, task, timeout, progress)
        except BaseException:
            _cancel(session, task)
            raise
    finally:
        if destroy:
            _destroy(session, task)
    return _outcome(task, record)


def parse_result(fragment: str) -> Any:
    """The value of a task's ``result`` field: an XML-RPC ``<value>`` fragment, or ``""``."""
    if not fragment or not fragment.strip():
        return None
    return wire.decode_xmlrpc_value(fragment)


def _follow(session: _Caller, task: str, timeout: float | None,
            progress: Callable[[float], Any] | None) -> dict[str, Any]:
    """The task's record once it has left pending/cancelling; TaskTimeout after ``timeout``."""
    limit = NO_TIMEOUT if timeout is None else float(timeout)
    deadline = time.monotonic() + limit
    token = ""
    reported: float | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0 and token:
            raise exception.TaskTimeout(
                f"task {task} did not finish within {limit:g} s; it was cancelled", task=task)
        wait = max(0.0, min(POLL, left))
        try:
            batch = session.call_xenapi("event.from", [f"task/{task}"], token, wait,
                                        timeout=wait + READ_MARGIN)
        except exception.XenAPIError as exc:
            if exc.code not in _RESTART or not token:
                raise
            token = ""  # start again from the task's current state
            continue
        token = batch["token"]
        for event in batch["events"]:
            if event.get("ref") != task:
                continue
            if event.get("operation") == "del":
                raise exception.HandleInvalid(["HANDLE_INVALID", "task", task])
            record = event["snapshot"]
            fraction = wire.as_float(record.get("progress", 0.0))
            if progress is not None and fraction != reported:
                reported = fraction
                progress(fraction)
            if record.get("status") not in ACTIVE:
                return record


def _outcome(task: str, record: dict[str, Any]) -> Any:
    status = record.get("status")
    if status == "success":
        return parse_result(record.get("result") or "")
    details = list(record.get("error_info") or [])
    if status == "cancelled":
        raise exception.failure_from_details(details or ["TASK_CANCELLED", task])
    raise exception.failure_from_details(
        details or ["INTERNAL_ERROR", f"task {task} ended as {status} without error_info"])


def _cancel(session: _Caller, task: str) -> None:
    """Ask XAPI to cancel ``task`` and wait a little for it to stop; errors are only logged."""
    try:
        session.call_xenapi("task.cancel", task)
        _follow(session, task, CANCEL_WAIT, None)
    except (exception.Failure, exception.TransportError, exception.WaitTimeout) as exc:
        LOG.warning("cancelling task %s: %s", task, type(exc).__name__)


def _destroy(session: _Caller, task: str) -> None:
    try:
        session.call_xenapi("task.destroy", task)
    except exception.HandleInvalid:
        pass
    except (exception.Failure, exception.TransportError) as exc:
        LOG.warning("could not destroy task %s (%s); XAPI removes it within 24 hours", task,
                    type(exc).__name__)
