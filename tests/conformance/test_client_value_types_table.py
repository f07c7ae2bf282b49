"""The client's value-type table (src/os_xenapi/client/value_types.json) is what
tools/gen_client_types.py writes from XAPI's data model, and says what xenapi.json says."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from os_xenapi.client import value_types

ROOT = Path(__file__).resolve().parents[2]
XENAPI_JSON = ROOT.parent / "shared/xapi/xenapi.json"
GENERATOR = ROOT / "tools/gen_client_types.py"
CODES = {"int": "i", "float": "f", "datetime": "d"}

if not XENAPI_JSON.is_file():
    pytest.skip(f"XAPI's data model {XENAPI_JSON} is absent", allow_module_level=True)


def generator():
    spec = importlib.util.spec_from_file_location("gen_client_types", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_table_is_the_generators_output() -> None:
    built = generator().build(json.loads(XENAPI_JSON.read_text()))
    assert value_types.table() == built, "run: python tools/gen_client_types.py"


def test_every_int_float_and_datetime_field_and_getter_is_in_the_table() -> None:
    table = value_types.table()
    checked = 0
    for cls in json.loads(XENAPI_JSON.read_text()):
        if cls["name"] == "event":
            continue  # its id and timestamp are strings on both wires (Event_types)
        getters = {m["name"] for m in cls["messages"]}
        for field in cls["fields"]:
            code = CODES.get(field["type"])
            if code:
                assert table["records"][cls["name"]][field["name"]] == code
                if f"get_{field['name']}" in getters:  # records such as sr_stat have none
                    assert table["results"][f"{cls['name']}.get_{field['name']}"] == code
                    checked += 1
    assert checked > 90


def test_records_and_their_maps_name_their_class() -> None:
    results = value_types.table()["results"]
    assert results["VM.get_record"] == "RVM"
    assert results["VM.get_all_records"] == results["VM.get_all_records_where"] == "MRVM"
    assert results["VM.get_data_sources"] == "SRdata_source"
    assert results["SM.get_features"] == "Mi"
    assert results["event.next"] == "Se"
