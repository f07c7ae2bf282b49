"""PBDs: how a host reaches an SR. create, plug, unplug, destroy, set_device_config.

Rules from ``xapi_pbd.ml``: one PBD per SR and host (``PBD_EXISTS``), no ``SRmaster`` key in a
device_config (``VALUE_NOT_SUPPORTED``), plug and unplug do nothing when already done, a non-shared
SR plugs on one host at a time (``SR_NOT_SHARABLE``), unplug refuses while running VMs on that host
use the SR's VDIs (``VDI_IN_USE [vdis]``), destroy refuses while plugged. ``plug`` runs the SR
driver's attach (an iSCSI login, an NFS mount), and on the SR master the scan that SM runs after
attaching (``SR.after_master_attach``). A file-based SR is "mounted" in the simulated dom0 while
any of its PBDs is plugged (:mod:`..sr_mount`).
"""

from __future__ import annotations

import logging
from typing import Any

from ..dispatch import Context, api
from ..errors import ApiError
from ..generic import constructor_fields
from ..sm.base import driver_class
from ..sm.iscsi import BaseIscsi
from ..sm.targets import StorageWorld
from ..sr_mount import is_file_sr, mounts_of
from . import device_checks
from .sr_backend import (
    driver_for_pbd,
    plugged_pbds,
    register_sm,
    scan_mount,
    scan_sr,
    world_of,
)

LOG = logging.getLogger(__name__)


def new_pbd(db: Any, world: StorageWorld, sr: str, host: str, device_config: dict[str, str], *,
            copy_secrets: bool = True, keep: frozenset[str] = frozenset()) -> str:
    """A PBD record, checked as ``Xapi_pbd.create_common`` checks it; returns its ref.

    Each PBD gets its own copy of the secrets its device_config names (except keys in ``keep``,
    whose secrets were made for this call), unless ``copy_secrets`` is false.
    """
    for pbd in db.get("SR", sr)["PBDs"]:
        if db.get("PBD", pbd)["host"] == host:
            raise ApiError("PBD_EXISTS", sr, host, pbd)
    _refuse_srmaster(device_config)
    config = world.secrets.duplicate(device_config, keep) if copy_secrets else dict(device_config)
    return db.create("PBD", {"host": host, "SR": sr, "device_config": config,
                             "currently_attached": False, "other_config": {}})


def _refuse_srmaster(device_config: dict[str, str]) -> None:
    if "SRmaster" in device_config:
        raise ApiError("VALUE_NOT_SUPPORTED", "SRmaster", device_config["SRmaster"],
                       "This key is for internal use only")


def _refresh_vdis(db: Any, sr: str) -> None:
    """VDI allowed_operations depend on whether the SR is plugged."""
    for vdi in db.get("SR", sr)["VDIs"]:
        device_checks.update_vdi(db, vdi)


@api("PBD", "create")
def pbd_create(ctx: Context, record: dict[str, Any]) -> str:
    """A new, unplugged PBD; ``*password`` keys become ``*password_secret`` (a secret's uuid)."""
    db = ctx.db
    fields = constructor_fields(ctx, "PBD", record)
    db.get("SR", fields["SR"])
    db.get("host", fields["host"])
    world = world_of(ctx)
    config = world.secrets.move_passwords(fields["device_config"])
    moved = frozenset(k for k in config if k not in fields["device_config"])
    try:
        return new_pbd(db, world, fields["SR"], fields["host"], config, keep=moved)
    except ApiError:
        world.secrets.forget_in({k: config[k] for k in moved})
        raise


def plug_pbd(ctx: Context, pbd: str) -> bool:
    """Attach the SR on the PBD's host; the SR master then scans it. Returns whether it scanned
    (False too when the PBD was attached already)."""
    db = ctx.db
    record = db.get("PBD", pbd)
    if record["currently_attached"]:
        return False
    sr = record["SR"]
    sr_record = db.get("SR", sr)
    driver_class(sr_record["type"])
    if not sr_record["shared"]:
        for other in plugged_pbds(db, sr):
            if db.get("PBD", other)["host"] != record["host"]:
                raise ApiError("SR_NOT_SHARABLE", sr, db.get("PBD", other)["host"])
    world = world_of(ctx)
    driver = driver_for_pbd(db, world, pbd)
    driver.attach()
    register_sm(db, type(driver))
    other_config = dict(record["other_config"])
    if isinstance(driver, BaseIscsi):
        other_config["iscsi_sessions"] = "1"
    db.update("PBD", pbd, currently_attached=True, other_config=other_config)
    if is_file_sr(db, sr):
        mounts_of(ctx.xapi).attach(sr_record["uuid"])
    scanned = not sr_record["shared"] or record["host"] == ctx.xapi.master
    if scanned:
        try:
            scan_sr(db, world, sr, pbd)
        except ApiError as error:  # SM only logs a failed post-attach scan
            LOG.warning("scan after plugging SR %s failed: %s", sr_record["uuid"], error.code)
    _refresh_vdis(db, sr)
    return scanned


@api("PBD", "plug")
async def pbd_plug(ctx: Context, pbd: str) -> None:
    """Attach the SR on the PBD's host, running the driver's checks (login, mount); a file SR's
    post-attach scan also takes in the VHD files found in its directory."""
    sr = ctx.db.get("PBD", pbd)["SR"]
    if plug_pbd(ctx, pbd) and is_file_sr(ctx.db, sr):
        try:
            await scan_mount(ctx, sr)
        except (ApiError, OSError) as error:  # SM only logs a failed post-attach scan
            LOG.warning("scan of the files of SR %s failed: %s", ctx.db.get("SR", sr)["uuid"],
                        error)


def _active_vdis(db: Any, pbd: str) -> list[str]:
    """VDIs of the PBD's SR attached to VMs resident on its host (``get_active_vdis_by_pbd``)."""
    record = db.get("PBD", pbd)
    found = []
    for vm in db.all("VM").values():
        if vm["resident_on"] != record["host"]:
            continue
        for vbd in vm["VBDs"]:
            vbd_record = db.all("VBD").get(vbd)
            if vbd_record is None or not vbd_record["currently_attached"] or vbd_record["empty"]:
                continue
            vdi = db.all("VDI").get(vbd_record["VDI"])
            if vdi is not None and vdi["SR"] == record["SR"] and vdi["type"] != "metadata":
                found.append(vbd_record["VDI"])
    return found


@api("PBD", "unplug")
def pbd_unplug(ctx: Context, pbd: str) -> None:
    """Detach the SR from the PBD's host (nothing if detached); refused while its VDIs are used."""
    db = ctx.db
    record = db.get("PBD", pbd)
    if not record["currently_attached"]:
        return
    in_use = _active_vdis(db, pbd)
    if in_use:
        raise ApiError("VDI_IN_USE", *in_use)
    world = world_of(ctx)
    try:
        driver_for_pbd(db, world, pbd).detach()
    except ApiError as error:  # the storage went away: the host lets go of it all the same
        LOG.warning("detaching PBD %s: %s", record["uuid"], error.code)
    other_config = {k: v for k, v in record["other_config"].items() if k != "iscsi_sessions"}
    db.update("PBD", pbd, currently_attached=False, other_config=other_config)
    if is_file_sr(db, record["SR"]) and not plugged_pbds(db, record["SR"]):
        mounts_of(ctx.xapi).detach(db.get("SR", record["SR"])["uuid"])
    _refresh_vdis(db, record["SR"])


@api("PBD", "destroy")
def pbd_destroy(ctx: Context, pbd: str) -> None:
    """Delete an unplugged PBD and the secrets its device_config names."""
    db = ctx.db
    record = db.get("PBD", pbd)
    if record["currently_attached"]:
        raise ApiError("OPERATION_NOT_ALLOWED", "PBD is currently attached")
    world_of(ctx).secrets.forget_in(record["device_config"])
    db.destroy("PBD", pbd)


@api("PBD", "set_device_config")
def pbd_set_device_config(ctx: Context, pbd: str, value: dict[str, str]) -> None:
    """Replace the device_config (passwords moved to secrets; ``SRmaster`` refused)."""
    db = ctx.db
    old = db.get("PBD", pbd)["device_config"]
    world = world_of(ctx)
    config = world.secrets.move_passwords(value)
    try:
        _refuse_srmaster(config)
    except ApiError:
        world.secrets.forget_in({k: v for k, v in config.items() if k not in value})
        raise
    world.secrets.forget_in({k: v for k, v in old.items() if config.get(k) != v})
    db.set("PBD", pbd, "device_config", config)
