"""os-xenapi 0.3.4's plain calling convention, which Nova and Neutron still use directly.

0.3.4's "plain" plugin functions read their arguments straight from XAPI's string-to-string
args map (``{"dom_id": "5", "path": "vm-data/x"}``, ``{"vdi-ref": ...}``) and answered text
of their own making: JSON text for most, bare text for a few (console's base64, kernel's file
names). A function declared with @plain takes that form too. Each key names one of the
function's parameters (0.3.4's hyphenated names are mapped), a few keys carry JSON text
(netwrap's cmd), and every value is then checked by the very Type the JSON form uses
(protocol.bind), so both forms are validated alike. The answer is the text 0.3.4 gave.

0.3.4's other convention, a pickled ``params``, stays refused: unpickling runs code.
"""

import inspect
import json

from dom0lib.errors import InvalidArgument
from dom0lib.validate import Invalid, json_type, strict_json

PARAMS = "params"
HOST_UUID = "host_uuid"


def as_json(result: object) -> str:
    """The answer as JSON text, as protocol 3.0 and most 0.3.4 functions gave it."""
    return json.dumps(result)


def as_text(result: object) -> str:
    """The answer as bare text (0.3.4's console, config_file and kernel); null is ""."""
    return "" if result is None else str(result)


class Plain:
    """How one function took 0.3.4's plain arguments and what it answered."""

    def __init__(self, renamed: dict, json_keys: tuple, ignored: dict, answer,
                 failure, params_object: bool) -> None:
        self.renamed = dict(renamed)
        self.json_keys = tuple(json_keys)
        self.ignored = dict(ignored)
        self.answer = answer
        self.failure = failure
        self.params_object = params_object
        self.parameters = []

    def attach(self, parameters: list) -> None:
        """Check the declaration against the function's parameters (a plugin bug otherwise)."""
        names = [name for name, _, _ in parameters]
        unknown = sorted(set(self.renamed.values()) - set(names))
        if unknown:
            raise TypeError("@plain renames to parameters the function lacks: " + ", ".join(unknown))
        self.parameters = parameters

    def key_of(self, parameter: str) -> str:
        """The plain key a caller sends for parameter (0.3.4's spelling)."""
        for key, name in self.renamed.items():
            if name == parameter:
                return key
        return parameter

    def keys(self) -> list:
        """Every plain key the function takes, in parameter order, then the ignored ones."""
        return [self.key_of(name) for name, _, _ in self.parameters] + sorted(self.ignored)


def plain(*, renamed: dict = None, json_keys: tuple = (), ignored: dict = None,
          answer=as_json, failure=None, params_object: bool = False):
    """Let a @takes function also be called with os-xenapi 0.3.4's plain arguments.

    renamed maps 0.3.4's key to a parameter ("vdi-ref": "vdi_ref"); json_keys are keys whose
    value 0.3.4's callers sent as JSON text; ignored maps keys 0.3.4's callers send that the
    function does not use to the Type they are checked by before being dropped; answer turns
    the return value into 0.3.4's answer text; failure(code, details) may reshape a failure
    for callers that read 0.3.4's error details; params_object means 0.3.4 took the arguments
    as one JSON object in "params" (xenhost's get_config and set_config).
    """
    def decorate(function):
        function.dom0_plain = Plain(renamed or {}, json_keys, ignored or {}, answer, failure,
                                    params_object)
        return function
    return decorate


def _params_object(raw: object):
    """The JSON object 0.3.4's get_config/set_config sent in params, or None if params is
    something else (protocol 3.0's {"args", "kwargs"}, or not JSON)."""
    if not isinstance(raw, str):
        return None
    try:
        document = strict_json(raw)
    except Invalid:
        return None
    if isinstance(document, dict) and not {"args", "kwargs"} & set(document):
        return document
    return None


def is_plain_call(args: dict, spec: Plain) -> bool:
    """Whether an args map is 0.3.4's plain form: keys other than params and host_uuid, or
    (params_object functions) a params that is 0.3.4's JSON object. A map with nothing but
    host_uuid is protocol 3.0's call without arguments."""
    keys = set(args) - {HOST_UUID}
    if keys == {PARAMS}:
        return spec.params_object and _params_object(args[PARAMS]) is not None
    return bool(keys)


def keywords(spec: Plain, args: dict) -> dict:
    """Map a plain args map to {parameter: value} for protocol.bind, which checks each value.

    Values must be strings, as XAPI hands them over. An optional parameter sent as "" is left
    out, as 0.3.4 read optional keys (``get(k) or None``); a json_keys value is decoded then,
    so JSON text of "" is an empty string. Raises InvalidArgument naming the key the caller
    sent.
    """
    source = {key: value for key, value in args.items() if key != HOST_UUID}
    from_json = False
    if spec.params_object:
        others = sorted(str(key)[:40] for key in source if key != PARAMS)
        if others:
            raise InvalidArgument(others[0], "is not a plugin argument: this function takes "
                                  "its arguments in params")
        source = _params_object(source.get(PARAMS))
        from_json = True
        if source is None:
            raise InvalidArgument(PARAMS, "must be a JSON object of this function's arguments")
    optional = {name for name, _, default in spec.parameters
                if default is not inspect.Parameter.empty}
    names = {spec.key_of(name): name for name, _, _ in spec.parameters}
    found = {}
    for key, value in source.items():
        shown = str(key)[:40]
        if not from_json and not isinstance(value, str):
            raise InvalidArgument(shown, "must be a string, as XAPI passes plugin arguments, "
                                  "got " + json_type(value))
        if key in spec.ignored:
            try:
                spec.ignored[key].check(value)
            except Invalid as exc:
                raise InvalidArgument(shown, str(exc)) from None
            continue
        if key not in names:
            raise InvalidArgument(shown, "is not an argument of this function (it takes: {})"
                                  .format(", ".join(spec.keys()) or "nothing"))
        if not from_json and value == "" and names[key] in optional:
            continue
        if key in spec.json_keys and not from_json:
            try:
                value = strict_json(value)
            except Invalid as exc:
                raise InvalidArgument(shown, str(exc) + "; os-xenapi 0.3.4's callers sent it "
                                      "as JSON text") from None
        found[names[key]] = value
    return found

