"""Nova's use of the session itself (nova/virt/xenapi: driver, vm_utils, fake.py): the attributes
it reads and sets, the helpers it calls and the errors it tells apart (issue 10, item 2, and the
parts of 4.4 that were the same as 0.3.4's and must stay so)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from os_xenapi.client import objects
from os_xenapi.client import session as session_module
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

from .conftest import consumer_session

ORIGINATOR = "nova-session-referee"


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


@pytest.fixture()
def dom0_vbd(x: Any) -> Any:
    """A VBD of a fresh 1 MiB VDI on dom0, unplugged, as Nova's vdi_attached makes one for its
    own VM; destroyed with its VDI afterwards."""
    host = x.host.get_all()[0]
    dom0 = x.host.get_control_domain(host)
    vdi = x.VDI.create({"name_label": "nova-attach", "name_description": "",
                        "SR": x.pool.get_default_SR(x.pool.get_all()[0]),
                        "virtual_size": str(1 << 20), "type": "user", "sharable": False,
                        "read_only": False, "other_config": {}})
    vbd = x.VBD.create({"VM": dom0, "VDI": vdi, "userdevice": "autodetect", "bootable": False,
                        "mode": "RW", "type": "Disk", "unpluggable": True, "empty": False,
                        "other_config": {}, "qos_algorithm_type": "",
                        "qos_algorithm_params": {}})
    yield vbd, dom0
    if x.VBD.get_currently_attached(vbd):
        x.VBD.unplug(vbd)
    x.VBD.destroy(vbd)
    x.VDI.destroy(vdi)


# --------------------------------------------------------------------- construction (driver.py)


def test_nova_session_is_on_the_host_its_url_names(x: Any, nova: XenAPISession) -> None:
    assert nova.host_ref == x.host.get_all()[0]
    assert nova.host_uuid == x.host.get_uuid(nova.host_ref)
    assert nova.originator == "nova"


def test_product_and_platform_versions_are_tuples_of_ints(nova: XenAPISession) -> None:
    for version in (nova.product_version, nova.platform_version):
        assert isinstance(version, tuple) and version
        assert all(isinstance(part, int) for part in version)
    assert isinstance(nova.product_brand, str)


def test_an_http_url_is_not_a_local_connection(nova: XenAPISession) -> None:
    assert nova.is_local_connection is False


# ------------------------------------------------------------ vm_utils.ensure_correct_host


def test_host_checked_is_false_until_ensure_correct_host_sets_it(sim: Simulator) -> None:
    with consumer_session(sim, "nova") as fresh:
        assert fresh.host_checked is False
        fresh.host_checked = True
        assert fresh.host_checked is True


def test_vm_lookup_of_an_unknown_uuid_is_the_uuid_invalid_failure(nova: XenAPISession) -> None:
    with pytest.raises(nova.XenAPI.Failure) as info:
        nova.call_xenapi("VM.get_by_uuid", "7c6f8a61-2d1b-4a4e-9d0f-0b8f4c2e9a11")
    assert info.value.details[0] == "UUID_INVALID"


# ------------------------------------------------------------------- plugin version (fake.py)


def test_plugin_required_version_is_one_the_dom0_plugins_satisfy(nova: XenAPISession) -> None:
    required = XenAPISession.PLUGIN_REQUIRED_VERSION
    found = nova.call_plugin_serialized("dom0_plugin_version.py", "get_version")
    assert isinstance(required, str)
    assert _version(found)[0] == _version(required)[0] and _version(found) >= _version(required)


# -------------------------------------------------------------- session helpers (fake.py)


def test_apply_session_helpers_is_importable_from_the_session_module(
    nova: XenAPISession,
) -> None:
    class Fake:
        """Nova's fake session: its own call_xenapi, with the helpers put on it."""

        def call_xenapi(self, method: str, *args: Any) -> Any:
            return nova.call_xenapi(method, *args)

    fake = Fake()
    session_module.apply_session_helpers(fake)
    assert fake.VM.get_all() == nova.call_xenapi("VM.get_all")
    assert fake.host.get_uuid(nova.host_ref) == nova.host_uuid


def test_vbd_plug_and_unplug_name_the_vm_as_a_second_argument(
    x: Any, nova: XenAPISession, dom0_vbd: Any,
) -> None:
    vbd, dom0 = dom0_vbd
    nova.VBD.plug(vbd, dom0)
    assert x.VBD.get_currently_attached(vbd) is True
    nova.VBD.unplug(vbd, dom0)
    assert x.VBD.get_currently_attached(vbd) is False


def test_objects_synchronized_makes_a_decorator_for_a_lock_name() -> None:
    @objects.synchronized("nova-test-lock")
    def doubled(value: int) -> int:
        return 2 * value

    assert doubled(21) == 42


def test_vbd_plug_waits_for_the_vms_lock_held_under_synchronized(
    x: Any, nova: XenAPISession, dom0_vbd: Any,
) -> None:
    vbd, dom0 = dom0_vbd
    done = threading.Event()

    def plug() -> None:
        nova.VBD.plug(vbd, dom0)
        done.set()

    @objects.synchronized("vbd-" + dom0)
    def while_holding_the_vms_lock() -> bool:
        plugger = threading.Thread(target=plug, daemon=True)
        plugger.start()
        # Only a bounded wait can show that something does not happen: an unserialised plug
        # answers in milliseconds.
        return done.wait(0.5)

    assert while_holding_the_vms_lock() is False
    assert done.wait(20), "VBD.plug did not go ahead once the lock was released"
    assert x.VBD.get_currently_attached(vbd) is True


# ------------------------------------------------------------- records, tasks, session ids


def test_get_rec_of_an_object_that_is_gone_is_none(x: Any, nova: XenAPISession) -> None:
    task = x.task.create("gone", "")
    x.task.destroy(task)
    assert nova.get_rec("task", task) is None


def test_get_all_refs_and_recs_gives_ref_record_pairs(x: Any, nova: XenAPISession) -> None:
    pairs = dict(nova.get_all_refs_and_recs("host"))
    assert set(pairs) == set(x.host.get_all())
    assert pairs[nova.host_ref]["uuid"] == nova.host_uuid


def test_custom_task_is_named_for_nova_and_destroyed_after(x: Any,
                                                           nova: XenAPISession) -> None:
    with nova.custom_task("snapshot", "for an image") as task:
        assert x.task.get_name_label(task) == "nova-snapshot"
    assert task not in x.task.get_all()


def test_get_session_id_is_a_live_session_of_nova(x: Any, nova: XenAPISession) -> None:
    session_id = nova.get_session_id()
    assert session_id.startswith("OpaqueRef:")
    assert x.session.get_originator(session_id) == "nova"


def test_is_xsm_sr_check_relaxed_is_a_bool(nova: XenAPISession) -> None:
    assert isinstance(nova.is_xsm_sr_check_relaxed(), bool)
