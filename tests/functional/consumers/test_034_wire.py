"""The plain-argument requests of os-xenapi 0.3.4 (reference sections 2.1 and 2.2), sent as
0.3.4's wrappers sent them: ``call_plugin(file, fn, {string: string})`` with 0.3.4's key names
(hyphenated ones included), each answered with what 0.3.4's plugin answered, validated as the
JSON form is (issue 10, item 3). The functions 0.3.4 called with a pickled ``params`` stay
refused, with an error that says so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import exception
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

from .conftest import (
    AGENT_TARBALL,
    boot_instance,
    nova_encrypt,
    nova_public_key,
    xenstore_read,
    xenstore_write,
)

ORIGINATOR = "wire-referee"
MiB = 1024 * 1024
AGENT_TIMEOUT = "5"
# {"args": [], "kwargs": {}} as Python 2's pickle protocol 0 wrote it: what a 0.3.x client on
# Python 2 put in 'params'.
PICKLED_PARAMS = "(dp0\nVargs\np1\n(lp2\nsVkwargs\np3\n(dp4\ns."


@pytest.fixture(scope="module")
def instance(x: Any) -> str:
    return boot_instance(x, "instance-00000020")


@pytest.fixture(scope="module")
def dom_id(x: Any, instance: str) -> str:
    return x.VM.get_domid(instance)


@pytest.fixture()
def kernel_vdi(sim: Simulator, x: Any) -> Iterator[str]:
    ref = x.VDI.create({"name_label": "kernel", "name_description": "",
                        "SR": x.pool.get_default_SR(x.pool.get_all()[0]),
                        "virtual_size": str(MiB), "type": "user", "sharable": False,
                        "read_only": False, "other_config": {}})
    uuid_ = x.VDI.get_uuid(ref)
    path = Path(sim.run(lambda xapi: xapi.vdis.ensure(uuid_, MiB)))
    with open(path, "r+b") as handle:
        handle.write(b"vmlinuz" * 300)
    yield ref
    x.VDI.destroy(ref)


def agent(nova: XenAPISession, fn: str, dom_id: str, **extra: str) -> Any:
    """agent.<fn> as 0.3.4's host_agent sent it; the answer must be the agent's JSON text."""
    answer = nova.call_plugin("agent.py", fn, {"id": str(uuid.uuid4()), "dom_id": dom_id,
                                               "timeout": AGENT_TIMEOUT, **extra})
    assert isinstance(answer, str)
    return json.loads(answer)


# ------------------------------------------------------------------------------------ agent


def test_plain_agent_version_answers_the_agents_json_text(nova: XenAPISession,
                                                          dom_id: str) -> None:
    assert agent(nova, "version", dom_id)["returncode"] == "0"


def test_plain_agent_key_init_answers_d0(nova: XenAPISession, dom_id: str) -> None:
    assert agent(nova, "key_init", dom_id, pub="123456789")["returncode"] == "D0"


def test_plain_agent_password_after_key_init_answers_returncode_0(nova: XenAPISession,
                                                                  dom_id: str) -> None:
    exchanged = agent(nova, "key_init", dom_id, pub=nova_public_key())
    enc_pass = nova_encrypt(exchanged["message"], "s3cret-pass\n")
    assert agent(nova, "password", dom_id, enc_pass=enc_pass)["returncode"] == "0"


@pytest.mark.parametrize(("fn", "extra"), [
    ("inject_file", {"b64_path": "L2V0Yy9ob3N0bmFtZQ==", "b64_contents": "dm0tMQo="}),
    ("resetnetwork", {}),
])
def test_plain_agent_request_answers_returncode_0(nova: XenAPISession, dom_id: str, fn: str,
                                                  extra: dict[str, str]) -> None:
    assert agent(nova, fn, dom_id, **extra)["returncode"] == "0"


def test_plain_agentupdate_answers_returncode_0(nova: XenAPISession, dom_id: str,
                                                agent_build: str) -> None:
    answer = agent(nova, "agentupdate", dom_id, url=agent_build,
                   md5sum=hashlib.md5(AGENT_TARBALL).hexdigest())
    assert answer["returncode"] == "0"


# ---------------------------------------------------------------------------------- xenhost


@pytest.mark.parametrize(("enabled", "status"), [("false", "disabled"), ("true", "enabled")])
def test_plain_set_host_enabled_answers_the_status_as_json_text(
    nova: XenAPISession, enabled: str, status: str,
) -> None:
    answer = nova.call_plugin("xenhost.py", "set_host_enabled", {"enabled": enabled})
    assert json.loads(answer) == {"status": status}


def test_plain_host_uptime_answers_uptimes_line_as_json_text(nova: XenAPISession) -> None:
    answer = json.loads(nova.call_plugin("xenhost.py", "host_uptime", {}))
    assert "load average:" in answer["uptime"]


def test_plain_host_data_answers_the_hosts_data_as_json_text(nova: XenAPISession) -> None:
    answer = json.loads(nova.call_plugin("xenhost.py", "host_data", {}))
    assert answer["host_uuid"] == nova.host_uuid


def test_plain_set_config_then_get_config_with_a_params_object(nova: XenAPISession) -> None:
    stored = nova.call_plugin("xenhost.py", "set_config",
                              {"params": json.dumps({"key": "nova-test", "value": "on"})})
    answer = nova.call_plugin("xenhost.py", "get_config",
                              {"params": json.dumps({"key": "nova-test"})})
    assert (json.loads(stored), json.loads(answer)) == (None, "on")


def test_plain_get_config_of_a_missing_key_answers_the_text_none(nova: XenAPISession) -> None:
    answer = nova.call_plugin("xenhost.py", "get_config",
                              {"params": json.dumps({"key": "never-set"})})
    assert answer == '"None"'


def test_plain_iptables_config_answers_out_and_err_as_json_text(nova: XenAPISession) -> None:
    answer = json.loads(nova.call_plugin("xenhost.py", "iptables_config",
                                         {"cmd_args": json.dumps(["iptables-save"])}))
    assert "*filter" in answer["out"] and answer["err"] == ""


# --------------------------------------------------------------------------------- xenstore


def test_plain_read_record_of_a_missing_path_answers_the_text_none(nova: XenAPISession,
                                                                   dom_id: str) -> None:
    answer = nova.call_plugin("xenstore.py", "read_record",
                              {"dom_id": dom_id, "path": "data/missing",
                               "ignore_missing_path": "True"})
    assert answer == '"None"'


def test_plain_read_record_answers_a_plain_value_json_encoded(sim: Simulator,
                                                              nova: XenAPISession,
                                                              dom_id: str) -> None:
    xenstore_write(sim, f"/local/domain/{dom_id}/data/plain", "v")
    answer = nova.call_plugin("xenstore.py", "read_record",
                              {"dom_id": dom_id, "path": "data/plain",
                               "ignore_missing_path": "True"})
    assert answer == '"v"'


def test_plain_write_record_answers_the_value(sim: Simulator, nova: XenAPISession,
                                              dom_id: str) -> None:
    answer = nova.call_plugin("xenstore.py", "write_record",
                              {"dom_id": dom_id, "path": "data/x", "value": '{"k": "v"}'})
    assert answer == '{"k": "v"}'
    assert xenstore_read(sim, f"/local/domain/{dom_id}/data/x") == '{"k": "v"}'


def test_plain_delete_record_answers_an_empty_json_string(sim: Simulator, nova: XenAPISession,
                                                          dom_id: str) -> None:
    xenstore_write(sim, f"/local/domain/{dom_id}/data/gone", "x")
    answer = nova.call_plugin("xenstore.py", "delete_record",
                              {"dom_id": dom_id, "path": "data/gone"})
    assert answer == '""'
    assert xenstore_read(sim, f"/local/domain/{dom_id}/data/gone") is None


def test_plain_arguments_are_validated_as_the_json_form_naming_the_bad_one(
    nova: XenAPISession, dom_id: str,
) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        nova.call_plugin("xenstore.py", "read_record",
                         {"dom_id": dom_id, "path": "../0/name", "ignore_missing_path": "True"})
    assert info.value.argument == "path"


# ---------------------------------------------------------------------- console, config_file


def test_plain_get_console_log_answers_the_base64_text_itself(root: Path, nova: XenAPISession,
                                                              dom_id: str) -> None:
    log = root / f"var/log/xen/guest/console.{dom_id}"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"login: ")
    answer = nova.call_plugin("console.py", "get_console_log", {"dom_id": dom_id})
    assert zlib.decompress(base64.b64decode(answer)) == b"login: "


def test_plain_get_val_answers_the_settings_text(root: Path, nova: XenAPISession) -> None:
    conf = root / "etc/xapi.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("# xapi.conf\nrelax-xsm-sr-check = true\n")
    answer = nova.call_plugin("config_file.py", "get_val", {"key": "relax-xsm-sr-check"})
    assert answer == "true"


# ----------------------------------------------------------------------------------- kernel


def test_plain_copy_vdi_with_hyphenated_keys_answers_the_file_name(
    root: Path, x: Any, nova: XenAPISession, kernel_vdi: str,
) -> None:
    answer = nova.call_plugin("kernel.py", "copy_vdi", {"vdi-ref": kernel_vdi,
                                                        "image-size": "700",
                                                        "cached-image": "wire-kernel"})
    assert answer == f"/boot/guest/{x.VDI.get_uuid(kernel_vdi)}"
    assert (root / "boot/guest/wire-kernel").read_bytes() == (b"vmlinuz" * 300)[:700]


def test_plain_create_kernel_ramdisk_answers_the_new_file_name(
    root: Path, nova: XenAPISession, kernel_vdi: str,
) -> None:
    nova.call_plugin("kernel.py", "copy_vdi", {"vdi-ref": kernel_vdi, "image-size": "64",
                                               "cached-image": "wire-cached"})
    new = "0c9b8a7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
    answer = nova.call_plugin("kernel.py", "create_kernel_ramdisk",
                              {"cached-image": "wire-cached", "new-image-uuid": new})
    assert answer == f"/boot/guest/{new}" and (root / "boot/guest" / new).exists()


def test_plain_create_kernel_ramdisk_without_a_cached_image_answers_empty_text(
    nova: XenAPISession,
) -> None:
    answer = nova.call_plugin("kernel.py", "create_kernel_ramdisk",
                              {"cached-image": "never-cached",
                               "new-image-uuid": "1d2c3b4a-5f6e-4d7c-8b9a-0f1e2d3c4b5a"})
    assert answer == ""


def test_plain_remove_kernel_ramdisk_answers_ok(root: Path, nova: XenAPISession,
                                               kernel_vdi: str) -> None:
    nova.call_plugin("kernel.py", "copy_vdi", {"vdi-ref": kernel_vdi, "image-size": "64",
                                               "cached-image": "wire-doomed"})
    answer = nova.call_plugin("kernel.py", "remove_kernel_ramdisk",
                              {"kernel-file": "/boot/guest/wire-doomed"})
    assert answer == "ok" and not (root / "boot/guest/wire-doomed").exists()


def test_plain_copy_vdi_refuses_a_bad_image_size_naming_it(nova: XenAPISession,
                                                           kernel_vdi: str) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        nova.call_plugin("kernel.py", "copy_vdi", {"vdi-ref": kernel_vdi,
                                                   "image-size": "lots"})
    assert info.value.argument in ("image-size", "image_size")
    assert "not a plugin argument" not in str(info.value.details)  # refused for its value


# ----------------------------------------------------------------------------------- pickle


@pytest.mark.parametrize(("plugin", "fn"), [
    ("bandwidth.py", "fetch_all_bandwidth"), ("dom0_plugin_version.py", "get_version"),
    ("xenhost.py", "get_pci_device_details"), ("partition_utils.py", "wait_for_dev"),
])
def test_pickled_params_are_refused_saying_pickle_is_not_spoken(nova: XenAPISession,
                                                                plugin: str, fn: str) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        nova.call_plugin(plugin, fn, {"params": PICKLED_PARAMS})
    assert info.value.argument == "params"
    assert "pickle" in str(info.value.details)
