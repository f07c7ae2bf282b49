"""The simulated dom0's network state behind the stand-in ``ovs-vsctl``, ``ip`` and ``brctl``
commands in ``dom0env/bin``: bridges, their ports and the host's links, kept as JSON in
``$DOM0_ROOT/var/lib/simnet.json`` so that what one plugin call does the next one sees.

The commands change nothing outside DOM0_ROOT: the real host's network is never touched (the
simulator runs as whatever user started it, perhaps root, and the real ``ip`` is on PATH after
these). Each command loads the state under a file lock, works on it, and saves it only when the
whole command line succeeded, as ovs-vsctl's transactions do. Every call is also appended to
``$DOM0_ROOT/var/log/simnet-commands.log`` (one JSON argv a line) for tests to inspect.
"""

import contextlib
import fcntl
import json
import os
import sys


class CommandError(Exception):
    """A failure the real command reports: its message (stderr) and exit status."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def _root():
    return os.environ.get("DOM0_ROOT", "/")


def empty_state():
    """No bridges, and only the links every dom0 has."""
    return {"links": {"lo": {"kind": "loopback", "up": True, "promisc": False, "master": None},
                      "eth0": {"kind": "ether", "up": True, "promisc": False, "master": None}},
            "bridges": {}, "interfaces": {}}


@contextlib.contextmanager
def state():
    """The network state, locked for this command; saved if the block ends without error."""
    path = os.path.join(_root(), "var/lib/simnet.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path) as stream:
                current = json.load(stream)
        except FileNotFoundError:
            current = empty_state()
        yield current
        with open(path + ".tmp", "w") as stream:
            json.dump(current, stream, sort_keys=True)
        os.replace(path + ".tmp", path)


def _log(program, argv):
    path = os.path.join(_root(), "var/log/simnet-commands.log")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as stream:
        stream.write(json.dumps([program] + list(argv)) + "\n")


def run(program, handler, argv):
    """Run handler(state, argv) for command program; print its output; return the exit status."""
    _log(program, argv)
    try:
        with state() as current:
            output = handler(current, list(argv))
    except CommandError as exc:
        sys.stderr.write(f"{exc}\n")
        return exc.status
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
