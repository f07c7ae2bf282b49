"""What XAPI lets a client do to a VM right now, and how an operation is marked while it runs.

The rules follow ``xapi_vm_lifecycle.ml``: an operation is checked for ``blocked_operations``, then
the power state, then the operations already in progress, then the template, snapshot, provision
and control-domain rules, then the guest features it needs. ``allowed_operations`` is the list of
candidate operations that pass those checks, recomputed after every change (:func:`refresh`).

:func:`vm_operation` is the simulator's ``with_vm_operation``: it checks, records ``{task: op}`` in
``current_operations`` for as long as the operation runs, and turns a cancellation into
``TASK_CANCELLED``. :func:`work` is the time an operation takes, in steps that move the task's
progress when ``Config.operation_delay`` is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..db import new_ref
from ..dispatch import Context
from ..errors import ApiError, vm_bad_power_state
from ..schema import NULL_REF
from . import device_checks

HALTED, PAUSED, RUNNING, SUSPENDED = "Halted", "Paused", "Running", "Suspended"
ALL_STATES = (HALTED, PAUSED, SUSPENDED, RUNNING)

# Source power states per operation, in XAPI's order (it is the order of VM_BAD_POWER_STATE's
# "expected" parameter). Operations not listed are allowed in every state.
_POWER_STATES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("changing_shadow_memory", "make_into_template", "provision", "start", "start_on",
         "changing_NVRAM", "create_vtpm"), (HALTED,)),
    "unpause": (PAUSED,),
    **dict.fromkeys(("csvm", "resume", "resume_on"), (SUSPENDED,)),
    **dict.fromkeys(
        ("awaiting_memory_live", "call_plugin", "clean_reboot", "clean_shutdown",
         "changing_memory_live", "changing_shadow_memory_live", "changing_VCPUs_live",
         "data_source_op", "pause", "pool_migrate", "send_sysrq", "send_trigger",
         "snapshot_with_quiesce", "suspend"), (RUNNING,)),
    "changing_dynamic_range": (HALTED, RUNNING),
    **dict.fromkeys(("create_template", "destroy", "export"), (HALTED, SUSPENDED)),
    "hard_reboot": (PAUSED, RUNNING),
    **dict.fromkeys(("checkpoint", "get_boot_record", "shutdown", "hard_shutdown"),
                    (PAUSED, SUSPENDED, RUNNING)),
    "migrate_send": (HALTED, SUSPENDED, RUNNING),
    "import": (),
}
_HALTED_OR_DOM0_RUNNING = ("changing_VCPUs", "changing_static_range", "changing_memory_limits")

# The operations whose availability XAPI publishes in VM.allowed_operations, in its order.
CANDIDATES = (
    "snapshot", "copy", "clone", "revert", "checkpoint", "snapshot_with_quiesce", "start",
    "start_on", "pause", "unpause", "clean_shutdown", "clean_reboot", "hard_shutdown",
    "hard_reboot", "suspend", "resume", "resume_on", "export", "destroy", "provision",
    "changing_VCPUs_live", "pool_migrate", "migrate_send", "make_into_template",
    "changing_static_range", "changing_shadow_memory", "changing_dynamic_range",
)

# What a template may do (besides destroy when it is not a default template).
_TEMPLATE_OPS = frozenset((
    "changing_dynamic_range", "changing_static_range", "changing_memory_limits",
    "changing_shadow_memory", "changing_VCPUs", "clone", "copy", "export", "metadata_export",
    "provision",
))
_SNAPSHOT_OPS = frozenset((
    "revert", "clone", "copy", "export", "destroy", "hard_shutdown", "metadata_export",
))
# What a control domain may do; dom0 also refuses changing_VCPUs and destroy.
_CONTROL_DOMAIN_OPS = frozenset((
    "data_source_op", "changing_memory_live", "awaiting_memory_live", "metadata_export",
    "changing_dynamic_range", "changing_memory_limits", "changing_static_range", "start",
    "start_on", "changing_VCPUs", "destroy",
))
# Operations that can run side by side: each group with itself, plus a few transitions.
_CONCURRENT_GROUPS = (
    frozenset(("clone", "copy", "export")),
    frozenset(("snapshot", "checkpoint")),
    frozenset(("get_boot_record",)),
)
_CONCURRENT_AFTER = {
    ("snapshot_with_quiesce",): ("snapshot",),
    ("migrate_send",): ("metadata_export", "clean_shutdown", "clean_reboot", "start", "start_on"),
}


def allowed_power_states(record: dict[str, Any], op: str) -> tuple[str, ...]:
    """The power states in which ``op`` may start, in the order XAPI reports them."""
    if op in _HALTED_OR_DOM0_RUNNING:
        return (HALTED, RUNNING) if record["is_control_domain"] else (HALTED,)
    if op in ("clone", "copy"):
        return (HALTED, SUSPENDED) if record["is_a_snapshot"] else (HALTED,)
    return _POWER_STATES.get(op, ALL_STATES)


def is_allowed_concurrently(op: str, current: list[str]) -> bool:
    """True when ``op`` may start while the operations ``current`` are in progress."""
    for group in _CONCURRENT_GROUPS:
        if op in group and all(c in group for c in current):
            return True
    if op == "hard_shutdown":
        return "hard_shutdown" not in current
    if op == "hard_reboot":
        return not any(c in ("hard_shutdown", "hard_reboot") for c in current)
    return op in _CONCURRENT_AFTER.get(tuple(current), ())


def domain_type(record: dict[str, Any]) -> str:
    """``hvm``, ``pv``, ... as the VM boots; XAPI derives it from HVM_boot_policy when unset."""
    if record["domain_type"] != "unspecified":
        return record["domain_type"]
    return "hvm" if record["HVM_boot_policy"] else "pv"


def _guest(db: Any, record: dict[str, Any]) -> dict[str, Any] | None:
    ref = record["guest_metrics"]
    return db.all("VM_guest_metrics").get(ref) if ref != NULL_REF else None


def has_pv_drivers(guest: dict[str, Any] | None) -> bool:
    return bool(guest and (guest["PV_drivers_detected"] or guest["PV_drivers_version"]))


def _feature_error(db: Any, vm: str, record: dict[str, Any], op: str) -> ApiError | None:
    """VM_LACKS_FEATURE for an HVM guest without PV drivers asked to cooperate."""
    if record["power_state"] != RUNNING or domain_type(record) != "hvm":
        return None
    guest = _guest(db, record)
    if has_pv_drivers(guest):
        return None
    other = guest["other"] if guest else {}

    def lacks(*features: str) -> bool:
        return all(other.get(f) != "1" for f in features)

    needs = {
        "clean_shutdown": lacks("feature-shutdown", "feature-poweroff"),
        "clean_reboot": lacks("feature-shutdown", "feature-reboot"),
        "changing_VCPUs_live": lacks("feature-vcpu-hotplug"),
        "suspend": lacks("feature-suspend"),
        "checkpoint": lacks("feature-suspend"),
        "pool_migrate": lacks("feature-suspend"),
        "migrate_send": lacks("feature-suspend"),
    }
    return ApiError("VM_LACKS_FEATURE", vm) if needs.get(op) else None


def operation_error(db: Any, vm: str, op: str) -> ApiError | None:
    """The error XAPI gives for ``op`` on ``vm`` now, in its order of checks; None if allowed."""
    record = db.get("VM", vm)
    blocked = record["blocked_operations"]
    if op in blocked:
        return ApiError("OPERATION_BLOCKED", vm, blocked[op])
    states = allowed_power_states(record, op)
    if record["power_state"] not in states:
        return vm_bad_power_state(vm, list(states), record["power_state"])
    current = record["current_operations"]
    if current and not is_allowed_concurrently(op, list(current.values())):
        task, running = next(iter(current.items()))
        return ApiError("OTHER_OPERATION_IN_PROGRESS", "VM", vm, running, task)
    template, snapshot = record["is_a_template"], record["is_a_snapshot"]
    if template and not snapshot:
        default = record["is_default_template"] or _true(record["other_config"], "default_template")
        if not (op in _TEMPLATE_OPS or (op in ("destroy", "migrate_send") and not default)):
            return ApiError("VM_IS_TEMPLATE", vm, op)
    if snapshot and op not in _SNAPSHOT_OPS:
        return ApiError("VM_IS_SNAPSHOT", vm, op)
    if op == "provision" and not template:
        return ApiError("PROVISION_ONLY_ALLOWED_ON_TEMPLATE")
    if op == "revert" and not snapshot:
        return ApiError("ONLY_REVERT_SNAPSHOT")
    if record["is_control_domain"]:
        if op in ("changing_VCPUs", "destroy") and record["domid"] == 0:
            return ApiError("OPERATION_NOT_ALLOWED", "This operation is not allowed on dom0")
        if op not in _CONTROL_DOMAIN_OPS:
            return ApiError(
                "OPERATION_NOT_ALLOWED", "This operation is not allowed on a control domain"
            )
    error = _feature_error(db, vm, record, op)
    if error:
        return error
    if op == "snapshot_with_quiesce":
        other = (_guest(db, record) or {}).get("other", {})
        if "feature-quiesce" not in other and "feature-snapshot" not in other:
            return ApiError("VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED", vm)
    return None


def _true(config: dict[str, str], key: str) -> bool:
    return config.get(key, "").lower() in ("1", "true")


def assert_operation_valid(db: Any, vm: str, op: str) -> None:
    """Raise the error :func:`operation_error` finds, if any."""
    error = operation_error(db, vm, op)
    if error is not None:
        raise error


def update_allowed_operations(db: Any, vm: str) -> None:
    """Recompute VM.allowed_operations (XAPI lists them newest-checked first)."""
    allowed = [op for op in reversed(CANDIDATES) if operation_error(db, vm, op) is None]
    if db.get("VM", vm)["allowed_operations"] != allowed:
        db.set("VM", vm, "allowed_operations", allowed)


def refresh(db: Any, vm: str) -> None:
    """Recompute allowed_operations of the VM and of its VBDs, VDIs and VIFs."""
    if not db.exists("VM", vm):
        return
    record = db.get("VM", vm)
    for vbd in list(record["VBDs"]):
        device_checks.update_vbd(db, vbd)
        vdi = db.get("VBD", vbd)["VDI"]
        if db.exists("VDI", vdi):
            device_checks.update_vdi(db, vdi)
    for vif in list(record["VIFs"]):
        device_checks.update_vif(db, vif)
    update_allowed_operations(db, vm)


# -- operations in progress ---------------------------------------------------------------------

# The asyncio task running each operation, by its current_operations key, so that hard_shutdown
# can cancel a clean shutdown that a synchronous call started (it has no task record to cancel).
_RUNNING: dict[str, asyncio.Task] = {}


def operation_key(ctx: Context) -> str:
    """The current_operations key of this call: its task, or a fresh ref as XAPI's sync calls use."""
    return ctx.task or new_ref()


@asynccontextmanager
async def vm_operation(ctx: Context, vm: str, op: str) -> AsyncIterator[str]:
    """Check ``op``, mark it in VM.current_operations while the block runs; yields the key.

    Raises the check's error before anything changes. A cancelled operation raises
    ``TASK_CANCELLED [task]``; the mark is removed however the block ends.
    """
    db = ctx.db
    assert_operation_valid(db, vm, op)
    key = operation_key(ctx)
    db.get("VM", vm)["current_operations"][key] = op
    db.touch(vm)
    refresh(db, vm)
    current = asyncio.current_task()
    if current is not None:
        _RUNNING[key] = current
    try:
        yield key
    except asyncio.CancelledError:
        if current is not None and hasattr(current, "uncancel"):
            current.uncancel()  # the cancellation is answered here, as XAPI's TASK_CANCELLED
        raise ApiError("TASK_CANCELLED", key) from None
    finally:
        _RUNNING.pop(key, None)
        if db.exists("VM", vm):
            db.get("VM", vm)["current_operations"].pop(key, None)
            db.touch(vm)
            refresh(db, vm)


def cancel_operations(ctx: Context, vm: str, ops: tuple[str, ...]) -> None:
    """Cancel the operations ``ops`` in progress on ``vm`` (hard_shutdown does this first)."""
    for key, op in list(ctx.db.get("VM", vm)["current_operations"].items()):
        if op not in ops:
            continue
        if key in ctx.xapi.tasks.running:
            ctx.xapi.tasks.cancel(key)
        elif key in _RUNNING:
            _RUNNING[key].cancel()


async def work(ctx: Context, steps: int = 4, start: float = 0.0, end: float = 0.9) -> None:
    """Take ``operation_delay`` seconds in ``steps`` sleeps, moving the task from start to end."""
    delay = ctx.xapi.config.operation_delay
    if delay <= 0:
        return
    for step in range(1, steps + 1):
        await asyncio.sleep(delay / steps)
        ctx.xapi.tasks.set_progress(ctx.task, start + (end - start) * step / steps)
