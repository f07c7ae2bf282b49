"""Nova's host calls (nova/virt/xenapi/host.py, vif.py) through os-xenapi's wrappers, with their
results handled as Nova handled them (issue 10, item 1, and the host_network rows that were the
same as 0.3.4's): ``host._call_host_management`` ``json.loads`` what ``get_host_data``,
``get_host_uptime`` and ``set_host_enabled`` return; ``vif._device_exists`` relies on
``ip_link_get_dev`` raising ``XenAPI.Failure`` for a missing device; the OVS hybrid plug calls
the brctl, ip link and ovs wrappers and uses no result."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import XenAPI, host_management, host_network
from os_xenapi.client.session import XenAPISession

ORIGINATOR = "nova-host-referee"
PORT_ID = "5b0e8f1e-4c2d-4a59-9a3b-7d1f0e2c6b44"  # a Neutron port id
MAC = "fa:16:3e:12:34:56"


def call_host_management(session: XenAPISession, method: Callable[..., Any], *args: Any) -> Any:
    """Nova's host._call_host_management: the wrapper's result, decoded with json.loads."""
    return json.loads(method(session, *args))


def device_exists(session: XenAPISession, device: str) -> bool:
    """Nova's vif._device_exists: a device is there unless ip_link_get_dev raises."""
    try:
        host_network.ip_link_get_dev(session, device)
        return True
    except XenAPI.Failure:
        return False


def network_state(root: Path) -> dict[str, Any]:
    """The simulated dom0's links, bridges and OVS ports (the stand-ins' state file)."""
    return json.loads((root / "var/lib/simnet.json").read_text())


def hybrid_names(port_id: str) -> tuple[str, str, str]:
    """Nova's names for a port's Linux bridge and veth pair (qbr, qvb, qvo + 11 characters)."""
    return f"qbr{port_id[:11]}", f"qvb{port_id[:11]}", f"qvo{port_id[:11]}"


# -------------------------------------------------------------------------- host_management


def test_get_host_data_is_json_text_of_the_hosts_state(nova: XenAPISession) -> None:
    data = call_host_management(nova, host_management.get_host_data)
    assert data["host_uuid"] == nova.host_uuid
    assert isinstance(data["host_hostname"], str) and data["host_hostname"]
    assert isinstance(data["host_name-label"], str)


def test_get_host_data_gives_memory_figures_as_whole_numbers(nova: XenAPISession) -> None:
    memory = call_host_management(nova, host_management.get_host_data)["host_memory"]
    assert {key: type(memory[key]) for key in ("total", "overhead", "free", "free-computed")} \
        == dict.fromkeys(("total", "overhead", "free", "free-computed"), int)
    assert 0 < memory["free"] <= memory["total"]


def test_get_host_data_gives_the_cpu_count_as_a_whole_number(nova: XenAPISession) -> None:
    cpu_info = call_host_management(nova, host_management.get_host_data)["host_cpu_info"]
    assert isinstance(cpu_info["cpu_count"], int) and cpu_info["cpu_count"] > 0


def test_get_host_uptime_is_json_text_of_uptimes_line(nova: XenAPISession) -> None:
    uptime = call_host_management(nova, host_management.get_host_uptime)["uptime"]
    assert " up " in uptime and "load average:" in uptime


def test_set_host_enabled_false_is_json_text_saying_disabled(x: Any,
                                                             nova: XenAPISession) -> None:
    try:
        answer = call_host_management(nova, host_management.set_host_enabled, "false")
        assert answer["status"] == "disabled"
        assert x.host.get_enabled(nova.host_ref) is False
    finally:
        x.host.enable(nova.host_ref)


def test_set_host_enabled_true_is_json_text_saying_enabled(x: Any, nova: XenAPISession) -> None:
    x.host.disable(nova.host_ref)
    answer = call_host_management(nova, host_management.set_host_enabled, "true")
    assert answer["status"] == "enabled"
    assert x.host.get_enabled(nova.host_ref) is True


def test_get_pci_type_is_the_devices_type_name(nova: XenAPISession) -> None:
    assert host_management.get_pci_type(nova, "0000:01:00.0") == "type-PF"


def test_get_pci_device_details_is_lspcis_text(nova: XenAPISession) -> None:
    details = host_management.get_pci_device_details(nova)
    assert isinstance(details, str) and "Slot:\t01:00.0\n" in details


# ------------------------------------------------------------------------------ host_network


def test_ip_link_get_dev_of_a_device_that_exists_returns_none(nova: XenAPISession) -> None:
    assert host_network.ip_link_get_dev(nova, "eth0") is None


def test_ip_link_get_dev_of_a_missing_device_is_a_xenapi_failure(nova: XenAPISession) -> None:
    with pytest.raises(XenAPI.Failure):
        host_network.ip_link_get_dev(nova, "qvo0123456789")


def test_device_exists_tells_a_present_device_from_a_missing_one(nova: XenAPISession) -> None:
    assert (device_exists(nova, "eth0"), device_exists(nova, "qbr0123456789")) == (True, False)


def test_hybrid_plug_calls_return_none_and_build_bridge_veth_pair_and_ovs_port(
    root: Path, x: Any, nova: XenAPISession,
) -> None:
    bridge = x.network.get_bridge(x.network.get_all()[0])
    qbr, qvb, qvo = hybrid_names(PORT_ID)
    results = [
        host_network.brctl_add_br(nova, qbr),
        host_network.brctl_set_fd(nova, qbr, "0"),
        host_network.brctl_set_stp(nova, qbr, "off"),
        host_network.ip_link_add_veth_pair(nova, qvb, qvo),
        host_network.ip_link_set_dev(nova, qvb, "up"),
        host_network.ip_link_set_promisc(nova, qvb, "on"),
        host_network.ip_link_set_dev(nova, qvo, "up"),
        host_network.ip_link_set_promisc(nova, qvo, "on"),
        host_network.brctl_add_if(nova, qbr, qvb),
        host_network.ovs_create_port(nova, bridge, qvo, PORT_ID, MAC, "active"),
    ]
    assert results == [None] * len(results)
    assert device_exists(nova, qvb) and device_exists(nova, qvo)
    state = json.dumps(network_state(root))
    assert qbr in state and PORT_ID in state and MAC in state


def test_hybrid_unplug_calls_return_none_and_remove_what_plug_built(
    x: Any, nova: XenAPISession,
) -> None:
    bridge = x.network.get_bridge(x.network.get_all()[0])
    qbr, qvb, qvo = hybrid_names("9d3c2b1a-0f8e-4d7c-b6a5-493827161504")
    host_network.brctl_add_br(nova, qbr)
    host_network.ip_link_add_veth_pair(nova, qvb, qvo)
    host_network.brctl_add_if(nova, qbr, qvb)
    host_network.ovs_add_port(nova, bridge, qvo)
    results = [
        host_network.ovs_del_port(nova, bridge, qvo),
        host_network.brctl_del_if(nova, qbr, qvb),
        host_network.ip_link_del_dev(nova, qvb),
        host_network.brctl_del_br(nova, qbr),
    ]
    assert results == [None] * len(results)
    assert not device_exists(nova, qvb) and not device_exists(nova, qvo)
    assert not device_exists(nova, qbr)


def test_ovs_del_br_returns_none(nova: XenAPISession) -> None:
    assert host_network.ovs_del_br(nova, "br-unused") is None
