"""SR directories and staging areas: where the VHD-moving plugins may read and write.

A file-based SR (ext, nfs) is mounted at /var/run/sr-mount/<SR uuid> and keeps one
<VDI uuid>.vhd per VDI. Plugins that import or export VHD chains (glance, migration,
workarounds, ipxe) take such an SR path from the caller, and work in a staging area: a fresh
temporary directory inside the SR itself, so that files move into the SR by rename and
reach staging by hard link, and nothing of the caller's reaches any other directory.
"""

import contextlib
import os
import shutil
import tempfile

from dom0lib import paths
from dom0lib.errors import NOT_FOUND, PluginError
from dom0lib.logs import get_logger
from dom0lib.validate import Str

SR_MOUNT = "/var/run/sr-mount"
SR_PATH = Str(64, r"/var/run/sr-mount/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                  r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
              what="an SR mount path: /var/run/sr-mount/<SR uuid>")
# Staging areas start with a dot so that no SR scan takes them (or their files) for VDIs.
STAGING_PREFIX = ".os-xenapi-staging-"
LOG = get_logger("staging")


def sr_directory(sr_path: str, argument: str = "sr_path") -> str:
    """Return the real directory of an SR path already checked against SR_PATH.

    Raises InvalidArgument if it resolves outside /var/run/sr-mount (a symlink), PluginError
    NOT_FOUND if the SR is not mounted here.
    """
    base = paths.host_path(SR_MOUNT)
    if not os.path.isdir(base):
        raise PluginError(NOT_FOUND, "SR mount", sr_path)
    real = paths.confine(base, sr_path[len(SR_MOUNT) + 1:], argument)
    if not os.path.isdir(real):
        raise PluginError(NOT_FOUND, "SR mount", sr_path)
    return real


def vhd_in_sr(sr_dir: str, vdi_uuid: str, argument: str) -> str:
    """Return the path of <vdi_uuid>.vhd in the SR: a regular file inside it.

    Raises InvalidArgument if it is a symlink out of the SR, PluginError NOT_FOUND if absent.
    """
    path = paths.confine(sr_dir, vdi_uuid + ".vhd", argument)
    if not os.path.isfile(path):
        raise PluginError(NOT_FOUND, "VHD", vdi_uuid)
    return path


def same_filesystem(first: str, second: str) -> bool:
    """Whether two existing paths are on one filesystem (so rename and link work between them)."""
    return os.stat(first).st_dev == os.stat(second).st_dev


@contextlib.contextmanager
def staging_area(parent: str):
    """A new empty directory inside parent for the duration of a with block; it is removed
    with everything in it afterwards, whatever happened."""
    path = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent)
    try:
        yield path
    finally:
        remove_tree(path)


def remove_tree(path: str) -> None:
    """Remove a staging directory and its contents; log, but do not raise, if that fails."""
    def complain(function, name, exc_info):
        LOG.warning("could not remove %s: %s", name, exc_info[1])

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=complain)


def link_chain(sr_dir: str, staging: str, vdi_uuids: list, first: int = 0,
               copy: bool = False, argument: str = "vdi_uuids") -> list:
    """Put the SR's <uuid>.vhd files into staging as <first>.vhd, <first+1>.vhd...

    Hard links by default (staging is in the SR, so no data is copied); real copies with
    copy=True, for when they must not share the SR files' inodes. Returns the staged paths.
    Raises InvalidArgument or PluginError NOT_FOUND (see vhd_in_sr), naming argument,
    before anything is staged.
    """
    sources = [vhd_in_sr(sr_dir, uuid, argument) for uuid in vdi_uuids]
    staged = []
    for number, source in enumerate(sources, first):
        target = os.path.join(staging, f"{number}.vhd")
        if copy:
            shutil.copyfile(source, target)
        else:
            os.link(source, target)
        staged.append(target)
    return staged
