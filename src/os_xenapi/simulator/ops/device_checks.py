"""What XAPI lets a client do to a VBD, a VIF or a VDI right now.

Each ``*_errors`` function fills a table operation -> first error, in the order of XAPI's
``valid_operations`` (``xapi_vbd_helpers.ml``, ``xapi_vif_helpers.ml``, ``xapi_vdi.ml``): the first
rule that forbids an operation gives its error. ``allowed_operations`` lists the operations
left without an error.
"""

from __future__ import annotations

from typing import Any

from ..errors import ApiError
from ..schema import NULL_REF

VBD_OPS = ("attach", "eject", "unplug", "unplug_force", "insert", "plug", "pause", "unpause")
VIF_OPS = ("attach", "plug", "unplug")
VDI_OPS = ("snapshot", "copy", "clone", "destroy", "resize", "update", "generate_config",
           "resize_online")
# The SM capability each VDI operation needs (copy needs none).
_VDI_CAPABILITY = {
    "snapshot": "VDI_SNAPSHOT", "destroy": "VDI_DELETE", "resize": "VDI_RESIZE",
    "update": "VDI_UPDATE", "resize_online": "VDI_RESIZE_ONLINE",
    "generate_config": "VDI_GENERATE_CONFIG", "clone": "VDI_CLONE", "mirror": "VDI_MIRROR",
}
# VM operations during which a device cannot be plugged or unplugged.
_VM_BUSY = ("clean_shutdown", "hard_shutdown", "suspend", "pause")


class _Table(dict):
    """operation -> first error found (None while allowed)."""

    def __init__(self, ops: tuple[str, ...]) -> None:
        super().__init__(dict.fromkeys(ops))

    def forbid(self, error: ApiError, *ops: str) -> None:
        for op in ops:
            if op in self and self[op] is None:
                self[op] = error

    def allowed(self) -> list[str]:
        return [op for op, error in self.items() if error is None]


def _vm(db: Any, ref: str) -> dict[str, Any]:
    return db.get("VM", ref)


def _guest(db: Any, vm: dict[str, Any]) -> dict[str, Any] | None:
    return db.all("VM_guest_metrics").get(vm["guest_metrics"])


def _is_hvm(vm: dict[str, Any]) -> bool:
    if vm["domain_type"] != "unspecified":
        return vm["domain_type"] == "hvm"
    return bool(vm["HVM_boot_policy"])


def _hotplug_error(db: Any, vm_ref: str, vm: dict[str, Any], field: str, kind: str) -> ApiError | None:
    """Why an HVM guest cannot hot-plug a device, from what its PV drivers report."""
    guest = _guest(db, vm)
    claim = guest[field] if guest else "unspecified"
    if claim == "yes":
        return None
    if claim == "no":
        return ApiError("OPERATION_NOT_ALLOWED", f"VM states it does not support {kind} hotplug.")
    if guest and (guest["PV_drivers_detected"] or guest["PV_drivers_version"]):
        return None
    return ApiError("VM_MISSING_PV_DRIVERS", vm_ref)


def _power_rules(db: Any, table: _Table, ref: str, attached: bool, vm_ref: str,
                 unplug_ops: tuple[str, ...], extra_ops: tuple[str, ...] = ()) -> None:
    vm = _vm(db, vm_ref)
    state = vm["power_state"]
    if state == "Running":
        if attached:
            table.forbid(ApiError("DEVICE_ALREADY_ATTACHED", ref), "plug")
        else:
            table.forbid(ApiError("DEVICE_ALREADY_DETACHED", ref), *unplug_ops)
    else:
        bad = ("plug", *unplug_ops) + (() if state == "Paused" else extra_ops)
        table.forbid(ApiError("VM_BAD_POWER_STATE", vm_ref, "running", state.lower()), *bad)
    for op in vm["current_operations"].values():
        if op in _VM_BUSY:
            reason = f"Current operation on VM:{vm_ref} is {op}"
            table.forbid(ApiError("OPERATION_NOT_ALLOWED", reason), "plug", "unplug")


def vbd_errors(db: Any, vbd: str, sharing: bool = True) -> _Table:
    """The VBD operation table; ``sharing`` adds the VDI sharing checks done before a plug."""
    record = db.get("VBD", vbd)
    table = _Table(VBD_OPS)
    current = list(record["current_operations"].values())
    if current:
        busy = ApiError("OTHER_OPERATION_IN_PROGRESS", "VBD", vbd, current[0])
        table.forbid(busy, "attach", "eject", "unplug", "unplug_force", "insert", "plug")
        if any(op not in ("pause", "unpause") for op in current):
            table.forbid(busy, "pause")
        if any(op not in ("attach", "pause", "unpause") for op in current):
            table.forbid(busy, "unpause")
    if not record["unpluggable"]:
        table.forbid(ApiError("VBD_NOT_UNPLUGGABLE", vbd), "unplug", "unplug_force")
    if record["type"] != "CD":
        table.forbid(ApiError("VBD_NOT_REMOVABLE_MEDIA", vbd), "insert", "eject")
    if record["empty"]:
        table.forbid(ApiError("VBD_IS_EMPTY", vbd), "eject")
    else:
        table.forbid(ApiError("VBD_NOT_EMPTY", vbd), "insert")
    vm_ref = record["VM"]
    vm = _vm(db, vm_ref)
    _power_rules(db, table, vbd, record["currently_attached"], vm_ref,
                 ("unplug", "unplug_force"), ("pause", "unpause"))
    if vm["power_state"] == "Running" and _is_hvm(vm):
        error = _hotplug_error(db, vm_ref, vm, "can_use_hotplug_vbd", "VBD")
        if error is not None:
            table.forbid(error, "plug", "unplug", "unplug_force")
        if record["type"] == "CD":
            table.forbid(ApiError("OPERATION_NOT_ALLOWED",
                                  "HVM CDROMs cannot be hotplugged/unplugged, only inserted or "
                                  "ejected"), "plug", "unplug", "unplug_force")
    if record["type"] == "CD" and vm["power_state"] == "Suspended":
        table.forbid(ApiError("VM_BAD_POWER_STATE", vm_ref, "halted, running", "suspended"),
                     "insert", "eject")
    vdi = record["VDI"]
    if not record["empty"] and db.exists("VDI", vdi):
        _vdi_rules_for_vbd(db, table, vbd, record, vdi, sharing)
    return table


def _vdi_rules_for_vbd(db: Any, table: _Table, vbd: str, record: dict[str, Any], vdi: str,
                       sharing: bool) -> None:
    vdi_record = db.get("VDI", vdi)
    if not vdi_record["managed"]:
        table.forbid(ApiError("VDI_NOT_MANAGED", vbd), *VBD_OPS)
    busy = [op for op in vdi_record["current_operations"].values() if op not in ("copy", "mirror")]
    if busy:
        table.forbid(ApiError("OTHER_OPERATION_IN_PROGRESS", "VDI", vdi, busy[0]),
                     "attach", "plug", "insert")
    if record["currently_attached"] or not sharing:
        return
    others = []
    for other in vdi_record["VBDs"]:
        if other == vbd or not db.exists("VBD", other):
            continue
        other_record = db.get("VBD", other)
        owner = db.all("VM").get(other_record["VM"])
        if owner is None or owner["power_state"] == "Suspended" or owner["is_control_domain"]:
            continue
        if other_record["currently_attached"] or other_record["current_operations"]:
            others.append(other_record)
    need_write = record["mode"] == "RW"
    someone_writes = any(o["mode"] == "RW" for o in others)
    owner = _vm(db, record["VM"])
    if (not vdi_record["sharable"] and not owner["is_control_domain"]
            and (someone_writes or (need_write and others))):
        table.forbid(ApiError("VDI_IN_USE", vdi), "attach", "insert", "plug")
    if need_write and vdi_record["read_only"]:
        table.forbid(ApiError("VDI_READONLY", vdi), "attach", "insert", "plug")


def vif_errors(db: Any, vif: str) -> _Table:
    """The VIF operation table."""
    record = db.get("VIF", vif)
    table = _Table(VIF_OPS)
    current = list(record["current_operations"].values())
    if current:
        table.forbid(ApiError("OTHER_OPERATION_IN_PROGRESS", "VIF", vif, current[0]), *VIF_OPS)
    vm_ref = record["VM"]
    _power_rules(db, table, vif, record["currently_attached"], vm_ref, ("unplug",))
    vm = _vm(db, vm_ref)
    if vm["power_state"] == "Running" and _is_hvm(vm):
        error = _hotplug_error(db, vm_ref, vm, "can_use_hotplug_vif", "VIF")
        if error is not None:
            table.forbid(error, "plug", "unplug")
    return table


def sm_features(db: Any, sr: str) -> set[str]:
    """The capabilities of the SM driver behind ``sr``."""
    sr_type = db.get("SR", sr)["type"]
    for record in db.all("SM").values():
        if record["type"] == sr_type:
            return set(record["features"]) | set(record["capabilities"])
    return set()


def pbd_plugged(db: Any, sr: str) -> bool:
    return any(db.get("PBD", pbd)["currently_attached"] for pbd in db.get("SR", sr)["PBDs"])


def vdi_error(db: Any, vdi: str, op: str) -> ApiError | None:
    """The error XAPI gives for ``op`` on ``vdi`` now; None if allowed."""
    record = db.get("VDI", vdi)
    current = record["current_operations"]
    if current:
        task, running = next(iter(current.items()))
        return ApiError("OTHER_OPERATION_IN_PROGRESS", "VDI", vdi, running, task)
    sr = record["SR"]
    if op in ("resize", "destroy") and not pbd_plugged(db, sr):
        return ApiError("SR_HAS_NO_PBDS", sr)
    vbds = [db.get("VBD", v) for v in record["VBDs"] if db.exists("VBD", v)]
    live = op in ("snapshot", "resize_online", "blocked", "clone", "copy")
    if not live and any(v["currently_attached"] for v in vbds):
        return ApiError("VDI_IN_USE", vdi, op)
    for vbd in vbds:
        if vbd["current_operations"]:
            task, running = next(iter(vbd["current_operations"].items()))
            return ApiError("OTHER_OPERATION_IN_PROGRESS", "VDI", vdi, running, task)
    if op == "destroy" and not record["managed"]:
        return ApiError("VDI_NOT_MANAGED", vdi)
    needed = _VDI_CAPABILITY.get(op)
    if needed and needed not in sm_features(db, sr):
        return ApiError("SR_OPERATION_NOT_SUPPORTED", sr)
    return None


def _publish(db: Any, cls: str, ref: str, allowed: list[str]) -> None:
    """Write allowed_operations only when it changes, so that event.from sees real changes."""
    if db.get(cls, ref)["allowed_operations"] != allowed:
        db.set(cls, ref, "allowed_operations", allowed)


def update_vbd(db: Any, vbd: str) -> None:
    """Recompute VBD.allowed_operations (without the costly sharing checks, as XAPI does)."""
    _publish(db, "VBD", vbd, vbd_errors(db, vbd, sharing=False).allowed())


def update_vif(db: Any, vif: str) -> None:
    """Recompute VIF.allowed_operations."""
    _publish(db, "VIF", vif, vif_errors(db, vif).allowed())


def update_vdi(db: Any, vdi: str) -> None:
    """Recompute VDI.allowed_operations; a NULL or vanished VDI is left alone."""
    if vdi == NULL_REF or not db.exists("VDI", vdi):
        return
    _publish(db, "VDI", vdi, [op for op in VDI_OPS if vdi_error(db, vdi, op) is None])


def raise_if(table: _Table, op: str) -> None:
    """Raise the error the table holds for ``op``, if any."""
    error = table.get(op)
    if error is not None:
        raise error
