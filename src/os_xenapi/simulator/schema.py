"""The simulator's description of the XAPI classes it serves: fields, messages and their types.

Loaded once from ``datamodel.json`` (written by ``tools/gen_sim_datamodel.py``). Each API type is
parsed into a small :class:`ApiType` that knows its zero value and how to unmarshal a wire value
into the simulator's value model (see :mod:`.values`), the way XAPI's generated server does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from .values import EPOCH, DateTime

NULL_REF = "OpaqueRef:NULL"


class TypeMismatch(Exception):
    """A wire value does not fit the API type it was sent for."""


class ApiType:
    """One XAPI type: ``string``, ``int``, ``VM ref``, ``enum x``, ``T set``, ``(K -> V) map``..."""

    kind = "any"

    def zero(self) -> Any:
        return ""

    def unmarshal(self, value: Any) -> Any:
        return value

    def parse_default(self, text: str) -> Any:
        return text


class _String(ApiType):
    kind = "string"
    parse_default = staticmethod(json.loads)  # xenapi.json quotes string defaults: "" or "()"

    def unmarshal(self, value: Any) -> Any:
        if type(value) is str or isinstance(value, str):
            return str(value)
        raise TypeMismatch


class _Int(ApiType):
    kind = "int"

    def zero(self) -> Any:
        return 0

    def unmarshal(self, value: Any) -> Any:
        if isinstance(value, bool):
            raise TypeMismatch
        if isinstance(value, int):
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise TypeMismatch from None
        raise TypeMismatch

    def parse_default(self, text: str) -> Any:
        return int(text)


class _Float(ApiType):
    kind = "float"

    def zero(self) -> Any:
        return 0.0

    def unmarshal(self, value: Any) -> Any:
        if isinstance(value, bool):
            raise TypeMismatch
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise TypeMismatch from None
        raise TypeMismatch

    def parse_default(self, text: str) -> Any:
        return float(text)


class _Bool(ApiType):
    kind = "bool"

    def zero(self) -> Any:
        return False

    def unmarshal(self, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        raise TypeMismatch

    def parse_default(self, text: str) -> Any:
        return text == "true"


class _DateTime(ApiType):
    kind = "datetime"

    def zero(self) -> Any:
        return EPOCH

    def unmarshal(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return DateTime.from_datetime(DateTime(value).to_datetime())
            except ValueError:
                raise TypeMismatch from None
        raise TypeMismatch

    def parse_default(self, text: str) -> Any:
        return DateTime(text)


class _Void(ApiType):
    kind = "void"


@dataclass(eq=False)
class RefType(ApiType):
    cls: str
    kind = "ref"

    def zero(self) -> Any:
        return NULL_REF

    def unmarshal(self, value: Any) -> Any:
        if isinstance(value, str):
            return str(value)
        raise TypeMismatch

    def parse_default(self, text: str) -> Any:
        return NULL_REF if text in ("Null", "") else text


@dataclass(eq=False)
class EnumType(ApiType):
    name: str
    values: tuple[str, ...]
    kind = "enum"

    def __post_init__(self) -> None:
        self._by_lower = {v.lower(): v for v in self.values}

    def zero(self) -> Any:
        return self.values[0] if self.values else ""

    def unmarshal(self, value: Any) -> Any:
        if isinstance(value, str):
            found = self._by_lower.get(value.lower())
            if found is not None:
                return found
            raise EnumMismatch(self.name, value)
        raise TypeMismatch


class EnumMismatch(TypeMismatch):
    """A string that is not a value of the enum (XAPI: ``INVALID_VALUE``)."""

    def __init__(self, enum: str, value: str) -> None:
        super().__init__(enum, value)
        self.enum = enum
        self.value = value


def _default_items(text: str) -> list[str]:
    """The members of a set or map default as xenapi.json writes it: ``{0}``, ``{"k" -> "v"}``."""
    inner = text.strip()[1:-1].strip()
    if not inner:
        return []
    items, current, quoted = [], "", False
    for ch in inner:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    items.append(current.strip())
    return items


@dataclass(eq=False)
class SetType(ApiType):
    item: ApiType
    kind = "set"

    def zero(self) -> Any:
        return []

    def unmarshal(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.item.unmarshal(v) for v in value]
        raise TypeMismatch

    def parse_default(self, text: str) -> Any:
        return [self.item.parse_default(item) for item in _default_items(text)]


@dataclass(eq=False)
class MapType(ApiType):
    key: ApiType
    value: ApiType
    kind = "map"

    def zero(self) -> Any:
        return {}

    def unmarshal(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): self.value.unmarshal(v) for k, v in value.items()}
        raise TypeMismatch

    def parse_default(self, text: str) -> Any:
        out = {}
        for item in _default_items(text):
            key, _, value = item.partition(" -> ")
            out[str(self.key.parse_default(key))] = self.value.parse_default(value)
        return out


@dataclass(eq=False)
class RecordType(ApiType):
    cls: str
    kind = "record"

    def zero(self) -> Any:
        return {}

    def unmarshal(self, value: Any) -> Any:
        if isinstance(value, dict):
            return value
        raise TypeMismatch


_ATOMS: dict[str, ApiType] = {
    "string": _String(),
    "int": _Int(),
    "float": _Float(),
    "bool": _Bool(),
    "datetime": _DateTime(),
    "void": _Void(),
}


@cache
def parse_type(text: str) -> ApiType:
    """The :class:`ApiType` for XAPI's textual type, e.g. ``(string -> enum vm_operations) map``."""
    text = text.strip()
    if text in _ATOMS:
        return _ATOMS[text]
    if text.startswith("(") and text.endswith(") map"):
        inner = text[1:-5]
        depth = 0
        for i, ch in enumerate(inner):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and inner.startswith(" -> ", i):
                return MapType(parse_type(inner[:i]), parse_type(inner[i + 4 :]))
        raise ValueError(f"unparsable map type {text!r}")
    if text.endswith(" set"):
        return SetType(parse_type(text[:-4]))
    if text.endswith(" ref"):
        return RefType(text[:-4])
    if text.endswith(" record"):
        return RecordType(text[:-7])
    if text.startswith("enum "):
        name = text[5:]
        return EnumType(name, tuple(_raw()["enums"].get(name, ())))
    return ApiType()  # e.g. "an event batch": passed through as built


@dataclass
class Field:
    name: str
    type: ApiType
    type_text: str
    qualifier: str  # "RO/runtime", "RO/constructor" or "RW"
    default: Any  # a zero-argument factory's result is copied per record

    @property
    def writable(self) -> bool:
        return self.qualifier == "RW"


@dataclass
class Message:
    cls: str
    name: str
    params: list[tuple[str, ApiType]]
    param_types_text: list[str]
    result: str
    session: bool
    is_async: bool
    implicit: bool
    defaults: list[Any] = field(default_factory=list)

    @property
    def wire_name(self) -> str:
        return f"{self.cls}.{self.name}"

    @property
    def required_count(self) -> int:
        return len(self.params) - len(self.defaults)


@dataclass
class ClassDef:
    name: str
    fields: dict[str, Field]
    messages: dict[str, Message]
    constructor: list[str]
    constructor_required: list[str]

    def __post_init__(self) -> None:
        self._template = {f.name: f.default for f in self.fields.values()}
        self._mutable = [f.name for f in self.fields.values() if type(f.default) in (list, dict)]

    def new_record(self) -> dict[str, Any]:
        """A record holding every field at its default (containers are fresh copies)."""
        record = dict(self._template)
        for name in self._mutable:
            record[name] = copy_value(record[name])
        return record


def copy_value(value: Any) -> Any:
    """A fresh copy of a list or dict value (one level deep); anything else as it is."""
    if type(value) is list:
        return list(value)
    if type(value) is dict:
        return dict(value)
    return value


@lru_cache(maxsize=1)
def _raw() -> dict:
    return json.loads((Path(__file__).parent / "datamodel.json").read_text())


def _field(entry: list) -> Field:
    name, type_text, qualifier, default_text = entry
    api_type = parse_type(type_text)
    if default_text is None:
        default = api_type.zero()
    else:
        try:
            default = api_type.parse_default(default_text)
        except ValueError:
            default = api_type.zero()
    return Field(name, api_type, type_text, qualifier, default)


@lru_cache(maxsize=1)
def classes() -> dict[str, ClassDef]:
    """Every class the simulator serves, by its XAPI name (``VM``, ``host``, ...)."""
    out = {}
    for name, entry in _raw()["classes"].items():
        fields = {f[0]: _field(f) for f in entry["fields"]}
        messages = {}
        for mname, m in entry["messages"].items():
            messages[mname] = Message(
                cls=name,
                name=mname,
                params=[(p[0], parse_type(p[1])) for p in m["params"]],
                param_types_text=[p[1] for p in m["params"]],
                result=m["result"],
                session=m["session"],
                is_async=m["async"],
                implicit=m["implicit"],
                defaults=m.get("defaults", []),
            )
        out[name] = ClassDef(
            name, fields, messages, entry.get("constructor", []), entry.get("constructor_required", [])
        )
    return out


def enums() -> dict[str, list[str]]:
    """Every enum the served classes use, with its values as XAPI spells them."""
    return _raw()["enums"]
