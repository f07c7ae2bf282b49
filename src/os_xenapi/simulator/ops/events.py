"""event.from, event.inject and event.get_current_id over the database's change log.

``event.from`` returns every subscribed object changed since the token (``add`` for objects born
since then, ``mod`` otherwise, ``del`` without snapshot for those gone), coalescing several changes
to one object into one event, and blocks until there is one or the timeout passes.
"""

from __future__ import annotations

import asyncio
import re

from ..dispatch import Context, api
from ..errors import ApiError
from ..values import Int32

_TOKEN = re.compile(r"^\s*(-?\d+)\s*,\s*(-?\d+)\s*$")
_LEGACY_TOKEN = re.compile(r"^\s*(-?\d+)\s*$")
DAY = 86400.0


def token_of(ctx: Context) -> str:
    db = ctx.db
    return f"{db.generation:020d},{db.message_generation:020d}"


def _since(token: str) -> int:
    if token == "":
        return 0
    found = _TOKEN.match(token) or _LEGACY_TOKEN.match(token)
    if not found:
        raise ApiError("EVENT_FROM_TOKEN_PARSE_FAILURE", token)
    return int(found.group(1))


def _subscriptions(ctx: Context, classes: list[str]) -> tuple[bool, set[str], set[str]]:
    """(everything?, lowercase classes, refs) wanted by ``classes``."""
    everything = False
    wanted_classes: set[str] = set()
    wanted_refs: set[str] = set()
    for item in classes:
        if item == "*":
            everything = True
        elif "/" in item:
            cls, _, ref = item.partition("/")
            if not cls or not ref:
                raise ApiError("EVENT_SUBSCRIPTION_PARSE_FAILURE", item)
            wanted_refs.add(ref)
        elif item and " " not in item:
            wanted_classes.add(item.lower())
        else:
            raise ApiError("EVENT_SUBSCRIPTION_PARSE_FAILURE", item)
    return everything, wanted_classes, wanted_refs


def _collect(ctx: Context, since: int, subs: tuple[bool, set[str], set[str]]) -> list[dict]:
    everything, wanted_classes, wanted_refs = subs
    db = ctx.db
    events = []
    for ref, gen, cls, born, deleted in db.changes_since(since):
        lower = cls.lower()
        if not (everything or lower in wanted_classes or ref in wanted_refs):
            continue
        if deleted:
            if born > since:
                continue  # created and deleted between two calls: XAPI reports nothing
            events.append(
                {"id": str(gen), "timestamp": "0.0", "class": lower, "operation": "del", "ref": ref}
            )
            continue
        events.append(
            {
                "id": str(gen),
                "timestamp": "0.0",
                "class": lower,
                "operation": "add" if born > since else "mod",
                "ref": ref,
                "snapshot": db.tables[cls][ref],
            }
        )
    events.reverse()  # oldest first, as XAPI returns them
    return events


@api("event", "from")
async def event_from(ctx: Context, classes: list[str], token: str, timeout: float) -> dict:
    since = _since(token)
    subs = _subscriptions(ctx, classes)
    loop = asyncio.get_running_loop()
    limit = timeout if timeout >= 0 else DAY
    deadline = loop.time() + limit
    while True:
        changed = ctx.db.changed_event()
        events = _collect(ctx, since, subs)
        remaining = deadline - loop.time()
        if events or remaining <= 0:
            break
        try:
            await asyncio.wait_for(changed.wait(), remaining)
        except asyncio.TimeoutError:
            pass
    return {
        "events": events,
        "valid_ref_counts": {c.lower(): Int32(len(t)) for c, t in ctx.db.tables.items()},
        "token": token_of(ctx),
    }


@api("event", "inject")
def inject(ctx: Context, cls: str, ref: str) -> str:
    if cls not in ctx.db.tables or not ctx.db.exists(cls, ref):
        raise ApiError("HANDLE_INVALID", cls, ref)
    ctx.db.touch(ref)
    return token_of(ctx)


@api("event", "get_current_id")
def get_current_id(ctx: Context) -> int:
    return ctx.db.generation
