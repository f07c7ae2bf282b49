"""Nova's calls to a guest (nova/virt/xenapi/agent.py, vmops.py): the guest agent through
``host_agent``, the guest's xenstore through ``host_xenstore``, its console log through
``vm_management``, with the results and errors handled as Nova handled them (issue 10,
items 1, 5 and 7):

* ``agent._call_agent`` ``json.loads`` the agent's answer and checks its ``returncode``; it
  tells a timeout, a reboot and an unsupported request apart by ``TIMEOUT:``, ``REBOOT:`` and
  ``NOT IMPLEMENTED:`` in the last line of ``details[-1]`` of the ``XenAPI.Failure``;
* ``vmops._pv_driver_version_reported`` compares ``read_record`` with ``'"None"'``, and xenstore
  values come back as JSON text;
* ``vmops.get_console_output`` does ``zlib.decompress(base64.b64decode(get_console_log(...)))``.

The guests run in the simulator with its simulated guest agent (item 7); the marker tests switch
one VM's agent off or reboot the VM while its request waits.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import XenAPI, host_agent, host_xenstore, vm_management
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

from .conftest import (
    AGENT_TARBALL,
    NOVA_DH_PRIME,
    boot_instance,
    nova_encrypt,
    nova_public_key,
    set_guest_agent,
    wait_until,
    xenstore_read,
    xenstore_write,
)

ORIGINATOR = "nova-guest-referee"
# Nova's default agent_timeout is 30 s; an answering agent takes milliseconds, and a shorter
# limit keeps a broken agent from costing half a minute a test.
AGENT_TIMEOUT = "5"


@pytest.fixture(scope="module")
def instance(x: Any) -> str:
    return boot_instance(x, "instance-00000001")


@pytest.fixture(scope="module")
def dom_id(nova: XenAPISession, instance: str) -> str:
    """The instance's domid as Nova passes it to the plugins: what VM.get_domid gave, as str."""
    return str(nova.VM.get_domid(instance))


def call_agent(session: XenAPISession, method: Callable[..., Any], vm: str,
               timeout: str = AGENT_TIMEOUT, **args: str) -> Any:
    """Nova's agent._call_agent: a new request id, the VM's current domid and the timeout as
    strings; the wrapper's answer, which must be JSON text, decoded."""
    result = method(session, str(uuid.uuid4()), str(session.VM.get_domid(vm)), timeout, **args)
    assert isinstance(result, str), f"the agent's answer is {type(result).__name__}, not text"
    return json.loads(result)


def nova_agent_error(failure: XenAPI.Failure) -> str | None:
    """How Nova's _call_agent classifies a failure: the marker in details[-1]'s last line."""
    last_line = failure.details[-1].splitlines()[-1]
    for marker in ("TIMEOUT:", "REBOOT:", "NOT IMPLEMENTED:"):
        if marker in last_line:
            return marker
    return None


# -------------------------------------------------------------------------------- host_agent


def test_agent_version_is_json_text_with_the_agents_version(nova: XenAPISession,
                                                            instance: str) -> None:
    answer = call_agent(nova, host_agent.version, instance)
    assert answer["returncode"] == "0"
    assert isinstance(answer["message"], str) and answer["message"]


def test_agent_key_init_answers_d0_with_the_agents_public_key(nova: XenAPISession,
                                                              instance: str) -> None:
    public = nova_public_key()
    answer = call_agent(nova, host_agent.key_init, instance, pub=public)
    assert answer["returncode"] == "D0"
    assert 0 < int(answer["message"]) < NOVA_DH_PRIME


def test_agent_password_after_novas_key_exchange_is_accepted_with_returncode_0(
        nova: XenAPISession, instance: str) -> None:
    # Nova's set_admin_password: key_init with its public key, the password (and a newline)
    # encrypted with the shared secret by openssl, then password.
    exchanged = call_agent(nova, host_agent.key_init, instance, pub=nova_public_key())
    assert exchanged["returncode"] == "D0"
    answer = call_agent(nova, host_agent.password, instance,
                        enc_pass=nova_encrypt(exchanged["message"], "s3cret-pass\n"))
    assert answer["returncode"] == "0"


def test_agent_inject_file_is_accepted_with_returncode_0(nova: XenAPISession,
                                                         instance: str) -> None:
    answer = call_agent(nova, host_agent.inject_file, instance,
                        b64_path=base64.b64encode(b"/etc/motd").decode(),
                        b64_contents=base64.b64encode(b"Welcome to OpenStack\n").decode())
    assert answer["returncode"] == "0"


def test_agent_reset_network_is_accepted_with_returncode_0(nova: XenAPISession,
                                                           instance: str) -> None:
    assert call_agent(nova, host_agent.reset_network, instance)["returncode"] == "0"


def test_agent_update_is_accepted_with_returncode_0(nova: XenAPISession, instance: str,
                                                    agent_build: str) -> None:
    answer = call_agent(nova, host_agent.agent_update, instance, url=agent_build,
                        md5sum=hashlib.md5(AGENT_TARBALL).hexdigest())
    assert answer["returncode"] == "0"


def test_silent_agent_fails_with_the_timeout_marker_on_the_last_line(
    sim: Simulator, x: Any, nova: XenAPISession,
) -> None:
    vm = boot_instance(x, "instance-silent")
    set_guest_agent(sim, vm, silent=True)
    with pytest.raises(XenAPI.Failure) as info:
        call_agent(nova, host_agent.version, vm, timeout="1")
    assert nova_agent_error(info.value) == "TIMEOUT:"


def test_agent_of_a_guest_that_reboots_meanwhile_fails_with_the_reboot_marker(
    sim: Simulator, x: Any, nova: XenAPISession,
) -> None:
    vm = boot_instance(x, "instance-rebooting")
    set_guest_agent(sim, vm, silent=True)
    request, dom = str(uuid.uuid4()), str(nova.VM.get_domid(vm))
    failures: list[BaseException] = []

    def ask() -> None:
        try:
            host_agent.version(nova, request, dom, "30")
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            failures.append(exc)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    wait_until(lambda: xenstore_read(sim, f"/local/domain/{dom}/data/host/{request}") is not None,
               "the agent plugin's request")
    x.VM.hard_reboot(vm)
    asker.join(30)
    assert not asker.is_alive(), "the agent plugin kept waiting after the guest rebooted"
    assert len(failures) == 1 and isinstance(failures[0], XenAPI.Failure), failures
    assert nova_agent_error(failures[0]) == "REBOOT:"


def test_agent_without_file_injection_fails_with_the_not_implemented_marker(
    sim: Simulator, x: Any, nova: XenAPISession,
) -> None:
    vm = boot_instance(x, "instance-no-injection")
    set_guest_agent(sim, vm, features=["password", "resetnetwork"])
    with pytest.raises(XenAPI.Failure) as info:
        call_agent(nova, host_agent.inject_file, vm, b64_path="L2V0Yy9tb3Rk",
                   b64_contents="aGk=")
    assert nova_agent_error(info.value) == "NOT IMPLEMENTED:"


# ----------------------------------------------------------------------------- host_xenstore


def test_read_record_of_a_missing_path_is_the_text_quote_none_quote(nova: XenAPISession,
                                                                    dom_id: str) -> None:
    assert host_xenstore.read_record(nova, dom_id, "data/never-written",
                                     ignore_missing_path=True) == '"None"'


def test_read_record_of_a_json_value_is_that_json_text(sim: Simulator, nova: XenAPISession,
                                                       dom_id: str) -> None:
    xenstore_write(sim, f"/local/domain/{dom_id}/attr/PVAddons/MajorVersion", "7")
    assert host_xenstore.read_record(nova, dom_id, "attr/PVAddons/MajorVersion",
                                     ignore_missing_path=True) == "7"


def test_read_record_of_a_plain_string_is_its_json_encoding(sim: Simulator,
                                                            nova: XenAPISession,
                                                            dom_id: str) -> None:
    xenstore_write(sim, f"/local/domain/{dom_id}/data/greeting", "hello world")
    assert host_xenstore.read_record(nova, dom_id, "data/greeting",
                                     ignore_missing_path=True) == '"hello world"'


def test_write_record_of_json_text_returns_that_text_and_stores_it(
    sim: Simulator, nova: XenAPISession, dom_id: str,
) -> None:
    value = json.dumps({"label": "public", "ips": [{"ip": "10.0.0.5"}]})
    assert host_xenstore.write_record(nova, dom_id, "vm-data/networking/fa163e123456",
                                      value) == value
    assert xenstore_read(sim, f"/local/domain/{dom_id}/vm-data/networking/fa163e123456") == value


def test_write_record_of_a_plain_string_returns_its_json_encoding(nova: XenAPISession,
                                                                  dom_id: str) -> None:
    assert host_xenstore.write_record(nova, dom_id, "data/plain", "plain") == '"plain"'


def test_delete_record_returns_json_text_and_removes_the_path(
    sim: Simulator, nova: XenAPISession, dom_id: str,
) -> None:
    xenstore_write(sim, f"/local/domain/{dom_id}/data/doomed", "x")
    result = host_xenstore.delete_record(nova, dom_id, "data/doomed")
    assert isinstance(result, str) and json.loads(result) in ("", None)
    assert xenstore_read(sim, f"/local/domain/{dom_id}/data/doomed") is None


# ----------------------------------------------------------------------------- vm_management


def test_console_log_is_base64_of_the_zlib_compressed_log(root: Path, nova: XenAPISession,
                                                          dom_id: str) -> None:
    log = root / f"var/log/xen/guest/console.{dom_id}"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"[    0.000000] Linux version 6.1.0\r\ninstance-00000001 login: ")
    output = zlib.decompress(base64.b64decode(vm_management.get_console_log(nova, dom_id)))
    assert output.endswith(b"instance-00000001 login: ")


def test_console_log_of_a_guest_without_one_is_a_xenapi_failure(nova: XenAPISession) -> None:
    with pytest.raises(XenAPI.Failure):
        vm_management.get_console_log(nova, "4321")
