"""From a wire call to a result: method lookup, XAPI's checks in XAPI's order, and Async tasks.

The order is the one of XAPI's generated server: resolve the name (``MESSAGE_METHOD_UNKNOWN``),
count the parameters (``MESSAGE_PARAMETER_COUNT_MISMATCH``), unmarshal them by type, check the
session (``SESSION_INVALID`` / ``HOST_IS_SLAVE``), then run the operation, whose own checks follow.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ApiError
from .schema import EnumMismatch, Message, TypeMismatch, classes

if TYPE_CHECKING:
    from .xapi import Xapi

LOG = logging.getLogger(__name__)

Handler = Callable[..., Any]
_CUSTOM: dict[tuple[str, str], Handler] = {}


def api(cls: str, name: str) -> Callable[[Handler], Handler]:
    """Register the handler of ``cls.name``; it receives a :class:`Context` and the arguments."""

    def register(fn: Handler) -> Handler:
        _CUSTOM[(cls, name)] = fn
        return fn

    return register


@dataclass
class Context:
    """What a handler knows about the call it serves."""

    xapi: Xapi
    host: str  # ref of the host whose address received the call
    session: str | None = None
    local: bool = False  # arrived over the Unix socket
    task: str | None = None  # set when running as ``Async.``

    @property
    def db(self):  # noqa: ANN201 - Database, kept untyped to avoid an import cycle
        return self.xapi.db


@dataclass
class Served:
    message: Message
    handler: Handler
    is_coroutine: bool


def build_table() -> dict[str, Served]:
    """Every served wire name (``Class.message``) with its message and handler."""
    from . import generic, ops  # noqa: F401  (registers handlers)

    table: dict[str, Served] = {}
    for cls, cdef in classes().items():
        messages = dict(cdef.messages)
        if "get_all" in messages:
            messages.update(generic.hidden_where_messages(cdef))
        for name, message in messages.items():
            handler = _CUSTOM.get((cls, name)) or generic.handler_for(cdef, message)
            if handler is None:
                continue
            table[f"{cls}.{name}"] = Served(
                message, handler, inspect.iscoroutinefunction(handler)
            )
    return table


def _class_prefixes() -> list[str]:
    return sorted(classes(), key=len, reverse=True)


def resolve(table: dict[str, Served], method: str) -> tuple[Served | None, bool, str]:
    """(served, is_async, canonical name) for a wire name, accepting ``Async.`` and ``X_y``."""
    is_async = False
    for prefix in ("Async.", "InternalAsync."):
        if method.startswith(prefix):
            method = method[len(prefix) :]
            is_async = True
            break
    served = table.get(method)
    if served is None and "." not in method:
        for cls in _class_prefixes():
            if method.startswith(cls + "_"):
                method = f"{cls}.{method[len(cls) + 1 :]}"
                served = table.get(method)
                break
    return served, is_async, method


def _unmarshal(message: Message, args: list[Any]) -> list[Any]:
    out = []
    for (name, api_type), value in zip(message.params, args, strict=False):
        try:
            out.append(api_type.unmarshal(value))
        except EnumMismatch as exc:
            raise ApiError("INVALID_VALUE", name, exc.value) from None
        except TypeMismatch:
            raise ApiError("FIELD_TYPE_ERROR", name) from None
    given = len(args)
    if given < len(message.params):
        out.extend(message.defaults[given - message.required_count :])
    return out


async def call(xapi: Xapi, ctx: Context, method: str, params: list[Any]) -> Any:
    """Run one API call; returns its value or raises :class:`ApiError`."""
    served, is_async, name = resolve(xapi.table, method)
    if served is None:
        if params and isinstance(params[0], str) and params[0] not in xapi.db.tables["session"]:
            raise ApiError("SESSION_INVALID", params[0])
        raise ApiError("MESSAGE_METHOD_UNKNOWN", method)
    message = served.message
    args = list(params)
    if message.session:
        session = args.pop(0) if args else None
    received = len(args)
    if received < message.required_count or (not message.defaults and received > len(message.params)):
        raise ApiError(
            "MESSAGE_PARAMETER_COUNT_MISMATCH", name, message.required_count, received
        )
    args = args[: len(message.params)]
    if message.session:
        if not isinstance(session, str):
            raise ApiError("FIELD_TYPE_ERROR", "session_id")
    values = _unmarshal(message, args)
    if message.session:
        xapi.check_session(ctx, session)
        ctx.session = session
    if is_async:
        if not message.is_async:
            raise ApiError("Fault", f"No async mode for this operation (rpc: {name})")
        return xapi.tasks.spawn(ctx, name, served, values)
    result = served.handler(ctx, *values)
    if served.is_coroutine:
        result = await result
    return "" if result is None else result
