"""message.*: the pool's alerts. XAPI gives this class hand-written getters, not generated ones."""

from __future__ import annotations

from typing import Any

from ..dispatch import Context, api
from ..generic import records_where
from ..values import DateTime


@api("message", "create")
def create(ctx: Context, name: str, priority: int, cls: str, obj_uuid: str, body: str) -> str:
    return ctx.db.create(
        "message",
        {
            "name": name,
            "priority": priority,
            "cls": cls,
            "obj_uuid": obj_uuid,
            "timestamp": DateTime.now(),
            "body": body,
        },
    )


@api("message", "destroy")
def destroy(ctx: Context, ref: str) -> None:
    ctx.db.destroy("message", ref)


@api("message", "destroy_many")
def destroy_many(ctx: Context, refs: list[str]) -> None:
    for ref in refs:
        ctx.db.get("message", ref)
    for ref in refs:
        ctx.db.destroy("message", ref)


@api("message", "get_record")
def get_record(ctx: Context, ref: str) -> dict[str, Any]:
    return ctx.db.get("message", ref)


@api("message", "get_by_uuid")
def get_by_uuid(ctx: Context, uuid: str) -> str:
    return ctx.db.by_uuid_ref("message", uuid)


@api("message", "get_all")
def get_all(ctx: Context) -> list[str]:
    return list(ctx.db.all("message"))


@api("message", "get_all_records")
def get_all_records(ctx: Context) -> dict[str, dict[str, Any]]:
    return ctx.db.all("message")


@api("message", "get_since")
def get_since(ctx: Context, since: str) -> dict[str, dict[str, Any]]:
    limit = DateTime(since).to_datetime()
    return {
        ref: rec
        for ref, rec in ctx.db.all("message").items()
        if rec["timestamp"].to_datetime() > limit
    }


@api("message", "get")
def get(ctx: Context, cls: str, obj_uuid: str, since: str) -> dict[str, dict[str, Any]]:
    limit = DateTime(since).to_datetime()
    return {
        ref: rec
        for ref, rec in ctx.db.all("message").items()
        if rec["cls"] == cls and rec["obj_uuid"] == obj_uuid and rec["timestamp"].to_datetime() > limit
    }


@api("message", "get_all_records_where")
def get_all_records_where(ctx: Context, expr: str) -> dict[str, dict[str, Any]]:
    return records_where(ctx, "message", expr)
