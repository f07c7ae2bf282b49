"""dom0lib.locks: fcntl file locks under DOM0_ROOT's /var/run.

Plugin files are imported in-process with a stand-in XenAPIPlugin (stubs/XenAPIPlugin.py)
put into sys.modules only while they load (see harness.py); XenAPI is the official SDK.
"""

import pytest

from . import harness

lib = harness.dom0lib()
locks = lib.locks
errors = lib.errors


def test_lock_file_lives_under_dom0_root(dom0_root):
    with locks.file_lock("xenhost-config"):
        assert (dom0_root / "var" / "run" / "xenapi-plugins" / "xenhost-config.lock").exists()


def test_held_lock_makes_a_second_holder_busy():
    with locks.file_lock("one", timeout=1):
        with pytest.raises(errors.PluginError) as info:
            with locks.file_lock("one", timeout=0.2):
                pass
    assert (info.value.code, info.value.details) == (errors.BUSY, ["one", "0.2"])


def test_released_lock_can_be_taken_again():
    with locks.file_lock("two", timeout=1):
        pass
    with locks.file_lock("two", timeout=0.2):
        pass


def test_lock_names_are_checked():
    with pytest.raises(ValueError):
        with locks.file_lock("../../etc/passwd"):
            pass
