"""XAPI's own errors: :class:`Failure` and one :class:`XenAPIError` subclass per family of codes.

``.details`` is the ``[CODE, param, ...]`` list exactly as XAPI sent it, and ``str()`` looks like
the official SDK's ``XenAPI.Failure`` (``str(details)``), so code written against the SDK keeps
working. :func:`failure_from_details` picks the class for a code. Session refs never show in
``str()`` or ``repr()`` (only in ``.details``), and neither do the secrets a transport names.
Import these from :mod:`os_xenapi.client.exception`, which holds every error of the client.
"""

from __future__ import annotations

from typing import Any, ClassVar

REDACTED = "<redacted>"


class Failure(Exception):
    """XAPI refused a call; a drop-in for the official SDK's ``XenAPI.Failure``.

    ``details`` is kept exactly as given (normally ``[CODE, param, ...]``); ``str()`` is
    ``str(details)`` as in the SDK, with session refs and other named secrets replaced by
    ``<redacted>``.
    """

    def __init__(self, details: Any) -> None:
        super().__init__(details)
        self.details = details
        self._secrets: tuple[str, ...] = ()

    @property
    def code(self) -> str:
        """The XAPI error code, ``details[0]`` (or the whole of a details that is not a list)."""
        if isinstance(self.details, list | tuple):
            return str(self.details[0]) if self.details else ""
        return str(self.details)

    @property
    def params(self) -> list[Any]:
        """The error's parameters, ``details[1:]`` (empty for a details that is not a list)."""
        if isinstance(self.details, list | tuple):
            return list(self.details[1:])
        return []

    @property
    def explanation(self) -> str:
        """One sentence for a person: what XAPI refused and what to check."""
        return f"XAPI refused the call with {self.code}"

    def _param(self, index: int) -> Any:
        params = self.params
        return params[index] if index < len(params) else None

    def _hidden(self) -> list[str]:
        """The strings that ``str()`` and ``repr()`` must not show."""
        return [secret for secret in self._secrets if secret]

    def _shown(self) -> Any:
        """``details`` with hidden strings replaced: whole items equal to one, and long ones
        (refs) also inside other items, such as an INTERNAL_ERROR message."""
        hidden = self._hidden()
        if not hidden:
            return self.details
        long_ones = [secret for secret in hidden if len(secret) >= 8]

        def shown(item: Any) -> Any:
            if not isinstance(item, str):
                return item
            if item in hidden:
                return REDACTED
            for secret in long_ones:
                item = item.replace(secret, REDACTED)
            return item

        if isinstance(self.details, list | tuple):
            return type(self.details)(shown(item) for item in self.details)
        return shown(self.details)

    def __str__(self) -> str:
        try:
            return str(self._shown())
        except Exception as exn:  # noqa: BLE001 - as the SDK: str() of an exception must not fail
            return f"Xen-API failure: {exn}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._shown()!r})"

    def _details_map(self) -> dict[str, Any]:
        """``{"0": details[0], "1": details[1], ...}``, as the SDK's method of that name."""
        return {str(i): item for i, item in enumerate(self.details)}


class XenAPIError(Failure):
    """A XAPI error code; the class for codes that have no family of their own."""

    codes: ClassVar[tuple[str, ...]] = ()


class SessionError(XenAPIError):
    """Errors about the session itself (``SESSION_*``, ``HOST_IS_SLAVE``)."""


class SessionInvalid(SessionError):
    """The session ref is unknown or expired: log in again (the ref is redacted from str())."""

    codes = ("SESSION_INVALID",)

    def _hidden(self) -> list[str]:
        return super()._hidden() + [str(p) for p in self.params if p]

    @property
    def explanation(self) -> str:
        return "the XAPI session is unknown or has expired; log in again"


class SessionNotRegistered(SessionError):
    """The legacy ``event.next`` was called on a session that did not register."""

    codes = ("SESSION_NOT_REGISTERED",)

    def _hidden(self) -> list[str]:
        return super()._hidden() + [str(p) for p in self.params if p]


class SessionAuthenticationFailed(SessionError):
    """Wrong user name or password (XAPI answers it after a 5 second delay)."""

    codes = ("SESSION_AUTHENTICATION_FAILED",)

    @property
    def username(self) -> str | None:
        return self._param(0)

    @property
    def explanation(self) -> str:
        who = f" for user {self.username!r}" if self.username else ""
        return f"XAPI rejected the user name or password{who}; check the credentials"


class HostIsSlave(SessionError):
    """The host is a pool member, not the master; ``master_address`` is where to log in."""

    codes = ("HOST_IS_SLAVE",)

    @property
    def master_address(self) -> str | None:
        return self._param(0)

    @property
    def explanation(self) -> str:
        return f"this host is not the pool master; connect to the master at {self.master_address}"


class HandleError(XenAPIError):
    """A reference or UUID that names no object."""


class HandleInvalid(HandleError):
    """``HANDLE_INVALID [class, ref]``: the object is gone or the ref is of another class."""

    codes = ("HANDLE_INVALID",)

    @property
    def class_name(self) -> str | None:
        return self._param(0)

    @property
    def ref(self) -> str | None:
        return self._param(1)

    def _hidden(self) -> list[str]:
        hidden = super()._hidden()
        if self.class_name == "session" and self.ref:
            hidden.append(str(self.ref))
        return hidden

    @property
    def explanation(self) -> str:
        return f"no {self.class_name} object has this reference (it may have been destroyed)"


class UUIDInvalid(HandleError):
    """``UUID_INVALID [class, uuid]``: no object of that class has this UUID."""

    codes = ("UUID_INVALID",)

    @property
    def class_name(self) -> str | None:
        return self._param(0)

    @property
    def uuid(self) -> str | None:
        return self._param(1)

    @property
    def explanation(self) -> str:
        return f"no {self.class_name} object has UUID {self.uuid}"


class VMBadPowerState(XenAPIError):
    """``VM_BAD_POWER_STATE [vm, expected, actual]``: the VM is in the wrong power state."""

    codes = ("VM_BAD_POWER_STATE",)

    @property
    def vm(self) -> str | None:
        return self._param(0)

    @property
    def expected(self) -> list[str]:
        """The acceptable states: XAPI joins them with ``", "`` or ``";"``."""
        text = self._param(1) or ""
        return [state.strip() for state in str(text).replace(";", ",").split(",") if state.strip()]

    @property
    def actual(self) -> str | None:
        return self._param(2)

    @property
    def explanation(self) -> str:
        wanted = " or ".join(self.expected) or "another state"
        return f"VM {self.vm} is {self.actual}; the operation needs it {wanted}"


class StorageError(XenAPIError):
    """Storage errors (``SR_*``, ``VDI_*``, ``PBD_*``)."""


class SRBackendFailure(StorageError):
    """The SM driver failed: ``SR_BACKEND_FAILURE`` or ``SR_BACKEND_FAILURE_<n>``.

    ``sm_code`` is ``n`` (None for the plain code, which XAPI uses when the driver crashed or
    printed something it could not parse). For ``SR_BACKEND_FAILURE_<n>`` the parameters are
    ``["", description, stderr]``; for the plain code ``[status, stdout, stderr]``.
    """

    codes = ("SR_BACKEND_FAILURE",)

    @property
    def sm_code(self) -> int | None:
        suffix = self.code[len("SR_BACKEND_FAILURE_") :]
        return int(suffix) if self.code.startswith("SR_BACKEND_FAILURE_") and suffix.isdigit() else None

    @property
    def description(self) -> str | None:
        return self._param(1)

    @property
    def explanation(self) -> str:
        number = f" (SM error {self.sm_code})" if self.sm_code is not None else ""
        return f"the storage driver failed{number}: {self.description or 'no description'}"


class PluginError(XenAPIError):
    """Errors from ``host.call_plugin`` and the dom0 plugin it ran."""


class XenAPIPluginFailure(PluginError):
    """``XENAPI_PLUGIN_FAILURE``: the plugin raised, exited non-zero or printed garbage."""

    codes = ("XENAPI_PLUGIN_FAILURE",)

    @property
    def explanation(self) -> str:
        return "the dom0 plugin failed: " + "; ".join(str(p) for p in self.params if p)


class XenAPIMissingPlugin(PluginError):
    """``XENAPI_MISSING_PLUGIN [name]``: no such file under /etc/xapi.d/plugins."""

    codes = ("XENAPI_MISSING_PLUGIN",)

    @property
    def plugin(self) -> str | None:
        return self._param(0)

    @property
    def explanation(self) -> str:
        return f"dom0 has no plugin {self.plugin!r} in /etc/xapi.d/plugins; install the plugins"


class UnknownXenAPIPluginFunction(PluginError):
    """``UNKNOWN_XENAPI_PLUGIN_FUNCTION [fn]``: the plugin does not export that function."""

    codes = ("UNKNOWN_XENAPI_PLUGIN_FUNCTION",)

    @property
    def function(self) -> str | None:
        return self._param(0)

    @property
    def explanation(self) -> str:
        return f"the dom0 plugin has no function {self.function!r}; are the plugins up to date?"


class Dom0PluginError(PluginError):
    """An ``OS_XENAPI_*`` error raised on purpose by an os-xenapi dom0 plugin (its README lists
    the codes); ``details`` are ``[code, detail, ...]``, all strings. ``retryable`` is True for
    the codes that mean "try again later" (busy lock, timeouts)."""

    RETRYABLE: ClassVar[frozenset[str]] = frozenset(
        {"OS_XENAPI_BUSY", "OS_XENAPI_TIMEOUT", "OS_XENAPI_COMMAND_TIMEOUT", "OS_XENAPI_RETRYABLE"})

    @property
    def retryable(self) -> bool:
        return self.code in self.RETRYABLE

    @property
    def explanation(self) -> str:
        what = self.code.removeprefix("OS_XENAPI_").replace("_", " ").lower()
        return f"the dom0 plugin reported {what}: " + "; ".join(str(p) for p in self.params)


class PluginInvalidArgument(Dom0PluginError):
    """``OS_XENAPI_INVALID_ARGUMENT [plugin.function, argument, reason]``: nothing was done."""

    codes = ("OS_XENAPI_INVALID_ARGUMENT",)

    @property
    def argument(self) -> str | None:
        return self._param(1)


class PluginNotFound(Dom0PluginError):
    """``OS_XENAPI_NOT_FOUND [what, which]``: the file, xenstore path, device... is missing."""

    codes = ("OS_XENAPI_NOT_FOUND",)


class TaskCancelled(XenAPIError):
    """``TASK_CANCELLED [task]``: the task was cancelled before it finished."""

    codes = ("TASK_CANCELLED",)

    @property
    def task(self) -> str | None:
        return self._param(0)


class TooManyPendingTasks(XenAPIError):
    """``TOO_MANY_PENDING_TASKS``: XAPI is overloaded; the call may be retried after a pause."""

    codes = ("TOO_MANY_PENDING_TASKS",)

    @property
    def explanation(self) -> str:
        return "XAPI has too many pending tasks; wait and try again"


class MessageError(XenAPIError):
    """The call itself was wrong: unknown method, wrong parameter count, removed message."""

    codes = ("MESSAGE_DEPRECATED", "MESSAGE_REMOVED")


class MessageMethodUnknown(MessageError):
    """``MESSAGE_METHOD_UNKNOWN [method]``."""

    codes = ("MESSAGE_METHOD_UNKNOWN",)

    @property
    def method(self) -> str | None:
        return self._param(0)

    @property
    def explanation(self) -> str:
        return f"XAPI has no method {self.method!r} (check the spelling and the XAPI version)"


class MessageParameterCountMismatch(MessageError):
    """``MESSAGE_PARAMETER_COUNT_MISMATCH [method, expected, received]`` (session not counted)."""

    codes = ("MESSAGE_PARAMETER_COUNT_MISMATCH",)

    @property
    def method(self) -> str | None:
        return self._param(0)

    @property
    def expected(self) -> int | None:
        return _int_or_none(self._param(1))

    @property
    def received(self) -> int | None:
        return _int_or_none(self._param(2))

    @property
    def explanation(self) -> str:
        return (
            f"{self.method} takes {self.expected} parameters after the session, "
            f"but was given {self.received}"
        )


class ParameterError(XenAPIError):
    """A parameter value XAPI does not accept."""

    codes = ("INVALID_VALUE", "FIELD_TYPE_ERROR", "MAP_DUPLICATE_KEY", "VALUE_NOT_SUPPORTED")

    @property
    def explanation(self) -> str:
        return f"XAPI rejected a parameter ({self.code}): " + ", ".join(map(str, self.params))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _registry() -> dict[str, type[XenAPIError]]:
    table: dict[str, type[XenAPIError]] = {}
    pending: list[type[XenAPIError]] = [XenAPIError]
    while pending:  # every subclass, however deep; the class tree is small and finite
        cls = pending.pop()
        for code in cls.__dict__.get("codes", ()):
            table[code] = cls
        pending.extend(cls.__subclasses__())
    return table


_BY_CODE = _registry()
_BY_PREFIX = (
    ("SR_BACKEND_FAILURE_", SRBackendFailure),
    ("OS_XENAPI_", Dom0PluginError),
    ("SESSION_", SessionError),
    ("SR_", StorageError),
    ("VDI_", StorageError),
    ("PBD_", StorageError),
)


def failure_from_details(details: Any, secrets: tuple[str, ...] = ()) -> Failure:
    """The :class:`Failure` subclass instance for an ErrorDescription ``[CODE, param, ...]``.

    ``details`` is kept as given. ``secrets`` (e.g. the session ref and password of the call) are
    replaced by ``<redacted>`` wherever ``str()`` or ``repr()`` would show them. Unknown codes
    give a plain :class:`XenAPIError`.
    """
    cls: type[XenAPIError] = XenAPIError
    if isinstance(details, list | tuple) and details and isinstance(details[0], str):
        code = details[0]
        found = _BY_CODE.get(code)
        if found is None:
            for prefix, family in _BY_PREFIX:
                if code.startswith(prefix):
                    found = family
                    break
        cls = found or XenAPIError
    failure = cls(details)
    failure._secrets = tuple(s for s in secrets if isinstance(s, str) and s)
    return failure
