"""The simulated dom0's network state behind the network stand-ins in ``dom0env/bin``, kept as
JSON under DOM0_ROOT so that what one plugin call does the next one sees; never the real host's.

Two files hold it:

* ``$DOM0_ROOT/var/lib/simnet.json``: links (``ip``, ``brctl``), Open vSwitch bridges, their
  ports, interfaces and flows (``ovs-vsctl``, ``ovs-ofctl``, ``ovsdb-client``). The simulated
  hosts share one dom0 root, and so share this file.
* ``$DOM0_ROOT/var/lib/simnetfilter/<host uuid>.json``: the kernel's netfilter state of one
  simulated host (``XAPI_SIM_HOST``): the iptables and ip6tables rulesets, ipsets and the
  conntrack table (``iptables-save``/``-restore``, ``ip6tables-*``, ``ipset``, ``conntrack``).

Each command loads its file under a lock, works on it, and saves it only when the whole command
succeeded, as ovs-vsctl's transactions do. Every call is also appended to
``$DOM0_ROOT/var/log/simnet-commands.log`` (one JSON argv a line) for tests to inspect.
"""

import json
import os
import re
import sys

from simpaths import Refused, ensure_directory, regular_file
from simstate import locked_json

NETWORK_STATE = "var/lib/simnet.json"
HOST_STATE = "var/lib/simnetfilter/{}.json"
COMMAND_LOG = "var/log/simnet-commands.log"
LOCK_SECONDS = 10.0
_HOST_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class CommandError(Exception):
    """A failure the real command reports: its message (stderr) and exit status."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def empty_state():
    """No bridges, and only the links every dom0 has."""
    return {"links": {"lo": {"kind": "loopback", "up": True, "promisc": False, "master": None},
                      "eth0": {"kind": "ether", "up": True, "promisc": False, "master": None}},
            "bridges": {}, "interfaces": {}}


def empty_host_state():
    """A host whose netfilter tables are as after boot: the filter tables, nothing else."""
    return {"iptables": {}, "ip6tables": {}, "ipset": {}, "conntrack": []}


def host_name():
    """The uuid of the simulated host this command runs on ("default" outside the simulator)."""
    uuid = os.environ.get("XAPI_SIM_HOST", "")
    return uuid if _HOST_UUID.fullmatch(uuid) else "default"


def state():
    """The shared network state, locked for a with-block; saved if the block ends without error."""
    return locked_json(NETWORK_STATE, "network state", empty_state(), LOCK_SECONDS)


def host_state():
    """This host's netfilter state, locked for a with-block; saved as state() is."""
    return locked_json(HOST_STATE.format(host_name()), "netfilter state", empty_host_state(),
                       LOCK_SECONDS)


def read_state():
    """The shared network state as last saved, without taking the lock (files are replaced
    whole, so a reader never sees half a state)."""
    try:
        with open(regular_file(NETWORK_STATE, "network state", must_exist=False)) as stream:
            return json.load(stream)
    except FileNotFoundError:
        return empty_state()


def _log(program, argv):
    folder = ensure_directory(os.path.dirname(COMMAND_LOG))
    path = regular_file(os.path.join(folder, os.path.basename(COMMAND_LOG)), "command log",
                        must_exist=False)
    with open(path, "a") as stream:
        stream.write(json.dumps([program] + list(argv)) + "\n")


def run(program, handler, argv, which=state):
    """Run handler(state, argv) on the state which() locks; print its output; return the exit
    status. CommandError is the real command's failure; a refused path is exit status 1."""
    try:
        _log(program, argv)
        with which() as current:
            output = handler(current, list(argv))
    except CommandError as exc:
        if str(exc):
            sys.stderr.write(f"{exc}\n")
        return exc.status
    except Refused as exc:
        sys.stderr.write(f"{program} (simulated dom0): {exc}\n")
        return 1
    if output:
        sys.stdout.write(output)
    return 0


def new_link(current, name, kind):
    """Add link name of kind, refusing a name in use as ip and brctl do."""
    if name in current["links"]:
        raise CommandError("RTNETLINK answers: File exists", 2)
    current["links"][name] = {"kind": kind, "up": False, "promisc": False, "master": None}
    return current["links"][name]


def link(current, name):
    """The link called name; 'Cannot find device' as ip says when there is none."""
    found = current["links"].get(name)
    if found is None:
        raise CommandError(f'Cannot find device "{name}"')
    return found
