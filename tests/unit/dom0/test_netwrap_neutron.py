"""netwrap as Neutron's agent calls it: 0.3.4's plain arguments through the xenapi root helper.

Neutron's root helper sends ``{"cmd": json.dumps(argv), "cmd_input": json.dumps(stdin)}``,
decodes the JSON text it gets back, and maps a failure to a return code by its details
(XENAPI_PLUGIN_FAILURE, four details, the last "Unauthorized command" or "Executable not
found"). Every command line of the reference's table of the agent's commands is here, in
the agent's own argument order. Commands are faked at dom0lib.commands.spawn, so a refused
command line never reaches it; the simulator's stand-ins run them end to end in
tests/functional/test_client_dom0_neutron.py.
"""

import json

import pytest

from . import harness

CODES = harness.dom0lib().errors
PLUGIN = harness.load_plugin("netwrap")
RULES = "*filter\n:neutron-openvswi-INPUT - [0:0]\n-A INPUT -j neutron-openvswi-INPUT\nCOMMIT\n"
FLOWS = "hard_timeout=0,idle_timeout=0,priority=0,table=0,actions=drop\n"

# (argv, stdin): the command lines of consumers-0.3.4.md's "Command lines Neutron's OVS agent
# sent through netwrap.run_command", with what their agent code puts in the slots.
NEUTRON = [
    (["ovs-vsctl", "list-ports", "xapi2"], None),
    (["ovs-vsctl", "--timeout=10", "--oneline", "--format=json", "--", "--columns=name",
      "list", "Interface"], None),
    (["ovs-ofctl", "add-flows", "-O", "OpenFlow10", "br-int", "-"], FLOWS),
    (["ovs-ofctl", "add-flows", "-O", "OpenFlow13", "br-tun", "-"], FLOWS),
    (["ovs-ofctl", "mod-flows", "-O", "OpenFlow10", "br-int", "--strict", "-"], FLOWS),
    (["ovs-ofctl", "del-flows", "-O", "OpenFlow10", "br-int", "-"], "table=0,in_port=3\n"),
    (["ovs-ofctl", "del-flows", "-O", "OpenFlow10", "br-int"], None),
    (["ovs-ofctl", "del-flows", "-O", "OpenFlow10", "br-int", "cookie=0x1/-1"], None),
    (["ovs-ofctl", "dump-flows", "-O", "OpenFlow10", "br-int"], None),
    (["ovs-ofctl", "dump-flows", "-O", "OpenFlow10", "br-int", "table=23"], None),
    (["ovs-ofctl", "dump-flows", "-O", "OpenFlow10,OpenFlow13", "br-int", "table=0"], None),
    (["iptables-save"], None),
    (["iptables-save", "-t", "raw"], None),
    (["ip6tables-save", "-t", "filter"], None),
    (["iptables-restore", "-n"], RULES),
    (["iptables-restore", "-n", "-w", "10", "-W", "200000"], RULES),
    (["ip6tables-restore", "-n", "-w", "10", "-W", "200000"], "*filter\nCOMMIT\n"),
    (["ip", "-o", "link", "show"], None),
    (["ip", "link", "set", "dev", "qvo1", "up"], None),
    (["ipset", "create", "-exist", "NIPv4d5f1b2c0-9f1e-4b2b-a4", "hash:net", "family",
      "inet"], None),
    (["ipset", "restore", "-exist"], "create NIPv4x-n hash:net family inet\nadd NIPv4x-n 10.0.0.1\n"),
    (["ipset", "swap", "NIPv4x-n", "NIPv4x"], None),
    (["ipset", "destroy", "NIPv4x-n"], None),
    (["ipset", "add", "-exist", "NIPv4x", "10.0.0.7"], None),
    (["ipset", "del", "NIPv4x", "10.0.0.7"], None),
    (["conntrack", "-D", "-p", "tcp", "-f", "ipv4", "-d", "10.0.0.5", "-w", "4097"], None),
    (["conntrack", "-D", "-f", "ipv6", "-s", "2001:db8::5", "-w", "4097", "-d",
      "2001:db8::9"], None),
    (["sysctl", "-w", "net.ipv6.conf.qvo1.disable_ipv6=1"], None),
    (["sysctl", "-w", "net.bridge.bridge-nf-call-iptables=1"], None),
]
MONITOR = ["ovsdb-client", "monitor", "Interface", "name,ofport,external_ids", "--format=json"]


def _neutron(argv, stdin=None):
    """netwrap.run_command exactly as Neutron's xenapi_root_helper.execute calls it."""
    return harness.call_plain("netwrap", "run_command",
                              {"cmd": json.dumps(argv), "cmd_input": json.dumps(stdin)})


@pytest.fixture
def programs(commands):
    for program in PLUGIN.PROGRAMS:
        commands.on(program, stdout="ok\n")
    return commands


@pytest.mark.parametrize("argv,stdin", NEUTRON, ids=[" ".join(argv)[:70] for argv, _ in NEUTRON])
def test_every_command_line_of_neutrons_agent_runs_as_given(programs, argv, stdin):
    text = _neutron(argv, stdin)
    assert json.loads(text) == {"returncode": 0, "out": "ok\n", "err": ""}
    assert programs.calls == [argv]
    assert programs.inputs == [stdin]


def test_the_answer_is_json_text_with_the_exit_code_and_both_outputs(commands):
    commands.on("ip", returncode=1, stderr='Cannot find device "qvo9"\n')
    text = _neutron(["ip", "link", "show", "qvo9"])
    assert isinstance(text, str)
    assert json.loads(text) == {"returncode": 1, "out": "", "err": 'Cannot find device "qvo9"\n'}


def test_ovsdb_client_monitor_runs_for_a_bounded_window(programs):
    _neutron(MONITOR)
    assert programs.calls == [["ovsdb-client", f"--timeout={PLUGIN.MONITOR_SECONDS}"] + MONITOR[1:]]


def test_ovsdb_client_monitor_keeps_a_window_the_caller_chose(programs):
    argv = ["ovsdb-client", "--timeout=5"] + MONITOR[1:]
    _neutron(argv)
    assert programs.calls == [argv]


def test_a_monitor_whose_window_ran_out_answers_what_it_printed_and_returncode_0(commands):
    update = '{"data":[["a1","initial","tap1",1,["map",[]]]],"headings":["row","action"]}\n'
    commands.on("ovsdb-client", returncode=PLUGIN.MONITOR_ENDED, stdout=update)
    assert json.loads(_neutron(MONITOR)) == {"returncode": 0, "out": update, "err": ""}


def test_another_command_killed_by_sigalrm_keeps_its_exit_code(commands):
    commands.on("ovs-ofctl", returncode=PLUGIN.MONITOR_ENDED)
    done = json.loads(_neutron(["ovs-ofctl", "dump-flows", "-O", "OpenFlow10", "br-int"]))
    assert done["returncode"] == PLUGIN.MONITOR_ENDED


# -- failures, as Neutron's root helper maps them to return codes ---------------------------

def _failure_details(failure, argv, stdin=None, raw=None):
    with pytest.raises(failure) as info:
        if raw is not None:
            harness.call_plain("netwrap", "run_command", raw)
        else:
            _neutron(argv, stdin)
    return info.value.params


@pytest.mark.parametrize("argv", [
    ["bash", "-c", "id"],
    ["ip", "netns", "exec", "qrouter-1", "sh"],
    ["sysctl", "-w", "kernel.core_pattern=|/tmp/x"],
    ["ovs-vsctl", "set-manager", "ptcp:6640"],
    ["iptables-restore", "-n", "-w", "0"],
    ["ovs-ofctl", "add-flows", "-O", "OpenFlow10", "br-int", "/tmp/flows"],
], ids=lambda argv: " ".join(argv))
def test_a_refused_command_line_is_unauthorized_for_the_root_helper(programs, failure, argv):
    details = _failure_details(failure, argv, "x\n" if "restore" in argv[0] else None)
    assert len(details) == 4
    assert details[0] == "XENAPI_PLUGIN_FAILURE"
    assert details[1] == "run_command"
    assert details[2].startswith(CODES.INVALID_ARGUMENT + ": cmd")
    assert details[3] == "Unauthorized command"
    assert programs.calls == []


def test_input_for_a_command_that_reads_none_is_unauthorized(programs, failure):
    details = _failure_details(failure, ["ip", "link", "show"], "x")
    assert details[2:] == [CODES.INVALID_ARGUMENT + ": cmd_input is refused: this command reads "
                           "no input", "Unauthorized command"]


def test_a_missing_program_is_executable_not_found_for_the_root_helper(commands, failure):
    details = _failure_details(failure, ["ipset", "list", "-name"])
    assert details == ["XENAPI_PLUGIN_FAILURE", "run_command", CODES.COMMAND_MISSING + ": ipset",
                       "Executable not found"]


def test_a_command_that_hangs_is_a_plain_plugin_failure(commands, failure):
    def hang(argv, text):
        raise harness.dom0lib().errors.PluginError(CODES.COMMAND_TIMEOUT, "ip", "120")
    commands.on("ip", handler=hang)
    details = _failure_details(failure, ["ip", "link", "show"])
    assert details == ["XENAPI_PLUGIN_FAILURE", "run_command", CODES.COMMAND_TIMEOUT, "ip; 120"]


@pytest.mark.parametrize("raw", [
    {"cmd": "ip link show", "cmd_input": "null"},
    {"cmd": '["ip", "link", "show"]', "cmd_input": "not json"},
    {"cmd": '["ip", "link", "show"]', "cmd_input": "null", "shell": "true"},
    {"cmd": "[\"ip\", NaN]"},
], ids=["cmd-not-json", "cmd_input-not-json", "unknown-key", "nan"])
def test_a_malformed_plain_call_is_refused_in_the_same_shape(programs, failure, raw):
    details = _failure_details(failure, None, raw=raw)
    assert details[0] == "XENAPI_PLUGIN_FAILURE" and len(details) == 4
    assert details[2].startswith(CODES.INVALID_ARGUMENT)
    assert programs.calls == []


def test_the_json_form_keeps_the_typed_codes(programs, failure):
    with pytest.raises(failure) as info:
        harness.call("netwrap", "run_command", ["bash"])
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "netwrap.run_command", "cmd"]


def test_cmd_input_null_and_absent_mean_no_input(programs):
    harness.call_plain("netwrap", "run_command", {"cmd": '["ip", "link", "show"]'})
    harness.call_plain("netwrap", "run_command", {"cmd": '["ip", "link", "show"]',
                                                  "cmd_input": "null"})
    assert programs.inputs == [None, None]


def test_runs_under_the_dom0_python_the_way_xapi_runs_it(dom0_root):
    status, details = harness.run_like_xapi(
        harness.PLUGINS / "netwrap.py", "run_command",
        {"cmd": json.dumps(["ip", "netns", "exec", "x", "sh"]), "cmd_input": "null",
         "host_uuid": "2f1c2a54-1111-2222-3333-444455556666"},
        env_extra={"DOM0_ROOT": str(dom0_root)})
    assert status == "Failure"
    assert details[0] == "XENAPI_PLUGIN_FAILURE" and details[3] == "Unauthorized command"


def test_empty_input_is_fed_as_empty_input(programs):
    _neutron(["iptables-restore", "-n"], "")
    assert programs.inputs == [""]
