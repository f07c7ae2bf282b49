"""A small in-memory xenstore and the xenstore-* commands on top of it, for tests/unit/dom0.

XenstoreTree answers argument lists the way xenstore-read/-write/-exists/-rm/-ls do (exit
code, stdout, stderr), so the same logic serves two purposes: unit tests call
``tree.command(argv)`` from a fake command runner, and run_command_line() backs launcher
scripts named xenstore-* that a plugin subprocess finds on PATH (the tree then lives in
the JSON file named by $FAKE_XENSTORE_DB). Only what the plugins use is covered.
"""

import json
import os
import sys


class XenstoreTree:
    """Nodes as a flat {absolute path: value}; every parent of a node exists."""

    def __init__(self, nodes=None):
        self.nodes = {"/": ""}
        for path, value in (nodes or {}).items():
            self.write(path, value)

    def write(self, path, value):
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            self.nodes.setdefault("/" + "/".join(parts[:depth]), "")
        self.nodes[path] = value

    def children(self, path):
        prefix = path.rstrip("/") + "/"
        names = []
        for node in self.nodes:
            if node.startswith(prefix) and node != "/" and "/" not in node[len(prefix):]:
                names.append(node[len(prefix):])
        return sorted(names)

    def remove(self, path):
        prefix = path + "/"
        for node in [n for n in self.nodes if n == path or n.startswith(prefix)]:
            del self.nodes[node]

    def _ls_lines(self, path, depth):
        lines = []
        for name in self.children(path):
            child = path.rstrip("/") + "/" + name
            lines.append("{}{} = \"{}\"".format(" " * depth, name, self.nodes[child]))
            lines.extend(self._ls_lines(child, depth + 1))
        return lines

    def command(self, argv):
        """Run one xenstore-* argument list; return (exit code, stdout, stderr)."""
        program, args = os.path.basename(argv[0]), list(argv[1:])
        if args and args[0] == "--":
            args = args[1:]
        if program == "xenstore-read":
            path = args[0]
            if path not in self.nodes:
                return 1, "", f"xenstore-read: couldn't read path {path}\n"
            return 0, self.nodes[path] + "\n", ""
        if program == "xenstore-write":
            for index in range(0, len(args) - 1, 2):
                self.write(args[index], args[index + 1])
            return 0, "", ""
        if program == "xenstore-exists":
            return (0, "", "") if args[0] in self.nodes else (1, "", "")
        if program == "xenstore-rm":
            if args[0] not in self.nodes:
                return 1, "", f"xenstore-rm: could not remove path {args[0]}\n"
            self.remove(args[0])
            return 0, "", ""
        if program == "xenstore-ls":
            if args[0] not in self.nodes:
                return 1, "", f"xenstore-ls: xs_directory ({args[0]}): No such file or directory\n"
            lines = self._ls_lines(args[0], 0)
            return 0, "".join(line + "\n" for line in lines), ""
        return 127, "", f"{program}: not a fake xenstore command\n"


def run_command_line(argv):
    """Entry point of the xenstore-* launchers: load the tree, run argv, save, exit."""
    database = os.environ["FAKE_XENSTORE_DB"]
    with open(database) as handle:
        tree = XenstoreTree()
        tree.nodes = json.load(handle)
    code, out, err = tree.command(argv)
    with open(database, "w") as handle:
        json.dump(tree.nodes, handle)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code
