"""task.*: create, destroy, cancel, and the status setters clients use for HTTP transfers."""

from __future__ import annotations

from ..dispatch import Context, api
from ..errors import ApiError
from ..values import DateTime


@api("task", "create")
def create(ctx: Context, label: str, description: str) -> str:
    return ctx.xapi.tasks.create(ctx, label, description)


@api("task", "destroy")
def destroy(ctx: Context, task: str) -> None:
    record = ctx.db.get("task", task)
    if record["status"] in ("pending", "cancelling") and task in ctx.xapi.tasks.running:
        # XAPI marks a running task for destruction instead of removing it under the operation.
        record["current_operations"]["destroy"] = "destroy"
        ctx.db.touch(task)
        return
    ctx.db.destroy("task", task)


@api("task", "cancel")
def cancel(ctx: Context, task: str) -> None:
    ctx.xapi.tasks.cancel(task)


@api("task", "set_status")
def set_status(ctx: Context, task: str, value: str) -> None:
    changes = {"status": value}
    if value != "pending":
        changes["finished"] = DateTime.now()
    ctx.db.update("task", task, **changes)


@api("task", "set_progress")
def set_progress(ctx: Context, task: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ApiError("INVALID_VALUE", "progress", value)
    ctx.db.update("task", task, progress=value)


@api("task", "set_result")
def set_result(ctx: Context, task: str, value: str) -> None:
    ctx.db.update("task", task, result=value)


@api("task", "set_error_info")
def set_error_info(ctx: Context, task: str, value: list) -> None:
    ctx.db.update("task", task, error_info=value)
