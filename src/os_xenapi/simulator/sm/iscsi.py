"""iSCSI SR types: ``iscsi`` (a LUN per VDI, RawISCSISR) and ``lvmoiscsi`` (LVHD on one LUN).

The checks and their order follow sm's ``BaseISCSI.load`` and ``attach``, ``LVHDoISCSISR`` and
``core/iscsi.py``: ``target`` (ConfigTargetMissing, 95), the host's IQN (ConfigISCSIIQNMissing,
97), ``port`` (ISCSIPort, 142), ``targetIQN`` (a discovery whose IQN list goes to stderr, then
ConfigTargetIQNMissing, 96). Attaching reaches the portal (ISCSITarget, 141), finds the IQN
there (ISCSIDiscovery, 83) and logs in with the CHAP credentials (ISCSILogin, 68).
``lvmoiscsi`` also needs ``SCSIid`` (the LUN list goes to stderr, then ConfigSCSIid, 107) and
reports every attach failure as SRUnavailable (47) with the cause as opterr, as LVHDoISCSISR does.
"""

from __future__ import annotations

from ..errors import ApiError
from .base import (
    Driver,
    LunVdi,
    lvm_srlist,
    printed,
    register,
    visible_config,
    xml_list,
)
from .errors import BackendFailure, reason_of, sm_error
from .targets import DEFAULT_ISCSI_PORT, Backing, IscsiLun, IscsiTarget

RAW_CAPABILITIES = ("SR_PROBE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH",
                    "VDI_INTRODUCE")
LVM_CAPABILITIES = ("SR_PROBE", "SR_UPDATE", "SR_METADATA", "SR_TRIM", "VDI_CREATE",
                    "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "VDI_GENERATE_CONFIG", "VDI_CLONE",
                    "VDI_SNAPSHOT", "VDI_RESIZE", "VDI_UPDATE", "VDI_ACTIVATE", "VDI_DEACTIVATE")
ISCSI_CONFIGURATION = (
    ("target", "IP address or hostname of the iSCSI target"),
    ("targetIQN", "The IQN of the target LUN group to be attached"),
    ("chapuser", "The username to be used during CHAP authentication"),
    ("chappassword", "The password to be used during CHAP authentication"),
    ("port", "The network port number on which to query the target"),
)


class BaseIscsi(Driver):
    """What both iSCSI types share: device_config checks, discovery and login."""

    allow_any_iqn = False  # lvmoiscsi accepts targetIQN "*": every IQN of the portal

    def load(self) -> None:
        dconf = self.dconf
        if not dconf.get("target"):
            raise sm_error("ConfigTargetMissing")
        self.local_iqn = dconf.get("localIQN") or self._host_iqn()
        if not self.local_iqn:
            raise sm_error("ConfigISCSIIQNMissing")
        self.target = dconf["target"].split(",")[0]
        self.chap_user = self.chap_password = ""
        if "chapuser" in dconf and ("chappassword" in dconf or "chappassword_secret" in dconf):
            self.chap_user, self.chap_password = dconf["chapuser"], self.password("chappassword")
        self.port = DEFAULT_ISCSI_PORT
        if dconf.get("port"):
            try:
                self.port = int(dconf["port"])
            except ValueError:
                raise sm_error("ISCSIPort") from None
        if not 1 <= self.port <= 65535:
            raise sm_error("ISCSIPort")
        if not dconf.get("targetIQN"):
            stderr, candidates = self._scan_iqns()
            raise sm_error("ConfigTargetIQNMissing", stderr=stderr, candidates=candidates)
        self.target_iqn = dconf["targetIQN"]

    def _host_iqn(self) -> str:
        host = self.call.db.all("host").get(self.call.host)
        return host["other_config"].get("iscsi_iqn", "") if host else ""

    def _portal(self) -> list[IscsiTarget]:
        """The targets behind target:port; ISCSITarget (141) if nothing listens there."""
        found = self.world.portal_targets(self.target, self.port)
        if not found:
            raise sm_error("ISCSITarget")
        return found

    def _discover(self) -> list[IscsiTarget]:
        """A sendtargets discovery; wrong CHAP credentials for a protected target fail it (68)."""
        found = self._portal()
        if self.chap_user and any(t.chap_user is not None and
                                  not t.accepts(self.chap_user, self.chap_password)
                                  for t in found):
            raise sm_error("ISCSILogin")
        return found

    def _scan_iqns(self) -> tuple[str, list[dict[str, str]]]:
        """The ``<iscsi-target-iqns>`` list printed on stderr, and the configurations it offers."""
        found = self._discover()
        entries = [(t.address, t.port, t.iqn) for t in found]
        entries.append((self.dconf.get("targetlist", self.target), self.port, "*"))
        rows = []
        for index, (address, port, iqn) in enumerate(entries):
            row: list[tuple[str, object]] = [("Index", index), ("IPAddress", address)]
            if port != DEFAULT_ISCSI_PORT:
                row.append(("Port", port))
            row.append(("TargetIQN", iqn))
            rows.append(row)
        base = visible_config(self.dconf)
        candidates = [{**base, "targetIQN": iqn} for _, _, iqn in entries
                      if iqn != "*" or self.allow_any_iqn]
        return printed(xml_list("iscsi-target-iqns", "TGT", rows)), candidates

    def _targets(self) -> list[IscsiTarget]:
        """The targets this configuration names: one IQN, or all of them for ``*``."""
        if self.allow_any_iqn and self.target_iqn == "*":
            return self._discover()
        return [t for t in self._discover() if t.iqn == self.target_iqn]

    def _login(self) -> list[IscsiTarget]:
        """Log in to the configured target(s) as ``BaseISCSI.attach`` does."""
        targets = self._targets()
        if not targets:
            stderr, _ = self._scan_iqns()
            raise sm_error("ISCSIDiscovery", opterr="check target settings", stderr=stderr)
        for target in targets:
            if not target.accepts(self.chap_user, self.chap_password):
                raise sm_error("ISCSILogin")
        return targets

    def _srs_of_iqn(self) -> list[tuple[str, dict[str, str]]]:
        return [(rec["uuid"], rec["sm_config"]) for rec in self.other_srs().values()
                if rec["sm_config"].get("targetIQN") == self.target_iqn]

    def probe(self) -> str:
        rows = [[("UUID", uuid), ("Target", sm.get("target", "")),
                 ("TargetIQN", sm["targetIQN"])] for uuid, sm in self._srs_of_iqn()]
        return xml_list("SRlist", "SR", rows)


@register
class RawIscsi(BaseIscsi):
    """``iscsi``: every LUN of the target is a VDI (RawISCSISR, LUNperVDI)."""

    type = "iscsi"
    name = "iSCSI"
    description = ("Base ISCSI SR driver, provides a LUN-per-VDI. Does not support creation of "
                   "VDIs but accesses existing LUNs on a target.")
    capabilities = RAW_CAPABILITIES
    configuration = ISCSI_CONFIGURATION
    vhd = False
    lun_per_vdi = True

    def create(self, size: int) -> dict[str, str]:
        if self._srs_of_iqn():
            raise sm_error("SRInUse")
        self._login()
        return {"disktype": "Raw", "datatype": "ISCSI", "target": self.target,
                "targetIQN": self.target_iqn, "multipathable": "true"}

    def attach(self) -> None:
        self._login()

    def luns(self) -> list[LunVdi]:
        return [LunVdi(lun.vdi_uuid, lun.size, lun.lun_id, lun.scsi_id, lun.vendor, lun.serial)
                for target in self._login() for lun in target.luns]

    def physical_size(self) -> int:
        return sum(lun.size for target in self._login() for lun in target.luns)


@register
class LvmOverIscsi(BaseIscsi):
    """``lvmoiscsi``: one volume group on the LUN named by ``SCSIid`` (LVHDoISCSISR)."""

    type = "lvmoiscsi"
    aliases = ("lvhdoiscsi",)
    name = "LVHD over iSCSI"
    description = ("SR plugin which represents disks as Logical Volumes within a Volume Group "
                   "created on an iSCSI LUN")
    capabilities = LVM_CAPABILITIES
    configuration = (("SCSIid", "The scsi_id of the destination LUN"), *ISCSI_CONFIGURATION)
    thick = True
    allow_any_iqn = True

    def load(self) -> None:
        super().load()
        if not self.dconf.get("SCSIid"):
            targets = self._login()
            rows = [[("vendor", lun.vendor), ("serial", lun.serial), ("LUNid", lun.lun_id),
                     ("size", lun.size), ("SCSIid", lun.scsi_id)]
                    for target in targets for lun in target.luns]
            base = visible_config(self.dconf)
            candidates = [{**base, "SCSIid": lun.scsi_id}
                          for target in targets for lun in target.luns]
            raise sm_error("ConfigSCSIid", stderr=printed(xml_list("iscsi-target", "LUN", rows)),
                           candidates=candidates)
        self.scsi_id = self.dconf["SCSIid"]

    def _lun(self) -> IscsiLun:
        """Log in and find the LUN; ISCSIDevice (67) when no target has it."""
        for target in self._login():
            for lun in target.luns:
                if lun.scsi_id == self.scsi_id:
                    return lun
        raise sm_error("ISCSIDevice")

    def _unavailable(self, error: ApiError) -> ApiError:
        return sm_error("SRUnavailable", opterr=reason_of(error))

    def _attached_lun(self) -> IscsiLun:
        try:
            return self._lun()
        except BackendFailure as error:
            raise self._unavailable(error) from None

    def probe(self) -> str:
        return lvm_srlist(self._lun(), f"/dev/disk/by-id/scsi-{self.scsi_id}")

    def create(self, size: int) -> dict[str, str]:
        for rec in self.call.db.all("PBD").values():
            if rec["device_config"].get("SCSIid") == self.scsi_id and rec["SR"] != self.call.sr:
                raise sm_error("SRInUse")
        lun = self._attached_lun()
        lun.srs.clear()  # a new volume group replaces whatever the LUN held
        lun.srs[self.call.sr_uuid] = {}
        return {"allocation": "thick", "use_vhd": "true"}

    def attach(self) -> None:
        lun = self._attached_lun()
        if self.call.sr_uuid not in lun.srs:
            inner = sm_error("SRUnavailable",
                             opterr=f"no such volume group: VG_XenStorage-{self.call.sr_uuid}")
            raise self._unavailable(inner)

    def backing(self) -> Backing | None:
        found = self.world.iscsi_lun(self.scsi_id)
        return found[1] if found else None
