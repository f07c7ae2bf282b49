"""session.*: login with a password, logout, and the slave-local emergency logins."""

from __future__ import annotations

import asyncio
import hmac

from ..dispatch import Context, api
from ..errors import ApiError
from ..values import DateTime


def _new_session(ctx: Context, uname: str, originator: str, *, pool: bool = False) -> str:
    """A new session record, counted against XAPI's caps (which may destroy older ones)."""
    ref = _record(ctx, uname, originator, pool)
    ctx.xapi.session_limits.admit(ref)
    return ref


def _record(ctx: Context, uname: str, originator: str, pool: bool) -> str:
    return ctx.db.create(
        "session",
        {
            "this_host": ctx.host,
            "last_active": DateTime.now(),
            "pool": pool,
            "is_local_superuser": True,
            "auth_user_name": uname,
            "originator": originator,
            "validation_time": DateTime.now(),
        },
    )


async def _authenticate(ctx: Context, uname: str, pwd: str) -> None:
    config = ctx.xapi.config
    if ctx.local:
        return  # the Unix socket is root: XAPI skips the password check there
    good_user = hmac.compare_digest(uname.encode(), config.username.encode())
    good_password = hmac.compare_digest(pwd.encode(), config.password.encode())
    if not (good_user and good_password):
        if config.auth_failure_delay > 0:
            await asyncio.sleep(config.auth_failure_delay)
        raise ApiError(
            "SESSION_AUTHENTICATION_FAILED", uname, "Authentication failure"
        )


@api("session", "login_with_password")
async def login_with_password(
    ctx: Context, uname: str, pwd: str, version: str, originator: str
) -> str:
    if ctx.host != ctx.xapi.master:
        raise ApiError("HOST_IS_SLAVE", ctx.xapi.master_address())
    await _authenticate(ctx, uname, pwd)
    return _new_session(ctx, uname, originator)


@api("session", "slave_local_login_with_password")
async def slave_local_login_with_password(ctx: Context, uname: str, pwd: str) -> str:
    await _authenticate(ctx, uname, pwd)
    ref = _new_session(ctx, uname, "")
    ctx.xapi.local_sessions.add(ref)
    return ref


@api("session", "logout")
def logout(ctx: Context) -> None:
    if ctx.session and ctx.db.exists("session", ctx.session):
        ctx.db.destroy("session", ctx.session)


@api("session", "local_logout")
def local_logout(ctx: Context) -> None:
    ctx.xapi.local_sessions.discard(ctx.session)
    logout(ctx)
