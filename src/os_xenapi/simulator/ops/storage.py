"""VBD and VIF records and their plug/unplug: how VMs reach their disks and networks.

``VBD.create``/``destroy``/``plug``/``unplug``/``unplug_force`` and their VIF counterparts, with
XAPI's checks (``xapi_vbd.ml``, ``xapi_vif_helpers``). The helpers that make records
(:func:`new_vbd`, :func:`new_vif`) are shared with the VM handlers, which use them for clone, copy
and provision. VDIs are in :mod:`.vdi`; their record helpers are re-exported here for the VM
handlers that import them from this module.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..dispatch import Context, api
from ..errors import ApiError
from ..generic import constructor_fields
from ..plugins import dom0_of
from ..schema import NULL_REF
from . import device_checks
from .vdi import duplicate_vdi, new_vdi, remove_vdi  # noqa: F401  (re-exported, see above)
from .vm_checks import operation_key, refresh, work

_USABLE_VDI_TYPES = ("system", "user", "ephemeral", "suspend", "crashdump", "metadata")
_DEVICE_NAME = re.compile(r"^(?:(?:s|xv|h)d([a-p])|fd([ab]))(\d*)$")
_NODE_NAME = re.compile(r"[a-z]{2,5}[0-9]{0,3}")  # a /dev entry: xvdb, xvdaa, sdc
_MAC = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")


def linux_device(userdevice: str) -> str:
    """The device name a disk number gets in the guest: 0 -> xvda, 1 -> xvdb, 26 -> xvdaa."""
    if not userdevice.isdigit():
        return userdevice
    number, letters = int(userdevice), ""
    while True:
        letters = chr(ord("a") + number % 26) + letters
        number = number // 26 - 1
        if number < 0:
            return "xvd" + letters


# -- VBDs ------------------------------------------------------------------------------------------

def _disk_number(device: str) -> tuple[int, int] | None:
    """(disk, partition) a userdevice or device string names, or None if it names none."""
    if device.lstrip("-").isdigit():
        return int(device), 0
    found = _DEVICE_NAME.match(device)
    if not found:
        return None
    letter = found.group(1) or found.group(2)
    return ord(letter) - ord("a"), int(found.group(3) or 0)


def used_vbd_devices(db: Any, vm: str) -> set[tuple[int, int]]:
    """Disk numbers the VM's VBDs already take, by userdevice or by device."""
    used = set()
    for vbd in db.get("VM", vm)["VBDs"]:
        record = db.get("VBD", vbd)
        for name in (record["userdevice"], record["device"]):
            number = _disk_number(name)
            if number is not None:
                used.add(number)
    return used


def allowed_vbd_devices(db: Any, vm: str) -> list[str]:
    """Free disk numbers of the VM: 0-254 (0-255 for a control domain)."""
    last = 255 if db.get("VM", vm)["is_control_domain"] else 254
    used = used_vbd_devices(db, vm)
    return [str(n) for n in range(last + 1) if (n, 0) not in used]


def new_vbd(db: Any, fields: dict[str, Any]) -> str:
    """Check and make a VBD as VBD.create does; returns its ref."""
    vm, vdi, empty = fields["VM"], fields.get("VDI", NULL_REF), fields["empty"]
    kind, mode = fields["type"], fields["mode"]
    if not empty:
        vdi_type = db.get("VDI", vdi)["type"]
        if vdi_type not in _USABLE_VDI_TYPES:
            raise ApiError("VDI_INCOMPATIBLE_TYPE", vdi, vdi_type)
    if kind == "CD" and mode != "RO":
        raise ApiError("VBD_CDS_MUST_BE_READONLY")
    if kind != "CD" and empty:
        raise ApiError("VBD_NOT_REMOVABLE_MEDIA", "in constructor")
    if not empty and mode == "RW" and db.get("VDI", vdi)["read_only"]:
        raise ApiError("VDI_READONLY", vdi)
    vm_record = db.get("VM", vm)
    for op in vm_record["current_operations"].values():
        if op in ("migrate_send", "pool_migrate"):
            raise ApiError("OTHER_OPERATION_IN_PROGRESS", "VM", vm, op)
    userdevice = fields["userdevice"]
    possible = allowed_vbd_devices(db, vm)
    if userdevice == "autodetect":
        if not possible:
            raise ApiError("INVALID_DEVICE", userdevice)
        userdevice = possible[0]
    elif _disk_number(userdevice) is None:
        raise ApiError("INVALID_DEVICE", userdevice)
    if _disk_number(userdevice) in used_vbd_devices(db, vm):
        raise ApiError("DEVICE_ALREADY_EXISTS", userdevice)
    record = {**fields, "VDI": NULL_REF if empty and vdi == "" else vdi,
              "userdevice": userdevice, "device": "", "currently_attached": False}
    vbd = db.create("VBD", record)
    device_checks.update_vbd(db, vbd)
    device_checks.update_vdi(db, record["VDI"])
    return vbd


@api("VBD", "create")
def vbd_create(ctx: Context, record: dict[str, Any]) -> str:
    """A new VBD, unplugged; ``userdevice`` may be ``autodetect``."""
    return new_vbd(ctx.db, constructor_fields(ctx, "VBD", record))


@api("VBD", "destroy")
def vbd_destroy(ctx: Context, vbd: str) -> None:
    """Delete a VBD that is not attached."""
    db = ctx.db
    record = db.get("VBD", vbd)
    if record["currently_attached"]:
        vm_uuid = db.get("VM", record["VM"])["uuid"] if db.exists("VM", record["VM"]) else ""
        raise ApiError("OPERATION_NOT_ALLOWED",
                       f"VBD '{record['uuid']}' still attached to '{vm_uuid}'")
    db.destroy("VBD", vbd)
    device_checks.update_vdi(db, record["VDI"])


@asynccontextmanager
async def _device_operation(ctx: Context, cls: str, ref: str, op: str) -> AsyncIterator[None]:
    """Mark ``op`` in the device's current_operations while the block runs."""
    db = ctx.db
    key = operation_key(ctx)
    db.get(cls, ref)["current_operations"][key] = op
    _UPDATE[cls](db, ref)
    try:
        yield
    finally:
        if db.exists(cls, ref):
            db.get(cls, ref)["current_operations"].pop(key, None)
            _UPDATE[cls](db, ref)


_UPDATE = {"VBD": device_checks.update_vbd, "VIF": device_checks.update_vif,
           "VDI": device_checks.update_vdi}


async def _plug_vbd(ctx: Context, vbd: str, op: str, attached: bool) -> None:
    db = ctx.db
    device_checks.raise_if(device_checks.vbd_errors(db, vbd), op)
    async with _device_operation(ctx, "VBD", vbd, op):
        await work(ctx, steps=2)
    record = db.get("VBD", vbd)
    changes: dict[str, Any] = {"currently_attached": attached}
    if attached:
        changes["device"] = linux_device(record["userdevice"])
    _dom0_device_node(ctx, record, changes.get("device", record["device"]), attached)
    db.update("VBD", vbd, **changes)
    refresh(db, record["VM"])


def _dom0_device_node(ctx: Context, record: dict[str, Any], device: str, attached: bool) -> None:
    """Make (or remove) ``$DOM0_ROOT/dev/<device>`` for a disk VBD of the control domain.

    A plugin that plugs a VDI into dom0 then reads the VDI's bytes at ``/dev/<device>``, as
    in a real dom0; the node is a symlink to the VDI's file in the simulator's store.
    """
    db = ctx.db
    if (not device or record["VDI"] == NULL_REF or not db.exists("VM", record["VM"])
            or not db.get("VM", record["VM"])["is_control_domain"]
            or not _NODE_NAME.fullmatch(device)):
        return
    node = dom0_of(ctx.xapi).root / "dev" / device
    if node.is_symlink() or node.exists():
        node.unlink()
    if attached and db.exists("VDI", record["VDI"]):
        vdi = db.get("VDI", record["VDI"])
        node.parent.mkdir(parents=True, exist_ok=True)
        node.symlink_to(ctx.xapi.vdis.ensure(vdi["uuid"], int(vdi["virtual_size"])))


@api("VBD", "plug")
async def vbd_plug(ctx: Context, vbd: str) -> None:
    """Hot-plug the VBD into its running VM."""
    await _plug_vbd(ctx, vbd, "plug", True)


@api("VBD", "unplug")
async def vbd_unplug(ctx: Context, vbd: str) -> None:
    """Hot-unplug the VBD from its running VM."""
    await _plug_vbd(ctx, vbd, "unplug", False)


@api("VBD", "unplug_force")
async def vbd_unplug_force(ctx: Context, vbd: str) -> None:
    """Hot-unplug the VBD without waiting for the guest."""
    await _plug_vbd(ctx, vbd, "unplug_force", False)


# -- VIFs ------------------------------------------------------------------------------------------

def generated_mac(seed: str, device: str) -> str:
    """The MAC XAPI derives from the VM's mac_seed and the VIF's device: unicast, local."""
    digest = hashlib.md5(f"{seed}/{device}".encode()).digest()
    first = (digest[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in (first, *digest[1:6]))


def new_vif(db: Any, fields: dict[str, Any]) -> str:
    """Check and make a VIF as VIF.create does; an empty MAC is generated from mac_seed."""
    vm, device, mac = fields["VM"], fields["device"], fields.get("MAC", "")
    seed = db.get("VM", vm)["other_config"].get("mac_seed")
    if not device.lstrip("-").isdigit():
        raise ApiError("INVALID_DEVICE", device)
    generated = False
    if seed is not None and mac == "":
        mac, generated = generated_mac(seed, device), True
    if not _MAC.match(mac):
        raise ApiError("MAC_INVALID", mac)
    if any(db.get("VIF", v)["device"] == device for v in db.get("VM", vm)["VIFs"]):
        raise ApiError("DEVICE_ALREADY_EXISTS", device)
    vif = db.create("VIF", {**fields, "MAC": mac, "MAC_autogenerated": generated,
                            "currently_attached": False})
    device_checks.update_vif(db, vif)
    return vif


def allowed_vif_devices(db: Any, vm: str) -> list[str]:
    """Free VIF device numbers of the VM, 0-6."""
    used = {db.get("VIF", v)["device"] for v in db.get("VM", vm)["VIFs"]}
    return [str(n) for n in range(7) if str(n) not in used]


@api("VIF", "create")
def vif_create(ctx: Context, record: dict[str, Any]) -> str:
    """A new VIF, unplugged."""
    return new_vif(ctx.db, constructor_fields(ctx, "VIF", record))


@api("VIF", "destroy")
def vif_destroy(ctx: Context, vif: str) -> None:
    """Delete a VIF, unless it is plugged into a running VM."""
    db = ctx.db
    record = db.get("VIF", vif)
    vm = db.all("VM").get(record["VM"])
    if vm is not None and vm["power_state"] == "Running" and record["currently_attached"]:
        raise ApiError("OPERATION_NOT_ALLOWED", "VIF currently attached to a running VM")
    db.destroy("VIF", vif)


async def _plug_vif(ctx: Context, vif: str, op: str, attached: bool) -> None:
    db = ctx.db
    device_checks.raise_if(device_checks.vif_errors(db, vif), "unplug" if not attached else op)
    async with _device_operation(ctx, "VIF", vif, "unplug" if not attached else op):
        await work(ctx, steps=2)
    db.update("VIF", vif, currently_attached=attached)
    refresh(db, db.get("VIF", vif)["VM"])


@api("VIF", "plug")
async def vif_plug(ctx: Context, vif: str) -> None:
    """Hot-plug the VIF into its running VM."""
    await _plug_vif(ctx, vif, "plug", True)


@api("VIF", "unplug")
async def vif_unplug(ctx: Context, vif: str) -> None:
    """Hot-unplug the VIF from its running VM."""
    await _plug_vif(ctx, vif, "unplug", False)


@api("VIF", "unplug_force")
async def vif_unplug_force(ctx: Context, vif: str) -> None:
    """Hot-unplug the VIF without waiting for the guest."""
    await _plug_vif(ctx, vif, "unplug_force", False)
