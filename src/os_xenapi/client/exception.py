"""Every error the client raises, in three families.

* :class:`Failure` and its :class:`XenAPIError` subclasses: XAPI answered the call with an error.
  ``.details`` is the ``[CODE, param, ...]`` list exactly as XAPI sent it, and ``str()`` looks like
  the official SDK's ``XenAPI.Failure`` (``str(details)``), so code written against the SDK keeps
  working. :func:`failure_from_details` picks the class for a code. Session refs never show in
  ``str()`` or ``repr()`` (only in ``.details``), and neither do the secrets a transport names.
* :class:`TransportError`: no usable answer came back (refused, timed out, dropped, TLS, HTTP
  status, malformed reply). ``.may_have_executed`` says whether XAPI may have run the call, which is
  what decides whether repeating it is safe. They are ``OSError`` subclasses, ``ConnectionError``
  or ``TimeoutError`` where that is what happened (with the matching ``errno``), so code that
  caught ``socket.error`` around os-xenapi 0.3.4's calls still catches them.
* :class:`OsXenApiException` and its subclasses: the Nova-style exceptions of os-xenapi 0.3.4, kept
  by name and keyword arguments for code that catches them.
"""

from __future__ import annotations

import errno
from typing import Any, ClassVar

from .failures import (  # noqa: F401 - re-exported: every client error is importable here
    REDACTED,
    Dom0PluginError,
    Failure,
    HandleError,
    HandleInvalid,
    HostIsSlave,
    MessageError,
    MessageMethodUnknown,
    MessageParameterCountMismatch,
    ParameterError,
    PluginError,
    PluginInvalidArgument,
    PluginNotFound,
    SessionAuthenticationFailed,
    SessionError,
    SessionInvalid,
    SessionNotRegistered,
    SRBackendFailure,
    StorageError,
    TaskCancelled,
    TooManyPendingTasks,
    UnknownXenAPIPluginFunction,
    UUIDInvalid,
    VMBadPowerState,
    XenAPIError,
    XenAPIMissingPlugin,
    XenAPIPluginFailure,
    failure_from_details,
)

# --------------------------------------------------------------------------- transport errors


class TransportError(OSError):
    """No usable answer to a call came back from XAPI.

    ``may_have_executed`` is False only when the request certainly never reached XAPI (so any
    call may be repeated); when True, XAPI may have run it and only idempotent calls are safe to
    repeat. ``url`` is the endpoint (never with credentials), ``method`` the XAPI method if any.
    An OSError (0.3.4's callers caught ``socket.error``); ``str()`` is the message alone.
    """

    may_have_executed: ClassVar[bool] = True
    ERRNO: ClassVar[int | None] = None  # the errno of what happened, for code that tests it

    def __init__(self, message: str, *, url: str | None = None, method: str | None = None) -> None:
        super().__init__(message)  # one argument: no "[Errno n]" prefix in str()
        self.errno = self.ERRNO
        self.url = url
        self.method = method


class RequestNotSent(TransportError, ConnectionError):
    """The request never reached XAPI (no connection, or TLS refused): safe to repeat."""

    may_have_executed = False


class ConnectionRefused(RequestNotSent, ConnectionRefusedError):
    """Nothing listens at the address (or the Unix socket does not exist)."""

    ERRNO = errno.ECONNREFUSED


class ConnectTimeout(RequestNotSent, TimeoutError):
    """The connection could not be made within the connect timeout."""

    ERRNO = errno.ETIMEDOUT


class TLSError(RequestNotSent):
    """The TLS handshake failed: unverifiable certificate, wrong host name or fingerprint."""


class ConnectionLost(TransportError, ConnectionResetError):
    """The connection broke after the request was sent; XAPI may have run the call."""

    ERRNO = errno.ECONNRESET


class ReadTimeout(TransportError, TimeoutError):
    """No answer within the read timeout; XAPI may still be running the call."""

    ERRNO = errno.ETIMEDOUT


class HTTPStatusError(TransportError):
    """XAPI answered with an HTTP status other than 200 (``status``), e.g. 500 for a request it
    could not parse. Statuses that mean the request was not processed set ``may_have_executed``
    to False."""

    NOT_PROCESSED: ClassVar[frozenset[int]] = frozenset(
        {400, 401, 403, 404, 405, 411, 413, 414, 415, 431, 501}
    )

    def __init__(
        self, message: str, *, status: int, url: str | None = None, method: str | None = None
    ) -> None:
        super().__init__(message, url=url, method=method)
        self.status = status
        self.may_have_executed = status not in self.NOT_PROCESSED  # type: ignore[misc]


class ProtocolError(TransportError):
    """The reply was not a well-formed XAPI XML-RPC or JSON-RPC answer."""


class MasterNotFound(RequestNotSent):
    """The pool master could not be reached and no other known host of the pool led to one."""


# --------------------------------------------------------------------------- waiting


class WaitTimeout(TimeoutError):
    """What was waited for (an object's state, a task) did not happen within the time given."""


class TaskTimeout(WaitTimeout):
    """A XAPI task did not finish in time; it was cancelled and destroyed (``task`` is its ref)."""

    def __init__(self, message: str, *, task: str | None = None) -> None:
        super().__init__(message)
        self.task = task


# --------------------------------------------------------------------------- os-xenapi 0.3.4


class OsXenApiException(Exception):
    """Base of the Nova-style exceptions of os-xenapi 0.3.4: ``msg_fmt % kwargs`` as message."""

    msg_fmt = "An unexpected error occurred in os-xenapi."
    code = 500

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.kwargs.setdefault("code", self.code)
        if not message:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError, ValueError):
                # A caller that forgot a keyword still gets the text, not a second error.
                message = self.msg_fmt
        self.message = message
        super().__init__(message)

    def format_message(self) -> str:
        """The message, as Nova's exceptions offer it."""
        return str(self.args[0])


class SessionClosed(OsXenApiException):
    msg_fmt = "The XenAPISession for %(url)s is closed; make a new one."


class SessionPoolTimeout(OsXenApiException):
    msg_fmt = ("No XAPI session of the pool for %(url)s became free within %(seconds)s s "
               "(%(concurrent)s in use); raise concurrent= or look for calls that hang.")


class PluginVersionMismatch(OsXenApiException, Failure):
    """The dom0 plugins speak another plugin API version. A ``XenAPI.Failure`` as in 0.3.4
    (which raised ``XenAPI.Failure("Plugin version mismatch ...")``), so a guard around the
    session's construction catches it; ``details`` is ``[message]``, so ``details[0]`` and
    ``str()`` are the message naming both versions."""

    msg_fmt = ("The dom0 plugins of host %(host)s speak plugin API version %(found)s, but this "
               "os-xenapi needs version %(required)s (same major version): install the plugins "
               "of this os-xenapi release in dom0 (make rpm / make deb).")

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.details = [self.message]

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"PluginVersionMismatch({self.message!r})"


class PluginProtocolError(OsXenApiException):
    msg_fmt = ("The dom0 plugin %(plugin)s.%(fn)s answered something that is not JSON "
               "(%(reason)s); are the plugins in dom0 those of this os-xenapi release?")


class PluginRetriesExceeded(OsXenApiException):
    msg_fmt = "The dom0 plugin call still failed after %(num_retries)d retries."


class PluginImageNotFound(OsXenApiException):
    msg_fmt = "The image %(image_id)s was not found."


class DownloadImageNotFound(PluginImageNotFound, PluginRetriesExceeded):
    """``host_glance.download_vhd`` found no such image. Also a PluginRetriesExceeded, which is
    what 0.3.4 raised once it had retried the 404 ``num_retries`` times (this one does not
    retry: no retry can make the image appear)."""

    msg_fmt = ("The image %(image_id)s was not found; the download was not retried "
               "(num_retries=%(num_retries)d).")


class SessionLoginTimeout(OsXenApiException):
    msg_fmt = "Logging in to XAPI took too long; is the host overloaded or its dom0 disk full?"


class InvalidImage(OsXenApiException):
    msg_fmt = "The image is not valid: %(details)s"


class HostConnectionFailure(OsXenApiException):
    msg_fmt = "Could not connect to the host %(host_netloc)s."


class NotFound(OsXenApiException):
    msg_fmt = "The requested object was not found."


class VdiImportFailure(OsXenApiException):
    msg_fmt = "Importing the VHD stream into VDI %(vdi_ref)s failed."


class VhdDiskTypeNotSupported(OsXenApiException):
    msg_fmt = "VHD disk type %(disk_type)s is not supported."


class NoNetworkInterfaceInSameSegment(OsXenApiException):
    msg_fmt = "No network interface is in the same segment as %(ip)s."


class ExecuteCommandFailed(OsXenApiException):
    msg_fmt = "The command failed: %(cmd)s"


class GetInterfaceOnHIMNMacError(OsXenApiException):
    msg_fmt = "No interface on the host-internal management network has MAC address %(mac)s."
