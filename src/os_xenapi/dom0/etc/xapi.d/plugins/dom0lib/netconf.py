"""The network commands xenhost may run: an allow-list of exact command shapes, not program names.

network_config's 17 commands (os-xenapi 0.3.4's names and arguments) each map to one
fixed ovs-vsctl, ip or brctl argument list; the caller only fills typed slots (interface
names, a MAC, on/off). iptables_config accepts only save/restore with a few known options.
Every builder returns an argument list for commands.run; nothing here runs anything.
"""

from dom0lib.errors import InvalidArgument
from dom0lib.validate import IFNAME, MAC, Choice, Int, Invalid, Str, Struct

# An OVS external-ids key, and its value: ovs-vsctl reads "key=value" itself, so neither may
# hold "=", "," or quotes.
_EXTERNAL_ID_KEY = Str(64, r"[A-Za-z0-9_.:-]+", what="an external-ids key: A-Z a-z 0-9 _ . : -")
_EXTERNAL_ID_VALUE = Str(255, r"[A-Za-z0-9_.:/@+-]*",
                         what="an external-ids value: A-Z a-z 0-9 _ . : / @ + -")
# Neutron's iface-id (a port UUID) and its status words.
_IFACE_ID = Str(64, r"[A-Za-z0-9][A-Za-z0-9_.:-]*", what="an interface id such as a port UUID")
_IFACE_STATUS = Choice("active", "inactive")
_UP_DOWN = Choice("up", "down")
_ON_OFF = Choice("on", "off")
# The bridge forward delay in seconds; the Linux bridge accepts up to 30.
_FORWARD_DELAY = Int(0, 30)


def _ovs_add_patch_port(a):
    return ["ovs-vsctl", "--", "--if-exists", "del-port", a["port_name"],
            "--", "add-port", a["bridge_name"], a["port_name"],
            "--", "set", "interface", a["port_name"], "type=patch",
            "options:peer=" + a["peer_port_name"]]


def _ovs_add_port(a):
    return ["ovs-vsctl", "--", "--if-exists", "del-port", a["port_name"],
            "--", "add-port", a["bridge_name"], a["port_name"]]


def _ovs_create_port(a):
    return ["ovs-vsctl", "--", "--if-exists", "del-port", a["port"],
            "--", "add-port", a["bridge"], a["port"],
            "--", "set", "Interface", a["port"],
            "external_ids:iface-id=" + a["iface-id"],
            "external_ids:iface-status=" + a["status"],
            "external_ids:attached-mac=" + a["mac"],
            "external_ids:xs-vif-uuid=" + a["iface-id"]]


def _ovs_del_port(a):
    return ["ovs-vsctl", "--", "--if-exists", "del-port", a["bridge_name"], a["port_name"]]


def _ovs_del_br(a):
    return ["ovs-vsctl", "--", "--if-exists", "del-br", a["bridge_name"]]


def _ovs_set_if_external_id(a):
    # 0.3.4 spelled the key "extneral_id"; both spellings are accepted.
    key = a.get("external_id", a.get("extneral_id"))
    return ["ovs-vsctl", "set", "Interface", a["interface"],
            "external-ids:{}={}".format(key, a["value"])]


def _ip_link_add_veth_pair(a):
    return ["ip", "link", "add", a["dev1_name"], "type", "veth", "peer", "name", a["dev2_name"]]


def _ip_link_del_dev(a):
    return ["ip", "link", "delete", a["device_name"]]


def _ip_link_get_dev(a):
    return ["ip", "link", "show", a["device_name"]]


def _ip_link_set_dev(a):
    return ["ip", "link", "set", a["device_name"], a["option"]]


def _ip_link_set_promisc(a):
    return ["ip", "link", "set", a["device_name"], "promisc", a["option"]]


def _brctl_add_br(a):
    return ["brctl", "addbr", a["bridge_name"]]


def _brctl_add_if(a):
    return ["brctl", "addif", a["bridge_name"], a["interface_name"]]


def _brctl_del_br(a):
    return ["brctl", "delbr", a["bridge_name"]]


def _brctl_del_if(a):
    return ["brctl", "delif", a["bridge_name"], a["interface_name"]]


def _brctl_set_fd(a):
    return ["brctl", "setfd", a["bridge_name"], str(a["fd"])]


def _brctl_set_stp(a):
    return ["brctl", "stp", a["bridge_name"], a["option"]]


_BRIDGE = {"bridge_name": IFNAME}
_BRIDGE_PORT = {"bridge_name": IFNAME, "port_name": IFNAME}
_BRIDGE_IF = {"bridge_name": IFNAME, "interface_name": IFNAME}

# name -> (argument object type, argument list builder)
NETWORK_COMMANDS = {
    "ovs_add_patch_port": (Struct(dict(_BRIDGE_PORT, peer_port_name=IFNAME)), _ovs_add_patch_port),
    "ovs_add_port": (Struct(_BRIDGE_PORT), _ovs_add_port),
    "ovs_create_port": (Struct({"bridge": IFNAME, "port": IFNAME, "iface-id": _IFACE_ID,
                                "mac": MAC, "status": _IFACE_STATUS}), _ovs_create_port),
    "ovs_del_port": (Struct(_BRIDGE_PORT), _ovs_del_port),
    "ovs_del_br": (Struct(_BRIDGE), _ovs_del_br),
    "ovs_set_if_external_id": (Struct({"interface": IFNAME, "external_id": _EXTERNAL_ID_KEY,
                                       "extneral_id": _EXTERNAL_ID_KEY,
                                       "value": _EXTERNAL_ID_VALUE},
                                      optional=("external_id", "extneral_id")),
                               _ovs_set_if_external_id),
    "ip_link_add_veth_pair": (Struct({"dev1_name": IFNAME, "dev2_name": IFNAME}),
                              _ip_link_add_veth_pair),
    "ip_link_del_dev": (Struct({"device_name": IFNAME}), _ip_link_del_dev),
    "ip_link_get_dev": (Struct({"device_name": IFNAME}), _ip_link_get_dev),
    "ip_link_set_dev": (Struct({"device_name": IFNAME, "option": _UP_DOWN}), _ip_link_set_dev),
    "ip_link_set_promisc": (Struct({"device_name": IFNAME, "option": _ON_OFF}),
                            _ip_link_set_promisc),
    "brctl_add_br": (Struct(_BRIDGE), _brctl_add_br),
    "brctl_add_if": (Struct(_BRIDGE_IF), _brctl_add_if),
    "brctl_del_br": (Struct(_BRIDGE), _brctl_del_br),
    "brctl_del_if": (Struct(_BRIDGE_IF), _brctl_del_if),
    "brctl_set_fd": (Struct(dict(_BRIDGE, fd=_FORWARD_DELAY)), _brctl_set_fd),
    "brctl_set_stp": (Struct(dict(_BRIDGE, option=_ON_OFF)), _brctl_set_stp),
}


def network_argv(cmd: str, args: dict) -> list:
    """Return the argument list of network command cmd with args checked against its shape.

    Raises InvalidArgument naming "args" and the rule that failed.
    """
    shape, build = NETWORK_COMMANDS[cmd]
    try:
        checked = shape.check(args)
    except Invalid as exc:
        raise InvalidArgument("args", f"for {cmd}: {exc}") from None
    if cmd == "ovs_set_if_external_id" and ("external_id" in checked) == ("extneral_id" in checked):
        raise InvalidArgument("args", "for ovs_set_if_external_id: give exactly one of "
                              "external_id and extneral_id")
    return build(checked)


# iptables_config: the programs, and the options each may take. "-t" takes a table name.
IPTABLES_PROGRAMS = {
    "iptables-save": ("-c", "--counters"),
    "ip6tables-save": ("-c", "--counters"),
    "iptables-restore": ("-c", "--counters", "-n", "--noflush"),
    "ip6tables-restore": ("-c", "--counters", "-n", "--noflush"),
}
IPTABLES_TABLES = ("filter", "nat", "mangle", "raw", "security")
# The xtables lock options of *-restore (Neutron's iptables_manager sends -w 10 -W 200000):
# how long to wait for the lock, in seconds, and how often to try, in microseconds.
RESTORE_VALUE_OPTIONS = {
    "-w": Int(1, 600), "--wait": Int(1, 600),
    "-W": Int(1, 10000000), "--wait-interval": Int(1, 10000000),
}


def iptables_argv(cmd_args: list, has_input: bool) -> list:
    """Check an iptables save/restore command line against the allow-list and return it.

    Only *-restore reads rules from process_input; only *-save may choose a table.
    Raises InvalidArgument.
    """
    program = cmd_args[0]
    if program not in IPTABLES_PROGRAMS:
        raise InvalidArgument("cmd_args", "must start with one of " + ", ".join(
            sorted(IPTABLES_PROGRAMS)))
    restore = program.endswith("-restore")
    if has_input != restore:
        raise InvalidArgument("process_input", "is required by *-restore and refused by *-save")
    options = list(cmd_args[1:])
    index = 0
    while index < len(options):
        option = options[index]
        if option in ("-t", "--table") and not restore:
            if index + 1 >= len(options) or options[index + 1] not in IPTABLES_TABLES:
                raise InvalidArgument("cmd_args", "-t must be followed by one of "
                                      + ", ".join(IPTABLES_TABLES))
            index += 2
            continue
        if option in RESTORE_VALUE_OPTIONS and restore:
            try:
                RESTORE_VALUE_OPTIONS[option].check(options[index + 1]
                                                    if index + 1 < len(options) else None)
            except Invalid as exc:
                raise InvalidArgument("cmd_args", f"{option} takes a number, which {exc}") from None
            index += 2
            continue
        if option not in IPTABLES_PROGRAMS[program]:
            extra = ("-w N", "-W N") if restore else ("-t",)
            raise InvalidArgument("cmd_args", "{} accepts only the options {}".format(
                program, ", ".join(IPTABLES_PROGRAMS[program] + extra)))
        index += 1
    return [program] + options
