"""XAPI's two wire formats, XML-RPC and JSON-RPC: request bodies out, replies in. No I/O.

Replies decode to a :class:`Reply`: ``Reply(True, value)`` or ``Reply(False, [CODE, param, ...])``,
whichever format and JSON-RPC version carried it. Values are left as XAPI sent them: over XML-RPC
xapi writes strings, 64-bit ints, enums and refs as *untyped* ``<value>text</value>``, so they come
back as ``str`` (an API ``int`` is ``"123"``), while JSON-RPC sends real numbers; nothing here
guesses. Where the caller knows the type, :func:`as_int`, :func:`as_float`, :func:`as_bool`,
:func:`as_datetime` and :func:`as_ref` convert either form. A reply that is not a well-formed XAPI
answer raises :class:`~os_xenapi.client.exception.ProtocolError`; bad parameters raise TypeError or
ValueError naming the parameter.

XML-RPC replies are decoded by :mod:`os_xenapi.client.xmlrpc_reply` (expat, with a fast path for
xapi's compact replies); documents with a DOCTYPE are refused, so no entity can be declared, and
so are values nested deeper than XAPI's ever are. A JSON reply nested deeper than the interpreter's
stack allows is a ProtocolError too.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import xmlrpc.client
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from . import xmlrpc_reply
from .exception import ProtocolError

NULL_REF = "OpaqueRef:NULL"
INT32 = range(-(2**31), 2**31)
INT64 = range(-(2**63), 2**63)


class Reply(NamedTuple):
    """One decoded answer: ``ok`` and either the result or the ``[CODE, param, ...]`` list."""

    ok: bool
    value: Any


# --------------------------------------------------------------------------- XML-RPC requests

# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _escape(text: str) -> str:
    if _NOT_XML.search(text):
        bad = _NOT_XML.search(text).group()  # type: ignore[union-attr]
        raise ValueError(f"XML-RPC cannot carry the character {bad!r} (XML 1.0 forbids it)")
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:  # a raw CR would reach the server as LF (XML end-of-line handling)
        text = text.replace("\r", "&#13;")
    return text


def _xapi_date(value: _dt.datetime) -> str:
    """``YYYYMMDDTHH:MM:SSZ`` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(_dt.timezone.utc)
    return value.strftime("%Y%m%dT%H:%M:%SZ")


def _encode_value(value: Any, out: list[str]) -> None:
    kind = value.__class__
    if kind is str:
        out.append(f"<value>{_escape(value)}</value>")
    elif kind is bool:
        out.append("<value><boolean>1</boolean></value>" if value else
                   "<value><boolean>0</boolean></value>")
    elif kind is int:
        if value in INT32:
            out.append(f"<value><int>{value}</int></value>")
        elif value in INT64:
            out.append(f"<value><i8>{value}</i8></value>")  # XAPI's int64_of_rpc takes <i8>
        else:
            raise ValueError(f"{value} does not fit in XAPI's 64-bit int")
    elif kind is float:
        if not math.isfinite(value):
            raise ValueError(f"XAPI cannot take the float {value!r}")
        out.append(f"<value><double>{value!r}</double></value>")
    elif value is None:
        out.append("<value><nil/></value>")
    elif isinstance(value, dict):
        out.append("<value><struct>")
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"struct keys must be str, not {type(key).__name__} ({key!r})")
            out.append(f"<member><name>{_escape(key)}</name>")
            _encode_value(item, out)
            out.append("</member>")
        out.append("</struct></value>")
    elif isinstance(value, list | tuple):
        out.append("<value><array><data>")
        for item in value:
            _encode_value(item, out)
        out.append("</data></array></value>")
    elif isinstance(value, _dt.datetime):
        out.append(f"<value><dateTime.iso8601>{_xapi_date(value)}</dateTime.iso8601></value>")
    elif isinstance(value, xmlrpc.client.DateTime):
        out.append(f"<value><dateTime.iso8601>{_escape(value.value)}</dateTime.iso8601></value>")
    elif isinstance(value, str):  # str subclasses (StrEnum, ...): their plain text
        _encode_value(str.__str__(value), out)
    elif isinstance(value, int):  # IntEnum and other int subclasses
        _encode_value(int(value), out)
    elif isinstance(value, float):
        _encode_value(float(value), out)
    else:
        raise TypeError(f"XAPI cannot take a {type(value).__name__} ({value!r:.60})")


def _check_method(method: Any) -> str:
    if not isinstance(method, str) or not method:
        raise TypeError(f"the XAPI method name must be a non-empty str, not {method!r}")
    return method


def encode_xmlrpc_value(value: Any) -> str:
    """``value`` as one XML-RPC ``<value>`` element (strings untyped, as xapi writes them)."""
    out: list[str] = []
    _encode_value(value, out)
    return "".join(out)


def encode_xmlrpc_call(method: str, params: Sequence[Any]) -> bytes:
    """An XML-RPC ``methodCall`` body; raises TypeError/ValueError naming a bad parameter."""
    out = [f'<?xml version="1.0"?><methodCall><methodName>{_escape(_check_method(method))}'
           "</methodName><params>"]
    for index, param in enumerate(params):
        out.append("<param>")
        try:
            _encode_value(param, out)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"parameter {index + 1} of {method}: {exc}") from None
        out.append("</param>")
    out.append("</params></methodCall>")
    return "".join(out).encode("utf-8")


# --------------------------------------------------------------------------- XML-RPC replies


def decode_xmlrpc_response(
    body: bytes, *, datetime_type: Callable[[str], Any] | None = None
) -> Reply:
    """Decode an XAPI ``methodResponse`` into a :class:`Reply`.

    Untyped values stay ``str``; ``<i4>``/``<int>``/``<i8>`` give ``int``, ``<boolean>`` bool,
    ``<double>`` float, ``<base64>`` bytes, ``<nil/>`` None, and ``<dateTime.iso8601>`` the text
    (or ``datetime_type(text)``, e.g. ``xmlrpc.client.DateTime`` as the SDK gives). Raises
    ProtocolError for anything but a ``{Status, Value | ErrorDescription}`` struct.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    return _reply(xmlrpc_reply.read_response(body, datetime_type))


def _reply(result: Any) -> Reply:
    if not isinstance(result, dict) or "Status" not in result:
        raise _malformed("the result is not a struct with a Status")
    status = result["Status"]
    if status == "Success":
        if "Value" not in result:
            raise _malformed("a Success without a Value")
        return Reply(True, result["Value"])
    if status == "Failure":
        error = result.get("ErrorDescription")
        if not isinstance(error, list) or not error:
            raise _malformed("a Failure without an ErrorDescription list")
        return Reply(False, error)
    raise _malformed(f"unknown Status {status!r:.40}")


def decode_xmlrpc_value(
    fragment: str | bytes, *, datetime_type: Callable[[str], Any] | None = None
) -> Any:
    """The value of one ``<value>...</value>`` fragment, such as a task's ``result`` field."""
    return xmlrpc_reply.read_value(fragment, datetime_type)


def _malformed(what: str) -> ProtocolError:
    return ProtocolError(f"malformed XML-RPC reply: {what}")


# --------------------------------------------------------------------------- JSON-RPC


def _jsonable(value: Any) -> Any:
    """``value`` with the types JSON lacks converted, or TypeError/ValueError naming the bad one."""
    kind = value.__class__
    if kind is str or kind is bool or kind is int or value is None:
        if kind is int and value not in INT64:
            raise ValueError(f"{value} does not fit in XAPI's 64-bit int")
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"XAPI cannot take the float {value!r}")
        return value
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"map keys must be str, not {type(key).__name__} ({key!r})")
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, _dt.datetime):
        return _xapi_date(value)
    if isinstance(value, xmlrpc.client.DateTime):
        return value.value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int | float):
        return _jsonable((int if isinstance(value, int) else float)(value))
    raise TypeError(f"XAPI cannot take a {type(value).__name__} ({value!r:.60})")


def encode_jsonrpc_call(method: str, params: Sequence[Any], request_id: int | str) -> bytes:
    """A JSON-RPC 2.0 request body, as XAPI's other SDKs send it."""
    converted = []
    for index, param in enumerate(params):
        try:
            converted.append(_jsonable(param))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"parameter {index + 1} of {method}: {exc}") from None
    request = {"jsonrpc": "2.0", "method": _check_method(method), "params": converted,
               "id": request_id}
    return json.dumps(request, separators=(",", ":")).encode("utf-8")


def decode_jsonrpc_response(body: bytes, request_id: int | str | None = None, *,
                            int_type: Callable[[str], Any] = int) -> Reply:
    """Decode a JSON-RPC v1 or v2 reply into a :class:`Reply`.

    A v2 error ``{code, message, data}`` becomes ``[message, *data]``, the same list a v1 error
    or XML-RPC carries. With ``request_id``, a reply to another request raises ProtocolError.
    JSON integers are decoded with ``int_type`` (``str`` gives them as XAPI's XML-RPC does).
    """
    try:
        reply = json.loads(body) if int_type is int else json.loads(body, parse_int=int_type)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed JSON-RPC reply: not JSON ({exc})") from None
    except RecursionError:  # json's decoder nests on the interpreter's stack
        raise ProtocolError("malformed JSON-RPC reply: values nested too deeply") from None
    if not isinstance(reply, dict):
        raise ProtocolError("malformed JSON-RPC reply: not a JSON object")
    got = reply.get("id")
    if int_type is not int and isinstance(request_id, int) and got.__class__ is str:
        got = _int_id(got)
    if request_id is not None and got is not None and got != request_id:
        raise ProtocolError(f"JSON-RPC reply to request {got!r:.40}, expected {request_id!r}")
    error = reply.get("error")
    if error is None:
        if "result" not in reply:
            raise ProtocolError("malformed JSON-RPC reply: neither result nor error")
        return Reply(True, reply["result"])
    if isinstance(error, list) and error:  # v1: the ErrorDescription itself
        return Reply(False, error)
    if isinstance(error, dict) and "message" in error:  # v2
        data = error.get("data")
        if data is None:
            return Reply(False, [error["message"]])
        return Reply(False, [error["message"], *data] if isinstance(data, list) else
                     [error["message"], data])
    raise ProtocolError(f"malformed JSON-RPC reply: unknown error shape {error!r:.80}")


def _int_id(text: str) -> int | str:
    """A request id that ``int_type`` turned into text, as the int it was on the wire."""
    try:
        return int(text)
    except ValueError:
        return text


# --------------------------------------------------------------------------- typed helpers


def as_int(value: Any) -> int:
    """An API ``int`` as sent over either wire (``"123"`` over XML-RPC, ``123`` over JSON)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"expected an XAPI int, got {type(value).__name__} {value!r:.40}")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{value!r:.40} is not an XAPI int") from None


def as_float(value: Any) -> float:
    """An API ``float``, from a float, an int or a decimal string."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expected an XAPI float, got {type(value).__name__} {value!r:.40}")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{value!r:.40} is not an XAPI float") from None


def as_bool(value: Any) -> bool:
    """An API ``bool``: a bool, or the strings ``true``/``false`` that XAPI keys often hold."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"{value!r:.40} is not an XAPI bool")


_DATE = re.compile(
    r"(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(?:\.(\d{1,6})\d*)?"
    r"(Z|[+-]\d{2}:?\d{2})?\Z"
)


def as_datetime(value: Any) -> _dt.datetime:
    """An API ``datetime`` as a timezone-aware UTC datetime.

    Takes XAPI's ``YYYYMMDDTHH:MM:SSZ``, the dashed ``YYYY-MM-DDTHH:MM:SSZ``, an offset instead of
    ``Z`` (no zone means UTC), an ``xmlrpc.client.DateTime`` or a datetime (naive means UTC).
    """
    if isinstance(value, _dt.datetime):
        moment = value
    else:
        if isinstance(value, xmlrpc.client.DateTime):
            value = value.value
        if not isinstance(value, str):
            raise TypeError(f"expected an XAPI datetime, got {type(value).__name__}")
        match = _DATE.match(value.strip())
        if not match:
            raise ValueError(f"{value!r:.40} is not an XAPI datetime (YYYYMMDDTHH:MM:SSZ)")
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        tz = _dt.timezone.utc
        if zone and zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            tz = _dt.timezone(sign * _dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        try:
            moment = _dt.datetime(int(year), int(month), int(day), int(hour), int(minute),
                                  int(second), int((fraction or "0").ljust(6, "0")), tzinfo=tz)
        except ValueError as exc:
            raise ValueError(f"{value!r:.40} is not a valid date ({exc})") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc)


def as_ref(value: Any) -> str | None:
    """A reference, or None for ``OpaqueRef:NULL`` (and the empty string)."""
    if not isinstance(value, str):
        raise TypeError(f"expected an XAPI reference, got {type(value).__name__}")
    return None if value in (NULL_REF, "") else value


def is_null_ref(value: Any) -> bool:
    """True for ``OpaqueRef:NULL`` (and the empty string), XAPI's "no object"."""
    return value in (NULL_REF, "")
