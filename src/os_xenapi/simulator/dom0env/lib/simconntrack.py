"""conntrack of the simulated dom0: one simulated host's connection tracking table, kept in
simnet's per-host netfilter state; never the real kernel's.

    conntrack -L|-D|-F [-f ipv4|ipv6] [FILTER...]
    conntrack -I -p PROTO -s SRC -d DST [--sport N --dport N | --icmp-type N --icmp-code N
                 --icmp-id N] -t TIMEOUT [--state STATE] [-w ZONE] [-m MARK]

FILTER is -p, -s, -d, --sport, --dport, -w (zone), -m (mark), --icmp-type, --icmp-code, each
compared with the original direction of an entry. -L lists, -D deletes (printing each deleted
entry) and -F flushes the matching entries of the family (ipv4 unless -f says otherwise); -I
adds one, which is how a test fills the table. Entries expire after their timeout, as the
kernel's do. As conntrack does, the count goes to stderr ("N flow entries have been deleted.")
and a -D, -I or -F that touched no entry exits 1.
"""

import ipaddress
import sys
import time

from simnet import CommandError, host_state, run

VERSION = "1.4.4"
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132}
TCP_STATES = ("SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
              "TIME_WAIT", "CLOSE")
MESSAGES = {"-L": "shown", "-D": "deleted", "-I": "created", "-F": "deleted"}
# option -> (entry key, how the value is read)
OPTIONS = {
    "-p": ("proto", str), "--proto": ("proto", str),
    "-s": ("src", "address"), "--src": ("src", "address"), "--orig-src": ("src", "address"),
    "-d": ("dst", "address"), "--dst": ("dst", "address"), "--orig-dst": ("dst", "address"),
    "--sport": ("sport", int), "--orig-port-src": ("sport", int),
    "--dport": ("dport", int), "--orig-port-dst": ("dport", int),
    "-w": ("zone", int), "--zone": ("zone", int), "-m": ("mark", int), "--mark": ("mark", int),
    "--icmp-type": ("icmp_type", int), "--icmp-code": ("icmp_code", int),
    "--icmp-id": ("icmp_id", int), "-t": ("timeout", int), "--timeout": ("timeout", int),
    "--state": ("state", str), "-f": ("family", str), "--family": ("family", str),
}


def _fail(message):
    return CommandError(f"conntrack v{VERSION} (conntrack-tools): {message}")


def _value(option, kind, text):
    if kind == "address":
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise _fail(f"Bad parameter `{text}'") from None
    if kind is int:
        if not text.isdigit():
            raise _fail(f"Bad parameter `{text}'")
        return int(text)
    return text


def _parse(argv):
    """(command, {key: value}) of a command line."""
    commands = [word for word in argv if word in MESSAGES]
    if len(commands) != 1:
        raise _fail("Invalid commands combination" if commands else "no command specified")
    words = [word for word in argv if word not in MESSAGES]
    given = {}
    while words:
        option = words.pop(0)
        if option not in OPTIONS or not words:
            raise _fail(f"Bad parameter `{option}'" if option not in OPTIONS
                        else f"option `{option}' requires an argument")
        key, kind = OPTIONS[option]
        given[key] = _value(option, kind, words.pop(0))
    family = given.setdefault("family", "ipv4")
    if family not in ("ipv4", "ipv6"):
        raise _fail(f"`{family}' unsupported protocol")
    if given.get("proto", "tcp") not in PROTOCOLS:
        raise _fail(f"`{given['proto']}' unsupported protocol")
    for key in ("src", "dst"):
        if key in given and ipaddress.ip_address(given[key]).version != int(family[-1]):
            raise _fail(f"Bad parameter `{given[key]}'")
    return commands[0], given


def _new_entry(given):
    needed = ["proto", "src", "dst", "timeout"]
    proto = given.get("proto")
    if proto in ("tcp", "udp", "sctp"):
        needed += ["sport", "dport"]
    if proto == "tcp":
        needed.append("state")
    if proto in ("icmp", "icmpv6"):
        needed += ["icmp_type", "icmp_code", "icmp_id"]
    missing = [key for key in needed if key not in given]
    if missing:
        raise _fail(f"missing required parameter: {missing[0]}")
    if proto == "tcp" and given["state"] not in TCP_STATES:
        raise _fail(f"Bad parameter `{given['state']}'")
    return dict({"zone": 0, "mark": 0}, **given, created=time.time())


def _selected(entry, given):
    return all(entry.get(key) == value for key, value in given.items() if key != "timeout")


def _shown(entry, now):
    """One entry as conntrack prints it: the original tuple, then the reply tuple."""
    proto = entry["proto"]
    left = max(int(entry["timeout"] - (now - entry["created"])), 0)
    words = [f"{proto:<8} {PROTOCOLS[proto]} {left}"]
    if proto == "tcp":
        words.append(entry["state"])
    if "sport" in entry:
        forward = f"sport={entry['sport']} dport={entry['dport']}"
        backward = f"sport={entry['dport']} dport={entry['sport']}"
    else:
        forward = (f"type={entry['icmp_type']} code={entry['icmp_code']} "
                   f"id={entry['icmp_id']}")
        backward = f"type=0 code=0 id={entry['icmp_id']}"
    words.append(f"src={entry['src']} dst={entry['dst']} {forward}")
    words.append(f"src={entry['dst']} dst={entry['src']} {backward}")
    words.append(f"mark={entry['mark']}")
    if entry["zone"]:
        words.append(f"zone={entry['zone']}")
    return " ".join(words) + " use=1\n"


def main(host, argv):
    """Run a conntrack command line on the host state; return stdout. The count line goes to
    stderr, and a change that touched nothing raises CommandError with it."""
    command, given = _parse(argv)
    now = time.time()
    table = [entry for entry in host["conntrack"]
             if now - entry["created"] < entry["timeout"]]
    if command == "-I":
        chosen = [_new_entry(given)]
        table.append(chosen[0])
    else:
        chosen = [entry for entry in table if _selected(entry, given)]
        if command in ("-D", "-F"):
            table = [entry for entry in table if entry not in chosen]
    host["conntrack"] = table
    summary = f"{len(chosen)} flow entries have been {MESSAGES[command]}."
    if not chosen and command != "-L":
        raise _fail(summary)
    sys.stderr.write(f"conntrack v{VERSION} (conntrack-tools): {summary}\n")
    shown = "" if command in ("-I", "-F") else "".join(_shown(entry, now) for entry in chosen)
    return shown


def command(argv):
    """The conntrack stand-in's whole run on this host's state; returns its exit status."""
    return run("conntrack", main, argv, which=host_state)
