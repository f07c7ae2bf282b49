"""The pool a new simulator starts with: hosts, their control domains, storage, networks, templates.

Records are filled the way a freshly installed XCP-ng pool shows them, so that clients reading
``software_version``, ``API_version_*``, ``default_SR`` or the templates find what they expect.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

from .db import new_uuid
from .templates import add_templates, add_vms  # noqa: F401  (add_vms is part of this API)
from .values import DateTime

if TYPE_CHECKING:
    from .xapi import Xapi

GiB = 1024**3
MiB = 1024**2
HOST_MEMORY = 256 * GiB
DOM0_MEMORY = 4 * GiB
PRODUCT_VERSION = "8.3.0"
XAPI_VERSION = "24.19.2"
BOOTED_FOR = 600.0  # seconds between a simulated host's boot and its toolstack's start

SOFTWARE_VERSION = {
    "product_version": PRODUCT_VERSION,
    "product_version_text": "8.3",
    "product_version_text_short": "8.3",
    "platform_name": "XCP",
    "platform_version": "3.4.0",
    "product_brand": "XCP-ng",
    "build_number": "release/yangtze/master/8",
    "xapi": "24.19",
    "xapi_build": XAPI_VERSION,
    "xen": "4.17.4-3",
    "linux": "4.19.0+1",
    "xencenter_min": "2.21",
    "xencenter_max": "2.21",
    "network_backend": "openvswitch",
    "db_schema": "5.775",
}


def _mac(rng: random.Random) -> str:
    return "02:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5))


def _add_host(xapi: Xapi, index: int, address: str) -> str:
    db = xapi.db
    started = time.time()
    hostname = f"sim-host-{index + 1}"
    metrics = db.create(
        "host_metrics",
        {
            "memory_total": HOST_MEMORY,
            "live": True,
            "last_updated": DateTime.now(),
        },
    )
    host = db.create(
        "host",
        {
            "name_label": hostname,
            "name_description": "Default install",
            "hostname": hostname,
            "address": address,
            "enabled": True,
            "API_version_major": 2,
            "API_version_minor": 21,
            "API_version_vendor": "XenSource",
            "software_version": dict(SOFTWARE_VERSION, hostname=hostname),
            "metrics": metrics,
            "memory_overhead": 600 * MiB,
            "cpu_info": {
                "cpu_count": "16",
                "socket_count": "2",
                "vendor": "GenuineIntel",
                "speed": "2600.000",
                "modelname": "Intel(R) Xeon(R) CPU E5-2650 v2 @ 2.60GHz",
                "family": "6",
                "model": "62",
            },
            "capabilities": ["xen-3.0-x86_64", "hvm-3.0-x86_32", "hvm-3.0-x86_64"],
            "sched_policy": "credit",
            "iscsi_iqn": f"iqn.2026-11.org.xcp-ng:{hostname}",
            # XAPI's dbsync records boot_time (from /proc/uptime) and agent_start_time, in
            # seconds as OCaml prints a float; the simulated hosts booted BOOTED_FOR ago.
            "other_config": {"iscsi_iqn": f"iqn.2026-11.org.xcp-ng:{hostname}",
                             "boot_time": f"{started - BOOTED_FOR - 60 * index:.0f}.",
                             "agent_start_time": f"{started:.0f}."},
            "edition": "xcp-ng",
            "license_params": {"sku_type": "free"},
            "control_domain": "OpaqueRef:NULL",
        },
    )
    for number in range(16):
        db.create(
            "host_cpu",
            {
                "host": host,
                "number": number,
                "vendor": "GenuineIntel",
                "speed": 2600,
                "modelname": "Intel(R) Xeon(R) CPU E5-2650 v2 @ 2.60GHz",
                "family": 6,
                "model": 62,
                "stepping": "4",
                "utilisation": 0.02,
            },
        )
    dom0_metrics = db.create(
        "VM_metrics", {"memory_actual": DOM0_MEMORY, "VCPUs_number": 16, "state": ["running"]}
    )
    dom0 = db.create(
        "VM",
        {
            "name_label": f"Control domain on host: {hostname}",
            "name_description": "The domain which manages physical devices and manages other domains",
            "power_state": "Running",
            "is_control_domain": True,
            "is_a_template": False,
            "resident_on": host,
            "domid": 0,
            "memory_static_max": DOM0_MEMORY,
            "memory_dynamic_max": DOM0_MEMORY,
            "memory_dynamic_min": DOM0_MEMORY,
            "memory_static_min": DOM0_MEMORY,
            "memory_target": DOM0_MEMORY,
            "VCPUs_max": 16,
            "VCPUs_at_startup": 16,
            "metrics": dom0_metrics,
            "domain_type": "pv",
            "user_version": 1,
            "actions_after_shutdown": "destroy",
            "actions_after_reboot": "restart",
            "actions_after_crash": "restart",
        },
    )
    db.update("host", host, control_domain=dom0)
    return host


def _add_storage(xapi: Xapi, hosts: list[str]) -> str:
    db = xapi.db
    for sm_type, name, caps in (
        ("ext", "Local EXT3 VHD", ["SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE",
                                   "VDI_ATTACH", "VDI_DETACH", "VDI_CLONE", "VDI_SNAPSHOT",
                                   "VDI_RESIZE"]),
        ("lvm", "Local VHD on LVM", ["SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE",
                                     "VDI_ATTACH", "VDI_DETACH", "VDI_CLONE", "VDI_SNAPSHOT"]),
        ("nfs", "NFS VHD", ["SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH",
                            "VDI_DETACH", "VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE"]),
        ("lvmoiscsi", "LVHD over iSCSI", ["SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE",
                                          "VDI_ATTACH", "VDI_DETACH", "VDI_CLONE"]),
        ("iscsi", "iSCSI", ["SR_PROBE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH",
                            "VDI_INTRODUCE"]),
        ("iso", "ISO", ["VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "SR_SCAN"]),
        ("file", "Local Path VHD", ["SR_PROBE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH",
                                    "VDI_DETACH", "VDI_CLONE", "VDI_SNAPSHOT"]),
    ):
        db.create(
            "SM",
            {
                "name_label": name,
                "type": sm_type,
                "vendor": "Citrix Systems Inc",
                "copyright": "(C) 2008 Citrix Systems Inc",
                "version": "1.0",
                "required_api_version": "1.0",
                "capabilities": caps,
                "features": {c: 1 for c in caps},
                "driver_filename": f"/opt/xensource/sm/{sm_type.upper()}SR",
            },
        )
    default_sr = "OpaqueRef:NULL"
    for host in hosts:
        hostname = db.get("host", host)["hostname"]
        sr = db.create(
            "SR",
            {
                "name_label": f"Local storage on {hostname}",
                "type": "ext",
                "content_type": "user",
                "shared": False,
                "physical_size": 1024 * GiB,
                "physical_utilisation": 0,
                "virtual_allocation": 0,
                "other_config": {"i18n-key": "local-storage"},
                "sm_config": {"devserial": f"scsi-{new_uuid()}"},
            },
        )
        db.create(
            "PBD",
            {
                "host": host,
                "SR": sr,
                "device_config": {"device": "/dev/sda3"},
                "currently_attached": True,
            },
        )
        if default_sr == "OpaqueRef:NULL":
            default_sr = sr
    return default_sr


def _add_network(xapi: Xapi, hosts: list[str], rng: random.Random) -> None:
    db = xapi.db
    network = db.create(
        "network",
        {"name_label": "Pool-wide network associated with eth0", "bridge": "xenbr0", "MTU": 1500,
         "managed": True, "other_config": {"automatic": "true"}},
    )
    db.create(
        "network",
        {"name_label": "Host internal management network", "bridge": "xenapi", "MTU": 1500,
         "managed": True, "other_config": {"is_guest_installer_network": "true",
                                           "is_host_internal_management_network": "true"}},
    )
    for host in hosts:
        address = db.get("host", host)["address"]
        db.create(
            "PIF",
            {
                "device": "eth0",
                "network": network,
                "host": host,
                "MAC": _mac(rng),
                "MTU": 1500,
                "VLAN": -1,
                "physical": True,
                "currently_attached": True,
                "ip_configuration_mode": "Static",
                "IP": address,
                "netmask": "255.0.0.0",
                "gateway": "",
                "management": True,
                "managed": True,
            },
        )


def build_pool(xapi: Xapi, addresses: list[str]) -> str:
    """Create the pool, one host per address (the first is master); returns the pool ref."""
    rng = random.Random(0)
    hosts = [_add_host(xapi, i, a) for i, a in enumerate(addresses)]
    default_sr = _add_storage(xapi, hosts)
    _add_network(xapi, hosts, rng)
    pool = xapi.db.create(
        "pool",
        {
            "name_label": "",
            "master": hosts[0],
            "default_SR": default_sr,
            "suspend_image_SR": default_sr,
            "crash_dump_SR": default_sr,
            "other_config": {"memory-ratio-hvm": "0.25", "memory-ratio-pv": "0.25"},
        },
    )
    add_templates(xapi)
    from .ops.vm_checks import refresh  # allowed_operations follow the rules the handlers use

    for vm in list(xapi.db.all("VM")):
        refresh(xapi.db, vm)
    return pool
