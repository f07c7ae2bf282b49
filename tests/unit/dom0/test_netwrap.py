"""netwrap plugin: run_command runs only whole command lines of an allowed shape.

Commands are faked at dom0lib.commands.spawn: an allowed command reaches FakeCommands with
its argument list unchanged, a refused one never does.
"""

import json

import pytest

from . import harness, refusals

CODES = harness.dom0lib().errors
PLUGIN = harness.load_plugin("netwrap")
PORT = "9d0e5f4a-aaaa-4bbb-8ccc-ddddeeeeffff"

ALLOWED = [
    "ip link show",
    "ip -o link show dev tap3.0",
    "ip link set qvb1 up",
    "ip link set dev qvb1 down",
    "ip link set qvb1 mtu 1450",
    "ip link set qvb1 address fa:16:3e:00:00:01",
    "ip link set qvb1 promisc on",
    "ip link set qvb1 master qbr1",
    "ip link set dev qvb1 nomaster",
    "ip link add qvb1 type veth peer name qvo1",
    "ip link delete qvb1",
    "ip link del dev qvb1",
    "ip -o addr show dev xenbr0",
    "ovs-vsctl list-br",
    "ovs-vsctl --timeout=10 br-exists br-int",
    "ovs-vsctl --timeout=10 --oneline --format=json -- --columns=name,ofport,external_ids "
    "list Interface",
    "ovs-vsctl --timeout=10 --oneline --format=json -- --columns=name list Interface tap1 tap2",
    "ovs-vsctl --timeout=10 -- --may-exist add-br br-int -- set Bridge br-int "
    "datapath_type=system",
    "ovs-vsctl --timeout=10 -- --may-exist add-port br-int tap1 -- set Interface tap1 "
    "external_ids:iface-id=" + PORT + " external_ids:attached-mac=fa:16:3e:00:00:01 "
    "external_ids:iface-status=active",
    "ovs-vsctl -- --if-exists del-port br-int tap1",
    "ovs-vsctl --if-exists del-port tap1",
    "ovs-vsctl set Port tap1 tag=4095",
    "ovs-vsctl set Interface patch-tun type=patch options:peer=patch-int",
    "ovs-vsctl set Interface vxlan-c0000214 type=vxlan options:remote_ip=192.0.2.20 "
    "options:key=flow options:df_default=true",
    "ovs-vsctl set Bridge br-int protocols=[OpenFlow10,OpenFlow13]",
    "ovs-vsctl set-fail-mode br-int secure",
    "ovs-vsctl clear Port tap1 tag",
    "ovs-vsctl remove Interface tap1 external_ids iface-status",
    "ovs-vsctl get Interface tap1 ofport external_ids:iface-id",
    "ovs-vsctl --columns=name,external_ids find Interface external_ids:iface-id=" + PORT,
    "ovs-vsctl br-set-external-id br-int bridge-id br-int",
    "ovs-vsctl port-to-br tap1",
    "ovs-ofctl dump-flows br-int",
    "ovs-ofctl -O OpenFlow10,OpenFlow13 dump-flows br-int table=21",
    "ovs-ofctl add-flow br-int table=0,priority=1,actions=normal",
    "ovs-ofctl --strict del-flows br-int in_port=3,dl_src=fa:16:3e:00:00:01",
    "ovs-ofctl del-flows br-int",
    "ovs-ofctl dump-ports-desc br-int",
    "ipset create -exist NIPv4abc hash:net family inet",
    "ipset create -exist NIPv6abc hash:net family inet6 maxelem 131072",
    "ipset list NIPv4abc",
    "ipset swap NIPv4abc NIPv4abc-new",
    "ipset add -exist NIPv4abc 10.0.0.0/24",
    "ipset del NIPv4abc 2001:db8::/64",
    "ipset destroy NIPv4abc",
    "sysctl -w net.bridge.bridge-nf-call-iptables=1",
    "sysctl -w net.ipv6.conf.qvb1.disable_ipv6=1",
    "sysctl -n net.bridge.bridge-nf-call-ip6tables",
    "conntrack -D -f ipv4 -d 10.0.0.5 -w 4097",
    "conntrack -D -w 10 -p tcp --dport 22 -s 10.0.0.6 -f ipv4",
    "iptables-save -c",
    "ip6tables-save -t filter",
]
ALLOWED_WITH_INPUT = [
    ("iptables-restore -n", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"),
    ("ip6tables-restore -c", "*filter\nCOMMIT\n"),
    ("ovs-ofctl add-flows br-int -", "table=0,priority=0,actions=drop\n"),
    ("ovs-ofctl -O OpenFlow13 --strict del-flows br-int -", "table=0,in_port=3\n"),
    ("ipset restore -exist", "create NIPv4x hash:net family inet\nadd NIPv4x 10.0.0.1\n"),
]
REFUSED = [
    ("ip netns exec qrouter-1 sh", "cmd"),
    ("ip link set qvb1 up extra", "cmd"),
    ("ip link set qvb1 mtu 1", "cmd"),
    ("ip link set -qvb1 up", "cmd"),
    ("ip -b /tmp/batch", "cmd"),
    ("/sbin/ip link show", "cmd"),
    ("sh -c reboot", "cmd"),
    ("iptables -F", "cmd"),
    ("ovsdb-client monitor Bridge name --format=json", "cmd"),
    ("ovsdb-client monitor tcp:203.0.113.9:6640 Interface name --format=json", "cmd"),
    ("ovsdb-client --timeout=61 monitor Interface name --format=json", "cmd"),
    ("ovsdb-client transact [\"Open_vSwitch\"]", "cmd"),
    ("ovsdb-client monitor Interface", "cmd"),
    ("sysctl -w kernel.core_pattern=|/tmp/x", "cmd"),
    ("sysctl -w net.ipv4.ip_forward=1", "cmd"),
    ("sysctl -p /tmp/evil.conf", "cmd"),
    ("ovs-vsctl", "cmd"),
    ("ovs-vsctl --timeout=10", "cmd"),
    ("ovs-vsctl set-controller br-int tcp:203.0.113.9:6633", "cmd"),
    ("ovs-vsctl set-manager ptcp:6640", "cmd"),
    ("ovs-vsctl set Bridge br-int controller=@c", "cmd"),
    ("ovs-vsctl set Open_vSwitch . other_config:x=y", "cmd"),
    ("ovs-vsctl set Interface tap1 external_ids:a=b,c", "cmd"),
    ("ovs-vsctl --timeout=10 --timeout=20 list-br", "cmd"),
    ("ovs-vsctl -- list-br --", "cmd"),
    ("ovs-vsctl list-br -- -- list-br", "cmd"),
    ("ovs-vsctl " + " -- ".join(["list-br"] * 9), "cmd"),
    ("ovs-vsctl --columns=name list Open_vSwitch", "cmd"),
    ("ovs-vsctl add-port br-int tap1 -- --id=@m create Manager target=ptcp:6640", "cmd"),
    ("ovs-ofctl add-flow br-int -", "cmd"),
    ("ovs-ofctl add-flows br-int /tmp/flows", "cmd"),
    ("ovs-ofctl add-flow br-int --help", "cmd"),
    ("ovs-ofctl -O OpenFlow99 dump-flows br-int", "cmd"),
    ("ipset create -exist x hash:net family inet maxelem 0", "cmd"),
    ("ipset add -exist NIPv4abc not-an-address", "cmd"),
    ("ipset restore", "cmd"),
    ("ipset -exist restore", "cmd"),
    ("conntrack -D", "cmd"),
    ("conntrack -F", "cmd"),
    ("conntrack -D -f ipv4 -f ipv6 -w 1", "cmd"),
    ("conntrack -D -w 1 -d", "cmd"),
    ("conntrack -D -w 70000", "cmd"),
    ("iptables-restore", "cmd_input"),
    ("iptables-save -M /tmp/modprobe", "cmd"),
]


@pytest.fixture
def programs(commands):
    for program in PLUGIN.PROGRAMS:
        commands.on(program, stdout="ok\n")
    return commands


@pytest.mark.parametrize("line", ALLOWED)
def test_an_allowed_command_runs_exactly_as_given(programs, line):
    result = harness.call("netwrap", "run_command", line.split())
    assert result == {"returncode": 0, "out": "ok\n", "err": ""}
    assert programs.calls == [line.split()]
    assert programs.inputs == [None]


@pytest.mark.parametrize("line,text", ALLOWED_WITH_INPUT, ids=[c[0] for c in ALLOWED_WITH_INPUT])
def test_an_allowed_command_that_reads_input_gets_it(programs, line, text):
    harness.call("netwrap", "run_command", line.split(), text)
    assert programs.calls == [line.split()]
    assert programs.inputs == [text]


@pytest.mark.parametrize("line,argument", REFUSED, ids=[c[0][:60] for c in REFUSED])
def test_a_command_outside_the_allow_list_is_refused_and_never_runs(programs, dom0_root,
                                                                    failure, line, argument):
    refusals.assert_refused("netwrap", "run_command", {"cmd": line.split()}, argument, programs,
                            dom0_root, failure)


def test_input_for_a_command_that_reads_none_is_refused(programs, dom0_root, failure):
    reason = refusals.assert_refused("netwrap", "run_command",
                                     {"cmd": ["ip", "link", "show"], "cmd_input": "x"},
                                     "cmd_input", programs, dom0_root, failure)
    assert reason == "is refused: this command reads no input"


def test_a_failing_command_reports_its_exit_code_and_output(commands):
    commands.on("ip", returncode=1, stderr='Cannot find device "qvb9"\n')
    result = harness.call("netwrap", "run_command", ["ip", "link", "show", "qvb9"])
    assert result == {"returncode": 1, "out": "", "err": 'Cannot find device "qvb9"\n'}


def test_a_missing_program_is_command_missing(commands, failure):
    with pytest.raises(failure) as info:
        harness.call("netwrap", "run_command", ["ipset", "list", "-name"])
    assert info.value.params == [CODES.COMMAND_MISSING, "ipset"]


def test_the_refusal_names_the_programs_allowed(programs, failure):
    with pytest.raises(failure) as info:
        harness.call("netwrap", "run_command", ["bash"])
    assert info.value.params[3] == "must start with one of " + ", ".join(PLUGIN.PROGRAMS)


def test_the_dom0_readme_lists_every_allowed_shape():
    readme = (harness.DOM0 / "README.md").read_text()
    shapes = [shape.text for shape in PLUGIN.SHAPES + PLUGIN.VSCTL_COMMANDS]
    assert [text for text in shapes if f"`{text}`" not in readme] == []


MISTYPED = [
    ({"cmd": "ip link show"}, "cmd"),
    ({"cmd": []}, "cmd"),
    ({"cmd": ["ip", 7]}, "cmd"),
    ({"cmd": ["ip", "link", "show", "x" * 5000]}, "cmd"),
    ({"cmd": ["ip"] * 65}, "cmd"),
    ({"cmd": ["ip", "link", "show\x00"]}, "cmd"),
    ({"cmd": ["iptables-restore"], "cmd_input": "x" * (120 * 1024 + 1)}, "cmd_input"),
    ({"cmd": ["iptables-restore"], "cmd_input": ["*filter"]}, "cmd_input"),
    ({"cmd": ["iptables-restore"], "cmd_input": "*filter\x1b[2J"}, "cmd_input"),
]


@pytest.mark.parametrize("kwargs,argument", MISTYPED, ids=[str(i) for i in range(len(MISTYPED))])
def test_mistyped_or_oversized_arguments_are_refused(programs, dom0_root, failure, kwargs,
                                                     argument):
    refusals.assert_refused("netwrap", "run_command", kwargs, argument, programs, dom0_root,
                            failure)


@pytest.mark.parametrize("name,raw", refusals.NOT_JSON_PARAMS,
                         ids=[name for name, _ in refusals.NOT_JSON_PARAMS])
def test_params_that_are_not_the_json_protocol_are_refused(programs, dom0_root, failure, name,
                                                           raw):
    refusals.assert_refused("netwrap", "run_command", {}, "params", programs, dom0_root, failure,
                            raw_params=raw)


def test_0_3_4s_plain_cmd_argument_is_refused_with_a_protocol_hint(programs, dom0_root, failure):
    with pytest.raises(failure) as info:
        harness.call("netwrap", "run_command",
                     raw_params=json.dumps({"args": [["ip", "link"]], "kwargs": {}}))
    assert info.value.params[2] == "cmd"


def test_runs_under_the_dom0_python_the_way_xapi_runs_it(dom0_root):
    status, details = harness.run_like_xapi(
        harness.PLUGINS / "netwrap.py", "run_command",
        {"params": json.dumps({"args": [["ip", "netns", "exec", "x", "sh"]]})},
        env_extra={"DOM0_ROOT": str(dom0_root)})
    assert (status, details[:3]) == ("Failure", [CODES.INVALID_ARGUMENT, "netwrap.run_command",
                                                 "cmd"])
