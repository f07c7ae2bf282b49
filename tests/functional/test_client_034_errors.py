"""Errors that os-xenapi 0.3.4's consumers classify by type, over real sockets: transport errors
are ``socket.error`` (OSError) with the errno of what happened, and a plugin API version
mismatch at construction is a ``XenAPI.Failure`` whose ``details[0]`` names both versions
(Ceilometer's guard around ``XenAPISession(...)`` reads it)."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from os_xenapi.client import XenAPI, exception, host_glance
from os_xenapi.client.retry import Retry
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.faults import Fault

ORIGINATOR = "034-errors-tests"
QUICK = Retry(wait=0.01, backoff=0.0, reads=0)

# A glance plugin that fails the way os-xenapi 0.3.4's did for a missing image: raising the
# official SDK's XenAPI.Failure('ImageNotFound') (whose str() is its details), which
# XenAPIPlugin reports as XENAPI_PLUGIN_FAILURE [fn, "Failure", "ImageNotFound"]; and the way a
# plugin raising XenAPIPlugin.Failure("ImageNotFound", []) would.
OLD_GLANCE_PLUGIN = '''#!/usr/bin/env python3
import XenAPIPlugin


class Failure(Exception):
    def __init__(self, details):
        Exception.__init__(self, details)
        self.details = details

    def __str__(self):
        return str(self.details)


def upload_vhd2(session, args):
    raise Failure("ImageNotFound")


def download_vhd2(session, args):
    raise XenAPIPlugin.Failure("ImageNotFound", [])


if __name__ == "__main__":
    XenAPIPlugin.dispatch({"upload_vhd2": upload_vhd2, "download_vhd2": download_vhd2})
'''

VERSION_PLUGIN = '''#!/usr/bin/env python3
import json
import XenAPIPlugin


def get_version(session, args):
    return json.dumps("2.1")


if __name__ == "__main__":
    XenAPIPlugin.dispatch({"get_version": get_version})
'''


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(auth_failure_delay=0) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def session(sim: Simulator) -> Iterator[XenAPISession]:
    with XenAPISession(sim.url, sim.username, sim.password, ORIGINATOR, retry=QUICK,
                       plugin_version_check=False) as made:
        yield made


def test_a_refused_connection_is_a_socket_error_with_econnrefused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again: nothing listens there
    try:
        XenAPISession(f"http://127.0.0.1:{port}", "root", "pw", ORIGINATOR)
    except OSError as error:  # what 0.3.4's callers wrote as "except socket.error"
        assert isinstance(error, socket.error) and isinstance(error, ConnectionRefusedError)
        assert isinstance(error, exception.ConnectionRefused)
        assert error.errno == errno.ECONNREFUSED
        assert "[Errno" not in str(error) and str(port) in str(error)
    else:
        pytest.fail("connecting to a closed port did not fail")


def test_a_call_whose_connection_drops_is_a_connection_reset(sim: Simulator,
                                                             session: XenAPISession) -> None:
    pool = session.call_xenapi("pool.get_all")[0]
    sim.faults.add(Fault.drop("pool.set_name_description", after=True, nth=1))
    with pytest.raises(ConnectionResetError) as info:
        session.call_xenapi("pool.set_name_description", pool, "dropped")
    assert isinstance(info.value, exception.ConnectionLost)
    assert isinstance(info.value, ConnectionError) and info.value.errno == errno.ECONNRESET


def test_a_call_that_gets_no_answer_in_time_is_a_timeout_error(sim: Simulator,
                                                               session: XenAPISession) -> None:
    sim.faults.add(Fault.latency("host.get_name_label", 2, nth=1))
    with pytest.raises(TimeoutError) as info:
        session.call_xenapi("host.get_name_label", session.host_ref, timeout=0.3)
    assert isinstance(info.value, exception.ReadTimeout) and isinstance(info.value, OSError)
    assert info.value.errno == errno.ETIMEDOUT


def test_a_plugin_version_mismatch_is_a_xenapi_failure_naming_both_versions(
    tmp_path: Path,
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "dom0_plugin_version.py").write_text(VERSION_PLUGIN)
    os.chmod(plugins / "dom0_plugin_version.py", 0o755)
    with Simulator(auth_failure_delay=0, plugins_dir=plugins) as old:
        try:  # Ceilometer's guard, as its inspector wrote it
            XenAPISession(old.url, old.username, old.password, ORIGINATOR, retry=QUICK)
        except XenAPI.Failure as failure:
            message = failure.details[0]
            assert isinstance(failure, exception.PluginVersionMismatch)
            assert "version 2.1" in message and "needs version 3.0" in message
            assert str(failure) == message
        else:
            pytest.fail("plugins of API version 2.1 were accepted")


@pytest.fixture
def old_glance(tmp_path: Path) -> Iterator[XenAPISession]:
    """A session to a host whose glance.py answers in 0.3.4's spellings."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "glance.py").write_text(OLD_GLANCE_PLUGIN)
    os.chmod(plugins / "glance.py", 0o755)
    with Simulator(auth_failure_delay=0, plugins_dir=plugins) as old, \
            XenAPISession(old.url, old.username, old.password, ORIGINATOR, retry=QUICK,
                          plugin_version_check=False) as made:
        yield made


def test_upload_vhd_maps_0_3_4s_image_not_found_to_plugin_image_not_found(
    old_glance: XenAPISession,
) -> None:
    with pytest.raises(exception.PluginImageNotFound, match="IMG-1") as info:
        host_glance.upload_vhd(old_glance, 2, None, None, "IMG-1", "/sr", {}, ["u"], {})
    assert info.value.__cause__.details == ["XENAPI_PLUGIN_FAILURE", "upload_vhd2", "Failure",
                                            "ImageNotFound"]


def test_a_bare_image_not_found_code_is_plugin_image_not_found_too(
    old_glance: XenAPISession,
) -> None:
    with pytest.raises(exception.PluginImageNotFound) as info:
        host_glance.download_vhd(old_glance, 2, None, None, "IMG-2", "/sr", {}, ["u"])
    assert info.value.__cause__.details == ["ImageNotFound"]
    assert isinstance(info.value, exception.PluginRetriesExceeded)
