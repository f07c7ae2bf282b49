"""Secrets behind ``*_secret`` device_config keys, kept on the simulator side only.

XAPI never stores a password in a device_config: ``Xapi_secret.move_passwds_to_secrets`` replaces
every key ending in ``password`` by ``<key>_secret`` whose value is the uuid of a new ``secret``
object, and each PBD gets its own copy (``duplicate_passwds``). The simulator does not serve the
``secret`` class, so the values live here, in memory, and are never logged or put in a record.
"""

from __future__ import annotations

import uuid as _uuid

from ..errors import ApiError

SECRET_SUFFIX = "_secret"


def is_password_key(key: str) -> bool:
    """Whether XAPI moves this device_config key to a secret."""
    return key.endswith("password")


def is_secret_key(key: str) -> bool:
    """Whether this device_config key names a secret made from a password key."""
    return key.endswith("password" + SECRET_SUFFIX)


class Secrets:
    """uuid -> secret value."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, uuid: object) -> bool:
        return uuid in self._values

    def to_state(self) -> dict[str, str]:
        """uuid -> value, for a persisted pool (XAPI keeps secrets in its database too)."""
        return dict(self._values)

    def restore(self, state: dict[str, str]) -> None:
        """Take the secrets :meth:`to_state` returned."""
        self._values = dict(state)

    def create(self, value: str) -> str:
        """A new secret holding ``value``; returns its uuid."""
        uuid = str(_uuid.uuid4())
        self._values[uuid] = value
        return uuid

    def value(self, uuid: str) -> str:
        """The value of a secret; ``UUID_INVALID [secret, uuid]`` if there is none."""
        try:
            return self._values[uuid]
        except KeyError:
            raise ApiError("UUID_INVALID", "secret", uuid) from None

    def move_passwords(self, device_config: dict[str, str]) -> dict[str, str]:
        """A copy of ``device_config`` with each ``*password`` key replaced by ``*password_secret``."""
        out: dict[str, str] = {}
        for key, value in device_config.items():
            if is_password_key(key):
                out[key + SECRET_SUFFIX] = self.create(value)
            else:
                out[key] = value
        return out

    def duplicate(self, device_config: dict[str, str], keep: frozenset[str] = frozenset()) -> dict:
        """A copy whose ``*password_secret`` values are fresh copies of the secrets they name.

        Keys in ``keep`` (secrets made for this very call) are left as they are.
        """
        out = dict(device_config)
        for key, value in device_config.items():
            if is_secret_key(key) and key not in keep:
                out[key] = self.create(self.value(value))
        return out

    def forget_in(self, device_config: dict[str, str]) -> None:
        """Drop the secrets a device_config refers to (``clean_out_passwds``)."""
        for key, value in device_config.items():
            if is_secret_key(key):
                self._values.pop(value, None)

    def resolve(self, device_config: dict[str, str], key: str) -> str | None:
        """The password ``key`` stands for: from ``key_secret`` if set, else ``key``, else None."""
        secret = device_config.get(key + SECRET_SUFFIX)
        if secret is not None:
            return self._values.get(secret, "")
        return device_config.get(key)
