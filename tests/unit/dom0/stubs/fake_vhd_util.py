"""A stand-in for dom0's vhd-util, for the dom0 plugin tests: just enough of query, check,
repair and modify for the plugins' VHD chain handling.

A fake VHD is a small text file whose lines say what the real header would:
    VHD                  the magic line
    parent=<file name>   the parent, in the same directory (as vhd-util's relative locator)
    hidden               the hidden flag is set
    invalid=<message>    `check` reports this (e.g. "footer invalid: invalid timestamp")
    repairable           `repair` clears the invalid line
Because a parent is named relative to its child, renames keep the chain intact, as they do
for real VHDs. make() writes one.
"""

import os
import sys

MAGIC = "VHD"


def make(path, parent=None, hidden=False, invalid=None, repairable=False, payload=""):
    """Write a fake VHD at path (a str or Path)."""
    lines = [MAGIC]
    if parent:
        lines.append("parent=" + parent)
    if hidden:
        lines.append("hidden")
    if invalid:
        lines.append("invalid=" + invalid)
    if repairable:
        lines.append("repairable")
    if payload:
        lines.append("payload=" + payload)
    with open(str(path), "w") as handle:
        handle.write("\n".join(lines) + "\n")


def read(path):
    """Return {key: value} of a fake VHD (flags map to True), or None if it is no VHD."""
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    if not lines or lines[0] != MAGIC:
        return None
    fields = {}
    for line in lines[1:]:
        key, _, value = line.partition("=")
        fields[key] = value if _ else True
    return fields


def _write(path, fields):
    lines = [MAGIC]
    for key, value in fields.items():
        lines.append(key if value is True else key + "=" + value)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def handle(argv, input_text=None):
    """Answer one vhd-util command line: return (exit code, stdout, stderr)."""
    if len(argv) < 4 or argv[2] != "-n":
        return 22, "", "usage: vhd-util COMMAND -n NAME ...\n"
    command, path, options = argv[1], argv[3], argv[4:]
    fields = read(path)
    if fields is None:
        return 22, f"{path}: query failed\n", f"error opening {path}: -2\n"
    if command == "query" and options == ["-p"]:
        if "parent" not in fields:
            return 22, f"{path} has no parent\n", ""
        parent = os.path.join(os.path.dirname(path), fields["parent"])
        if read(parent) is None:
            return 22, f"{parent}: query failed\n", ""
        return 0, parent + "\n", ""
    if command == "query" and options == ["-f"]:
        return 0, "hidden: {}\n".format(1 if fields.get("hidden") else 0), ""
    if command == "check" and options == ["-p"]:
        if "invalid" in fields:
            return 22, "{} appears invalid; {}\n".format(path, fields["invalid"]), ""
        return 0, f"{path} is valid\n", ""
    if command == "repair" and options == []:
        if fields.pop("repairable", False):
            fields.pop("invalid", None)
            _write(path, fields)
        return 0, "", ""
    if command == "modify" and len(options) == 2 and options[0] == "-p":
        if read(options[1]) is None:
            return 22, "", f"error opening parent {options[1]}\n"
        fields["parent"] = os.path.basename(options[1])
        _write(path, fields)
        return 0, "", ""
    return 22, "", "unsupported vhd-util command line: {}\n".format(" ".join(argv[1:]))


def run_command_line(argv):
    """Entry point of the launcher scripts: behave as vhd-util would on this command line."""
    code, out, err = handle(argv)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code
