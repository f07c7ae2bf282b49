"""Block devices in dom0: the device names plugins accept, their /dev paths, waiting for them.

A plugin only ever touches the disks XAPI plugs into dom0 (xvd*), SCSI disks (sd*) and
network block devices (nbd*); any other name, and any name with a path in it, is refused
by the types here before it is joined to /dev.
"""

import os
import time

from dom0lib.errors import BAD_DATA, NOT_FOUND, PluginError
from dom0lib.paths import host_path
from dom0lib.validate import Invalid, Str

POLL_SECONDS = 0.1
# A whole disk: xvdb, xvdaa, sdc, nbd0.
_DISK = r"(xvd[a-z]{1,2}|sd[a-z]{1,2}|nbd[0-9]{1,3})"
DEVICE = Str(6, _DISK, what="a disk name: xvd<letters>, sd<letters> or nbd<number>, "
                           "such as xvdb")
# A disk or one of its partitions under /dev: /dev/xvdb, /dev/xvdb1, /dev/nbd0p1.
DEVICE_PATH = Str(16, r"/dev/(xvd[a-z]{1,2}[0-9]{0,3}|sd[a-z]{1,2}[0-9]{0,3}|"
                      r"nbd[0-9]{1,3}(p[0-9]{1,3})?)",
                  what="a disk or partition path such as /dev/xvdb or /dev/xvdb1")


def checked_device(name: str, what: str = "device") -> str:
    """Return name if it is an acceptable disk name (one XAPI reported, for example).

    Raises PluginError BAD_DATA otherwise: such a name did not come from the caller.
    """
    try:
        return DEVICE.check(name)
    except Invalid as exc:
        raise PluginError(BAD_DATA, what, str(exc)) from None


def dev_path(device: str) -> str:
    """The real path of /dev/<device> (through DOM0_ROOT); device must be a checked name."""
    return host_path("/dev/" + DEVICE.check(device))


def wait_for(path: str, max_seconds: float) -> bool:
    """Wait up to max_seconds for path to exist; return whether it does."""
    deadline = time.monotonic() + max_seconds
    for _ in range(int(max_seconds / POLL_SECONDS) + 2):
        if os.path.exists(path):
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    return os.path.exists(path)


def require(path: str, what: str, shown: str) -> str:
    """Return path if it exists; raise PluginError NOT_FOUND naming shown (the dom0 path)."""
    if not os.path.exists(path):
        raise PluginError(NOT_FOUND, what, shown)
    return path
