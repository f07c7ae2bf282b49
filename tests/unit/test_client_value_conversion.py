"""os_xenapi.client.value_types on values as the transport decodes them, without a server: what
the data model says each position holds is put in XML-RPC's types (0.3.4's) or JSON-RPC's."""

from __future__ import annotations

import ast
import sys
import threading
import xmlrpc.client
from pathlib import Path

import pytest

from os_xenapi.client import value_types, wire
from os_xenapi.client.exception import ProtocolError
from os_xenapi.client.value_types import NATIVE_TYPES, XMLRPC_TYPES, ValueTypes

CLIENT = Path(value_types.__file__).parent
DATE = "20240115T10:20:30Z"


def compat() -> ValueTypes:
    return ValueTypes(XMLRPC_TYPES)


def native() -> ValueTypes:
    return ValueTypes(NATIVE_TYPES)


def json_reply(text: str) -> object:
    """A JSON-RPC result decoded as an XMLRPC_TYPES session's transport decodes it."""
    options = compat().transport_options()
    reply = wire.decode_jsonrpc_response(text.encode(), 1, int_type=options["json_int_type"])
    assert reply.ok
    return reply.value


# --------------------------------------------------------------------------- JSON-RPC -> 0.3.4's


def test_jsonrpc_ints_are_decoded_as_strings_like_xmlrpcs_untyped_values() -> None:
    value = json_reply('{"jsonrpc":"2.0","result":{"domid":-1,"VCPUs_max":4},"id":1}')
    assert value == {"domid": "-1", "VCPUs_max": "4"}


def test_reply_ids_are_checked_as_ints_when_ints_are_decoded_as_strings() -> None:
    assert wire.decode_jsonrpc_response(b'{"jsonrpc":"2.0","result":5,"id":1}', 1,
                                        int_type=str).value == "5"
    with pytest.raises(ProtocolError, match="JSON-RPC reply to request 2, expected 1"):
        wire.decode_jsonrpc_response(b'{"jsonrpc":"2.0","result":"x","id":2}', 1, int_type=str)


def test_a_datetime_field_becomes_an_xmlrpc_datetime() -> None:
    record = {"snapshot_time": DATE, "domid": "3", "name_label": "a"}
    got = compat().convert("VM.get_record", "jsonrpc", record)
    assert isinstance(got["snapshot_time"], xmlrpc.client.DateTime)
    assert got["snapshot_time"].value == DATE
    assert (got["domid"], got["name_label"]) == ("3", "a")


def test_a_float_written_without_a_point_becomes_a_float() -> None:
    assert compat().convert("VM.query_data_source", "jsonrpc", "1") == 1.0
    assert type(compat().convert("VM.query_data_source", "jsonrpc", "1")) is float
    record = compat().convert("VM.get_record", "jsonrpc", {"HVM_shadow_multiplier": "2"})
    assert record == {"HVM_shadow_multiplier": 2.0}
    metrics = compat().convert("VM_metrics.get_VCPUs_utilisation", "jsonrpc", {"0": "1", "1": 0.5})
    assert metrics == {"0": 1.0, "1": 0.5} and type(metrics["0"]) is float


def test_maps_of_records_and_sets_of_records_are_converted_record_by_record() -> None:
    records = {"OpaqueRef:a": {"snapshot_time": DATE}, "OpaqueRef:b": {"snapshot_time": DATE}}
    for method in ("VDI.get_all_records", "VDI.get_all_records_where"):
        got = compat().convert(method, "jsonrpc", {k: dict(v) for k, v in records.items()})
        assert all(isinstance(r["snapshot_time"], xmlrpc.client.DateTime) for r in got.values())
    sources = compat().convert("VM.get_data_sources", "jsonrpc", [{"value": "0", "min": 0.0}])
    assert sources == [{"value": 0.0, "min": 0.0}]


def test_event_snapshots_follow_the_class_the_event_names() -> None:
    batch = {"events": [{"id": "7", "timestamp": "0.0", "class": "vdi", "operation": "mod",
                         "ref": "OpaqueRef:a", "snapshot": {"snapshot_time": DATE}},
                        {"id": "8", "timestamp": "0.0", "class": "vm", "operation": "del",
                         "ref": "OpaqueRef:b"}],
             "valid_ref_counts": {"vm": "2", "vdi": "1"}, "token": "1,0"}
    got = compat().convert("event.from", "jsonrpc", batch)
    first = got["events"][0]
    assert isinstance(first["snapshot"]["snapshot_time"], xmlrpc.client.DateTime)
    assert (first["id"], first["timestamp"]) == ("7", "0.0")  # strings on both wires
    assert got["valid_ref_counts"] == {"vm": 2, "vdi": 1}  # XAPI's 32-bit ints: <i4>, int
    legacy = compat().convert("event.next", "jsonrpc", [{"class": "VDI", "snapshot": {
        "snapshot_time": DATE}}])
    assert isinstance(legacy[0]["snapshot"]["snapshot_time"], xmlrpc.client.DateTime)


def test_xapis_other_spelling_of_a_method_is_converted_too() -> None:
    assert isinstance(compat().convert("host_get_servertime", "jsonrpc", DATE),
                      xmlrpc.client.DateTime)
    assert isinstance(compat().convert("VM_metrics_get_start_time", "jsonrpc", DATE),
                      xmlrpc.client.DateTime)


def test_async_calls_and_unknown_methods_are_left_as_decoded() -> None:
    assert compat().convert("Async.VM.clone", "jsonrpc", "OpaqueRef:t") == "OpaqueRef:t"
    assert compat().convert("VM.no_such_message", "jsonrpc", DATE) == DATE
    assert compat().convert("nodot", "jsonrpc", {"a": DATE}) == {"a": DATE}


def test_values_of_another_shape_than_the_data_models_are_left_alone() -> None:
    assert compat().convert("VM.get_record", "jsonrpc", "not a record") == "not a record"
    assert compat().convert("VM.query_data_source", "jsonrpc", "nan?") == "nan?"
    assert compat().convert("event.from", "jsonrpc", {"events": None}) == {"events": None}


def test_xmlrpc_replies_are_already_0_3_4s_types() -> None:
    record = {"domid": "1", "snapshot_time": xmlrpc.client.DateTime(DATE)}
    assert compat().convert("VM.get_record", "xmlrpc", record) is record
    assert record["domid"] == "1"


# --------------------------------------------------------------------------- native types


def test_native_types_turn_xmlrpcs_int_strings_into_ints() -> None:
    got = native().convert("VM.get_record", "xmlrpc",
                           {"domid": "-1", "VCPUs_max": "4", "name_label": "7",
                            "snapshot_time": DATE})
    assert got == {"domid": -1, "VCPUs_max": 4, "name_label": "7", "snapshot_time": DATE}
    assert native().convert("SM.get_features", "xmlrpc", {"VDI_CREATE": "1"}) == {"VDI_CREATE": 1}
    assert native().convert("host.get_virtual_hardware_platform_versions", "xmlrpc",
                            ["0", "1"]) == [0, 1]
    batch = native().convert("event.from", "xmlrpc", {
        "events": [{"class": "vm", "snapshot": {"domid": "2"}}], "valid_ref_counts": {"vm": 1}})
    assert batch["events"][0]["snapshot"] == {"domid": 2}


def test_native_types_leave_jsonrpc_replies_as_decoded() -> None:
    record = {"domid": -1}
    assert native().convert("VM.get_record", "jsonrpc", record) is record


def test_native_transport_options_decode_the_wire_as_it_is() -> None:
    assert native().transport_options() == {"datetime_type": None, "json_int_type": int}
    assert compat().transport_options() == {"datetime_type": xmlrpc.client.DateTime,
                                            "json_int_type": str}


def test_an_unknown_mode_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="value types are one of xmlrpc, native, not 'json'"):
        ValueTypes("json")


# --------------------------------------------------------------------------- the table


def test_the_table_is_package_data_of_the_client() -> None:
    table = value_types.table()
    assert table["results"]["VM.get_domid"] == "i"
    assert table["records"]["VM"]["snapshot_time"] == "d"
    assert table["results"]["event.from"] == "b"


def test_the_client_never_imports_the_simulator_for_its_types() -> None:
    tree = ast.parse((CLIENT / "value_types.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any("simulator" in name for name in imported)


def test_threads_that_first_use_a_session_together_all_get_converted_values() -> None:
    # XenAPISession threads share one ValueTypes; the first calls of a method may come from
    # several threads at once. A tiny switch interval makes them interleave inside it.
    methods = ("VM.get_record", "VM.get_all_records", "VM.get_all_records_where", "VDI.get_record")
    wrong = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(40):
            types = compat()
            start = threading.Barrier(len(methods))

            def call(method: str, types: ValueTypes = types,
                     start: threading.Barrier = start) -> None:
                record = {"snapshot_time": DATE}
                start.wait()
                value = types.convert(method, "jsonrpc",
                                      {"OpaqueRef:a": record} if "all" in method else record)
                if not isinstance(record["snapshot_time"], xmlrpc.client.DateTime):
                    wrong.append(method)
                assert value

            threads = [threading.Thread(target=call, args=(m,)) for m in methods]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []
