"""dom0_plugin_version: the plugin API version clients check when they connect.

Plugin files are imported in-process with a stand-in XenAPIPlugin (stubs/XenAPIPlugin.py)
put into sys.modules only while they load (see harness.py); XenAPI is the official SDK.
"""

import pytest

from . import harness


def test_get_version_is_3_0_for_the_json_protocol():
    assert harness.call("dom0_plugin_version", "get_version") == "3.0"


def test_get_version_refuses_arguments(failure):
    with pytest.raises(failure) as info:
        harness.call("dom0_plugin_version", "get_version", "extra")
    assert info.value.params[:3] == [
        "OS_XENAPI_INVALID_ARGUMENT", "dom0_plugin_version.get_version", "args"]


def test_version_module_constant_matches_what_get_version_returns():
    assert harness.load_plugin("dom0_plugin_version").PLUGIN_VERSION == "3.0"
