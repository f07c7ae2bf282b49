"""The xenstore-* commands of the simulator's dom0, and the client they share.

They talk to the host's simulated xenstore through the simulator's xenstore socket
(``$XENSTORED_SIM_SOCKET``, one JSON request and reply per line; see the simulator's
``xenstore.py``), for the host ``$XAPI_SIM_HOST`` (the pool master when unset). Their options,
output and exit statuses follow the xenstore tools of a real dom0, for the options listed in
each command's usage. Written for Python 3.6 with the standard library only.
"""

import json
import os
import socket
import sys

SOCKET_ENV = "XENSTORED_SIM_SOCKET"
HOST_ENV = "XAPI_SIM_HOST"
ERRNO_TEXT = {
    "ENOENT": "No such file or directory",
    "EINVAL": "Invalid argument",
    "EACCES": "Permission denied",
}


class XenstoreError(Exception):
    """A refused request; ``code`` is the errno name, e.g. ``ENOENT``."""

    def __init__(self, code, message):
        Exception.__init__(self, f"{code}: {message}")
        self.code = code
        self.message = message

    def strerror(self):
        return ERRNO_TEXT.get(self.code, self.code)


class Client:
    """A connection to the simulated xenstore of one host."""

    def __init__(self, path=None, host=None):
        self.path = path or os.environ.get(SOCKET_ENV, "")
        self.host = host if host is not None else os.environ.get(HOST_ENV, "")
        if not self.path:
            raise OSError(f"{SOCKET_ENV} is not set; run this from a plugin the simulator started")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(self.path)
        except OSError:
            self._sock.close()
            raise
        self._reader = self._sock.makefile("rb")

    def close(self):
        self._reader.close()
        self._sock.close()

    def request(self, op, path, **extra):
        """The result of one operation; raises XenstoreError if the xenstore refuses it."""
        message = dict(extra, op=op, path=path, host=self.host)
        self._sock.sendall(json.dumps(message).encode("utf-8") + b"\n")
        line = self._reader.readline()
        if not line:
            raise OSError("the simulated xenstore closed the connection")
        reply = json.loads(line.decode("utf-8"))
        if "error" in reply:
            raise XenstoreError(reply["error"], reply.get("message", ""))
        return reply.get("ok")

    def read(self, path):
        return self.request("read", path)

    def write(self, path, value):
        self.request("write", path, value=value)

    def directory(self, path):
        return self.request("directory", path)

    def walk(self, path):
        return self.request("walk", path)

    def exists(self, path):
        return self.request("exists", path)

    def rm(self, path, parents=False):
        self.request("rm", path, parents=parents)


# -- the commands --------------------------------------------------------------------------

USAGE = {
    "read": "Usage: xenstore-read [-p] [-s] key [key ...]",
    "write": "Usage: xenstore-write [-s] key value [key value ...]",
    "ls": "Usage: xenstore-ls [-f] [-s] [path]",
    "rm": "Usage: xenstore-rm [-t] [-s] key [key ...]",
    "exists": "Usage: xenstore-exists [-s] key [key ...]",
}
FLAGS = {"read": "ps", "write": "s", "ls": "fs", "rm": "ts", "exists": "s"}


def _options(command, argv):
    """(set of flag letters, remaining arguments); raises ValueError for an unknown flag."""
    flags = set()
    args = list(argv)
    while args and args[0].startswith("-") and len(args[0]) > 1:
        arg = args.pop(0)
        if arg == "--":
            break
        for letter in arg[1:]:
            if letter not in FLAGS[command]:
                raise ValueError(f"unknown option -{letter}")
            flags.add(letter)
    return flags, args


def sanitise(value):
    """A value as xenstore-ls prints it: backslash escapes for control characters."""
    out = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char in "\t\n\r":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r"}[char])
        elif ord(char) < 32:
            out.append(f"\\{ord(char):03o}")
        else:
            out.append(char)
    return "".join(out)


def _read(client, flags, args, out):
    for key in args:
        try:
            value = client.read(key)
        except XenstoreError:
            return f"couldn't read path {key}"
        out.write(f"{key}: {value}\n" if "p" in flags else value + "\n")
    return None


def _write(client, flags, args, out):
    for index in range(0, len(args), 2):
        key, value = args[index], args[index + 1]
        try:
            client.write(key, value)
        except XenstoreError:
            return f"could not write path {key}"
    return None


def _ls(client, flags, args, out):
    top = args[0] if args else "/"
    try:
        nodes = client.walk(top)
    except XenstoreError as exc:
        return f"xs_directory ({top}): {exc.strerror()}"
    base = top.rstrip("/")
    for depth, name, value in nodes:
        if "f" in flags:
            out.write(f'{base}/{name} = "{sanitise(value)}"\n')
        else:
            out.write(f'{" " * depth}{name.rsplit("/", 1)[-1]} = "{sanitise(value)}"\n')
    return None


def _rm(client, flags, args, out):
    for key in args:
        try:
            client.rm(key, parents="t" in flags)
        except XenstoreError:
            return f"could not remove path {key}"
    return None


def _exists(client, flags, args, out):
    for key in args:
        try:
            if not client.exists(key):
                return ""
        except XenstoreError:
            return ""
    return None


COMMANDS = {"read": _read, "write": _write, "ls": _ls, "rm": _rm, "exists": _exists}


def main(command, argv, out=None, err=None):
    """Run ``xenstore-<command> argv``; returns the exit status (0, 1 error, 2 usage)."""
    out = out or sys.stdout
    err = err or sys.stderr
    name = f"xenstore-{command}"
    try:
        flags, args = _options(command, argv)
    except ValueError as exc:
        err.write(f"{name}: {exc}\n{USAGE[command]}\n")
        return 2
    bad_count = (command == "write" and (not args or len(args) % 2)) or (
        command != "ls" and not args) or (command == "ls" and len(args) > 1)
    if bad_count:
        err.write(USAGE[command] + "\n")
        return 2
    try:
        client = Client()
    except OSError as exc:
        err.write(f"{name}: cannot reach the simulated xenstore: {exc}\n")
        return 1
    try:
        problem = COMMANDS[command](client, flags, args, out)
    except OSError as exc:
        err.write(f"{name}: lost the simulated xenstore: {exc}\n")
        return 1
    finally:
        client.close()
    if problem is None:
        return 0
    if problem:
        err.write(f"{name}: {problem}\n")
    return 1
