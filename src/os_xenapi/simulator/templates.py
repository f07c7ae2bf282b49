"""The default VM templates a XCP-ng install ships, and realistic VMs for ``--vms N``.

Also what a guest built from each template reports through its PV drivers once it runs
(:func:`guest_os`), which ``VM_guest_metrics`` shows.
"""

from __future__ import annotations

import random
import uuid as _uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import Interrupted
from .values import DateTime

if TYPE_CHECKING:
    from .xapi import Xapi

GiB = 1024**3
MiB = 1024**2

# (name_label, os family, HVM?, static_max, dynamic_min, VCPUs, disk size, distro, reference label)
TEMPLATES = [
    ("Debian Bookworm 12", "linux", True, 1 * GiB, 512 * MiB, 1, 10 * GiB, "debian", "debian-12"),
    ("Ubuntu Jammy Jellyfish 22.04", "linux", True, 1 * GiB, 512 * MiB, 1, 10 * GiB, "ubuntu",
     "ubuntu-22.04"),
    ("CentOS Stream 9", "linux", True, 2 * GiB, 1 * GiB, 1, 10 * GiB, "centos", "centos-stream-9"),
    ("Rocky Linux 9", "linux", True, 2 * GiB, 1 * GiB, 1, 10 * GiB, "rocky", "rocky-9"),
    ("Windows Server 2022 (64-bit)", "windows", True, 4 * GiB, 4 * GiB, 2, 32 * GiB, "windows",
     "windows-server-2022-64"),
    ("Windows 10 (64-bit)", "windows", True, 2 * GiB, 2 * GiB, 2, 32 * GiB, "windows",
     "windows-10-64"),
    ("Other install media", "other", True, 1 * GiB, 1 * GiB, 1, 0, "", "other-install-media"),
]


# What the guest agent of each distribution reports as VM_guest_metrics.os_version.
OS_VERSIONS = {
    "debian": {"name": "Debian GNU/Linux 12 (bookworm)", "distro": "debian", "major": "12",
               "minor": "5", "uname": "6.1.0-18-amd64"},
    "ubuntu": {"name": "Ubuntu 22.04.4 LTS", "distro": "ubuntu", "major": "22", "minor": "04",
               "uname": "5.15.0-101-generic"},
    "centos": {"name": "CentOS Stream 9", "distro": "centos", "major": "9",
               "uname": "5.14.0-427.el9.x86_64"},
    "rocky": {"name": "Rocky Linux 9.3 (Blue Onyx)", "distro": "rocky", "major": "9",
              "minor": "3", "uname": "5.14.0-362.8.1.el9_3.x86_64"},
    "windows": {"distro": "windows", "major": "10", "minor": "0", "spmajor": "0", "spminor": "0"},
}


def spec_of(record: dict[str, Any]) -> tuple | None:
    """The template spec a VM record comes from (by its base template name or its own name)."""
    names = (record.get("other_config", {}).get("base_template_name"), record.get("name_label"))
    for spec in TEMPLATES:
        if spec[0] in names:
            return spec
    return None


def guest_os(record: dict[str, Any]) -> dict[str, str] | None:
    """What the guest agent of a running VM reports as its OS, or None when it has no agent.

    VMs from the Linux and Windows templates run with PV drivers; VMs from "Other install
    media" and VMs made from scratch run without.
    """
    spec = spec_of(record)
    if spec is None:
        return None
    if spec[7] not in OS_VERSIONS:
        return None
    version = dict(OS_VERSIONS[spec[7]])
    if spec[7] == "windows":
        product = spec[0].replace(" (64-bit)", "")
        version["name"] = f"Microsoft {product}|C:\\Windows|\\Device\\Harddisk0\\Partition2"
    return version


def _disks_xml(size: int) -> str:
    if not size:
        return '<provision></provision>'
    return (
        f'<provision><disk device="0" size="{size}" sr="" bootable="true" type="system"/>'
        "</provision>"
    )


def _platform(os_family: str) -> dict[str, str]:
    platform = {"timeoffset": "0", "device-model": "qemu-upstream-compat", "acpi": "1",
                "apic": "true", "pae": "true", "nx": "true", "hpet": "true", "vga": "std",
                "videoram": "8", "secureboot": "false"}
    if os_family == "windows":
        platform.update({"viridian": "true", "viridian_time_ref_count": "true",
                         "viridian_reference_tsc": "true", "device_id": "0002"})
    return platform


def template_record(spec: tuple) -> dict:
    name, family, _hvm, static_max, dynamic_min, vcpus, disk, distro, ref_label = spec
    return {
        "name_label": name,
        "name_description": f"Template that allows VM installation from install media for {name}"
        if family != "other" else "Template that allows VM installation from Xen-aware media",
        "is_a_template": True,
        "is_default_template": True,
        "power_state": "Halted",
        "domid": -1,
        "user_version": 1,
        "memory_static_max": static_max,
        "memory_dynamic_max": static_max,
        "memory_dynamic_min": dynamic_min,
        "memory_static_min": min(dynamic_min, 512 * MiB),
        "VCPUs_max": vcpus,
        "VCPUs_at_startup": vcpus,
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "restart",
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": "cdn"},
        "platform": _platform(family),
        "domain_type": "hvm",
        "other_config": {
            "default_template": "true",
            "linux_template": "true" if family == "linux" else "false",
            "install-methods": "cdrom" if family != "linux" else "cdrom,nfs,http,ftp",
            "disks": _disks_xml(disk),
            "base_template_name": name,
            "mac_seed": str(_uuid.uuid4()),
        },
        "reference_label": ref_label,
        "recommendations": (
            '<restrictions><restriction field="memory-static-max" max="1649267441664"/>'
            f'<restriction field="vcpus-max" max="{32 if family == "windows" else 64}"/>'
            '<restriction property="number-of-vbds" max="255"/>'
            '<restriction property="number-of-vifs" max="7"/></restrictions>'
        ),
    }


def _new_metrics(xapi: Xapi) -> str:
    """A VM_metrics record as XAPI makes for a VM that has never run."""
    return xapi.db.create("VM_metrics", {"memory_actual": 0, "VCPUs_number": 0, "state": [],
                                         "install_time": DateTime.now(),
                                         "last_updated": DateTime.now(),
                                         "current_domain_type": "unspecified"})


def add_templates(xapi: Xapi) -> list[str]:
    """Create the default templates, each with its metrics record; returns their refs."""
    refs = []
    for spec in TEMPLATES:
        record = template_record(spec)
        record["metrics"] = _new_metrics(xapi)
        refs.append(xapi.db.create("VM", record))
    return refs


def add_vms(xapi: Xapi, count: int, seed: int = 0,
            interrupted: Callable[[], bool] | None = None) -> list[str]:
    """Create ``count`` halted VMs, each with a metrics record, a system disk and a VIF.

    ``interrupted`` is asked before each VM; when it answers True, :class:`Interrupted` is
    raised (a pool of thousands takes seconds to build, and Ctrl+C must not wait for it).
    """
    db = xapi.db
    rng = random.Random(seed)
    sr = db.get("pool", xapi.pool)["default_SR"]
    network = next(iter(db.find("network", bridge="xenbr0")), "OpaqueRef:NULL")
    refs = []
    for i in range(count):
        if interrupted is not None and interrupted():
            raise Interrupted(f"stopped after building {i} of {count} VMs")
        spec = TEMPLATES[i % (len(TEMPLATES) - 1)]
        record = template_record(spec)
        memory = rng.choice([1, 2, 4, 8]) * GiB
        vcpus = rng.choice([1, 2, 4])
        record.update(
            name_label=f"sim-vm-{i + 1:05d}",
            name_description=f"Seeded VM {i + 1} ({spec[0]})",
            is_a_template=False,
            is_default_template=False,
            memory_static_max=memory,
            memory_dynamic_max=memory,
            memory_dynamic_min=memory // 2,
            VCPUs_max=vcpus,
            VCPUs_at_startup=vcpus,
        )
        record["other_config"] = {
            "base_template_name": spec[0],
            "install-methods": record["other_config"]["install-methods"],
            "nova_uuid": f"{rng.getrandbits(128):032x}",
            "mac_seed": str(_uuid.uuid5(_uuid.NAMESPACE_URL, f"sim-vm/{seed}/{i}")),
        }
        vm = db.create("VM", record)
        db.update("VM", vm, metrics=_new_metrics(xapi))
        vdi = db.create("VDI", {"name_label": f"{record['name_label']} 0",
                                "name_description": "Created by template provisioner",
                                "SR": sr, "virtual_size": spec[6] or 10 * GiB,
                                "physical_utilisation": 3 * GiB, "type": "system",
                                "sharable": False, "read_only": False, "managed": True,
                                "location": f"{rng.getrandbits(128):032x}"})
        db.create("VBD", {"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True,
                          "mode": "RW", "type": "Disk", "empty": False, "unpluggable": False})
        db.create("VIF", {"VM": vm, "network": network, "device": "0", "MTU": 1500,
                          "MAC": "02:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5)),
                          "locking_mode": "network_default"})
        refs.append(vm)
    from .ops.vm_checks import refresh  # the rules live with the handlers

    for vm in refs:
        refresh(db, vm)
    return refs
