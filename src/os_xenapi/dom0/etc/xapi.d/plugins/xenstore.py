#!/usr/bin/python3 -B
"""xenstore: read, write, list and delete nodes in one guest's xenstore tree.

Every path is relative to /local/domain/<dom_id>; dom_id is a guest's (1-32751) and paths
use only the characters xenstore allows, so no call can reach outside that guest's tree.
"""

import dom0lib
import XenAPIPlugin
from dom0lib import xenstore
from dom0lib.errors import NOT_FOUND, PluginError
from dom0lib.validate import DOM_ID, XS_PATH, XS_PATH_OR_EMPTY, XS_VALUE, Bool

# list_records reads each node separately; this bounds how many it will read.
MAX_LIST_ENTRIES = 1000


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


@dom0lib.takes(dom_id=DOM_ID, path=XS_PATH, value=XS_VALUE)
def write_record(ctx, dom_id, path, value):
    """Write value at path (creating missing parents) and return it."""
    xenstore.write(xenstore.domain_path(dom_id, path), value)
    return value


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


@dom0lib.takes(dom_id=DOM_ID, path=XS_PATH)
def delete_record(ctx, dom_id, path):
    """Remove path and everything below it; a path that is already gone is not an error."""
    xenstore.remove(xenstore.domain_path(dom_id, path))
    return None


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register(
        "xenstore", read_record, write_record, list_records, delete_record))
