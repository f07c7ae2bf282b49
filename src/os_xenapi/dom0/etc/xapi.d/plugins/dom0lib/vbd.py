"""A VDI plugged into dom0 for the length of a with block, through the caller's XAPI session.

attached_to_dom0() creates a VBD from dom0 (the host's control domain) to the VDI, plugs
it, and yields the device name XAPI gave it (xvdb...). Whatever happens in the block, the
VBD is unplugged (retrying while the kernel still holds the device, then forcing) and
destroyed: a plugin never leaves a VBD behind without saying so. If the block failed, its
error is the one raised and a cleanup failure is only logged; if the block succeeded, a
cleanup failure raises OS_XENAPI_CLEANUP_FAILED naming the VBD to remove by hand.
"""

import contextlib
import time

import XenAPI

from dom0lib import devices
from dom0lib.errors import CLEANUP_FAILED, PluginError
from dom0lib.logs import get_logger

# XAPI refuses an unplug (DEVICE_DETACH_REJECTED) while dom0's kernel still uses the
# device; os-xenapi 0.3.4 retried every second for 30 seconds, and so does this.
UNPLUG_ATTEMPTS = 30
UNPLUG_RETRY_SECONDS = 1.0
LOG = get_logger("vbd")


def _error_code(exc):
    details = getattr(exc, "details", None) or [""]
    return str(details[0])


def _unplug(xapi, vbd):
    """Unplug, retrying while XAPI rejects the detach; force it if that never succeeds."""
    for attempt in range(UNPLUG_ATTEMPTS):
        try:
            xapi.VBD.unplug(vbd)
            return
        except XenAPI.Failure as exc:
            code = _error_code(exc)
            if code == "DEVICE_ALREADY_DETACHED":
                return
            if code != "DEVICE_DETACH_REJECTED":
                LOG.warning("VBD.unplug failed (%s); forcing the unplug", code)
                break
        if attempt + 1 < UNPLUG_ATTEMPTS:
            time.sleep(UNPLUG_RETRY_SECONDS)
    else:
        LOG.warning("VBD.unplug still rejected after %d attempts; forcing it", UNPLUG_ATTEMPTS)
    try:
        xapi.VBD.unplug_force(vbd)
    except XenAPI.Failure as exc:
        if _error_code(exc) != "DEVICE_ALREADY_DETACHED":
            raise


def _remove(xapi, vbd, plugged):
    """Unplug (if plugged) and destroy the VBD; return None, or the XAPI error that stopped it."""
    try:
        if plugged:
            _unplug(xapi, vbd)
        xapi.VBD.destroy(vbd)
    except XenAPI.Failure as exc:
        LOG.error("could not remove VBD %s from dom0: %s", vbd, exc.details)
        return exc
    return None


@contextlib.contextmanager
def attached_to_dom0(xapi, host_ref: str, vdi_ref: str, read_only: bool = True):
    """Plug vdi_ref into this host's dom0 and yield its device name (such as "xvdb").

    XAPI's errors (VDI in use, no free device...) pass through unchanged. Raises PluginError
    BAD_DATA for a device name that is not a disk's, CLEANUP_FAILED as described above.
    """
    dom0 = xapi.host.get_control_domain(host_ref)
    vbd = xapi.VBD.create({
        "VM": dom0, "VDI": vdi_ref, "userdevice": "autodetect", "bootable": False,
        "mode": "RO" if read_only else "RW", "type": "Disk", "unpluggable": True,
        "empty": False, "other_config": {}, "qos_algorithm_type": "",
        "qos_algorithm_params": {}})
    plugged = False
    try:
        xapi.VBD.plug(vbd)
        plugged = True
        device = devices.checked_device(xapi.VBD.get_device(vbd), "device of the VBD")
        yield device
    except BaseException:
        _remove(xapi, vbd, plugged)
        raise
    failure = _remove(xapi, vbd, plugged)
    if failure is not None:
        raise PluginError(CLEANUP_FAILED, "VBD", vbd, " ".join(str(d) for d in failure.details))
