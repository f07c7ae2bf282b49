"""The JSON calling convention of the os-xenapi dom0 plugins (plugin protocol 3.0).

XAPI hands a plugin function ``(session, args)`` where args is a string-to-string map. Ours
carry one key, ``params``: the JSON text ``{"args": [...], "kwargs": {...}}``, plus the
``host_uuid`` key os-xenapi clients have always added. register() wraps each plugin
function so that it: decodes and size-checks params, binds args/kwargs to the function's
parameters, checks each against the type declared with @takes, calls the function with a
Call context, and returns ``json.dumps(result)``. A function also declared with
dom0lib.plain takes os-xenapi 0.3.4's plain string arguments instead, checked by the same
types, and answers 0.3.4's text (see plainargs.py). Failures leave as XenAPIPlugin.Failure:
PluginError with its own code, a XAPI error from the session with XAPI's code unchanged,
anything else as OS_XENAPI_INTERNAL_ERROR after its traceback goes to syslog.
"""

import inspect
import json
import re
import time

import XenAPI
import XenAPIPlugin

from dom0lib import paths, plainargs
from dom0lib.errors import INTERNAL_ERROR, NOT_FOUND, InvalidArgument, PluginError
from dom0lib.logs import get_logger
from dom0lib.validate import UUID, Invalid, Type, json_type, strict_json

# XAPI passes argv[1] to the plugin, and Linux caps one argument at 128 KiB.
MAX_PARAMS_BYTES = 128 * 1024
TOP_LEVEL_KEYS = ("params", "host_uuid")
INVENTORY = "/etc/xensource-inventory"
_INVENTORY_UUID = re.compile(r"""INSTALLATION_UUID=['"]?([0-9a-fA-F-]{36})['"]?""")


def takes(**types: Type):
    """Declare the type of every parameter of a plugin function (all but the first, ctx).

    Raises TypeError at import time if a parameter has no type or a type names no
    parameter, so a plugin cannot forget to validate an argument.
    """
    def decorate(function):
        parameters = list(inspect.signature(function).parameters.values())[1:]
        names = []
        for parameter in parameters:
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise TypeError(function.__name__ + ": *args and **kwargs cannot be validated")
            names.append(parameter.name)
        if set(names) != set(types):
            raise TypeError(f"{function.__name__}: @takes must type exactly the parameters {names}")
        function.dom0_parameters = [(p.name, types[p.name], p.default) for p in parameters]
        return function
    return decorate


class Call:
    """What a plugin function gets besides its arguments: the XAPI session and the host."""

    def __init__(self, session: object, plugin: str, function: str, host_uuid: str = None) -> None:
        self.session = session
        self.plugin = plugin
        self.function = function
        self._host_uuid = host_uuid

    def host_uuid(self) -> str:
        """The UUID of the host running this plugin: the host_uuid the client sent, else
        INSTALLATION_UUID from /etc/xensource-inventory. Raises PluginError NOT_FOUND."""
        if self._host_uuid:
            return self._host_uuid
        path = paths.host_path(INVENTORY)
        text = paths.read_bounded(path, 65536, what="host inventory").decode("utf-8", "replace")
        match = _INVENTORY_UUID.search(text)
        if not match:
            raise PluginError(NOT_FOUND, "INSTALLATION_UUID", path)
        return match.group(1)

    def host_ref(self) -> str:
        """This host's XAPI reference, found by its UUID through the session."""
        return self.session.xenapi.host.get_by_uuid(self.host_uuid())


def _looks_pickled(raw: str) -> bool:
    """Whether text that is not JSON starts the way a pickle does: protocol 0 (os-xenapi
    0.3.x on Python 2) opens a dict or list with "(", protocols 2 and later with 0x80."""
    return raw[:1] in ("(", "\x80")


def check_args_map(args: object) -> None:
    """Refuse an args map that is not a map, or whose host_uuid is not a UUID."""
    if not isinstance(args, dict):
        raise InvalidArgument("args", "must be a map of strings, got " + json_type(args))
    if "host_uuid" in args:
        try:
            UUID.check(args["host_uuid"])
        except Invalid as exc:
            raise InvalidArgument("host_uuid", str(exc)) from None


def decode_params(args: object) -> tuple:
    """Return (positional list, keyword dict) from XAPI's args map; raise InvalidArgument."""
    check_args_map(args)
    unknown = sorted(str(key)[:40] for key in args if key not in TOP_LEVEL_KEYS)
    if unknown:
        raise InvalidArgument(unknown[0], "is not a plugin argument; send arguments as JSON in "
                              "'params' (protocol 3.0)")
    raw = args.get("params")
    if raw is None:
        return [], {}
    if not isinstance(raw, str):
        raise InvalidArgument("params", "must be a string of JSON, got " + json_type(raw))
    if len(raw.encode("utf-8")) > MAX_PARAMS_BYTES:
        raise InvalidArgument("params", f"must be at most {MAX_PARAMS_BYTES} bytes")
    try:
        document = strict_json(raw)
    except Invalid as exc:
        if _looks_pickled(raw):
            raise InvalidArgument("params", "is a pickle (os-xenapi 0.3.x's serialized calls): "
                                  "pickle is refused, because unpickling runs code; send JSON "
                                  "{\"args\": [...], \"kwargs\": {...}} (protocol 3.0)") from None
        raise InvalidArgument("params", f"{exc}; this plugin speaks JSON (protocol 3.0), "
                              "os-xenapi 0.3.x clients sent pickle") from None
    if not isinstance(document, dict):
        raise InvalidArgument("params", "must be a JSON object, got " + json_type(document))
    extra = sorted(key[:40] for key in document if key not in ("args", "kwargs"))
    if extra:
        raise InvalidArgument("params", "may hold only 'args' and 'kwargs', not " + ", ".join(extra))
    positional = document.get("args", [])
    keywords = document.get("kwargs", {})
    if not isinstance(positional, list):
        raise InvalidArgument("params", "'args' must be an array, got " + json_type(positional))
    if not isinstance(keywords, dict):
        raise InvalidArgument("params", "'kwargs' must be an object, got " + json_type(keywords))
    return positional, keywords


def bind(function, positional: list, keywords: dict) -> dict:
    """Match arguments to the function's declared parameters, in order or by name, and check
    each against its type. Parameters left out take their default; without one they are
    required. Raises InvalidArgument."""
    declared = function.dom0_parameters
    if len(positional) > len(declared):
        raise InvalidArgument("args", f"takes at most {len(declared)} arguments, got {len(positional)}")
    given = {}
    for (name, _, _), value in zip(declared, positional):
        given[name] = value
    names = [name for name, _, _ in declared]
    for key, value in keywords.items():
        if key not in names:
            raise InvalidArgument(key[:40], "is not an argument of this function (it takes: {})"
                                  .format(", ".join(names) or "nothing"))
        if key in given:
            raise InvalidArgument(key, "was given both by position and by name")
        given[key] = value
    bound = {}
    for name, rule, default in declared:
        if name not in given:
            if default is inspect.Parameter.empty:
                raise InvalidArgument(name, "is required")
            bound[name] = default
            continue
        try:
            bound[name] = rule.check(given[name])
        except Invalid as exc:
            raise InvalidArgument(name, str(exc)) from None
    return bound


def _bind_plain(function, spec, args: dict) -> dict:
    """Bind 0.3.4's plain arguments with the JSON form's checks; errors name the key sent."""
    found = plainargs.keywords(spec, args)
    try:
        return bind(function, [], found)
    except InvalidArgument as exc:
        raise InvalidArgument(spec.key_of(exc.argument), exc.reason) from None


def _failure(code: str, details: list, reshape, name: str):
    """The XenAPIPlugin.Failure to raise; reshape (a plain form's) may recast it for callers
    that read 0.3.4's error details."""
    if reshape is not None:
        code, details = reshape(code, details, name)
    return XenAPIPlugin.Failure(code, details)


def _handler(plugin: str, function, log):
    name = function.__name__
    spec = getattr(function, "dom0_plain", None)

    def handle(session, args):
        started = time.monotonic()
        where = plugin + "." + name
        reshape = None
        try:
            check_args_map(args)
            if spec is not None and plainargs.is_plain_call(args, spec):
                reshape = spec.failure
                bound = _bind_plain(function, spec, args)
                encode = spec.answer
            else:
                positional, keywords = decode_params(args)
                bound = bind(function, positional, keywords)
                encode = json.dumps
            call = Call(session, plugin, name, args.get("host_uuid"))
            text = encode(function(call, **bound))
        except InvalidArgument as exc:
            log.warning("%s: invalid argument %s: %s", where, exc.argument, exc.reason)
            raise _failure(exc.code, [where, exc.argument, exc.reason], reshape, name) from None
        except PluginError as exc:
            log.warning("%s failed: %s", where, exc)
            raise _failure(exc.code, exc.details, reshape, name) from None
        except XenAPI.Failure as exc:
            details = [str(detail) for detail in (exc.details or ["INTERNAL_ERROR"])]
            log.warning("%s: XAPI error %s", where, details[0])
            raise XenAPIPlugin.Failure(details[0], details[1:]) from None
        except Exception as exc:
            log.exception("%s: unexpected error", where)
            raise XenAPIPlugin.Failure(
                INTERNAL_ERROR, [where, type(exc).__name__, str(exc)[:400]]) from None
        log.info("%s succeeded in %.3f s", where, time.monotonic() - started)
        return text

    handle.__name__ = name
    handle.__doc__ = function.__doc__
    return handle


def register(plugin: str, *functions) -> dict:
    """Return XenAPIPlugin.dispatch's table {name: handler} for functions typed with @takes."""
    log = get_logger(plugin)
    table = {}
    for function in functions:
        if not hasattr(function, "dom0_parameters"):
            raise TypeError(function.__name__ + " has no @takes declaration")
        if hasattr(function, "dom0_plain"):
            function.dom0_plain.attach(function.dom0_parameters)
        table[function.__name__] = _handler(plugin, function, log)
    return table
