"""Open vSwitch as the simulated dom0's stand-ins see it: interfaces with their OpenFlow port
numbers and OVSDB row uuids, and the flow syntax of ovs-ofctl, on simnet's shared state.

A bridge of simnet.json is ``{"ports": [names], "flows": [flow records]}``; an interface is
``{"external_ids": {}, "ofport": N, "_uuid": "..."}``. A flow record is ``{"table", "priority",
"cookie", "match": {field: value}, "actions", "idle_timeout", "hard_timeout", "added"}``. States
saved before ofports and uuids existed get stable ones derived from the names.
"""

import time
import uuid

from simnet import CommandError

LOCAL_PORT = 65534  # OFPP_LOCAL: the bridge's own internal interface
DEFAULT_PRIORITY = 32768
MAX_TABLE = 254

# Shortcut keyword -> the match fields it stands for, as ovs-fields(7) defines them.
SHORTCUTS = {
    "ip": {"dl_type": 0x0800}, "ipv6": {"dl_type": 0x86DD}, "arp": {"dl_type": 0x0806},
    "rarp": {"dl_type": 0x8035},
    "icmp": {"dl_type": 0x0800, "nw_proto": 1}, "tcp": {"dl_type": 0x0800, "nw_proto": 6},
    "udp": {"dl_type": 0x0800, "nw_proto": 17}, "sctp": {"dl_type": 0x0800, "nw_proto": 132},
    "icmp6": {"dl_type": 0x86DD, "nw_proto": 58}, "tcp6": {"dl_type": 0x86DD, "nw_proto": 6},
    "udp6": {"dl_type": 0x86DD, "nw_proto": 17}, "sctp6": {"dl_type": 0x86DD, "nw_proto": 132},
}
# Other names of the same fields; flows are kept and compared under the first name.
ALIASES = {
    "eth_src": "dl_src", "eth_dst": "dl_dst", "eth_type": "dl_type", "ip_src": "nw_src",
    "ip_dst": "nw_dst", "ip_proto": "nw_proto", "ip_dscp": "nw_tos", "tcp_src": "tp_src",
    "tcp_dst": "tp_dst", "udp_src": "tp_src", "udp_dst": "tp_dst", "icmp_type": "tp_src",
    "icmp_code": "tp_dst", "vlan_vid": "dl_vlan", "vlan_pcp": "dl_vlan_pcp",
}
NUMERIC_FIELDS = {"in_port", "dl_type", "dl_vlan", "dl_vlan_pcp", "nw_proto", "nw_tos", "nw_ttl",
                  "tp_src", "tp_dst", "arp_op", "icmpv6_type", "icmpv6_code", "ct_zone",
                  "ct_mark", "metadata", "tun_id", "vlan_tci", "pkt_mark", "tcp_flags",
                  "reg0", "reg1", "reg2", "reg3", "reg4", "reg5", "reg6", "reg7"}
TEXT_FIELDS = {"dl_src", "dl_dst", "nw_src", "nw_dst", "arp_spa", "arp_tpa", "arp_sha",
               "arp_tha", "ipv6_src", "ipv6_dst", "nd_target", "nd_sll", "nd_tll", "ct_state",
               "ipv6_label", "nw_frag"}
# The order ovs-ofctl prints match fields in (after the priority and a protocol shortcut);
# fields not listed follow in name order.
FIELD_ORDER = ("metadata", "reg0", "reg1", "reg2", "reg3", "reg4", "reg5", "reg6", "reg7",
               "tun_id", "pkt_mark", "ct_state", "ct_zone", "ct_mark", "in_port", "vlan_tci",
               "dl_vlan", "dl_vlan_pcp", "dl_src", "dl_dst", "dl_type", "arp_op", "arp_spa",
               "arp_tpa", "arp_sha", "arp_tha", "nw_src", "nw_dst", "ipv6_src", "ipv6_dst",
               "ipv6_label", "nw_proto", "nw_tos", "nw_ttl", "nw_frag", "tp_src", "tp_dst",
               "tcp_flags", "icmpv6_type", "icmpv6_code", "nd_target", "nd_sll", "nd_tll")
# Not match fields: what a flow_mod says about the flow itself.
FLOW_KEYS = ("table", "priority", "cookie", "idle_timeout", "hard_timeout")


# -- interfaces ----------------------------------------------------------------------------------

def new_interface(state, bridge):
    """A new interface record for a port added to bridge: the lowest OpenFlow port number not
    in use on the bridge (from 1), and a fresh OVSDB row uuid."""
    used = {ofport(state, name) for name in state["bridges"][bridge]["ports"]}
    number = 1
    while number in used:
        number += 1
    return {"external_ids": {}, "ofport": number, "_uuid": str(uuid.uuid4())}


def ofport(state, name):
    """The OpenFlow port number of interface name (LOCAL for a bridge's own interface)."""
    if name in state["bridges"]:
        return LOCAL_PORT
    for bridge in state["bridges"].values():
        if name in bridge["ports"]:
            record = state["interfaces"].setdefault(name, {"external_ids": {}})
            if "ofport" not in record:
                record["ofport"] = bridge["ports"].index(name) + 1
            return record["ofport"]
    raise CommandError(f"ovs-ofctl: {name}: no such port")


def row_uuid(name):
    """The OVSDB row uuid of interface name, stable for states saved without one."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "simulated-ovsdb:Interface:" + name))


def bridge(state, name):
    """The bridge called name, as ovs-ofctl fails for a name that is none."""
    found = state["bridges"].get(name)
    if found is None:
        raise CommandError(f"ovs-ofctl: {name} is not a bridge or a socket")
    found.setdefault("flows", [])
    return found


# -- flow syntax ---------------------------------------------------------------------------------

def _number(field, text):
    try:
        return int(text, 0)
    except ValueError:
        raise CommandError(f"ovs-ofctl: {text}: invalid numeric format for {field}") from None


def _masked(field, text):
    """A numeric field's value as "value" or "value/mask", both in canonical hex."""
    value, _, mask = text.partition("/")
    shown = hex(_number(field, value))
    return shown + "/" + hex(_number(field, mask)) if mask else shown


def _split(text):
    """The key=value words of a flow, and its actions text (everything after actions=)."""
    head, found, actions = text.partition("actions=")
    if not found:
        head, found, actions = text.partition("action=")
    words = [word for word in head.replace(",", " ").split() if word]
    return words, (actions.strip() if found else None)


def parse_flow(text, need_actions):
    """A flow record from ovs-ofctl flow syntax. Raises CommandError in ovs-ofctl's manner for
    an unknown field, a bad number, missing actions (add) or actions where none belong."""
    words, actions = _split(text)
    if need_actions and actions is None:
        raise CommandError("ovs-ofctl: must specify an action")
    if not need_actions and actions is not None:
        raise CommandError("ovs-ofctl: unknown keyword actions")
    flow = {"table": None, "priority": None, "cookie": None, "match": {},
            "actions": actions or "drop", "idle_timeout": 0, "hard_timeout": 0}
    for word in words:
        key, has_value, value = word.partition("=")
        key = ALIASES.get(key, key)
        if not has_value:
            if key not in SHORTCUTS:
                raise CommandError(f"ovs-ofctl: unknown keyword {key}")
            flow["match"].update(SHORTCUTS[key])
        elif key in FLOW_KEYS:
            flow[key] = value if key == "cookie" else _number(key, value)
        elif key in NUMERIC_FIELDS:
            flow["match"][key] = _masked(key, value) if "/" in value else _number(key, value)
        elif key in TEXT_FIELDS:
            flow["match"][key] = value.lower()
        else:
            raise CommandError(f"ovs-ofctl: unknown field {key}")
    if flow["table"] is not None and not 0 <= flow["table"] < MAX_TABLE:
        raise CommandError(f"ovs-ofctl: invalid table {flow['table']}")
    return flow


def cookie_filter(flow):
    """(value, mask) of a "cookie=V/M" filter, or None when the flow gives none."""
    if flow["cookie"] is None or "/" not in flow["cookie"]:
        return None
    value, _, mask = flow["cookie"].partition("/")
    return _number("cookie", value), _number("cookie", mask) & 0xFFFFFFFFFFFFFFFF


def new_record(flow):
    """The record add-flow stores for a parsed flow (defaults filled, cookie a number)."""
    if flow["cookie"] is not None and "/" in flow["cookie"]:
        raise CommandError("ovs-ofctl: cannot set cookie with a mask")
    return {"table": flow["table"] or 0,
            "priority": DEFAULT_PRIORITY if flow["priority"] is None else flow["priority"],
            "cookie": _number("cookie", flow["cookie"]) if flow["cookie"] else 0,
            "match": flow["match"], "actions": flow["actions"],
            "idle_timeout": flow["idle_timeout"], "hard_timeout": flow["hard_timeout"],
            "added": time.time()}


def selects(pattern, record, strict):
    """Whether the flow_mod pattern (a parsed flow) applies to the stored record: its table (any
    when unset), its cookie filter, and its match: equal with the priority when strict, else
    every field of the pattern present in the record with the same value."""
    if pattern["table"] is not None and pattern["table"] != record["table"]:
        return False
    cookie = cookie_filter(pattern)
    if cookie is not None and (record["cookie"] & cookie[1]) != (cookie[0] & cookie[1]):
        return False
    if strict:
        priority = DEFAULT_PRIORITY if pattern["priority"] is None else pattern["priority"]
        return record["match"] == pattern["match"] and record["priority"] == priority
    return all(record["match"].get(key) == value for key, value in pattern["match"].items())


def _shown_value(value):
    return str(value) if isinstance(value, int) else value


def format_match(match, priority):
    """The match as ovs-ofctl prints it: priority (unless the default), a protocol shortcut
    where the fields make one, then the other fields."""
    rest = dict(match)
    words = [] if priority == DEFAULT_PRIORITY else [f"priority={priority}"]
    for name, fields in sorted(SHORTCUTS.items(), key=lambda item: -len(item[1])):
        if all(rest.get(key) == value for key, value in fields.items()):
            words.append(name)
            for key in fields:
                del rest[key]
            break
    rank = {name: index for index, name in enumerate(FIELD_ORDER)}
    for key in sorted(rest, key=lambda name: (rank.get(name, len(rank)), name)):
        words.append(f"{key}={_shown_value(rest[key])}")
    return ",".join(words)


def format_flow(record, now, openflow10):
    """One line of dump-flows for a stored flow record."""
    age = max(now - record["added"], 0.0)
    parts = [f" cookie={hex(record['cookie'])}", f"duration={age:.3f}s",
             f"table={record['table']}", "n_packets=0", "n_bytes=0"]
    for key in ("idle_timeout", "hard_timeout"):
        if record[key]:
            parts.append(f"{key}={record[key]}")
    if openflow10:
        parts.append(f"idle_age={int(age)}")
    match = format_match(record["match"], record["priority"])
    return ", ".join(parts) + ", " + (match + " " if match else "") + \
        "actions=" + record["actions"] + "\n"
