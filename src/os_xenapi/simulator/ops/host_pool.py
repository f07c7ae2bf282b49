"""host.* and pool.* messages the VM lifecycle leans on: enable/disable, reboot, shutdown and
power_on, free memory, server time, and moving the pool master with
``pool.designate_new_master``."""

from __future__ import annotations

import time

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


def _assert_quiet(ctx: Context, host: str) -> None:
    """XAPI's check before a host reboots or shuts down (``assert_bacon_mode``): the host is
    disabled, runs no guest, and its control domain has no disk plugged."""
    db = ctx.db
    if db.get("host", host)["enabled"]:
        raise ApiError("HOST_NOT_DISABLED")
    for ref, vm in db.all("VM").items():
        if vm["resident_on"] == host and vm["power_state"] == "Running" and \
                not vm["is_control_domain"]:
            raise ApiError("HOST_IN_USE", host, "vm", ref)
    dom0 = db.get("host", host)["control_domain"]
    for ref, vbd in db.all("VBD").items():
        if vbd["VM"] == dom0 and vbd["currently_attached"]:
            raise ApiError("HOST_IN_USE", host, "vbd", ref)


def _booted(ctx: Context, host: str) -> None:
    """The host has just booted: live, its toolstack up (XAPI enables the host at start)."""
    db = ctx.db
    now = f"{time.time():.0f}."
    record = db.get("host", host)
    db.set("host", host, "other_config",
           dict(record["other_config"], boot_time=now, agent_start_time=now))
    db.set("host_metrics", record["metrics"], "live", True)
    db.set("host", host, "enabled", True)


@api("host", "reboot")
def reboot(ctx: Context, host: str) -> None:
    """Reboot a disabled host with no guests running; it comes back enabled, its uptime new."""
    _assert_quiet(ctx, host)
    _booted(ctx, host)


@api("host", "shutdown")
def shutdown(ctx: Context, host: str) -> None:
    """Shut down a disabled host with no guests running: it is no longer live (the simulator
    still answers on its address, as a lights-out controller would not)."""
    _assert_quiet(ctx, host)
    ctx.db.set("host_metrics", ctx.db.get("host", host)["metrics"], "live", False)


@api("host", "power_on")
def power_on(ctx: Context, host: str) -> None:
    """Power on a host that is down, through its power-on mode (HOST_POWER_ON_MODE_DISABLED
    without one, HOST_IS_LIVE when it is up)."""
    db = ctx.db
    record = db.get("host", host)
    if db.all("host_metrics").get(record["metrics"], {}).get("live", True):
        raise ApiError("HOST_IS_LIVE", host)
    if not record.get("power_on_mode"):
        raise ApiError("HOST_POWER_ON_MODE_DISABLED")
    _booted(ctx, host)


@api("host", "set_power_on_mode")
def set_power_on_mode(ctx: Context, self: str, power_on_mode: str,
                      power_on_config: dict[str, str]) -> None:
    """How host.power_on wakes the host ("" for none, "wake-on-lan", "iLO", "DRAC"...)."""
    ctx.db.get("host", self)
    ctx.db.update("host", self, power_on_mode=power_on_mode, power_on_config=power_on_config)


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
