"""The client's wire codec (os_xenapi.client.wire), with the stdlib's xmlrpc.client and json as
referees and canned replies shaped like xapi's (shared/xapi/PROTOCOL.md sections 1.2 and 1.3)."""

from __future__ import annotations

import datetime as dt
import json
import math
import xmlrpc.client
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from os_xenapi.client import wire, xmlrpc_reply
from os_xenapi.client.exception import ProtocolError

XAPI_HEAD = b'<?xml version="1.0"?><methodResponse><params><param><value><struct>'
XAPI_TAIL = b"</struct></value></param></params></methodResponse>"
REF = "OpaqueRef:2b2c4ed6-4b5b-4b43-a3c7-5d9f0d1b0a11"


def xapi_success(value_xml: str) -> bytes:
    """A reply as xapi writes it: compact, Status first, strings untyped."""
    return (XAPI_HEAD + b"<member><name>Status</name><value>Success</value></member>"
            b"<member><name>Value</name>" + value_xml.encode() + b"</member>" + XAPI_TAIL)


def xapi_failure(*details: str) -> bytes:
    items = "".join(f"<value>{d}</value>" for d in details)
    return (XAPI_HEAD + b"<member><name>Status</name><value>Failure</value></member>"
            b"<member><name>ErrorDescription</name><value><array><data>" + items.encode()
            + b"</data></array></value></member>" + XAPI_TAIL)


def compact_reply(value: Any) -> bytes:
    """A success reply around ``value``, written by the client's own compact encoder."""
    return xapi_success(wire.encode_xmlrpc_value(value))


def stdlib_reply(value: Any) -> bytes:
    """The same reply written by the stdlib: indented, strings as <string>."""
    return xmlrpc.client.dumps(({"Status": "Success", "Value": value},), methodresponse=True,
                               allow_none=True).encode()


# --------------------------------------------------------------------------- strategies

XML_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff")
                   .filter(lambda c: c in "\t\n\r" or ord(c) >= 0x20), max_size=20)
INT32 = st.integers(-(2**31), 2**31 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)


def values(ints: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    scalars = XML_TEXT | ints | st.booleans() | FLOATS | st.none()
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(XML_TEXT, inner, max_size=4),
        max_leaves=12,
    )


# --------------------------------------------------------------------------- XML-RPC requests


@given(st.lists(values(st.integers(-(2**63), 2**63 - 1)), max_size=4))
@settings(max_examples=200, deadline=None)
def test_xmlrpc_call_round_trips_through_the_stdlib(params: list[Any]) -> None:
    params_back, method = xmlrpc.client.loads(wire.encode_xmlrpc_call("VM.set_tags", params))
    assert method == "VM.set_tags"
    assert list(params_back) == params


def test_xmlrpc_call_writes_strings_untyped_and_big_ints_as_i8() -> None:
    body = wire.encode_xmlrpc_call("VM.set_memory", [REF, 2**40, 5])
    assert f"<value>{REF}</value>".encode() in body
    assert b"<i8>1099511627776</i8>" in body and b"<int>5</int>" in body


def test_xmlrpc_call_escapes_markup_and_keeps_carriage_returns() -> None:
    body = wire.encode_xmlrpc_call("VM.set_name_label", ["a<b>&c\r\n"])
    assert xmlrpc.client.loads(body)[0] == ("a<b>&c\r\n",)


def test_xmlrpc_call_sends_datetimes_in_xapi_format() -> None:
    moment = dt.datetime(2024, 1, 15, 11, 20, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    body = wire.encode_xmlrpc_call("task.set_created", [moment])
    assert b"<dateTime.iso8601>20240115T10:20:30Z</dateTime.iso8601>" in body


@pytest.mark.parametrize(
    ("param", "error", "words"),
    [
        (b"raw", TypeError, "bytes"),
        (object(), TypeError, "object"),
        ({1: "x"}, TypeError, "keys must be str"),
        ("bell\x07", ValueError, "XML 1.0"),
        (math.nan, ValueError, "nan"),
        (2**64, ValueError, "64-bit"),
    ],
)
def test_xmlrpc_call_refuses_what_xapi_cannot_take(param: Any, error: type, words: str) -> None:
    with pytest.raises(error, match=words) as info:
        wire.encode_xmlrpc_call("VM.set_name_label", ["ok", param])
    assert "parameter 2 of VM.set_name_label" in str(info.value)


def test_xmlrpc_call_needs_a_method_name() -> None:
    with pytest.raises(TypeError, match="method name"):
        wire.encode_xmlrpc_call("", [])


# --------------------------------------------------------------------------- XML-RPC replies


@given(values(INT32))
@settings(max_examples=300, deadline=None)
def test_compact_reply_decodes_as_the_stdlib_reads_it(value: Any) -> None:
    body = compact_reply(value)
    expected = xmlrpc.client.loads(body)[0][0]["Value"]
    assert wire.decode_xmlrpc_response(body) == wire.Reply(True, expected)


@given(values(INT32))
@settings(max_examples=300, deadline=None)
def test_indented_stdlib_reply_decodes_to_the_same_values(value: Any) -> None:
    body = stdlib_reply(value)
    assert wire.decode_xmlrpc_response(body) == wire.Reply(True, xmlrpc.client.loads(body)[0][0]["Value"])


@given(values(INT32))
@settings(max_examples=200, deadline=None)
def test_fast_path_reads_every_compact_reply(value: Any) -> None:
    body = compact_reply(value)
    assert xmlrpc_reply._fast_value(body, None)["Value"] == xmlrpc.client.loads(body)[0][0]["Value"]


@given(values(INT32))
@settings(max_examples=200, deadline=None)
def test_fast_path_never_misreads_an_indented_reply(value: Any) -> None:
    body = stdlib_reply(value)
    try:
        decoded = xmlrpc_reply._fast_value(body, None)
    except xmlrpc_reply._Slow:
        return  # left to the general path, as it should be
    assert decoded["Value"] == xmlrpc.client.loads(body)[0][0]["Value"]


def test_newlines_before_start_tags_only_are_read_as_layout() -> None:
    body = xapi_success("<value><struct>\n<member>\n<name>a</name>\n<value>1</value></member>"
                        "\n<member>\n<name>b</name>\n<value></value></member></struct></value>")
    assert wire.decode_xmlrpc_response(body).value == {"a": "1", "b": ""}


def test_long_texts_stay_on_the_fast_path() -> None:
    long_text = "x" * 20_000 + "\n" + "a&b" * 5_000
    body = compact_reply({"a": long_text, "b": "c"})
    assert xmlrpc_reply._fast_value(body, None)["Value"] == {"a": long_text, "b": "c"}


def test_compact_reply_takes_the_fast_path() -> None:
    body = compact_reply({REF: {"name_label": "vm", "VCPUs_max": "4", "tags": ["a", ""],
                                "other_config": {}, "is_a_template": False, "x": ""}})
    assert xmlrpc_reply._fast_value(body, None)["Value"][REF]["tags"] == ["a", ""]


def test_untyped_values_stay_strings() -> None:
    body = xapi_success("<value><struct><member><name>memory_static_max</name><value>4294967296</value>"
                        "</member><member><name>VCPUs_max</name><value>4</value></member></struct></value>")
    assert wire.decode_xmlrpc_response(body).value == {"memory_static_max": "4294967296",
                                                       "VCPUs_max": "4"}


def test_typed_values_get_their_python_type() -> None:
    body = xapi_success(
        "<value><struct><member><name>vm</name><value><i4>6</i4></value></member>"
        "<member><name>big</name><value><i8>-9007199254740993</i8></value></member>"
        "<member><name>ok</name><value><boolean>1</boolean></value></member>"
        "<member><name>progress</name><value><double>0.25</double></value></member>"
        "<member><name>nothing</name><value><nil/></value></member>"
        "<member><name>blob</name><value><base64>aGk=</base64></value></member></struct></value>")
    assert wire.decode_xmlrpc_response(body).value == {
        "vm": 6, "big": -9007199254740993, "ok": True, "progress": 0.25, "nothing": None,
        "blob": b"hi"}


def test_typed_strings_and_empty_typed_values_in_a_compact_reply() -> None:
    body = xapi_success("<value><array><data><value><string>a b</string></value>"
                        "<value><string></string></value><value><nil/></value>"
                        "<value><struct></struct></value><value><array><data></data></array>"
                        "</value></data></array></value>")
    assert xmlrpc_reply._fast_value(body, None)["Value"] == ["a b", "", None, {}, []]
    assert wire.decode_xmlrpc_response(body).value == ["a b", "", None, {}, []]


def test_dates_come_back_as_text_unless_a_type_is_given() -> None:
    body = xapi_success("<dateTime.iso8601>20240115T10:20:30Z</dateTime.iso8601>".join(
        ["<value>", "</value>"]))
    assert wire.decode_xmlrpc_response(body).value == "20240115T10:20:30Z"
    as_sdk = wire.decode_xmlrpc_response(body, datetime_type=xmlrpc.client.DateTime).value
    assert isinstance(as_sdk, xmlrpc.client.DateTime) and as_sdk.value == "20240115T10:20:30Z"


def test_entities_and_carriage_returns_are_decoded() -> None:
    body = xapi_success("<value>a&amp;b &lt;c&gt; &#13;d</value>")
    assert wire.decode_xmlrpc_response(body).value == "a&b <c> \rd"


def test_whitespace_only_values_are_data() -> None:
    body = xapi_success("<value><array><data><value> </value><value>\n</value><value></value>"
                        "</data></array></value>")
    assert wire.decode_xmlrpc_response(body).value == [" ", "\n", ""]


def test_leading_whitespace_in_a_compact_reply_is_kept() -> None:
    body = xapi_success("<value><struct><member><name> k</name><value>\tv</value></member></struct></value>")
    assert wire.decode_xmlrpc_response(body).value == {" k": "\tv"}


def test_self_closing_and_commented_values_are_read() -> None:
    body = xapi_success("<value><array><data><value/><value><!-- c -->x</value>"
                        "<value><![CDATA[<struct>]]></value></data></array></value>")
    assert wire.decode_xmlrpc_response(body).value == ["", "x", "<struct>"]


def test_nested_arrays_keep_their_shape() -> None:
    value = [[], ["a"], [["b", "c"], []], {"k": [[]]}]
    assert wire.decode_xmlrpc_response(compact_reply(value)).value == value


def test_failure_is_the_error_description_list() -> None:
    body = xapi_failure("HANDLE_INVALID", "VM", REF)
    assert wire.decode_xmlrpc_response(body) == wire.Reply(False, ["HANDLE_INVALID", "VM", REF])


def test_xapi_login_reply_gives_the_session_ref() -> None:
    assert wire.decode_xmlrpc_response(xapi_success(f"<value>{REF}</value>")).value == REF


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"<html><body>500</body></html>", "not a <methodResponse>"),
        (b"not xml at all", "not well-formed"),
        (b"<methodResponse><params><param><value><struct>", "not well-formed"),
        (xapi_success("<value><struct><member><name>a</name></member></struct></value>"),
         "member"),
        (xapi_success("<value><float>1</float></value>"), "unknown value type"),
        (xapi_success("<value><boolean>yes</boolean></value>"), "boolean"),
        (xapi_success("<value><int>1.5</int></value>"), "not an integer"),
        (XAPI_HEAD + b"<member><name>Status</name><value>Success</value></member>" + XAPI_TAIL,
         "Success without a Value"),
        (XAPI_HEAD + b"<member><name>Status</name><value>Failure</value></member>" + XAPI_TAIL,
         "ErrorDescription"),
        (XAPI_HEAD + b"<member><name>Status</name><value>Maybe</value></member>" + XAPI_TAIL,
         "unknown Status"),
        (b"<?xml version='1.0'?><methodResponse><params><param><value>x</value></param>"
         b"</params></methodResponse>", "not a struct with a Status"),
        (b"<methodResponse><params><param><value><struct><member><name>Status</name>"
         b"<value>Success</value></member><member><name>Value</name><value>1</value>"
         b"</member><bogus/></struct></value></param></params></methodResponse>", "bogus"),
    ],
)
def test_malformed_replies_raise_a_protocol_error(body: bytes, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        wire.decode_xmlrpc_response(body)


def test_an_xmlrpc_fault_is_reported_with_its_text() -> None:
    body = xmlrpc.client.dumps(xmlrpc.client.Fault(3, "no such method"), methodresponse=True)
    with pytest.raises(ProtocolError, match="fault 3: no such method"):
        wire.decode_xmlrpc_response(body.encode())


def test_a_doctype_is_refused_so_entities_cannot_expand() -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
              b"<methodResponse><params><param><value>&lol2;</value></param></params>"
              b"</methodResponse>")
    with pytest.raises(ProtocolError, match="DOCTYPE"):
        wire.decode_xmlrpc_response(laughs)


def test_undeclared_entities_are_malformed() -> None:
    with pytest.raises(ProtocolError, match="not well-formed"):
        wire.decode_xmlrpc_response(xapi_success("<value>&secret;</value>"))


# --------------------------------------------------------------------------- task results


def test_task_result_fragment_gives_the_ref() -> None:
    assert wire.decode_xmlrpc_value(f"<value>{REF}</value>") == REF


def test_void_task_result_is_the_empty_string() -> None:
    assert wire.decode_xmlrpc_value("<value></value>") == ""


def test_set_task_result_is_a_list() -> None:
    assert wire.decode_xmlrpc_value(
        f"<value><array><data><value>{REF}</value></data></array></value>") == [REF]


def test_empty_task_result_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="finished"):
        wire.decode_xmlrpc_value("")


# --------------------------------------------------------------------------- JSON-RPC


def test_jsonrpc_call_is_version_2() -> None:
    body = json.loads(wire.encode_jsonrpc_call("VM.get_all", [REF], 7))
    assert body == {"jsonrpc": "2.0", "method": "VM.get_all", "params": [REF], "id": 7}


def test_jsonrpc_call_sends_datetimes_as_xapi_text() -> None:
    moment = dt.datetime(2024, 1, 15, 10, 20, 30)
    body = json.loads(wire.encode_jsonrpc_call("m", [moment, xmlrpc.client.DateTime(
        "20200101T00:00:00Z")], 1))
    assert body["params"] == ["20240115T10:20:30Z", "20200101T00:00:00Z"]


@pytest.mark.parametrize(("param", "error"), [(b"x", TypeError), ({2: "x"}, TypeError),
                                              (math.inf, ValueError), (-(2**63) - 1, ValueError)])
def test_jsonrpc_call_refuses_what_xapi_cannot_take(param: Any, error: type) -> None:
    with pytest.raises(error, match="parameter 1 of m"):
        wire.encode_jsonrpc_call("m", [param], 1)


def test_jsonrpc_v2_success() -> None:
    body = b'{"jsonrpc":"2.0","result":{"VCPUs_max":4},"id":3}'
    assert wire.decode_jsonrpc_response(body, 3) == wire.Reply(True, {"VCPUs_max": 4})


def test_jsonrpc_v2_failure_becomes_the_error_list() -> None:
    body = b'{"jsonrpc":"2.0","error":{"code":1,"message":"HANDLE_INVALID","data":["VM","x"]},"id":3}'
    assert wire.decode_jsonrpc_response(body, 3) == wire.Reply(False, ["HANDLE_INVALID", "VM", "x"])


def test_jsonrpc_v2_failure_without_data() -> None:
    body = b'{"jsonrpc":"2.0","error":{"code":1,"message":"SR_NOT_EMPTY"},"id":3}'
    assert wire.decode_jsonrpc_response(body) == wire.Reply(False, ["SR_NOT_EMPTY"])


def test_jsonrpc_v1_success_and_failure() -> None:
    assert wire.decode_jsonrpc_response(b'{"result":"","error":null,"id":1}') == wire.Reply(True, "")
    body = b'{"result":null,"error":["SESSION_INVALID","OpaqueRef:x"],"id":1}'
    assert wire.decode_jsonrpc_response(body) == wire.Reply(False, ["SESSION_INVALID", "OpaqueRef:x"])


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"<html>", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"id":1}', "neither result nor error"),
        (b'{"error":{"code":1},"id":1}', "unknown error shape"),
        (b'{"result":1,"id":99}', "request 99"),
    ],
)
def test_malformed_jsonrpc_replies_raise_a_protocol_error(body: bytes, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        wire.decode_jsonrpc_response(body, 1)


# --------------------------------------------------------------------------- typed helpers


def test_as_int_reads_both_wires() -> None:
    assert wire.as_int("4294967296") == 4294967296
    assert wire.as_int(-3) == -3


@pytest.mark.parametrize("bad", ["4.5", "", True, None])
def test_as_int_refuses_non_ints(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        wire.as_int(bad)


def test_as_float_and_as_bool() -> None:
    assert wire.as_float("0.5") == 0.5 and wire.as_float(2) == 2.0
    assert wire.as_bool(True) and wire.as_bool("true") and not wire.as_bool("False")
    with pytest.raises(ValueError):
        wire.as_bool("yes")


UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240115T10:20:30Z", dt.datetime(2024, 1, 15, 10, 20, 30, tzinfo=UTC)),
        ("2024-01-15T10:20:30Z", dt.datetime(2024, 1, 15, 10, 20, 30, tzinfo=UTC)),
        ("20240115T10:20:30", dt.datetime(2024, 1, 15, 10, 20, 30, tzinfo=UTC)),
        ("20240115T12:20:30+02:00", dt.datetime(2024, 1, 15, 10, 20, 30, tzinfo=UTC)),
        ("2024-01-15T10:20:30.250Z", dt.datetime(2024, 1, 15, 10, 20, 30, 250000, tzinfo=UTC)),
        ("19700101T00:00:00Z", dt.datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_as_datetime_reads_xapi_dates(text: str, expected: dt.datetime) -> None:
    assert wire.as_datetime(text) == expected
    assert wire.as_datetime(xmlrpc.client.DateTime(text)) == expected


def test_as_datetime_takes_naive_datetimes_as_utc() -> None:
    assert wire.as_datetime(dt.datetime(2024, 1, 1)).tzinfo is UTC


@pytest.mark.parametrize("bad", ["yesterday", "20241315T10:20:30Z", "2024-01-15"])
def test_as_datetime_refuses_other_text(bad: str) -> None:
    with pytest.raises(ValueError, match="date"):
        wire.as_datetime(bad)


def test_null_refs_mean_no_object() -> None:
    assert wire.as_ref("OpaqueRef:NULL") is None and wire.as_ref("") is None
    assert wire.as_ref(REF) == REF
    assert wire.is_null_ref(wire.NULL_REF) and not wire.is_null_ref(REF)
