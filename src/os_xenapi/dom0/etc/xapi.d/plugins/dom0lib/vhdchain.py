"""VHD chains in a staging area: number them, give them VDI UUIDs, relink, check, move into the SR.

An image or a migrated disk arrives as 0.vhd (the leaf), 1.vhd (its parent)... (or in the
old snap/image/base.vhd names). import_vhds() renames them to the UUIDs the caller chose,
points each at its parent with `vhd-util modify`, checks the leaf and every parent with
vhd-util, and only then moves them into the SR, without ever replacing a file there. The
SR's storage manager must not see half an import, which is why all of this happens in
staging first (as in os-xenapi 0.3.4).
"""

import os
import re

from dom0lib import commands
from dom0lib.errors import BAD_DATA, InvalidArgument, PluginError
from dom0lib.logs import get_logger

# The storage manager refuses longer chains (xapi-project/sm vhdutil.MAX_CHAIN_SIZE).
MAX_CHAIN = 30
VHD_UTIL_TIMEOUT = 300.0
# vhd-util query and check exit with 22 (EINVAL) when they report a problem on stdout, and
# with 2 (ENOENT) when a parent named in the chain cannot be found.
_VHD_UTIL_OK = (0, 2, 22)
OLD_STYLE_NAMES = ("snap.vhd", "image.vhd", "base.vhd")
# Kept out of the chain: 0.3.4-era images carried a swap disk, which is now made on the fly.
SWAP_NAME = "swap.vhd"
_NUMBERED = re.compile(r"(0|[1-9][0-9]{0,2})\.vhd")
LOG = get_logger("vhdchain")


def number_old_style(staging: str) -> None:
    """Rename snap.vhd, image.vhd, base.vhd (old images) to 0.vhd, 1.vhd, 2.vhd, and a single
    VHD of any other name to 0.vhd, as os-xenapi 0.3.4 did."""
    number = 0
    for name in OLD_STYLE_NAMES:
        path = os.path.join(staging, name)
        if os.path.isfile(path):
            os.rename(path, os.path.join(staging, f"{number}.vhd"))
            number += 1
    entries = os.listdir(staging)
    if len(entries) == 1 and entries[0].endswith(".vhd") and entries[0] != "0.vhd":
        os.rename(os.path.join(staging, entries[0]), os.path.join(staging, "0.vhd"))


def sequenced(staging: str) -> list:
    """Return the staged chain [0.vhd, 1.vhd, ...] (leaf first).

    Raises PluginError BAD_DATA if there is none, a number is missing, or it is too long.
    """
    numbers = []
    for name in os.listdir(staging):
        if name == SWAP_NAME or not name.endswith(".vhd"):
            continue
        if not _NUMBERED.fullmatch(name) or not os.path.isfile(os.path.join(staging, name)):
            raise PluginError(BAD_DATA, "VHD chain", "unexpected file " + name[:64])
        numbers.append(int(name[:-4]))
    if not numbers:
        raise PluginError(BAD_DATA, "VHD chain", "holds no VHD")
    if sorted(numbers) != list(range(len(numbers))):
        raise PluginError(BAD_DATA, "VHD chain",
                          f"is not numbered 0.vhd to {len(numbers) - 1}.vhd without gaps")
    if len(numbers) > MAX_CHAIN:
        raise PluginError(BAD_DATA, "VHD chain", f"is longer than {MAX_CHAIN} VHDs")
    return [os.path.join(staging, f"{number}.vhd") for number in range(len(numbers))]


def _vhd_util(*args, ok_codes=(0,)):
    return commands.run(["vhd-util"] + list(args), timeout=VHD_UTIL_TIMEOUT,
                        ok_codes=ok_codes).stdout


def _first_line(output):
    lines = output.strip().splitlines()
    return lines[0].strip() if lines else ""


def _check_line(path):
    """The first line `vhd-util check` prints, without the path (which could hold any word)."""
    output = _vhd_util("check", "-n", path, "-p", ok_codes=_VHD_UTIL_OK)
    return _first_line(output).replace(path, "")


def _inside(path, directories):
    real = os.path.realpath(path)
    return any(real.startswith(os.path.realpath(directory) + os.sep) for directory in directories)


def parent_of(path: str, directories: list):
    """Return the parent VHD path vhd-util reports for path, or None for a base VHD.

    The parent must lie inside one of directories: a VHD names its own parent, and a crafted
    one must not make the plugin open files elsewhere. Raises PluginError BAD_DATA.
    """
    line = _first_line(_vhd_util("query", "-n", path, "-p", ok_codes=_VHD_UTIL_OK))
    if "has no parent" in line:
        return None
    if "query failed" in line or not line.endswith(".vhd"):
        raise PluginError(BAD_DATA, os.path.basename(path), "its parent VHD is missing")
    if not _inside(line, directories):
        raise PluginError(BAD_DATA, os.path.basename(path), "names a parent outside the chain")
    return line


def check_vhd(path: str) -> None:
    """Check one VHD with `vhd-util check`; if it is invalid, repair it once and check again.

    Raises PluginError BAD_DATA saying which part is invalid (a footer timestamp in the
    future usually means the two hosts' clocks differ).
    """
    line = _check_line(path)
    if "invalid" in line:
        LOG.warning("%s is invalid, repairing it once", os.path.basename(path))
        _vhd_util("repair", "-n", path)
        line = _check_line(path)
    if "invalid" not in line:
        return
    part = next((word for word in ("footer", "header") if word in line), "metadata")
    reason = "invalid {}: {}".format(part, line.split(":", 1)[-1].strip()[:200])
    if "timestamp" in line or "in future" in line:
        reason += " (check that both hosts' clocks are right)"
    raise PluginError(BAD_DATA, os.path.basename(path), reason)


def check_chain(leaf: str, directories: list) -> None:
    """Check that the leaf is not hidden and that it and every parent are valid VHDs."""
    if re.search(r"hidden:\s*1", _vhd_util("query", "-n", leaf, "-f", ok_codes=_VHD_UTIL_OK)):
        raise PluginError(BAD_DATA, os.path.basename(leaf), "is hidden (a base copy, not a leaf)")
    current = leaf
    for _ in range(MAX_CHAIN):
        check_vhd(current)
        current = parent_of(current, directories)
        if current is None:
            return
    raise PluginError(BAD_DATA, os.path.basename(leaf),
                      f"has a parent chain longer than {MAX_CHAIN} (or a loop)")


def chosen_uuids(sr_dir: str, uuid_stack: list, count: int) -> list:
    """The UUIDs the chain's VHDs get, leaf first: taken from the end of uuid_stack, as 0.3.4
    popped them. Raises InvalidArgument if there are too few, or one is taken in the SR."""
    if len(uuid_stack) < count:
        raise InvalidArgument("uuid_stack",
                              f"has {len(uuid_stack)} UUIDs for a chain of {count} VHDs")
    chosen = [uuid.lower() for uuid in reversed(uuid_stack[-count:])]
    if len(set(chosen)) != count:
        raise InvalidArgument("uuid_stack", "repeats a UUID")
    for uuid in chosen:
        if os.path.lexists(os.path.join(sr_dir, uuid + ".vhd")):
            raise InvalidArgument("uuid_stack", f"names VDI {uuid}, which the SR already holds")
    return chosen


def _move_into_sr(staged, sr_dir):
    """Link each file into the SR (link never replaces a file), then drop the staged name;
    on failure remove what was already linked, so the SR is as before."""
    done = []
    try:
        for path in staged:
            target = os.path.join(sr_dir, os.path.basename(path))
            os.link(path, target)
            done.append(target)
    except BaseException:
        for target in done:
            os.unlink(target)
        raise
    for path in staged:
        os.unlink(path)


def import_vhds(sr_dir: str, staging: str, uuid_stack: list) -> str:
    """Import the chain staged as 0.vhd, 1.vhd... into the SR; return the leaf's new UUID.

    Nothing in the SR changes unless every check passes. Raises InvalidArgument (uuid_stack)
    or PluginError BAD_DATA or COMMAND_*.
    """
    number_old_style(staging)
    chain = sequenced(staging)
    uuids = chosen_uuids(sr_dir, uuid_stack, len(chain))
    renamed = []
    for path, uuid in zip(chain, uuids):
        target = os.path.join(staging, uuid + ".vhd")
        os.rename(path, target)
        renamed.append(target)
    # Parents first: each child then points at a parent that already has its final name.
    for child, parent in reversed(list(zip(renamed, renamed[1:]))):
        _vhd_util("modify", "-n", child, "-p", parent)
    check_chain(renamed[0], [staging])
    _move_into_sr(renamed, sr_dir)
    LOG.info("imported a chain of %d VHDs, leaf %s", len(renamed), uuids[0])
    return uuids[0]
