"""host.* and pool.* messages the VM lifecycle leans on: enable/disable, free memory, server
time, and moving the pool master with ``pool.designate_new_master``."""

from __future__ import annotations

from ..dispatch import Context, api
from ..errors import ApiError
from ..values import DateTime
from .placement import memory_free


@api("pool", "designate_new_master")
def designate_new_master(ctx: Context, host: str) -> None:
    """Make ``host`` the master; the old master then answers HOST_IS_SLAVE to logins."""
    db = ctx.db
    db.get("host", host)
    pool = ctx.xapi.pool
    if db.get("pool", pool)["ha_enabled"]:
        raise ApiError("HA_IS_ENABLED")
    if db.get("pool", pool)["master"] != host:
        db.set("pool", pool, "master", host)


@api("host", "enable")
def enable(ctx: Context, host: str) -> None:
    """Let new VMs start on the host again."""
    ctx.db.get("host", host)
    ctx.db.set("host", host, "enabled", True)


@api("host", "disable")
def disable(ctx: Context, host: str) -> None:
    """Stop new VMs from starting on the host (HOST_DISABLED for start_on)."""
    ctx.db.get("host", host)
    ctx.db.set("host", host, "enabled", False)


@api("host", "compute_free_memory")
def compute_free_memory(ctx: Context, host: str) -> int:
    """Bytes free for new domains on the host."""
    ctx.db.get("host", host)
    return memory_free(ctx.db, host)


@api("host", "compute_memory_overhead")
def compute_memory_overhead(ctx: Context, host: str) -> int:
    """The host's own memory overhead in bytes."""
    return int(ctx.db.get("host", host)["memory_overhead"])


@api("host", "get_servertime")
def get_servertime(ctx: Context, host: str) -> DateTime:
    """The host's clock, in UTC."""
    ctx.db.get("host", host)
    return DateTime.now()


@api("host", "get_server_localtime")
def get_server_localtime(ctx: Context, host: str) -> DateTime:
    """The host's clock in its local time zone, which is UTC on a simulated host."""
    ctx.db.get("host", host)
    return DateTime.now()
