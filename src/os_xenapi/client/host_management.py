"""Python calls into dom0's ``xenhost`` plugin for the host itself: enable/disable, uptime,
host data and PCI details (os-xenapi 0.3.4's ``host_management`` names and signatures).

Every function returns the plugin's decoded JSON value and raises the typed failure the plugin
raised (``exception.PluginInvalidArgument`` for a bad argument, and so on).
"""

from __future__ import annotations

from typing import Any

PLUGIN = "xenhost"


def set_host_enabled(session: Any, enabled: bool | str) -> dict[str, str]:
    """xenhost.set_host_enabled: enable or disable the host; returns ``{"status": ...}``.

    ``enabled`` may be a bool or 0.3.4's ``"true"``/``"false"``.
    """
    return session.call_plugin_serialized(PLUGIN, "set_host_enabled", enabled=enabled)


def get_host_uptime(session: Any) -> dict[str, Any]:
    """xenhost.host_uptime: ``{"uptime": uptime(1)'s text, "uptime_seconds": float}``."""
    return session.call_plugin_serialized(PLUGIN, "host_uptime")


def get_host_data(session: Any) -> dict[str, Any]:
    """xenhost.host_data: the host's record as the plugin reports it, plus xenhost.conf keys."""
    return session.call_plugin_serialized(PLUGIN, "host_data")


def get_pci_type(session: Any, pci_device: str) -> str:
    """xenhost.get_pci_type: ``"type-PCI"``, ``"type-VF"`` or ``"type-PF"`` for a PCI address."""
    return session.call_plugin_serialized(PLUGIN, "get_pci_type", pci_device)


def get_pci_device_details(session: Any) -> str:
    """xenhost.get_pci_device_details: ``lspci -vmmnk``'s text."""
    return session.call_plugin_serialized(PLUGIN, "get_pci_device_details")
