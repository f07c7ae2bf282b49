"""VDI, VBD and VIF records and their plug/unplug rules, through the official XenAPI SDK against a
running simulator (shared/xapi/PROTOCOL.md section 2.3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import XenAPI

from os_xenapi.simulator import Simulator

NULL = "OpaqueRef:NULL"
GiB = 1024**3


@pytest.fixture(scope="module")
def x() -> Iterator[Any]:
    with Simulator(auth_failure_delay=0) as sim:
        session = XenAPI.Session(sim.url)
        session.xenapi.login_with_password(sim.username, sim.password, "1.0", "storage-test")
        yield session.xenapi
        session.xenapi.session.logout()


def failure(call: Any, *args: Any) -> list[str]:
    with pytest.raises(XenAPI.Failure) as info:
        call(*args)
    return info.value.details


def default_sr(x: Any) -> str:
    return x.pool.get_default_SR(x.pool.get_all()[0])


def network(x: Any) -> str:
    return next(ref for ref, rec in x.network.get_all_records().items()
                if rec["bridge"] == "xenbr0")


def vdi_record(sr: str, size: int = GiB, **overrides: Any) -> dict[str, Any]:
    record = {"name_label": "data", "name_description": "", "SR": sr, "virtual_size": str(size),
              "type": "user", "sharable": False, "read_only": False, "other_config": {}}
    record.update(overrides)
    return record


def vbd_record(vm: str, vdi: str, userdevice: str = "autodetect", **overrides: Any) -> dict:
    record = {"VM": vm, "VDI": vdi, "userdevice": userdevice, "bootable": False, "mode": "RW",
              "type": "Disk", "empty": False, "other_config": {}, "qos_algorithm_type": "",
              "qos_algorithm_params": {}}
    record.update(overrides)
    return record


def vif_record(vm: str, net: str, device: str = "1", mac: str = "", **overrides: Any) -> dict:
    record = {"device": device, "network": net, "VM": vm, "MAC": mac, "MTU": "1500",
              "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}}
    record.update(overrides)
    return record


@pytest.fixture
def vm(x: Any) -> Iterator[str]:
    """A halted Debian VM with its system disk on userdevice 0 and a VIF on device 0."""
    ref = x.VM.clone(x.VM.get_by_name_label("Debian Bookworm 12")[0], "storage vm")
    other = x.VM.get_other_config(ref)
    other["disks"] = other["disks"].replace('sr=""', f'sr="{x.SR.get_uuid(default_sr(x))}"')
    x.VM.set_other_config(ref, other)
    x.VM.provision(ref)
    x.VIF.create(vif_record(ref, network(x), device="0"))
    yield ref
    if x.VM.get_power_state(ref) != "Halted":
        x.VM.hard_shutdown(ref)
    vdis = [x.VBD.get_VDI(v) for v in x.VM.get_VBDs(ref) if not x.VBD.get_empty(v)]
    x.VM.destroy(ref)
    for vdi in vdis:
        if vdi in x.VDI.get_all():
            x.VDI.destroy(vdi)


@pytest.fixture
def vdi(x: Any) -> Iterator[str]:
    ref = x.VDI.create(vdi_record(default_sr(x)))
    yield ref
    if ref in x.VDI.get_all():
        for vbd in x.VDI.get_VBDs(ref):
            if x.VBD.get_currently_attached(vbd):
                x.VBD.unplug(vbd)
        x.VDI.destroy(ref)


# -- VDI ---------------------------------------------------------------------------------------------

def test_vdi_create_adds_a_managed_vdi_to_the_sr(x: Any) -> None:
    sr = default_sr(x)
    allocated = int(x.SR.get_virtual_allocation(sr))
    ref = x.VDI.create(vdi_record(sr, 2 * GiB))
    record = x.VDI.get_record(ref)
    assert (record["SR"], int(record["virtual_size"]), record["managed"]) == (sr, 2 * GiB, True)
    assert record["location"] and ref in x.SR.get_VDIs(sr)
    assert int(x.SR.get_virtual_allocation(sr)) == allocated + 2 * GiB
    assert "destroy" in record["allowed_operations"]
    x.VDI.destroy(ref)
    assert ref not in x.SR.get_VDIs(sr)
    assert int(x.SR.get_virtual_allocation(sr)) == allocated


def test_vdi_create_in_an_unknown_sr_is_refused(x: Any) -> None:
    assert failure(x.VDI.create, vdi_record("OpaqueRef:nope")) == [
        "HANDLE_INVALID", "SR", "OpaqueRef:nope"]


def test_vdi_create_with_a_negative_size_is_refused(x: Any) -> None:
    assert failure(x.VDI.create, vdi_record(default_sr(x), -1)) == [
        "INVALID_VALUE", "virtual_size", "-1"]


def test_vdi_create_without_a_required_field_is_an_internal_error(x: Any) -> None:
    record = vdi_record(default_sr(x))
    del record["virtual_size"]
    assert failure(x.VDI.create, record) == [
        "INTERNAL_ERROR", 'Server_helpers.Dispatcher_FieldNotFound("virtual_size")']


def test_vdi_destroy_while_attached_is_refused(x: Any, vm: str) -> None:
    x.VM.start(vm, False, False)
    system = x.VBD.get_VDI(x.VM.get_VBDs(vm)[0])
    assert failure(x.VDI.destroy, system) == ["VDI_IN_USE", system, "destroy"]
    assert "destroy" not in x.VDI.get_allowed_operations(system)


def test_vdi_destroy_removes_its_detached_vbds(x: Any, vm: str, vdi: str) -> None:
    vbd = x.VBD.create(vbd_record(vm, vdi))
    x.VDI.destroy(vdi)
    assert vbd not in x.VBD.get_all()
    assert vbd not in x.VM.get_VBDs(vm)


# -- VBD.create ----------------------------------------------------------------------------------------

def test_vbd_create_autodetect_takes_the_next_free_device(x: Any, vm: str, vdi: str) -> None:
    vbd = x.VBD.create(vbd_record(vm, vdi))
    record = x.VBD.get_record(vbd)
    assert (record["userdevice"], record["currently_attached"], record["device"]) == (
        "1", False, "")
    assert vbd in x.VM.get_VBDs(vm) and vbd in x.VDI.get_VBDs(vdi)


def test_vbd_create_on_a_taken_device_is_refused(x: Any, vm: str, vdi: str) -> None:
    assert failure(x.VBD.create, vbd_record(vm, vdi, "0")) == ["DEVICE_ALREADY_EXISTS", "0"]


def test_vbd_create_device_names_clash_with_numbers(x: Any, vm: str, vdi: str) -> None:
    assert failure(x.VBD.create, vbd_record(vm, vdi, "xvda")) == [
        "DEVICE_ALREADY_EXISTS", "xvda"]


def test_vbd_create_with_a_nonsense_device_is_refused(x: Any, vm: str, vdi: str) -> None:
    assert failure(x.VBD.create, vbd_record(vm, vdi, "disk0")) == ["INVALID_DEVICE", "disk0"]


def test_vbd_create_for_an_unknown_vm_is_refused(x: Any, vdi: str) -> None:
    assert failure(x.VBD.create, vbd_record("OpaqueRef:gone", vdi)) == [
        "HANDLE_INVALID", "VM", "OpaqueRef:gone"]


def test_vbd_create_for_an_unknown_vdi_is_refused(x: Any, vm: str) -> None:
    assert failure(x.VBD.create, vbd_record(vm, "OpaqueRef:gone")) == [
        "HANDLE_INVALID", "VDI", "OpaqueRef:gone"]


def test_vbd_create_of_an_empty_cd_needs_no_vdi(x: Any, vm: str) -> None:
    vbd = x.VBD.create(vbd_record(vm, NULL, "3", type="CD", mode="RO", empty=True))
    assert (x.VBD.get_VDI(vbd), x.VBD.get_empty(vbd)) == (NULL, True)


def test_vbd_create_of_an_empty_disk_is_refused(x: Any, vm: str) -> None:
    assert failure(x.VBD.create, vbd_record(vm, NULL, empty=True)) == [
        "VBD_NOT_REMOVABLE_MEDIA", "in constructor"]


def test_vbd_create_of_a_writable_cd_is_refused(x: Any, vm: str) -> None:
    assert failure(x.VBD.create, vbd_record(vm, NULL, type="CD", empty=True)) == [
        "VBD_CDS_MUST_BE_READONLY"]


# -- VBD plug, unplug, destroy -------------------------------------------------------------------------

def test_vbd_plug_needs_a_running_vm(x: Any, vm: str, vdi: str) -> None:
    vbd = x.VBD.create(vbd_record(vm, vdi))
    assert failure(x.VBD.plug, vbd) == ["VM_BAD_POWER_STATE", vm, "running", "halted"]


def test_vbd_plug_attaches_under_its_device_name(x: Any, vm: str, vdi: str) -> None:
    x.VM.start(vm, False, False)
    vbd = x.VBD.create(vbd_record(vm, vdi))
    x.VBD.plug(vbd)
    assert (x.VBD.get_currently_attached(vbd), x.VBD.get_device(vbd)) == (True, "xvdb")


def test_vbd_plug_twice_is_refused(x: Any, vm: str, vdi: str) -> None:
    x.VM.start(vm, False, False)
    vbd = x.VBD.create(vbd_record(vm, vdi))
    x.VBD.plug(vbd)
    assert failure(x.VBD.plug, vbd) == ["DEVICE_ALREADY_ATTACHED", vbd]


@pytest.mark.parametrize("op", ["unplug", "unplug_force"])
def test_vbd_unplug_detaches_and_twice_is_refused(x: Any, vm: str, vdi: str, op: str) -> None:
    x.VM.start(vm, False, False)
    vbd = x.VBD.create(vbd_record(vm, vdi))
    x.VBD.plug(vbd)
    getattr(x.VBD, op)(vbd)
    assert x.VBD.get_currently_attached(vbd) is False
    assert failure(getattr(x.VBD, op), vbd) == ["DEVICE_ALREADY_DETACHED", vbd]


def test_vbd_unplug_of_a_halted_vm_is_refused(x: Any, vm: str) -> None:
    vbd = x.VM.get_VBDs(vm)[0]
    x.VBD.set_unpluggable(vbd, True)
    assert failure(x.VBD.unplug, vbd) == ["VM_BAD_POWER_STATE", vm, "running", "halted"]


def test_system_disk_is_not_unpluggable(x: Any, vm: str) -> None:
    x.VM.start(vm, False, False)
    vbd = x.VM.get_VBDs(vm)[0]
    assert failure(x.VBD.unplug, vbd) == ["VBD_NOT_UNPLUGGABLE", vbd]


def test_vbd_destroy_while_attached_is_refused(x: Any, vm: str) -> None:
    x.VM.start(vm, False, False)
    vbd = x.VM.get_VBDs(vm)[0]
    reason = f"VBD '{x.VBD.get_uuid(vbd)}' still attached to '{x.VM.get_uuid(vm)}'"
    assert failure(x.VBD.destroy, vbd) == ["OPERATION_NOT_ALLOWED", reason]


def test_vbd_destroy_of_a_detached_vbd_keeps_the_vdi(x: Any, vm: str, vdi: str) -> None:
    vbd = x.VBD.create(vbd_record(vm, vdi))
    x.VBD.destroy(vbd)
    assert vbd not in x.VM.get_VBDs(vm)
    assert x.VDI.get_VBDs(vdi) == []


def test_vdi_in_use_by_a_running_vm_cannot_be_plugged_elsewhere(x: Any, vm: str, vdi: str) -> None:
    other = x.VM.clone(vm, "other")
    try:
        x.VM.start(vm, False, False)
        x.VM.start(other, False, False)
        x.VBD.plug(x.VBD.create(vbd_record(vm, vdi)))
        second = x.VBD.create(vbd_record(other, vdi))
        assert failure(x.VBD.plug, second) == ["VDI_IN_USE", vdi]
    finally:
        x.VM.hard_shutdown(other)
        clone_disks = [x.VBD.get_VDI(v) for v in x.VM.get_VBDs(other)
                       if x.VBD.get_type(v) == "Disk" and x.VBD.get_VDI(v) != vdi]
        x.VM.destroy(other)
        for disk in clone_disks:
            x.VDI.destroy(disk)


# -- VIF -----------------------------------------------------------------------------------------------

def test_vif_create_generates_a_mac_from_the_vm_seed(x: Any, vm: str) -> None:
    vif = x.VIF.create(vif_record(vm, network(x)))
    record = x.VIF.get_record(vif)
    assert record["MAC_autogenerated"] is True
    assert len(record["MAC"].split(":")) == 6
    assert record["currently_attached"] is False


def test_vif_create_keeps_a_given_mac(x: Any, vm: str) -> None:
    vif = x.VIF.create(vif_record(vm, network(x), mac="02:00:00:00:00:01"))
    assert (x.VIF.get_MAC(vif), x.VIF.get_MAC_autogenerated(vif)) == ("02:00:00:00:00:01", False)


def test_vif_create_on_a_taken_device_is_refused(x: Any, vm: str) -> None:
    assert failure(x.VIF.create, vif_record(vm, network(x), device="0")) == [
        "DEVICE_ALREADY_EXISTS", "0"]


def test_vif_create_with_a_non_numeric_device_is_refused(x: Any, vm: str) -> None:
    assert failure(x.VIF.create, vif_record(vm, network(x), device="eth1")) == [
        "INVALID_DEVICE", "eth1"]


def test_vif_create_with_a_bad_mac_is_refused(x: Any, vm: str) -> None:
    assert failure(x.VIF.create, vif_record(vm, network(x), mac="not-a-mac")) == [
        "MAC_INVALID", "not-a-mac"]


def test_vif_plug_needs_a_running_vm(x: Any, vm: str) -> None:
    vif = x.VIF.create(vif_record(vm, network(x)))
    assert failure(x.VIF.plug, vif) == ["VM_BAD_POWER_STATE", vm, "running", "halted"]


def test_vif_plug_and_unplug_on_a_running_vm(x: Any, vm: str) -> None:
    x.VM.start(vm, False, False)
    vif = x.VIF.create(vif_record(vm, network(x)))
    x.VIF.plug(vif)
    assert x.VIF.get_currently_attached(vif) is True
    assert failure(x.VIF.plug, vif) == ["DEVICE_ALREADY_ATTACHED", vif]
    x.VIF.unplug(vif)
    assert x.VIF.get_currently_attached(vif) is False
    assert failure(x.VIF.unplug, vif) == ["DEVICE_ALREADY_DETACHED", vif]


def test_vif_destroy_while_attached_to_a_running_vm_is_refused(x: Any, vm: str) -> None:
    x.VM.start(vm, False, False)
    vif = x.VM.get_VIFs(vm)[0]
    assert failure(x.VIF.destroy, vif) == [
        "OPERATION_NOT_ALLOWED", "VIF currently attached to a running VM"]


def test_vif_destroy_of_a_halted_vm_removes_it(x: Any, vm: str) -> None:
    vif = x.VM.get_VIFs(vm)[0]
    x.VIF.destroy(vif)
    assert x.VM.get_VIFs(vm) == []
