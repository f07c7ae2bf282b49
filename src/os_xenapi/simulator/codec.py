"""The simulator's wire codec: XAPI's XML-RPC and JSON-RPC bodies to Python values and back.

Server side and free of I/O. Requests are decoded into plain values (``str``, ``int``, ``float``,
``bool``, :class:`~os_xenapi.simulator.values.DateTime`, ``list``, ``dict``, plus ``None`` and
``bytes`` which only clients send); responses are encoded the way xapi writes them: strings and
64-bit ints as *untyped* ``<value>text</value>``, :class:`~os_xenapi.simulator.values.Int32` as
``<i4>``, and a ``Status``-first struct around every result. A body that cannot be parsed raises
:class:`CodecError`, which the server answers with HTTP 500, as XAPI answers its parser's errors.

Two limits keep a body from reaching deeper than the simulator can follow: values nest at most
:data:`MAX_NESTING` arrays and structs deep (XAPI's own never pass 3), and an integer must fit
XAPI's 64 bits, where XAPI's ``Int64.of_string`` fails with ``Failure("Int64.of_string")``.
"""

from __future__ import annotations

import binascii
import json
import re
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

from os_xenapi.simulator.values import DateTime, Int32

MAX_NESTING = 64  # arrays and structs inside one another in a request's value
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class CodecError(Exception):
    """A request body that cannot be parsed; the message says what was wrong with it.

    ``exception`` is the OCaml exception XAPI would name for it, when not its parser's own.
    """

    exception: str | None = None


class IntRangeError(CodecError):
    """An integer outside XAPI's 64 bits."""

    exception = 'Failure("Int64.of_string")'


def _int64(text: str, where: str) -> int:
    """``text`` (optional sign, decimal digits, no blanks) as an int; IntRangeError outside
    64 bits. The length is checked first: Python refuses to convert over 4300 digits."""
    digits = text.lstrip("+-")
    if len(digits.lstrip("0")) > 19:
        shown = text if len(text) <= 24 else text[:24] + "..."
        raise IntRangeError(f"{where} {shown} has {len(digits)} digits, "
                            "outside XAPI's 64-bit integers")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise IntRangeError(f"{where} {value} is outside XAPI's 64-bit integers")
    return value


# --------------------------------------------------------------------------- XML-RPC encoding

# XML 1.0 cannot carry these characters, so they are dropped: xapi drops the control characters;
# dropping lone surrogates and U+FFFE/U+FFFF as well keeps every reply well-formed.
_UNWRITABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# ``\r`` goes out as ``&#13;`` (xapi writes it raw) so that XML end-of-line normalisation does not
# turn it into ``\n`` on the reader's side.
_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;"))
# The latin-1 characters to escape or drop; _MARKS (for bytes.translate) maps \x00 to 2, the
# others of them to 0 and every other character to 1.
_SPECIAL = bytes(c for c in range(32) if c not in (9, 10)) + b"&<>"
_MARKS = bytes(2 if c == 0 else 0 if c in _SPECIAL else 1 for c in range(256))


def _escape(text: str) -> str:
    """``text`` made safe for XML character data."""
    if _UNWRITABLE.search(text):
        text = _UNWRITABLE.sub("", text)
    for char, ref in _ESCAPES:
        if char in text:
            text = text.replace(char, ref)
    return text


def _has_odd_characters(text: str) -> bool:
    """True if ``text`` holds a lone surrogate (which UTF-8 cannot encode), U+FFFE or U+FFFF."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return "\ufffe" in text or "\uffff" in text


def _join_escaped(out: list[str], spots: list[int]) -> str:
    """``out`` joined, once those of the strings at ``spots`` that need it have been escaped."""
    texts = [out[i] for i in spots]
    texts.append("")  # so that \x00 follows every string in ``joined``
    joined = "\x00".join(texts)
    # One byte per character (past latin-1 each becomes "?"): 0 where a character needs escaping,
    # 2 for the \x00 after each string, 1 elsewhere.
    marks = joined.encode("latin-1", "replace").translate(_MARKS)
    if marks.count(2) != len(spots) or _has_odd_characters(joined):
        for i in spots:  # a string holds \x00, a lone surrogate, U+FFFE or U+FFFF: rare enough
            out[i] = _escape(out[i])
        return "".join(out)
    escaped: dict[str, str] = {}  # a string that needs escaping often comes in every record
    index = start = 0  # the string that starts at ``start`` in ``marks``
    at = marks.find(0)
    while at >= 0:
        index += marks.count(2, start, at)
        text = texts[index]
        safe = escaped.get(text)
        if safe is None:
            safe = escaped[text] = _escape(text)
        out[spots[index]] = safe
        start = marks.find(2, at) + 1  # past the \x00 that ends this string
        index += 1
        at = marks.find(0, start)
    return "".join(out)


# The encoders below append what goes inside ``<value>…</value>`` to ``out``: strings as they are,
# with their index in ``out`` added to ``spots``, so that _join_escaped can check them all in a few
# C-speed passes and escape only those that need it (5,000 of the 340,000 in 5,000 VM records).

# Struct member openings by key: records repeat the same field names thousands of times.
_NAMES: dict[str, str] = {}


def _member_name(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"XML-RPC struct keys must be str, not {type(key).__name__}")
    if len(_NAMES) >= 65536:
        _NAMES.clear()
    opening = _NAMES[key] = f"<member><name>{_escape(str.__str__(key))}</name><value>"
    return opening


def _enc_str(value: str, out: list[str], spots: list[int]) -> None:
    spots.append(len(out))
    out.append(value)


def _enc_str_subclass(value: str, out: list[str], spots: list[int]) -> None:
    _enc_str(str.__str__(value), out, spots)  # the text itself, whatever __str__/__format__ say


def _enc_int(value: int, out: list[str], _spots: list[int]) -> None:
    out.append(int.__repr__(value))


def _enc_int32(value: int, out: list[str], _spots: list[int]) -> None:
    out.append(f"<i4>{int.__repr__(value)}</i4>")


def _enc_bool(value: bool, out: list[str], _spots: list[int]) -> None:
    out.append("<boolean>1</boolean>" if value else "<boolean>0</boolean>")


def _enc_float(value: float, out: list[str], _spots: list[int]) -> None:
    out.append(f"<double>{float.__repr__(value)}</double>")


def _enc_datetime(value: str, out: list[str], spots: list[int]) -> None:
    out.append("<dateTime.iso8601>")
    _enc_str(value, out, spots)
    out.append("</dateTime.iso8601>")


def _enc_list(value: list, out: list[str], spots: list[int]) -> None:
    append, note = out.append, spots.append
    encoders = _ENCODERS
    append("<array><data>")
    for item in value:
        append("<value>")
        if type(item) is str:
            note(len(out))
            append(item)
        else:
            (encoders.get(type(item)) or _encoder_for(item))(item, out, spots)
        append("</value>")
    append("</data></array>")


# Whole member tails for values that need no formatting.
_TAILS = {
    True: "<boolean>1</boolean></value></member>",
    False: "<boolean>0</boolean></value></member>",
    list: "<array><data></data></array></value></member>",
    dict: "<struct></struct></value></member>",
}


def _enc_dict(value: dict, out: list[str], spots: list[int]) -> None:
    append, note = out.append, spots.append
    encoders = _ENCODERS
    names = _NAMES
    append("<struct>")
    for key, item in value.items():
        append(names.get(key) or _member_name(key))
        kind = type(item)
        if kind is str:  # the common cases are written inline
            note(len(out))
            append(item)
            append("</value></member>")
        elif kind is int:
            append(f"{item}</value></member>")
        elif kind is bool:
            append(_TAILS[item])
        elif not item and (kind is list or kind is dict):
            append(_TAILS[kind])
        else:
            (encoders.get(kind) or _encoder_for(item))(item, out, spots)
            append("</value></member>")
    append("</struct>")


_ENCODERS: dict[type, Any] = {
    str: _enc_str,
    int: _enc_int,
    bool: _enc_bool,
    float: _enc_float,
    DateTime: _enc_datetime,
    Int32: _enc_int32,
    list: _enc_list,
    tuple: _enc_list,
    dict: _enc_dict,
}


def _encoder_for(value: Any) -> Any:
    """The encoder for a subclass of a supported type (bool, Int32 and DateTime tried first)."""
    for base in (bool, Int32, int, float, DateTime, str, list, tuple, dict):
        if isinstance(value, base):
            return _enc_str_subclass if base is str else _ENCODERS[base]
    raise TypeError(f"cannot encode {type(value).__name__} as a XAPI value")


def _encode_into(value: Any, out: list[str], spots: list[int]) -> None:
    (_ENCODERS.get(type(value)) or _encoder_for(value))(value, out, spots)


def encode_xmlrpc_value(value: Any) -> str:
    """One ``<value>…</value>`` fragment, as xapi stores in ``task.result``."""
    out, spots = ["<value>"], []
    _encode_into(value, out, spots)
    out.append("</value>")
    return _join_escaped(out, spots)


_RESPONSE_HEAD = (
    '<?xml version="1.0"?><methodResponse><params><param><value><struct>'
    "<member><name>Status</name><value>"
)
_RESPONSE_TAIL = "</value></member></struct></value></param></params></methodResponse>"


def encode_xmlrpc_success(value: Any) -> bytes:
    """A methodResponse document ``{Status: Success, Value: value}``."""
    out, spots = [_RESPONSE_HEAD, "Success</value></member><member><name>Value</name><value>"], []
    _encode_into(value, out, spots)
    out.append(_RESPONSE_TAIL)
    return _join_escaped(out, spots).encode("utf-8")


def encode_xmlrpc_failure(error: list[str]) -> bytes:
    """A methodResponse document ``{Status: Failure, ErrorDescription: [code, params...]}``."""
    if not error:
        raise ValueError("an error description needs at least the error code")
    head = "Failure</value></member><member><name>ErrorDescription</name><value>"
    out, spots = [_RESPONSE_HEAD, head], []
    _enc_list(error, out, spots)
    out.append(_RESPONSE_TAIL)
    return _join_escaped(out, spots).encode("utf-8")


def encode_xmlrpc_call(method: str, params: list) -> bytes:
    """A ``<methodCall>`` document, as xapi hands to dom0 plugins."""
    out, spots = [f"<methodCall><methodName>{_escape(method)}</methodName><params>"], []
    for param in params:
        out.append("<param><value>")
        _encode_into(param, out, spots)
        out.append("</value></param>")
    out.append("</params></methodCall>")
    return _join_escaped(out, spots).encode("utf-8")


# --------------------------------------------------------------------------- XML-RPC decoding

_INT_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")


def _to_int(text: str) -> int:
    if _INT_TEXT.fullmatch(text) is None:
        raise CodecError(f"bad integer {text[:40]!r}")
    return _int64(text.strip(), "<int>")


def _to_bool(text: str) -> bool:
    text = text.strip()
    if text == "1":
        return True
    if text == "0":
        return False
    raise CodecError(f"bad boolean {text!r} (must be 0 or 1)")


def _to_float(text: str) -> float:
    try:
        return float(text.replace("_", "!"))  # float() alone would take "1_0"
    except ValueError:
        raise CodecError(f"bad double {text!r}") from None


def _to_bytes(text: str) -> bytes:
    try:
        return binascii.a2b_base64(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError):
        raise CodecError("bad base64 data") from None


_CONVERTERS: dict[str, Any] = {
    "string": str,
    "int": _to_int,
    "i4": _to_int,
    "i8": _to_int,
    "boolean": _to_bool,
    "double": _to_float,
    "dateTime.iso8601": DateTime,
    "base64": _to_bytes,
    "nil": lambda _text: None,
}

# The elements allowed inside each element; "" stands for the document itself.
_IN_VALUE = frozenset(_CONVERTERS) | {"array", "struct"}
_IN_MEMBER = frozenset(("name", "value"))
_NOTHING: frozenset[str] = frozenset()
_CHILDREN: dict[str, frozenset[str]] = {
    "": frozenset(("methodCall",)),
    "methodCall": frozenset(("methodName", "params")),
    "methodName": _NOTHING,
    "params": frozenset(("param",)),
    "param": frozenset(("value",)),
    "value": _IN_VALUE,
    "array": frozenset(("data",)),
    "data": frozenset(("value",)),
    "struct": frozenset(("member",)),
    "member": _IN_MEMBER,
    "name": _NOTHING,
    **dict.fromkeys(_CONVERTERS, _NOTHING),
}
_CONTAINERS = frozenset(("struct", "array", "params"))
_UNSET = object()


def _refuse_dtd(*_args: Any) -> None:
    raise CodecError("DOCTYPE and entity declarations are not accepted")


def decode_xmlrpc_call(body: bytes) -> tuple[str, list]:
    """Parse a ``<methodCall>`` document into ``(methodName, params)``."""
    allowed: list[frozenset[str]] = [_CHILDREN[""]]  # what may open next, per open element
    chunks: list[str] = []  # character data since the last start tag
    frames: list[Any] = []  # open containers: a list (params, array) or [dict, key] (struct)
    params: list[Any] = []
    typed: Any = _UNSET  # what a typed child or container left for the enclosing </value>
    method: str | None = None
    param_count = 0
    children, converters, unset, in_member = _CHILDREN, _CONVERTERS, _UNSET, _IN_MEMBER

    def start(tag: str, _attrs: Any) -> None:
        if tag not in allowed[-1]:
            raise CodecError(f"unexpected element <{tag}>")
        allowed.append(children[tag])
        chunks.clear()
        if tag in _CONTAINERS:
            if len(frames) > MAX_NESTING:  # frames[0] is <params>, the rest arrays and structs
                raise CodecError(f"values nested more than {MAX_NESTING} arrays and structs deep")
            frames.append([{}, None] if tag == "struct" else [] if tag == "array" else params)

    def end(tag: str) -> None:
        nonlocal typed, method, param_count
        allowed.pop()
        if tag == "value":
            if typed is unset:
                value = "".join(chunks)
            else:
                value, typed = typed, unset
            frame = frames[-1]
            if allowed[-1] is not in_member:  # in <param> or <data>
                frame.append(value)
            elif frame[1] is None:
                raise CodecError("struct member without a <name> before its <value>")
            else:
                frame[0][frame[1]] = value
                frame[1] = None
        elif tag == "name":
            frame = frames[-1]
            if frame[1] is not None:
                raise CodecError("struct member with two names")
            frame[1] = "".join(chunks)
        elif tag == "member":
            if frames[-1][1] is not None:
                raise CodecError(f"struct member {frames[-1][1]!r} has no value")
        elif tag in converters or tag == "struct" or tag == "array":
            if typed is not unset:
                raise CodecError("a <value> holds more than one value")
            if tag == "struct":
                typed = frames.pop()[0]
            elif tag == "array":
                typed = frames.pop()
            else:
                typed = converters[tag]("".join(chunks))
        elif tag == "param":
            param_count += 1
            if len(params) != param_count:
                raise CodecError("each <param> must hold exactly one <value>")
        elif tag == "methodName":
            method = "".join(chunks)
        elif tag == "params":
            frames.pop()

    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.buffer_size = 1 << 16
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chunks.append
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise CodecError(f"malformed XML: {exc}") from None
    if method is None:
        raise CodecError("no <methodName> in the request")
    return method, params


# --------------------------------------------------------------------------- JSON-RPC


@dataclass(frozen=True, slots=True)
class JsonRpcCall:
    """A decoded JSON-RPC request; ``version`` is ``"1.0"`` or ``"2.0"`` and picks the reply shape."""

    version: str
    id: Any
    method: str
    params: list


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


def _json_int(text: str) -> int:
    return _int64(text, "integer")


def _too_deep(values: list) -> bool:
    """Whether any of ``values`` nests more than MAX_NESTING lists and objects (no recursion)."""
    stack = [(value, 1) for value in values if type(value) in (list, dict)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            return True
        children = value.values() if type(value) is dict else value
        stack.extend((child, depth + 1) for child in children if type(child) in (list, dict))
    return False


def decode_jsonrpc_call(body: bytes) -> JsonRpcCall:
    """Parse a JSON-RPC 1.0 or 2.0 request the way xapi (ocaml-rpc) does; no notifications."""
    try:
        request = json.loads(body.decode("utf-8"), parse_int=_json_int)
    except UnicodeDecodeError:
        raise CodecError("request body is not valid UTF-8") from None
    except RecursionError:
        raise CodecError(f"values nested more than {MAX_NESTING} arrays and objects deep") \
            from None
    except ValueError as exc:
        raise CodecError(f"invalid JSON: {exc}") from None
    if type(request) is not dict:
        raise CodecError("request body must be a JSON object")
    method = request.get("method")
    if type(method) is not str:
        raise CodecError("invalid or missing field 'method'")
    if "jsonrpc" not in request:
        version = "1.0"
        if "params" not in request:
            raise CodecError("required field 'params' is missing")
        params = request["params"]
        if type(params) is not list:
            raise CodecError("field 'params' must be an array")
    elif request["jsonrpc"] == "2.0" and type(request["jsonrpc"]) is str:
        version = "2.0"
        params = request.get("params")
        if params is None:
            params = []
        elif type(params) is dict:
            params = [params]
        elif type(params) is not list:
            raise CodecError("field 'params' must be an array or object")
    else:
        raise CodecError(f"invalid field 'jsonrpc': {request['jsonrpc']!r}")
    if _too_deep(params):
        raise CodecError(f"values nested more than {MAX_NESTING} arrays and objects deep")
    call_id = request.get("id")
    if call_id is None:
        raise CodecError("field 'id' is missing or null (notifications are not supported)")
    if type(call_id) not in (int, str):
        raise CodecError("field 'id' must be a string or an integer")
    return JsonRpcCall(version, call_id, method, params)


def encode_jsonrpc_success(call: JsonRpcCall, value: Any) -> bytes:
    """The success reply to ``call``, in its JSON-RPC version."""
    if call.version == "2.0":
        return _dumps({"jsonrpc": "2.0", "result": value, "id": call.id})
    return _dumps({"result": value, "error": None, "id": call.id})


def encode_jsonrpc_failure(call: JsonRpcCall, error: list[str]) -> bytes:
    """The failure reply to ``call``: v1 ``error`` is the list, v2 a ``{code: 1, message, data}``."""
    if not error:
        raise ValueError("an error description needs at least the error code")
    if call.version == "2.0":
        body = {"code": 1, "message": error[0], "data": list(error[1:])}
        return _dumps({"jsonrpc": "2.0", "error": body, "id": call.id})
    return _dumps({"result": None, "error": list(error), "id": call.id})
