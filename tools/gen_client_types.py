#!/usr/bin/env python3
"""Write the client's value-type table (src/os_xenapi/client/value_types.json) from xenapi.json.

XAPI's XML-RPC and JSON-RPC give some values different Python types (an API ``int`` is ``"5"``
over XML-RPC, ``5`` over JSON-RPC; a ``datetime`` is ``xmlrpc.client.DateTime`` or a string).
:mod:`os_xenapi.client.value_types` evens them out with this table: for every class, the fields
whose type holds an int, float or datetime, and for every message, its result type when it holds
one. Nothing else is kept, so the table stays small. The client never reads xenapi.json (nor the
simulator's copy) at run time.

A type is written as a short code: ``i`` int, ``f`` float, ``d`` datetime, ``S<code>`` a set of
it, ``M<code>`` a map with values of it (keys are strings on both wires), ``R<class>`` a record of
that class, ``e`` an event record (its snapshot is a record of the class it names), ``b`` the
batch ``event.from`` answers. Removed fields and messages are kept: an older XAPI still sends them.

    python tools/gen_client_types.py ../shared/xapi/xenapi.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "src/os_xenapi/client/value_types.json"
_MAP = re.compile(r"\((.+) -> (.+)\) map")
_SCALARS = {"int": "i", "float": "f", "datetime": "d"}


class Table:
    """The codes of one xenapi.json, class by class."""

    def __init__(self, classes: list[dict[str, Any]]) -> None:
        self.classes = {c["name"]: c for c in classes}
        self.records: dict[str, dict[str, str]] = {}
        self._done: set[str] = set()

    def record(self, name: str) -> str:
        """``R<name>`` if records of class ``name`` hold a field to convert, else ``""``."""
        if name == "event":
            return "e"
        if name not in self._done:
            self._done.add(name)  # before the fields: a record type may refer to its own class
            fields = {}
            for field in self.classes[name]["fields"]:
                code = self.code(field["type"])
                if code:
                    fields[field["name"]] = code
            if fields:
                self.records[name] = fields
        return f"R{name}" if name in self.records else ""

    def code(self, xapi_type: str) -> str:
        """The code of one xenapi.json type (``""`` when no value of it needs converting)."""
        xapi_type = xapi_type.strip()
        if xapi_type in _SCALARS:
            return _SCALARS[xapi_type]
        if xapi_type == "an event batch":
            return "b"
        found = _MAP.fullmatch(xapi_type)
        if found:
            inner = self.code(found.group(2))
            return f"M{inner}" if inner else ""
        for suffix, prefix in ((" set", "S"), (" option", "")):
            if xapi_type.endswith(suffix):
                inner = self.code(xapi_type[: -len(suffix)])
                return f"{prefix}{inner}" if inner else ""
        if xapi_type.endswith(" record"):
            name = xapi_type[: -len(" record")]
            if name == "<class>":
                raise ValueError("a <class> record outside the event class")
            return self.record(name)
        return ""  # string, bool, refs, enums, void

    def results(self) -> dict[str, str]:
        out = {}
        for name, cls in self.classes.items():
            self.record(name)
            for message in cls["messages"]:
                code = self.code(message["result"][0])
                if code:
                    out[f"{name}.{message['name']}"] = code
                if message["name"] == "get_all_records":
                    # hidden from xenapi.json, served by every class that has get_all_records
                    if code:
                        out[f"{name}.get_all_records_where"] = code
        return out


def build(classes: list[dict[str, Any]]) -> dict[str, Any]:
    """The table, as written to value_types.json."""
    table = Table(classes)
    results = table.results()
    return {"records": table.records, "results": results}


def main(source: str) -> None:
    table = build(json.loads(Path(source).read_text()))
    OUT.write_text(json.dumps(table, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(table['records'])} record types, "
          f"{len(table['results'])} message results)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/xapi/xenapi.json")
