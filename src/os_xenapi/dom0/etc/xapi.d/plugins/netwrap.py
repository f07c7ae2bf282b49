#!/usr/bin/python3 -B
"""netwrap: run one of an allow-list of exact network commands for Neutron's agent in dom0.

os-xenapi 0.3.4 ran any command whose first word was one of eleven programs, so `ip netns
exec` could run anything and `sysctl -w` could change any kernel setting. Here the whole
argument list must match one allowed shape (dom0lib.argshape): literal words, and typed
slots for interface names, MACs, numbers, flows... The shapes are listed below and in the
dom0 README: every command line Neutron's OVS agent builds, in its own argument order. The
result is the command's exit code and output whatever the exit code, as Neutron's root
helper expects.

`ovsdb-client monitor` never ends by itself, which one plugin call cannot serve: netwrap
runs it for a window (ovsdb-client's own --timeout, MONITOR_SECONDS unless the caller gives
one, at most MONITOR_MAX_SECONDS) and returns what it printed meanwhile, with returncode 0
when the window simply ran out. A caller that polls gets the table, then its changes.

Neutron's root helper calls run_command with os-xenapi 0.3.4's plain arguments ({"cmd":
JSON list, "cmd_input": JSON string or null}) and turns a failure into a return code by its
details: those calls fail as XENAPI_PLUGIN_FAILURE [run_command, code and reason,
"Unauthorized command" | "Executable not found" | message], the four details it reads.
"""

import signal

import dom0lib
import XenAPIPlugin
from dom0lib import argshape, commands, netconf
from dom0lib.errors import COMMAND_MISSING, INVALID_ARGUMENT, InvalidArgument
from dom0lib.validate import (
    IFNAME,
    MAC,
    UUID,
    Choice,
    Int,
    IPAddress,
    IPNetwork,
    List,
    Nullable,
    Str,
)

TIMEOUT = 120.0
# The whole params document must fit in one argv string of XAPI's (128 KiB, see protocol.py).
MAX_INPUT = 120 * 1024
MAX_VSCTL_COMMANDS = 8
MONITOR_SECONDS = 2
MONITOR_MAX_SECONDS = 60
# ovsdb-client's --timeout ends it with SIGALRM, as the real one does.
MONITOR_ENDED = -signal.SIGALRM
OVSDB_LOCAL = "unix:/var/run/openvswitch/db.sock"
# What Neutron's xenapi_root_helper compares details[3] with (oslo.rootwrap's messages).
UNAUTHORIZED = "Unauthorized command"
NOT_FOUND_MESSAGE = "Executable not found"
_KEY = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"
# An OVSDB atom on the command line: bare (no comma, which separates set members) or quoted.
_ATOM = r'("[A-Za-z0-9_.:/@+, -]{0,255}"|[A-Za-z0-9_.:/@+-]{0,255})'
_OVS_SETTING = (
    r"(external_ids|external-ids|other_config|other-config|options):" + _KEY + "=" + _ATOM
    + r"|tag=[0-9]{1,4}|type=(internal|patch|vxlan|gre|geneve|system)"
    + r"|vlan_mode=(access|trunk|native-tagged|native-untagged)"
    + r"|protocols=\[?OpenFlow1[0-5](,OpenFlow1[0-5]){0,5}\]?"
    + r"|datapath_type=(system|netdev)|fail_mode=(secure|standalone)|mtu_request=[0-9]{2,5}")
_SYSCTL_BRIDGE_NF = r"net\.bridge\.bridge-nf-call-(arptables|iptables|ip6tables)"
_SYSCTL_IPV6_OFF = r"net\.ipv6\.conf\.[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}\.disable_ipv6"

SLOTS = {
    "ifname": IFNAME,
    "bridge": IFNAME,
    "port": IFNAME,
    "updown": Choice("up", "down"),
    "onoff": Choice("on", "off"),
    "mtu": Int(68, 65535),
    "mac": MAC,
    "timeout": Int(1, 600),
    "window": Int(1, MONITOR_MAX_SECONDS),
    "columns": Str(512, r"[A-Za-z_][A-Za-z0-9_]*(,[A-Za-z_][A-Za-z0-9_]*)*",
                   what="column names separated by commas"),
    "table": Choice("Bridge", "Port", "Interface"),
    "record": Str(36, r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}|" + UUID.regex.pattern,
                  what="an interface, port or bridge name, or a record UUID"),
    "column": Str(128, r"[A-Za-z_][A-Za-z0-9_]*(:" + _KEY + ")?", what="a column[:key]"),
    "condition": Str(512, r"[A-Za-z_][A-Za-z0-9_]*(:" + _KEY + ")?=" + _ATOM,
                     what="a column[:key]=value condition"),
    "setting": Str(512, _OVS_SETTING, what="an allowed column setting (see the dom0 README)"),
    "clearable": Choice("tag", "trunks", "external_ids", "other_config"),
    "map_column": Choice("external_ids", "other_config"),
    "key": Str(64, _KEY, what="a key: A-Z a-z 0-9 _ . -"),
    "value": Str(255, r"[A-Za-z0-9_.:/@+,-]+", what="a value: A-Z a-z 0-9 _ . : / @ + , -"),
    "fail_mode": Choice("secure", "standalone"),
    "of_protocols": Str(64, r"OpenFlow1[0-5](,OpenFlow1[0-5]){0,5}",
                        what="OpenFlow versions such as OpenFlow10,OpenFlow13"),
    "flow": Str(4096, r"[A-Za-z][\x20-\x7e]*", what="one flow or match in ovs-ofctl syntax"),
    "flows_verb": Choice("add-flows", "mod-flows", "del-flows"),
    "port_no": Int(0, 65535),
    "ipset": Str(31, r"[A-Za-z0-9_][A-Za-z0-9_-]{0,30}", what="an ipset name"),
    "settype": Choice("hash:net", "hash:ip"),
    "family": Choice("inet", "inet6"),
    "maxelem": Int(1, 1 << 24),
    "cidr": IPNetwork(),
    "bridge_nf_setting": Str(64, _SYSCTL_BRIDGE_NF + "=[01]", what="a bridge-nf-call setting"),
    "ipv6_off_setting": Str(64, _SYSCTL_IPV6_OFF + "=[01]", what="an interface's disable_ipv6"),
    "sysctl_key": Str(64, _SYSCTL_BRIDGE_NF + "|" + _SYSCTL_IPV6_OFF, what="an allowed key"),
}


def _shapes(*texts, stdin=False):
    return [argshape.Shape(text, SLOTS, stdin=stdin) for text in texts]


# Every command netwrap runs, but ovs-vsctl (VSCTL_COMMANDS) and iptables (dom0lib.netconf).
SHAPES = _shapes(
    "ip [-o] link show",
    "ip [-o] link show [dev] {ifname}",
    "ip link set [dev] {ifname} {updown}",
    "ip link set [dev] {ifname} mtu {mtu}",
    "ip link set [dev] {ifname} address {mac}",
    "ip link set [dev] {ifname} promisc {onoff}",
    "ip link set [dev] {ifname} master {bridge}",
    "ip link set [dev] {ifname} nomaster",
    "ip link add {ifname} type veth peer name {ifname}",
    "ip link delete [dev] {ifname}",
    "ip link del [dev] {ifname}",
    "ip [-o] addr show",
    "ip [-o] addr show [dev] {ifname}",
    "ovs-ofctl [-O {of_protocols}] dump-flows {bridge} [{flow}]",
    "ovs-ofctl [-O {of_protocols}] add-flow {bridge} {flow}",
    "ovs-ofctl [-O {of_protocols}] [--strict] mod-flows {bridge} {flow}",
    "ovs-ofctl [-O {of_protocols}] [--strict] del-flows {bridge} [{flow}]",
    "ovs-ofctl [-O {of_protocols}] show {bridge}",
    "ovs-ofctl [-O {of_protocols}] dump-ports-desc {bridge}",
    "ovs-ofctl [-O {of_protocols}] dump-ports {bridge} [{port_no}]",
    "ovs-ofctl [-O {of_protocols}] dump-tables {bridge}",
    # Neutron's ovs_lib.run_ofctl: the verb, then -O, the bridge and the verb's arguments.
    "ovs-ofctl dump-flows [-O {of_protocols}] {bridge} [{flow}]",
    "ovs-ofctl add-flow [-O {of_protocols}] {bridge} {flow}",
    "ovs-ofctl mod-flows [-O {of_protocols}] {bridge} [--strict] {flow}",
    "ovs-ofctl del-flows [-O {of_protocols}] {bridge} [--strict] [{flow}]",
    "ovs-ofctl show [-O {of_protocols}] {bridge}",
    "ovs-ofctl dump-ports-desc [-O {of_protocols}] {bridge}",
    "ovs-ofctl dump-ports [-O {of_protocols}] {bridge} [{port_no}]",
    "ovs-ofctl dump-tables [-O {of_protocols}] {bridge}",
    # Neutron's polling.InterfacePollingMinimizer, for a window (see run_command).
    "ovsdb-client [--timeout={window}] monitor [" + OVSDB_LOCAL + "] [Open_vSwitch] Interface "
    "{columns} [--format=json]",
    "ipset create -exist {ipset} {settype} family {family} [maxelem {maxelem}]",
    "ipset list {ipset}",
    "ipset list -name",
    "ipset destroy {ipset}",
    "ipset flush {ipset}",
    "ipset swap {ipset} {ipset}",
    "ipset add -exist {ipset} {cidr}",
    "ipset del [-exist] {ipset} {cidr}",
    "sysctl -w {bridge_nf_setting}",
    "sysctl -w {ipv6_off_setting}",
    "sysctl -n {sysctl_key}",
) + _shapes(
    "ovs-ofctl [-O {of_protocols}] [--strict] {flows_verb} {bridge} -",
    "ovs-ofctl {flows_verb} [-O {of_protocols}] {bridge} [--strict] -",
    "ipset restore -exist",
    stdin=True,
) + [
    argshape.Options("conntrack -D", {
        "-f": Choice("ipv4", "ipv6"), "-p": Choice("tcp", "udp", "icmp", "icmpv6", "sctp"),
        "-s": IPAddress(), "-d": IPAddress(), "-w": Int(0, 65535),
        "--sport": Int(1, 65535), "--dport": Int(1, 65535),
        "--icmp-type": Int(0, 255), "--icmp-code": Int(0, 255)},
        required_any=("-s", "-d", "-w")),
]

# ovs-vsctl [--timeout=N] [--oneline] [--format=json] [--] COMMAND [-- COMMAND]...
VSCTL_OPTIONS = _shapes("--timeout={timeout}", "--oneline", "--format=json")
VSCTL_COMMANDS = _shapes(
    "list-br",
    "br-exists {bridge}",
    "list-ports {bridge}",
    "list-ifaces {bridge}",
    "port-to-br {port}",
    "iface-to-br {port}",
    "[--may-exist] add-br {bridge}",
    "[--if-exists] del-br {bridge}",
    "[--may-exist] add-port {bridge} {port}",
    "[--if-exists] del-port [{bridge}] {port}",
    "set-fail-mode {bridge} {fail_mode}",
    "br-get-external-id {bridge} [{key}]",
    "br-set-external-id {bridge} {key} [{value}]",
    "[--columns={columns}] list {table} [{record}...]",
    "[--columns={columns}] find {table} {condition}...",
    "get {table} {record} {column}...",
    "set {table} {record} {setting}...",
    "clear {table} {record} {clearable}",
    "remove {table} {record} {map_column} {key}",
)
PROGRAMS = sorted({shape.program for shape in SHAPES} | {"ovs-vsctl"}
                  | set(netconf.IPTABLES_PROGRAMS))


def _vsctl_allowed(argv):
    """Whether an ovs-vsctl command line is global options then allowed commands split by --."""
    rest = argv[1:]
    index, seen = 0, set()
    while index < len(rest) and rest[index] != "--":
        option = argshape.find(VSCTL_OPTIONS, [rest[index]])
        if option is None:
            break
        if option.text in seen:
            return False
        seen.add(option.text)
        index += 1
    segments, current = [], []
    for token in rest[index:]:
        if token == "--":
            segments.append(current)
            current = []
        else:
            current.append(token)
    segments.append(current)
    if segments[0] == [] and len(segments) > 1:
        segments = segments[1:]
    if not 1 <= len(segments) <= MAX_VSCTL_COMMANDS:
        return False
    return all(segment and argshape.find(VSCTL_COMMANDS, segment) for segment in segments)


def allowed_argv(cmd, cmd_input):
    """Return cmd if it is an allowed shape with the input it needs; raise InvalidArgument."""
    program = cmd[0]
    if program not in PROGRAMS:
        raise InvalidArgument("cmd", "must start with one of " + ", ".join(PROGRAMS))
    if program in netconf.IPTABLES_PROGRAMS:
        try:
            return netconf.iptables_argv(cmd, cmd_input is not None)
        except InvalidArgument as exc:
            raise InvalidArgument("cmd" if exc.argument == "cmd_args" else "cmd_input",
                                  exc.reason) from None
    if program == "ovs-vsctl":
        if not _vsctl_allowed(cmd):
            raise InvalidArgument("cmd", "is not an allowed ovs-vsctl command line (see the "
                                  "dom0 README, netwrap)")
        reads_input = False
    else:
        shape = argshape.find(SHAPES, cmd)
        if shape is None:
            raise InvalidArgument("cmd", f"is not one of the allowed {program} command shapes "
                                  "(see the dom0 README, netwrap)")
        reads_input = shape.stdin
    if reads_input and cmd_input is None:
        raise InvalidArgument("cmd_input", "is required by this command, which reads its input")
    if not reads_input and cmd_input is not None:
        raise InvalidArgument("cmd_input", "is refused: this command reads no input")
    if program == "ovsdb-client" and not any(word.startswith("--timeout=") for word in cmd):
        return [program, f"--timeout={MONITOR_SECONDS}"] + list(cmd[1:])
    return list(cmd)


def root_helper_failure(code, details, function):
    """A failure as Neutron's xenapi_root_helper reads it: XENAPI_PLUGIN_FAILURE with four
    details, the last "Unauthorized command" for a refused command line, "Executable not
    found" for a missing program (its return codes 99 and 98), a message otherwise (80).
    The typed code and, for a refusal, the reason stay in the third detail."""
    if code == INVALID_ARGUMENT:
        _, argument, reason = (details + ["", "", ""])[:3]
        return "XENAPI_PLUGIN_FAILURE", [function, f"{code}: {argument} {reason}", UNAUTHORIZED]
    if code == COMMAND_MISSING:
        return "XENAPI_PLUGIN_FAILURE", [function, f"{code}: {'; '.join(details)}",
                                         NOT_FOUND_MESSAGE]
    return "XENAPI_PLUGIN_FAILURE", [function, code, "; ".join(details) or code]


@dom0lib.plain(json_keys=("cmd", "cmd_input"), failure=root_helper_failure)
@dom0lib.takes(cmd=List(Str(4096), 64, min_items=1),
               cmd_input=Nullable(Str(MAX_INPUT, multiline=True)))
def run_command(ctx, cmd, cmd_input=None):
    """Run cmd if its whole argument list is an allowed shape, feeding it cmd_input; return
    {"returncode", "out", "err"} whatever the exit code (the caller judges it).

    ovsdb-client monitor runs for its window only; returncode is 0 when the window ran out.
    """
    result = commands.run(allowed_argv(cmd, cmd_input), input_text=cmd_input, timeout=TIMEOUT,
                          ok_codes=commands.ANY_EXIT)
    returncode = result.returncode
    if cmd[0] == "ovsdb-client" and returncode == MONITOR_ENDED:
        returncode = 0
    return {"returncode": returncode, "out": result.stdout, "err": result.stderr}


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register("netwrap", run_command))
