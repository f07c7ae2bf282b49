"""Where a VM's domain can run: hosts' free memory, the SRs a VM needs, and the choice of host.

``boot_error`` is XAPI's ``assert_can_boot_here`` (host live, enabled, sees the VM's SRs, has the
memory); ``choose_host`` is its ``choose_host_for_vm``. A host's free memory is computed, as XAPI's
``host.compute_free_memory`` does, from its total less what its resident domains hold
(``VM_metrics.memory_actual`` plus the VM's overhead) and what starting VMs have reserved.
Domain ids count up per host from 1.
"""

from __future__ import annotations

import weakref
from typing import Any

from ..dispatch import Context, api
from ..errors import ApiError

# Per database: host -> {VM being started there: bytes reserved}, and host -> last domid.
_reserved: weakref.WeakKeyDictionary[Any, dict[str, dict[str, int]]] = weakref.WeakKeyDictionary()
_domids: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()


def _host_metrics(db: Any, host: str) -> dict[str, Any] | None:
    return db.all("host_metrics").get(db.get("host", host)["metrics"])


def memory_free(db: Any, host: str) -> int:
    """Bytes free on ``host`` for new domains."""
    metrics = _host_metrics(db, host)
    if metrics is None:
        return 0
    used = sum(_reserved.get(db, {}).get(host, {}).values())
    for vm in db.get("host", host)["resident_VMs"]:
        record = db.get("VM", vm)
        vm_metrics = db.all("VM_metrics").get(record["metrics"])
        actual = int(vm_metrics["memory_actual"]) if vm_metrics else 0
        used += actual + int(record["memory_overhead"])
    return int(metrics["memory_total"]) - used


def reserve(db: Any, host: str, vm: str, amount: int) -> None:
    """Hold ``amount`` bytes on ``host`` for ``vm`` until it runs there (or gives up)."""
    _reserved.setdefault(db, {}).setdefault(host, {})[vm] = amount


def release(db: Any, host: str, vm: str) -> None:
    """Drop what :func:`reserve` held for ``vm`` on ``host``."""
    _reserved.get(db, {}).get(host, {}).pop(vm, None)


def needed_memory(record: dict[str, Any]) -> int:
    """Bytes a domain of this VM takes: its dynamic maximum plus its overhead."""
    return int(record["memory_dynamic_max"]) + int(record["memory_overhead"])


def required_srs(db: Any, vm: str) -> list[str]:
    """SRs the VM's disks (not CDs) live on, plus the SR of its suspend image."""
    record = db.get("VM", vm)
    vdis = [db.get("VBD", vbd)["VDI"] for vbd in record["VBDs"]
            if db.get("VBD", vbd)["type"] != "CD"]
    vdis.append(record["suspend_VDI"])
    srs = []
    for vdi in vdis:
        if db.exists("VDI", vdi):
            sr = db.get("VDI", vdi)["SR"]
            if sr not in srs and db.get("SR", sr)["content_type"] != "iso":
                srs.append(sr)
    return srs


def boot_error(db: Any, vm: str, host: str, check_memory: bool = True) -> ApiError | None:
    """Why ``vm`` cannot start on ``host`` now (XAPI's assert_can_boot_here); None if it can."""
    record = db.get("host", host)
    metrics = _host_metrics(db, host)
    if metrics is not None and not metrics["live"]:
        return ApiError("HOST_OFFLINE", host)
    if not record["enabled"]:
        return ApiError("HOST_DISABLED", host)
    for sr in required_srs(db, vm):
        if not any(db.get("PBD", pbd)["host"] == host and db.get("PBD", pbd)["currently_attached"]
                   for pbd in db.get("SR", sr)["PBDs"]):
            return ApiError("VM_REQUIRES_SR", vm, sr)
    needed, free = needed_memory(db.get("VM", vm)), memory_free(db, host)
    if check_memory and needed > free:
        return ApiError("HOST_NOT_ENOUGH_FREE_MEMORY", needed, free)
    return None


def choose_host(db: Any, vm: str) -> str:
    """The host XAPI would start ``vm`` on: its affinity if suitable, else the one most free.

    When no host has the memory, the choice ignores memory and the start then fails there with
    HOST_NOT_ENOUGH_FREE_MEMORY, as in XAPI; NO_HOSTS_AVAILABLE when no host can run it at all.
    """
    hosts = sorted(db.all("host"), key=lambda h: -memory_free(db, h))
    affinity = db.get("VM", vm)["affinity"]
    if affinity in hosts:
        hosts.remove(affinity)
        hosts.insert(0, affinity)
    for check_memory in (True, False):
        for host in hosts:
            if boot_error(db, vm, host, check_memory) is None:
                return host
    raise ApiError("NO_HOSTS_AVAILABLE")


def next_domid(db: Any, host: str) -> int:
    """The domid of the next domain created on ``host``: above every domid used there so far,
    and above those of the domains running there (a pool loaded from its saved state has
    running domains but no count yet)."""
    counters = _domids.setdefault(db, {})
    running = [int(db.get("VM", vm)["domid"]) for vm in db.get("host", host)["resident_VMs"]]
    counters[host] = max([counters.get(host, 0), *running]) + 1
    return counters[host]


# -- handlers --------------------------------------------------------------------------------------

@api("VM", "get_possible_hosts")
def get_possible_hosts(ctx: Context, vm: str) -> list[str]:
    """Hosts the VM could start on now."""
    ctx.db.get("VM", vm)
    return [h for h in ctx.db.all("host") if boot_error(ctx.db, vm, h) is None]


@api("VM", "assert_can_boot_here")
def assert_can_boot_here(ctx: Context, vm: str, host: str) -> None:
    """Raise why the VM cannot start on ``host`` now, if it cannot."""
    ctx.db.get("VM", vm)
    error = boot_error(ctx.db, vm, _host(ctx.db, host))
    if error is not None:
        raise error


def _host(db: Any, host: str) -> str:
    db.get("host", host)
    return host
