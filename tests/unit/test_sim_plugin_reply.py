"""How the simulator reads a finished plugin or extension, quirk by quirk as XAPI's xml-light2 and
xMLRPC.ml read it (xen-api ocaml/libs/http-lib/xMLRPC.ml, ocaml/xapi/xapi_plugins.ml)."""

from __future__ import annotations

import xmlrpc.client

import pytest

from os_xenapi.simulator.errors import ApiError
from os_xenapi.simulator.plugin_reply import (
    Finished,
    RunTimeTypeError,
    XmlError,
    extension_result,
    from_string,
    parse_xml,
    plugin_result,
    read_response,
    signal_name,
)


def reply(value: object) -> bytes:
    return xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True).encode()


def value_node(xml: str):
    return parse_xml(xml.encode())


def api_error(done: Finished) -> list[str]:
    with pytest.raises(ApiError) as info:
        plugin_result(done)
    return info.value.description


def rtte(call, *args) -> str:
    with pytest.raises(RunTimeTypeError) as info:
        call(*args)
    return info.value.what


# -- reading the XML ------------------------------------------------------------------------

def test_only_the_first_element_is_read() -> None:
    assert parse_xml(b"<a>x</a><b/> and junk <<").tag == "a"


def test_text_of_only_blanks_is_dropped() -> None:
    assert parse_xml(b"<a>\n  <b/>\t</a>").children[0].tag == "b"


def test_text_with_a_carriage_return_is_kept() -> None:
    assert parse_xml(b"<a>&#13;</a>").children == ["\r"]


@pytest.mark.parametrize("data, message", [
    (b"", "unexpected end of input line 1"),
    (b" \n ", "unexpected end of input line 2"),
    (b"oops", "expected root element line 1"),
    (b"<a><b></a>", "mismatched tag line 1"),
])
def test_unreadable_output_names_the_problem_and_line(data: bytes, message: str) -> None:
    with pytest.raises(XmlError, match=f"^{message}$"):
        parse_xml(data)


# -- XMLRPC.From.string ----------------------------------------------------------------------

@pytest.mark.parametrize("xml, text", [
    ("<value>x</value>", "x"),
    ("<value><string>x</string></value>", "x"),
    ("<value/>", ""),
    ("<value><string/></value>", ""),
    ("<value>   </value>", ""),
])
def test_strings_xapi_accepts(xml: str, text: str) -> None:
    assert from_string(value_node(xml)) == text


@pytest.mark.parametrize("xml, what", [
    ("<value><int>1</int></value>", "unbox: Element=int should contain 'string'"),
    ("<value><nil/></value>", "unbox: Element=nil should contain 'string'"),
    ("<value><string>a</string><string>b</string></value>",
     "singleton: {Element=string, Element=string} should be the singleton {value}"),
    ('<value><string a="1">x</string></value>', "unbox: Element=string should contain 'string'"),
])
def test_other_values_are_runtime_type_errors(xml: str, what: str) -> None:
    assert rtte(from_string, value_node(xml)) == what


# -- XMLRPC.From.methodResponse --------------------------------------------------------------

def test_success_gives_the_value_node() -> None:
    kind, value = read_response(parse_xml(reply({"Status": "Success", "Value": "v"})))
    assert (kind, from_string(value)) == ("success", "v")


def test_failure_gives_the_error_strings() -> None:
    response = reply({"Status": "Failure", "ErrorDescription": ["CODE", "p"]})
    assert read_response(parse_xml(response)) == ("failure", ["CODE", "p"])


def test_failure_with_no_error_strings_is_a_runtime_type_error() -> None:
    response = reply({"Status": "Failure", "ErrorDescription": []})
    assert rtte(read_response, parse_xml(response)) == "Empty array of error strings"


@pytest.mark.parametrize("struct", [{"Value": "v"}, {"Status": "Odd"}, {"Status": "Success"}])
def test_struct_without_a_usable_status_is_a_runtime_type_error(struct: dict) -> None:
    assert rtte(read_response, parse_xml(reply(struct))) == "Status"


def test_two_params_are_a_runtime_type_error() -> None:
    data = (b"<methodResponse><params><param><value>a</value></param>"
            b"<param><value>b</value></param></params></methodResponse>")
    assert rtte(read_response, parse_xml(data)) == "Expected single return value (struct status)"


def test_fault_gives_code_and_reason() -> None:
    data = xmlrpc.client.dumps(xmlrpc.client.Fault(3, "r"), methodresponse=True).encode()
    assert read_response(parse_xml(data)) == ("fault", (3, "r"))


def test_fault_code_beyond_int32_is_an_int32_of_string_failure() -> None:
    data = (b"<methodResponse><fault><value><struct><member><name>faultCode</name>"
            b"<value><int>4294967296</int></value></member><member><name>faultString</name>"
            b"<value>r</value></member></struct></value></fault></methodResponse>")
    with pytest.raises(ApiError) as info:
        read_response(parse_xml(data))
    assert info.value.description == ["INTERNAL_ERROR", 'Failure("Int32.of_string")']


def test_other_root_element_is_a_runtime_type_error() -> None:
    assert rtte(read_response, parse_xml(b"<html>no</html>")) == (
        "unbox: Element=html should contain 'methodResponse'")


# -- plugin_result -------------------------------------------------------------------------------

def test_runtime_type_error_reaches_the_client_as_printed_by_ocaml() -> None:
    done = Finished(0, reply({"Status": "Success", "Value": ["a"]}), b"")
    assert api_error(done) == [
        "INTERNAL_ERROR",
        "XMLRPC.RunTimeTypeError(\"unbox: Element=array should contain 'string'\", _)"]


def test_exit_status_wins_over_any_output() -> None:
    done = Finished(2, reply({"Status": "Success", "Value": "v"}), b"err")
    assert api_error(done)[:2] == ["XENAPI_PLUGIN_FAILURE", "non-zero exit"]


def test_signal_is_named() -> None:
    assert api_error(Finished(-15, b"", b""))[:2] == ["XENAPI_PLUGIN_FAILURE", "signal: SIGTERM"]


def test_unknown_signal_number_is_described() -> None:
    assert signal_name(200) == "(ocaml signal 200 with an unknown name)"


def test_output_that_is_not_utf8_is_passed_on_with_replacements() -> None:
    assert api_error(Finished(1, b"\xff", b""))[2] == "\ufffd"


# -- extension_result ----------------------------------------------------------------------------

def test_extension_value_may_be_any_type() -> None:
    done = Finished(0, reply({"Status": "Success", "Value": {"n": 1}}), b"")
    assert extension_result("/ext", done) == {"n": 1}


def test_extension_failure_as_one_string_is_a_code_alone() -> None:
    done = Finished(0, reply({"Status": "Failure", "ErrorDescription": "OOPS"}), b"")
    with pytest.raises(ApiError) as info:
        extension_result("/ext", done)
    assert info.value.description == ["OOPS"]


def test_extension_crash_is_an_internal_error_naming_the_path() -> None:
    with pytest.raises(ApiError) as info:
        extension_result("/ext", Finished(1, b"out", b"err"))
    assert info.value.description == ["INTERNAL_ERROR", "/ext", "non-zero exit", "out", "err"]


def test_extension_output_that_is_not_a_response_is_an_internal_error() -> None:
    with pytest.raises(ApiError) as info:
        extension_result("/ext", Finished(0, b"junk", b""))
    assert info.value.description[:4] == [
        "INTERNAL_ERROR", "/ext", "failed to parse extension output", "junk"]
