"""bandwidth plugin: per-VIF byte counters from /proc/net/dev under DOM0_ROOT.

Plugin files are imported in-process with a stand-in XenAPIPlugin (stubs/XenAPIPlugin.py)
put into sys.modules only while they load (see harness.py); XenAPI is the official SDK.
"""

import pytest

from . import harness

CODES = harness.dom0lib().errors

NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0
  eth0: 9999999   12345    0    0    0     0          0         0  8888888   12000    0    0    0     0       0          0
vif5.0:    1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0
vif5.1:12345678      10    0    0    0     0          0         0       70      20    0    0    0     0       0          0
vif12.0:      5       1    0    0    0     0          0         0        6       1    0    0    0     0       0          0
"""


def _write_net_dev(dom0_root, text):
    (dom0_root / "proc" / "net").mkdir(parents=True)
    (dom0_root / "proc" / "net" / "dev").write_text(text)


def test_fetch_all_bandwidth_reports_each_vif_by_domid_and_device(dom0_root):
    _write_net_dev(dom0_root, NET_DEV)
    assert harness.call("bandwidth", "fetch_all_bandwidth") == {
        "5": {"0": {"bw_in": 2000, "bw_out": 1000}, "1": {"bw_in": 70, "bw_out": 12345678}},
        "12": {"0": {"bw_in": 6, "bw_out": 5}},
    }


def test_fetch_all_bandwidth_without_vifs_is_empty(dom0_root):
    _write_net_dev(dom0_root, NET_DEV.split("vif5.0")[0])
    assert harness.call("bandwidth", "fetch_all_bandwidth") == {}


def test_truncated_vif_line_is_bad_data(dom0_root, failure):
    _write_net_dev(dom0_root, "vif5.0: 1 2 3\n")
    with pytest.raises(failure) as info:
        harness.call("bandwidth", "fetch_all_bandwidth")
    assert info.value.params[:2] == [CODES.BAD_DATA, "/proc/net/dev"]


def test_missing_proc_net_dev_is_not_found(failure):
    with pytest.raises(failure) as info:
        harness.call("bandwidth", "fetch_all_bandwidth")
    assert info.value.params[:2] == [CODES.NOT_FOUND, "/proc/net/dev"]
