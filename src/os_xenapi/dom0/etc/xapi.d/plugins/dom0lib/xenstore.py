"""The xenstore-* commands, for the xenstore and agent plugins: one guest's tree at a time.

Every path here is absolute and built by domain_path() from a validated domid and a
validated relative path. A missing node reads as None; the existence checks mirror what
os-xenapi 0.3.4 did to tell "missing" from "failed": xenstore-exists exits non-zero with
an empty stderr when the node is missing.
"""

from dom0lib import commands
from dom0lib.errors import BAD_DATA, COMMAND_FAILED, TOO_LARGE, PluginError

DOMAIN_ROOT = "/local/domain"
TIMEOUT = 30.0
# One xenstore message carries at most 4096 bytes: the path, a NUL, the value.
PAYLOAD_MAX = 4096


def domain_path(dom_id: int, path: str = "") -> str:
    """Return /local/domain/<dom_id>[/<path>] for an already validated domid and path."""
    base = f"{DOMAIN_ROOT}/{dom_id:d}"
    return base + "/" + path if path else base


def exists(full_path: str) -> bool:
    """Return whether the node exists. Raises PluginError if xenstore-exists itself fails."""
    result = commands.run(["xenstore-exists", full_path], timeout=TIMEOUT, ok_codes=(0, 1))
    if result.returncode == 0:
        return True
    if result.stderr.strip():
        raise PluginError(COMMAND_FAILED, "xenstore-exists", str(result.returncode),
                          result.stderr.strip()[-commands.STDERR_TAIL:])
    return False


def read(full_path: str):
    """Return the node's value, or None if the node does not exist.

    A failed read of a node that exists is retried once: the node may have been written
    between the read and the existence check (the agent races us).
    """
    result = commands.run(["xenstore-read", full_path], timeout=TIMEOUT, ok_codes=(0, 1))
    if result.returncode != 0:
        if not exists(full_path):
            return None
        result = commands.run(["xenstore-read", full_path], timeout=TIMEOUT)
    value = result.stdout
    return value[:-1] if value.endswith("\n") else value


def write(full_path: str, value: str) -> None:
    """Write value at the node, creating missing parents.

    "--" ends xenstore-write's options, so a value that starts with "-" is stored as is.
    """
    commands.run(["xenstore-write", "--", full_path, value], timeout=TIMEOUT)


def remove(full_path: str) -> None:
    """Remove the node and its children; a node that is already gone is not an error."""
    result = commands.run(["xenstore-rm", full_path], timeout=TIMEOUT, ok_codes=(0, 1))
    if result.returncode != 0 and exists(full_path):
        raise PluginError(COMMAND_FAILED, "xenstore-rm", str(result.returncode),
                          result.stderr.strip()[-commands.STDERR_TAIL:] or commands.NO_STDERR)


def list_paths(full_path: str, max_entries: int):
    """Return the paths below the node, relative to it, or None if the node does not exist.

    Raises PluginError TOO_LARGE past max_entries, BAD_DATA if xenstore-ls prints
    something that is not its "name = value" tree.
    """
    result = commands.run(["xenstore-ls", full_path], timeout=TIMEOUT, ok_codes=(0, 1))
    if result.returncode != 0:
        if not exists(full_path):
            return None
        result = commands.run(["xenstore-ls", full_path], timeout=TIMEOUT)
    return parse_ls(result.stdout, max_entries)


def parse_ls(text: str, max_entries: int) -> list:
    """Turn xenstore-ls output (one space of indent per level, "name = value") into paths."""
    stack = []
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name = line.split(" = ", 1)[0]
        bare = name.lstrip(" ")
        depth = len(name) - len(bare)
        if " = " not in line or not bare or depth > len(stack) or " " in bare:
            raise PluginError(BAD_DATA, "xenstore-ls output", "unexpected line shape")
        del stack[depth:]
        stack.append(bare)
        found.append("/".join(stack))
        if len(found) > max_entries:
            raise PluginError(TOO_LARGE, "xenstore listing", f"{max_entries} entries")
    return found
