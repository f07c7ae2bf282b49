"""VM power operations: start, shutdown, reboot, suspend, resume, pause, and power_state_reset.

Each handler checks the operation (:mod:`.vm_checks`), marks it in ``current_operations``, takes
``operation_delay`` and then moves the VM to its new state. What a running domain implies is kept
consistent here and only here: ``power_state``, ``domid`` (-1 when there is no domain),
``resident_on``, the memory the domain holds on its host (:mod:`.placement`), ``VM_metrics``, the
guest agent's ``VM_guest_metrics``, the console, and ``currently_attached`` of its VBDs and VIFs.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..db import new_uuid
from ..dispatch import Context, api
from ..errors import ApiError
from ..schema import NULL_REF
from ..templates import guest_os
from ..values import DateTime
from . import device_checks
from .placement import (
    boot_error,
    choose_host,
    needed_memory,
    next_domid,
    release,
    reserve,
)
from .storage import linux_device, new_vdi, remove_vdi
from .vm_checks import (
    HALTED,
    PAUSED,
    RUNNING,
    SUSPENDED,
    cancel_operations,
    domain_type,
    refresh,
    vm_operation,
    work,
)

MiB = 1024**2
# Operations hard_shutdown cancels before it runs (message_forwarding.ml).
_HARD_SHUTDOWN_CANCELS = ("clean_shutdown", "clean_reboot", "hard_reboot", "pool_migrate",
                          "call_plugin", "suspend")


# -- what a domain brings with it ------------------------------------------------------------------

def _set_devices_attached(db: Any, vm: str, attached: bool) -> None:
    record = db.get("VM", vm)
    for vbd in record["VBDs"]:
        changes: dict[str, Any] = {"currently_attached": attached, "current_operations": {}}
        if attached:
            changes["device"] = linux_device(db.get("VBD", vbd)["userdevice"])
        db.update("VBD", vbd, **changes)
    for vif in record["VIFs"]:
        db.update("VIF", vif, currently_attached=attached, current_operations={})


def _guest_ip(mac: str) -> str:
    digest = hashlib.sha1(mac.encode()).digest()
    return f"10.{digest[0]}.{digest[1]}.{digest[2] % 253 + 1}"


def _start_guest_agent(db: Any, vm: str) -> None:
    """Create the VM_guest_metrics a guest with PV drivers reports once it has booted."""
    record = db.get("VM", vm)
    os_version = guest_os(record)
    if os_version is None or db.exists("VM_guest_metrics", record["guest_metrics"]):
        return
    networks = {}
    for vif in record["VIFs"]:
        vif_record = db.get("VIF", vif)
        ip, device = _guest_ip(vif_record["MAC"]), vif_record["device"]
        mac = vif_record["MAC"].replace(":", "")
        networks.update({f"{device}/ip": ip, f"{device}/ipv4/0": ip,
                         f"{device}/ipv6/0": f"fe80::{mac[:4]}:{mac[4:8]}:{mac[8:]}"})
    features = ("feature-shutdown", "feature-poweroff", "feature-reboot", "feature-suspend",
                "feature-vcpu-hotplug", "platform-feature-multiprocessor-suspend")
    guest = db.create("VM_guest_metrics", {
        "os_version": os_version,
        "PV_drivers_version": {"major": "8", "minor": "4", "micro": "0", "build": "1"},
        "PV_drivers_up_to_date": True,
        "PV_drivers_detected": True,
        "networks": networks,
        "other": {**dict.fromkeys(features, "1"), "has-vendor-device": "0"},
        "last_updated": DateTime.now(),
        "live": True,
        "can_use_hotplug_vbd": "yes",
        "can_use_hotplug_vif": "yes",
    })
    db.update("VM", vm, guest_metrics=guest)


def _stop_guest_agent(db: Any, vm: str) -> None:
    guest = db.get("VM", vm)["guest_metrics"]
    if db.exists("VM_guest_metrics", guest):
        db.destroy("VM_guest_metrics", guest)
    db.update("VM", vm, guest_metrics=NULL_REF)


def _metrics(db: Any, vm: str) -> str:
    """The VM's VM_metrics ref, made if it has none."""
    ref = db.get("VM", vm)["metrics"]
    if not db.exists("VM_metrics", ref):
        ref = db.create("VM_metrics", {"install_time": DateTime.now(),
                                       "current_domain_type": "unspecified"})
        db.update("VM", vm, metrics=ref)
    return ref


def _open_console(db: Any, vm: str, host: str) -> None:
    uuid = new_uuid()
    address = db.get("host", host)["address"]
    db.create("console", {"uuid": uuid, "protocol": "rfb", "VM": vm, "other_config": {},
                          "location": f"https://{address}/console?uuid={uuid}"})


def _close_consoles(db: Any, vm: str) -> None:
    for console in list(db.get("VM", vm)["consoles"]):
        db.destroy("console", console)


def boot(ctx: Context, vm: str, host: str, paused: bool) -> None:
    """A new domain of ``vm`` now runs on ``host``, holding the memory reserved for it."""
    db = ctx.db
    record = db.get("VM", vm)
    kind = domain_type(record)
    state = PAUSED if paused else RUNNING
    db.update("VM", vm, power_state=state, domid=next_domid(db, host), resident_on=host,
              scheduled_to_be_resident_on=NULL_REF)
    platform = record["platform"]
    db.update("VM_metrics", _metrics(db, vm), memory_actual=int(record["memory_dynamic_max"]),
              VCPUs_number=int(record["VCPUs_at_startup"]), VCPUs_params=dict(record["VCPUs_params"]),
              state=[state.lower()], start_time=DateTime.now(), last_updated=DateTime.now(),
              hvm=kind == "hvm", current_domain_type=kind,
              nomigrate=platform.get("nomigrate") in ("1", "true"),
              nested_virt=platform.get("nested-virt") in ("1", "true"))
    release(db, host, vm)
    _set_devices_attached(db, vm, True)
    if not record["consoles"]:
        _open_console(db, vm, host)
    _start_guest_agent(db, vm)
    refresh(db, vm)


def stop(db: Any, vm: str, state: str) -> None:
    """The domain of ``vm`` is gone; it is now ``state`` (Halted or Suspended)."""
    db.update("VM", vm, power_state=state, domid=-1, resident_on=NULL_REF,
              scheduled_to_be_resident_on=NULL_REF)
    db.update("VM_metrics", _metrics(db, vm), memory_actual=0, VCPUs_number=0, state=[],
              VCPUs_CPU={}, last_updated=DateTime.now(), hvm=False,
              current_domain_type="unspecified")
    _set_devices_attached(db, vm, False)
    _close_consoles(db, vm)
    if state == HALTED:
        _stop_guest_agent(db, vm)
    refresh(db, vm)


def _reboot(ctx: Context, vm: str) -> None:
    restart_domain(ctx.db, vm)


def restart_domain(db: Any, vm: str) -> None:
    """The domain restarts in place: a new domid, a new start time, the same state (also what
    follows a reboot from inside the guest, actions_after_reboot being "restart")."""
    record = db.get("VM", vm)
    db.update("VM", vm, domid=next_domid(db, record["resident_on"]))
    db.update("VM_metrics", _metrics(db, vm), start_time=DateTime.now(),
              last_updated=DateTime.now())
    refresh(db, vm)


def _assert_disks_attachable(db: Any, vm: str) -> None:
    """VDI_IN_USE and friends for a VBD that could not be attached at boot."""
    for vbd in db.get("VM", vm)["VBDs"]:
        device_checks.raise_if(device_checks.vbd_errors(db, vbd), "attach")


async def _bring_up(ctx: Context, vm: str, host: str | None, paused: bool) -> None:
    """Reserve memory on a host, take the operation's time, then boot the domain there."""
    db = ctx.db
    target = host or choose_host(db, vm)
    error = boot_error(db, vm, target)
    if error is not None:
        raise error
    _assert_disks_attachable(db, vm)
    reserve(db, target, vm, needed_memory(db.get("VM", vm)))
    db.update("VM", vm, scheduled_to_be_resident_on=target)
    try:
        await work(ctx)
    except BaseException:
        release(db, target, vm)
        if db.exists("VM", vm):
            db.update("VM", vm, scheduled_to_be_resident_on=NULL_REF)
        raise
    boot(ctx, vm, target, paused)


# -- handlers --------------------------------------------------------------------------------------

@api("VM", "start")
async def start(ctx: Context, vm: str, start_paused: bool, force: bool) -> None:
    """Halted -> Running (Paused with start_paused) on a host XAPI would choose."""
    async with vm_operation(ctx, vm, "start"):
        await _bring_up(ctx, vm, None, start_paused)


@api("VM", "start_on")
async def start_on(ctx: Context, vm: str, host: str, start_paused: bool, force: bool) -> None:
    """Halted -> Running (or Paused) on ``host``."""
    ctx.db.get("VM", vm)
    ctx.db.get("host", host)
    async with vm_operation(ctx, vm, "start_on"):
        await _bring_up(ctx, vm, host, start_paused)


async def _resume(ctx: Context, vm: str, host: str | None, paused: bool, op: str) -> None:
    async with vm_operation(ctx, vm, op):
        db = ctx.db
        suspend_vdi = db.get("VM", vm)["suspend_VDI"]
        await _bring_up(ctx, vm, host, paused)
        _drop_suspend_image(db, vm, suspend_vdi)


@api("VM", "resume")
async def resume(ctx: Context, vm: str, start_paused: bool, force: bool) -> None:
    """Suspended -> Running (or Paused); the suspend image is deleted."""
    await _resume(ctx, vm, None, start_paused, "resume")


@api("VM", "resume_on")
async def resume_on(ctx: Context, vm: str, host: str, start_paused: bool, force: bool) -> None:
    """Suspended -> Running (or Paused) on ``host``."""
    ctx.db.get("VM", vm)
    ctx.db.get("host", host)
    await _resume(ctx, vm, host, start_paused, "resume_on")


def _drop_suspend_image(db: Any, vm: str, vdi: str) -> None:
    if db.exists("VDI", vdi):
        remove_vdi(db, vdi)
    if db.exists("VM", vm):
        db.update("VM", vm, suspend_VDI=NULL_REF)


async def _halt(ctx: Context, vm: str, op: str) -> None:
    async with vm_operation(ctx, vm, op):
        if op == "hard_shutdown":
            cancel_operations(ctx, vm, _HARD_SHUTDOWN_CANCELS)
        await work(ctx)
        db = ctx.db
        record = db.get("VM", vm)
        if record["power_state"] == SUSPENDED:
            _drop_suspend_image(db, vm, record["suspend_VDI"])
            db.update("VM", vm, power_state=HALTED)
            _stop_guest_agent(db, vm)
            refresh(db, vm)
        else:
            stop(db, vm, HALTED)


@api("VM", "clean_shutdown")
async def clean_shutdown(ctx: Context, vm: str) -> None:
    """Running -> Halted, with the guest's cooperation."""
    await _halt(ctx, vm, "clean_shutdown")


@api("VM", "hard_shutdown")
async def hard_shutdown(ctx: Context, vm: str) -> None:
    """Running, Paused or Suspended -> Halted; cancels a clean shutdown or reboot in progress."""
    await _halt(ctx, vm, "hard_shutdown")


@api("VM", "shutdown")
async def shutdown(ctx: Context, vm: str) -> None:
    """Running, Paused or Suspended -> Halted: clean when the guest can, hard otherwise."""
    await _halt(ctx, vm, "shutdown")


@api("VM", "clean_reboot")
async def clean_reboot(ctx: Context, vm: str) -> None:
    """Running -> Running in a new domain."""
    async with vm_operation(ctx, vm, "clean_reboot"):
        await work(ctx)
        _reboot(ctx, vm)


@api("VM", "hard_reboot")
async def hard_reboot(ctx: Context, vm: str) -> None:
    """Running or Paused -> the same state in a new domain."""
    async with vm_operation(ctx, vm, "hard_reboot"):
        await work(ctx)
        _reboot(ctx, vm)


@api("VM", "pause")
async def pause(ctx: Context, vm: str) -> None:
    """Running -> Paused."""
    await _set_paused(ctx, vm, "pause", PAUSED)


@api("VM", "unpause")
async def unpause(ctx: Context, vm: str) -> None:
    """Paused -> Running."""
    await _set_paused(ctx, vm, "unpause", RUNNING)


async def _set_paused(ctx: Context, vm: str, op: str, state: str) -> None:
    async with vm_operation(ctx, vm, op):
        await work(ctx, steps=2)
        db = ctx.db
        db.update("VM", vm, power_state=state)
        db.update("VM_metrics", _metrics(db, vm), state=[state.lower()],
                  last_updated=DateTime.now())
        refresh(db, vm)


@api("VM", "suspend")
async def suspend(ctx: Context, vm: str) -> None:
    """Running -> Suspended: memory goes to a suspend image VDI, the domain goes away."""
    async with vm_operation(ctx, vm, "suspend"):
        db = ctx.db
        sr = _suspend_sr(ctx, vm)
        await work(ctx)
        record = db.get("VM", vm)
        image = new_vdi(db, sr, {
            "name_label": "Suspend image",
            "name_description": "Suspend image",
            "type": "suspend",
            "virtual_size": int(record["memory_static_max"]) + 16 * MiB,
            "sharable": False,
            "read_only": False,
            "other_config": {},
        })
        db.update("VM", vm, suspend_VDI=image)
        stop(db, vm, SUSPENDED)


def _suspend_sr(ctx: Context, vm: str) -> str:
    """Where the suspend image goes: the VM's suspend_SR, else the pool's suspend_image_SR."""
    db = ctx.db
    for sr in (db.get("VM", vm)["suspend_SR"],
               db.get("pool", ctx.xapi.pool)["suspend_image_SR"]):
        if db.exists("SR", sr):
            return sr
    raise ApiError("VM_NO_SUSPEND_SR", vm)


@api("VM", "power_state_reset")
def power_state_reset(ctx: Context, vm: str) -> None:
    """Force the record to Halted whatever the domain does; refused for a control domain."""
    db = ctx.db
    record = db.get("VM", vm)
    if record["is_control_domain"]:
        raise ApiError("CANNOT_RESET_CONTROL_DOMAIN", vm)
    record["current_operations"].clear()
    if record["power_state"] in (RUNNING, PAUSED):
        stop(db, vm, HALTED)
    else:
        db.update("VM", vm, power_state=HALTED, suspend_VDI=NULL_REF,
                  scheduled_to_be_resident_on=NULL_REF)
        _stop_guest_agent(db, vm)
        refresh(db, vm)
