"""SM (storage manager) failures as XAPI reports them to clients.

A real SM driver raises ``xs_errors.XenError(key, opterr)``: the key is looked up in
``XE_SR_ERRORCODES.xml`` (copied into ``errorcodes.json`` by ``tools/gen_sm_errorcodes.py``), the
driver prints an XML-RPC fault ``(value, description[ [opterr=...]])`` and its stderr, and XAPI's
``sm_exec.ml`` turns that into ``SR_BACKEND_FAILURE_<value> ["", reason, stderr]``, except for four
faults it maps to its own errors (16, 24, 39, 144). Exceptions that are not SM errors become fault
1200 with the exception's text (``SRCommand.run``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from ..errors import ApiError

GENERIC_FAULT = 1200  # SRCommand.run: any exception that is not an SR exception


@cache
def error_table() -> dict[str, tuple[int, str]]:
    """SM error key -> (numeric code, description), as in XE_SR_ERRORCODES.xml."""
    raw = json.loads((Path(__file__).parent / "errorcodes.json").read_text())
    return {key: (entry["value"], entry["description"]) for key, entry in raw.items()}


class BackendFailure(ApiError):
    """``SR_BACKEND_FAILURE_<code> ["", reason, stderr]`` from a simulated SM driver.

    ``candidates`` lists the device_config completions the driver printed on stderr (the IQNs of
    a target, the exports of a server, the LUNs of a target), for ``SR.probe_ext``.
    """

    def __init__(self, code: int, reason: str, stderr: str = "",
                 candidates: list[dict[str, str]] | None = None) -> None:
        super().__init__(f"SR_BACKEND_FAILURE_{code}", "", reason, stderr)
        self.sm_code = code
        self.reason = reason
        self.stderr = stderr
        self.candidates = candidates or []


def sm_fault(code: int, reason: str, stderr: str = "", *, sr: str = "", vdi: str = "",
             candidates: list[dict[str, str]] | None = None) -> ApiError:
    """The API error XAPI makes of SM fault ``code`` (``sm_exec.ml``)."""
    if code == 39:
        return ApiError("SR_NOT_EMPTY")
    if code == 24:
        return ApiError("VDI_IN_USE")
    if code == 16:
        return ApiError("SR_DEVICE_IN_USE")
    if code == 144:
        return ApiError("VDI_MISSING", sr, vdi)
    return BackendFailure(code, reason, stderr, candidates)


def sm_error(key: str, opterr: object = None, stderr: str = "", *, sr: str = "", vdi: str = "",
             candidates: list[dict[str, str]] | None = None) -> ApiError:
    """What XAPI returns when an SM driver raises ``XenError(key, opterr)`` and printed ``stderr``.

    An unknown key gives fault 1 "Error reporting error, unknown key <key>", as xs_errors does.
    """
    found = error_table().get(key)
    if found is None:
        return sm_fault(1, f"Error reporting error, unknown key {key}", stderr)
    code, description = found
    if opterr is not None:
        description += f" [opterr={opterr}]"
    return sm_fault(code, description, stderr, sr=sr, vdi=vdi, candidates=candidates)


def generic_failure(message: str, stderr: str = "") -> ApiError:
    """Fault 1200: what a driver's plain Python exception becomes."""
    return sm_fault(GENERIC_FAULT, message, stderr)


def reason_of(error: ApiError) -> str:
    """The text an SM driver would get from ``str(exc)`` of this error (used as an opterr)."""
    if isinstance(error, BackendFailure):
        return error.reason
    return " ".join(error.description)
