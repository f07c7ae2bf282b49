#!/usr/bin/python3 -B
"""xenstore: read, write, list and delete nodes in one guest's xenstore tree.

Every path is relative to /local/domain/<dom_id>; dom_id is a guest's (1-32751) and paths
use only the characters xenstore allows, so no call can reach outside that guest's tree.

Called with os-xenapi 0.3.4's plain arguments, each function answers 0.3.4's text: a stored
value that is JSON text as it is (stripped, as 0.3.4 read it), any other as a JSON string,
a missing node read with ignore_missing_path as '"None"' (Nova compares with it).
"""

import json

import dom0lib
import XenAPIPlugin
from dom0lib import xenstore
from dom0lib.errors import NOT_FOUND, PluginError
from dom0lib.validate import DOM_ID, XS_PATH, XS_PATH_OR_EMPTY, XS_VALUE, Bool

# list_records reads each node separately; this bounds how many it will read.
MAX_LIST_ENTRIES = 1000
# What 0.3.4 answered for a missing node read with ignore_missing_path.
MISSING_0_3_4 = json.dumps("None")


def _is_json(text):
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _json_text(value):
    """0.3.4's answer for a stored string: itself if it is JSON text, else as a JSON string."""
    return value if _is_json(value) else json.dumps(value)


def _read_answer(value):
    return MISSING_0_3_4 if value is None else _json_text(value.strip())


def _list_answer(records):
    """0.3.4 decoded each value it could and kept the others as strings."""
    decoded = {}
    for path, value in records.items():
        value = value.strip()
        decoded[path] = json.loads(value) if _is_json(value) else value
    return json.dumps(decoded)


@dom0lib.plain(answer=_read_answer)
@dom0lib.takes(dom_id=DOM_ID, path=XS_PATH, ignore_missing_path=Bool())
def read_record(ctx, dom_id, path, ignore_missing_path=False):
    """Return the value at path, or null if it is missing and ignore_missing_path is true.

    Raises OS_XENAPI_NOT_FOUND for a missing path otherwise.
    """
    full_path = xenstore.domain_path(dom_id, path)
    value = xenstore.read(full_path)
    if value is None and not ignore_missing_path:
        raise PluginError(NOT_FOUND, "xenstore path", full_path)
    return value


@dom0lib.plain(answer=_json_text)
@dom0lib.takes(dom_id=DOM_ID, path=XS_PATH, value=XS_VALUE)
def write_record(ctx, dom_id, path, value):
    """Write value at path (creating missing parents) and return it."""
    xenstore.write(xenstore.domain_path(dom_id, path), value)
    return value


@dom0lib.plain(answer=_list_answer)
@dom0lib.takes(dom_id=DOM_ID, path=XS_PATH_OR_EMPTY)
def list_records(ctx, dom_id, path=""):
    """Return {relative path: value} for every node below path ({} if path is missing).

    Values are the stored strings; nodes removed while listing are left out.
    """
    full_path = xenstore.domain_path(dom_id, path)
    relative_paths = xenstore.list_paths(full_path, MAX_LIST_ENTRIES)
    if relative_paths is None:
        return {}
    records = {}
    for relative in relative_paths:
        value = xenstore.read(full_path + "/" + relative)
        if value is not None:
            records[relative] = value
    return records


@dom0lib.plain(answer=lambda result: json.dumps(""))
@dom0lib.takes(dom_id=DOM_ID, path=XS_PATH)
def delete_record(ctx, dom_id, path):
    """Remove path and everything below it; a path that is already gone is not an error."""
    xenstore.remove(xenstore.domain_path(dom_id, path))
    return None


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register(
        "xenstore", read_record, write_record, list_records, delete_record))
