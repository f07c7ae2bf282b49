#!/usr/bin/python3 -B
"""bandwidth: byte counters of every guest network interface (vif<domid>.<device>) on this host."""

import re

import dom0lib
import XenAPIPlugin
from dom0lib import paths
from dom0lib.errors import BAD_DATA, PluginError

NET_DEV = "/proc/net/dev"
MAX_NET_DEV_BYTES = 8 * 1024 * 1024
_VIF = re.compile(r"vif(\d+)\.(\d+)")


@dom0lib.takes()
def fetch_all_bandwidth(ctx):
    """Return {domid: {device: {"bw_in": bytes, "bw_out": bytes}}} from /proc/net/dev.

    In and out are seen from the guest: a vif's transmit counter is what the guest received.
    """
    text = paths.read_bounded(paths.host_path(NET_DEV), MAX_NET_DEV_BYTES,
                              what=NET_DEV).decode("ascii", "replace")
    usage = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        interface, counters = line.split(":", 1)
        match = _VIF.fullmatch(interface.strip())
        if not match:
            continue
        fields = counters.split()
        if len(fields) < 16 or not all(field.isdigit() for field in fields[:16]):
            raise PluginError(BAD_DATA, NET_DEV, "the line of " + interface.strip()
                              + " does not hold 16 counters")
        dom_id, device = match.groups()
        usage.setdefault(dom_id, {})[device] = {
            # /proc/net/dev lists 8 receive counters then 8 transmit ones; bytes come first.
            "bw_in": int(fields[8]),
            "bw_out": int(fields[0]),
        }
    return usage


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register("bandwidth", fetch_all_bandwidth))
