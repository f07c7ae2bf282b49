"""Nova's pool join (nova/virt/xenapi/pool.py, ``_join_slave``): on the master's compute node,
``call_plugin('xenhost.py', 'host_join', {compute_uuid, url, user, password, force,
master_addr, master_user, master_pass})`` with plain arguments, a failure caught as
``session.XenAPI.Failure`` (issue 10, item 3). The passwords must never reach an error text or
a log: the simulated dom0's syslog (``/dev/log`` in its root) and the simulator's own logging
are read back.

The host to join is a second, standalone simulator. A successful join needs ``pool.join`` in
the simulator, which it does not have (MESSAGE_METHOD_UNKNOWN); these tests pin the refusals.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import XenAPI as SDK

from os_xenapi.client import exception
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

ORIGINATOR = "nova-join-referee"
MASTER_PASS = "master-secret-9c1e77"
JOINER_PASS = "joiner-secret-4b2d55"
WRONG_PASS = "wrong-secret-0a8f31"
SECRETS = (MASTER_PASS, JOINER_PASS, WRONG_PASS)


class Syslog:
    """The simulated dom0's /dev/log: a datagram socket whose messages a test reads back."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.setblocking(False)

    def read(self) -> str:
        """Every message that arrived since the last read."""
        messages = []
        while True:
            try:
                messages.append(self.socket.recv(65536).decode("utf-8", "replace"))
            except BlockingIOError:
                return "\n".join(messages)


@pytest.fixture(scope="module")
def syslog(root: Path) -> Iterator[Syslog]:
    log = Syslog(root / "dev" / "log")
    yield log
    log.socket.close()


@pytest.fixture(scope="module")
def sim(root: Path, syslog: Syslog) -> Iterator[Simulator]:
    with Simulator(auth_failure_delay=0, dom0_root=root, password=MASTER_PASS) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def joiner() -> Iterator[Simulator]:
    """The host Nova asks to join the pool, with its compute VM."""
    with Simulator(vms=1, auth_failure_delay=0, password=JOINER_PASS) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def compute_uuid(joiner: Simulator) -> str:
    official = SDK.Session(joiner.url)
    official.xenapi.login_with_password(joiner.username, JOINER_PASS, "1.0", ORIGINATOR)
    try:
        vm = next(ref for ref, record in official.xenapi.VM.get_all_records().items()
                  if not record["is_a_template"] and not record["is_control_domain"])
        return official.xenapi.VM.get_uuid(vm)
    finally:
        official.xenapi.session.logout()


def join_args(sim: Simulator, joiner: Simulator, compute_uuid: str,
              password: str = WRONG_PASS) -> dict[str, str]:
    """The argument map Nova's _join_slave sends."""
    return {"compute_uuid": compute_uuid, "url": joiner.url, "user": joiner.username,
            "password": password, "force": json.dumps(False),
            "master_addr": sim.addresses[0], "master_user": sim.username,
            "master_pass": MASTER_PASS}


def join(nova: XenAPISession, args: dict[str, str]) -> Any:
    return nova.call_plugin("xenhost.py", "host_join", args)


def test_host_join_refuses_a_compute_uuid_that_is_no_uuid_naming_it(
    sim: Simulator, joiner: Simulator, nova: XenAPISession,
) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        join(nova, join_args(sim, joiner, "../../etc/shadow"))
    assert info.value.argument == "compute_uuid"


def test_host_join_with_a_password_the_host_refuses_is_xapis_authentication_failure(
    sim: Simulator, joiner: Simulator, compute_uuid: str, nova: XenAPISession,
) -> None:
    with pytest.raises(nova.XenAPI.Failure) as info:
        join(nova, join_args(sim, joiner, compute_uuid))
    assert info.value.details[0] == "SESSION_AUTHENTICATION_FAILED"


def test_host_join_failure_holds_none_of_the_passwords(
    sim: Simulator, joiner: Simulator, compute_uuid: str, nova: XenAPISession,
) -> None:
    with pytest.raises(nova.XenAPI.Failure) as info:
        join(nova, join_args(sim, joiner, compute_uuid))
    text = " ".join([str(info.value), repr(info.value), *map(str, info.value.details)])
    assert info.value.details[0] != "UNKNOWN_XENAPI_PLUGIN_FUNCTION"
    assert not [secret for secret in SECRETS if secret in text]


def test_host_join_logs_none_of_the_passwords(
    sim: Simulator, joiner: Simulator, compute_uuid: str, nova: XenAPISession,
    syslog: Syslog, caplog: pytest.LogCaptureFixture,
) -> None:
    syslog.read()
    with caplog.at_level(logging.DEBUG), pytest.raises(nova.XenAPI.Failure) as info:
        join(nova, join_args(sim, joiner, compute_uuid))
    assert info.value.details[0] != "UNKNOWN_XENAPI_PLUGIN_FUNCTION"
    logged = syslog.read() + "\n" + caplog.text
    assert "host_join" in logged  # the call was logged: the capture is live
    assert not [secret for secret in SECRETS if secret in logged]
