"""Exact command shapes: allow-lists of whole argument lists, not of program names.

A Shape is written as text and an argument list matches it token by token:

    word        a literal token, as written
    {slot}      one token checked by the slot's validate.Type
    pre{slot}   a token made of literal text around one slot (--timeout={seconds})
    [a b]       tokens that may be left out, together (groups do not nest)
    {slot}...   the last token only: one to MAX_REPEAT tokens, each checked by the slot

Options is the one other form: a fixed prefix then option/value pairs in any order, each
option at most once (for commands such as conntrack whose callers order options freely).
A shape says whether the command reads standard input. Nothing here runs anything.
"""

import itertools
import re

from dom0lib.validate import Invalid

MAX_REPEAT = 16
_SLOT = re.compile(r"([^{}]*)\{([a-z_0-9]+)\}([^{}]*?)(\.\.\.)?")


class _Token:
    """One token of a shape variant: a literal, or literal text around a typed slot."""

    def __init__(self, text: str, slots: dict) -> None:
        match = _SLOT.fullmatch(text)
        self.repeat = False
        if match is None:
            if "{" in text or "}" in text:
                raise ValueError("bad shape token " + repr(text))
            self.literal = text
            return
        self.literal = None
        self.prefix, name, self.suffix, repeat = match.groups()
        if name not in slots:
            raise ValueError(f"shape slot {{{name}}} has no type")
        self.rule = slots[name]
        self.repeat = bool(repeat)

    def accepts(self, value: str) -> bool:
        if self.literal is not None:
            return value == self.literal
        end = len(value) - len(self.suffix)
        if not (value.startswith(self.prefix) and value.endswith(self.suffix)
                and end > len(self.prefix)):
            return False
        try:
            self.rule.check(value[len(self.prefix):end])
        except Invalid:
            return False
        return True


def _groups(text: str) -> list:
    """Split shape text into tokens and optional groups (lists of tokens)."""
    items, group = [], None
    for word in text.split():
        if word.startswith("[") and group is None:
            group, word = [], word[1:]
        if group is not None:
            closing = word.endswith("]")
            group.append(word[:-1] if closing else word)
            if closing:
                items.append(group)
                group = None
            continue
        if "[" in word or "]" in word:
            raise ValueError("bad optional group in shape " + repr(text))
        items.append(word)
    if group is not None:
        raise ValueError("unclosed optional group in shape " + repr(text))
    return items


class Shape:
    """One allowed command, possibly with optional parts; stdin says it reads standard input."""

    def __init__(self, text: str, slots: dict, stdin: bool = False) -> None:
        self.text = text
        self.stdin = stdin
        items = _groups(text)
        optional = [index for index, item in enumerate(items) if isinstance(item, list)]
        self.variants = []
        for included in itertools.product((True, False), repeat=len(optional)):
            keep = dict(zip(optional, included))
            words = []
            for index, item in enumerate(items):
                if isinstance(item, list):
                    words.extend(item if keep[index] else [])
                else:
                    words.append(item)
            tokens = [_Token(word, slots) for word in words]
            if any(token.repeat for token in tokens[:-1]):
                raise ValueError("only the last token of a shape may repeat: " + text)
            self.variants.append(tokens)

    @property
    def program(self) -> str:
        return self.text.split()[0]

    def matches(self, argv: list) -> bool:
        """Whether argv is one of this shape's variants, token by token."""
        return any(_variant_matches(tokens, argv) for tokens in self.variants)


def _variant_matches(tokens: list, argv: list) -> bool:
    if tokens and tokens[-1].repeat:
        fixed = len(tokens) - 1
        if not 1 <= len(argv) - fixed <= MAX_REPEAT:
            return False
        return (all(token.accepts(value) for token, value in zip(tokens[:fixed], argv))
                and all(tokens[-1].accepts(value) for value in argv[fixed:]))
    return len(argv) == len(tokens) and all(
        token.accepts(value) for token, value in zip(tokens, argv))


class Options:
    """A fixed prefix, then option/value pairs in any order, each option at most once; at
    least one of required_any must be among them when it is given."""

    def __init__(self, prefix: str, options: dict, required_any: tuple = (),
                 stdin: bool = False) -> None:
        self.prefix = prefix.split()
        self.options = options
        self.required_any = required_any
        self.stdin = stdin
        self.text = "{} {{{}}}...".format(prefix, "|".join(sorted(options)))

    @property
    def program(self) -> str:
        return self.prefix[0]

    def matches(self, argv: list) -> bool:
        """Whether argv is the prefix followed by known options, each once, with valid values."""
        if argv[:len(self.prefix)] != self.prefix:
            return False
        rest = argv[len(self.prefix):]
        if len(rest) % 2:
            return False
        seen = set()
        for option, value in zip(rest[0::2], rest[1::2]):
            if option not in self.options or option in seen:
                return False
            seen.add(option)
            try:
                self.options[option].check(value)
            except Invalid:
                return False
        return not self.required_any or bool(seen.intersection(self.required_any))


def find(shapes: list, argv: list):
    """Return the first shape argv matches, or None."""
    for shape in shapes:
        if shape.matches(argv):
            return shape
    return None
