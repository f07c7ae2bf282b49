"""The client's host-facing plugin calls (host_management, host_network) end to end:
XenAPISession against a simulator that runs os-xenapi's own dom0 plugins, with the simulated
dom0's files and its stand-in ovs-vsctl, ip and brctl (dom0env/bin), which keep their state in
the dom0 root and never touch the real host's network."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import XenAPI, exception, host_management, host_network
from os_xenapi.client.session import XenAPISession

ORIGINATOR = "dom0-host-tests"


def network(root: Path) -> dict[str, Any]:
    """The stand-in commands' network state in the dom0 root."""
    path = root / "var/lib/simnet.json"
    return json.loads(path.read_text()) if path.exists() else {}


def commands_run(root: Path) -> list[list[str]]:
    path = root / "var/log/simnet-commands.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def add_bridge(session: XenAPISession, bridge: str) -> None:
    """Make an OVS bridge through netwrap, as Neutron's agent does (os-xenapi has no wrapper)."""
    done = session.call_plugin_serialized("netwrap", "run_command",
                                          cmd=["ovs-vsctl", "--may-exist", "add-br", bridge])
    assert done["returncode"] == 0, done


# --------------------------------------------------------------------------- host_management


def test_host_uptime_is_json_text_of_what_uptime_prints(x: Any, session: XenAPISession) -> None:
    booted = int(time.time()) - 90062  # 1 day, 1:01:02 ago, in whole seconds as XAPI writes it
    x.host.remove_from_other_config(session.host_ref, "boot_time")
    x.host.add_to_other_config(session.host_ref, "boot_time", f"{booted}.")
    text = host_management.get_host_uptime(session)
    assert isinstance(text, str)
    uptime = json.loads(text)  # as Nova's _call_host_management does
    assert list(uptime) == ["uptime"]  # 0.3.4's one key
    assert " up 1 day,  1:01,  load average: " in uptime["uptime"]
    assert uptime["uptime"].endswith("\n")  # uptime(1)'s line, as 0.3.4 returned its stdout


def test_a_default_simulator_has_an_uptime(session: XenAPISession) -> None:
    assert "load average:" in json.loads(host_management.get_host_uptime(session))["uptime"]


def test_host_data_is_json_text_of_the_hosts_state_with_0_3_4s_types(
    session: XenAPISession,
) -> None:
    text = host_management.get_host_data(session)
    assert isinstance(text, str)
    data = json.loads(text)
    assert data["host_uuid"] == session.host_uuid
    assert data["enabled"] == "true"  # xe's word, as 0.3.4's host-param-list parse gave it
    cpu = data["host_cpu_info"]
    assert isinstance(cpu["cpu_count"], int) and isinstance(cpu["family"], int)
    assert isinstance(cpu["socket_count"], str) and isinstance(cpu["speed"], str)
    assert isinstance(data["host_memory"]["total"], int)
    assert isinstance(data["host_capabilities"], list)
    assert isinstance(data["host_other-config"], dict)


def test_set_host_enabled_disables_and_enables_the_host(session: XenAPISession) -> None:
    assert host_management.set_host_enabled(session, "false") == '{"status": "disabled"}'
    assert session.call_xenapi("host.get_enabled", session.host_ref) is False
    assert json.loads(host_management.get_host_data(session))["enabled"] == "false"
    assert host_management.set_host_enabled(session, "true") == '{"status": "enabled"}'
    assert json.loads(host_management.set_host_enabled(session, True)) == {"status": "enabled"}


def test_set_host_enabled_refuses_a_non_boolean_naming_enabled(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        host_management.set_host_enabled(session, "maybe")
    assert info.value.argument == "enabled"


def test_pci_type_of_a_virtual_function(root: Path, session: XenAPISession) -> None:
    (root / "sys/bus/pci/devices/0000:81:00.1/physfn").mkdir(parents=True)
    assert host_management.get_pci_type(session, "81:00.1") == "type-VF"


def test_pci_type_of_a_missing_device_is_not_found(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginNotFound):
        host_management.get_pci_type(session, "0000:02:00.0")


def test_pci_type_refuses_a_path_naming_pci_device(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        host_management.get_pci_type(session, "../../../../etc")
    assert info.value.argument == "pci_device"


def test_pci_type_of_the_simulated_hosts_devices(session: XenAPISession) -> None:
    assert host_management.get_pci_type(session, "0000:01:00.0") == "type-PF"
    assert host_management.get_pci_type(session, "02:10.0") == "type-VF"
    assert host_management.get_pci_type(session, "00:1f.2") == "type-PCI"


def test_pci_device_details_lists_the_simulated_hosts_devices(session: XenAPISession) -> None:
    details = host_management.get_pci_device_details(session)
    assert "Slot:\t01:00.0\nClass:\t0200\nVendor:\t8086\nDevice:\t10fb\n" in details
    assert "Driver:\tixgbevf" in details


# ------------------------------------------------------------------------------ host_network


def test_fetch_all_bandwidth_counts_the_vifs_of_running_vms(
    x: Any, session: XenAPISession,
) -> None:
    template = x.VM.get_by_name_label("Debian Bookworm 12")[0]
    vm = x.VM.clone(template, "bandwidth")
    x.VM.provision(vm)
    network = x.network.get_all()[0]
    x.VIF.create({"VM": vm, "network": network, "device": "1", "MAC": "", "MTU": "1500",
                  "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
    assert x.VM.get_domid(vm) not in host_network.fetch_all_bandwidth(session)
    x.VM.start(vm, False, False)
    try:
        # Ceilometer indexes it with the string domid and the VIF's device, as 0.3.4 gave them
        usage = host_network.fetch_all_bandwidth(session)[x.VM.get_domid(vm)]
        assert sorted(usage) == ["1"]
        assert sorted(usage["1"]) == ["bw_in", "bw_out"]
        assert all(type(count) is int and count >= 0 for count in usage["1"].values())
    finally:
        x.VM.hard_shutdown(vm)
        x.VM.destroy(vm)


def test_ovs_del_br_of_a_missing_bridge_is_no_error(root: Path,
                                                   session: XenAPISession) -> None:
    assert host_network.ovs_del_br(session, "br-int") is None  # --if-exists: no error
    assert "br-int" not in network(root).get("bridges", {})
    run_in_dom0 = commands_run(root)
    assert run_in_dom0[-1] == ["ovs-vsctl", "--", "--if-exists", "del-br", "br-int"]


def test_ovs_create_port_on_a_missing_bridge_is_command_failed(session: XenAPISession) -> None:
    with pytest.raises(exception.Dom0PluginError) as info:
        host_network.ovs_create_port(session, "br-none", "tap1", "port-1",
                                     "fe:ff:ff:ff:ff:01", "active")
    assert info.value.code == "OS_XENAPI_COMMAND_FAILED"
    assert "no bridge named br-none" in info.value.details[-1]


def test_ovs_add_and_del_port_change_the_bridges_ports(root: Path,
                                                       session: XenAPISession) -> None:
    add_bridge(session, "br-test")
    assert host_network.ovs_add_port(session, "br-test", "vif9.0") is None
    assert network(root)["bridges"]["br-test"]["ports"] == ["vif9.0"]
    assert host_network.ovs_del_port(session, "br-test", "vif9.0") is None
    assert network(root)["bridges"]["br-test"]["ports"] == []


def test_ovs_create_port_sets_the_interfaces_external_ids(root: Path,
                                                          session: XenAPISession) -> None:
    add_bridge(session, "br-int")
    assert host_network.ovs_create_port(session, "br-int", "tap7", "port-7",
                                        "fe:ff:ff:ff:ff:07", "active") is None
    assert network(root)["interfaces"]["tap7"]["external_ids"] == {
        "iface-id": "port-7", "iface-status": "active", "attached-mac": "fe:ff:ff:ff:ff:07",
        "xs-vif-uuid": "port-7"}


def test_brctl_bridge_gets_an_interface_and_loses_it(root: Path,
                                                     session: XenAPISession) -> None:
    results = [host_network.brctl_add_br(session, "qbr1"),
               host_network.ip_link_add_veth_pair(session, "qvb1", "qvo1"),
               host_network.brctl_set_fd(session, "qbr1", 0),
               host_network.brctl_set_stp(session, "qbr1", "off"),
               host_network.brctl_add_if(session, "qbr1", "qvb1")]
    assert results == [None] * 5  # as in 0.3.4
    assert network(root)["links"]["qvb1"]["master"] == "qbr1"
    assert network(root)["links"]["qbr1"]["fd"] == 0
    assert host_network.brctl_del_if(session, "qbr1", "qvb1") is None
    assert host_network.brctl_del_br(session, "qbr1") is None
    assert "qbr1" not in network(root)["links"]
    assert network(root)["links"]["qvb1"]["master"] is None


def test_ip_link_get_dev_of_an_existing_device_is_none(root: Path,
                                                       session: XenAPISession) -> None:
    host_network.ip_link_add_veth_pair(session, "veth-a", "veth-b")
    assert host_network.ip_link_set_dev(session, "veth-a", "up") is None
    assert host_network.ip_link_set_promisc(session, "veth-a", "on") is None
    assert host_network.ip_link_get_dev(session, "veth-a") is None  # 0.3.4 dropped the text
    assert commands_run(root)[-1] == ["ip", "link", "show", "veth-a"]
    link = network(root)["links"]["veth-a"]
    assert (link["peer"], link["up"], link["promisc"]) == ("veth-b", True, True)


def test_ip_link_del_dev_removes_the_veth_pair(root: Path, session: XenAPISession) -> None:
    host_network.ip_link_add_veth_pair(session, "veth-c", "veth-d")
    assert host_network.ip_link_del_dev(session, "veth-c") is None
    assert not {"veth-c", "veth-d"} & set(network(root)["links"])


def test_ip_link_of_a_missing_device_is_command_failed(session: XenAPISession) -> None:
    with pytest.raises(XenAPI.Failure) as info:  # what Nova's vif._device_exists catches
        host_network.ip_link_get_dev(session, "nosuchdev")
    assert isinstance(info.value, exception.Dom0PluginError)
    assert info.value.code == "OS_XENAPI_COMMAND_FAILED"
    assert 'Cannot find device "nosuchdev"' in info.value.details[-1]


@pytest.mark.parametrize("name", ["br0; reboot", "$(id)", "-h", "a" * 16, "../eth0", "br 0"])
def test_hostile_interface_name_is_refused_and_nothing_runs(
    root: Path, session: XenAPISession, name: str,
) -> None:
    before = commands_run(root)
    with pytest.raises(exception.PluginInvalidArgument) as info:
        host_network.brctl_add_br(session, name)
    assert info.value.argument == "args"
    assert commands_run(root) == before


def test_stp_option_other_than_on_off_is_an_invalid_argument(session: XenAPISession) -> None:
    with pytest.raises(exception.PluginInvalidArgument) as info:
        host_network.brctl_set_stp(session, "qbr1", "yes")
    assert info.value.argument == "args"
    assert "option" in info.value.details[3]
