"""What the simulator serves, checked against XAPI's own data model (shared/xapi/xenapi.json).

Every served wire name (from ``system.listMethods``, over the wire) must be a live message of a
live class in xenapi.json and must count its parameters as XAPI does; every record must carry
exactly the fields xenapi.json declares, each in the wire type XAPI writes for its declared type;
setters must follow the RO/RW qualifiers; the simulator's enums and field defaults must be
xenapi.json's. xenapi.json is the referee here: the simulator never reads it at run time, so a
mismatch is a real divergence from XAPI.
"""

from __future__ import annotations

import json
import re
import xmlrpc.client
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.simulator import Simulator
from os_xenapi.simulator.schema import classes as sim_classes
from os_xenapi.simulator.schema import enums as sim_enums

XENAPI_JSON = Path(__file__).resolve().parents[3] / "shared/xapi/xenapi.json"

if not XENAPI_JSON.is_file():
    pytest.skip(
        f"XAPI's data model {XENAPI_JSON} is absent; these tests compare the simulator with it",
        allow_module_level=True,
    )

REMOVED = "Removed_s"
HIDDEN_WHERE = ("get_all_where", "get_all_records_where")
WIRE_REF = re.compile(r"OpaqueRef:.+")
WIRE_INT = re.compile(r"-?[0-9]+")
WIRE_DATE = re.compile(r"[0-9]{8}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


# --------------------------------------------------------------------------- the referee


@lru_cache(maxsize=1)
def xenapi() -> dict[str, dict]:
    """xenapi.json's classes by name."""
    return {c["name"]: c for c in json.loads(XENAPI_JSON.read_text())}


@lru_cache(maxsize=1)
def xenapi_enums() -> dict[str, list[str]]:
    """Every enum xenapi.json declares, by name; an enum declared by several classes must agree."""
    out: dict[str, list[str]] = {}
    for cls in xenapi().values():
        for enum in cls["enums"]:
            values = [v["name"] for v in enum["values"]]
            assert out.setdefault(enum["name"], values) == values, enum["name"]
    return out


def live_fields(cls: str) -> dict[str, dict]:
    return {f["name"]: f for f in xenapi()[cls]["fields"] if f["lifecycle"]["state"] != REMOVED}


def messages(cls: str) -> dict[str, dict]:
    return {m["name"]: m for m in xenapi()[cls]["messages"]}


def takes_session(message: dict) -> bool:
    params = message["params"]
    return bool(params) and params[0]["type"] == "session ref" and params[0]["name"] == "session_id"


# --------------------------------------------------------------------------- what is served


@lru_cache(maxsize=1)
def served_methods() -> tuple[str, ...]:
    """``system.listMethods`` of a freshly started simulator, fetched over XML-RPC."""
    with Simulator(hosts=1, vms=0, auth_failure_delay=0) as sim:
        response = xmlrpc.client.ServerProxy(sim.url).system.listMethods()
    assert response["Status"] == "Success", response
    return tuple(response["Value"])


def served_classes() -> list[str]:
    return sorted({name.split(".", 1)[0] for name in served_methods()})


def classes_with_records() -> list[str]:
    return [c for c in served_classes() if f"{c}.get_record" in served_methods()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "wire_name" in metafunc.fixturenames:
        metafunc.parametrize("wire_name", served_methods())
    if "served_class" in metafunc.fixturenames:
        metafunc.parametrize("served_class", served_classes())
    if "record_class" in metafunc.fixturenames:
        metafunc.parametrize("record_class", classes_with_records())
    if "enum_name" in metafunc.fixturenames:
        used = set(sim_enums())
        for cls in served_classes():
            used.update(e["name"] for e in xenapi()[cls]["enums"])
        metafunc.parametrize("enum_name", sorted(used))


# --------------------------------------------------------------------------- fixtures


class Wire:
    """XML-RPC calls to one simulator, answered as ``(ok, Value or ErrorDescription)``."""

    def __init__(self, url: str) -> None:
        self.proxy = xmlrpc.client.ServerProxy(url, allow_none=True)

    def __call__(self, method: str, *params: Any) -> tuple[bool, Any]:
        response = getattr(self.proxy, method)(*params)
        if response["Status"] == "Success":
            return True, response["Value"]
        return False, response["ErrorDescription"]

    def value(self, method: str, *params: Any) -> Any:
        ok, value = self(method, *params)
        assert ok, f"{method} failed: {value}"
        return value

    def login(self, sim: Simulator) -> str:
        return self.value("session.login_with_password", sim.username, sim.password, "1.1", "")


@pytest.fixture(scope="module")
def sim():
    with Simulator(hosts=2, vms=3, auth_failure_delay=0) as running:
        yield running


@pytest.fixture(scope="module")
def wire(sim: Simulator) -> Wire:
    return Wire(sim.url)


@pytest.fixture(scope="module")
def session(sim: Simulator, wire: Wire) -> str:
    return wire.login(sim)


@pytest.fixture(scope="module")
def objects(sim: Simulator, wire: Wire, session: str) -> dict[str, list[str]]:
    """Refs of every class with records; classes a default pool lacks get one object each."""
    refs = {}
    for cls in classes_with_records():
        if f"{cls}.get_all" in served_methods():
            refs[cls] = wire.value(f"{cls}.get_all", session)
    refs["session"] = [session]
    if not refs.get("task"):
        refs["task"] = [wire.value("task.create", session, "conformance", "a task")]
    if not refs.get("console"):
        refs["console"] = [wire.value("console.create", session, {"other_config": {}})]
    if not refs.get("message") and "message.create" in served_methods():
        pool_uuid = wire.value("pool.get_uuid", session, wire.value("pool.get_all", session)[0])
        refs["message"] = [
            wire.value("message.create", session, "CONFORMANCE", "3", "Pool", pool_uuid, "body")
        ]
    for cls in classes_with_records():
        if not refs.get(cls):
            # No API call makes one (e.g. VM_guest_metrics, written by the guest agent in XAPI):
            # the simulator's own default record, served through the normal get_record.
            refs[cls] = [sim.run(lambda xapi, cls=cls: xapi.db.create(cls))]
    return refs


# --------------------------------------------------------------------------- messages


def test_served_message_is_a_live_xenapi_message(wire_name: str) -> None:
    cls, _, name = wire_name.partition(".")
    assert cls in xenapi(), f"{wire_name}: class {cls!r} is not in xenapi.json"
    declared = messages(cls)
    if name in HIDDEN_WHERE and name not in declared:
        assert "get_all" in declared, (
            f"{wire_name}: hidden {name} served for a class without get_all"
        )
        return
    assert name in declared, f"{wire_name}: message {name!r} is not in xenapi.json"
    assert declared[name]["lifecycle"]["state"] != REMOVED, f"{wire_name} was removed from XAPI"


def test_too_few_arguments_give_parameter_count_mismatch(
    wire_name: str, sim: Simulator, wire: Wire, session: str
) -> None:
    cls, _, name = wire_name.partition(".")
    declared = messages(cls).get(name)
    if declared is None:  # a hidden get_all_where / get_all_records_where: (session, expr)
        with_session, params = True, 1
    else:
        with_session = takes_session(declared)
        params = len(declared["params"]) - with_session
    own = sim_classes()[cls].messages.get(name)
    defaults = len(own.defaults) if own is not None else 0
    expected = params - defaults
    if expected > 0:
        args: list[Any] = [""] * (expected - 1)
    elif defaults == 0:
        args = [""]  # no defaults: the count must match exactly, so one extra argument fails
    else:
        pytest.skip(f"{wire_name} takes no required arguments and ignores extra ones")
    if with_session:
        # A throwaway session: if the count check were missing, the call would run with it.
        args.insert(0, wire.login(sim) if expected == 0 else session)
    ok, error = wire(wire_name, *args)
    assert not ok, f"{wire_name} accepted {len(args) - with_session} arguments"
    received = len(args) - with_session
    assert error == ["MESSAGE_PARAMETER_COUNT_MISMATCH", wire_name, str(expected), str(received)]


def test_every_generated_message_of_a_served_class_is_served(served_class: str) -> None:
    missing = [
        f"{served_class}.{m['name']}"
        for m in xenapi()[served_class]["messages"]
        if m["implicit"]
        and m["lifecycle"]["state"] != REMOVED
        and f"{served_class}.{m['name']}" not in served_methods()
    ]
    assert not missing, "\n".join(missing)


# --------------------------------------------------------------------------- setters and qualifiers


def test_every_rw_field_has_a_served_setter(served_class: str) -> None:
    missing = [
        f"{served_class}.set_{f}"
        for f, spec in live_fields(served_class).items()
        if spec["qualifier"] == "RW" and f"{served_class}.set_{f}" not in served_methods()
    ]
    assert not missing, "\n".join(missing)


def test_no_ro_field_has_a_generated_setter(served_class: str) -> None:
    """A served ``set_f`` / ``add_to_f`` / ... of a RO field must be a custom XAPI message.

    XAPI generates setters only for RW fields; some RO fields have hand-written ones (e.g.
    ``task.set_status``, ``VM.set_memory_static_max``), which xenapi.json lists as not implicit.
    """
    declared = messages(served_class)
    wrong = []
    for f, spec in live_fields(served_class).items():
        if spec["qualifier"] == "RW":
            continue
        for prefix in ("set_", "add_to_", "remove_from_", "add_", "remove_"):
            name = prefix + f
            if f"{served_class}.{name}" not in served_methods():
                continue
            if name not in declared or declared[name]["implicit"]:
                wrong.append(f"{served_class}.{name} ({spec['qualifier']})")
    assert not wrong, "\n".join(wrong)


# --------------------------------------------------------------------------- records


def test_record_has_exactly_the_xenapi_fields(
    record_class: str, wire: Wire, session: str, objects: dict[str, list[str]]
) -> None:
    expected = set(live_fields(record_class))
    for ref in objects[record_class]:
        record = wire.value(f"{record_class}.get_record", session, ref)
        got = set(record)
        assert got == expected, (
            f"{record_class} {ref}: missing {sorted(expected - got)}, extra {sorted(got - expected)}"
        )


def test_record_values_have_their_declared_wire_types(
    record_class: str, wire: Wire, session: str, objects: dict[str, list[str]]
) -> None:
    fields = live_fields(record_class)
    problems = []
    for ref in objects[record_class]:
        record = wire.value(f"{record_class}.get_record", session, ref)
        for name, value in record.items():
            if name in fields:
                problems += wire_type_problems(fields[name]["type"], value, f"{ref} {name}")
    assert not problems, "\n".join(problems)


def wire_type_problems(type_text: str, value: Any, where: str) -> list[str]:
    """Why ``value`` (as xmlrpc.client decodes XAPI's XML-RPC) does not fit ``type_text``."""
    t = type_text.strip()

    def bad(expected: str) -> list[str]:
        return [f"{where}: {value!r} is not {expected} (declared {t})"]

    if t == "string":
        return [] if type(value) is str else bad("a str")
    if t == "int":  # untyped <value>: a str of decimal digits
        return [] if type(value) is str and WIRE_INT.fullmatch(value) else bad("a str of digits")
    if t == "float":
        return [] if type(value) is float else bad("a float (<double>)")
    if t == "bool":
        return [] if type(value) is bool else bad("a bool (<boolean>)")
    if t == "datetime":
        ok = isinstance(value, xmlrpc.client.DateTime) and WIRE_DATE.fullmatch(value.value)
        return [] if ok else bad("a DateTime YYYYMMDDTHH:MM:SSZ")
    if t.endswith(" ref"):
        return [] if type(value) is str and WIRE_REF.fullmatch(value) else bad("an OpaqueRef")
    if t.endswith(" set"):
        if type(value) is not list:
            return bad("a list")
        return [
            p
            for i, item in enumerate(value)
            for p in wire_type_problems(t[:-4], item, f"{where}[{i}]")
        ]
    if t.startswith("(") and t.endswith(") map"):
        key_type, value_type = split_map(t)
        if type(value) is not dict:
            return bad("a dict")
        problems = []
        for key, item in value.items():
            problems += wire_type_problems(key_type, key, f"{where} key {key!r}")
            problems += wire_type_problems(value_type, item, f"{where}[{key!r}]")
        return problems
    if t.endswith(" record"):
        return [] if type(value) is dict else bad("a dict")
    if t.startswith("enum "):
        name = t[5:]
        if name not in xenapi_enums():
            return [f"{where}: enum {name} is not declared in xenapi.json"]
        return [] if value in xenapi_enums()[name] else bad(f"one of {xenapi_enums()[name]}")
    return [f"{where}: the test does not know type {t!r}"]


def split_map(type_text: str) -> tuple[str, str]:
    inner = type_text[1:-5]
    depth = 0
    for i, char in enumerate(inner):
        depth += char == "("
        depth -= char == ")"
        if depth == 0 and inner.startswith(" -> ", i):
            return inner[:i], inner[i + 4 :]
    raise ValueError(f"not a map type: {type_text}")


def test_wire_type_check_rejects_what_xapi_would_not_send() -> None:
    """The checker above is itself the test's weak point: make sure it can say no."""
    assert wire_type_problems("int", 5, "x")  # an int must come as untyped text
    assert wire_type_problems("int", "5a", "x")
    assert wire_type_problems("float", "0.5", "x")
    assert wire_type_problems("datetime", "20240101T00:00:00Z", "x")
    assert wire_type_problems("VM ref", "VM-1", "x")
    assert wire_type_problems("enum vm_power_state", "running", "x")
    assert wire_type_problems("(string -> int) map", {"a": "x"}, "x")
    assert wire_type_problems("string set", ["a", 1], "x")
    assert not wire_type_problems("(string -> enum vm_operations) map", {"t": "start"}, "x")
    assert not wire_type_problems("int", "-1", "x")


# --------------------------------------------------------------------------- enums and defaults


def test_enum_values_match_xenapi(enum_name: str) -> None:
    assert enum_name in xenapi_enums(), f"enum {enum_name} is not in xenapi.json"
    assert enum_name in sim_enums(), f"enum {enum_name} is used by a served class but unknown"
    assert sim_enums()[enum_name] == xenapi_enums()[enum_name]


def decode_default(type_text: str, text: str) -> Any:
    """xenapi.json's textual default (OCaml-ish: ``""``, ``{}``, ``{"a" -> "b"}``, ``Null``)."""
    t = type_text.strip()
    if t == "string":
        return json.loads(text)
    if t == "int":
        return int(text)
    if t == "float":
        return float(text)
    if t == "bool":
        return {"true": True, "false": False}[text]
    if t.endswith(" ref"):
        return "OpaqueRef:NULL" if text in ("Null", "OpaqueRef:NULL") else text
    if t.endswith(" set"):
        body = text.strip()[1:-1].strip()
        return [decode_default(t[:-4], item.strip()) for item in body.split(",")] if body else []
    if t.startswith("(") and t.endswith(") map"):
        key_type, value_type = split_map(t)
        body = text.strip()[1:-1].strip()
        out = {}
        for pair in filter(None, (p.strip() for p in body.split(","))):
            key, _, item = pair.partition(" -> ")
            out[decode_default(key_type, key)] = decode_default(value_type, item)
        return out
    return text  # datetime and enum defaults are written as their wire text


def test_new_record_defaults_match_xenapi(served_class: str) -> None:
    """Fields a constructor does not set start at xenapi.json's default in the simulator."""
    fresh = sim_classes()[served_class].new_record()
    wrong = []
    for name, spec in live_fields(served_class).items():
        if "default" not in spec or name not in fresh:
            continue
        expected = decode_default(spec["type"], spec["default"])
        if fresh[name] != expected:
            wrong.append(f"{name}: {fresh[name]!r} != {expected!r} (xenapi.json {spec['default']})")
    assert not wrong, "\n".join(wrong)
