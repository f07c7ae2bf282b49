#!/usr/bin/python3 -B
"""dom0_plugin_version: which version of the plugin API this dom0 has installed.

Clients call get_version when they connect and refuse a different major version.

Version history (1.x-2.1 are os-xenapi's pickle-based plugins, kept for the record):
  1.0  initial version
  1.1  GC status call (xenhost.query_gc)
  1.2  PCI passthrough (get_pci_device_details, get_pci_type)
  1.3  glance functions that take a URL (vhd2)
  1.4  Glance v2
  1.5  OVS network configuration (xenhost.network_config)
  1.6  Linux bridge network configuration
  1.7  partition utilities
  1.8  plugin files named with a .py suffix
  2.0  the suffix-less plugin files removed
  2.1  ovs_create_port
  3.0  JSON protocol: params is {"args": [...], "kwargs": {...}} in JSON, results are JSON,
       every argument validated, errors are OS_XENAPI_* codes; Python 3; no shell.
       The functions 0.3.4 took with plain string arguments take them too, checked alike,
       and answer 0.3.4's text. xenhost gains host_maintenance_mode; host_join uses
       pool.join through XAPI sessions only.
"""

import dom0lib
import XenAPIPlugin

PLUGIN_VERSION = "3.0"


@dom0lib.takes()
def get_version(ctx):
    """Return the plugin API version, "major.minor"."""
    return PLUGIN_VERSION


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register("dom0_plugin_version", get_version))
