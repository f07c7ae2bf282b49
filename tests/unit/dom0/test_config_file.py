"""config_file plugin: one setting of /etc/xapi.conf under DOM0_ROOT.

Plugin files are imported in-process with a stand-in XenAPIPlugin (stubs/XenAPIPlugin.py)
put into sys.modules only while they load (see harness.py); XenAPI is the official SDK.
"""

import pytest

from . import harness

CODES = harness.dom0lib().errors

XAPI_CONF = """\
# xapi configuration
relax-xsm-sr-check = true
use-switch=false
#commented-out = yes
"""


def _write_conf(dom0_root, text=XAPI_CONF):
    (dom0_root / "etc").mkdir()
    (dom0_root / "etc" / "xapi.conf").write_text(text)


def test_get_val_returns_the_value(dom0_root):
    _write_conf(dom0_root)
    assert harness.call("config_file", "get_val", key="relax-xsm-sr-check") == "true"


def test_get_val_reads_settings_written_without_spaces(dom0_root):
    _write_conf(dom0_root)
    assert harness.call("config_file", "get_val", key="use-switch") == "false"


def test_get_val_of_an_unset_key_is_empty(dom0_root):
    _write_conf(dom0_root)
    assert harness.call("config_file", "get_val", key="commented-out") == ""


def test_get_val_takes_the_last_of_repeated_settings(dom0_root):
    _write_conf(dom0_root, "k = 1\nk = 2\n")
    assert harness.call("config_file", "get_val", key="k") == "2"


def test_get_val_without_xapi_conf_is_not_found(failure):
    with pytest.raises(failure) as info:
        harness.call("config_file", "get_val", key="k")
    assert info.value.params[:2] == [CODES.NOT_FOUND, "/etc/xapi.conf"]


def test_get_val_refuses_a_key_with_regex_or_separator_characters(dom0_root, failure):
    _write_conf(dom0_root)
    with pytest.raises(failure) as info:
        harness.call("config_file", "get_val", key="relax = true\n")
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "config_file.get_val", "key"]


def test_the_sessions_plain_call_answers_the_bare_value(dom0_root):
    _write_conf(dom0_root, "relax-xsm-sr-check = true\n")
    text = harness.call_plain("config_file", "get_val", {"key": "relax-xsm-sr-check"})
    assert text == "true"


def test_a_plain_call_for_an_unset_key_answers_empty_text(dom0_root):
    _write_conf(dom0_root, "other = 1\n")
    assert harness.call_plain("config_file", "get_val", {"key": "relax-xsm-sr-check"}) == ""
