"""Python calls into dom0's ``console`` and ``migration`` plugins for one VM: its console log,
and moving its VHDs between hosts (os-xenapi 0.3.4's ``vm_management`` names and signatures).
"""

from __future__ import annotations

from typing import Any

from . import exception


def get_console_log(session: Any, dom_id: int | str) -> str:
    """console.get_console_log: the base64 text of the zlib-compressed last 100 KiB of the
    log, as 0.3.4 returned it (Nova does ``zlib.decompress(base64.b64decode(...))``).

    Raises PluginNotFound when the guest has no console log.
    """
    text = session.call_plugin_serialized("console", "get_console_log", dom_id=dom_id)
    if not isinstance(text, str):
        raise exception.PluginProtocolError(plugin="console", fn="get_console_log",
                                            reason=f"a {type(text).__name__}, not base64 text")
    return text


def transfer_vhd(session: Any, instance_uuid: str, host: str, vdi_uuid: str, sr_path: str,
                 seq_num: int) -> None:
    """migration.transfer_vhd: send the SR's ``<vdi_uuid>.vhd`` to ``host`` (host key checked)."""
    session.call_plugin_serialized("migration", "transfer_vhd", instance_uuid, host, vdi_uuid,
                                   sr_path, seq_num)


def receive_vhd(session: Any, instance_uuid: str, sr_path: str,
                uuid_stack: list[str]) -> dict[str, Any]:
    """migration.move_vhds_into_sr: import received VHDs; returns ``{"root": {"uuid": ...}}``."""
    return session.call_plugin_serialized("migration", "move_vhds_into_sr", instance_uuid,
                                          sr_path, uuid_stack)
