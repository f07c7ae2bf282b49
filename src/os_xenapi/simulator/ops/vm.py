"""VM records: create, destroy, clone, copy, provision, device numbers and memory/VCPU settings.

Power operations live in :mod:`.vm_lifecycle`; the rules both use in :mod:`.vm_checks`.
Clone and copy follow ``xapi_vm_clone.ml``: the new VM is Halted, keeps ``is_a_template``, loses
``default_template``, gets a fresh ``mac_seed``; its disks are cloned (or copied) as new VDIs, CDs
keep their ISO, and VIFs are recreated with MACs from the new seed. Provision follows
``xapi_templates.ml``: it turns the template into a VM and makes the disks ``other_config:disks``
describes (a disk with a blank ``sr`` goes to the pool's default SR).
"""

from __future__ import annotations

import random
import uuid as _uuid
import xml.etree.ElementTree as ElementTree
from typing import Any

from ..dispatch import Context, api
from ..errors import ApiError
from ..generic import constructor_fields
from ..schema import NULL_REF, copy_value
from ..values import EPOCH, DateTime
from . import device_checks
from .storage import (
    allowed_vbd_devices,
    allowed_vif_devices,
    duplicate_vdi,
    new_vbd,
    new_vdi,
    new_vif,
)
from .vm_checks import assert_operation_valid, refresh, vm_operation, work

# Fields a clone or copy does not inherit, with the value the new VM starts with.
_FRESH = {
    "allowed_operations": [], "current_operations": {}, "blocked_operations": {},
    "is_default_template": False, "is_a_snapshot": False, "snapshot_of": NULL_REF,
    "snapshot_time": EPOCH, "snapshot_info": {}, "snapshot_metadata": "",
    "transportable_snapshot_id": "", "parent": NULL_REF, "resident_on": NULL_REF,
    "scheduled_to_be_resident_on": NULL_REF, "suspend_VDI": NULL_REF, "power_state": "Halted",
    "domid": -1, "domarch": "", "guest_metrics": NULL_REF, "blobs": {}, "ha_always_run": False,
    "protection_policy": NULL_REF, "snapshot_schedule": NULL_REF, "is_vmss_snapshot": False,
    "appliance": NULL_REF, "start_delay": 0, "shutdown_delay": 0, "order": 0,
    "suspend_SR": NULL_REF, "version": 0, "requires_reboot": False, "pending_guidances": [],
    "pending_guidances_recommended": [], "pending_guidances_full": [],
}
_INTERNAL_KEYS = ("default_template", "xensource_internal")


def _memory_in_order(smin: int, dmin: int, dmax: int, smax: int) -> None:
    if not smin <= dmin <= dmax <= smax:
        raise ApiError("MEMORY_CONSTRAINT_VIOLATION_ORDER")


def _new_metrics(db: Any, source: str = NULL_REF) -> str:
    """A VM_metrics record: a copy of ``source`` when it exists, else a fresh one."""
    fields: dict[str, Any] = {"install_time": DateTime.now(), "current_domain_type": "unspecified"}
    if db.exists("VM_metrics", source):
        original = db.get("VM_metrics", source)
        fields = {k: copy_value(v) for k, v in original.items() if k not in ("uuid",)}
    return db.create("VM_metrics", fields)


@api("VM", "create")
def create(ctx: Context, record: dict[str, Any]) -> str:
    """A new Halted VM (or template) with its metrics record and a mac_seed."""
    db = ctx.db
    fields = constructor_fields(ctx, "VM", record)
    _memory_in_order(fields["memory_static_min"], fields["memory_dynamic_min"],
                     fields["memory_dynamic_max"], fields["memory_static_max"])
    if fields["VCPUs_max"] < 1:
        raise ApiError("INVALID_VALUE", "VCPUs_max", fields["VCPUs_max"])
    if not 1 <= fields["VCPUs_at_startup"] <= fields["VCPUs_max"]:
        raise ApiError("INVALID_VALUE", "VCPUs_at_startup", fields["VCPUs_at_startup"])
    fields["other_config"] = dict(fields["other_config"])
    fields["other_config"].setdefault("mac_seed", str(_uuid.uuid4()))
    kind = fields.get("domain_type", "unspecified")
    if kind == "unspecified":
        fields["domain_type"] = "hvm" if fields["HVM_boot_policy"] else "pv"
    elif not fields["HVM_boot_policy"] and kind == "hvm":
        fields["HVM_boot_policy"] = "BIOS order"
    fields.update(power_state="Halted", domid=-1, resident_on=NULL_REF,
                  metrics=_new_metrics(db))
    vm = db.create("VM", fields)
    refresh(db, vm)
    return vm


@api("VM", "destroy")
async def destroy(ctx: Context, vm: str) -> None:
    """Delete a Halted or Suspended VM with its VBDs, VIFs, consoles and metrics, not its VDIs."""
    async with vm_operation(ctx, vm, "destroy"):
        db = ctx.db
        record = db.get("VM", vm)
        if record["other_config"].get("default_template") == "true":
            raise ApiError("VM_CANNOT_DELETE_DEFAULT_TEMPLATE")
        for vbd in list(record["VBDs"]):
            vdi = db.get("VBD", vbd)["VDI"]
            db.destroy("VBD", vbd)
            device_checks.update_vdi(db, vdi)
        for cls, field in (("VIF", "VIFs"), ("console", "consoles")):
            for ref in list(record[field]):
                db.destroy(cls, ref)
        for cls, field in (("VM_metrics", "metrics"), ("VM_guest_metrics", "guest_metrics")):
            if db.exists(cls, record[field]):
                db.destroy(cls, record[field])
        db.destroy("VM", vm)


def _new_vm_record(ctx: Context, vm: str, new_name: str) -> dict[str, Any]:
    """The record of a clone or copy of ``vm``, before its devices exist."""
    db = ctx.db
    original = db.get("VM", vm)
    schema = db.schema["VM"].fields
    record = {}
    for name, value in original.items():
        field = schema.get(name)
        back_reference = (field is not None and field.type.kind == "set"
                          and getattr(field.type.item, "kind", "") == "ref"
                          and field.qualifier == "RO/runtime")
        record[name] = [] if back_reference else copy_value(value)
    record.update({k: copy_value(v) for k, v in _FRESH.items() if k in record})
    other = {k: v for k, v in original["other_config"].items() if k not in _INTERNAL_KEYS}
    other["mac_seed"] = str(_uuid.uuid4())
    if original["is_a_template"]:
        other.setdefault("base_template_name", original["name_label"])
    genid = original["generation_id"]
    record.update(
        uuid="", name_label=new_name, other_config=other,
        metrics=_new_metrics(db, original["metrics"]),
        generation_id=genid and f"{random.getrandbits(63)}:{random.getrandbits(63)}",
    )
    return record


async def _duplicate(ctx: Context, vm: str, new_name: str, copy_to: str | None,
                     full_copy: bool) -> str:
    """Clone (or with ``full_copy`` copy) ``vm``: disks first, then the record and devices."""
    db = ctx.db
    vbds = [db.get("VBD", vbd) for vbd in db.get("VM", vm)["VBDs"]]
    disks = [v for v in vbds if not v["empty"] and v["type"] != "CD"]
    new_vdis: dict[str, str] = {}
    for index, vbd in enumerate(disks, start=1):
        await work(ctx, steps=1, start=(index - 1) / (len(disks) + 1),
                   end=index / (len(disks) + 1))
        source = vbd["VDI"]
        if full_copy:
            target = copy_to or db.get("VDI", source)["SR"]
            new_vdis[source] = duplicate_vdi(db, source, target)
        else:
            new_vdis[source] = duplicate_vdi(db, source)
    clone = db.create("VM", _new_vm_record(ctx, vm, new_name))
    for vbd in vbds:
        other = dict(vbd["other_config"])
        if vbd["type"] == "Disk":
            other.setdefault("owner", "")
        db.create("VBD", {
            **{k: copy_value(vbd[k]) for k in ("device", "userdevice", "bootable", "mode", "type",
                                          "unpluggable", "empty", "qos_algorithm_type",
                                          "qos_algorithm_params")},
            "VM": clone, "VDI": new_vdis.get(vbd["VDI"], vbd["VDI"]), "other_config": other,
            "currently_attached": False,
        })
    for vif in db.get("VM", vm)["VIFs"]:
        source = db.get("VIF", vif)
        new_vif(db, {**{k: copy_value(source[k]) for k in (
            "device", "network", "MTU", "other_config", "qos_algorithm_type",
            "qos_algorithm_params", "locking_mode", "ipv4_allowed", "ipv6_allowed")},
            "VM": clone, "MAC": ""})
    refresh(db, clone)
    return clone


@api("VM", "clone")
async def clone(ctx: Context, vm: str, new_name: str) -> str:
    """A Halted copy of a Halted VM or template, its disks cloned in their SRs."""
    async with vm_operation(ctx, vm, "clone"):
        return await _duplicate(ctx, vm, new_name, None, full_copy=False)


@api("VM", "copy")
async def copy(ctx: Context, vm: str, new_name: str, sr: str) -> str:
    """A Halted copy with full copies of the disks in ``sr`` (each disk's own SR if NULL)."""
    async with vm_operation(ctx, vm, "copy"):
        target = sr if ctx.db.exists("SR", sr) else None
        if target is not None and ctx.db.get("SR", target)["content_type"] == "iso":
            raise ApiError("OPERATION_NOT_ALLOWED", "Cannot copy a VM's disks to an ISO SR")
        return await _duplicate(ctx, vm, new_name, target, full_copy=True)


def _provision_disks(text: str) -> list[dict[str, Any]]:
    """The disks of a ``<provision>`` document; INTERNAL_ERROR as XAPI's parser fails."""
    failure = ApiError("INTERNAL_ERROR", "Xapi_templates.Parse_failure")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        raise failure from None
    if root.tag != "provision" or root.attrib:
        raise failure
    disks = []
    for element in root:
        attrs = element.attrib
        if element.tag != "disk" or len(element) or not {"device", "size", "sr",
                                                          "bootable"} <= set(attrs):
            raise failure
        try:
            size = int(attrs["size"])
        except ValueError:
            raise failure from None
        kind = attrs.get("type", "system")
        if kind not in ("system", "user", "ephemeral", "suspend", "crashdump"):
            kind = "system"
        disks.append({"device": attrs["device"], "size": size, "sr": attrs["sr"],
                      "bootable": attrs["bootable"] == "true", "type": kind})
    return disks


def _provision_sr(ctx: Context, uuid: str) -> str:
    """The SR a provision disk names by uuid; a blank one means the pool's default SR.

    XAPI itself refuses a blank ``sr`` (UUID_INVALID ["sr", ""]); ``xe vm-install`` and XenCenter
    fill it in first. The simulator fills it in as they would.
    """
    db = ctx.db
    sr = db.by_uuid["SR"].get(uuid)
    if sr is None and uuid == "":
        sr = db.get("pool", ctx.xapi.pool)["default_SR"]
    if sr is None or not db.exists("SR", sr):
        raise ApiError("UUID_INVALID", "sr", uuid)
    return sr


@api("VM", "provision")
async def provision(ctx: Context, vm: str) -> None:
    """Make a template a VM and create the disks its other_config:disks asks for."""
    async with vm_operation(ctx, vm, "provision"):
        db = ctx.db
        db.update("VM", vm, is_a_template=False)
        record = db.get("VM", vm)
        text = record["other_config"].get("disks")
        disks = _provision_disks(text) if text else []
        for index, disk in enumerate(disks, start=1):
            await work(ctx, steps=1, start=(index - 1) / (len(disks) + 1),
                       end=index / (len(disks) + 1))
            sr = _provision_sr(ctx, disk["sr"])
            if not device_checks.pbd_plugged(db, sr):
                raise ApiError("SR_HAS_NO_PBDS", sr)
            vdi = new_vdi(db, sr, {
                "name_label": "", "name_description": "Created by template provisioner",
                "virtual_size": disk["size"], "type": disk["type"], "sharable": False,
                "read_only": False, "other_config": {}, "xenstore_data": {},
                "sm_config": {"vmhint": record["uuid"]}, "tags": [],
            })
            vbd = new_vbd(db, {
                "VM": vm, "VDI": vdi, "userdevice": disk["device"], "bootable": disk["bootable"],
                "mode": "RW", "type": "Disk", "unpluggable": disk["type"] != "system",
                "empty": False, "qos_algorithm_type": "", "qos_algorithm_params": {},
                "other_config": {"owner": ""},
            })
            db.update("VDI", vdi, name_label=db.get("VBD", vbd)["userdevice"])
        other = db.get("VM", vm)["other_config"]
        other.pop("disks", None)
        other.pop("postinstall", None)
        db.touch(vm)


# -- devices ---------------------------------------------------------------------------------------

@api("VM", "get_allowed_VBD_devices")
def get_allowed_VBD_devices(ctx: Context, vm: str) -> list[str]:  # noqa: N802 - XAPI's name
    """Disk numbers a new VBD of this VM may take."""
    return allowed_vbd_devices(ctx.db, vm)


@api("VM", "get_allowed_VIF_devices")
def get_allowed_VIF_devices(ctx: Context, vm: str) -> list[str]:  # noqa: N802 - XAPI's name
    """Device numbers a new VIF of this VM may take."""
    return allowed_vif_devices(ctx.db, vm)


@api("VM", "assert_operation_valid")
def assert_op_valid(ctx: Context, vm: str, op: str) -> None:
    """Raise the error ``op`` would meet now, if any."""
    assert_operation_valid(ctx.db, vm, op)


@api("VM", "update_allowed_operations")
def update_allowed_operations(ctx: Context, vm: str) -> None:
    """Recompute allowed_operations of the VM and its devices."""
    ctx.db.get("VM", vm)
    refresh(ctx.db, vm)


@api("VM", "compute_memory_overhead")
def compute_memory_overhead(ctx: Context, vm: str) -> int:
    """The VM's memory overhead in bytes."""
    return int(ctx.db.get("VM", vm)["memory_overhead"])


# -- memory and VCPUs ------------------------------------------------------------------------------

async def _set_memory(ctx: Context, vm: str, op: str, **values: int) -> None:
    """Change memory limits under ``op``; MEMORY_CONSTRAINT_VIOLATION_ORDER if out of order."""
    async with vm_operation(ctx, vm, op):
        record = ctx.db.get("VM", vm)
        limits = {k: values.get(k, record[k]) for k in (
            "memory_static_min", "memory_dynamic_min", "memory_dynamic_max", "memory_static_max")}
        _memory_in_order(*limits.values())
        ctx.db.update("VM", vm, **limits)


@api("VM", "set_memory_dynamic_range")
async def set_memory_dynamic_range(ctx: Context, vm: str, min: int, max: int) -> None:  # noqa: A002
    """Set dynamic min and max (Halted or Running)."""
    await _set_memory(ctx, vm, "changing_dynamic_range", memory_dynamic_min=min,
                      memory_dynamic_max=max)


@api("VM", "set_memory_dynamic_max")
async def set_memory_dynamic_max(ctx: Context, vm: str, value: int) -> None:
    """Set the dynamic maximum (Halted or Running)."""
    await _set_memory(ctx, vm, "changing_dynamic_range", memory_dynamic_max=value)


@api("VM", "set_memory_dynamic_min")
async def set_memory_dynamic_min(ctx: Context, vm: str, value: int) -> None:
    """Set the dynamic minimum (Halted or Running)."""
    await _set_memory(ctx, vm, "changing_dynamic_range", memory_dynamic_min=value)


@api("VM", "set_memory_static_range")
async def set_memory_static_range(ctx: Context, vm: str, min: int, max: int) -> None:  # noqa: A002
    """Set static min and max (Halted)."""
    await _set_memory(ctx, vm, "changing_static_range", memory_static_min=min,
                      memory_static_max=max)


@api("VM", "set_memory_static_max")
async def set_memory_static_max(ctx: Context, vm: str, value: int) -> None:
    """Set the static maximum (Halted)."""
    await _set_memory(ctx, vm, "changing_static_range", memory_static_max=value)


@api("VM", "set_memory_static_min")
async def set_memory_static_min(ctx: Context, vm: str, value: int) -> None:
    """Set the static minimum (Halted)."""
    await _set_memory(ctx, vm, "changing_static_range", memory_static_min=value)


@api("VM", "set_memory_limits")
async def set_memory_limits(ctx: Context, vm: str, static_min: int, static_max: int,
                            dynamic_min: int, dynamic_max: int) -> None:
    """Set all four memory limits at once (Halted)."""
    await _set_memory(ctx, vm, "changing_memory_limits", memory_static_min=static_min,
                      memory_static_max=static_max, memory_dynamic_min=dynamic_min,
                      memory_dynamic_max=dynamic_max)


@api("VM", "set_memory")
async def set_memory(ctx: Context, vm: str, value: int) -> None:
    """Set static max, dynamic max and dynamic min to ``value`` (Halted)."""
    await _set_memory(ctx, vm, "changing_memory_limits", memory_static_max=value,
                      memory_dynamic_max=value, memory_dynamic_min=value)


@api("VM", "set_VCPUs_max")
async def set_VCPUs_max(ctx: Context, vm: str, value: int) -> None:  # noqa: N802 - XAPI's name
    """Set VCPUs_max (Halted); it must stay at least VCPUs_at_startup."""
    async with vm_operation(ctx, vm, "changing_VCPUs"):
        if value < max(1, ctx.db.get("VM", vm)["VCPUs_at_startup"]):
            raise ApiError("INVALID_VALUE", "VCPUs_max", value)
        ctx.db.update("VM", vm, VCPUs_max=value)


@api("VM", "set_VCPUs_at_startup")
async def set_VCPUs_at_startup(ctx: Context, vm: str, value: int) -> None:  # noqa: N802
    """Set VCPUs_at_startup (Halted), between 1 and VCPUs_max."""
    async with vm_operation(ctx, vm, "changing_VCPUs"):
        if not 1 <= value <= ctx.db.get("VM", vm)["VCPUs_max"]:
            raise ApiError("INVALID_VALUE", "VCPUs_at_startup", value)
        ctx.db.update("VM", vm, VCPUs_at_startup=value)


@api("VM", "set_VCPUs_number_live")
async def set_VCPUs_number_live(ctx: Context, vm: str, nvcpu: int) -> None:  # noqa: N802
    """Hot-plug or unplug VCPUs of a Running VM, up to VCPUs_max."""
    async with vm_operation(ctx, vm, "changing_VCPUs_live"):
        db = ctx.db
        record = db.get("VM", vm)
        if not 1 <= nvcpu <= record["VCPUs_max"]:
            raise ApiError("INVALID_VALUE", "nvcpu", nvcpu)
        db.update("VM", vm, VCPUs_at_startup=nvcpu)
        if db.exists("VM_metrics", record["metrics"]):
            db.update("VM_metrics", record["metrics"], VCPUs_number=nvcpu)

