"""Ceilometer's XenAPI inspector (ceilometer/compute/virt/xenapi/inspector.py) against running
instances: the VM found by name, CPU and memory from ``VM.query_data_source`` (``cpu<N>`` for
each of ``int(VM.get_VCPUs_max)`` vCPUs, ``memory`` in bytes, ``memory_internal_free`` in KiB,
a ``XenAPI.Failure`` without PV tools), vNIC counters from ``bandwidth.fetch_all_bandwidth``
indexed ``bw_all[VM.get_domid(vm)][VIF.get_record(vif)['device']]``, disk rates from
``vbd_<device>_read`` / ``_write`` (issue 10, items 6 and 7).

Data source names are XAPI's (xcp-rrdd's VM data sources); every value goes through ``float``
in Ceilometer, and XAPI's API types them as floats.
"""

from __future__ import annotations

from typing import Any

import pytest

from os_xenapi.client import XenAPI
from os_xenapi.client.session import XenAPISession

from .conftest import NO_TOOLS_TEMPLATE, boot_instance

ORIGINATOR = "ceilometer-referee"
INSTANCE = "instance-0000000a"
KiB = 1024


@pytest.fixture(scope="module")
def instance(x: Any) -> str:
    return boot_instance(x, INSTANCE, vifs=2)


@pytest.fixture(scope="module")
def no_tools_instance(x: Any) -> str:
    return boot_instance(x, "instance-0000000b", template=NO_TOOLS_TEMPLATE)


def lookup_by_name(session: XenAPISession, name: str) -> str:
    """Ceilometer's _lookup_by_name: the one VM of that name."""
    refs = session.VM.get_by_name_label(name)
    assert len(refs) == 1, refs
    return refs[0]


# ---------------------------------------------------------------------------- the instance


def test_lookup_by_name_finds_the_instances_one_vm(ceilometer: XenAPISession,
                                                   instance: str) -> None:
    assert lookup_by_name(ceilometer, INSTANCE) == instance


def test_lookup_of_an_unknown_name_finds_no_vm(ceilometer: XenAPISession) -> None:
    assert ceilometer.VM.get_by_name_label("instance-deadbeef") == []


def test_vcpus_max_is_the_vcpu_count_as_a_string(ceilometer: XenAPISession,
                                                 instance: str) -> None:
    vcpus = ceilometer.VM.get_VCPUs_max(lookup_by_name(ceilometer, INSTANCE))
    assert isinstance(vcpus, str) and int(vcpus) > 0


# -------------------------------------------------------------------------- CPU and memory


def test_cpu_data_source_of_each_vcpu_is_a_float_between_0_and_1(ceilometer: XenAPISession,
                                                                 instance: str) -> None:
    vm = lookup_by_name(ceilometer, INSTANCE)
    values = [ceilometer.VM.query_data_source(vm, f"cpu{index}")
              for index in range(int(ceilometer.VM.get_VCPUs_max(vm)))]
    assert all(isinstance(value, float) and 0.0 <= value <= 1.0 for value in values), values


def test_memory_data_source_is_the_vms_memory_in_bytes(ceilometer: XenAPISession,
                                                       instance: str) -> None:
    vm = lookup_by_name(ceilometer, INSTANCE)
    total = ceilometer.VM.query_data_source(vm, "memory")
    assert isinstance(total, float)
    assert 0 < total <= float(ceilometer.VM.get_memory_static_max(vm))


def test_memory_internal_free_is_kib_within_the_vms_memory(ceilometer: XenAPISession,
                                                           instance: str) -> None:
    vm = lookup_by_name(ceilometer, INSTANCE)
    total = ceilometer.VM.query_data_source(vm, "memory")
    free = ceilometer.VM.query_data_source(vm, "memory_internal_free")
    assert isinstance(free, float)
    assert 0 <= free * KiB < total


def test_memory_internal_free_without_pv_tools_is_a_xenapi_failure(
    ceilometer: XenAPISession, no_tools_instance: str,
) -> None:
    with pytest.raises(XenAPI.Failure) as info:
        ceilometer.VM.query_data_source(no_tools_instance, "memory_internal_free")
    assert info.value.details[0] != "MESSAGE_METHOD_UNKNOWN"  # refused for the source, not the call


def test_memory_data_source_without_pv_tools_is_still_there(
    ceilometer: XenAPISession, no_tools_instance: str,
) -> None:
    assert ceilometer.VM.query_data_source(no_tools_instance, "memory") > 0


# ------------------------------------------------------------------------------------ vNICs


def test_bandwidth_is_indexed_by_the_domid_and_each_vifs_device(ceilometer: XenAPISession,
                                                               instance: str) -> None:
    vm = lookup_by_name(ceilometer, INSTANCE)
    dom_id = ceilometer.VM.get_domid(vm)
    bw_all = ceilometer.call_plugin_serialized("bandwidth", "fetch_all_bandwidth")
    devices = [ceilometer.VIF.get_record(vif)["device"] for vif in ceilometer.VM.get_VIFs(vm)]
    counters = [bw_all[dom_id][device] for device in devices]
    assert sorted(devices) == ["0", "1"]
    assert all(isinstance(c["bw_in"], int) and isinstance(c["bw_out"], int)
               for c in counters), counters


def test_vif_record_names_the_interface_by_uuid_and_mac(ceilometer: XenAPISession,
                                                        instance: str) -> None:
    vif = ceilometer.VM.get_VIFs(lookup_by_name(ceilometer, INSTANCE))[0]
    record = ceilometer.VIF.get_record(vif)
    assert record["uuid"] and record["MAC"].count(":") == 5


# ------------------------------------------------------------------------------------ disks


def test_disk_rates_of_each_vbd_device_are_floats(ceilometer: XenAPISession,
                                                  instance: str) -> None:
    vm = lookup_by_name(ceilometer, INSTANCE)
    devices = [ceilometer.VBD.get_record(vbd)["device"] for vbd in ceilometer.VM.get_VBDs(vm)]
    rates = [ceilometer.VM.query_data_source(vm, f"vbd_{device}_{way}")
             for device in devices for way in ("read", "write")]
    assert devices and all(isinstance(rate, float) and rate >= 0 for rate in rates), rates
