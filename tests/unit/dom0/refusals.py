"""Shared checks for the plugin tests of partition_utils, netwrap, kernel, migration, ipxe,
glance and workarounds: a refused call names the argument and changes nothing.

"Nothing changed" means no command ran (FakeCommands recorded nothing) and the scratch dom0
root holds the same files with the same contents as before the call.
"""

import hashlib
import json
import os

import pytest

from . import harness

INVALID = harness.dom0lib().errors.INVALID_ARGUMENT

# params values that are not protocol 3.0 JSON, with a test id each.
NOT_JSON_PARAMS = [
    ("pickle", "(dp0\nS'args'\np1\n(lp2\n"),
    ("python-repr", "{'args': []}"),
    ("empty", ""),
    ("null", "null"),
    ("args-object", json.dumps({"args": {}})),
    ("kwargs-array", json.dumps({"kwargs": []})),
    ("duplicate-keys", '{"args": [], "args": []}'),
]


def tree_state(root):
    """Every file and directory under root, with a digest of each file's contents."""
    state = {}
    for directory, dirs, files in os.walk(str(root)):
        for name in dirs:
            state[os.path.relpath(os.path.join(directory, name), str(root))] = "dir"
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                state[os.path.relpath(path, str(root))] = "link:" + os.readlink(path)
                continue
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            state[os.path.relpath(path, str(root))] = digest
    return state


def assert_refused(plugin, function, kwargs, argument, commands, root, failure, session=None,
                   raw_params=None):
    """Call plugin.function and check it fails with OS_XENAPI_INVALID_ARGUMENT naming
    argument, runs no command and leaves root as it was. Returns the error's reason."""
    before = tree_state(root)
    with pytest.raises(failure) as info:
        harness.call(plugin, function, session=session, raw_params=raw_params, **kwargs)
    code, where, named = info.value.params[:3]
    assert (code, where, named) == (INVALID, f"{plugin}.{function}", argument)
    assert commands.calls == []
    assert tree_state(root) == before
    return info.value.params[3]
