"""``call_plugin(name, fn, args)`` as 0.3.4 did it (issue 10, item 2): ``.py`` appended to any
plugin name without it, and ``host_uuid`` added to the argument map (the caller's own dict, as
0.3.4 did). The dom0 holds os-xenapi's plugins plus a third-party plugin, ``thirdparty.py``,
that answers the arguments it was given."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

from .conftest import plugins_with

ORIGINATOR = "plugin-names-referee"
THIRD_PARTY = '''#!/usr/bin/env python3
"""A vendor's dom0 plugin, installed as thirdparty.py: echo answers its arguments as JSON."""

import json

import XenAPIPlugin


def echo(session, args):
    return json.dumps(args, sort_keys=True)


if __name__ == "__main__":
    XenAPIPlugin.dispatch({"echo": echo})
'''


@pytest.fixture(scope="module")
def sim(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    plugins = plugins_with(tmp_path_factory.mktemp("plugins"), {"thirdparty.py": THIRD_PARTY})
    with Simulator(auth_failure_delay=0, dom0_root=root, plugins_dir=plugins) as simulator:
        yield simulator


def test_call_plugin_adds_py_to_a_third_party_plugin_name(nova: XenAPISession) -> None:
    answer = json.loads(nova.call_plugin("thirdparty", "echo", {"colour": "blue"}))
    assert answer["colour"] == "blue"


def test_call_plugin_keeps_a_name_that_ends_in_py(nova: XenAPISession) -> None:
    answer = json.loads(nova.call_plugin("thirdparty.py", "echo", {"colour": "green"}))
    assert answer["colour"] == "green"


def test_call_plugin_sends_the_sessions_host_uuid(nova: XenAPISession) -> None:
    answer = json.loads(nova.call_plugin("thirdparty.py", "echo", {}))
    assert answer == {"host_uuid": nova.host_uuid}


def test_call_plugin_adds_host_uuid_to_the_callers_argument_map(nova: XenAPISession) -> None:
    args = {"colour": "red"}
    nova.call_plugin("thirdparty.py", "echo", args)
    assert args == {"colour": "red", "host_uuid": nova.host_uuid}
