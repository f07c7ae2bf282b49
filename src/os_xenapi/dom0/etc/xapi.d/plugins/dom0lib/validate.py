"""Declarative argument types for the dom0 plugins: every input has a type and bounds.

A plugin function declares one type per argument with ``@protocol.takes(name=Type(...))``;
``check(value)`` returns the value to use or raises Invalid with a reason a person can act
on. Reasons never echo string values back (they may be secrets such as an encrypted
password); they name the rule that failed.
"""

import base64
import binascii
import ipaddress
import json
import math
import re


class Invalid(Exception):
    """A value broke its type's rule; the message is the reason."""


def json_type(value: object) -> str:
    """Return the JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _reject_duplicates(pairs: list) -> dict:
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key " + repr(key[:40]))
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(name + " is not JSON")


def strict_json(text: str) -> object:
    """Decode JSON text, refusing duplicate keys, NaN and Infinity and absurd nesting.

    Raises Invalid with the decoder's reason (which quotes at most a key, never a value).
    """
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates,
                          parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise Invalid(f"is not valid JSON ({str(exc)[:80]})") from None


class Type:
    """Base class: a rule one argument must satisfy."""

    def check(self, value: object) -> object:
        raise NotImplementedError


class Str(Type):
    """A string of bounded length, optionally matching a whole-string regular expression.

    Without a pattern, only printable characters are accepted (plus newlines and tabs when
    multiline is set), so control characters never reach a command line or a file.
    """

    def __init__(self, max_len: int, pattern: str = None, min_len: int = 0,
                 what: str = None, multiline: bool = False) -> None:
        self.max_len = max_len
        self.min_len = min_len
        self.regex = re.compile(pattern) if pattern else None
        self.what = what or (("a string matching " + pattern) if pattern else "printable text")
        self.multiline = multiline

    def check(self, value: object) -> object:
        if not isinstance(value, str):
            raise Invalid("must be a string, got " + json_type(value))
        if len(value) > self.max_len:
            raise Invalid(f"must be at most {self.max_len} characters, got {len(value)}")
        if len(value) < self.min_len:
            raise Invalid(f"must be at least {self.min_len} characters, got {len(value)}")
        if self.regex is not None:
            if not self.regex.fullmatch(value):
                raise Invalid("must be " + self.what)
        else:
            allowed = "\n\t" if self.multiline else ""
            for char in value:
                if not char.isprintable() and char not in allowed:
                    raise Invalid(f"must be printable text (found control character {char!r})")
        return value


class Int(Type):
    """An integer in [minimum, maximum].

    A string of decimal digits is accepted too, because XAPI reports numbers such as a VM's
    domid as strings and callers pass them on unchanged. Booleans are refused.
    """

    _DIGITS = re.compile(r"-?[0-9]{1,19}")

    def __init__(self, minimum: int, maximum: int) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def check(self, value: object) -> object:
        if isinstance(value, str) and self._DIGITS.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("must be an integer, got " + json_type(value))
        if not self.minimum <= value <= self.maximum:
            raise Invalid(f"must be between {self.minimum} and {self.maximum}, got {value}")
        return value


class Bool(Type):
    """true or false. The strings "true"/"false" (any case) are accepted too, and mean what
    they say: os-xenapi 0.3.4 sent "False", which its plugins read as true."""

    def check(self, value: object) -> object:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise Invalid("must be true or false, got " + json_type(value))


class Choice(Type):
    """One of a fixed set of strings."""

    def __init__(self, *choices: str) -> None:
        self.choices = choices

    def check(self, value: object) -> object:
        if not isinstance(value, str) or value not in self.choices:
            raise Invalid("must be one of " + ", ".join(self.choices))
        return value


class List(Type):
    """An array of at most max_items items, each checked by item."""

    def __init__(self, item: Type, max_items: int, min_items: int = 0) -> None:
        self.item = item
        self.max_items = max_items
        self.min_items = min_items

    def check(self, value: object) -> object:
        if not isinstance(value, list):
            raise Invalid("must be an array, got " + json_type(value))
        if not self.min_items <= len(value) <= self.max_items:
            raise Invalid(f"must have between {self.min_items} and {self.max_items} items, got {len(value)}")
        checked = []
        for index, item in enumerate(value):
            try:
                checked.append(self.item.check(item))
            except Invalid as exc:
                raise Invalid(f"item {index} {exc}") from None
        return checked


class Struct(Type):
    """An object with known keys: each required key present, no unknown key."""

    def __init__(self, fields: dict, optional: tuple = ()) -> None:
        self.fields = fields
        self.optional = optional

    def check(self, value: object) -> object:
        if not isinstance(value, dict):
            raise Invalid("must be an object, got " + json_type(value))
        unknown = sorted(str(key)[:40] for key in value if key not in self.fields)
        if unknown:
            raise Invalid("has unknown keys: " + ", ".join(unknown)
                          + " (known: " + ", ".join(sorted(self.fields)) + ")")
        checked = {}
        for key, rule in self.fields.items():
            if key not in value:
                if key in self.optional:
                    continue
                raise Invalid("lacks the required key " + key)
            try:
                checked[key] = rule.check(value[key])
            except Invalid as exc:
                raise Invalid(f"key {key} {exc}") from None
        return checked


class Object(Type):
    """An object of at most max_keys entries, to be checked further by the function that
    knows its shape (for example one network command's arguments)."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys

    def check(self, value: object) -> object:
        if not isinstance(value, dict):
            raise Invalid("must be an object, got " + json_type(value))
        if len(value) > self.max_keys:
            raise Invalid(f"must have at most {self.max_keys} keys, got {len(value)}")
        return value


class Scalar(Type):
    """A JSON scalar: null, a boolean, a finite number, or a string of bounded printable text."""

    def __init__(self, max_len: int) -> None:
        self.text = Str(max_len)

    def check(self, value: object) -> object:
        if value is None or isinstance(value, (bool, int)):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise Invalid("must be a finite number")
            return value
        if isinstance(value, str):
            return self.text.check(value)
        raise Invalid("must be null, a boolean, a number or a string, got " + json_type(value))


class Base64(Type):
    """Standard base64 text (no newlines) of bounded length that decodes cleanly."""

    _ALPHABET = re.compile(r"[A-Za-z0-9+/]*={0,2}")

    def __init__(self, max_len: int, min_len: int = 1) -> None:
        self.max_len = max_len
        self.min_len = min_len

    def check(self, value: object) -> object:
        if not isinstance(value, str):
            raise Invalid("must be a base64 string, got " + json_type(value))
        if not self.min_len <= len(value) <= self.max_len:
            raise Invalid(f"must be between {self.min_len} and {self.max_len} characters, got {len(value)}")
        if not self._ALPHABET.fullmatch(value) or len(value) % 4:
            raise Invalid("must be standard base64 (A-Z a-z 0-9 + / and = padding)")
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("must be standard base64 that decodes cleanly") from None
        return value


class Nullable(Type):
    """null, or a value of the wrapped type: for optional arguments a caller may send as null."""

    def __init__(self, inner: Type) -> None:
        self.inner = inner

    def check(self, value: object) -> object:
        if value is None:
            return None
        return self.inner.check(value)


class Map(Type):
    """An object of at most max_items entries whose keys and values each have a type."""

    def __init__(self, key: Type, value: Type, max_items: int) -> None:
        self.key = key
        self.value = value
        self.max_items = max_items

    def check(self, value: object) -> object:
        if not isinstance(value, dict):
            raise Invalid("must be an object, got " + json_type(value))
        if len(value) > self.max_items:
            raise Invalid(f"must have at most {self.max_items} entries, got {len(value)}")
        checked = {}
        for key, item in value.items():
            try:
                self.key.check(key)
            except Invalid as exc:
                raise Invalid(f"has a key that {exc}") from None
            try:
                checked[key] = self.value.check(item)
            except Invalid as exc:
                raise Invalid(f"key {key} {exc}") from None
        return checked


class IPAddress(Type):
    """An IP address in its usual text form; versions limits it to IPv4 (4) or IPv6 (6)."""

    def __init__(self, versions: tuple = (4, 6)) -> None:
        self.versions = versions

    def check(self, value: object) -> object:
        if not isinstance(value, str) or len(value) > 45:
            raise Invalid("must be an IP address string, got " + json_type(value))
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise Invalid("must be an IP address such as 192.0.2.10") from None
        if address.version not in self.versions:
            raise Invalid(f"must be an IPv{self.versions[0]} address")
        return str(address)


class IPNetwork(Type):
    """An IP address or network in CIDR form (192.0.2.0/24, 2001:db8::/64, 192.0.2.1)."""

    def check(self, value: object) -> object:
        if not isinstance(value, str) or len(value) > 49:
            raise Invalid("must be an IP network string, got " + json_type(value))
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise Invalid("must be an IP address or CIDR network such as 192.0.2.0/24") from None
        return value


# Shared argument types. Names that reach a command line never start with "-", so they
# cannot be read as options.

# A guest's domain id. 0 is dom0 itself (its xenstore tree is not a guest's to change);
# 0x7FF0 and above are Xen's reserved DOMID_* values.
DOM_ID = Int(1, 0x7FEF)
# A UUID as XAPI prints it.
UUID = Str(36, r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
           what="a UUID (8-4-4-4-12 hexadecimal digits)")
# A XAPI object reference as XAPI hands them out.
OPAQUE_REF = Str(46, r"OpaqueRef:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                 r"[0-9a-fA-F]{12}", what="a XAPI reference such as OpaqueRef:<uuid>")
# A path relative to /local/domain/<domid>: xenstore allows [A-Za-z0-9_@-] in names, with
# single slashes between them (docs/misc/xenstore.txt); relative paths stay under 2048 bytes.
XS_PATH = Str(2048, r"[A-Za-z0-9_@-]+(/[A-Za-z0-9_@-]+)*",
              what="a relative xenstore path: names of A-Z a-z 0-9 _ @ - separated by single /")
# The same, or empty for the domain's own directory.
XS_PATH_OR_EMPTY = Str(2048, r"([A-Za-z0-9_@-]+(/[A-Za-z0-9_@-]+)*)?",
                       what="empty or a relative xenstore path: names of A-Z a-z 0-9 _ @ - "
                            "separated by single /")
# A xenstore value: printable text; one xenstore message carries at most 4096 bytes.
XS_VALUE = Str(4000)
# A Linux network interface or OVS bridge/port name (IFNAMSIZ is 16 with the NUL).
IFNAME = Str(15, r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}",
             what="an interface name: 1-15 characters of A-Z a-z 0-9 _ . : -, not starting with -")
# A MAC address.
MAC = Str(17, r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", what="a MAC address such as fa:16:3e:00:00:01")
# A PCI address, with or without its domain: [dddd:]bb:dd.f
PCI_ADDRESS = Str(12, r"([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]",
                  what="a PCI address such as 0000:04:00.1 or 04:00.1")
