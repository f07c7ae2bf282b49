"""xenhost plugin: network_config's allow-list, iptables_config, PCI details and type, query_gc.

Commands are faked at dom0lib.commands.spawn (FakeCommands records every argument list);
each test pins the exact command line a call runs, or that a refused call runs nothing.

Plugin files are imported in-process with a stand-in XenAPIPlugin (stubs/XenAPIPlugin.py)
put into sys.modules only while they load (see harness.py); XenAPI is the official SDK.
"""

import json

import pytest

from . import harness

CODES = harness.dom0lib().errors
SR_UUID = "5a7e1b3c-1111-2222-3333-444455556666"
IFACE_ID = "9d0e5f4a-aaaa-bbbb-cccc-ddddeeeeffff"

NETWORK_CASES = [
    ("ovs_add_patch_port", {"bridge_name": "br-int", "port_name": "patch-tun",
                            "peer_port_name": "patch-int"},
     ["ovs-vsctl", "--", "--if-exists", "del-port", "patch-tun", "--", "add-port", "br-int",
      "patch-tun", "--", "set", "interface", "patch-tun", "type=patch",
      "options:peer=patch-int"]),
    ("ovs_add_port", {"bridge_name": "xapi1", "port_name": "vif3.0"},
     ["ovs-vsctl", "--", "--if-exists", "del-port", "vif3.0", "--", "add-port", "xapi1",
      "vif3.0"]),
    ("ovs_create_port", {"bridge": "br-int", "port": "qvo9d0e5f4a-aa", "iface-id": IFACE_ID,
                         "mac": "fa:16:3e:00:00:01", "status": "active"},
     ["ovs-vsctl", "--", "--if-exists", "del-port", "qvo9d0e5f4a-aa", "--", "add-port",
      "br-int", "qvo9d0e5f4a-aa", "--", "set", "Interface", "qvo9d0e5f4a-aa",
      "external_ids:iface-id=" + IFACE_ID, "external_ids:iface-status=active",
      "external_ids:attached-mac=fa:16:3e:00:00:01", "external_ids:xs-vif-uuid=" + IFACE_ID]),
    ("ovs_del_port", {"bridge_name": "xapi1", "port_name": "vif3.0"},
     ["ovs-vsctl", "--", "--if-exists", "del-port", "xapi1", "vif3.0"]),
    ("ovs_del_br", {"bridge_name": "br-int"}, ["ovs-vsctl", "--", "--if-exists", "del-br", "br-int"]),
    ("ovs_set_if_external_id", {"interface": "vif3.0", "extneral_id": "iface-id", "value": "x1"},
     ["ovs-vsctl", "set", "Interface", "vif3.0", "external-ids:iface-id=x1"]),
    ("ovs_set_if_external_id", {"interface": "vif3.0", "external_id": "iface-id", "value": "x1"},
     ["ovs-vsctl", "set", "Interface", "vif3.0", "external-ids:iface-id=x1"]),
    ("ip_link_add_veth_pair", {"dev1_name": "qvb1", "dev2_name": "qvo1"},
     ["ip", "link", "add", "qvb1", "type", "veth", "peer", "name", "qvo1"]),
    ("ip_link_del_dev", {"device_name": "qvb1"}, ["ip", "link", "delete", "qvb1"]),
    ("ip_link_get_dev", {"device_name": "qvb1"}, ["ip", "link", "show", "qvb1"]),
    ("ip_link_set_dev", {"device_name": "qvb1", "option": "up"}, ["ip", "link", "set", "qvb1", "up"]),
    ("ip_link_set_promisc", {"device_name": "qvb1", "option": "on"},
     ["ip", "link", "set", "qvb1", "promisc", "on"]),
    ("brctl_add_br", {"bridge_name": "qbr1"}, ["brctl", "addbr", "qbr1"]),
    ("brctl_add_if", {"bridge_name": "qbr1", "interface_name": "qvb1"},
     ["brctl", "addif", "qbr1", "qvb1"]),
    ("brctl_del_br", {"bridge_name": "qbr1"}, ["brctl", "delbr", "qbr1"]),
    ("brctl_del_if", {"bridge_name": "qbr1", "interface_name": "qvb1"},
     ["brctl", "delif", "qbr1", "qvb1"]),
    ("brctl_set_fd", {"bridge_name": "qbr1", "fd": "0"}, ["brctl", "setfd", "qbr1", "0"]),
    ("brctl_set_stp", {"bridge_name": "qbr1", "option": "off"}, ["brctl", "stp", "qbr1", "off"]),
]


@pytest.fixture
def net_commands(commands):
    for program in ("ovs-vsctl", "ip", "brctl"):
        commands.on(program, stdout="")
    return commands


@pytest.mark.parametrize("cmd,args,argv", NETWORK_CASES,
                         ids=[case[0] + str(i) for i, case in enumerate(NETWORK_CASES)])
def test_network_command_runs_its_exact_command_line(net_commands, cmd, args, argv):
    harness.call("xenhost", "network_config", cmd=cmd, args=args)
    assert net_commands.calls == [argv]


def test_network_config_returns_the_commands_output(net_commands):
    net_commands.on("ip", stdout="7: qvb1: <BROADCAST,MULTICAST> mtu 1500\n")
    assert harness.call("xenhost", "network_config", "ip_link_get_dev",
                        {"device_name": "qvb1"}).startswith("7: qvb1")


def test_network_config_reports_a_failing_command(net_commands, failure):
    net_commands.on("brctl", returncode=1, stderr="bridge qbr1 doesn't exist")
    with pytest.raises(failure) as info:
        harness.call("xenhost", "network_config", cmd="brctl_del_br", args={"bridge_name": "qbr1"})
    assert info.value.params == [CODES.COMMAND_FAILED, "brctl", "1", "bridge qbr1 doesn't exist"]


@pytest.mark.parametrize("cmd,args,reason_part", [
    ("ip_netns_exec", {"device_name": "x"}, "must be one of"),
    ("ip_link_set_dev", {"device_name": "qvb1", "option": "netns 1"}, "must be one of up, down"),
    ("ip_link_set_dev", {"device_name": "qvb1"}, "lacks the required key option"),
    ("brctl_add_br", {"bridge_name": "qbr1", "extra": "1"}, "has unknown keys: extra"),
    ("brctl_add_br", {"bridge_name": "qbr1; reboot"}, "an interface name"),
    ("brctl_add_br", {"bridge_name": "$(reboot)"}, "an interface name"),
    ("brctl_add_br", {"bridge_name": "-h"}, "not starting with -"),
    ("brctl_add_br", {"bridge_name": "qbr1\nqbr2"}, "an interface name"),
    ("brctl_add_br", {"bridge_name": "a-name-longer-than-15"}, "at most 15 characters"),
    ("brctl_add_br", {"bridge_name": 7}, "must be a string, got integer"),
    ("brctl_set_fd", {"bridge_name": "qbr1", "fd": 99}, "must be between 0 and 30"),
    ("ovs_create_port", {"bridge": "br-int", "port": "p1", "iface-id": IFACE_ID,
                         "mac": "not-a-mac", "status": "active"}, "a MAC address"),
    ("ovs_set_if_external_id", {"interface": "vif3.0", "extneral_id": "a=b", "value": "1"},
     "an external-ids key"),
    ("ovs_set_if_external_id", {"interface": "vif3.0", "extneral_id": "k", "external_id": "k",
                                "value": "1"}, "exactly one of"),
])
def test_network_config_refuses_what_is_not_on_the_allow_list(net_commands, failure, cmd, args,
                                                              reason_part):
    with pytest.raises(failure) as info:
        harness.call("xenhost", "network_config", cmd=cmd, args=args)
    assert info.value.params[:2] == [CODES.INVALID_ARGUMENT, "xenhost.network_config"]
    assert reason_part in info.value.params[3]
    assert net_commands.calls == []


def test_network_config_refuses_args_that_are_not_an_object(net_commands, failure):
    with pytest.raises(failure) as info:
        harness.call("xenhost", "network_config", cmd="brctl_add_br", args="qbr1")
    assert info.value.params[2:] == ["args", "must be an object, got string"]
    assert net_commands.calls == []


def test_iptables_save_runs_with_an_allowed_table(commands):
    commands.on("iptables-save", stdout="*filter\nCOMMIT\n")
    result = harness.call("xenhost", "iptables_config", ["iptables-save", "-c", "-t", "nat"])
    assert result == {"out": "*filter\nCOMMIT\n", "err": ""}
    assert commands.calls == [["iptables-save", "-c", "-t", "nat"]]


def test_iptables_restore_feeds_the_rules_on_stdin(commands):
    commands.on("ip6tables-restore")
    rules = "*filter\n-A INPUT -j ACCEPT\nCOMMIT\n"
    harness.call("xenhost", "iptables_config", cmd_args=["ip6tables-restore", "--noflush"],
                 process_input=rules)
    assert commands.inputs == [rules]


@pytest.mark.parametrize("cmd_args,process_input", [
    (["iptables", "-F"], None),
    (["iptables-save", "-M", "/sbin/modprobe"], None),
    (["iptables-save", "-t", "../x"], None),
    (["iptables-restore", "--modprobe=/tmp/evil"], "*filter\nCOMMIT\n"),
    (["iptables-restore"], None),
    (["iptables-save"], "*filter\nCOMMIT\n"),
    ([], None),
])
def test_iptables_config_refuses_commands_off_the_allow_list(commands, failure, cmd_args,
                                                            process_input):
    with pytest.raises(failure) as info:
        harness.call("xenhost", "iptables_config", cmd_args=cmd_args, process_input=process_input)
    assert info.value.params[0] == CODES.INVALID_ARGUMENT
    assert commands.calls == []


def test_get_pci_device_details_returns_lspci_output(commands):
    commands.on("lspci", stdout='Slot:\t00:00.0\nClass:\t0600\n')
    assert harness.call("xenhost", "get_pci_device_details") == 'Slot:\t00:00.0\nClass:\t0600\n'
    assert commands.calls == [["lspci", "-vmmnk"]]


def _pci_device(dom0_root, address, *entries):
    directory = dom0_root / "sys" / "bus" / "pci" / "devices" / address
    directory.mkdir(parents=True)
    for entry in entries:
        (directory / entry).write_text("")


def test_get_pci_type_of_a_virtual_function_is_type_vf(dom0_root):
    _pci_device(dom0_root, "0000:04:10.1", "physfn", "vendor")
    assert harness.call("xenhost", "get_pci_type", "0000:04:10.1") == "type-VF"


def test_get_pci_type_of_a_physical_function_with_vfs_is_type_pf(dom0_root):
    _pci_device(dom0_root, "0000:04:00.0", "virtfn0", "virtfn1", "vendor")
    assert harness.call("xenhost", "get_pci_type", "0000:04:00.0") == "type-PF"


def test_get_pci_type_adds_the_default_pci_domain(dom0_root):
    _pci_device(dom0_root, "0000:05:00.0", "vendor")
    assert harness.call("xenhost", "get_pci_type", pci_device="05:00.0") == "type-PCI"


def test_get_pci_type_of_an_absent_device_is_not_found(dom0_root, failure):
    with pytest.raises(failure) as info:
        harness.call("xenhost", "get_pci_type", "0000:09:00.0")
    assert info.value.params == [CODES.NOT_FOUND, "PCI device", "0000:09:00.0"]


@pytest.mark.parametrize("address", ["../../../etc", "0000:04:00.0/../..", "04:00.8", ""])
def test_get_pci_type_refuses_what_is_not_a_pci_address(dom0_root, failure, address):
    with pytest.raises(failure) as info:
        harness.call("xenhost", "get_pci_type", address)
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "xenhost.get_pci_type", "pci_device"]


def test_query_gc_reports_a_running_collector(commands, dom0_root):
    commands.on("cleanup.py", stdout="Currently running: True\n")
    assert harness.call("xenhost", "query_gc", SR_UUID, IFACE_ID) is True
    assert commands.calls == [[str(dom0_root / "opt/xensource/sm/cleanup.py"), "-q", "-u",
                               SR_UUID]]


def test_query_gc_reports_an_idle_collector(commands):
    commands.on("cleanup.py", stdout="Currently running: False\n")
    assert harness.call("xenhost", "query_gc", sr_uuid=SR_UUID, vdi_uuid=IFACE_ID) is False


def test_query_gc_with_unexpected_output_is_bad_data(commands, failure):
    commands.on("cleanup.py", stdout="usage: cleanup.py\n")
    with pytest.raises(failure) as info:
        harness.call("xenhost", "query_gc", SR_UUID, IFACE_ID)
    assert info.value.params[0] == CODES.BAD_DATA


def test_query_gc_refuses_an_sr_uuid_that_is_not_a_uuid(commands, failure):
    with pytest.raises(failure) as info:
        harness.call("xenhost", "query_gc", "-x", IFACE_ID)
    assert info.value.params[2] == "sr_uuid"
    assert commands.calls == []


# -- Nova's Dom0IptablesFirewallDriver: 0.3.4's plain arguments ------------------------------
# It sends every keyword of its execute() as str() (run_as_root, attempts, process_input) and
# cmd_args as JSON text, and decodes the JSON text it gets back.

def test_novas_iptables_save_call_answers_json_text(commands):
    commands.on("iptables-save", stdout="*filter\nCOMMIT\n")
    text = harness.call_plain("xenhost", "iptables_config", {
        "cmd_args": json.dumps(["iptables-save", "-c"]), "run_as_root": "True",
        "attempts": "5"})
    assert json.loads(text) == {"out": "*filter\nCOMMIT\n", "err": ""}
    assert commands.calls == [["iptables-save", "-c"]]


def test_novas_iptables_restore_call_feeds_process_input(commands):
    commands.on("ip6tables-restore")
    rules = "*filter\n:nova-filter-top - [0:0]\nCOMMIT\n"
    harness.call_plain("xenhost", "iptables_config", {
        "cmd_args": json.dumps(["ip6tables-restore", "-c"]), "run_as_root": "True",
        "process_input": rules, "attempts": "5"})
    assert commands.calls == [["ip6tables-restore", "-c"]]
    assert commands.inputs == [rules]


@pytest.mark.parametrize("args,argument", [
    ({"cmd_args": json.dumps(["iptables-save"]), "attempts": "many"}, "attempts"),
    ({"cmd_args": json.dumps(["iptables-save"]), "run_as_root": "yes"}, "run_as_root"),
    ({"cmd_args": "iptables-save -c"}, "cmd_args"),
    ({"cmd_args": json.dumps(["iptables", "-F"])}, "cmd_args"),
    ({"cmd_args": json.dumps(["iptables-save"]), "check_exit_code": "0"}, "check_exit_code"),
], ids=["attempts", "run_as_root", "not-json", "not-allowed", "unknown-key"])
def test_novas_iptables_call_is_checked_like_the_json_form(commands, failure, args, argument):
    with pytest.raises(failure) as info:
        harness.call_plain("xenhost", "iptables_config", args)
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "xenhost.iptables_config", argument]
    assert commands.calls == []


def test_iptables_restore_takes_the_xtables_lock_options_neutron_sends(commands):
    commands.on("iptables-restore")
    harness.call("xenhost", "iptables_config",
                 cmd_args=["iptables-restore", "-n", "-w", "10", "-W", "200000"],
                 process_input="*filter\nCOMMIT\n")
    assert commands.calls == [["iptables-restore", "-n", "-w", "10", "-W", "200000"]]


@pytest.mark.parametrize("cmd_args", [
    ["iptables-restore", "-w"], ["iptables-restore", "-w", "0"], ["iptables-restore", "-W", "x"],
    ["iptables-save", "-w", "10"],
], ids=["no-value", "zero", "not-a-number", "save"])
def test_the_lock_options_need_a_number_and_belong_to_restore(commands, failure, cmd_args):
    extra = {"process_input": "x\n"} if cmd_args[0].endswith("restore") else {}
    with pytest.raises(failure) as info:
        harness.call("xenhost", "iptables_config", cmd_args=cmd_args, **extra)
    assert info.value.params[2] == "cmd_args"
    assert commands.calls == []
