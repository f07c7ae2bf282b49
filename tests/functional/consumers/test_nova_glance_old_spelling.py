"""``host_glance.upload_vhd`` maps a missing image to ``PluginImageNotFound`` whichever way the
dom0 plugin spells it (issue 10, item 5). os-xenapi 0.3.4's glance plugin raised
``XenAPI.Failure('ImageNotFound')`` for Glance's 404, which reaches the caller as
``['XENAPI_PLUGIN_FAILURE', 'upload_vhd2', 'Failure', 'ImageNotFound']`` and which 0.3.4's
client turned into ``PluginImageNotFound``; Nova catches that. Here the dom0's ``glance.py`` is
one that answers every call so (the new plugin's own spelling is in test_nova_disk.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from os_xenapi.client import exception, host_glance
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

from .conftest import plugins_with

IMAGE = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
OLD_GLANCE = '''#!/usr/bin/env python3
"""glance.py answering as os-xenapi 0.3.4's did for an image Glance does not know."""

import XenAPIPlugin


class Failure(Exception):
    """Stands for XenAPI.Failure, which 0.3.4's plugin raised with the one detail."""


def upload_vhd2(session, args):
    raise Failure("ImageNotFound")


if __name__ == "__main__":
    XenAPIPlugin.dispatch({"upload_vhd2": upload_vhd2})
'''


@pytest.fixture(scope="module")
def sim(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    plugins = plugins_with(tmp_path_factory.mktemp("plugins"), {"glance.py": OLD_GLANCE})
    with Simulator(auth_failure_delay=0, dom0_root=root, plugins_dir=plugins) as simulator:
        yield simulator


def pick_glance(kwargs: dict) -> str:
    kwargs["endpoint"] = "http://glance.invalid:9292"
    kwargs["api_version"] = 2
    return kwargs["endpoint"]


def test_the_old_plugins_image_not_found_has_0_3_4s_shape(nova: XenAPISession) -> None:
    with pytest.raises(nova.XenAPI.Failure) as info:
        nova.call_plugin_serialized("glance", "upload_vhd2", image_id=IMAGE)
    assert info.value.details == ["XENAPI_PLUGIN_FAILURE", "upload_vhd2", "Failure",
                                  "ImageNotFound"]


def test_upload_vhd_maps_0_3_4s_image_not_found_to_plugin_image_not_found(
    nova: XenAPISession,
) -> None:
    with pytest.raises(exception.PluginImageNotFound):
        host_glance.upload_vhd(nova, 0, pick_glance, None, IMAGE,
                               "/var/run/sr-mount/0b5a9a3e-2c0e-4a8c-9a43-5a3d8c3b7e11",
                               {"X-Auth-Token": "token"}, ["5f0f0b53-5f62-4a3e-8c2e-2b7f5d1c9e22"],
                               {})
