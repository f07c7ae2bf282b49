"""File-based SRs as the simulated dom0 sees them: ``/var/run/sr-mount/<SR uuid>/<VDI uuid>.vhd``.

A XAPI host mounts every attached SR of a file type (``ext``, ``nfs``, ``file``, ``smb``: SM's
FileSR and its subclasses; the drivers say so with ``Driver.file_based``) at
``/var/run/sr-mount/<SR uuid>``, where each VDI is a VHD file named by its uuid. Dom0 plugins
read those files and drop new ones, and SR.scan turns new files into VDIs. Here:

* **Attached** (any PBD of the SR plugged): ``DOM0_ROOT/var/run/sr-mount/<SR uuid>`` is a real
  directory. **Detached** (PBD.unplug, before SR.forget or destroy): the directory is moved,
  whole, to ``<state dir>/sr-mount/<SR uuid>`` (the SR's storage, which the next attach moves
  back), as unmounting hides a share's files without deleting them. Nothing in it is deleted, so
  a VHD a plugin wrote, a user's file or a staging directory all come back.
* **Rendering**: the VdiStore file stays the content of record. Each VDI of an attached file SR
  gets ``<VDI uuid>.vhd``, a dynamic VHD of its bytes (written to a temporary file, then renamed),
  whose footer unique id is derived from the VDI uuid so that a child made from it stays valid.
  :meth:`SrMounts.sync` renders the VDIs whose store file changed since they were last rendered
  (stat ``mtime_ns``, size, inode; kept in memory, so a restarted simulator renders again); the
  simulator runs it before each plugin or extension starts and at SR.scan, in a worker thread.
  A store file changed just before it was rendered is rendered again next time, since one file
  system clock tick may stamp two writes alike. A rendered file that a plugin deleted or rewrote
  is left as it is until the next SR.scan, which forgets or re-reads the VDI.
* **Scanning** (:mod:`.sr_survey`, for SR.scan and the scan after PBD.plug): each regular file
  ``<uuid>.vhd`` whose uuid is no VDI yet, and that opens as a VHD whose chain resolves
  (:mod:`.vhd_chain`), is flattened into a new store file and becomes a VDI record. Junk, a
  missing or mismatched parent and a hidden leaf are skipped with a log line and left in place.

The simulator deletes only what it made: a rendered file that is still as it wrote it, a VDI's
file on VDI.destroy or SR.destroy, and an empty mount directory it parks. Every path stays inside
the dom0 root or the state directory; a mount path that is a symlink, or leads outside the dom0
root, is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import shutil
import stat
import tempfile
import time
import uuid as _uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ApiError
from .sm.base import driver_class
from .vhd import VHD_EPOCH, DynamicLayout, Footer, VhdError, VhdSource

if TYPE_CHECKING:
    from .xapi import Xapi

LOG = logging.getLogger(__name__)

SR_MOUNT = Path("var/run/sr-mount")  # under the dom0 root
PARKED = "sr-mount"  # under the state directory: detached SRs' directories
SUFFIX = ".vhd"
# Seconds after which a store file's mtime is trusted to show every write: one clock tick may
# stamp two writes alike. Sub-second mtimes mean a fine file system clock; whole ones, a coarse one.
SETTLE_FINE, SETTLE_COARSE = 0.1, 2.0
UUID_NAME = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                       r"[0-9a-fA-F]{12}")
# A uuid safe as one file name (no "/", no "."): SR.introduce and VDI.introduce take any string,
# and an SR's or VDI's uuid names its directory or file here.
_RENDERABLE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,127}")
_VDI_NAMESPACE = _uuid.UUID("4bd7e8a2-8c55-4b65-9d4e-0a5f3c1e7d90")  # ids of odd VDI uuids

Key = tuple[str, str]  # (SR uuid, VDI uuid)


def is_file_sr(db: Any, sr: str) -> bool:
    """Whether ``sr`` is of a file-based type (VHD files in a mounted directory)."""
    try:
        return driver_class(db.get("SR", sr)["type"]).file_based
    except ApiError:
        return False


def is_attached(db: Any, sr: str) -> bool:
    return any(db.get("PBD", p)["currently_attached"] for p in db.get("SR", sr)["PBDs"])


def unique_id(vdi_uuid: str) -> bytes:
    """The footer unique id of a VDI's rendered VHD: its uuid, or one derived from it."""
    try:
        return _uuid.UUID(vdi_uuid).bytes
    except ValueError:
        return _uuid.uuid5(_VDI_NAMESPACE, vdi_uuid).bytes


@dataclass(frozen=True)
class Rendered:
    """A VHD file the simulator wrote: what it was made from and how it was left."""

    source: tuple[int, ...] | None  # store (mtime_ns, size, inode, virtual size) it was made of
    file: tuple[int, int]  # the .vhd's (mtime_ns, size) as written
    settled: bool = True  # False: the store changed so recently that a write may hide in its mtime


@dataclass
class _Plan:
    """One file SR as the database shows it, handed to the worker thread."""

    uuid: str
    attached: bool
    vdis: dict[str, int]  # VDI uuid -> virtual size
    stale: dict[str, Rendered]  # rendered files of VDIs no longer in the SR


@dataclass
class Outcome:
    """What a refresh did and saw: renderings made, and rendered files others removed or changed."""

    rendered: dict[Key, Rendered] = field(default_factory=dict)
    vanished: set[Key] = field(default_factory=set)
    changed: set[Key] = field(default_factory=set)
    dropped: set[Key] = field(default_factory=set)


def stat_or_none(path: str | Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def file_key(info: os.stat_result) -> tuple[int, int]:
    return info.st_mtime_ns, info.st_size


class SrMounts:
    """The sr-mount directories of one pool and the record of what was rendered into them."""

    def __init__(self, xapi: Xapi) -> None:
        self.xapi = xapi
        self.records: dict[Key, Rendered] = {}
        self._lock: asyncio.Lock | None = None
        self._root: Path | None = None

    # -- where things are ---------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The dom0 root (resolved once, on the loop, before any worker thread needs it)."""
        if self._root is None:
            from .plugins import dom0_of  # plugins imports this module

            self._root = dom0_of(self.xapi).root
        return self._root

    @staticmethod
    def has_place(sr_uuid: str) -> bool:
        """Whether the SR's uuid can name its directory (one plain name): an SR introduced with
        a uuid such as "../../x" gets no directory at all, rather than one outside the roots."""
        return bool(_RENDERABLE.fullmatch(sr_uuid))

    def mount_path(self, sr_uuid: str) -> Path:
        """Raises ValueError for a uuid that cannot name a directory (see :meth:`has_place`)."""
        if not self.has_place(sr_uuid):
            raise ValueError(f"SR uuid {sr_uuid!r} cannot name an sr-mount directory")
        return self.root / SR_MOUNT / sr_uuid

    def parked_path(self, sr_uuid: str) -> Path:
        """Raises ValueError for a uuid that cannot name a directory (see :meth:`has_place`)."""
        if not self.has_place(sr_uuid):
            raise ValueError(f"SR uuid {sr_uuid!r} cannot name a parked sr-mount directory")
        return self.xapi.state_dir / PARKED / sr_uuid

    def _inside_root(self, path: Path) -> bool:
        """Whether ``path``, its symlinks resolved as far as they exist, stays in the dom0 root."""
        return os.path.realpath(path).startswith(str(self.root) + os.sep)

    def mounted(self, sr_uuid: str) -> Path | None:
        """The SR's mount directory if it is one: a real directory inside the dom0 root."""
        if not self.has_place(sr_uuid):
            return None
        mount = self.mount_path(sr_uuid)
        if mount.is_symlink() or not mount.is_dir() or not self._inside_root(mount):
            return None
        return mount

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    # -- attach and detach (called on the loop, right when a PBD changes) -------------------------

    def attach(self, sr_uuid: str) -> bool:
        """Make the SR's mount directory, moving its parked files back; False if it cannot be."""
        if not self.has_place(sr_uuid):
            LOG.warning("SR uuid %r cannot name a directory; the SR is not shown in dom0", sr_uuid)
            return False
        mount, parked = self.mount_path(sr_uuid), self.parked_path(sr_uuid)
        if not self._inside_root(mount):  # checked before anything is made: var/run may be a link
            LOG.warning("%s leads outside the dom0 root; SR %s is not shown", mount, sr_uuid)
            return False
        mount.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(mount) and (mount.is_symlink() or not mount.is_dir()):
            LOG.warning("%s is not a directory; SR %s is not shown there", mount, sr_uuid)
            return False
        if parked.is_dir() and not parked.is_symlink():
            if not os.path.lexists(mount):
                try:
                    os.rename(parked, mount)
                    return True
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
            mount.mkdir(exist_ok=True)
            _move_entries(parked, mount)
            return True
        mount.mkdir(exist_ok=True)
        return True

    def detach(self, sr_uuid: str) -> None:
        """Move the SR's mount directory to its parked place (the SR's storage)."""
        mount = self.mounted(sr_uuid)
        if mount is None:
            return
        parked = self.parked_path(sr_uuid)
        parked.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(parked):
            try:
                os.rename(mount, parked)
                return
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
            parked.mkdir()
        _move_entries(mount, parked)

    # -- VDI and SR life cycle --------------------------------------------------------------------

    def remove_vdi(self, sr_uuid: str, vdi_uuid: str) -> None:
        """VDI.destroy: delete the VDI's VHD file, mounted or parked (FileVDI.delete unlinks it)."""
        self.records.pop((sr_uuid, vdi_uuid), None)
        if not _RENDERABLE.fullmatch(vdi_uuid) or not self.has_place(sr_uuid):
            return
        for directory in (self.mounted(sr_uuid), self.parked_path(sr_uuid)):
            if directory is None or directory.is_symlink():
                continue
            path = directory / (vdi_uuid + SUFFIX)
            info = stat_or_none(path)
            if info is not None and stat.S_ISREG(info.st_mode):
                path.unlink()

    def release(self, sr_uuid: str, vdi_uuid: str | None = None) -> None:
        """VDI.forget or SR.forget: the files stay, and are no longer the simulator's to manage."""
        for key in [k for k in self.records
                    if k[0] == sr_uuid and (vdi_uuid is None or k[1] == vdi_uuid)]:
            del self.records[key]

    def delete_sr(self, sr_uuid: str, vdi_uuids: set[str]) -> None:
        """SR.destroy: delete the VDIs' files and the simulator's renderings, then the parked
        directory if nothing else is left in it (what others put there stays)."""
        self.detach(sr_uuid)
        for vdi in vdi_uuids:
            self.remove_vdi(sr_uuid, vdi)
        if not self.has_place(sr_uuid):
            self.release(sr_uuid)
            return
        directory = self.parked_path(sr_uuid)
        for name, info in vhd_files(directory).items():
            record = self.records.get((sr_uuid, name[: -len(SUFFIX)]))
            if record is not None and record.file == file_key(info):
                (directory / name).unlink()
        self.release(sr_uuid)
        try:
            directory.rmdir()
        except OSError:
            if directory.exists():
                LOG.info("SR %s destroyed; %s keeps what others left in it", sr_uuid, directory)

    # -- rendering ----------------------------------------------------------------------------

    def _plans(self) -> list[_Plan]:
        db = self.xapi.db
        plans = []
        for sr, record in db.all("SR").items():
            if not is_file_sr(db, sr):
                continue
            vdis = {db.get("VDI", v)["uuid"]: int(db.get("VDI", v)["virtual_size"])
                    for v in record["VDIs"]}
            stale = {k[1]: r for k, r in self.records.items()
                     if k[0] == record["uuid"] and k[1] not in vdis}
            plans.append(_Plan(record["uuid"], is_attached(db, sr), vdis, stale))
        return plans

    async def sync(self) -> None:
        """Bring every attached file SR's directory up to date (renderings in a worker thread);
        park the directories of detached ones."""
        async with self.lock:
            await self.refresh()

    async def refresh(self, thorough: bool = False) -> Outcome:
        """:meth:`sync`'s work, for a caller already holding :attr:`lock`. ``thorough`` (for a
        scan) also looks for rendered files that someone rewrote, which costs a stat per VDI."""
        plans = self._plans()
        if not plans:
            return Outcome()
        self.root  # noqa: B018 - resolved here, on the loop, for the worker thread
        records = dict(self.records)
        outcome = await asyncio.to_thread(self._work, plans, records, thorough)
        db = self.xapi.db
        for key, record in outcome.rendered.items():
            ref = db.by_uuid["VDI"].get(key[1])
            sr = db.all("SR").get(db.get("VDI", ref)["SR"]) if ref else None
            if sr is not None and sr["uuid"] == key[0]:
                self.records[key] = record
            else:  # destroyed while it was being rendered
                self._unlink_if_ours(key, record)
        for key in outcome.dropped:
            self.records.pop(key, None)
        return outcome

    def _unlink_if_ours(self, key: Key, record: Rendered) -> None:
        mount = self.mounted(key[0])
        if mount is None:
            return
        path = mount / (key[1] + SUFFIX)
        info = stat_or_none(path)
        if info is not None and file_key(info) == record.file:
            path.unlink()

    def _work(self, plans: list[_Plan], records: dict[Key, Rendered],
              thorough: bool) -> Outcome:
        """The worker thread's part: park, mount, render, and note what others changed."""
        outcome = Outcome()
        # Store paths as plain strings, in the VdiStore's naming: pathlib would be most of the
        # cost of a sync that finds nothing to do.
        probe = "00000000-probe"
        store_prefix, _, store_suffix = str(self.xapi.vdis.path(probe)).rpartition(probe)
        for plan in plans:
            try:
                self._work_on(plan, records, thorough, outcome, store_prefix, store_suffix)
            except OSError as exc:  # e.g. a PBD plugged meanwhile moved the directory
                LOG.warning("SR %s: its sr-mount directory could not be brought up to date: %s",
                            plan.uuid, exc)
        return outcome

    def _work_on(self, plan: _Plan, records: dict[Key, Rendered], thorough: bool,
                 outcome: Outcome, store_prefix: str, store_suffix: str) -> None:
        if not plan.attached:
            self.detach(plan.uuid)
            return
        mount = self.mounted(plan.uuid) if self.attach(plan.uuid) else None
        if mount is None:
            return
        for vdi, record in plan.stale.items():
            outcome.dropped.add((plan.uuid, vdi))
            self._unlink_if_ours((plan.uuid, vdi), record)
        directory = os.fspath(mount)
        names = set(os.listdir(directory))  # one call tells which rendered files vanished
        for vdi, size in plan.vdis.items():
            if _RENDERABLE.fullmatch(vdi):
                name = vdi + SUFFIX
                self._sync_vdi(f"{store_prefix}{vdi}{store_suffix}", f"{directory}/{name}",
                               name in names, (plan.uuid, vdi), size,
                               records.get((plan.uuid, vdi)), thorough, outcome)

    @staticmethod
    def _sync_vdi(store: str, target: str, present: bool, key: Key, size: int,
                  record: Rendered | None, thorough: bool, outcome: Outcome) -> None:
        source = stat_or_none(store)
        source_key = (source.st_mtime_ns, source.st_size, source.st_ino, size) if source else None
        if record is not None:
            if not present:
                outcome.vanished.add(key)
                return
            if source_key == record.source:
                if record.settled and not thorough:
                    return  # the common case: one stat of the store file, nothing to do
                current = stat_or_none(target)
                if current is None:
                    outcome.vanished.add(key)
                    return
                if file_key(current) != record.file:
                    outcome.changed.add(key)  # a plugin rewrote it: the next scan reads it
                    return
                if record.settled:
                    return
        current = stat_or_none(target)
        if current is not None and not stat.S_ISREG(current.st_mode):
            return  # a directory or symlink someone made there: not ours to replace
        try:
            written = _render(store if source else None, size, key[1], target)
        except (VhdError, OSError) as exc:
            LOG.warning("VDI %s is not shown in SR %s: %s", key[1], key[0], exc)
            return
        outcome.rendered[key] = Rendered(source_key, file_key(written), _settled(source))


def _settled(source: os.stat_result | None) -> bool:
    """Whether the store file's mtime is old enough to show every write made to it."""
    if source is None:
        return True
    fine = source.st_mtime_ns % 1_000_000_000 != 0
    settle = SETTLE_FINE if fine else SETTLE_COARSE
    return time.time_ns() - source.st_mtime_ns > settle * 1e9


def vhd_files(directory: Path, log: bool = False) -> dict[str, os.stat_result]:
    """Regular files ``<uuid>.vhd`` of ``directory`` (dot files, like staging areas, are not)."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    found = {}
    for name in names:
        if not name.endswith(SUFFIX) or name.startswith("."):
            continue
        if not UUID_NAME.fullmatch(name[: -len(SUFFIX)]):
            if log:
                LOG.warning("scan of %s skips %s: the name is not <uuid>.vhd", directory, name)
            continue
        info = stat_or_none(directory / name)
        if info is not None and stat.S_ISREG(info.st_mode):
            found[name] = info
    return found


def _render(store: str | None, size: int, vdi: str, target: str) -> os.stat_result:
    """Write the VDI's bytes as a dynamic VHD at ``target`` (temporary file, then rename)."""
    mtime = os.stat(store).st_mtime if store is not None else time.time()
    footer = Footer(size, unique_id=unique_id(vdi), timestamp=max(0, int(mtime) - VHD_EPOCH))
    fd, temporary = tempfile.mkstemp(prefix=f".{vdi}.", suffix=".tmp",
                                     dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as out:
            if store is None:
                layout = DynamicLayout(size, [], footer=footer)
                out.write(layout.prologue() + layout.epilogue())
            else:
                with VhdSource(store, size, footer=footer) as source:
                    for chunk in source.chunks():
                        out.write(chunk)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return os.stat(target)


def _move_entries(source: Path, target: Path) -> None:
    """Move what ``source`` holds into ``target`` (names taken there stay), then drop
    ``source`` if that left it empty."""
    for name in os.listdir(source):
        if os.path.lexists(target / name):
            LOG.warning("%s is in both %s and %s; the first stays where it is", name, source,
                        target)
            continue
        shutil.move(str(source / name), str(target / name))
    with contextlib.suppress(OSError):
        source.rmdir()


_MOUNTS: weakref.WeakKeyDictionary[Xapi, SrMounts] = weakref.WeakKeyDictionary()


def mounts_of(xapi: Xapi) -> SrMounts:
    """The sr-mount directories of ``xapi``'s pool, made on first use."""
    mounts = _MOUNTS.get(xapi)
    if mounts is None:
        mounts = _MOUNTS[xapi] = SrMounts(xapi)
    return mounts
