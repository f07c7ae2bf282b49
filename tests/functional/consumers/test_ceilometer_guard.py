"""Ceilometer's construction guard (inspector.get_api_session): ``XenAPISession(...)`` inside
``try/except XenAPI.Failure as e`` with ``e.details[0]`` in its message. A dom0 whose plugins
speak another plugin API version must fail construction with a ``XenAPI.Failure`` that names
both versions (issue 10, item 5); 0.3.4 raised ``XenAPI.Failure("Plugin version mismatch
(Expected 2.1, got X)")``. The dom0 here has os-xenapi's plugins but an older
``dom0_plugin_version.py``, answering 2.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from os_xenapi.client import XenAPI
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

from .conftest import consumer_session, plugins_with

OLD_VERSION_PLUGIN = '''#!/usr/bin/env python3
"""dom0_plugin_version.py of an older os-xenapi: plugin API version 2.1."""

import json

import XenAPIPlugin


def get_version(session, args):
    return json.dumps("2.1")


if __name__ == "__main__":
    XenAPIPlugin.dispatch({"get_version": get_version})
'''


@pytest.fixture(scope="module")
def sim(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    plugins = plugins_with(tmp_path_factory.mktemp("plugins"),
                           {"dom0_plugin_version.py": OLD_VERSION_PLUGIN})
    with Simulator(auth_failure_delay=0, dom0_root=root, plugins_dir=plugins) as simulator:
        yield simulator


def test_plugin_version_mismatch_is_a_xenapi_failure_with_a_first_detail(
    sim: Simulator,
) -> None:
    with pytest.raises(XenAPI.Failure) as info:
        consumer_session(sim, "ceilometer")
    assert isinstance(info.value.details[0], str) and info.value.details[0]


def test_plugin_version_mismatch_names_both_versions(sim: Simulator) -> None:
    with pytest.raises(XenAPI.Failure) as info:
        consumer_session(sim, "ceilometer")
    assert "2.1" in str(info.value)
    assert XenAPISession.PLUGIN_REQUIRED_VERSION in str(info.value)
