"""The storage a simulated pool can reach: iSCSI targets, NFS exports, SMB shares, HBA LUNs.

Tests and demos declare what exists (``xapi.storage.add_iscsi_target(...)``,
``add_nfs_export(...)``, or the :class:`~os_xenapi.simulator.Simulator` wrappers); the SM drivers
in :mod:`.drivers` then discover, log in to, mount and scan only what was declared, and fail with
the SM errors a real driver gives for anything else.

Storage that holds SRs (an NFS export, an SMB share, a LUN with a volume group, a local disk) is a
:class:`Backing`: it keeps, per SR uuid, the VDIs that SR has on it. That is what lets an NFS SR be
forgotten and introduced again and still find its VDIs on ``SR.scan``. VDI bytes are not kept
here but in the pool's :class:`~os_xenapi.simulator.vdi_store.VdiStore`, by VDI uuid.

A new world holds one demo target and one demo export, so that a fresh simulator has something to
probe (``DEMO_*`` below); tests that need their own storage declare it next to them.
"""

from __future__ import annotations

import hashlib
import uuid as _uuid
import weakref
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .secrets import Secrets

if TYPE_CHECKING:
    from ..vdi_store import VdiStore

GiB = 1024**3
TiB = 1024**4
DEFAULT_ISCSI_PORT = 3260
NFS_VERSIONS = ("3", "4")
LOCAL_DISK_SIZE = TiB  # a local disk or directory whose size nobody declared
LUN_NAMESPACE = _uuid.UUID("0b8d7e3c-5a0f-4a53-9b5e-2f6f7a1c9d21")  # VDI uuids of raw LUNs

DEMO_ISCSI_ADDRESS = "192.0.2.10"
DEMO_ISCSI_IQN = "iqn.2026-11.org.xcp-ng.sim:demo"
DEMO_LUN_SIZES = (10 * GiB, 20 * GiB)
DEMO_NFS_SERVER = "192.0.2.20"
DEMO_NFS_PATH = "/export/xapi-sim"
DEMO_NFS_SIZE = 2 * TiB


@dataclass
class VdiMeta:
    """What an SR keeps on its storage about one VDI (a VHD file, a logical volume)."""

    uuid: str
    virtual_size: int
    name_label: str = ""
    name_description: str = ""
    type: str = "user"
    read_only: bool = False
    sharable: bool = False
    is_a_snapshot: bool = False
    snapshot_of: str = ""  # uuid of the VDI this one is a snapshot of
    snapshot_time: str = "19700101T00:00:00Z"
    sm_config: dict[str, str] = field(default_factory=dict)


@dataclass
class Backing:
    """Storage that holds SRs: SR uuid -> (VDI uuid -> its metadata)."""

    size: int
    srs: dict[str, dict[str, VdiMeta]] = field(default_factory=dict)


@dataclass
class IscsiLun(Backing):
    lun_id: int = 0
    scsi_id: str = ""
    serial: str = ""
    vendor: str = "XAPISIM"

    @property
    def vdi_uuid(self) -> str:
        """The uuid a LUN-per-VDI SR gives this LUN (stable, from its SCSI id)."""
        return str(_uuid.uuid5(LUN_NAMESPACE, self.scsi_id))


@dataclass
class IscsiTarget:
    address: str
    port: int
    iqn: str
    luns: list[IscsiLun]
    chap_user: str | None = None
    chap_password: str | None = None

    @property
    def portal(self) -> str:
        """``address:port``, as iscsiadm writes a portal."""
        return f"{self.address}:{self.port}"

    def lun(self, lun_id: int) -> IscsiLun | None:
        """The LUN with this id, if the target has one."""
        return next((lun for lun in self.luns if lun.lun_id == lun_id), None)

    def accepts(self, user: str, password: str) -> bool:
        """Whether a login with these CHAP credentials succeeds."""
        if self.chap_user is None:
            return True
        return user == self.chap_user and password == self.chap_password


@dataclass
class NfsExport(Backing):
    server: str = ""
    path: str = ""
    versions: tuple[str, ...] = NFS_VERSIONS


@dataclass
class SmbShare(Backing):
    location: str = ""  # //server/share
    username: str | None = None
    password: str | None = None


@dataclass
class HbaLun(Backing):
    scsi_id: str = ""
    lun_id: int = 0
    serial: str = ""
    vendor: str = "XAPISIM"

    @property
    def vdi_uuid(self) -> str:
        """The uuid an ``hba`` SR gives this LUN (stable, from its SCSI id)."""
        return str(_uuid.uuid5(LUN_NAMESPACE, self.scsi_id))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive number of bytes, not {value!r}")
    return value


class StorageWorld:
    """Everything the simulated hosts can reach, plus the secrets of their device_configs."""

    def __init__(self, vdis: VdiStore, demo: bool = True) -> None:
        self.vdis = vdis
        self.secrets = Secrets()
        self.iscsi_targets: list[IscsiTarget] = []
        self.nfs_exports: list[NfsExport] = []
        self.smb_shares: list[SmbShare] = []
        self.hba_luns: list[HbaLun] = []
        self.local_disks: dict[str, Backing] = {}
        self.sm_rows_registered = False
        if demo:
            self.add_iscsi_target(DEMO_ISCSI_ADDRESS, DEMO_ISCSI_IQN, luns=DEMO_LUN_SIZES)
            self.add_nfs_export(DEMO_NFS_SERVER, DEMO_NFS_PATH, size=DEMO_NFS_SIZE)

    # -- declaring storage ----------------------------------------------------------------------

    def add_iscsi_target(self, address: str, iqn: str, luns: Iterable[int] = (10 * GiB,),
                         port: int = DEFAULT_ISCSI_PORT, chap_user: str | None = None,
                         chap_password: str | None = None) -> IscsiTarget:
        """Declare a target at ``address:port`` named ``iqn`` with one LUN per size in ``luns``.

        LUN ids count from 0; each LUN gets a stable SCSI id and serial derived from the IQN.
        With ``chap_user`` and ``chap_password``, logins must present them. Raises ValueError for
        an empty address or IQN, a port outside 1-65535, a non-positive size or a duplicate.
        """
        if not address or not iqn:
            raise ValueError("an iSCSI target needs an address and an IQN")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"iSCSI port must be 1-65535, not {port!r}")
        if (chap_user is None) != (chap_password is None):
            raise ValueError("give both chap_user and chap_password, or neither")
        if self.iscsi_target(address, port, iqn) is not None:
            raise ValueError(f"iSCSI target {iqn} at {address}:{port} is already declared")
        made = []
        for lun_id, size in enumerate(luns):
            digest = _digest(f"{iqn}/{lun_id}")
            made.append(IscsiLun(size=_positive(f"LUN {lun_id} size", size), lun_id=lun_id,
                                 scsi_id="36" + digest[:30], serial=digest[30:46]))
        target = IscsiTarget(address, port, iqn, made, chap_user, chap_password)
        self.iscsi_targets.append(target)
        return target

    def add_nfs_export(self, server: str, path: str, size: int = TiB,
                       versions: Iterable[str] = NFS_VERSIONS) -> NfsExport:
        """Declare ``server:path`` as an NFS export of ``size`` bytes speaking ``versions``.

        Raises ValueError for an empty server, a relative path, a bad size or version, or a
        duplicate.
        """
        versions = tuple(versions)
        if not server:
            raise ValueError("an NFS export needs a server")
        if not path.startswith("/"):
            raise ValueError(f"NFS export path must be absolute, not {path!r}")
        if not versions or any(v not in NFS_VERSIONS for v in versions):
            raise ValueError(f"NFS versions must be among {NFS_VERSIONS}, not {versions!r}")
        if self.nfs_export(server, path) is not None:
            raise ValueError(f"NFS export {server}:{path} is already declared")
        export = NfsExport(size=_positive("export size", size), server=server, path=path,
                           versions=versions)
        self.nfs_exports.append(export)
        return export

    def add_smb_share(self, location: str, size: int = TiB, username: str | None = None,
                      password: str | None = None) -> SmbShare:
        """Declare an SMB share ``//server/share``; with credentials, mounts must present them."""
        if not location.startswith("//") or len(location.strip("/").split("/")) < 2:
            raise ValueError(f"SMB share must look like //server/share, not {location!r}")
        if self.smb_share(location) is not None:
            raise ValueError(f"SMB share {location} is already declared")
        share = SmbShare(size=_positive("share size", size), location=location,
                         username=username, password=password)
        self.smb_shares.append(share)
        return share

    def add_hba_lun(self, size: int, scsi_id: str | None = None) -> HbaLun:
        """Declare a LUN that the hosts' HBAs (Fibre Channel, SAS) see."""
        number = len(self.hba_luns)
        digest = _digest(f"hba/{number}/{scsi_id}")
        lun = HbaLun(size=_positive("LUN size", size), scsi_id=scsi_id or "36" + digest[:30],
                     lun_id=number, serial=digest[30:46])
        if self.hba_lun(lun.scsi_id) is not None:
            raise ValueError(f"an HBA LUN with SCSI id {lun.scsi_id} is already declared")
        self.hba_luns.append(lun)
        return lun

    # -- what the drivers look up -----------------------------------------------------------------

    def iscsi_target(self, address: str, port: int, iqn: str) -> IscsiTarget | None:
        """The target ``iqn`` at ``address:port``, if declared."""
        return next((t for t in self.iscsi_targets
                     if (t.address, t.port, t.iqn) == (address, port, iqn)), None)

    def portal_targets(self, address: str, port: int) -> list[IscsiTarget]:
        """The targets a discovery on ``address:port`` reports."""
        return [t for t in self.iscsi_targets if (t.address, t.port) == (address, port)]

    def iscsi_lun(self, scsi_id: str) -> tuple[IscsiTarget, IscsiLun] | None:
        """The target and LUN with this SCSI id, if any."""
        for target in self.iscsi_targets:
            for lun in target.luns:
                if lun.scsi_id == scsi_id:
                    return target, lun
        return None

    def nfs_server_known(self, server: str) -> bool:
        """Whether an NFS service answers at ``server`` (it exports something)."""
        return any(e.server == server for e in self.nfs_exports)

    def nfs_export(self, server: str, path: str) -> NfsExport | None:
        """The export ``server:path`` (trailing slashes ignored), if declared."""
        wanted = path.rstrip("/") or "/"
        return next((e for e in self.nfs_exports
                     if e.server == server and (e.path.rstrip("/") or "/") == wanted), None)

    def exports_of(self, server: str) -> list[NfsExport]:
        """What ``showmount -e server`` lists."""
        return [e for e in self.nfs_exports if e.server == server]

    def smb_share(self, location: str) -> SmbShare | None:
        """The share at ``//server/share`` (or ``\\\\server\\share``), if declared."""
        wanted = location.replace("\\", "/").rstrip("/")
        return next((s for s in self.smb_shares if s.location.rstrip("/") == wanted), None)

    def hba_lun(self, scsi_id: str) -> HbaLun | None:
        """The HBA LUN with this SCSI id, if declared."""
        return next((lun for lun in self.hba_luns if lun.scsi_id == scsi_id), None)

    def local_disk(self, key: str) -> Backing:
        """The local device or directory ``key``; local storage exists as soon as it is named."""
        disk = self.local_disks.get(key)
        if disk is None:
            disk = self.local_disks[key] = Backing(size=LOCAL_DISK_SIZE)
        return disk


    # -- persistence -------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Everything declared, the SRs and VDIs kept on it, and the secrets, as JSON-able data."""
        return {"iscsi_targets": [asdict(t) for t in self.iscsi_targets],
                "nfs_exports": [asdict(e) for e in self.nfs_exports],
                "smb_shares": [asdict(s) for s in self.smb_shares],
                "hba_luns": [asdict(lun) for lun in self.hba_luns],
                "local_disks": {k: asdict(d) for k, d in self.local_disks.items()},
                "secrets": self.secrets.to_state(),
                "sm_rows_registered": self.sm_rows_registered}

    @classmethod
    def from_state(cls, vdis: VdiStore, state: dict[str, Any]) -> StorageWorld:
        """The world :meth:`to_state` described (no demo storage is added)."""
        world = cls(vdis, demo=False)
        world.iscsi_targets = [IscsiTarget(**{**t, "luns": [_revive(IscsiLun, lun)
                                                            for lun in t["luns"]]})
                               for t in state["iscsi_targets"]]
        world.nfs_exports = [_revive(NfsExport, {**e, "versions": tuple(e["versions"])})
                             for e in state["nfs_exports"]]
        world.smb_shares = [_revive(SmbShare, s) for s in state["smb_shares"]]
        world.hba_luns = [_revive(HbaLun, lun) for lun in state["hba_luns"]]
        world.local_disks = {k: _revive(Backing, d) for k, d in state["local_disks"].items()}
        world.secrets.restore(state["secrets"])
        world.sm_rows_registered = state.get("sm_rows_registered", False)
        return world


def _revive(cls: type[Any], data: dict[str, Any]) -> Any:
    """A Backing subclass from its ``asdict`` form, VDI metadata included."""
    srs = {sr: {uuid: VdiMeta(**meta) for uuid, meta in vdis.items()}
           for sr, vdis in data.get("srs", {}).items()}
    return cls(**{**data, "srs": srs})


# The world of each pool, also by its database: the VDI record helpers receive only the database.
_BY_DB: weakref.WeakKeyDictionary[Any, StorageWorld] = weakref.WeakKeyDictionary()


def storage_of(xapi: Any) -> StorageWorld:
    """The storage world of a pool (``xapi.storage``), made with the demo storage on first use."""
    world = getattr(xapi, "storage", None)
    if world is None:
        world = StorageWorld(xapi.vdis)
        xapi.storage = world
    _BY_DB[xapi.db] = world
    return world


def restore_storage(xapi: Any, state: dict[str, Any]) -> StorageWorld:
    """Give a pool the world saved by :meth:`StorageWorld.to_state` (for a persisted pool)."""
    xapi.storage = StorageWorld.from_state(xapi.vdis, state)
    return storage_of(xapi)


def storage_of_db(db: Any) -> StorageWorld | None:
    """The world of the pool whose database is ``db``, if it has been made yet."""
    return _BY_DB.get(db)
