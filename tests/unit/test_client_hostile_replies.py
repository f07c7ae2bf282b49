"""Replies a hostile host may write, decoded without a server: a DTD in every encoding and behind
whatever precedes it, values nested without end, in XML-RPC and JSON-RPC."""

from __future__ import annotations

import pytest

from os_xenapi.client import wire, xmlrpc_reply
from os_xenapi.client.exception import ProtocolError

ENTITY = '<!DOCTYPE methodResponse [<!ENTITY x "EXPANDED">]>'
BODY = ("<methodResponse><params><param><value><struct><member><name>Status</name><value>Success"
        "</value></member><member><name>Value</name><value>&x;</value></member></struct></value>"
        "</param></params></methodResponse>")
PLAIN = BODY.replace("&x;", "caf\u00e9")


def document(prolog: str, encoding: str, body: str = BODY) -> bytes:
    return (prolog.replace("DOCTYPE_HERE", ENTITY) + body).encode(encoding)


# Each would expand &x; to EXPANDED if the DOCTYPE were let through.
DTD_REPLIES = {
    "utf-8": document("DOCTYPE_HERE", "utf-8"),
    "utf-8, comment first": document("<!-- hi -->DOCTYPE_HERE", "utf-8"),
    "utf-8 with a BOM": b"\xef\xbb\xbf" + document("DOCTYPE_HERE", "utf-8"),
    "utf-8 with a BOM, comment first": b"\xef\xbb\xbf" + document("<!--c-->DOCTYPE_HERE", "utf-8"),
    "utf-16, comment first": document("<!-- hi -->DOCTYPE_HERE", "utf-16"),
    "utf-16, declared": document('<?xml version="1.0" encoding="UTF-16"?>DOCTYPE_HERE',
                                    "utf-16"),
    "processing instruction first": document('<?xml version="1.0"?><?pi x?>DOCTYPE_HERE',
                                             "utf-8"),
    "iso-8859-1, declared, comment first": document(
        '<?xml version="1.0" encoding="ISO-8859-1"?><!--c-->DOCTYPE_HERE', "latin-1"),
    "whitespace and comments": document('<?xml version="1.0"?>\n<!--a-->\n<!--b-->\nDOCTYPE_HERE',
                                        "utf-16-le"),
}


@pytest.mark.parametrize("body", DTD_REPLIES.values(), ids=DTD_REPLIES.keys())
def test_a_doctype_is_refused_whatever_its_encoding_and_whatever_precedes_it(body: bytes) -> None:
    with pytest.raises(ProtocolError, match="DOCTYPE"):
        wire.decode_xmlrpc_response(body)


def test_a_utf32_reply_is_refused_as_expat_cannot_read_it() -> None:
    body = document('<?xml version="1.0" encoding="UTF-32"?>DOCTYPE_HERE', "utf-32")
    with pytest.raises(ProtocolError, match="not well-formed"):
        wire.decode_xmlrpc_response(body)


def test_a_doctype_in_a_task_result_fragment_is_refused_in_utf16_too() -> None:
    fragment = ("<!--c-->" + '<!DOCTYPE value [<!ENTITY x "EXPANDED">]><value>&x;</value>')
    with pytest.raises(ProtocolError, match="DOCTYPE"):
        xmlrpc_reply.read_value(fragment.encode("utf-16"))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-8-sig"])
def test_a_reply_without_a_doctype_in_another_encoding_still_decodes(encoding: str) -> None:
    assert wire.decode_xmlrpc_response(PLAIN.encode(encoding)) == (True, "caf\u00e9")


def test_a_declared_latin1_reply_decodes_its_own_characters() -> None:
    body = ('<?xml version="1.0" encoding="ISO-8859-1"?>' + PLAIN).encode("latin-1")
    assert wire.decode_xmlrpc_response(body) == (True, "caf\u00e9")


# --------------------------------------------------------------------------- nesting


def nested_xml(depth: int, indent: str = "") -> bytes:
    inner = (f"<value><array><data>{indent}" * depth + "<value>x</value>"
             + f"</data></array></value>{indent}" * depth)
    return (b"<methodResponse><params><param><value><struct><member><name>Status</name><value>"
            b"Success</value></member><member><name>Value</name>" + inner.encode()
            + b"</member></struct></value></param></params></methodResponse>")


@pytest.mark.parametrize("depth", [100, 20_000])
@pytest.mark.parametrize("indent", ["", "\n "], ids=["compact", "indented"])
def test_deep_xml_nesting_is_a_protocol_error(depth: int, indent: str) -> None:
    with pytest.raises(ProtocolError, match="nested more than 64 deep"):
        wire.decode_xmlrpc_response(nested_xml(depth, indent))


@pytest.mark.parametrize("indent", ["", "\n "], ids=["compact", "indented"])
def test_xapi_depths_of_nesting_still_decode(indent: str) -> None:
    ok, value = wire.decode_xmlrpc_response(nested_xml(60, indent))
    assert ok
    for _ in range(60):
        [value] = value
    assert value == "x"


def test_deep_nesting_in_a_task_result_is_a_protocol_error() -> None:
    fragment = "<value><array><data>" * 3000 + "</data></array></value>" * 3000
    with pytest.raises(ProtocolError, match="nested"):
        wire.decode_xmlrpc_value(fragment)


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_deep_json_nesting_is_a_protocol_error_not_a_recursion_error(opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    body = ('{"jsonrpc":"2.0","id":1,"result":' + opening * 100_000 + "1"
            + closing * 100_000 + "}").encode()
    with pytest.raises(ProtocolError, match="nested too deeply"):
        wire.decode_jsonrpc_response(body, 1)
