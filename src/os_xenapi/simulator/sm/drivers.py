"""Every simulated SR type, and the lookup from a type name to its driver.

Local types live here (``ext``, ``lvm``, ``file``, ``iso``, ``hba``, ``lvmohba``); network types
have their own modules (:mod:`.iscsi`, :mod:`.netfs`), imported below so that they register.
Local storage exists as soon as a device or directory is named: the simulator does not model a
host's disks, only the checks a driver makes of the device_config (``EXTSR``, ``LVHDSR``,
``FileSR``, ``ISOSR``, ``HBASR``, ``LVHDoHBASR`` in xapi-project/sm).
"""

from __future__ import annotations

import re

from . import iscsi, netfs  # noqa: F401  (their classes register themselves)
from .base import (
    VHD_CAPABILITIES,
    Driver,
    LunVdi,
    driver_class,
    lvm_srlist,
    printed,
    register,
    registry,
    srlist,
    visible_config,
    xml_list,
)
from .errors import sm_error
from .targets import Backing, HbaLun

__all__ = ["Driver", "driver_class", "registry", "supported_types"]

_VALID_PATH = re.compile(r"^/[A-Za-z0-9/\-_.:]*$")  # FileSR._isvalidpathstring


def supported_types() -> list[str]:
    """The SR types the simulated hosts have drivers for (``SR.get_supported_types``)."""
    return sorted({cls.type for cls in registry().values()})


class LocalDisk(Driver):
    """An SR on a local block device named by ``device`` (comma-separated for several)."""

    def load(self) -> None:
        device = self.dconf.get("device")
        if not device:
            raise sm_error("ConfigDeviceMissing")
        for part in device.split(","):
            if not _VALID_PATH.match(part):
                raise sm_error("ConfigDeviceInvalid", opterr=f"path is {part}")
        self.device = device

    def backing(self) -> Backing | None:
        host = self.call.db.all("host").get(self.call.host, {}).get("uuid", self.call.host)
        return self.world.local_disk(f"{host}:{self.device}")

    def probe(self) -> str:
        backing = self.backing()
        assert backing is not None
        return lvm_srlist(backing, self.device)

    def create(self, size: int) -> dict[str, str]:
        backing = self.backing()
        assert backing is not None
        backing.srs.clear()  # making a file system or volume group wipes the device
        backing.srs[self.call.sr_uuid] = {}
        return {}

    def attach(self) -> None:
        backing = self.backing()
        assert backing is not None
        backing.srs.setdefault(self.call.sr_uuid, {})  # e.g. the installer's local SR


@register
class Ext(LocalDisk):
    type = "ext"
    name = "Local EXT3 VHD"
    description = ("SR plugin which represents disks as VHD files stored on a local EXT3 "
                   "filesystem, created inside an LVM volume")
    capabilities = (*VHD_CAPABILITIES, "THIN_PROVISIONING")
    configuration = (("device", "local device path (required) (e.g. /dev/sda3)"),)
    file_based = True


@register
class Lvm(LocalDisk):
    type = "lvm"
    aliases = ("lvhd",)
    name = "Local VHD on LVM"
    description = "SR plugin which represents disks as VHD disks on Logical Volumes within a " \
                  "locally-attached Volume Group"
    capabilities = (*VHD_CAPABILITIES,)
    configuration = (("device", "local device path (required) (e.g. /dev/sda3)"),)
    thick = True


@register
class File(LocalDisk):
    """``file``: VHD files in a local directory named by ``location``."""

    type = "file"
    name = "Local Path VHD"
    description = "SR plugin which represents disks as VHD files stored on a local path"
    capabilities = (*VHD_CAPABILITIES,)
    configuration = (("location", "local file path (required) (e.g. /local/sr)"),)
    file_based = True

    def load(self) -> None:
        if not self.dconf.get("location"):
            raise sm_error("ConfigLocationMissing")
        self.device = self.dconf["location"]

    def probe(self) -> str:
        backing = self.backing()
        assert backing is not None
        return srlist(list(backing.srs))


@register
class Iso(Driver):
    """``iso``: a library of ISO images at ``location`` (local, NFS ``server:/path``, CIFS)."""

    type = "iso"
    name = "ISO"
    description = "Handles CD images stored as files in iso format"
    capabilities = ("VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "SR_SCAN",
                    "SR_PROBE")
    configuration = (("location", "path to mount (required) (e.g. server:/path)"),
                     ("options", "extra options to pass to mount (deprecated)"),
                     ("type", "cifs or nfs_iso"))
    vhd = False

    def load(self) -> None:
        if "location" not in self.dconf:
            raise sm_error("ConfigLocationMissing")
        self.location = self.dconf["location"]
        kind = self.dconf.get("type")
        if kind == "cifs" and not re.match(r"^(//|\\\\)", self.location):
            raise sm_error("ISOLocationStringError")
        if kind == "nfs_iso" and ":" not in self.location:
            raise sm_error("ISOLocationStringError")

    def _library(self) -> Backing:
        kind = self.dconf.get("type")
        if kind == "nfs_iso":
            server, _, path = self.location.partition(":")
            found: Backing | None = self.world.nfs_export(server, path)
        elif kind == "cifs":
            found = self.world.smb_share(self.location)
        else:
            found = self.world.local_disk(self.location)
        if found is None:
            raise sm_error("ISOMountFailure")
        return found

    def probe(self) -> str:
        return srlist([])

    def create(self, size: int) -> dict[str, str]:
        self._library()
        return {}

    def attach(self) -> None:
        self._library()

    def physical_size(self) -> int:
        return self._library().size


def _hba_rows(luns: list[HbaLun]) -> list[list[tuple[str, object]]]:
    return [[("path", f"/dev/disk/by-id/scsi-{lun.scsi_id}"), ("numpaths", 1),
             ("SCSIid", lun.scsi_id), ("vendor", lun.vendor), ("serial", lun.serial),
             ("size", lun.size), ("lun", lun.lun_id)] for lun in luns]


@register
class Hba(Driver):
    """``hba``: every LUN the host's HBAs see is a VDI (HBASR)."""

    type = "hba"
    name = "HBA LUN-per-VDI driver"
    description = ("SR plugin which represents LUNs as VDIs sourced by hardware HBA adapters, "
                   "e.g. hardware-based iSCSI or FC support")
    capabilities = ("SR_PROBE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH",
                    "VDI_INTRODUCE")
    configuration = (("type", "HBA type (optional) (e.g. FC, iSCSI, SAS etc..)"),)
    vhd = False
    lun_per_vdi = True

    def load(self) -> None:
        self.hba_type = self.dconf.get("type") or "any"

    def probe(self) -> str:
        return srlist([rec["uuid"] for rec in self.other_srs().values()
                       if rec["sm_config"].get("datatype") == "HBA"])

    def create(self, size: int) -> dict[str, str]:
        for rec in self.other_srs().values():
            sm_config = rec["sm_config"]
            if sm_config.get("datatype") == "HBA" and sm_config.get("hbatype") == self.hba_type:
                raise sm_error("SRInUse")
        if not self.world.hba_luns:
            raise sm_error("InvalidDev", opterr=f"No such HBA Device detected [{self.hba_type}]")
        return {"disktype": "Raw", "datatype": "HBA", "hbatype": self.hba_type,
                "multipathable": "true"}

    def luns(self) -> list[LunVdi]:
        return [LunVdi(lun.vdi_uuid, lun.size, lun.lun_id, lun.scsi_id, lun.vendor, lun.serial)
                for lun in self.world.hba_luns]

    def physical_size(self) -> int:
        return sum(lun.size for lun in self.world.hba_luns)


@register
class LvmOverHba(Driver):
    """``lvmohba``: one volume group on the HBA LUN named by ``SCSIid`` (LVHDoHBASR)."""

    type = "lvmohba"
    aliases = ("lvhdohba",)
    name = "LVHD over FC"
    description = ("SR plugin which represents disks as VHDs on Logical Volumes within a Volume "
                   "Group created on an HBA LUN, e.g. hardware-based iSCSI or FC support")
    capabilities = iscsi.LVM_CAPABILITIES
    configuration = (("SCSIid", "The scsi_id of the destination LUN"),
                     ("allocation", "Valid values are thick or thin (optional, defaults to thick)"))
    thick = True

    def load(self) -> None:
        scsi_id = self.dconf.get("SCSIid")
        self.lun = self.world.hba_lun(scsi_id) if scsi_id else None
        if self.lun is None:
            luns = self.world.hba_luns
            base = visible_config(self.dconf)
            raise sm_error("ConfigSCSIid",
                           stderr=printed(xml_list("Devlist", "BlockDevice", _hba_rows(luns))),
                           candidates=[{**base, "SCSIid": lun.scsi_id} for lun in luns])

    def probe(self) -> str:
        assert self.lun is not None
        return lvm_srlist(self.lun, f"/dev/disk/by-id/scsi-{self.lun.scsi_id}")

    def create(self, size: int) -> dict[str, str]:
        assert self.lun is not None
        self.lun.srs.clear()
        self.lun.srs[self.call.sr_uuid] = {}
        return {"allocation": "thick", "use_vhd": "true"}

    def attach(self) -> None:
        assert self.lun is not None
        if self.call.sr_uuid not in self.lun.srs:
            raise sm_error("SRUnavailable",
                           opterr=f"no such volume group: VG_XenStorage-{self.call.sr_uuid}")

    def backing(self) -> Backing | None:
        return self.lun
