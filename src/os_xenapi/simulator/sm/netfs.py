"""Network file system SR types: ``nfs`` (NFSSR) and ``smb`` (SMBSR), VHD files on a share.

Each SR is a directory named by its uuid on the export (``serverpath/<sr uuid>``); its VDIs are
files in that directory, so they outlive ``SR.forget`` and come back on the next ``SR.scan``.
Checks follow ``NFSSR.py`` and ``nfs.py``: ``server`` (ConfigServerMissing, 102), an ``nfsversion``
that is neither 3 nor 4.x (a plain exception, so fault 1200), a server with no NFS service
(NFSTarget, 108), ``serverpath`` (the export list goes to stderr on probe and create, then
ConfigServerPathMissing, 101), a version the server does not speak (NFSVersion, 72) and a path it
does not export, or an SR directory that is not there (NFSMount, 73).
"""

from __future__ import annotations

from ..errors import ApiError
from .base import VHD_CAPABILITIES, Driver, printed, register, srlist, visible_config, xml_list
from .errors import generic_failure, sm_error
from .targets import Backing, NfsExport, SmbShare

MOUNT_FAILED = 32  # what mount.nfs and mount.cifs exit with when the mount fails


@register
class Nfs(Driver):
    """``nfs``: VHD files on an NFS export."""

    type = "nfs"
    name = "NFS VHD"
    description = "SR plugin which stores disks as VHD files on a remote NFS filesystem"
    capabilities = (*VHD_CAPABILITIES, "SR_CACHING", "VDI_MIRROR", "THIN_PROVISIONING")
    file_based = True
    configuration = (("server", "hostname or IP address of NFS server (required)"),
                     ("serverpath", "path on remote server (required)"),
                     ("nfsversion", "NFS protocol version - 3, 4, 4.0, 4.1"))

    def load(self) -> None:
        if "server" not in self.dconf:
            raise sm_error("ConfigServerMissing")
        self.server = self.dconf["server"]
        version = self.dconf.get("nfsversion") or "3"
        if not (version == "3" or version.startswith("4")):
            raise generic_failure("Invalid nfsversion.")
        self.version = version
        self.options = self.dconf.get("options", "")

    def _test_host(self) -> None:
        if not self.world.nfs_server_known(self.server):
            raise sm_error("NFSTarget")

    def _validate_serverpath(self, scan: bool) -> None:
        if "serverpath" in self.dconf:
            return
        if not scan:
            raise sm_error("ConfigServerPathMissing")
        exports = self.world.exports_of(self.server)
        rows = [[("Target", self.server), ("Path", e.path), ("Accesslist", "*")] for e in exports]
        base = visible_config(self.dconf)
        raise sm_error("ConfigServerPathMissing",
                       stderr=printed(xml_list("nfs-exports", "Export", rows)),
                       candidates=[{**base, "serverpath": e.path} for e in exports])

    def _check_server(self) -> None:
        spoken = {v for e in self.world.exports_of(self.server) for v in e.versions}
        if self.version[0] not in spoken:
            raise sm_error("NFSVersion", opterr=f"Unsupported NFS version: {self.version}")

    def _mount(self) -> NfsExport:
        export = self.world.nfs_export(self.server, self.dconf["serverpath"])
        if export is None:
            raise self._mount_failed()
        return export

    def _mount_failed(self) -> ApiError:
        return sm_error("NFSMount", opterr=f"mount failed on server `{self.server}` with "
                                           f"return code {MOUNT_FAILED}")

    def probe(self) -> str:
        self._test_host()
        self._validate_serverpath(scan=True)
        self._check_server()
        return srlist(list(self._mount().srs))

    def create(self, size: int) -> dict[str, str]:
        self._test_host()
        self._validate_serverpath(scan=True)
        self._check_server()
        export = self._mount()
        if export.srs.get(self.call.sr_uuid):
            raise sm_error("SRExists")
        export.srs.setdefault(self.call.sr_uuid, {})
        return {}

    def attach(self) -> None:
        self._validate_serverpath(scan=False)
        self._test_host()
        self._check_server()
        if self.call.sr_uuid not in self._mount().srs:
            raise self._mount_failed()  # serverpath/<sr uuid> is not there to mount

    def backing(self) -> Backing | None:
        if "serverpath" not in self.dconf:
            return None
        return self.world.nfs_export(self.server, self.dconf["serverpath"])


@register
class Smb(Driver):
    """``smb``: VHD files on an SMB share, ``server`` being ``//host/share`` (SMBSR)."""

    type = "smb"
    name = "SMB VHD"
    description = "SR plugin which stores disks as VHD files on a remote SMB filesystem"
    capabilities = (*VHD_CAPABILITIES, "SR_CACHING", "VDI_MIRROR", "THIN_PROVISIONING")
    file_based = True
    configuration = (("server", "Full path to share root on SMB server (required)"),
                     ("username", "The username to be used during SMB authentication"),
                     ("password", "The password to be used during SMB authentication"))

    def load(self) -> None:
        if "server" not in self.dconf:
            raise sm_error("ConfigServerMissing")
        self.server = self.dconf["server"]

    def _mount(self) -> SmbShare:
        share = self.world.smb_share(self.server)
        user = self.dconf.get("username")
        if share is None or (share.username is not None and
                             (user, self.password("password")) != (share.username,
                                                                   share.password)):
            raise sm_error("SMBMount", opterr=f"mount failed with return code {MOUNT_FAILED}")
        return share

    def probe(self) -> str:
        return srlist(list(self._mount().srs))

    def create(self, size: int) -> dict[str, str]:
        share = self._mount()
        if share.srs.get(self.call.sr_uuid):
            raise sm_error("SRExists")
        share.srs.setdefault(self.call.sr_uuid, {})
        return {}

    def attach(self) -> None:
        if self.call.sr_uuid not in self._mount().srs:
            raise sm_error("SRUnavailable",
                           opterr=f"no SR directory {self.call.sr_uuid} on {self.server}")

    def backing(self) -> Backing | None:
        return self.world.smb_share(self.server)
