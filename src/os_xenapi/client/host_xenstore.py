"""Python calls into dom0's ``xenstore`` plugin: records under a guest's xenstore home
``/local/domain/<dom_id>`` (os-xenapi 0.3.4's ``host_xenstore`` names and signatures).

Results are 0.3.4's: JSON text. A stored value that is JSON already comes back as stored
(``'{"a": 1}'``), any other as a JSON string (``'"web-1"'``), with surrounding whitespace
stripped; a missing path read with ``ignore_missing_path`` is ``'"None"'``, which Nova compares
with. The plugin answers plain values (JSON protocol 3.0); this module turns them into that text.
"""

from __future__ import annotations

import json
from typing import Any

PLUGIN = "xenstore"
MISSING = '"None"'  # 0.3.4's answer for a missing path that was to be ignored


def _as_json_text(value: str) -> str:
    """``value`` if it is JSON text already, else ``value`` as a JSON string (0.3.4's rule)."""
    try:
        json.loads(value)
    except ValueError:
        return json.dumps(value)
    return value


def read_record(session: Any, dom_id: int | str, path: str,
                ignore_missing_path: bool = True) -> str:
    """xenstore.read_record: the value at ``path`` as JSON text; ``'"None"'`` if missing and
    ignored.

    Raises PluginNotFound for a missing path when ``ignore_missing_path`` is false (0.3.4 sent
    the string ``"False"``, which its plugin took for true, and answered ``'"None"'``).
    """
    value = session.call_plugin_serialized(PLUGIN, "read_record", dom_id=dom_id, path=path,
                                           ignore_missing_path=bool(ignore_missing_path))
    if value is None:
        return MISSING
    return _as_json_text(value.strip())


def delete_record(session: Any, dom_id: int | str, path: str) -> str:
    """xenstore.delete_record: remove ``path`` and everything below it; ``'""'`` as in 0.3.4
    (a path that is already gone is no error)."""
    session.call_plugin_serialized(PLUGIN, "delete_record", dom_id=dom_id, path=path)
    return '""'


def write_record(session: Any, dom_id: int | str, path: str, value: str) -> str:
    """xenstore.write_record: store ``value`` (a string) at ``path``; returns it as JSON text."""
    stored = session.call_plugin_serialized(PLUGIN, "write_record", dom_id=dom_id, path=path,
                                            value=value)
    return _as_json_text(stored)


def list_records(session: Any, dom_id: int | str, path: str = "") -> dict[str, Any]:
    """xenstore.list_records: ``{relative path: stored string}`` below ``path`` (new: 0.3.4 had
    no wrapper for it)."""
    return session.call_plugin_serialized(PLUGIN, "list_records", dom_id=dom_id, path=path)
