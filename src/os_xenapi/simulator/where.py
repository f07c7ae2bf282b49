"""The filter language of XAPI's ``<class>.get_all_records_where`` and ``get_all_where``.

Grammar (xen-api ``ocaml/database/db_filter_lex.mll``, ``db_filter_parse.mly``,
``db_filter.ml``): ``expr := value = value | expr and expr | expr or expr | not expr | true
| false | ( expr )`` and ``value := STRING | field STRING``, STRING being double-quoted text.
``=`` compares database strings, which :func:`db_string` produces. :func:`parse_where` parses
(and caches) an expression into a :class:`Where`; :meth:`Where.matches` tests one row.
Details of XAPI's real parser, all reproduced here:

* ``and`` and ``or`` have the same precedence and group to the left:
  ``A or B and C`` is ``(A or B) and C``.
* ``not`` has the *lowest* precedence (``%right LNOT`` is declared before ``%left LAND LOR``),
  so it takes everything up to the closing parenthesis or the end: ``not A and B`` is
  ``not (A and B)``, and ``A and not B or C`` is ``A and not (B or C)``.
* Keywords are lower case and need no separation: ``field"a"="b"and"c"="d"`` is valid.
  Only space, tab and newline are whitespace. A string is ``"`` anything but ``"`` ``"``.
* A failed parse is ``INVALID_VALUE [expr; reason]``; see :class:`WhereSyntaxError`.
* Evaluation is lazy and short-circuits; a ``field`` naming a column the table lacks fails the
  whole call with ``INTERNAL_ERROR ["missing field"; column; ""]`` when (and only when) a row
  reaches it; see :class:`UnknownField`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, NoReturn

Lookup = Callable[[str], str]
_Pred = Callable[[Lookup], bool]
_Compiled = bool | _Pred

# Printexc.to_string of the two exceptions XAPI's parser can raise, as wrapped by
# Db_filter.Expression_error and turned into INVALID_VALUE [expr; reason] by exnHelper.ml.
PARSE_ERROR_REASON = "Stdlib.Parsing.Parse_error"
LEXING_ERROR_REASON = 'Failure("lexing: empty token")'


class WhereSyntaxError(ValueError):
    """A where-expression that XAPI would refuse to parse."""

    def __init__(self, expr: str, position: int, problem: str, reason: str) -> None:
        super().__init__(f"{problem} at position {position} of where-expression {expr!r}")
        self.expr = expr
        self.position = position
        self.problem = problem
        self.reason = reason

    @property
    def error_description(self) -> list[str]:
        """The error XAPI returns for this expression (exnHelper.ml)."""
        return ["INVALID_VALUE", self.expr, self.reason]


class UnknownField(KeyError):
    """A ``field "name"`` that the table being filtered has no column for."""

    def __init__(self, column: str) -> None:
        super().__init__(column)
        self.column = column

    def __str__(self) -> str:
        return f"where-expression reads unknown column {self.column!r}"

    @property
    def error_description(self) -> list[str]:
        """The XAPI error (from ``Row.find`` via exnHelper.ml) that fails the whole call."""
        return ["INTERNAL_ERROR", "missing field", self.column, ""]


_Tok = tuple[str, str, int]  # (kind, text, position)
_SPACE = re.compile(r"[ \t\n]*")  # XAPI's lexer skips only these; "\r" is an error
_TOKEN = re.compile(r'(=|\(|\)|true|false|field|and|or|not)|"([^"]*)"')


def _tokens(expr: str) -> list[_Tok]:
    """The tokens of ``expr``. A bad character ends the list as a ``"bad"`` token, an error
    only if the parser reads that far (XAPI's lexer runs on demand)."""
    out: list[_Tok] = []
    i = _SPACE.match(expr).end()
    while i < len(expr):
        m = _TOKEN.match(expr, i)
        if m is None:
            bad = "unterminated string" if expr[i] == '"' else f"unexpected character {expr[i]!r}"
            out.append(("bad", bad, i))
            return out
        out.append((m[1], m[1], i) if m[1] else ("str", m[2], i))
        i = _SPACE.match(expr, m.end()).end()
    out.append(("eof", "", len(expr)))
    return out


class _Parser:
    """Recursive descent with the precedences of XAPI's ocamlyacc grammar."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.toks = _tokens(expr)
        self.i = 0
        self.columns: set[str] = set()

    def peek(self) -> _Tok:
        tok = self.toks[self.i]
        if tok[0] == "bad":
            raise WhereSyntaxError(self.expr, tok[2], tok[1], LEXING_ERROR_REASON)
        return tok

    def expected(self, wanted: str) -> NoReturn:
        kind, text, pos = self.peek()
        found = {"eof": "end of expression", "str": f'string "{text}"'}.get(kind, repr(text))
        raise WhereSyntaxError(
            self.expr, pos, f"expected {wanted}, found {found}", PARSE_ERROR_REASON
        )

    def take(self, kind: str | None = None, wanted: str = "") -> _Tok:
        tok = self.peek()
        if kind is not None and tok[0] != kind:
            self.expected(wanted)
        self.i += 1
        return tok

    def parse(self) -> tuple:
        tree = self.chain()
        self.take("eof", "'and', 'or' or the end")
        return tree

    def chain(self) -> tuple:
        """Operands joined by and/or, grouped to the left."""
        left = self.operand()
        while self.peek()[0] in ("and", "or"):
            op = self.take()[0]
            left = (op, left, self.operand())
        return left

    def operand(self) -> tuple:
        kind = self.peek()[0]
        if kind == "not":
            self.take()
            return ("not", self.chain())  # lowest precedence: the rest of the chain
        if kind in ("true", "false"):
            self.take()
            return (kind,)
        if kind == "(":
            self.take()
            inner = self.chain()
            self.take(")", "')', 'and' or 'or'")
            return inner
        if kind not in ("str", "field"):
            self.expected("an expression")
        left = self.value()
        self.take("=", "'='")
        return ("eq", left, self.value())

    def value(self) -> tuple[str, str]:
        if self.peek()[0] == "field":
            self.take()
            name = self.take("str", "a quoted column name after field")[1]
            self.columns.add(name)
            return ("field", name)
        return ("lit", self.take("str", "a quoted string or field")[1])


def _reader(name: str) -> Callable[[Lookup], str]:
    def read(lookup: Lookup) -> str:
        try:
            return lookup(name)
        except KeyError:
            raise UnknownField(name) from None

    return read


def _compile(node: tuple) -> _Compiled:
    """Closures for a tree; constant sub-trees fold to bools where no lookup is skipped."""
    kind = node[0]
    if kind in ("true", "false"):
        return kind == "true"
    if kind == "not":
        inner = _compile(node[1])
        if isinstance(inner, bool):
            return not inner
        return lambda lookup: not inner(lookup)
    if kind == "eq":
        (lk, lv), (rk, rv) = node[1], node[2]
        if lk == rk == "lit":
            return lv == rv
        if lk == "lit" or rk == "lit":
            read, literal = (_reader(rv), lv) if lk == "lit" else (_reader(lv), rv)
            return lambda lookup: read(lookup) == literal
        read_left, read_right = _reader(lv), _reader(rv)

        def both(lookup: Lookup) -> bool:
            right = read_right(lookup)  # OCaml evaluates arguments right to left
            return read_left(lookup) == right

        return both
    first, second = _compile(node[1]), _compile(node[2])
    is_and = kind == "and"
    if isinstance(first, bool):  # false and X / true or X never evaluate X
        return first if first is not is_and else second
    if second is is_and:  # X and true / X or false
        return first
    if isinstance(second, bool):
        const = second
        second = lambda lookup: const  # noqa: E731
    if is_and:
        return lambda lookup: first(lookup) and second(lookup)
    return lambda lookup: first(lookup) or second(lookup)


class Where:
    """A parsed where-expression, compiled for fast evaluation over many rows."""

    __slots__ = ("expr", "columns", "_pred")

    def __init__(self, expr: str, tree: tuple, columns: frozenset[str]) -> None:
        self.expr = expr
        self.columns = columns
        compiled = _compile(tree)
        self._pred: _Pred = (lambda lookup: compiled) if isinstance(compiled, bool) else compiled

    def matches(self, lookup: Lookup) -> bool:
        """Whether the row whose ``lookup(column)`` gives database strings matches.

        Raises :class:`UnknownField` if evaluation reaches a column that ``lookup`` lacks
        (signalled by ``KeyError``)."""
        return self._pred(lookup)

    def __repr__(self) -> str:
        return f"Where({self.expr!r})"


@functools.lru_cache(maxsize=512)
def parse_where(expr: str) -> Where:
    """Parse a where-expression; raises :class:`WhereSyntaxError` where XAPI would fail."""
    parser = _Parser(expr)
    tree = parser.parse()
    return Where(expr, tree, frozenset(parser.columns))


def _sexpr_atom(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")
    return f"'{escaped}'"


def db_string(value: Any) -> str:
    """The string XAPI's database holds for a simulator value (what ``=`` compares).

    bool -> ``true``/``false``; int -> decimal; float -> ``%0.18g`` (gen_db_actions.ml);
    str and its subclasses (refs, uuids, enum names, datetimes) -> unchanged; list (a set) ->
    ``('a' 'b')`` and dict (a map) -> ``(('k' 'v'))``, the SExpr form of
    String_marshall_helper.ml, with ``\\``, ``"`` and ``'`` backslash-escaped (sExpr.ml).
    Set and map members are converted with this same function first.
    """
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return f"{value:.18g}"
    if isinstance(value, (list, tuple)):
        return "(" + " ".join(_sexpr_atom(db_string(v)) for v in value) + ")"
    if isinstance(value, dict):
        pairs = (
            f"({_sexpr_atom(db_string(k))} {_sexpr_atom(db_string(v))})" for k, v in value.items()
        )
        return "(" + " ".join(pairs) + ")"
    raise TypeError(f"no XAPI database form for {type(value).__name__}: {value!r}")
