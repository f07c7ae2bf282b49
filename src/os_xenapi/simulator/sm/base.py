"""The interface of a simulated SM driver, and the registry of SR types.

Like an SMAPIv1 driver (``libs/sm/SR.py``), a driver object is made for one command: it receives
the device_config and checks it in :meth:`Driver.load` (raising the SM error a real driver raises
for a missing or bad key), then runs one of :meth:`probe`, :meth:`create`, :meth:`attach`,
:meth:`detach`, :meth:`delete`. XAPI's side (records, PBDs, VDIs) stays in ``ops/``; a driver only
looks at the simulated storage (:mod:`.targets`) and answers.

Adding an SR type is adding a :class:`Driver` subclass with a ``type`` and decorating it with
:func:`register`.
"""

from __future__ import annotations

import xml.dom.minidom
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ApiError
from ..schema import NULL_REF
from .errors import sm_error
from .targets import Backing, StorageWorld

VHD_CAPABILITIES = ("SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH",
                    "VDI_DETACH", "VDI_UPDATE", "VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE",
                    "VDI_GENERATE_CONFIG", "VDI_ACTIVATE", "VDI_DEACTIVATE")


@dataclass
class SMCall:
    """What XAPI hands a driver for one command (the params of ``SRCommand``)."""

    world: StorageWorld
    db: Any  # the pool's Database, read-only for drivers
    host: str  # ref of the host the driver runs on
    device_config: dict[str, str]
    sm_config: dict[str, str] = field(default_factory=dict)
    sr: str = NULL_REF  # the SR the command is about, when there is one
    sr_uuid: str = ""


@dataclass
class LunVdi:
    """A LUN seen as a VDI by a LUN-per-VDI SR (``LUNperVDI.RAWVDI._query``)."""

    uuid: str
    size: int
    lun_id: int
    scsi_id: str
    vendor: str
    serial: str

    @property
    def sm_config(self) -> dict[str, str]:
        """The sm_config XAPI records for a LUN VDI."""
        return {"LUNid": str(self.lun_id), "SCSIid": self.scsi_id, "backend-kind": "vbd"}


class Driver:
    """One SR type. Subclasses set the class attributes and override what their type does."""

    type: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    capabilities: ClassVar[tuple[str, ...]] = ()
    configuration: ClassVar[tuple[tuple[str, str], ...]] = ()
    thick: ClassVar[bool] = False  # VDIs take their whole virtual size when created
    vhd: ClassVar[bool] = True  # VDIs are VHD images (sm_config vdi_type=vhd)
    lun_per_vdi: ClassVar[bool] = False  # each LUN is a VDI; VDIs cannot be made, only found
    file_based: ClassVar[bool] = False  # FileSR: <VDI uuid>.vhd files in /var/run/sr-mount/<SR>

    def __init__(self, call: SMCall) -> None:
        self.call = call
        self.dconf = call.device_config
        self.world = call.world
        self.load()

    # -- what every driver may override ----------------------------------------------------------

    def load(self) -> None:
        """Check the device_config; raise the SM error of the first missing or bad key."""

    def probe(self) -> str:
        """The XML a probe prints (``<SRlist>`` ...); raises like the real driver."""
        raise sm_error("Unimplemented")

    def create(self, size: int) -> dict[str, str]:
        """Make the SR on its storage; returns keys to add to the SR's sm_config."""
        backing = self.backing()
        if backing is not None:
            backing.srs[self.call.sr_uuid] = {}
        return {}

    def attach(self) -> None:
        """Make the SR reachable from the host (log in, mount)."""

    def detach(self) -> None:
        """Undo :meth:`attach`."""

    def delete(self) -> None:
        """Remove the SR from its storage; SM fault 39 (``SR_NOT_EMPTY``) if VDIs are left."""
        backing = self.backing()
        if backing is None:
            return
        if backing.srs.get(self.call.sr_uuid):
            raise sm_error("SRNotEmpty", opterr="VDIs still exist in SR")
        backing.srs.pop(self.call.sr_uuid, None)

    def backing(self) -> Backing | None:
        """The storage that keeps this SR's VDIs, for types whose VDIs live inside the SR."""
        return None

    def physical_size(self) -> int:
        """Bytes the SR can hold."""
        backing = self.backing()
        return backing.size if backing is not None else 0

    def luns(self) -> list[LunVdi]:
        """The LUNs a LUN-per-VDI SR finds on a scan."""
        return []

    # -- helpers for drivers ---------------------------------------------------------------------

    def password(self, key: str) -> str:
        """The password behind ``key`` (through ``key_secret`` when XAPI moved it to a secret)."""
        return self.world.secrets.resolve(self.dconf, key) or ""

    def other_srs(self) -> dict[str, dict[str, Any]]:
        """SR records of the pool other than the one this command is about."""
        return {ref: rec for ref, rec in self.call.db.all("SR").items() if ref != self.call.sr}

    @classmethod
    def all_types(cls) -> tuple[str, ...]:
        """The type and its aliases."""
        return (cls.type, *cls.aliases)


_REGISTRY: dict[str, type[Driver]] = {}


def register(driver: type[Driver]) -> type[Driver]:
    """Class decorator: serve SR type ``driver.type`` (and its aliases) with ``driver``."""
    for name in driver.all_types():
        if name in _REGISTRY:
            raise ValueError(f"SR type {name!r} is registered twice")
        _REGISTRY[name] = driver
    return driver


def registry() -> dict[str, type[Driver]]:
    """SR type -> driver class, for every registered type and alias."""
    return dict(_REGISTRY)


def driver_class(sr_type: str) -> type[Driver]:
    """The driver of ``sr_type`` (case-insensitive); ``SR_UNKNOWN_DRIVER [type]`` if none."""
    found = _REGISTRY.get(sr_type.lower())
    if found is None:
        raise ApiError("SR_UNKNOWN_DRIVER", sr_type)
    return found


def xml_list(root: str, item: str, rows: Sequence[Sequence[tuple[str, object]]]) -> str:
    """``<root><item><tag>text</tag>...</item>...</root>`` pretty-printed by minidom, as sm does."""
    dom = xml.dom.minidom.Document()
    top = dom.createElement(root)
    dom.appendChild(top)
    for row in rows:
        entry = dom.createElement(item)
        top.appendChild(entry)
        for tag, text in row:
            child = dom.createElement(tag)
            child.appendChild(dom.createTextNode(str(text)))
            entry.appendChild(child)
    return dom.toprettyxml()


def printed(text: str) -> str:
    """What ``print(text, file=sys.stderr)`` leaves on stderr."""
    return text + "\n"


def srlist(uuids: Sequence[str]) -> str:
    """``<SRlist><SR><UUID>...</UUID></SR>...`` (``util.SRtoXML``, ``nfs.scan_srlist``)."""
    return xml_list("SRlist", "SR", [[("UUID", uuid)] for uuid in uuids])


def lvm_srlist(backing: Backing, device: str) -> str:
    """The SRs on a volume group device, as ``lvutil.srlist_toxml`` lists them."""
    rows = [[("UUID", uuid), ("Devlist", device), ("size", backing.size)] for uuid in backing.srs]
    return xml_list("SRlist", "SR", rows)


def visible_config(device_config: dict[str, str]) -> dict[str, str]:
    """A device_config fit to show back to a client: no secrets and no XAPI-internal keys."""
    return {k: v for k, v in device_config.items()
            if not k.endswith("_secret") and k != "SRmaster"}
