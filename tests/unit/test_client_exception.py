"""The client's errors (os_xenapi.client.exception): one class per family of XAPI error code,
compatible with the official SDK's XenAPI.Failure, secrets kept out of their text, and the
Nova-style exceptions of os-xenapi 0.3.4 kept by name."""

from __future__ import annotations

import errno
import pickle
import socket

import pytest
import XenAPI as SDK

from os_xenapi.client import exception as exc

REF = "OpaqueRef:2b2c4ed6-4b5b-4b43-a3c7-5d9f0d1b0a11"
SESSION = "OpaqueRef:5e55104e-0000-4000-8000-5e55104e0000"


@pytest.mark.parametrize(
    ("details", "cls"),
    [
        (["SESSION_INVALID", SESSION], exc.SessionInvalid),
        (["SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"],
         exc.SessionAuthenticationFailed),
        (["SESSION_AUTHORIZATION_FAILED", "bob", "no"], exc.SessionError),
        (["HOST_IS_SLAVE", "10.0.0.1"], exc.HostIsSlave),
        (["HANDLE_INVALID", "VM", REF], exc.HandleInvalid),
        (["UUID_INVALID", "VM", "abc"], exc.UUIDInvalid),
        (["VM_BAD_POWER_STATE", REF, "running", "halted"], exc.VMBadPowerState),
        (["SR_BACKEND_FAILURE", "1", "", "crash"], exc.SRBackendFailure),
        (["SR_BACKEND_FAILURE_46", "", "The VDI is not available", ""], exc.SRBackendFailure),
        (["SR_FULL", "10", "5"], exc.StorageError),
        (["VDI_IN_USE", REF, "destroy"], exc.StorageError),
        (["XENAPI_PLUGIN_FAILURE", "fn", "ValueError", "bad"], exc.XenAPIPluginFailure),
        (["XENAPI_MISSING_PLUGIN", "nope.py"], exc.XenAPIMissingPlugin),
        (["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "nope"], exc.UnknownXenAPIPluginFunction),
        (["TASK_CANCELLED", REF], exc.TaskCancelled),
        (["TOO_MANY_PENDING_TASKS"], exc.TooManyPendingTasks),
        (["MESSAGE_METHOD_UNKNOWN", "VM.fly"], exc.MessageMethodUnknown),
        (["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.start", "2", "1"],
         exc.MessageParameterCountMismatch),
        (["MESSAGE_REMOVED"], exc.MessageError),
        (["INVALID_VALUE", "expr", "oops"], exc.ParameterError),
        (["OPERATION_NOT_ALLOWED", "PBD is currently attached"], exc.XenAPIError),
    ],
)
def test_each_code_gets_its_family_class(details: list[str], cls: type) -> None:
    failure = exc.failure_from_details(details)
    assert type(failure) is cls
    assert isinstance(failure, exc.XenAPIError) and isinstance(failure, exc.Failure)
    assert failure.details == details and failure.code == details[0]


def test_str_and_details_match_the_official_sdk() -> None:
    details = ["VM_BAD_POWER_STATE", REF, "running", "halted"]
    ours, theirs = exc.failure_from_details(list(details)), SDK.Failure(list(details))
    assert str(ours) == str(theirs)
    assert ours.details == theirs.details
    assert ours._details_map() == theirs._details_map()


def test_failure_keeps_any_details_like_the_sdk() -> None:
    failure = exc.Failure("Unable to log in to XenAPI")
    assert str(failure) == "Unable to log in to XenAPI"
    assert failure.code == "Unable to log in to XenAPI" and failure.params == []


def test_session_invalid_hides_the_ref_but_keeps_details_exact() -> None:
    failure = exc.failure_from_details(["SESSION_INVALID", SESSION])
    assert failure.details == ["SESSION_INVALID", SESSION]
    assert SESSION not in str(failure) and SESSION not in repr(failure)
    assert str(failure) == "['SESSION_INVALID', '<redacted>']"


def test_named_secrets_never_show_in_text() -> None:
    failure = exc.failure_from_details(["INTERNAL_ERROR", f"bad session {SESSION} here"],
                                       secrets=(SESSION,))
    assert SESSION not in str(failure) and SESSION not in repr(failure)
    assert failure.details[1] == f"bad session {SESSION} here"


def test_a_session_handle_invalid_is_redacted_too() -> None:
    assert SESSION not in str(exc.failure_from_details(["HANDLE_INVALID", "session", SESSION]))


def test_failures_pickle_with_their_details() -> None:
    failure = pickle.loads(pickle.dumps(exc.failure_from_details(["HOST_IS_SLAVE", "10.0.0.2"])))
    assert isinstance(failure, exc.HostIsSlave) and failure.master_address == "10.0.0.2"


def test_family_attributes_read_the_parameters() -> None:
    power = exc.failure_from_details(["VM_BAD_POWER_STATE", REF, "paused, suspended;running",
                                      "halted"])
    assert (power.vm, power.expected, power.actual) == (REF, ["paused", "suspended", "running"],
                                                        "halted")
    assert exc.failure_from_details(["SR_BACKEND_FAILURE_46", "", "x", ""]).sm_code == 46
    assert exc.failure_from_details(["SR_BACKEND_FAILURE", "1", "", ""]).sm_code is None
    count = exc.failure_from_details(["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.start", "2", "1"])
    assert (count.method, count.expected, count.received) == ("VM.start", 2, 1)
    handle = exc.failure_from_details(["HANDLE_INVALID", "VDI", REF])
    assert (handle.class_name, handle.ref) == ("VDI", REF)


def test_missing_parameters_read_as_none() -> None:
    assert exc.failure_from_details(["HOST_IS_SLAVE"]).master_address is None


def test_explanations_say_what_to_do() -> None:
    slave = exc.failure_from_details(["HOST_IS_SLAVE", "10.0.0.2"])
    assert "connect to the master at 10.0.0.2" in slave.explanation
    power = exc.failure_from_details(["VM_BAD_POWER_STATE", REF, "running", "halted"])
    assert "is halted" in power.explanation and "running" in power.explanation


def test_odd_details_fall_back_to_the_generic_class() -> None:
    assert type(exc.failure_from_details([])) is exc.XenAPIError
    assert type(exc.failure_from_details("text")) is exc.XenAPIError


@pytest.mark.parametrize(
    ("cls", "executed"),
    [(exc.ConnectionRefused, False), (exc.ConnectTimeout, False), (exc.TLSError, False),
     (exc.RequestNotSent, False), (exc.ConnectionLost, True), (exc.ReadTimeout, True),
     (exc.ProtocolError, True)],
)
def test_transport_errors_say_whether_the_call_may_have_run(cls: type, executed: bool) -> None:
    error = cls("text", url="http://h:80", method="VM.start")
    assert error.may_have_executed is executed
    assert (error.url, error.method) == ("http://h:80", "VM.start")


@pytest.mark.parametrize(("status", "executed"), [(404, False), (413, False), (500, True),
                                                  (502, True)])
def test_http_status_errors_know_what_was_not_processed(status: int, executed: bool) -> None:
    assert exc.HTTPStatusError("x", status=status).may_have_executed is executed


def test_nova_style_exceptions_format_their_keywords() -> None:
    error = exc.PluginRetriesExceeded(num_retries=3)
    assert "3" in error.format_message() and error.kwargs == {"num_retries": 3, "code": 500}
    assert exc.HostConnectionFailure(host_netloc="h:443").message.endswith("h:443.")
    assert str(exc.NotFound("Cannot find SR")) == "Cannot find SR"


def test_nova_style_exception_without_its_keyword_still_has_a_message() -> None:
    assert exc.VdiImportFailure().format_message() == exc.VdiImportFailure.msg_fmt


@pytest.mark.parametrize("name", ["OsXenApiException", "PluginRetriesExceeded",
                                  "PluginImageNotFound", "SessionLoginTimeout", "InvalidImage",
                                  "HostConnectionFailure", "NotFound", "VdiImportFailure",
                                  "VhdDiskTypeNotSupported", "NoNetworkInterfaceInSameSegment",
                                  "ExecuteCommandFailed", "GetInterfaceOnHIMNMacError"])
def test_os_xenapi_034_names_are_kept(name: str) -> None:
    assert issubclass(getattr(exc, name), exc.OsXenApiException)


@pytest.mark.parametrize(
    ("cls", "builtin", "errno_code"),
    [(exc.ConnectionRefused, ConnectionRefusedError, errno.ECONNREFUSED),
     (exc.ConnectTimeout, TimeoutError, errno.ETIMEDOUT),
     (exc.ConnectionLost, ConnectionResetError, errno.ECONNRESET),
     (exc.ReadTimeout, TimeoutError, errno.ETIMEDOUT),
     (exc.RequestNotSent, ConnectionError, None), (exc.TLSError, ConnectionError, None),
     (exc.MasterNotFound, ConnectionError, None), (exc.ProtocolError, OSError, None)],
)
def test_transport_errors_are_the_os_errors_of_what_happened(cls: type, builtin: type,
                                                             errno_code: int | None) -> None:
    error = cls("the text", url="http://h:80")
    assert isinstance(error, builtin) and isinstance(error, socket.error)
    assert error.errno == errno_code and str(error) == "the text"


def test_http_status_errors_are_os_errors_but_not_connection_errors() -> None:
    error = exc.HTTPStatusError("HTTP 500", status=500)
    assert isinstance(error, OSError) and not isinstance(error, ConnectionError)


def test_plugin_version_mismatch_is_a_failure_whose_details_are_the_message() -> None:
    error = exc.PluginVersionMismatch(host="h1", required="3.0", found="2.1")
    assert isinstance(error, exc.Failure) and isinstance(error, exc.OsXenApiException)
    assert error.details == [str(error)] == [error.format_message()]
    assert "version 2.1" in str(error) and "needs version 3.0" in str(error)
