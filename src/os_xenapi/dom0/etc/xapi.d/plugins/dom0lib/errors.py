"""The error codes the os-xenapi dom0 plugins report, and the exceptions that carry them.

A plugin function fails on purpose by raising PluginError; dom0lib.protocol turns it into
``XenAPIPlugin.Failure(code, details)``, so the caller of ``host.call_plugin`` sees the XAPI
error ``[code, detail, ...]``. This module is the one place the codes are defined; the dom0
README lists them for callers. Every detail is a string, as XAPI error parameters are.
"""

# [plugin.function, argument, reason]: an argument is missing, unknown, mistyped or out of bounds.
INVALID_ARGUMENT = "OS_XENAPI_INVALID_ARGUMENT"
# [what, which]: the file, xenstore path, PCI device... the call names does not exist.
NOT_FOUND = "OS_XENAPI_NOT_FOUND"
# [command, exit code, stderr (last 400 characters)]: a dom0 command exited with an error.
COMMAND_FAILED = "OS_XENAPI_COMMAND_FAILED"
# [command, seconds]: a dom0 command ran longer than its time limit and was killed.
COMMAND_TIMEOUT = "OS_XENAPI_COMMAND_TIMEOUT"
# [command]: a dom0 command is not installed (not found on PATH).
COMMAND_MISSING = "OS_XENAPI_COMMAND_MISSING"
# [what, seconds]: the guest agent did not answer in time; the request was withdrawn.
TIMEOUT = "OS_XENAPI_TIMEOUT"
# [dom_id]: the domain disappeared while waiting for its agent (the VM rebooted or stopped).
REBOOT_DETECTED = "OS_XENAPI_REBOOT_DETECTED"
# [what, reason]: the host or the guest agent cannot do what was asked.
NOT_SUPPORTED = "OS_XENAPI_NOT_SUPPORTED"
# [what, limit]: a result or request would exceed a fixed bound (file size, xenstore payload).
TOO_LARGE = "OS_XENAPI_TOO_LARGE"
# [what, reason]: data read from the host (a file, a command's output, an agent reply) is malformed.
BAD_DATA = "OS_XENAPI_BAD_DATA"
# [lock, seconds]: another call holds the lock this call needs; try again later.
BUSY = "OS_XENAPI_BUSY"
# [what, reason]: a transient failure (network, HTTP 5xx or 408, truncated or corrupted
# transfer); nothing was imported or published, and the same call may succeed if repeated.
RETRYABLE = "OS_XENAPI_RETRYABLE"
# [request, HTTP status, reason]: the image service refused the request for good (4xx, 501...).
HTTP_ERROR = "OS_XENAPI_HTTP_ERROR"
# [host, reason]: the server's TLS certificate could not be verified (or TLS failed otherwise).
CERTIFICATE_ERROR = "OS_XENAPI_CERTIFICATE_ERROR"
# [what, state, expected state]: the object is not in the state the call needs (an image
# that is no longer "queued").
WRONG_STATE = "OS_XENAPI_WRONG_STATE"
# [what, which, error]: the work was done (or had already failed) but a temporary object, such
# as a VBD plugged into dom0, could not be removed; the operator must remove it.
CLEANUP_FAILED = "OS_XENAPI_CLEANUP_FAILED"
# [plugin.function, exception class, message]: a bug in the plugin; the traceback is in syslog.
INTERNAL_ERROR = "OS_XENAPI_INTERNAL_ERROR"

ALL_CODES = (
    INVALID_ARGUMENT,
    NOT_FOUND,
    COMMAND_FAILED,
    COMMAND_TIMEOUT,
    COMMAND_MISSING,
    TIMEOUT,
    REBOOT_DETECTED,
    NOT_SUPPORTED,
    TOO_LARGE,
    BAD_DATA,
    BUSY,
    RETRYABLE,
    HTTP_ERROR,
    CERTIFICATE_ERROR,
    WRONG_STATE,
    CLEANUP_FAILED,
    INTERNAL_ERROR,
)


class PluginError(Exception):
    """A failure a plugin reports on purpose: an error code and its string details."""

    def __init__(self, code: str, *details: object) -> None:
        self.code = code
        self.details = [str(detail) for detail in details]
        Exception.__init__(self, code, *self.details)

    def __str__(self) -> str:
        return "{}: {}".format(self.code, "; ".join(self.details))


class InvalidArgument(PluginError):
    """An argument failed validation; protocol.py adds the plugin and function names."""

    def __init__(self, argument: str, reason: str) -> None:
        PluginError.__init__(self, INVALID_ARGUMENT, argument, reason)
        self.argument = argument
        self.reason = reason
