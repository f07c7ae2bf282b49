"""SRs: create, introduce, probe, scan, forget, destroy and update (``xapi_sr.ml``).

Every command that reaches storage runs the SR type's simulated driver (:mod:`..sm.drivers`)
with a PBD's device_config, as XAPI runs an SMAPIv1 driver, so device_config mistakes give the
``SR_BACKEND_FAILURE_<n>`` a real driver gives. Passwords in a device_config are moved to secrets
before any driver sees them (``Xapi_secret.move_passwds_to_secrets``).
"""

from __future__ import annotations

import re
from typing import Any

from ..db import new_uuid
from ..dispatch import Context, api
from ..errors import ApiError
from ..sm.base import Driver, driver_class, visible_config
from ..sm.drivers import supported_types
from ..sm.errors import BackendFailure, sm_error
from ..sm.targets import StorageWorld
from ..sr_mount import is_file_sr, mounts_of
from ..sr_survey import leftover_vhds
from . import device_checks
from .pbd import new_pbd, plug_pbd
from .sr_backend import (
    choose_pbd,
    driver_for_pbd,
    make_driver,
    plugged_pbds,
    refresh_usage,
    remember_sr,
    scan_mount,
    scan_sr,
    world_of,
)
from .vdi import remove_vdi


def _new_sr(db: Any, uuid: str, name_label: str, name_description: str, sr_type: str,
            content_type: str, shared: bool, sm_config: dict[str, str]) -> str:
    """An SR record as ``introduce`` makes it: sizes unknown, no PBDs, no VDIs."""
    if uuid in db.by_uuid["SR"]:
        raise ApiError("SR_UUID_EXISTS", uuid)
    return db.create("SR", {
        "uuid": uuid, "name_label": name_label, "name_description": name_description,
        "type": sr_type.lower(), "content_type": content_type, "shared": shared,
        "sm_config": dict(sm_config), "physical_size": -1, "physical_utilisation": -1,
        "virtual_allocation": 0})


def _destroy_sr_records(db: Any, world: StorageWorld, sr: str, keep_files: bool) -> None:
    """Drop the SR's PBDs (and their secrets), its VDI records and the SR record."""
    for pbd in list(db.get("SR", sr)["PBDs"]):
        world.secrets.forget_in(db.get("PBD", pbd)["device_config"])
        db.destroy("PBD", pbd)
    for vdi in list(db.get("SR", sr)["VDIs"]):
        if keep_files:
            db.destroy("VDI", vdi)
        else:
            remove_vdi(db, vdi)
    db.destroy("SR", sr)


@api("SR", "introduce")
def sr_introduce(ctx: Context, uuid: str, name_label: str, name_description: str, sr_type: str,
                 content_type: str, shared: bool, sm_config: dict) -> str:
    """A record for an SR that exists on storage; ``SR_UUID_EXISTS [uuid]`` if known already."""
    world_of(ctx)
    return _new_sr(ctx.db, uuid or new_uuid(), name_label, name_description, sr_type,
                   content_type, shared, sm_config)


@api("SR", "create")
def sr_create(ctx: Context, host: str, device_config: dict, physical_size: int, name_label: str,
              name_description: str, sr_type: str, content_type: str, shared: bool,
              sm_config: dict) -> str:
    """Make an SR on storage, with a PBD on ``host`` (on every host when shared), plugged."""
    db = ctx.db
    db.get("host", host)
    world = world_of(ctx)
    driver_class(sr_type)
    device_config = world.secrets.move_passwords(device_config)
    sr = _new_sr(db, new_uuid(), name_label, name_description, sr_type, content_type, shared,
                 sm_config)
    hosts = list(db.all("host")) if shared else [host]
    pbds = []
    try:
        for target in hosts:
            config = device_config if target == host else world.secrets.duplicate(device_config)
            pbds.append(new_pbd(db, world, sr, target, config, copy_secrets=False))
        driver = make_driver(db, world, sr_type, device_config, host=host, sr=sr,
                             sm_config=sm_config)
        added = driver.create(physical_size)
    except ApiError:
        world.secrets.forget_in(device_config)
        _destroy_sr_records(db, world, sr, keep_files=True)
        raise
    db.update("SR", sr, sm_config={**db.get("SR", sr)["sm_config"], **added},
              physical_size=driver.physical_size(), physical_utilisation=0)
    for pbd in pbds:
        try:
            plug_pbd(ctx, pbd)
        except ApiError:
            pass  # XAPI only logs a PBD that would not plug: the SR exists all the same
    return sr


@api("SR", "make")
def sr_make(ctx: Context, *args: Any) -> str:
    """Removed long ago: ``MESSAGE_DEPRECATED``."""
    raise ApiError("MESSAGE_DEPRECATED")


@api("SR", "get_supported_types")
def sr_get_supported_types(ctx: Context) -> list[str]:
    """The SR types with a driver on the hosts."""
    world_of(ctx)
    return supported_types()


def _probe_setup(ctx: Context, host: str, device_config: dict,
                 sr_type: str) -> tuple[StorageWorld, dict[str, str]]:
    """Check the host and type, and move the probe's passwords to (short-lived) secrets."""
    ctx.db.get("host", host)
    world = world_of(ctx)
    driver_class(sr_type)
    return world, world.secrets.move_passwords(device_config)


@api("SR", "probe")
def sr_probe(ctx: Context, host: str, device_config: dict, sr_type: str, sm_config: dict) -> str:
    """The driver's probe XML: the SRs it finds, or the error listing what it could use."""
    world, config = _probe_setup(ctx, host, device_config, sr_type)
    try:
        return make_driver(ctx.db, world, sr_type, config, host=host, sm_config=sm_config).probe()
    finally:
        world.secrets.forget_in(config)  # the secrets of a probe live as long as the probe


@api("SR", "probe_ext")
def sr_probe_ext(ctx: Context, host: str, device_config: dict, sr_type: str,
                 sm_config: dict) -> list[dict[str, Any]]:
    """Probe results as records: the SRs found, or the configurations a client could try next."""
    db = ctx.db
    world, config = _probe_setup(ctx, host, device_config, sr_type)
    try:
        try:
            driver = make_driver(db, world, sr_type, config, host=host, sm_config=sm_config)
            uuids = re.findall(r"<UUID>([^<]*)</UUID>", driver.probe())
        except BackendFailure as error:
            if not error.candidates:
                raise
            return [_probe_result(candidate, _complete(ctx, world, host, sr_type, candidate, config))
                    for candidate in error.candidates]
        shown = visible_config(config)
        if not uuids:
            return [_probe_result(shown, True)]
        return [_probe_result(shown, True, _sr_stat(db, uuid, driver)) for uuid in uuids]
    finally:
        world.secrets.forget_in(config)


def _complete(ctx: Context, world: StorageWorld, host: str, sr_type: str, candidate: dict[str, str],
              config: dict[str, str]) -> bool:
    """Whether the driver accepts ``candidate`` (plus the probe's secrets) without asking more."""
    secrets = {k: v for k, v in config.items() if k.endswith("_secret")}
    try:
        make_driver(ctx.db, world, sr_type, {**candidate, **secrets}, host=host)
    except ApiError:
        return False
    return True


def _probe_result(configuration: dict[str, str], complete: bool,
                  sr: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``probe_result`` record; ``sr`` is left out when absent, as XAPI leaves out a None."""
    result: dict[str, Any] = {"configuration": configuration, "complete": complete,
                              "extra_info": {}}
    if sr is not None:
        result["sr"] = sr
    return result


def _sr_stat(db: Any, uuid: str, driver: Driver) -> dict[str, Any]:
    """An ``sr_stat`` record for an SR found on storage (name from the database if known)."""
    ref = db.by_uuid["SR"].get(uuid)
    record = db.get("SR", ref) if ref else {}
    total = driver.physical_size()
    used = max(0, int(record.get("physical_utilisation", 0)))
    return {"uuid": uuid, "name_label": record.get("name_label", ""),
            "name_description": record.get("name_description", ""),
            "free_space": max(0, total - used), "total_space": total, "clustered": False,
            "health": "healthy"}


@api("SR", "scan")
async def sr_scan(ctx: Context, sr: str) -> None:
    """Bring the SR's VDI records in line with its storage and recompute its sizes; for a
    file-based SR, also with the VHD files in its sr-mount directory."""
    db = ctx.db
    db.get("SR", sr)
    pbd = choose_pbd(db, ctx.xapi.master, sr)
    scan_sr(db, world_of(ctx), sr, pbd)
    if is_file_sr(db, sr):
        await scan_mount(ctx, sr)


@api("SR", "update")
def sr_update(ctx: Context, sr: str) -> None:
    """Refresh the SR's sizes from its storage; needs SR_UPDATE and a plugged PBD."""
    db = ctx.db
    db.get("SR", sr)
    pbd = choose_pbd(db, ctx.xapi.master, sr)
    if "SR_UPDATE" not in device_checks.sm_features(db, sr):
        raise ApiError("SR_OPERATION_NOT_SUPPORTED", sr)
    world = world_of(ctx)
    refresh_usage(db, world, sr, driver_for_pbd(db, world, pbd))


@api("SR", "forget")
def sr_forget(ctx: Context, sr: str) -> None:
    """Drop the SR's records (PBDs, VDIs, SR); its storage keeps its VDIs for a later scan."""
    db = ctx.db
    db.get("SR", sr)
    if plugged_pbds(db, sr):
        raise ApiError("SR_HAS_PBD", sr)
    world = world_of(ctx)
    remember_sr(db, world, sr)
    if is_file_sr(db, sr):  # its directory stays parked, as the files stay on the share
        mounts_of(ctx.xapi).detach(db.get("SR", sr)["uuid"])
        mounts_of(ctx.xapi).release(db.get("SR", sr)["uuid"])
    _destroy_sr_records(db, world, sr, keep_files=True)


@api("SR", "destroy")
def sr_destroy(ctx: Context, sr: str) -> None:
    """Remove the SR from its storage and drop its records (``xapi_sr.destroy``).

    The SR must have PBDs, none plugged (``SR_HAS_PBD``, ``SR_HAS_NO_PBDS``), and no managed
    VDIs (``SR_NOT_EMPTY``); unmanaged VDI records go with it, with their files.
    """
    db = ctx.db
    record = db.get("SR", sr)
    if plugged_pbds(db, sr):
        raise ApiError("SR_HAS_PBD", sr)
    if not record["PBDs"]:
        raise ApiError("SR_HAS_NO_PBDS", sr)
    if any(db.get("VDI", v)["managed"] for v in record["VDIs"]):
        raise ApiError("SR_NOT_EMPTY")
    if record["other_config"].get("indestructible") == "true":
        raise ApiError("SR_INDESTRUCTIBLE", sr)
    world = world_of(ctx)
    driver = driver_for_pbd(db, world, record["PBDs"][0])
    backing = driver.backing()
    known = {db.get("VDI", v)["uuid"] for v in record["VDIs"]}
    if backing is not None:
        if set(backing.srs.get(record["uuid"], {})) - known:  # forgotten VDIs are still there
            raise sm_error("SRNotEmpty", opterr="VDIs still exist in SR")
    file_based = is_file_sr(db, sr)
    if file_based and leftover_vhds(mounts_of(ctx.xapi), record["uuid"], known):
        raise sm_error("SRNotEmpty", opterr="VDIs still exist in SR")  # VHDs never scanned
    for vdi in list(record["VDIs"]):
        remove_vdi(db, vdi)
    driver.delete()
    sr_uuid = record["uuid"]
    _destroy_sr_records(db, world, sr, keep_files=False)
    if file_based:
        mounts_of(ctx.xapi).delete_sr(sr_uuid, known)
