"""What XAPI makes of a finished plugin or extension: its exit status and its stdout.

XAPI reads a plugin's stdout with its own XML reader (``xml-light2`` over ``xmlm``) and its own
XML-RPC decoder (``http-lib/xMLRPC.ml``), whose quirks a client can see, so they are copied here
as behaviour:

* only the first element of the output is read; anything after it is ignored, anything before it
  fails (``["failed to parse plugin output", output, "<reason> line <n>"]``);
* text made only of spaces, tabs and newlines disappears, so ``<value>  </value>`` is ``""``;
* a reply of the wrong shape (no ``Status``, two params, a non-string ``Value``...) raises
  ``RunTimeTypeError``, which ``xapi_plugins.ml`` does not catch: the client gets
  ``INTERNAL_ERROR ['XMLRPC.RunTimeTypeError("<what>", _)']``. Because of this,
  ``"unexpected XMLRPC result"`` can no longer occur: the decoder returns no other shape.

The reasons in parse failures follow xmlm's wording for the common cases (nothing at all, text
before the first element) and expat's otherwise.
"""

from __future__ import annotations

import json
import re
import signal
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

from .errors import ApiError

PLUGIN_FAILURE = "XENAPI_PLUGIN_FAILURE"
_BLANK = " \t\n"  # the characters xml-light2 drops from all-blank text


@dataclass(frozen=True)
class Finished:
    """A subprocess that ran to its end: exit status as Python reports it, and its output."""

    returncode: int  # negative: killed by that signal
    stdout_bytes: bytes
    stderr_bytes: bytes

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8", "replace")


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9, as XAPI's ``Unixext.string_of_signal`` names signals."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"(ocaml signal {number} with an unknown name)"


# -- the XML tree, as xml-light2 builds it ------------------------------------------------------

@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Any]  # Element or str


class XmlError(Exception):
    """Output that is no XML document; the message is what XAPI puts in the failure."""


class _Done(Exception):
    """Raised from the parser's handlers once the first element has closed."""


def parse_xml(data: bytes) -> Element:
    """The first element of ``data``; raises XmlError if it cannot be read."""
    stack: list[Element] = []
    root: list[Element] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        element = Element(tag, dict(attrs), [])
        if stack:
            stack[-1].children.append(element)
        stack.append(element)

    def end(_tag: str) -> None:
        element = stack.pop()
        element.children = _merged(element.children)
        if not stack:
            root.append(element)
            raise _Done

    def text(data: str) -> None:
        if stack:
            stack[-1].children.append(data)

    def refuse_entities(*_args: Any) -> None:
        raise XmlError("unknown entity reference line 1")

    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.EntityDeclHandler = refuse_entities
    try:
        parser.Parse(data, True)
    except _Done:
        return root[0]
    except expat.ExpatError as exc:
        if stack:
            raise XmlError(f"{expat.ErrorString(exc.code)} line {exc.lineno}") from None
        if not data.strip():
            raise XmlError(f"unexpected end of input line {exc.lineno}") from None
        raise XmlError(f"expected root element line {exc.lineno}") from None
    raise XmlError("unexpected end of input line 1")


def _merged(children: list[Any]) -> list[Any]:
    """Adjacent text joined, and all-blank text dropped (xml-light2's ``is_empty``)."""
    out: list[Any] = []
    for child in children:
        if isinstance(child, str) and out and isinstance(out[-1], str):
            out[-1] += child
        else:
            out.append(child)
    return [c for c in out if not (isinstance(c, str) and not c.strip(_BLANK))]


# -- xMLRPC.ml's From functions ----------------------------------------------------------------

class RunTimeTypeError(Exception):
    """XAPI's ``XMLRPC.RunTimeTypeError``: the XML is not the XML-RPC it should be."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what

    def as_api_error(self) -> ApiError:
        return ApiError("INTERNAL_ERROR", f'XMLRPC.RunTimeTypeError("{_escaped(self.what)}", _)')


def _escaped(text: str) -> str:
    """OCaml's ``String.escaped``, used by ``%S`` when XAPI prints an exception."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '\\"':
            out.append("\\" + char)
        elif char in "\n\t\r\b":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b"}[char])
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def _pretty(node: Any) -> str:
    if isinstance(node, Element):
        return "Element=" + _escaped(node.tag)
    return "PCData=" + _escaped(node)


def _unbox(node: Any, *tags: str) -> list[Any]:
    if isinstance(node, Element) and not node.attrs and node.tag in tags:
        return node.children
    raise RunTimeTypeError(f"unbox: {_pretty(node)} should contain '{tags[0]}'")


def _single(node: Any, *tags: str) -> Any:
    children = _unbox(node, *tags)
    if len(children) != 1:
        listed = ", ".join(_pretty(c) for c in children)
        raise RunTimeTypeError(f"singleton: {{{listed}}} should be the singleton {{{tags[0]}}}")
    return children[0]


def _pcdata(node: Any) -> str:
    if isinstance(node, str):
        return node
    raise RunTimeTypeError("pcdata")


def from_string(node: Any) -> str:
    """``XMLRPC.From.string``: ``<value>x</value>``, ``<value><string>x</string></value>``."""
    if isinstance(node, Element) and node.tag == "value" and not node.attrs:
        children = node.children
        if len(children) == 1 and isinstance(children[0], str):
            return children[0]
        if not children:
            return ""
        only = children[0] if len(children) == 1 else None
        if (isinstance(only, Element) and only.tag == "string" and not only.attrs
                and not only.children):
            return ""
    return _pcdata(_single(_single(node, "value"), "string"))


def _structure(node: Any) -> list[tuple[str, Any]]:
    members = []
    for member in _unbox(_single(node, "value"), "struct"):
        pair = _unbox(member, "member")
        if len(pair) != 2:
            raise RunTimeTypeError("pair ")
        name = _unbox(pair[0], "name")
        if len(name) > 1 or (name and not isinstance(name[0], str)):
            raise RunTimeTypeError("From.name: should contain PCData")
        members.append((name[0] if name else "", pair[1]))
    return members


def _lookup(members: list[tuple[str, Any]], key: str) -> Any:
    for name, value in members:
        if name == key:
            return value
    raise KeyError(key)


def _int32(node: Any) -> int:
    text = _pcdata(_single(_single(node, "value"), "i4", "int"))
    if re.fullmatch(r"[-+]?[0-9]+", text) is None or not -(2**31) <= int(text) < 2**31:
        raise ApiError("INTERNAL_ERROR", 'Failure("Int32.of_string")')
    return int(text)


def read_response(root: Element) -> tuple[str, Any]:
    """``XMLRPC.From.methodResponse``: ("success", value node), ("failure", [code, ...]) or
    ("fault", (code, reason)); raises RunTimeTypeError for any other shape."""
    child = _single(root, "methodResponse")
    if isinstance(child, Element) and child.tag == "params":
        params = [_single(param, "param") for param in _unbox(child, "params")]
        if len(params) != 1:
            raise RunTimeTypeError("Expected single return value (struct status)")
        members = _structure(params[0])
        try:
            status = from_string(_lookup(members, "Status"))
            if status == "Success":
                return "success", _lookup(members, "Value")
            if status == "Failure":
                description = _lookup(members, "ErrorDescription")
                items = _unbox(_single(_single(description, "value"), "array"), "data")
                if not items:
                    raise RunTimeTypeError("Empty array of error strings")
                return "failure", [from_string(item) for item in items]
        except KeyError:
            pass
        raise RunTimeTypeError("Status")
    if isinstance(child, Element) and child.tag == "fault":
        members = _structure(_single(child, "fault"))
        try:
            code, reason = _lookup(members, "faultCode"), _lookup(members, "faultString")
        except KeyError:
            raise ApiError("INTERNAL_ERROR", "Not_found") from None
        return "fault", (_int32(code), from_string(reason))
    raise RunTimeTypeError("response")


# -- plugins -----------------------------------------------------------------------------------

def plugin_result(done: Finished) -> str:
    """The string ``host.call_plugin`` returns for ``done``; raises ApiError as XAPI does."""
    if done.returncode < 0:
        reason = f"signal: {signal_name(-done.returncode)}"
        raise ApiError(PLUGIN_FAILURE, reason, done.stdout, done.stderr)
    if done.returncode > 0:
        raise ApiError(PLUGIN_FAILURE, "non-zero exit", done.stdout, done.stderr)
    try:
        kind, value = read_response(parse_xml(done.stdout_bytes))
        if kind == "success":
            return from_string(value)
    except XmlError as exc:
        raise ApiError(
            PLUGIN_FAILURE, "failed to parse plugin output", done.stdout, str(exc)
        ) from None
    except RunTimeTypeError as exc:
        raise exc.as_api_error() from None
    if kind == "failure":
        raise ApiError(value[0], *value[1:])
    code, reason = value
    raise ApiError(PLUGIN_FAILURE, "fault", str(code), reason)


# -- extensions --------------------------------------------------------------------------------

_SCALARS = {
    "string": str,
    "int": int,
    "i4": int,
    "i8": int,
    "boolean": lambda text: text.strip() == "1",
    "double": float,
    "dateTime.iso8601": str,
    "base64": str,
}


def decode_value(node: Any) -> Any:
    """A ``<value>`` node as a Python value (untyped text is a string, ``<nil/>`` None)."""
    children = _unbox(node, "value")
    if not children:
        return ""
    if len(children) > 1:
        raise RunTimeTypeError("value")
    inner = children[0]
    if isinstance(inner, str):
        return inner
    if inner.tag == "struct":
        return {name: decode_value(value) for name, value in _structure(node)}
    if inner.tag == "array":
        return [decode_value(item) for item in _unbox(_single(inner, "array"), "data")]
    if inner.tag == "nil":
        return None
    if inner.tag in _SCALARS:
        text = "".join(c for c in inner.children if isinstance(c, str))
        try:
            return _SCALARS[inner.tag](text)
        except ValueError:
            raise RunTimeTypeError(inner.tag) from None
    raise RunTimeTypeError(f"unknown XML-RPC type {inner.tag}")


def extension_result(path: str, done: Finished) -> Any:
    """What ``host.call_extension`` returns for ``done``; raises ApiError as XAPI does."""
    if done.returncode != 0:
        reason = (
            f"signal: {signal_name(-done.returncode)}" if done.returncode < 0 else "non-zero exit"
        )
        raise ApiError("INTERNAL_ERROR", path, reason, done.stdout, done.stderr)
    try:
        root = parse_xml(done.stdout_bytes)
        params = _unbox(_single(root, "methodResponse"), "params")
        if len(params) != 1:
            raise RunTimeTypeError("Expected single return value")
        reply = decode_value(_single(params[0], "param"))
    except (XmlError, RunTimeTypeError) as exc:
        raise ApiError(
            "INTERNAL_ERROR", path, "failed to parse extension output", done.stdout, str(exc)
        ) from None
    if not isinstance(reply, dict) or reply.get("Status") not in ("Success", "Failure"):
        return reply
    if reply["Status"] == "Success":
        return reply.get("Value", "")
    error = reply.get("ErrorDescription")
    if isinstance(error, str):
        raise ApiError(error)
    if isinstance(error, list) and error and all(isinstance(e, str) for e in error):
        raise ApiError(error[0], *error[1:])
    raise ApiError("EXTENSION_PROTOCOL_FAILURE", json.dumps(error))
