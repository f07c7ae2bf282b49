"""XAPI errors as the simulator raises them: a code and string parameters, ``[CODE, p1, ...]``."""

from __future__ import annotations


class Interrupted(Exception):
    """The simulator was told to stop while it was still starting (building its pool)."""


class ApiError(Exception):
    """A XAPI failure; ``description`` is the wire ``ErrorDescription`` (all strings)."""

    def __init__(self, code: str, *params: object) -> None:
        super().__init__(code, *params)
        self.code = code
        self.params = [str(p) for p in params]

    @property
    def description(self) -> list[str]:
        return [self.code, *self.params]

    def __str__(self) -> str:
        return str(self.description)


def handle_invalid(cls: str, ref: str) -> ApiError:
    return ApiError("HANDLE_INVALID", cls, ref)


def uuid_invalid(cls: str, uuid: str) -> ApiError:
    return ApiError("UUID_INVALID", cls, uuid)


def operation_not_allowed(reason: str) -> ApiError:
    return ApiError("OPERATION_NOT_ALLOWED", reason)


def vm_bad_power_state(vm: str, expected: list[str], actual: str) -> ApiError:
    """XAPI's ``VM_BAD_POWER_STATE [vm; expected; actual]``, states in lowercase."""
    return ApiError(
        "VM_BAD_POWER_STATE", vm, ", ".join(s.lower() for s in expected), actual.lower()
    )
