"""Decoding XAPI's XML-RPC replies, fast: the heaviest work of any client call.

xapi writes its replies compact (no whitespace between tags, strings untyped), and a
``VM.get_all_records`` of a few hundred VMs is megabytes of them. The fast path hands every
expat event to a C method (``list.append``) and walks the resulting flat list once, so no Python
code runs per XML element; on such a reply it takes under half the time of the stdlib's
``xmlrpc.client.loads``, which the official SDK uses. Anything the fast path cannot read with
certainty (indentation, comments, CDATA, unusual tag forms, errors) goes to the general path:
ElementTree's C builder over expat and a walk of the tree, which reads any layout and reports
what is wrong. Documents with a DOCTYPE are refused by both, so no entity can be declared: expat
reports the DOCTYPE itself, whatever the document's encoding (UTF-8 with or without a BOM,
UTF-16, one named in the XML declaration) and whatever comments or processing instructions come
before it. Values nested more than :data:`MAX_DEPTH` deep are refused too (XAPI's nest a few
levels), so that no reply can exhaust the interpreter's stack, here or in the caller.

Values are left as the wire has them: untyped values are ``str`` (an API ``int`` too),
``<i4>``/``<int>``/``<i8>`` give ``int``, ``<boolean>`` bool, ``<double>`` float, ``<base64>``
bytes, ``<nil/>`` None, and ``<dateTime.iso8601>`` its text or ``datetime_type(text)``.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import Element, ParseError, XMLParser
from xml.parsers import expat

from .exception import ProtocolError


def _bad(what: str) -> ProtocolError:
    return ProtocolError(f"malformed XML-RPC reply: {what}")


def _to_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _bad(f"{text!r:.40} is not an integer") from None


def _to_bool(text: str) -> bool:
    text = text.strip()
    if text == "1":
        return True
    if text == "0":
        return False
    raise _bad(f"{text!r:.40} is not a boolean (0 or 1)")


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _bad(f"{text!r:.40} is not a double") from None


def _to_bytes(text: str) -> bytes:
    try:
        return binascii.a2b_base64(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError):
        raise _bad("invalid base64") from None


_SCALARS: dict[str, Callable[[str], Any]] = {
    "string": str,
    "i4": _to_int,
    "int": _to_int,
    "i8": _to_int,
    "boolean": _to_bool,
    "double": _to_float,
    "base64": _to_bytes,
}


class _Tag:
    """An element name as the fast path sees it: compared by identity, never by text."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_VOCABULARY = ("methodResponse", "params", "param", "fault", "value", "struct", "member", "name",
               "array", "data", "string", "i4", "int", "i8", "boolean", "double", "base64",
               "dateTime.iso8601", "nil")
# pyexpat hands every element name to the handlers through this table (its ``intern`` dict), so
# end tags reach the token list as these objects; a name that is not in it gets added to the copy
# a parse uses, which is how an unknown element is noticed.
_TAGS = {name: _Tag(name) for name in _VOCABULARY}
_MARK = _TAGS["_typed"] = _Tag("_typed")
_TEXT_BUFFER = 1 << 22  # bytes of text expat may hand over in one piece
MAX_DEPTH = 64  # structs and arrays inside one another; an event.from snapshot nests about 7
_PROLOG_PIECE = 1 << 16  # bytes fed at a time to the parser that looks for a DOCTYPE
# The fast path's byte rewrites need tags in ASCII: UTF-8 without a BOM (or ASCII) only.
_ASCII_DECLARATION = re.compile(
    rb"<\?xml[^>]*?encoding=[\"'](?:utf-?8|us-ascii|ascii)[\"']", re.IGNORECASE)
# Whitespace between two tags, before a start tag: indentation, which the fast path cannot read.
_LOOSE = re.compile(rb">[ \t\r\n]+<[^/]")


class _Slow(Exception):
    """The fast path cannot read this document; the general one must."""


def _refuse_doctype(*_args: Any) -> None:
    raise ProtocolError("refusing an XML-RPC reply with a DOCTYPE (entities are not allowed)")


def _too_deep() -> ProtocolError:
    return _bad(f"values nested more than {MAX_DEPTH} deep")


class _RootStarted(Exception):
    """The root element has begun: the prolog, where a DOCTYPE may stand, is over."""


def _root_started(*_args: Any) -> None:
    raise _RootStarted


def _refuse_any_doctype(body: bytes) -> None:
    """Raise ProtocolError if ``body`` declares a DOCTYPE, as expat reads the document: in its
    own encoding and past any comment or processing instruction. Parsing stops where the root
    element starts (a DOCTYPE later on is not well-formed, which the real parse reports)."""
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.StartElementHandler = _root_started
    try:
        for start in range(0, len(body), _PROLOG_PIECE):
            parser.Parse(body[start:start + _PROLOG_PIECE], False)
        parser.Parse(b"", True)
    except _RootStarted:
        return
    except expat.ExpatError as exc:
        raise _bad(f"not well-formed XML ({exc})") from None


def _slow(*_args: Any) -> None:
    raise _Slow


def _tokens(body: bytes) -> list[Any]:
    """The reply as a flat list: texts (``str``), end tags and start marks (:class:`_Tag`).

    Every handler is a C method (``list.append``), so no Python code runs per element. expat
    reports only end tags and text here; the starts that matter, those of typed values (structs,
    arrays, scalars) and of empty values, are made visible by a rewrite that follows every
    ``<value>`` opening a child element with an empty ``<_typed/>``. The members of a struct are
    merged into one ``<member>`` on the way, which saves two events per member. Comments,
    processing instructions and CDATA sections could hide text from those rewrites, so they
    send the document down the general path.
    """
    if body[:1] != b"<" or (body[:5] == b"<?xml" and b"encoding" in body[:200]
                             and not _ASCII_DECLARATION.match(body)):
        raise _Slow  # a BOM, UTF-16, or another declared encoding: bytes are not ASCII tags
    body = body.replace(b"</member><member>", b"").replace(b"<value><", b"<value><_typed/><")
    tokens: list[Any] = []
    table = dict(_TAGS)
    parser = expat.ParserCreate(intern=table)
    parser.buffer_text = True
    parser.buffer_size = _TEXT_BUFFER  # a longer text would come in pieces
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.StartCdataSectionHandler = _slow
    parser.CommentHandler = _slow
    parser.ProcessingInstructionHandler = _slow
    parser.EndElementHandler = tokens.append
    parser.CharacterDataHandler = tokens.append
    try:
        parser.Parse(body, True)
    except expat.ExpatError:
        raise _Slow from None  # let the general path report it, with the original positions
    if len(table) != len(_TAGS):
        raise _Slow  # an element XML-RPC does not have
    return tokens


_SCALAR_TAGS = {_TAGS[name]: convert for name, convert in _SCALARS.items()}
_SKIPPED = frozenset(_TAGS[name] for name in ("member", "array", "param", "params",
                                                "methodResponse"))


def _fast_value(body: bytes, datetime_type: Callable[[str], Any] | None) -> Any:
    """The one value of a compact ``methodResponse`` (as xapi writes it), or raise _Slow.

    A postfix walk of :func:`_tokens`. In a compact document a text is always closed by the end
    tag that follows it, so the two are taken together. Finished values pile up on ``stack``; a
    mark notes where a typed value starts, and a struct or array takes the values above it.

    Indentation would break the pairing, since start tags leave no token: whitespace before a
    start tag joins the next text. So a text followed by anything but the end of an element
    that holds text means another layout, and so may a text that starts with whitespace; for
    those, one search of the document (``_LOOSE``) tells indentation from data. Marks and the
    ends that take them must balance exactly; a start tag in another form than the rewrites
    expect (``<value/>``) upsets the balance, which ends in the general path too.
    """
    END_VALUE, END_NAME, END_STRUCT, END_DATA = (
        _TAGS["value"], _TAGS["name"], _TAGS["struct"], _TAGS["data"])
    MARK, nil, when = _MARK, _TAGS["nil"], _TAGS["dateTime.iso8601"]
    scalars, skipped = _SCALAR_TAGS, _SKIPPED
    stack: list[Any] = []
    push = stack.append
    marks: list[int] = []
    mark, unmark = marks.append, marks.pop
    typed = False  # a typed value has been pushed for the <value> that ends next
    looked = False  # whether _LOOSE has been searched for
    tokens = iter(_tokens(body))
    try:
        for token in tokens:
            if token.__class__ is str:
                if token < "!" and not looked:  # starts with whitespace: maybe indentation
                    looked = True
                    if _LOOSE.search(body):
                        raise _Slow
                end = next(tokens)
                if end is END_VALUE or end is END_NAME:
                    if typed:
                        raise _Slow  # text beside a typed value
                    push(token)
                elif end in scalars:
                    unmark()
                    push(scalars[end](token))
                    typed = True
                elif end is when:
                    unmark()
                    push(datetime_type(token) if datetime_type else token)
                    typed = True
                else:
                    raise _Slow  # text where XML-RPC has none
            elif token is MARK:
                mark(len(stack))
            elif token is END_VALUE:
                if typed:
                    typed = False
                else:  # an empty value: "<value></value>" was marked, so take its mark
                    if marks and marks[-1] == len(stack):
                        unmark()
                    push("")
            elif token is END_NAME:
                push("")
            elif token is END_STRUCT:
                if len(marks) > MAX_DEPTH:
                    raise _too_deep()
                start = unmark()
                if (len(stack) - start) % 2:
                    raise _Slow
                items = iter(stack[start:])
                del stack[start:]
                push(dict(zip(items, items, strict=False)))  # even length checked above
                typed = True
            elif token is END_DATA:
                if len(marks) > MAX_DEPTH:
                    raise _too_deep()
                start = unmark()
                items = stack[start:]
                del stack[start:]
                push(items)
                typed = True
            elif token in skipped:
                pass
            elif token in scalars or token is when or token is nil:  # typed, without text
                unmark()
                if token is nil:
                    push(None)
                elif token is when:
                    push(datetime_type("") if datetime_type else "")
                else:
                    push(scalars[token](""))
                typed = True
            else:  # <fault>, or a name that only the general path knows how to report
                raise _Slow
    except (IndexError, StopIteration):
        raise _Slow from None  # unbalanced marks, or a text at the very end
    if len(stack) != 1 or marks:
        raise _Slow
    return stack[0]


class _Walker:
    """The general path: turns a parsed ``<value>`` element tree into Python values.

    It reads any layout (indented, with comments or CDATA) and checks the XML-RPC grammar as it
    goes; it builds an element per tag first, so it is slower than the fast path.
    """

    def __init__(self, datetime_type: Callable[[str], Any] | None) -> None:
        self.datetime_type = datetime_type

    def value(self, elem: Element, depth: int = 0) -> Any:
        """The value of a ``<value>`` element inside ``depth`` structs and arrays."""
        if not len(elem):
            return elem.text or ""  # untyped: a string as far as the wire says
        text = elem.text
        if len(elem) != 1 or (text and not text.isspace()):
            raise _bad("a <value> holds more than one typed value")
        child = elem[0]
        tag = child.tag
        if tag in ("struct", "array"):
            if depth >= MAX_DEPTH:
                raise _too_deep()
            if tag == "struct":
                return self.struct(child, depth + 1)
            return self.array(child, depth + 1)
        convert = _SCALARS.get(tag)
        if convert is not None:
            return convert(child.text or "")
        if tag == "dateTime.iso8601":
            return self.datetime_type(child.text or "") if self.datetime_type else child.text or ""
        if tag == "nil":
            return None
        raise _bad(f"unknown value type <{tag}>")

    def struct(self, elem: Element, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for member in elem:
            if member.tag != "member":
                raise _bad(f"unexpected <{member.tag}> in a struct")
            try:
                name, item = member
            except ValueError:
                raise _bad("a struct <member> needs exactly a <name> and a <value>") from None
            if name.tag != "name" or item.tag != "value":
                raise _bad("a struct <member> needs exactly a <name> and a <value>")
            out[name.text or ""] = self.value(item, depth)
        return out

    def array(self, elem: Element, depth: int) -> list[Any]:
        if len(elem) != 1 or elem[0].tag != "data":
            raise _bad("an <array> needs exactly one <data>")
        out = []
        for item in elem[0]:
            if item.tag != "value":
                raise _bad(f"unexpected <{item.tag}> in an array")
            out.append(self.value(item, depth))
        return out


def _parse(body: bytes | str) -> Element:
    if isinstance(body, str):
        body = body.encode("utf-8")
    _refuse_any_doctype(body)
    parser = XMLParser()
    try:
        parser.feed(body)
        return parser.close()
    except ParseError as exc:
        raise _bad(f"not well-formed XML ({exc})") from None


def _walk(walker: _Walker, elem: Element) -> Any:
    try:
        return walker.value(elem)
    except RecursionError:  # MAX_DEPTH keeps well inside the limit, unless the caller is deep
        raise _too_deep() from None


def read_response(body: bytes, datetime_type: Callable[[str], Any] | None = None) -> Any:
    """The value a ``methodResponse`` carries (XAPI's ``{Status, ...}`` struct).

    Raises ProtocolError for a document that is not one ``methodResponse`` with one param,
    including an XML-RPC ``<fault>``, which XAPI's API never sends.
    """
    try:
        return _fast_value(body, datetime_type)
    except _Slow:
        pass
    root = _parse(body)
    if root.tag != "methodResponse" or len(root) != 1:
        raise _bad(f"the document is a <{root.tag}>, not a <methodResponse> with one child")
    walker = _Walker(datetime_type)
    top = root[0]
    if top.tag == "fault":
        fault = _walk(walker, top[0]) if len(top) == 1 and top[0].tag == "value" else None
        if isinstance(fault, dict):
            raise ProtocolError(
                f"the server answered with XML-RPC fault {fault.get('faultCode')}: "
                f"{fault.get('faultString')}"
            )
        raise _bad("a <fault> without a struct")
    if top.tag != "params" or len(top) != 1 or top[0].tag != "param" or len(top[0]) != 1:
        raise _bad("a methodResponse needs exactly one <param>")
    return _walk(walker, top[0][0])


def read_value(fragment: str | bytes, datetime_type: Callable[[str], Any] | None = None) -> Any:
    """The value of one ``<value>...</value>`` fragment, such as a task's ``result`` field."""
    if not fragment or not fragment.strip():
        raise ProtocolError("an empty XML-RPC value fragment (has the task finished?)")
    root = _parse(fragment)
    if root.tag != "value":
        raise _bad(f"the fragment is a <{root.tag}>, not a <value>")
    return _walk(_Walker(datetime_type), root)
