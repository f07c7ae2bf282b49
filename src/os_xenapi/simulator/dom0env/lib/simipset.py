"""ipset of the simulated dom0: hash:ip and hash:net sets of one simulated host, kept in simnet's
per-host netfilter state; never the real kernel's.

A set is ``{"type", "family", "hashsize", "maxelem", "members": [entry]}``. Entries are kept
normalised as the kernel keeps them (a hash:net entry is its network address and prefix, a host
prefix shown bare). ``restore`` applies its lines whole or not at all. A set that an iptables or
ip6tables rule of the host matches (``-m set --match-set NAME``) cannot be destroyed.
"""

import ipaddress
import sys

from simiptables import sets_in_use
from simnet import CommandError, host_state, run

VERSION = "v6.38"
TYPES = ("hash:net", "hash:ip")
FAMILIES = {"inet": 4, "inet6": 6}
MAX_NAME = 31
MAX_INPUT = 16 << 20


def _fail(message, line=None):
    where = f"Error in line {line}: " if line is not None else ""
    return CommandError(f"ipset {VERSION}: {where}{message}")


def _set(sets, name):
    found = sets.get(name)
    if found is None:
        raise _fail("The set with the given name does not exist")
    return found


def _entry(found, text):
    """The normalised entry text for a set, or CommandError when it does not fit the set."""
    version = FAMILIES[found["family"]]
    try:
        if found["type"] == "hash:ip":
            address = ipaddress.ip_address(text)
            network = ipaddress.ip_network(address)
        else:
            network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise _fail(f"Syntax error: cannot parse {text}: resolving to IPv{version} address "
                    "failed") from None
    if network.version != version:
        raise _fail(f"Syntax error: cannot parse {text}: resolving to IPv{version} address "
                    "failed")
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _create(sets, words, exist):
    if len(words) < 2:
        raise _fail("Syntax error: missing set name or type")
    name, kind, options = words[0], words[1], words[2:]
    if kind not in TYPES:
        raise _fail(f"Syntax error: typename '{kind}' is unknown")
    if not name or len(name) > MAX_NAME:
        raise _fail("Syntax error: setname is longer than 31 characters")
    settings = {"type": kind, "family": "inet", "hashsize": 1024, "maxelem": 65536}
    while options:
        option = options.pop(0)
        if option not in ("family", "hashsize", "maxelem") or not options:
            raise _fail(f"Syntax error: option {option} is not simulated")
        value = options.pop(0)
        if option == "family":
            if value not in FAMILIES:
                raise _fail(f"Syntax error: unknown family {value}")
            settings["family"] = value
        elif not value.isdigit() or int(value) < 1:
            raise _fail(f"Syntax error: '{value}' is invalid as number")
        else:
            settings[option] = int(value)
    if name in sets:
        old = {key: sets[name][key] for key in settings}
        if exist and old == settings:
            return
        raise _fail("Set cannot be created: set with the same name already exists")
    sets[name] = dict(settings, members=[])


def _list(sets, host, words):
    if words == ["-name"] or words == ["-n"]:
        return "".join(name + "\n" for name in sets)
    names = words or list(sets)
    used = sets_in_use(host)
    blocks = []
    for name in names:
        found = _set(sets, name)
        members = found["members"]
        blocks.append(
            f"Name: {name}\nType: {found['type']}\nRevision: {6 if found['type'] == 'hash:net' else 4}\n"
            f"Header: family {found['family']} hashsize {found['hashsize']} maxelem "
            f"{found['maxelem']}\nSize in memory: {448 + 32 * len(members)}\n"
            f"References: {1 if name in used else 0}\nNumber of entries: {len(members)}\n"
            "Members:\n" + "".join(member + "\n" for member in members))
    return "\n".join(blocks)


def _save(sets):
    lines = []
    for name, found in sets.items():
        lines.append(f"create {name} {found['type']} family {found['family']} hashsize "
                     f"{found['hashsize']} maxelem {found['maxelem']}")
        lines.extend(f"add {name} {member}" for member in found["members"])
    return "".join(line + "\n" for line in lines)


def _apply(sets, host, words, exist):
    """Run one ipset command (words without the program and -exist); return its output."""
    if not words:
        raise _fail("Syntax error: no command specified")
    command, args = words[0], words[1:]
    if command in ("create", "n", "-N"):
        _create(sets, args, exist)
    elif command in ("add", "a", "-A", "del", "d", "-D", "test", "t", "-T"):
        if len(args) != 2:
            raise _fail("Syntax error: a set name and one element are required")
        found = _set(sets, args[0])
        entry = _entry(found, args[1])
        members = found["members"]
        if command in ("test", "t", "-T"):
            if entry not in members:
                raise _fail(f"{args[1]} is NOT in set {args[0]}.")
            return f"{args[1]} is in set {args[0]}.\n"
        if command in ("add", "a", "-A"):
            if entry in members:
                if not exist:
                    raise _fail("Element cannot be added to the set: it's already added")
            elif len(members) >= found["maxelem"]:
                raise _fail("Hash is full, cannot add more elements")
            else:
                members.append(entry)
        elif entry in members:
            members.remove(entry)
        elif not exist:
            raise _fail("Element cannot be deleted from the set: it's not added")
    elif command in ("list", "l", "-L"):
        return _list(sets, host, args)
    elif command in ("save", "s", "-S"):
        return _save({name: _set(sets, name) for name in args} if args else sets)
    elif command in ("destroy", "x", "-X", "flush", "f", "-F"):
        names = args or list(sets)
        for name in names:
            found = _set(sets, name)
            if command in ("flush", "f", "-F"):
                found["members"] = []
            elif name in sets_in_use(host):
                raise _fail("Set cannot be destroyed: it is in use by a kernel component")
            else:
                del sets[name]
    elif command in ("swap", "w", "-W"):
        if len(args) != 2:
            raise _fail("Syntax error: two set names are required")
        first, second = _set(sets, args[0]), _set(sets, args[1])
        if (first["type"], first["family"]) != (second["type"], second["family"]):
            raise _fail("The sets cannot be swapped: their type does not match")
        sets[args[0]], sets[args[1]] = second, first
    else:
        raise _fail(f"Syntax error: command '{command}' is not simulated")
    return ""


def main(host, argv, stdin):
    """The whole ipset command line on the host state; returns its output."""
    exist = any(word in ("-exist", "-!") for word in argv)
    words = [word for word in argv if word not in ("-exist", "-!")]
    sets = host["ipset"]
    if words[:1] != ["restore"]:
        return _apply(sets, host, words, exist)
    if len(words) > 1:
        raise _fail("Syntax error: restore takes no set name")
    for number, line in enumerate(stdin.read(MAX_INPUT).splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if parts[0] in ("COMMIT", "quit"):
            break
        try:
            _apply(sets, host, [word for word in parts if word not in ("-exist", "-!")],
                   exist or "-exist" in parts)
        except CommandError as exc:
            raise _fail(str(exc).split(": ", 1)[1], number) from None
    return ""


def command(argv):
    """The ipset stand-in's whole run on this host's state; returns its exit status."""
    return run("ipset", lambda host, args: main(host, args, sys.stdin), argv, which=host_state)
