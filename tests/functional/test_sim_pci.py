"""The simulated host's PCI devices as Nova's XenAPI driver reads them for passthrough: the
xenhost plugin's lspci text and PCI types, through the official XenAPI SDK.

Nova (``nova/virt/xenapi/host.py``, ``HostState._get_passthrough_devices``) splits
``get_pci_device_details`` at blank lines, keeps the blocks that hold ``Driver:<TAB>pciback``,
reads ``Slot``, ``Vendor`` and ``Device`` from each with regular expressions, and asks
``get_pci_type`` for the slot it found."""

from __future__ import annotations

import json
import re
from typing import Any

from os_xenapi.simulator.dom0_root import PCI_DEVICES

ORIGINATOR = "pci-tests"
HEX = r"[\da-fA-F]"
SLOT = re.compile(rf"Slot:\t((?:{HEX}{{4}}:)?{HEX}{{2}}:{HEX}{{2}}\.{HEX}{{1}})")
VENDOR = re.compile(rf"\nVendor:\t({HEX}+)")
PRODUCT = re.compile(rf"\nDevice:\t({HEX}+)")


def xenhost(x: Any, function: str, *args: Any) -> Any:
    """A xenhost function, called as os-xenapi's call_plugin_serialized calls it."""
    reply = x.host.call_plugin(x.host.get_all()[0], "xenhost.py", function,
                               {"params": json.dumps({"args": list(args), "kwargs": {}})})
    return json.loads(reply)


def passthrough_devices(x: Any) -> list[dict[str, str]]:
    """What Nova reports as pci_passthrough_devices, from the plugin's answers."""
    devices = []
    for block in xenhost(x, "get_pci_device_details").split("\n\n"):
        if "Driver:\tpciback" not in block:
            continue
        slot, vendor, product = (pattern.findall(block) for pattern in (SLOT, VENDOR, PRODUCT))
        assert slot and vendor and product, f"Nova could not parse {block!r}"
        devices.append({"address": slot[0], "vendor_id": vendor[0], "product_id": product[0],
                        "dev_type": xenhost(x, "get_pci_type", slot[0])})
    return devices


def test_nova_finds_the_devices_bound_to_pciback_with_their_types(x: Any) -> None:
    assert passthrough_devices(x) == [
        {"address": "02:10.1", "vendor_id": "8086", "product_id": "10ed", "dev_type": "type-VF"},
        {"address": "83:00.0", "vendor_id": "10de", "product_id": "1eb8", "dev_type": "type-PCI"},
    ]


def test_physical_function_with_two_virtual_functions_is_a_pf(x: Any) -> None:
    assert xenhost(x, "get_pci_type", "01:00.0") == "type-PF"
    assert xenhost(x, "get_pci_type", "0000:02:10.0") == "type-VF"


def test_lspci_blocks_end_with_a_blank_line_as_nova_splits_them(x: Any) -> None:
    text = xenhost(x, "get_pci_device_details")
    assert text.endswith("\n\n")
    blocks = text.split("\n\n")[:-1]
    assert all(block.startswith("Slot:\t") for block in blocks)
    assert len(blocks) == len(PCI_DEVICES)
