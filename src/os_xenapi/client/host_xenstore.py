"""Python calls into dom0's ``xenstore`` plugin: records under a guest's xenstore home
``/local/domain/<dom_id>`` (os-xenapi 0.3.4's ``host_xenstore`` names and signatures).

Values come back as Python values: a missing path read with ``ignore_missing_path`` is None
(0.3.4 returned the string ``"None"``).
"""

from __future__ import annotations

from typing import Any

PLUGIN = "xenstore"


def read_record(session: Any, dom_id: int | str, path: str,
                ignore_missing_path: bool = True) -> str | None:
    """xenstore.read_record: the value at ``path``; None if missing and ignored.

    Raises PluginNotFound for a missing path when ``ignore_missing_path`` is False.
    """
    return session.call_plugin_serialized(PLUGIN, "read_record", dom_id=dom_id, path=path,
                                          ignore_missing_path=ignore_missing_path)


def delete_record(session: Any, dom_id: int | str, path: str) -> Any:
    """xenstore.delete_record: remove ``path`` and everything below it."""
    return session.call_plugin_serialized(PLUGIN, "delete_record", dom_id=dom_id, path=path)


def write_record(session: Any, dom_id: int | str, path: str, value: str) -> str:
    """xenstore.write_record: store ``value`` (a string) at ``path``; returns the value."""
    return session.call_plugin_serialized(PLUGIN, "write_record", dom_id=dom_id, path=path,
                                          value=value)


def list_records(session: Any, dom_id: int | str, path: str = "") -> dict[str, Any]:
    """xenstore.list_records: the tree below ``path`` (new: 0.3.4 had no wrapper for it)."""
    return session.call_plugin_serialized(PLUGIN, "list_records", dom_id=dom_id, path=path)
