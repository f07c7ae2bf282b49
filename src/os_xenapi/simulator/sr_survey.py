"""What SR.scan finds in a file SR's sr-mount directory: the dom0 half of FileSR's scan.

SM's FileSR builds its VDI list from the ``*.vhd`` files of the SR's directory
(``vhdutil.getAllVHDs``): the VDI uuid is the file name, ``virtual_size`` the footer's size,
``physical_utilisation`` the file's size; a differencing disk gets ``sm_config["vhd-parent"]`` =
its parent's uuid, a parent is read-only, a hidden disk is unmanaged and a hidden leaf is ignored.
Records whose file is gone are forgotten (``ScanRecord.synchronise_gone``).

:func:`survey` does the file side of that for the simulator: after a refresh of the renderings
(:mod:`.sr_mount`) it reads every regular ``<uuid>.vhd`` of the directory in a worker thread,
resolves each chain (:mod:`.vhd_chain`; every parent must also be a ``<uuid>.vhd`` of the SR),
and flattens each new VHD (and each VDI file a plugin rewrote) into a staged file next to the
VdiStore's. The caller (``ops/sr_backend.py``) makes the records and calls :func:`adopt` (the
staged file becomes the VDI's store file) or :func:`discard` for each :class:`Found`.

Unlike SM, which fails the whole scan (SRScan, 40) on a file vhd-util cannot read, the simulator
skips such a file with a log line, as it skips a VHD whose parent is missing or is another disk;
nothing in the directory is changed or removed by a scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .sr_mount import SUFFIX, UUID_NAME, Rendered, SrMounts, file_key, vhd_files
from .vhd import VhdError
from .vhd_chain import VhdImage, flatten, open_chain, open_image

LOG = logging.getLogger(__name__)


@dataclass
class Found:
    """A VHD that SR.scan makes (or re-reads) a VDI from; its bytes wait in ``staged``."""

    uuid: str
    virtual_size: int
    physical_utilisation: int  # the VHD file's size, as SM reports it
    parent: str  # the parent's uuid ("" for a base), for sm_config vhd-parent
    hidden: bool
    read_only: bool  # a parent of another VHD in the SR
    staged: str  # the flattened bytes, until adopted or discarded
    file: tuple[int, int]  # the VHD file's (mtime_ns, size) when it was read


@dataclass
class Survey:
    """What a scan found in one SR's directory."""

    gone: list[str] = field(default_factory=list)  # VDIs whose rendered file vanished
    found: list[Found] = field(default_factory=list)  # new VHDs, parents first
    changed: list[Found] = field(default_factory=list)  # VDIs whose file someone rewrote
    parents: set[str] = field(default_factory=set)  # uuids of VHDs another VHD has as parent


async def survey(mounts: SrMounts, sr_uuid: str, known: set[str], taken: set[str]) -> Survey:
    """Refresh the renderings, then read the SR's directory. ``known`` are the SR's VDI uuids,
    ``taken`` every VDI uuid of the pool (a VHD named after another SR's VDI is skipped)."""
    async with mounts.lock:
        outcome = await mounts.refresh(thorough=True)
        changed = {k[1] for k in outcome.changed if k[0] == sr_uuid}
        found = await asyncio.to_thread(_read, mounts, sr_uuid, known, taken, changed)
        found.gone = sorted(k[1] for k in outcome.vanished if k[0] == sr_uuid)
        return found


def _read(mounts: SrMounts, sr_uuid: str, known: set[str], taken: set[str],
          changed: set[str]) -> Survey:
    result = Survey()
    mount = mounts.mounted(sr_uuid)
    if mount is None:
        return result
    chains: dict[str, list[VhdImage]] = {}
    for name in vhd_files(mount, log=True):
        try:
            chains[name[: -len(SUFFIX)]] = _chain_of(mount, name)
        except (VhdError, OSError) as exc:
            LOG.warning("SR %s scan skips %s", sr_uuid, exc)
    result.parents = {_stem(chain[1]) for chain in chains.values() if len(chain) > 1}
    # Shortest chains first, so that a VDI's vhd-parent always names a VDI made before it.
    for stem in sorted(chains, key=lambda s: len(chains[s])):
        chain = chains[stem]
        if stem in known and stem not in changed:
            continue
        if stem not in known and stem in taken:
            LOG.warning("SR %s scan skips %s: VDI %s is in another SR", sr_uuid, stem + SUFFIX,
                        stem)
            continue
        if chain[0].hidden and stem not in result.parents:
            LOG.info("SR %s scan ignores %s, a hidden leaf", sr_uuid, stem + SUFFIX)
            continue
        staged = _stage(mounts, stem, chain, stem in result.parents)
        (result.changed if stem in known else result.found).append(staged)
    return result


def _chain_of(mount: Path, name: str) -> list[VhdImage]:
    """The chain of ``name``, every parent also a ``<uuid>.vhd`` of the SR."""
    chain = open_chain(str(mount), name)
    for image in chain[1:]:
        parent = os.path.basename(image.path)
        if not (parent.endswith(SUFFIX) and UUID_NAME.fullmatch(parent[: -len(SUFFIX)])):
            raise VhdError(f"{name}: its parent {parent} is not a <uuid>.vhd of the SR")
    return chain


def _stem(image: VhdImage) -> str:
    return os.path.basename(image.path)[: -len(SUFFIX)]


def _stage(mounts: SrMounts, stem: str, chain: list[VhdImage], read_only: bool) -> Found:
    """Flatten ``chain`` into a new file beside the VdiStore's (same file system: a rename
    makes it the VDI's)."""
    fd, staged = tempfile.mkstemp(prefix=".scan-", dir=mounts.xapi.vdis.root)
    os.close(fd)
    try:
        flatten(chain, staged)
    except BaseException:
        os.unlink(staged)
        raise
    leaf = chain[0]
    info = os.stat(leaf.path)
    return Found(stem, leaf.size, info.st_size, _stem(chain[1]) if len(chain) > 1 else "",
                 leaf.hidden, read_only, staged, file_key(info))


def adopt(mounts: SrMounts, sr_uuid: str, found: Found) -> None:
    """Make a Found's staged bytes the VDI's store file; its VHD file is then up to date."""
    store = mounts.xapi.vdis.path(found.uuid)
    os.replace(found.staged, store)
    info = os.stat(store)
    source = (info.st_mtime_ns, info.st_size, info.st_ino, found.virtual_size)
    mounts.records[(sr_uuid, found.uuid)] = Rendered(source, found.file)


def discard(found: Found) -> None:
    """Drop a Found's staged bytes (its VHD stays in the SR's directory)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(found.staged)


def leftover_vhds(mounts: SrMounts, sr_uuid: str, leaving: set[str]) -> list[str]:
    """VHD files of the (detached) SR that are neither a VDI in ``leaving`` nor a rendering of
    the simulator's: what makes SM's FileSR.delete refuse with SRNotEmpty (hidden leaves aside)."""
    mounts.detach(sr_uuid)
    if not mounts.has_place(sr_uuid):
        return []
    directory = mounts.parked_path(sr_uuid)
    left = []
    for name, info in vhd_files(directory).items():
        stem = name[: -len(SUFFIX)]
        record = mounts.records.get((sr_uuid, stem))
        if stem in leaving or (record is not None and record.file == file_key(info)):
            continue
        try:
            image = open_image(str(directory / name))
        except (VhdError, OSError):
            continue
        if not image.hidden:
            left.append(name)
    return left
