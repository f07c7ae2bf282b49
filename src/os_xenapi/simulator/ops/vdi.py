"""VDIs: their records, their bytes and their place on the SR's storage.

``VDI.create``/``destroy``/``forget``/``introduce``/``clone``/``snapshot``/``copy``/``resize``/
``update`` with XAPI's checks (``xapi_vdi.ml``, ``message_forwarding.ml``) and the SM driver's
(``FileSR``, ``LVHDSR``, ``LUNperVDI``). A VDI's bytes are a sparse file in the pool's VdiStore,
named by its uuid; file- and LVM-based SRs also keep the VDI on their storage so that a forgotten
SR finds its VDIs again when introduced and scanned.

The record helpers (:func:`new_vdi`, :func:`remove_vdi`, :func:`duplicate_vdi`) take only the
database because the VM handlers use them too (provision, clone, copy, suspend images); they reach
the VdiStore and the storage through the pool's world once it exists
(:func:`~os_xenapi.simulator.sm.targets.storage_of_db`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..db import new_uuid
from ..dispatch import Context, api
from ..errors import ApiError
from ..generic import constructor_fields
from ..schema import NULL_REF, copy_value
from ..sm.errors import sm_error
from ..sm.targets import storage_of_db
from ..sr_mount import is_file_sr, mounts_of
from ..values import DateTime
from ..vdi_store import COPY_CHUNK, VdiStore
from . import device_checks
from .sr_backend import (
    choose_pbd,
    driver_class_of,
    driver_for_pbd,
    drop_vdi,
    remember_vdi,
    world_of,
)
from .vm_checks import operation_key, refresh, work

# For SR types no simulated driver serves: which allocate in full, which hold VHD images.
_THICK = frozenset(("lvm", "lvmoiscsi", "lvmohba", "lvmofcoe"))
_VHD = frozenset(("ext", "nfs", "file", "smb", "lvm", "lvmoiscsi", "lvmohba", "lvmofcoe"))
_COPIED_FIELDS = ("name_label", "name_description", "virtual_size", "type", "sharable",
                  "read_only", "other_config", "xenstore_data", "tags", "on_boot", "allow_caching")


def _kind(db: Any, sr: str) -> tuple[bool, bool, bool]:
    """(thick, vhd, lun_per_vdi) of the SR's type."""
    cls = driver_class_of(db, sr)
    if cls is not None:
        return cls.thick, cls.vhd, cls.lun_per_vdi
    sr_type = db.get("SR", sr)["type"]
    return sr_type in _THICK, sr_type in _VHD, False


# -- record helpers (shared with the VM handlers) ---------------------------------------------------

def new_vdi(db: Any, sr: str, fields: dict[str, Any], physical: int | None = None) -> str:
    """Make a VDI record in ``sr`` as its SM driver would, with an empty file; returns its ref.

    ``physical`` is the space it takes; by default all of it on thick SRs, none on thin ones.
    """
    thick, vhd, _ = _kind(db, sr)
    size = int(fields.get("virtual_size", 0))
    if physical is None:
        physical = size if thick else 0
    sm_config = {"vdi_type": "vhd"} if vhd else {}
    sm_config.update(fields.get("sm_config", {}))
    uuid = new_uuid()
    record = {**fields, "uuid": uuid, "SR": sr, "location": uuid, "managed": True,
              "missing": False, "physical_utilisation": physical, "sm_config": sm_config}
    vdi = db.create("VDI", record)
    _account(db, sr, size, physical)
    world = storage_of_db(db)
    if world is not None:
        world.vdis.create(uuid, size)
        remember_vdi(db, vdi)
    device_checks.update_vdi(db, vdi)
    return vdi


def _account(db: Any, sr: str, virtual: int, physical: int) -> None:
    record = db.get("SR", sr)
    db.update("SR", sr, virtual_allocation=int(record["virtual_allocation"]) + virtual,
              physical_utilisation=int(record["physical_utilisation"]) + physical)


def remove_vdi(db: Any, vdi: str) -> None:
    """Delete a VDI, its (detached) VBDs, its file and its place on the SR's storage."""
    record = db.get("VDI", vdi)
    world = storage_of_db(db)
    if world is not None and db.exists("SR", record["SR"]):
        drop_vdi(db, vdi)
        if not _kind(db, record["SR"])[2]:  # a LUN keeps its data when its VDI goes
            world.vdis.remove(record["uuid"])
    for vbd in list(record["VBDs"]):
        if db.exists("VBD", vbd):
            vm = db.get("VBD", vbd)["VM"]
            db.destroy("VBD", vbd)
            refresh(db, vm)
    if db.exists("SR", record["SR"]):
        _account(db, record["SR"], -int(record["virtual_size"]),
                 -int(record["physical_utilisation"]))
    db.destroy("VDI", vdi)


def duplicate_vdi(db: Any, vdi: str, sr: str | None = None) -> str:
    """A clone of ``vdi`` in its own SR, or a full copy into ``sr``, bytes included."""
    record = db.get("VDI", vdi)
    fields = {name: copy_value(record[name]) for name in _COPIED_FIELDS}
    if sr is None:
        thin = not _kind(db, record["SR"])[0]
        new = new_vdi(db, record["SR"], {**fields, "sm_config": copy_value(record["sm_config"])},
                      physical=0 if thin else None)
    else:
        thin = not _kind(db, sr)[0]
        new = new_vdi(db, sr, fields,
                      physical=int(record["physical_utilisation"]) if thin else None)
    world = storage_of_db(db)
    if world is not None:
        copy_bytes(world.vdis, record["uuid"], db.get("VDI", new)["uuid"],
                   int(record["virtual_size"]))
    return new


def copy_bytes(store: VdiStore, source: str, target: str, size: int) -> None:
    """Make ``target`` a ``size``-byte copy of ``source``, reading only its data, not its holes.

    A 10 GiB VDI that holds 1 MiB copies in the time of 1 MiB. Where the file system cannot
    report holes, :meth:`VdiStore.copy` copies (and reads) everything.
    """
    src = store.path(source)
    if not src.exists():
        store.create(target, size)
        return
    seek_data, seek_hole = getattr(os, "SEEK_DATA", None), getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        store.copy(source, target, size)
        return
    with open(src, "rb") as reader, open(store.path(target), "wb") as writer:
        writer.truncate(size)
        fd = reader.fileno()
        limit = min(os.fstat(fd).st_size, size)
        offset = 0
        while offset < limit:  # each pass moves past one data extent, so offset only grows
            try:
                start = os.lseek(fd, offset, seek_data)
            except OSError:  # ENXIO: no data after offset
                break
            if start >= limit:
                break
            end = min(os.lseek(fd, start, seek_hole), limit)
            if end <= start:
                end = limit
            reader.seek(start)
            writer.seek(start)
            while start < end:
                block = reader.read(min(COPY_CHUNK, end - start))
                if not block:
                    break
                writer.write(block)
                start += len(block)
            offset = end


@asynccontextmanager
async def _vdi_operation(ctx: Context, vdi: str, op: str) -> AsyncIterator[None]:
    """Mark ``op`` in the VDI's current_operations while the block runs."""
    db = ctx.db
    key = operation_key(ctx)
    db.get("VDI", vdi)["current_operations"][key] = op
    device_checks.update_vdi(db, vdi)
    try:
        yield
    finally:
        if db.exists("VDI", vdi):
            db.get("VDI", vdi)["current_operations"].pop(key, None)
            device_checks.update_vdi(db, vdi)


def _raise_if_refused(db: Any, vdi: str, op: str) -> None:
    error = device_checks.vdi_error(db, vdi, op)
    if error is not None:
        raise error


def _check_space(db: Any, sr: str, needed: int, thick: bool) -> None:
    """``SR_FULL [requested, maximum]`` beyond the SR's size; SRNoSpace (44) beyond a thick SR's
    free space (``LVHDSR._ensureSpaceAvailable``)."""
    record = db.get("SR", sr)
    size = int(record["physical_size"])
    if size <= 0:  # introduced and never scanned: XAPI does not know the size yet
        return
    if needed > size:
        raise ApiError("SR_FULL", needed, size)
    if thick and needed > size - max(0, int(record["physical_utilisation"])):
        raise sm_error("SRNoSpace")


# -- handlers -------------------------------------------------------------------------------------

@api("VDI", "create")
def vdi_create(ctx: Context, record: dict[str, Any]) -> str:
    """A new empty VDI; needs the SR reachable and its driver able to create VDIs."""
    db = ctx.db
    fields = constructor_fields(ctx, "VDI", record)
    sr = fields["SR"]
    db.get("SR", sr)
    if not device_checks.pbd_plugged(db, sr):
        raise ApiError("SR_HAS_NO_PBDS", sr)
    if "VDI_CREATE" not in device_checks.sm_features(db, sr):
        raise ApiError("SR_OPERATION_NOT_SUPPORTED", sr)
    if fields["virtual_size"] < 0:
        raise ApiError("INVALID_VALUE", "virtual_size", fields["virtual_size"])
    world_of(ctx)
    thick, _, lun_per_vdi = _kind(db, sr)
    if lun_per_vdi:
        return _claim_lun(db, sr, fields["virtual_size"])
    _check_space(db, sr, fields["virtual_size"], thick)
    return new_vdi(db, sr, fields)


def _claim_lun(db: Any, sr: str, size: int) -> str:
    """LUNperVDI.create: manage the smallest unmanaged LUN that is big enough, else SRNoSpace."""
    free = [v for v in db.get("SR", sr)["VDIs"] if not db.get("VDI", v)["managed"]
            and int(db.get("VDI", v)["virtual_size"]) >= size]
    if not free:
        raise sm_error("SRNoSpace")
    vdi = min(free, key=lambda v: int(db.get("VDI", v)["virtual_size"]))
    db.set("VDI", vdi, "managed", True)
    device_checks.update_vdi(db, vdi)
    return vdi


@api("VDI", "destroy")
async def vdi_destroy(ctx: Context, vdi: str) -> None:
    """Delete a VDI and its file; VDI_IN_USE [vdi, "destroy"] while a VBD has it attached."""
    _raise_if_refused(ctx.db, vdi, "destroy")
    world_of(ctx)
    async with _vdi_operation(ctx, vdi, "destroy"):
        await work(ctx, steps=2)
    record = ctx.db.get("VDI", vdi)
    sr = record["SR"]
    remove_vdi(ctx.db, vdi)
    if ctx.db.exists("SR", sr) and is_file_sr(ctx.db, sr):  # FileVDI.delete unlinks its VHD
        mounts_of(ctx.xapi).remove_vdi(ctx.db.get("SR", sr)["uuid"], record["uuid"])


@api("VDI", "forget")
def vdi_forget(ctx: Context, vdi: str) -> None:
    """Drop the VDI's record only; its file and its place on the SR's storage stay."""
    db = ctx.db
    _raise_if_refused(db, vdi, "forget")
    world_of(ctx)
    record = db.get("VDI", vdi)
    remember_vdi(db, vdi)
    if db.exists("SR", record["SR"]):
        _account(db, record["SR"], -int(record["virtual_size"]),
                 -int(record["physical_utilisation"]))
        if is_file_sr(db, record["SR"]):  # its VHD file stays, for a later scan to find
            mounts_of(ctx.xapi).release(db.get("SR", record["SR"])["uuid"], record["uuid"])
    db.destroy("VDI", vdi)


@api("VDI", "introduce")
def vdi_introduce(ctx: Context, uuid: str, name_label: str, name_description: str, sr: str,
                  vdi_type: str, sharable: bool, read_only: bool, other_config: dict,
                  location: str, xenstore_data: dict, sm_config: dict, managed: bool,
                  virtual_size: int, physical_utilisation: int, metadata_of_pool: str,
                  is_a_snapshot: bool, snapshot_time: str, snapshot_of: str) -> str:
    """Make a record for a VDI the SR already holds (``xapi_vdi.introduce`` then the SM's)."""
    db = ctx.db
    db.get("SR", sr)
    if "VDI_INTRODUCE" not in device_checks.sm_features(db, sr):
        raise ApiError("SR_OPERATION_NOT_SUPPORTED", sr)
    pbd = choose_pbd(db, ctx.xapi.master, sr)
    if location and any(db.get("VDI", v)["location"] == location for v in db.get("SR", sr)["VDIs"]):
        raise ApiError("LOCATION_NOT_UNIQUE", sr, location)
    sm_config = {k: v for k, v in sm_config.items() if k != "type"}
    fields = {"name_label": name_label, "name_description": name_description, "SR": sr,
              "type": vdi_type, "sharable": sharable, "read_only": read_only,
              "other_config": dict(other_config), "xenstore_data": dict(xenstore_data),
              "managed": managed, "missing": False, "is_a_snapshot": is_a_snapshot,
              "snapshot_time": DateTime(str(snapshot_time) or "19700101T00:00:00Z"),
              "snapshot_of": snapshot_of or NULL_REF,
              "metadata_of_pool": metadata_of_pool or NULL_REF}
    driver = driver_for_pbd(db, world_of(ctx), pbd)
    if driver.lun_per_vdi:
        lun = next((lun for lun in driver.luns() if str(lun.lun_id) == sm_config.get("LUNid")),
                   None)
        if lun is None:
            raise sm_error("VDIUnavailable")
        existing = db.by_uuid["VDI"].get(lun.uuid)
        if existing is not None:
            db.set("VDI", existing, "managed", True)
            return existing
        fields.update(uuid=lun.uuid, location=lun.uuid, virtual_size=lun.size,
                      physical_utilisation=lun.size, sm_config={**sm_config, **lun.sm_config},
                      managed=True)
    else:
        uuid = uuid or new_uuid()
        if uuid in db.by_uuid["VDI"]:
            raise ApiError("INVALID_VALUE", "uuid", uuid)
        fields.update(uuid=uuid, location=location or uuid, virtual_size=virtual_size,
                      physical_utilisation=physical_utilisation, sm_config=sm_config)
    vdi = db.create("VDI", fields)
    _account(db, sr, int(fields["virtual_size"]), int(fields["physical_utilisation"]))
    remember_vdi(db, vdi)
    device_checks.update_vdi(db, vdi)
    return vdi


@api("VDI", "clone")
async def vdi_clone(ctx: Context, vdi: str, driver_params: dict) -> str:
    """A writable copy of the VDI in the same SR, with the same bytes."""
    db = ctx.db
    _raise_if_refused(db, vdi, "clone")
    choose_pbd(db, ctx.xapi.master, db.get("VDI", vdi)["SR"])
    world_of(ctx)
    async with _vdi_operation(ctx, vdi, "clone"):
        await work(ctx, steps=2)
    return duplicate_vdi(db, vdi)


@api("VDI", "snapshot")
async def vdi_snapshot(ctx: Context, vdi: str, driver_params: dict) -> str:
    """A point-in-time copy of the VDI: ``is_a_snapshot``, ``snapshot_of`` and ``snapshot_time``."""
    db = ctx.db
    _raise_if_refused(db, vdi, "snapshot")
    choose_pbd(db, ctx.xapi.master, db.get("VDI", vdi)["SR"])
    world_of(ctx)
    async with _vdi_operation(ctx, vdi, "snapshot"):
        await work(ctx, steps=2)
    snap = duplicate_vdi(db, vdi)
    db.update("VDI", snap, is_a_snapshot=True, snapshot_of=vdi, snapshot_time=DateTime.now())
    db.touch(vdi)  # its snapshots set changed
    remember_vdi(db, snap)
    return snap


@api("VDI", "copy")
async def vdi_copy(ctx: Context, vdi: str, sr: str, base_vdi: str, into_vdi: str) -> str:
    """Copy the VDI's bytes into a new VDI in ``sr``, or into the existing ``into_vdi``."""
    db = ctx.db
    source = db.get("VDI", vdi)
    _raise_if_refused(db, vdi, "copy")
    if base_vdi != NULL_REF:
        db.get("VDI", base_vdi)
    world = world_of(ctx)
    if into_vdi != NULL_REF:
        target = db.get("VDI", into_vdi)
        if target["read_only"]:
            raise ApiError("VDI_READONLY", into_vdi)
        if int(target["virtual_size"]) < int(source["virtual_size"]):
            raise ApiError("VDI_TOO_SMALL", into_vdi, source["virtual_size"])
        choose_pbd(db, ctx.xapi.master, target["SR"])
    else:
        db.get("SR", sr)
        choose_pbd(db, ctx.xapi.master, sr)
        if "VDI_CREATE" not in device_checks.sm_features(db, sr):
            raise ApiError("SR_OPERATION_NOT_SUPPORTED", sr)
        _check_space(db, sr, int(source["virtual_size"]), _kind(db, sr)[0])
    async with _vdi_operation(ctx, vdi, "copy"):
        await work(ctx, steps=4)
    if into_vdi == NULL_REF:
        return duplicate_vdi(db, vdi, sr)
    copy_bytes(world.vdis, source["uuid"], target["uuid"], int(target["virtual_size"]))
    return into_vdi


@api("VDI", "resize")
async def vdi_resize(ctx: Context, vdi: str, size: int) -> None:
    """Grow the VDI to ``size`` bytes; shrinking is refused as the SM refuses it (VDISize, 79)."""
    db = ctx.db
    _raise_if_refused(db, vdi, "resize")
    record = db.get("VDI", vdi)
    current = int(record["virtual_size"])
    if size < current:
        raise sm_error("VDISize", opterr="shrinking not allowed")
    thick = _kind(db, record["SR"])[0]
    if thick:
        _check_space(db, record["SR"], size - current, thick)
    world = world_of(ctx)
    async with _vdi_operation(ctx, vdi, "resize"):
        await work(ctx, steps=2)
    grown = size - current
    changes: dict[str, Any] = {"virtual_size": size}
    if thick:
        changes["physical_utilisation"] = size
    db.update("VDI", vdi, **changes)
    _account(db, record["SR"], grown, grown if thick else 0)
    world.vdis.resize(record["uuid"], size)
    remember_vdi(db, vdi)


@api("VDI", "update")
def vdi_update(ctx: Context, vdi: str) -> None:
    """Refresh the VDI from its storage: ``physical_utilisation`` is the file's allocated bytes."""
    db = ctx.db
    _raise_if_refused(db, vdi, "update")
    world = world_of(ctx)
    record = db.get("VDI", vdi)
    if not _kind(db, record["SR"])[0]:
        used = world.vdis.allocated(record["uuid"])
        _account(db, record["SR"], 0, used - int(record["physical_utilisation"]))
        db.set("VDI", vdi, "physical_utilisation", used)
    remember_vdi(db, vdi)
