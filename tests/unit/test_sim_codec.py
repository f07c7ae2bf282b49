"""Tests for the simulator's XML-RPC / JSON-RPC codec (os_xenapi.simulator.codec)."""

from __future__ import annotations

import datetime as dt
import enum
import json
import time
import xml.etree.ElementTree as ET
import xmlrpc.client as xc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from os_xenapi.simulator.codec import (
    MAX_NESTING,
    CodecError,
    IntRangeError,
    JsonRpcCall,
    decode_jsonrpc_call,
    decode_xmlrpc_call,
    encode_jsonrpc_failure,
    encode_jsonrpc_success,
    encode_xmlrpc_call,
    encode_xmlrpc_failure,
    encode_xmlrpc_success,
    encode_xmlrpc_value,
)
from os_xenapi.simulator.values import DateTime, Int32

# ------------------------------------------------------------------------------ strategies

UNWRITABLE = {chr(c) for c in range(32) if chr(c) not in "\t\n\r"} | {"\ufffe", "\uffff"}
XML_SAFE = st.characters(
    blacklist_categories=("Cs",),
    blacklist_characters=sorted(UNWRITABLE | {"\r"}),
)
any_text = st.text(st.characters(codec="utf-8") | st.sampled_from(sorted(UNWRITABLE)))
safe_text = st.text(XML_SAFE)
datetimes = st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2199, 12, 31))

xapi_scalars = (
    any_text
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.integers(min_value=-(2**31), max_value=2**31 - 1).map(Int32)
    | st.floats(allow_nan=False)
    | st.booleans()
    | datetimes.map(DateTime.from_datetime)
)
xapi_values = st.recursive(
    xapi_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(safe_text, inner, max_size=4),
    max_leaves=25,
)

stdlib_scalars = (
    safe_text
    | st.integers(min_value=-(2**31), max_value=2**31 - 1)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.none()
    | st.binary()
    | datetimes.map(lambda moment: xc.DateTime(DateTime.from_datetime(moment)))
)
stdlib_values = st.recursive(
    stdlib_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(safe_text, inner, max_size=4),
    max_leaves=25,
)


# ------------------------------------------------------------------------------ helpers


def typed(value):
    """``value`` as a tree that also records every type, so that 1 != True != "1" != DateTime."""
    if isinstance(value, xc.DateTime):
        return ("DateTime", value.value)
    if isinstance(value, dict):
        return ("dict", {key: typed(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return ("list", [typed(item) for item in value])
    return (type(value).__name__, value)


def as_xapi_writes_it(value):
    """What a reader gets back from our XML: untyped ints are strings, unwritable chars gone."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Int32):
        return int(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, DateTime):
        return value
    if isinstance(value, str):
        return "".join(
            char for char in value if char not in UNWRITABLE and not 0xD800 <= ord(char) < 0xE000
        )
    if isinstance(value, list):
        return [as_xapi_writes_it(item) for item in value]
    if isinstance(value, dict):
        return {key: as_xapi_writes_it(item) for key, item in value.items()}
    return value


def response_members(document: bytes) -> list[tuple[str, ET.Element]]:
    """The (name, value element) members of a methodResponse's top struct, in order."""
    struct = ET.fromstring(document).find("./params/param/value/struct")
    return [(member.findtext("name"), member.find("value")) for member in struct]


def call(params: str, method: str = "VM.get_all") -> bytes:
    """A methodCall document with hand-written params XML."""
    return f"<methodCall><methodName>{method}</methodName><params>{params}</params></methodCall>".encode()


def one_param(value_xml: str):
    """Decode a call whose single param is ``value_xml`` and return that param."""
    method, params = decode_xmlrpc_call(call(f"<param>{value_xml}</param>"))
    assert len(params) == 1
    return params[0]


# ------------------------------------------------------------------------------ XML-RPC responses


def test_success_response_starts_with_xml_declaration_and_method_response():
    assert encode_xmlrpc_success("x").startswith(b'<?xml version="1.0"?><methodResponse><params>')


def test_success_response_has_status_success_as_first_member_then_value():
    members = response_members(encode_xmlrpc_success("OpaqueRef:1"))
    assert [(name, value.text) for name, value in members] == [
        ("Status", "Success"),
        ("Value", "OpaqueRef:1"),
    ]


def test_failure_response_has_status_failure_first_then_error_description_strings():
    document = encode_xmlrpc_failure(["HANDLE_INVALID", "VM", "OpaqueRef:x"])
    members = response_members(document)
    assert [name for name, _ in members] == ["Status", "ErrorDescription"]
    assert members[0][1].text == "Failure"
    assert xc.loads(document)[0][0]["ErrorDescription"] == ["HANDLE_INVALID", "VM", "OpaqueRef:x"]


def test_failure_without_error_code_is_refused():
    with pytest.raises(ValueError):
        encode_xmlrpc_failure([])


def test_string_is_written_as_untyped_value():
    assert encode_xmlrpc_value("OpaqueRef:x") == "<value>OpaqueRef:x</value>"


def test_void_is_an_empty_untyped_value():
    assert encode_xmlrpc_value("") == "<value></value>"


def test_int_is_written_untyped_like_xapi():
    assert encode_xmlrpc_value(2**63 - 1) == "<value>9223372036854775807</value>"


def test_int32_is_written_as_i4():
    assert encode_xmlrpc_value(Int32(-6)) == "<value><i4>-6</i4></value>"


def test_bool_is_written_as_boolean_not_as_int():
    assert encode_xmlrpc_value([True, False]) == (
        "<value><array><data><value><boolean>1</boolean></value>"
        "<value><boolean>0</boolean></value></data></array></value>"
    )


def test_bool_struct_member_is_written_as_boolean():
    assert "<boolean>1</boolean>" in encode_xmlrpc_value({"is_a_template": True})


def test_float_is_written_as_double_with_exact_repr():
    assert encode_xmlrpc_value(0.1) == "<value><double>0.1</double></value>"
    assert encode_xmlrpc_value(-1.5e300) == "<value><double>-1.5e+300</double></value>"


def test_datetime_is_written_as_datetime_iso8601_not_as_string():
    assert encode_xmlrpc_value(DateTime("20240115T10:20:30Z")) == (
        "<value><dateTime.iso8601>20240115T10:20:30Z</dateTime.iso8601></value>"
    )


def test_datetime_struct_member_is_written_as_datetime_iso8601():
    fragment = encode_xmlrpc_value({"created": DateTime("20240115T10:20:30Z")})
    assert "<dateTime.iso8601>20240115T10:20:30Z</dateTime.iso8601>" in fragment


def test_list_is_written_as_array_of_values():
    assert encode_xmlrpc_value(["OpaqueRef:a", "OpaqueRef:b"]) == (
        "<value><array><data><value>OpaqueRef:a</value><value>OpaqueRef:b</value></data></array></value>"
    )


def test_tuple_is_written_as_array():
    assert encode_xmlrpc_value(("a",)) == encode_xmlrpc_value(["a"])


def test_dict_is_written_as_struct_of_members_in_order():
    assert encode_xmlrpc_value({"b": "1", "a": {}}) == (
        "<value><struct><member><name>b</name><value>1</value></member>"
        "<member><name>a</name><value><struct></struct></value></member></struct></value>"
    )


def test_markup_characters_are_escaped():
    assert encode_xmlrpc_value("a&b<c>d") == "<value>a&amp;b&lt;c&gt;d</value>"


def test_control_characters_are_dropped_but_tab_and_newline_kept():
    assert encode_xmlrpc_value("a\x00b\x1fc\td\ne\ufffe") == "<value>abc\td\ne</value>"


def test_carriage_return_survives_an_xml_parser():
    document = encode_xmlrpc_success("a\r\nb")
    assert xc.loads(document)[0][0]["Value"] == "a\r\nb"


def test_struct_member_names_are_escaped():
    assert "<name>a&amp;b</name>" in encode_xmlrpc_value({"a&b": "x"})


def test_one_dirty_string_among_clean_fields_is_escaped_and_the_rest_kept():
    record = {"uuid": "u", "name_label": "<b>", "tags": ["ok", "x&y"], "memory": 5}
    assert xc.loads(encode_xmlrpc_success(record))[0][0]["Value"] == {
        "uuid": "u",
        "name_label": "<b>",
        "tags": ["ok", "x&y"],
        "memory": "5",
    }


def test_records_mixing_clean_and_escapable_strings_round_trip():
    restrictions = '<restrictions><restriction field="vcpus-max" max="32"/></restrictions>'
    records = {
        f"OpaqueRef:{i}": {
            "uuid": f"u{i}",
            "recommendations": restrictions,
            "name_label": f"vm-{i} é 虚 😀",
            "tags": ["a", "<t>", "b\x00"],
            "other_config": {"k": "v&w", "n": "\r\n"},
            "memory": i,
            "last": "z>",
        }
        for i in range(50)
    }
    assert xc.loads(encode_xmlrpc_success(records))[0][0]["Value"] == as_xapi_writes_it(records)


# Clean, escapable and dropped characters, within and past latin-1, with \x00 and odd characters.
TRICKY = ["", "ok", "<b>", "x&y", "\x00", "a\x00<", "\r", "é<", "虚&", "😀>", "\ud800<", "\uffff"]


@given(st.lists(st.sampled_from(TRICKY) | any_text, max_size=12))
def test_strings_in_one_document_are_escaped_exactly_as_each_alone(texts):
    alone = "".join(encode_xmlrpc_value(text) for text in texts)
    assert encode_xmlrpc_value(texts) == f"<value><array><data>{alone}</data></array></value>"


def test_str_enum_values_are_written_as_their_text():
    class Power(str, enum.Enum):
        RUNNING = "Running"

    assert encode_xmlrpc_value({Power.RUNNING: Power.RUNNING}) == (
        "<value><struct><member><name>Running</name><value>Running</value></member></struct></value>"
    )


@pytest.mark.parametrize("value", [None, b"bytes", object(), {1, 2}], ids=repr)
def test_unsupported_types_raise_type_error(value):
    with pytest.raises(TypeError):
        encode_xmlrpc_value(value)


def test_non_string_struct_key_raises_type_error():
    with pytest.raises(TypeError):
        encode_xmlrpc_value({1: "x"})


def test_encoded_call_is_read_by_stdlib():
    document = encode_xmlrpc_call("main", ["OpaqueRef:s", {"sr_uuid": "u&1"}])
    assert xc.loads(document) == (("OpaqueRef:s", {"sr_uuid": "u&1"}), "main")


@settings(deadline=None)
@given(xapi_values)
def test_stdlib_reads_our_responses_like_a_xapi_response(value):
    (response,), _ = xc.loads(encode_xmlrpc_success(value))
    assert list(response) == ["Status", "Value"]
    assert typed(response["Value"]) == typed(as_xapi_writes_it(value))


@settings(deadline=None)
@given(xapi_values)
def test_values_round_trip_through_our_call_encoder_and_decoder(value):
    method, params = decode_xmlrpc_call(encode_xmlrpc_call("host.call_plugin", [value]))
    assert method == "host.call_plugin"
    assert typed(params) == typed([as_xapi_writes_it(value)])


@settings(deadline=None)
@given(st.lists(safe_text, max_size=5))
def test_encode_xmlrpc_value_fragment_is_what_nova_parses_from_task_result(refs):
    wrapped = f"<methodResponse><params><param>{encode_xmlrpc_value(refs)}</param></params></methodResponse>"
    assert xc.loads(wrapped)[0][0] == refs


# ------------------------------------------------------------------------------ XML-RPC requests


@settings(deadline=None)
@given(st.lists(stdlib_values, max_size=4), st.from_regex(r"[A-Za-z_.]{1,30}", fullmatch=True))
def test_we_decode_what_stdlib_dumps_produces(params, method):
    document = xc.dumps(tuple(params), methodname=method, allow_none=True).encode()
    decoded_method, decoded = decode_xmlrpc_call(document)
    assert decoded_method == method
    assert typed(decoded) == typed(params)


@settings(deadline=None)
@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.sampled_from(["int", "i4", "i8"]))
def test_typed_ints_of_64_bits_decode_to_int(number, tag):
    assert typed(one_param(f"<value><{tag}>{number}</{tag}></value>")) == ("int", number)


def test_untyped_value_decodes_to_str():
    assert one_param("<value>123</value>") == "123"


@pytest.mark.parametrize("xml", ["<value/>", "<value></value>", "<value><string/></value>"])
def test_empty_values_decode_to_empty_string(xml):
    assert one_param(xml) == ""


def test_whitespace_inside_untyped_value_is_kept():
    assert one_param("<value>  a b \n</value>") == "  a b \n"


def test_whitespace_between_elements_is_ignored():
    xml = """
      <value>
        <struct>
          <member> <name>k</name> <value> <array> <data>
            <value> <int> 7 </int> </value>
            <value>x</value>
          </data> </array> </value> </member>
        </struct>
      </value>"""
    assert one_param(xml) == {"k": [7, "x"]}


def test_boolean_decodes_to_bool():
    assert typed(one_param("<value><boolean>1</boolean></value>")) == ("bool", True)
    assert typed(one_param("<value><boolean>0</boolean></value>")) == ("bool", False)


def test_double_decodes_to_float():
    assert typed(one_param("<value><double>-2.5e-3</double></value>")) == ("float", -0.0025)


def test_datetime_decodes_to_datetime_value_mark():
    value = one_param("<value><dateTime.iso8601>20240115T10:20:30Z</dateTime.iso8601></value>")
    assert typed(value) == ("DateTime", "20240115T10:20:30Z")


def test_base64_decodes_to_bytes():
    assert one_param("<value><base64>aGkA\n</base64></value>") == b"hi\x00"


def test_nil_decodes_to_none():
    assert one_param("<value><nil/></value>") is None


def test_predefined_entities_and_character_references_are_decoded():
    assert one_param("<value>&amp;&lt;&gt;&quot;&apos;&#65;&#x42;&#13;</value>") == "&<>\"'AB\r"


def test_call_without_params_element_has_no_params():
    assert decode_xmlrpc_call(
        b"<methodCall><methodName>system.listMethods</methodName></methodCall>"
    ) == (
        "system.listMethods",
        [],
    )


def test_params_keep_their_order():
    document = call("<param><value>a</value></param><param><value><i4>2</i4></value></param>")
    assert decode_xmlrpc_call(document) == ("VM.get_all", ["a", 2])


def test_doctype_is_refused():
    with pytest.raises(CodecError, match="DOCTYPE"):
        decode_xmlrpc_call(
            b"<!DOCTYPE methodCall><methodCall><methodName>x</methodName></methodCall>"
        )


def test_billion_laughs_document_is_refused_quickly():
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    )
    document = (
        f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]>'
        "<methodCall><methodName>&lol9;</methodName></methodCall>"
    ).encode()
    began = time.monotonic()
    with pytest.raises(CodecError):
        decode_xmlrpc_call(document)
    assert time.monotonic() - began < 1.0


def test_external_entity_is_refused():
    document = (
        b'<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<methodCall><methodName>&x;</methodName></methodCall>"
    )
    with pytest.raises(CodecError):
        decode_xmlrpc_call(document)


def test_undefined_entity_is_refused():
    with pytest.raises(CodecError):
        decode_xmlrpc_call(call("<param><value>&nbsp;</value></param>"))


MALFORMED = {
    "not-xml": b"this is not xml",
    "empty-body": b"",
    "unclosed": b"<methodCall><methodName>x</methodName>",
    "invalid-utf8": b"<methodCall><methodName>\xff\xfe</methodName></methodCall>",
    "missing-methodName": b"<methodCall><params></params></methodCall>",
    "wrong-root": b"<methodResponse><params></params></methodResponse>",
    "unknown-element": call("<param><value><long>1</long></value></param>"),
    "value-outside-param": call("<value>x</value>"),
    "bad-int": call("<param><value><int>12x</int></value></param>"),
    "float-as-int": call("<param><value><i4>1.5</i4></value></param>"),
    "bad-boolean": call("<param><value><boolean>true</boolean></value></param>"),
    "bad-double": call("<param><value><double>1.5.2</double></value></param>"),
    "bad-base64": call("<param><value><base64>abc</base64></value></param>"),
    "two-values-in-one-value": call("<param><value><int>1</int><int>2</int></value></param>"),
    "two-values-in-one-param": call("<param><value>a</value><value>b</value></param>"),
    "member-without-name": call(
        "<param><value><struct><member><value>v</value></member></struct></value></param>"
    ),
    "member-without-value": call(
        "<param><value><struct><member><name>k</name></member></struct></value></param>"
    ),
    "member-with-two-names": call(
        "<param><value><struct><member><name>a</name><name>b</name><value>v</value></member></struct></value></param>"
    ),
    "element-inside-int": call("<param><value><int><i4>1</i4></int></value></param>"),
}


@pytest.mark.parametrize("document", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_raises_codec_error(document):
    with pytest.raises(CodecError):
        decode_xmlrpc_call(document)


def test_codec_error_message_names_the_bad_text():
    with pytest.raises(CodecError, match="bad integer '12x'"):
        decode_xmlrpc_call(MALFORMED["bad-int"])


# ------------------------------------------------------------------------------ JSON-RPC


def jsonrpc(**fields) -> bytes:
    return json.dumps(fields).encode()


def test_v1_request_without_jsonrpc_key_decodes_as_version_1():
    request = jsonrpc(method="VM.get_all", params=["OpaqueRef:s"], id=7)
    assert decode_jsonrpc_call(request) == JsonRpcCall("1.0", 7, "VM.get_all", ["OpaqueRef:s"])


def test_v2_request_decodes_as_version_2():
    request = jsonrpc(jsonrpc="2.0", method="VM.get_all", params=["OpaqueRef:s"], id="a")
    assert decode_jsonrpc_call(request) == JsonRpcCall("2.0", "a", "VM.get_all", ["OpaqueRef:s"])


@pytest.mark.parametrize("fields", [{}, {"params": None}], ids=["omitted", "null"])
def test_v2_params_omitted_or_null_mean_no_params(fields):
    request = jsonrpc(jsonrpc="2.0", method="system.listMethods", id=1, **fields)
    assert decode_jsonrpc_call(request).params == []


def test_v2_params_object_is_one_struct_param():
    request = jsonrpc(jsonrpc="2.0", method="VM.create", params={"name_label": "x"}, id=1)
    assert decode_jsonrpc_call(request).params == [{"name_label": "x"}]


def test_call_is_immutable():
    with pytest.raises(AttributeError):
        decode_jsonrpc_call(jsonrpc(method="m", params=[], id=1)).method = "other"


BAD_JSONRPC = {
    "invalid-json": b'{"method": ',
    "invalid-utf8": b'{"method": "\xff", "params": [], "id": 1}',
    "not-an-object": b'[{"method": "m", "params": [], "id": 1}]',
    "v1-params-missing": jsonrpc(method="m", id=1),
    "v1-params-null": jsonrpc(method="m", params=None, id=1),
    "v1-params-object": jsonrpc(method="m", params={"a": 1}, id=1),
    "v2-params-string": jsonrpc(jsonrpc="2.0", method="m", params="x", id=1),
    "jsonrpc-1.0": jsonrpc(jsonrpc="1.0", method="m", params=[], id=1),
    "jsonrpc-number": jsonrpc(jsonrpc=2.0, method="m", params=[], id=1),
    "jsonrpc-null": jsonrpc(jsonrpc=None, method="m", params=[], id=1),
    "id-missing": jsonrpc(method="m", params=[]),
    "id-null": jsonrpc(jsonrpc="2.0", method="m", params=[], id=None),
    "id-float": jsonrpc(method="m", params=[], id=1.5),
    "id-bool": jsonrpc(method="m", params=[], id=True),
    "id-list": jsonrpc(method="m", params=[], id=[1]),
    "method-missing": jsonrpc(params=[], id=1),
    "method-not-string": jsonrpc(method=5, params=[], id=1),
}


@pytest.mark.parametrize("body", BAD_JSONRPC.values(), ids=BAD_JSONRPC.keys())
def test_malformed_jsonrpc_request_raises_codec_error(body):
    with pytest.raises(CodecError):
        decode_jsonrpc_call(body)


V1 = JsonRpcCall("1.0", 7, "VM.get_all", [])
V2 = JsonRpcCall("2.0", "x", "VM.get_all", [])


def test_v1_success_shape():
    assert (
        encode_jsonrpc_success(V1, ["OpaqueRef:a"])
        == b'{"result":["OpaqueRef:a"],"error":null,"id":7}'
    )


def test_v1_failure_shape():
    assert encode_jsonrpc_failure(V1, ["SESSION_INVALID", "OpaqueRef:s"]) == (
        b'{"result":null,"error":["SESSION_INVALID","OpaqueRef:s"],"id":7}'
    )


def test_v2_success_shape():
    assert encode_jsonrpc_success(V2, "") == b'{"jsonrpc":"2.0","result":"","id":"x"}'


def test_v2_failure_shape_has_code_1_message_and_data():
    assert encode_jsonrpc_failure(V2, ["HANDLE_INVALID", "VM", "OpaqueRef:x"]) == (
        b'{"jsonrpc":"2.0","error":{"code":1,"message":"HANDLE_INVALID","data":["VM","OpaqueRef:x"]},"id":"x"}'
    )


def test_jsonrpc_failure_without_error_code_is_refused():
    with pytest.raises(ValueError):
        encode_jsonrpc_failure(V1, [])


def test_json_ints_are_numbers_and_datetimes_are_strings():
    body = encode_jsonrpc_success(
        V1, {"m": 2**63 - 1, "n": Int32(3), "t": DateTime("20240115T10:20:30Z"), "b": True}
    )
    assert (
        body
        == b'{"result":{"m":9223372036854775807,"n":3,"t":"20240115T10:20:30Z","b":true},"error":null,"id":7}'
    )


@settings(deadline=None)
@given(xapi_values, st.sampled_from([V1, V2]))
def test_jsonrpc_results_round_trip_as_plain_json(value, request):
    reply = json.loads(encode_jsonrpc_success(request, value))
    assert typed(reply["result"]) == typed(json.loads(json.dumps(value)))
    assert reply["id"] == request.id


# ------------------------------------------------------------------------------ limits


def xml_int_call(text: str) -> bytes:
    return (b"<methodCall><methodName>m</methodName><params><param><value><int>"
            + text.encode() + b"</int></value></param></params></methodCall>")


@pytest.mark.parametrize("text", [str(2**63 - 1), str(-(2**63)), "0009223372036854775807"])
def test_xmlrpc_ints_up_to_64_bits_are_read(text: str) -> None:
    assert decode_xmlrpc_call(xml_int_call(text)) == ("m", [int(text)])


@pytest.mark.parametrize("text", [str(2**63), str(-(2**63) - 1), "9" * 5000],
                         ids=["2**63", "-2**63-1", "5000-digits"])
def test_xmlrpc_ints_past_64_bits_fail_as_xapis_int64_of_string(text: str) -> None:
    with pytest.raises(IntRangeError, match="64-bit") as caught:
        decode_xmlrpc_call(xml_int_call(text))
    assert caught.value.exception == 'Failure("Int64.of_string")'
    assert len(str(caught.value)) < 200  # 5000 digits are not copied into the message


@pytest.mark.parametrize("number", [str(2**63), str(-(2**63) - 1), "9" * 5000],
                         ids=["2**63", "-2**63-1", "5000-digits"])
def test_jsonrpc_ints_past_64_bits_fail_as_xapis_int64_of_string(number: str) -> None:
    body = b'{"method": "m", "id": 1, "params": [' + number.encode() + b"]}"
    with pytest.raises(IntRangeError):
        decode_jsonrpc_call(body)


def nested_xml(depth: int) -> bytes:
    return (b"<methodCall><methodName>m</methodName><params><param>"
            + b"<value><array><data>" * depth + b"</data></array></value>" * depth
            + b"</param></params></methodCall>")


def nested_json(depth: int) -> bytes:
    return b'{"method": "m", "id": 1, "params": [' + b"[" * depth + b"]" * depth + b"]}"


def nesting(value: object) -> int:
    depth = 0
    while isinstance(value, list) and value:
        value, depth = value[0], depth + 1
    return depth + (1 if isinstance(value, list) else 0)


@pytest.mark.parametrize("decode,make", [(decode_xmlrpc_call, nested_xml),
                                         (lambda body: ("m", decode_jsonrpc_call(body).params),
                                          nested_json)], ids=["xmlrpc", "jsonrpc"])
def test_values_nested_up_to_the_limit_are_read(decode, make) -> None:
    _method, params = decode(make(MAX_NESTING))
    assert nesting(params[0]) == MAX_NESTING


@pytest.mark.parametrize("decode,make", [(decode_xmlrpc_call, nested_xml),
                                         (decode_jsonrpc_call, nested_json)],
                         ids=["xmlrpc", "jsonrpc"])
@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 100_000], ids=["one-more", "100000"])
def test_values_nested_past_the_limit_are_a_codec_error(decode, make, depth: int) -> None:
    with pytest.raises(CodecError, match="nested more than"):
        decode(make(depth))


def test_a_deep_struct_counts_like_a_deep_array() -> None:
    body = (b"<methodCall><methodName>m</methodName><params><param>"
            + b"<value><struct><member><name>k</name>" * (MAX_NESTING + 1)
            + b"<value/>" + b"</member></struct></value>" * (MAX_NESTING + 1)
            + b"</param></params></methodCall>")
    with pytest.raises(CodecError, match="nested more than"):
        decode_xmlrpc_call(body)
