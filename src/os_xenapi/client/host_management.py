"""Python calls into dom0's ``xenhost`` plugin for the host itself: enable/disable, uptime,
host data and PCI details (os-xenapi 0.3.4's ``host_management`` names and signatures).

Results are 0.3.4's: ``set_host_enabled``, ``get_host_uptime`` and ``get_host_data`` return
JSON text, which Nova ``json.loads``, with 0.3.4's keys and value types; the PCI calls return
strings. Errors are the typed failures the plugin raised (``exception.PluginInvalidArgument``
for a bad argument, and so on).
"""

from __future__ import annotations

import json
from typing import Any

PLUGIN = "xenhost"
# host_cpu_info fields 0.3.4 gave as numbers; it left every other field as xe printed it, text.
_CPU_NUMBERS = frozenset({"cpu_count", "family", "model", "stepping"})


def set_host_enabled(session: Any, enabled: bool | str) -> str:
    """xenhost.set_host_enabled: enable or disable the host; returns JSON text
    ``{"status": "enabled"|"disabled"}``.

    ``enabled`` may be 0.3.4's ``"true"``/``"false"`` or a bool.
    """
    return json.dumps(session.call_plugin_serialized(PLUGIN, "set_host_enabled",
                                                     enabled=enabled))


def get_host_uptime(session: Any) -> str:
    """xenhost.host_uptime: JSON text ``{"uptime": "<what uptime(1) prints>\\n"}``."""
    text = session.call_plugin_serialized(PLUGIN, "host_uptime")["uptime"]
    return json.dumps({"uptime": text if text.endswith("\n") else text + "\n"})


def get_host_data(session: Any) -> str:
    """xenhost.host_data: JSON text of the host's state as 0.3.4 reported it (memory, names,
    address, CPU, capabilities, other-config) plus the keys of dom0's xenhost.conf.

    As in 0.3.4, ``enabled`` is xe's ``"true"``/``"false"`` and ``host_cpu_info`` holds numbers
    for the CPU count, family, model and stepping and text for the rest.
    """
    data = session.call_plugin_serialized(PLUGIN, "host_data")
    if isinstance(data.get("enabled"), bool):
        data["enabled"] = "true" if data["enabled"] else "false"
    cpu_info = data.get("host_cpu_info")
    if isinstance(cpu_info, dict):
        data["host_cpu_info"] = {key: value if key in _CPU_NUMBERS or value is None else str(value)
                                 for key, value in cpu_info.items()}
    return json.dumps(data)


def get_pci_type(session: Any, pci_device: str) -> str:
    """xenhost.get_pci_type: ``"type-PCI"``, ``"type-VF"`` or ``"type-PF"`` for a PCI address."""
    return session.call_plugin_serialized(PLUGIN, "get_pci_type", pci_device)


def get_pci_device_details(session: Any) -> str:
    """xenhost.get_pci_device_details: ``lspci -vmmnk``'s text."""
    return session.call_plugin_serialized(PLUGIN, "get_pci_device_details")
