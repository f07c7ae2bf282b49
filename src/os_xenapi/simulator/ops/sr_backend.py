"""Between SR records and their SM driver: choosing a PBD, building the driver, keeping usage.

XAPI runs an SR's driver with the device_config of a PBD (``choose_pbd_for_sr`` in
``message_forwarding.ml``: a plugged PBD, the master's for a shared SR, else ``SR_HAS_NO_PBDS``).
This module does the same for the handlers of ``ops/sr.py``, ``ops/pbd.py`` and ``ops/vdi.py``,
and keeps the SR's ``physical_size``, ``physical_utilisation`` and ``virtual_allocation`` and the
VDI list kept on the SR's storage (:class:`~os_xenapi.simulator.sm.targets.Backing`) in step with
the database. :func:`scan_mount` is the file half of a file-based SR's scan: the VDI records that
the VHD files in its sr-mount directory call for (:mod:`..sr_mount`).
"""

from __future__ import annotations

import logging
from typing import Any

from ..dispatch import Context
from ..errors import ApiError
from ..schema import NULL_REF
from ..sm.base import Driver, SMCall, driver_class, registry
from ..sm.targets import Backing, StorageWorld, VdiMeta, storage_of, storage_of_db
from ..sr_mount import SrMounts, mounts_of
from ..sr_survey import Found, adopt, discard, survey
from ..values import DateTime
from . import device_checks

LOG = logging.getLogger(__name__)
SM_DIR = "/opt/xensource/sm"


def world_of(ctx: Context) -> StorageWorld:
    """The pool's storage world, with an SM record for every driver type."""
    world = storage_of(ctx.xapi)
    if not world.sm_rows_registered:
        ensure_sm_rows(ctx.db)
        world.sm_rows_registered = True
    return world


def ensure_sm_rows(db: Any) -> None:
    """Add an ``SM`` record for each driver type that has none (XAPI registers one per driver)."""
    known = {rec["type"] for rec in db.all("SM").values()}
    for cls in {id(c): c for c in registry().values()}.values():
        if cls.type not in known:
            register_sm(db, cls)


def register_sm(db: Any, cls: type[Driver]) -> None:
    """Write the SM record of a driver from what the driver reports, as ``PBD.plug`` makes XAPI
    do (``Xapi_sm.register_plugin``): created if missing, capabilities refreshed if present."""
    fields = {"name_label": cls.name, "name_description": cls.description,
              "capabilities": list(cls.capabilities),
              "features": dict.fromkeys(cls.capabilities, 1),
              "configuration": dict(cls.configuration)}
    for ref, rec in db.all("SM").items():
        if rec["type"] == cls.type:
            if any(rec[k] != v for k, v in fields.items()):
                db.update("SM", ref, **fields)
            return
    db.create("SM", {**fields, "type": cls.type, "vendor": "Citrix Systems Inc",
                     "copyright": "(C) 2008 Citrix Systems Inc", "version": "1.0",
                     "required_api_version": "1.0",
                     "driver_filename": f"{SM_DIR}/{cls.__name__}SR"})


def make_driver(db: Any, world: StorageWorld, sr_type: str, device_config: dict[str, str], *,
                host: str, sr: str = NULL_REF, sm_config: dict[str, str] | None = None) -> Driver:
    """Run the driver of ``sr_type`` on ``host``: its load checks run now and may raise."""
    cls = driver_class(sr_type)
    sr_uuid = db.get("SR", sr)["uuid"] if sr != NULL_REF else ""
    call = SMCall(world, db, host, dict(device_config), dict(sm_config or {}), sr, sr_uuid)
    return cls(call)


def plugged_pbds(db: Any, sr: str) -> list[str]:
    """The SR's PBDs that are currently attached."""
    return [p for p in db.get("SR", sr)["PBDs"] if db.get("PBD", p)["currently_attached"]]


def choose_pbd(db: Any, master: str, sr: str) -> str:
    """The PBD an operation on ``sr`` runs through; ``SR_HAS_NO_PBDS [sr]`` if none is plugged."""
    record = db.get("SR", sr)
    plugged = plugged_pbds(db, sr)
    if record["shared"]:
        plugged = [p for p in plugged if db.get("PBD", p)["host"] == master]
    if not plugged:
        raise ApiError("SR_HAS_NO_PBDS", sr)
    return plugged[0]


def driver_for_pbd(db: Any, world: StorageWorld, pbd: str) -> Driver:
    """The SR's driver, run with this PBD's device_config on its host."""
    record = db.get("PBD", pbd)
    sr = db.get("SR", record["SR"])
    return make_driver(db, world, sr["type"], record["device_config"], host=record["host"],
                       sr=record["SR"], sm_config=sr["sm_config"])


def driver_class_of(db: Any, sr: str) -> type[Driver] | None:
    """The driver class of an SR's type, or None for a type no driver serves."""
    try:
        return driver_class(db.get("SR", sr)["type"])
    except ApiError:
        return None


def backing_of(db: Any, world: StorageWorld | None, sr: str) -> Backing | None:
    """The storage keeping the SR's VDIs, found through any of its PBDs; None if unknown."""
    if world is None or not db.exists("SR", sr):
        return None
    pbds = sorted(db.get("SR", sr)["PBDs"],
                  key=lambda p: not db.get("PBD", p)["currently_attached"])
    for pbd in pbds:
        try:
            return driver_for_pbd(db, world, pbd).backing()
        except ApiError:
            continue
    return None


# -- VDIs kept on the storage ---------------------------------------------------------------------

def vdi_meta(db: Any, record: dict[str, Any]) -> VdiMeta:
    """What the SR's storage keeps about a VDI record."""
    parent = db.all("VDI").get(record["snapshot_of"])
    return VdiMeta(
        uuid=record["uuid"], virtual_size=int(record["virtual_size"]),
        name_label=record["name_label"], name_description=record["name_description"],
        type=record["type"], read_only=record["read_only"], sharable=record["sharable"],
        is_a_snapshot=record["is_a_snapshot"], snapshot_of=parent["uuid"] if parent else "",
        snapshot_time=str(record["snapshot_time"]), sm_config=dict(record["sm_config"]))


def remember_vdi(db: Any, vdi: str) -> None:
    """Write one VDI to its SR's storage, if the SR keeps VDIs there."""
    record = db.get("VDI", vdi)
    backing = backing_of(db, storage_of_db(db), record["SR"])
    if backing is not None:
        sr_uuid = db.get("SR", record["SR"])["uuid"]
        backing.srs.setdefault(sr_uuid, {})[record["uuid"]] = vdi_meta(db, record)


def drop_vdi(db: Any, vdi: str) -> None:
    """Remove one VDI from its SR's storage (it was destroyed, not forgotten)."""
    record = db.get("VDI", vdi)
    backing = backing_of(db, storage_of_db(db), record["SR"])
    if backing is not None:
        backing.srs.get(db.get("SR", record["SR"])["uuid"], {}).pop(record["uuid"], None)


def remember_sr(db: Any, world: StorageWorld, sr: str, backing: Backing | None = None) -> None:
    """Make the SR's storage hold exactly the SR's VDI records (the database is the truth)."""
    backing = backing if backing is not None else backing_of(db, world, sr)
    if backing is None:
        return
    record = db.get("SR", sr)
    backing.srs[record["uuid"]] = {
        db.get("VDI", v)["uuid"]: vdi_meta(db, db.get("VDI", v)) for v in record["VDIs"]}


# -- space accounting -----------------------------------------------------------------------------

def refresh_usage(db: Any, world: StorageWorld, sr: str, driver: Driver | None = None) -> None:
    """Recompute the SR's sizes from its VDIs (and the driver's capacity), as a scan does."""
    cls = type(driver) if driver is not None else driver_class_of(db, sr)
    thin = cls is not None and not cls.thick and not cls.lun_per_vdi
    virtual = physical = 0
    for vdi in db.get("SR", sr)["VDIs"]:
        record = db.get("VDI", vdi)
        if cls is not None and cls.lun_per_vdi and not record["managed"]:
            continue
        size = int(record["virtual_size"])
        used = world.vdis.allocated(record["uuid"]) if thin else size
        if int(record["physical_utilisation"]) != used:
            db.set("VDI", vdi, "physical_utilisation", used)
        virtual += size
        physical += used
    changes: dict[str, Any] = {"virtual_allocation": virtual, "physical_utilisation": physical}
    if driver is not None:
        changes["physical_size"] = driver.physical_size()
    db.update("SR", sr, **changes)


# -- scanning -------------------------------------------------------------------------------------

def scan_sr(db: Any, world: StorageWorld, sr: str, pbd: str) -> None:
    """The work of ``SR.scan`` through ``pbd`` (also run after the master plugs an SR)."""
    driver = driver_for_pbd(db, world, pbd)
    if driver.lun_per_vdi:
        _sync_luns(db, sr, driver.luns())
    else:
        backing = driver.backing()
        if backing is not None:
            kept = backing.srs.get(db.get("SR", sr)["uuid"], {})
            known = {db.get("VDI", v)["uuid"] for v in db.get("SR", sr)["VDIs"]}
            for meta in list(kept.values()):
                if meta.uuid not in known and meta.uuid not in db.by_uuid["VDI"]:
                    _restore_vdi(db, sr, meta)
            remember_sr(db, world, sr, backing)
    refresh_usage(db, world, sr, driver)
    other_config = db.get("SR", sr)["other_config"]
    if "dirty" in other_config:
        other_config.pop("dirty")
        db.touch(sr)


def _restore_vdi(db: Any, sr: str, meta: VdiMeta) -> None:
    parent = db.by_uuid["VDI"].get(meta.snapshot_of, NULL_REF)
    vdi = db.create("VDI", {
        "uuid": meta.uuid, "name_label": meta.name_label,
        "name_description": meta.name_description, "SR": sr, "type": meta.type,
        "virtual_size": meta.virtual_size, "read_only": meta.read_only,
        "sharable": meta.sharable, "location": meta.uuid, "managed": True, "missing": False,
        "is_a_snapshot": meta.is_a_snapshot, "snapshot_of": parent,
        "snapshot_time": DateTime(meta.snapshot_time), "sm_config": dict(meta.sm_config)})
    device_checks.update_vdi(db, vdi)


def _sync_luns(db: Any, sr: str, luns: list[Any]) -> None:
    """LUN-per-VDI scan: a VDI per LUN found; records of LUNs gone are forgotten if unused."""
    present = {db.get("VDI", v)["location"]: v for v in db.get("SR", sr)["VDIs"]}
    found = {lun.uuid for lun in luns}
    for lun in luns:
        if lun.uuid in present or lun.uuid in db.by_uuid["VDI"]:
            continue
        vdi = db.create("VDI", {
            "uuid": lun.uuid, "SR": sr, "type": "user", "virtual_size": lun.size,
            "physical_utilisation": lun.size, "location": lun.uuid, "managed": True,
            "missing": False, "sm_config": lun.sm_config})
        device_checks.update_vdi(db, vdi)
    for location, vdi in present.items():
        attached = any(db.get("VBD", v)["currently_attached"]
                       for v in db.get("VDI", vdi)["VBDs"] if db.exists("VBD", v))
        if location not in found and not attached:
            db.destroy("VDI", vdi)


# -- a file SR's VHD files ------------------------------------------------------------------------

async def scan_mount(ctx: Context, sr: str) -> None:
    """Bring a file SR's VDI records in line with its directory, as FileSR's scan does: a VDI
    for each new VHD (its bytes, the chain flattened, go to the VdiStore), forgotten VDIs whose
    file vanished, re-read ones a plugin rewrote, and parents marked read-only."""
    db = ctx.db
    world = world_of(ctx)
    mounts = mounts_of(ctx.xapi)
    sr_uuid = db.get("SR", sr)["uuid"]
    known = {db.get("VDI", v)["uuid"] for v in db.get("SR", sr)["VDIs"]}
    seen = await survey(mounts, sr_uuid, known, set(db.by_uuid["VDI"]))
    if not db.exists("SR", sr):  # gone while the files were read
        for found in seen.found + seen.changed:
            discard(found)
        return
    for uuid in seen.gone:
        _forget_vanished(db, world, mounts, sr, uuid)
    for found in seen.found:
        _introduce_found(db, mounts, sr, found)
    for found in seen.changed:
        _reread_found(db, mounts, sr, found)
    for uuid in seen.parents:
        vdi = _vdi_in(db, sr, uuid)
        if vdi is not None and not db.get("VDI", vdi)["read_only"]:
            db.set("VDI", vdi, "read_only", True)
            device_checks.update_vdi(db, vdi)
    remember_sr(db, world, sr)
    refresh_usage(db, world, sr)


def _vdi_in(db: Any, sr: str, uuid: str) -> str | None:
    vdi = db.by_uuid["VDI"].get(uuid)
    return vdi if vdi is not None and db.get("VDI", vdi)["SR"] == sr else None


def _forget_vanished(db: Any, world: StorageWorld, mounts: SrMounts, sr: str, uuid: str) -> None:
    """SM's scan forgets a VDI whose file is gone (``VDI.db_forget``); its bytes go with it.
    One attached to a VM is kept: a real tapdisk would still hold the deleted file open."""
    sr_uuid = db.get("SR", sr)["uuid"]
    vdi = _vdi_in(db, sr, uuid)
    if vdi is not None and any(db.get("VBD", v)["currently_attached"]
                               for v in db.get("VDI", vdi)["VBDs"] if db.exists("VBD", v)):
        LOG.warning("SR %s: the file of VDI %s vanished, but the VDI is attached", sr_uuid, uuid)
        return
    mounts.release(sr_uuid, uuid)
    if vdi is not None:
        LOG.info("SR %s scan forgets VDI %s: its VHD file vanished", sr_uuid, uuid)
        db.destroy("VDI", vdi)
        world.vdis.remove(uuid)


def _introduce_found(db: Any, mounts: SrMounts, sr: str, found: Found) -> None:
    """A VDI record for a new VHD, as SM's scan introduces it (``VDI._db_introduce``)."""
    if found.uuid in db.by_uuid["VDI"]:  # made by some other call meanwhile
        discard(found)
        return
    adopt(mounts, db.get("SR", sr)["uuid"], found)
    vdi = db.create("VDI", {
        "uuid": found.uuid, "name_label": "", "name_description": "", "SR": sr, "type": "user",
        "virtual_size": found.virtual_size, "physical_utilisation": found.physical_utilisation,
        "read_only": found.read_only, "sharable": False, "location": found.uuid,
        "managed": not found.hidden, "missing": False,
        "sm_config": {"vhd-parent": found.parent} if found.parent else {}})
    device_checks.update_vdi(db, vdi)


def _reread_found(db: Any, mounts: SrMounts, sr: str, found: Found) -> None:
    """A VDI whose VHD file was rewritten: its bytes and size are the file's now."""
    vdi = _vdi_in(db, sr, found.uuid)
    if vdi is None:
        discard(found)
        return
    adopt(mounts, db.get("SR", sr)["uuid"], found)
    sm_config = {k: v for k, v in db.get("VDI", vdi)["sm_config"].items() if k != "vhd-parent"}
    if found.parent:
        sm_config["vhd-parent"] = found.parent
    db.update("VDI", vdi, virtual_size=found.virtual_size, sm_config=sm_config)
