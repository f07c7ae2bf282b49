"""Neutron's OVS agent through netwrap, end to end: every command line of the reference's table
(consumers-0.3.4.md, "Command lines Neutron's OVS agent sent through netwrap.run_command") sent
exactly as Neutron's xenapi_root_helper sends it, through XenAPISession.call_plugin, to a
simulator whose dom0 runs os-xenapi's netwrap against the simulated dom0's stand-ins
(dom0env/bin: ovs-vsctl, ovs-ofctl, ovsdb-client, iptables-save/-restore, ipset, conntrack,
sysctl, ip), which keep their state in the dom0 root and never touch this machine's network.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from os_xenapi.client import XenAPI
from os_xenapi.client.session import XenAPISession

ORIGINATOR = "dom0-neutron-tests"
# oslo.rootwrap's return codes, as Neutron's root helper maps failures to them.
RC_UNAUTHORIZED, RC_NOEXECFOUND, RC_UNKNOWN_XENAPI_ERROR = 99, 98, 80
RULES = ("*filter\n:neutron-openvswi-INPUT - [0:0]\n-A INPUT -j neutron-openvswi-INPUT\n"
         "COMMIT\n")


def root_helper(session: XenAPISession, cmd: list[str],
                stdin: str | None = None) -> tuple[int, str, str]:
    """What neutron.agent.linux.xenapi_root_helper.XenAPIClient.execute does with a command."""
    try:
        raw = session.call_plugin("netwrap.py", "run_command",
                                  {"cmd": json.dumps(cmd), "cmd_input": json.dumps(stdin)})
        result = json.loads(raw)
        return result["returncode"], result["out"], result["err"]
    except XenAPI.Failure as failure:
        details = failure.details
        if len(details) == 4 and details[0] == "XENAPI_PLUGIN_FAILURE":
            if details[3] == "Unauthorized command":
                return RC_UNAUTHORIZED, "", ""
            if details[3] == "Executable not found":
                return RC_NOEXECFOUND, "", ""
        return RC_UNKNOWN_XENAPI_ERROR, "", ""


def ok(session: XenAPISession, cmd: list[str], stdin: str | None = None) -> str:
    returncode, out, err = root_helper(session, cmd, stdin)
    assert returncode == 0, (cmd, returncode, err)
    return out


@pytest.fixture(scope="module")
def br_int(session: XenAPISession) -> str:
    ok(session, ["ovs-vsctl", "--timeout=10", "--", "--may-exist", "add-br", "br-int"])
    ok(session, ["ovs-vsctl", "--timeout=10", "--", "--may-exist", "add-port", "br-int",
                 "tap1.0", "--", "set", "Interface", "tap1.0",
                 "external_ids:iface-id=9d0e5f4a-aaaa-4bbb-8ccc-ddddeeeeffff"])
    return "br-int"


def test_the_answer_is_json_text_neutron_decodes(session: XenAPISession) -> None:
    raw = session.call_plugin("netwrap.py", "run_command",
                              {"cmd": json.dumps(["ovs-vsctl", "list-br"]), "cmd_input": "null"})
    assert isinstance(raw, str)
    assert set(json.loads(raw)) == {"returncode", "out", "err"}


def test_ovs_vsctl_list_ports(session: XenAPISession, br_int: str) -> None:
    assert ok(session, ["ovs-vsctl", "list-ports", br_int]) == "tap1.0\n"
    returncode, _, err = root_helper(session, ["ovs-vsctl", "list-ports", "xapi2"])
    assert returncode == 1 and "no bridge named xapi2" in err


def test_flows_added_modified_dumped_and_deleted_in_ovs_libs_argument_order(
        session: XenAPISession, br_int: str) -> None:
    ofctl = ["ovs-ofctl"]
    ok(session, ofctl + ["add-flows", "-O", "OpenFlow10", br_int, "-"],
       "hard_timeout=0,idle_timeout=0,priority=0,table=0,actions=normal\n"
       "hard_timeout=0,idle_timeout=0,priority=3,table=23,actions=drop\n")
    dumped = ok(session, ofctl + ["dump-flows", "-O", "OpenFlow10", br_int])
    assert "priority=0 actions=normal" in dumped and "priority=3 actions=drop" in dumped
    ok(session, ofctl + ["mod-flows", "-O", "OpenFlow10", br_int, "--strict", "-"],
       "priority=3,table=23,actions=normal\n")
    table_23 = ok(session, ofctl + ["dump-flows", "-O", "OpenFlow10", br_int, "table=23"])
    assert "priority=3" in table_23 and "drop" not in table_23
    ok(session, ofctl + ["del-flows", "-O", "OpenFlow10", br_int, "-"], "table=23\n")
    assert "table=23" not in ok(session, ofctl + ["dump-flows", "-O", "OpenFlow10", br_int])
    ok(session, ofctl + ["del-flows", "-O", "OpenFlow10", br_int])
    assert "actions" not in ok(session, ofctl + ["dump-flows", "-O", "OpenFlow10", br_int])


def test_iptables_restore_with_the_xtables_lock_options_then_save(session: XenAPISession) -> None:
    ok(session, ["iptables-restore", "-n", "-w", "10", "-W", "200000"], RULES)
    assert "-A INPUT -j neutron-openvswi-INPUT" in ok(session, ["iptables-save", "-t", "filter"])
    ok(session, ["ip6tables-restore", "-n", "-w", "10", "-W", "200000"], RULES)
    assert ":neutron-openvswi-INPUT" in ok(session, ["ip6tables-save"])


def test_ovsdb_client_monitor_answers_the_interface_table_once_its_window_ends(
        session: XenAPISession, br_int: str) -> None:
    out = ok(session, ["ovsdb-client", "monitor", "Interface", "name,ofport,external_ids",
                       "--format=json"])
    update = json.loads(out.splitlines()[0])
    assert update["headings"] == ["row", "action", "name", "ofport", "external_ids"]
    rows = {row[2]: row for row in update["data"]}
    assert rows["tap1.0"][1] == "initial"
    assert ["iface-id", "9d0e5f4a-aaaa-4bbb-8ccc-ddddeeeeffff"] in rows["tap1.0"][4][1]


def test_ip_and_sysctl_lines_of_the_linux_agent_helpers(session: XenAPISession,
                                                       br_int: str) -> None:
    ok(session, ["ip", "link", "add", "qvb1", "type", "veth", "peer", "name", "qvo1"])
    ok(session, ["ip", "link", "set", "dev", "qvo1", "up"])
    assert "qvo1@qvb1" in ok(session, ["ip", "-o", "link", "show"])
    assert ok(session, ["sysctl", "-w", "net.ipv6.conf.qvo1.disable_ipv6=1"]) == (
        "net.ipv6.conf.qvo1.disable_ipv6 = 1\n")
    ok(session, ["sysctl", "-w", "net.bridge.bridge-nf-call-iptables=1"])


def test_ipset_lines_of_the_ipset_manager(session: XenAPISession) -> None:
    ok(session, ["ipset", "create", "-exist", "NIPv4sg1", "hash:net", "family", "inet"])
    ok(session, ["ipset", "restore", "-exist"],
       "create NIPv4sg1-n hash:net family inet\nadd NIPv4sg1-n 10.0.0.2\n")
    ok(session, ["ipset", "swap", "NIPv4sg1-n", "NIPv4sg1"])
    ok(session, ["ipset", "destroy", "NIPv4sg1-n"])
    ok(session, ["ipset", "add", "-exist", "NIPv4sg1", "10.0.0.3"])
    ok(session, ["ipset", "del", "NIPv4sg1", "10.0.0.2"])
    listing = ok(session, ["ipset", "list", "NIPv4sg1"])
    assert "10.0.0.3" in listing and "10.0.0.2" not in listing


def test_conntrack_delete_of_the_ip_conntrack_manager(session: XenAPISession) -> None:
    returncode, _, err = root_helper(session, ["conntrack", "-D", "-p", "tcp", "-f", "ipv4",
                                               "-d", "10.0.0.5", "-w", "4097"])
    assert returncode == 1 and "0 flow entries have been deleted" in err


@pytest.mark.parametrize("cmd", [
    ["ip", "netns", "exec", "qrouter-1", "sh"],
    ["bash", "-c", "id"],
    ["sysctl", "-w", "kernel.core_pattern=|/tmp/x"],
    ["ovsdb-client", "transact", '["Open_vSwitch"]'],
    ["ovs-vsctl", "set-manager", "ptcp:6640"],
], ids=lambda cmd: " ".join(cmd))
def test_a_command_line_off_the_allow_list_is_rootwraps_unauthorized(session: XenAPISession,
                                                                     root: Any,
                                                                     cmd: list[str]) -> None:
    assert root_helper(session, cmd) == (RC_UNAUTHORIZED, "", "")


def test_the_refusal_says_why_in_the_third_detail(session: XenAPISession) -> None:
    with pytest.raises(XenAPI.Failure) as info:
        session.call_plugin("netwrap.py", "run_command",
                            {"cmd": json.dumps(["ip", "netns", "exec", "x", "sh"]),
                             "cmd_input": "null"})
    details = info.value.details
    assert details[:2] == ["XENAPI_PLUGIN_FAILURE", "run_command"]
    assert details[2].startswith("OS_XENAPI_INVALID_ARGUMENT: cmd is not one of the allowed ip")
    assert details[3] == "Unauthorized command"
