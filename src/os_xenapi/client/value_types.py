"""The same Python types for XAPI's values whichever protocol carried them.

os-xenapi 0.3.4 spoke XML-RPC, where XAPI writes a 64-bit ``int`` as an untyped value (so
``VM.get_domid`` gives ``"1"``) and a ``datetime`` as ``dateTime.iso8601``
(``xmlrpc.client.DateTime`` in Python); its JSON-RPC sends numbers and strings instead. Nova
compares ``VM.get_domid(...) == "-1"`` and Ceilometer indexes maps with that string, so a
:class:`~os_xenapi.client.session.XenAPISession` gives by default what the official SDK gets over
XML-RPC, on either wire (:data:`XMLRPC_TYPES`). New code may ask for JSON-RPC's types instead
(``native_types=True``, :data:`NATIVE_TYPES`): ints as ``int``, datetimes as their text.

Two parts do the work. The transport decodes the wire into the chosen types where the wire itself
says enough: XML-RPC's ``dateTime.iso8601`` into ``xmlrpc.client.DateTime`` (or left as text), and
JSON integers into ``str`` for XML-RPC's types, since XAPI's XML-RPC writes every int but one kind
as a string (:meth:`ValueTypes.transport_options`). What the wire cannot say is then put right
here, where the data model says which value is what (``value_types.json``, written from XAPI's
xenapi.json by ``tools/gen_client_types.py``):

* XML-RPC's types from JSON-RPC: datetimes to ``xmlrpc.client.DateTime``, a float XAPI wrote
  without a decimal point to ``float``, and ``event.from``'s ``valid_ref_counts`` back to ``int``
  (XAPI writes those as 32-bit ints, which XML-RPC types as ``<i4>``);
* JSON-RPC's types from XML-RPC: the ints of the data model to ``int``.

Values the data model does not know (a field newer than xenapi.json, a message it lacks) keep what
the first part gave them: from JSON-RPC every int is a ``str`` as over XML-RPC, but a datetime
stays a ``str``; from XML-RPC an int stays a ``str`` in native mode.
"""

from __future__ import annotations

import json
import xmlrpc.client
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

Convert = Callable[[Any], Any]

XMLRPC_TYPES = "xmlrpc"  # what the official SDK and os-xenapi 0.3.4 give: ints as str
NATIVE_TYPES = "native"  # what XAPI's JSON-RPC sends: ints as int, datetimes as text
_MODES = (XMLRPC_TYPES, NATIVE_TYPES)
_CACHE_LIMIT = 4096  # method names remembered; beyond that, looked up again each time


@cache
def table() -> dict[str, Any]:
    """The generated table: ``{"records": {class: {field: code}}, "results": {method: code}}``."""
    text = resources.files(__package__).joinpath("value_types.json").read_text("utf-8")
    return json.loads(text)


# --------------------------------------------------------------------------- scalar converters


def _to_datetime(value: Any) -> Any:
    return xmlrpc.client.DateTime(value) if value.__class__ is str else value


def _to_float(value: Any) -> Any:
    kind = value.__class__
    if kind is float:
        return value
    if kind is str or kind is int:
        try:
            return float(value)
        except ValueError:
            return value  # not a number at all: left as the server sent it
    return value


def _to_int(value: Any) -> Any:
    if value.__class__ is str:
        try:
            return int(value)
        except ValueError:
            return value
    return value


# What each scalar code needs in each mode; None: nothing (the transport decoded it already).
_SCALARS: dict[str, dict[str, Convert | None]] = {
    XMLRPC_TYPES: {"i": None, "f": _to_float, "d": _to_datetime},
    NATIVE_TYPES: {"i": _to_int, "f": None, "d": None},
}


def _set_of(item: Convert) -> Convert:
    def convert(value: Any) -> Any:
        if value.__class__ is list:
            value[:] = [item(x) for x in value]
        return value
    return convert


def _map_of(item: Convert) -> Convert:
    def convert(value: Any) -> Any:
        if value.__class__ is dict:
            for key, x in value.items():
                value[key] = item(x)
        return value
    return convert


def _record_of(fields: list[tuple[str, Convert]]) -> Convert:
    def convert(value: Any) -> Any:
        if value.__class__ is dict:
            for name, item in fields:
                if name in value:
                    value[name] = item(value[name])
        return value
    return convert


class ValueTypes:
    """The types one session hands back: ``XMLRPC_TYPES`` (0.3.4's) or ``NATIVE_TYPES``."""

    def __init__(self, mode: str = XMLRPC_TYPES) -> None:
        if mode not in _MODES:
            raise ValueError(f"value types are one of {', '.join(_MODES)}, not {mode!r}")
        self.mode = mode
        self._scalars = _SCALARS[mode]
        self._results: dict[str, Convert | None] = {}  # filled as methods are first called
        self._lower = {name.lower(): name for name in table()["records"]}
        # Every record converter is built here, before any thread can call: afterwards
        # _build_record only reads them.
        self._records: dict[str, Convert | None] = {}
        self._building: set[str] = set()
        for cls in table()["records"]:
            self._build_record(cls)

    def __repr__(self) -> str:
        return f"<ValueTypes {self.mode}>"

    def transport_options(self) -> dict[str, Any]:
        """The keywords a :class:`~os_xenapi.client.transport.Transport` needs to decode values
        in these types as far as the wire tells them."""
        if self.mode == XMLRPC_TYPES:
            return {"datetime_type": xmlrpc.client.DateTime, "json_int_type": str}
        return {"datetime_type": None, "json_int_type": int}

    def convert(self, method: str, protocol: str | None, value: Any) -> Any:
        """``value``, the result of ``method`` as the transport decoded it from ``protocol``
        (``"jsonrpc"`` or ``"xmlrpc"``), in this object's types. It may be changed in place."""
        if (protocol == "jsonrpc") == (self.mode == NATIVE_TYPES):
            return value  # the wire's own types are the ones wanted
        convert = self._result(method)
        return value if convert is None else convert(value)

    # -- building converters from the table ----------------------------------------------------

    def _result(self, method: str) -> Convert | None:
        found = self._results.get(method, False)
        if found is not False:
            return found  # type: ignore[return-value]
        code = _result_code(method, table()["results"])
        convert = self._compile(code) if code else None
        if len(self._results) < _CACHE_LIMIT:
            self._results[method] = convert
        return convert

    def _compile(self, code: str) -> Convert | None:
        """The converter for one type code (see tools/gen_client_types.py), None if a no-op."""
        head, rest = code[0], code[1:]
        if head == "S":
            inner = self._compile(rest)
            return None if inner is None else _set_of(inner)
        if head == "M":
            inner = self._compile(rest)
            return None if inner is None else _map_of(inner)
        if head == "R":
            return self._build_record(rest)
        if head == "e":
            return self._event
        if head == "b":
            return self._batch
        return self._scalars[head]

    def record(self, cls: str) -> Convert | None:
        """The converter of a record of class ``cls`` (XAPI's spelling), None if a no-op."""
        return self._records.get(cls)

    def _build_record(self, cls: str) -> Convert | None:
        if cls in self._records:
            return self._records[cls]
        fields = table()["records"].get(cls)
        if not fields or cls in self._building:
            return None  # a record that refers to its own class: converted one level deep
        self._building.add(cls)
        try:
            pairs = [(name, found) for name, code in fields.items()
                     if (found := self._compile(code)) is not None]
        finally:
            self._building.discard(cls)
        convert = _record_of(pairs) if pairs else None
        self._records[cls] = convert
        return convert

    def _event(self, value: Any) -> Any:
        """An event record: its snapshot is a record of the class it names (in lower case).
        Its ``id`` and ``timestamp`` are strings on both wires (XAPI's Event_types)."""
        if value.__class__ is dict:
            snapshot = value.get("snapshot")
            cls = self._lower.get(str(value.get("class", "")).lower())
            convert = self.record(cls) if cls else None
            if convert is not None and snapshot.__class__ is dict:
                value["snapshot"] = convert(snapshot)
        return value

    def _batch(self, value: Any) -> Any:
        """``event.from``'s answer: its events, and ``valid_ref_counts`` (32-bit ints: ``int``
        on both wires, which the transport's str-for-int decoding of JSON undid)."""
        if value.__class__ is not dict:
            return value
        events = value.get("events")
        if events.__class__ is list:
            for event in events:
                self._event(event)
        counts = value.get("valid_ref_counts")
        if self.mode == XMLRPC_TYPES and counts.__class__ is dict:
            for key, count in counts.items():
                counts[key] = _to_int(count)
        return value


def _result_code(method: str, results: dict[str, str]) -> str | None:
    """The result code of ``method`` (``Class.message``, or XAPI's other spelling
    ``Class_message``); None for an ``Async.`` call (a task ref) or a method not in the table."""
    if method.startswith(("Async.", "InternalAsync.")):
        return None
    code = results.get(method)
    if code is not None or "." in method:
        return code
    at = method.find("_")
    while at > 0:
        code = results.get(f"{method[:at]}.{method[at + 1:]}")
        if code is not None:
            return code
        at = method.find("_", at + 1)
    return None
