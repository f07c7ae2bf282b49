"""console plugin: the compressed tail of a guest's console log, confined to its directory.

Plugin files are imported in-process with a stand-in XenAPIPlugin (stubs/XenAPIPlugin.py)
put into sys.modules only while they load (see harness.py); XenAPI is the official SDK.
"""

import base64
import os
import zlib

import pytest

from . import harness

CODES = harness.dom0lib().errors


def _log_dir(dom0_root):
    directory = dom0_root / "var" / "log" / "xen" / "guest"
    directory.mkdir(parents=True)
    return directory


def _decode(text):
    return zlib.decompress(base64.b64decode(text))


def test_get_console_log_returns_the_whole_short_log(dom0_root):
    (_log_dir(dom0_root) / "console.7").write_bytes(b"login: ")
    assert _decode(harness.call("console", "get_console_log", dom_id=7)) == b"login: "


def test_get_console_log_returns_only_the_last_100_kib(dom0_root):
    data = b"A" * 1000 + os.urandom(100 * 1024)
    (_log_dir(dom0_root) / "console.7").write_bytes(data)
    assert _decode(harness.call("console", "get_console_log", dom_id=7)) == data[-100 * 1024:]


def test_missing_console_log_is_not_found(dom0_root, failure):
    _log_dir(dom0_root)
    with pytest.raises(failure) as info:
        harness.call("console", "get_console_log", dom_id=7)
    assert info.value.params[:2] == [CODES.NOT_FOUND, "console log"]


def test_console_log_symlink_out_of_the_directory_is_refused(dom0_root, tmp_path, failure):
    secret = tmp_path / "shadow"
    secret.write_text("root:secret")
    os.symlink(str(secret), str(_log_dir(dom0_root) / "console.7"))
    with pytest.raises(failure) as info:
        harness.call("console", "get_console_log", dom_id=7)
    assert info.value.params == [CODES.INVALID_ARGUMENT, "console.get_console_log", "dom_id",
                                 "resolves outside its directory (symlink escape)"]


@pytest.mark.parametrize("dom_id", ["../../etc/shadow", "7/../../x", -1, 0, 2.5, None])
def test_get_console_log_refuses_a_domid_that_is_not_a_guest_number(dom0_root, dom_id, failure):
    with pytest.raises(failure) as info:
        harness.call("console", "get_console_log", dom_id=dom_id)
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "console.get_console_log", "dom_id"]


def test_novas_plain_call_answers_the_base64_text_itself(dom0_root):
    (_log_dir(dom0_root) / "console.7").write_bytes(b"login: ")
    text = harness.call_plain("console", "get_console_log", {"dom_id": "7"})
    assert _decode(text) == b"login: "  # vmops.get_console_output: b64decode, then decompress


def test_a_plain_dom_id_is_checked_as_the_json_one(dom0_root, failure):
    with pytest.raises(failure) as info:
        harness.call_plain("console", "get_console_log", {"dom_id": "../../etc/shadow"})
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "console.get_console_log", "dom_id"]
