"""The simulated dom0 never runs a program of the real machine: every program a plugin can start
is a stand-in of dom0env/bin, whatever the simulator's own PATH and Python directory hold.

The marker test plants an executable named like every such program (and like every real tool a
stand-in uses) first on the simulator's PATH and in the directory of the Python it runs on,
then calls each plugin function that starts a program, through XenAPISession. No marker may
run, and each call must either work through the stand-ins or fail with COMMAND_MISSING.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import XenAPI
from dom0_programs import inventory

from os_xenapi.client import (
    disk_management,
    exception,
    host_management,
    host_network,
    host_xenstore,
    vm_management,
)
from os_xenapi.client.retry import Retry
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.plugins import DOM0ENV, PLUGIN_PATH, dom0_environment, dom0env_module

ORIGINATOR = "sealed-dom0-tests"
# Real tools the stand-ins use (by absolute path) and programs a careless stand-in might run.
TOOLS = ("mke2fs", "mkswap", "xorriso", "rsync", "ssh", "python3", "e2fsck", "qemu-img",
         "sleep", "dd", "losetup", "dmsetup", "modprobe")
XORRISO = "/usr/bin/xorriso"
MiB = 1024 * 1024
MARKER = """#!/bin/sh
echo "$0 $*" >> {log}
echo "marker {name} ran" >&2
exit 97
"""


@pytest.fixture(scope="module")
def programs() -> dict[str, set[str]]:
    return inventory()


# -- every program is a stand-in -------------------------------------------------------------

def test_every_program_the_plugins_can_start_resolves_in_dom0env(
        programs: dict[str, set[str]]) -> None:
    assert len(programs) >= 28, sorted(programs)
    for name, files in sorted(programs.items()):
        found = shutil.which(name, path=PLUGIN_PATH)
        assert found is not None, f"{name} (started by {sorted(files)}) has no stand-in"
        assert Path(found).parent == DOM0ENV / "bin", found


def test_the_inventory_knows_the_programs_of_the_issue(programs: dict[str, set[str]]) -> None:
    assert {"sysctl", "ovs-ofctl", "ovsdb-client", "ipset", "conntrack", "iptables-save",
            "iptables-restore",
            "ip6tables-save", "ip6tables-restore", "lspci", "ip", "ovs-vsctl", "brctl",
            "xenstore-read", "sfdisk", "kpartx", "mkfs", "mkswap", "mount", "umount",
            "mkisofs", "vhd-util", "rsync"} <= set(programs)


def test_the_plugins_path_is_dom0env_bin_alone() -> None:
    env = dom0_environment("/nonexistent")
    assert env["PATH"] == str(DOM0ENV / "bin")
    assert os.path.isabs(env["XAPI_SIM_PYTHON"])
    assert os.path.realpath(env["XAPI_SIM_PYTHON"]) == env["XAPI_SIM_PYTHON"]


# -- no marker ever runs -----------------------------------------------------------------------

class Markers:
    """Marker executables in two directories, and the log each appends to when it runs."""

    def __init__(self, base: Path, names: list[str]) -> None:
        self.log = base / "ran.log"
        self.on_path = base / "first-on-path"
        self.python_dir = base / "python-dir"
        for folder in (self.on_path, self.python_dir):
            folder.mkdir()
            for name in names:
                path = folder / name
                path.write_text(MARKER.format(log=self.log, name=name))
                path.chmod(0o755)
        self.python = self.python_dir / "python"
        self.python.symlink_to(os.path.realpath(sys.executable))
        self.count = len(names)

    def ran(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture(scope="module")
def markers(tmp_path_factory: pytest.TempPathFactory,
            programs: dict[str, set[str]]) -> Markers:
    names = sorted(set(programs) | set(TOOLS) | {"cleanup.py"})
    return Markers(tmp_path_factory.mktemp("markers"), names)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = tmp_path_factory.mktemp("dom0")
    (made / "images").mkdir()
    return made


@pytest.fixture(scope="module")
def sim(root: Path, markers: Markers) -> Iterator[Simulator]:
    """A two-host pool with a running VM, started with the markers first on its PATH and its
    Python in the markers' directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{markers.on_path}{os.pathsep}{os.environ.get('PATH', '')}")
        patch.setattr(sys, "executable", str(markers.python))
        with Simulator(hosts=2, vms=1, auth_failure_delay=0, dom0_root=root) as simulator:
            yield simulator


@pytest.fixture(scope="module")
def x(sim: Simulator) -> Iterator[Any]:
    official = XenAPI.Session(sim.url)
    official.xenapi.login_with_password(sim.username, sim.password, "1.0", ORIGINATOR)
    yield official.xenapi
    official.xenapi.session.logout()


@pytest.fixture(scope="module")
def session(sim: Simulator) -> Iterator[XenAPISession]:
    with XenAPISession(sim.url, sim.username, sim.password, ORIGINATOR,
                       retry=Retry(wait=0.01, backoff=0.0)) as made:
        yield made


@pytest.fixture(scope="module")
def domid(x: Any) -> str:
    [vm] = [ref for ref, record in x.VM.get_all_records().items()
            if not record["is_a_template"] and not record["is_control_domain"]]
    x.VM.start(vm, False, False)
    return x.VM.get_domid(vm)


@pytest.fixture(scope="module")
def sr_path(x: Any) -> str:
    return "/var/run/sr-mount/" + x.SR.get_uuid(x.pool.get_default_SR(x.pool.get_all()[0]))


@pytest.fixture(scope="module")
def plugged(x: Any) -> Iterator[str]:
    """The dom0 device of a 16 MiB VDI plugged into the master's control domain."""
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    vdi = x.VDI.create({"name_label": "scratch", "name_description": "", "SR": sr,
                        "virtual_size": str(16 * MiB), "type": "user", "sharable": False,
                        "read_only": False, "other_config": {}})
    dom0 = x.host.get_control_domain(x.pool.get_master(x.pool.get_all()[0]))
    vbd = x.VBD.create({"VM": dom0, "VDI": vdi, "userdevice": "autodetect", "bootable": False,
                        "mode": "RW", "type": "Disk", "unpluggable": True, "empty": False,
                        "other_config": {}, "qos_algorithm_type": "",
                        "qos_algorithm_params": {}})
    x.VBD.plug(vbd)
    yield x.VBD.get_device(vbd)
    x.VBD.unplug(vbd)
    x.VBD.destroy(vbd)
    x.VDI.destroy(vdi)


def netwrap(session: XenAPISession, *cmd: str, cmd_input: str | None = None) -> dict[str, Any]:
    kwargs = {"cmd": list(cmd)} | ({"cmd_input": cmd_input} if cmd_input is not None else {})
    return session.call_plugin_serialized("netwrap", "run_command", **kwargs)


def netwrap_ok(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda done: done["returncode"] == 0 and text in done["out"]


def iso(root: Path, sr_path: str) -> str:
    """A VDI uuid whose boot ISO lies in the SR's iso directory (made by the real xorriso)."""
    vdi_uuid = str(uuid.uuid4())
    source = root.parent / f"iso-{vdi_uuid}"
    source.mkdir()
    (source / "isolinux.bin").write_bytes(b"\xfa" * 2048)
    folder = root / sr_path.lstrip("/") / "iso"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([XORRISO, "-no_rc", "-as", "mkisofs", "-quiet", "-o",
                    str(folder / f"{vdi_uuid}.img"), "-c", "boot.cat", "-b", "isolinux.bin",
                    "-no-emul-boot", "-boot-load-size", "4", str(source)],
                   capture_output=True, timeout=60, check=True)
    return vdi_uuid


def vhd(root: Path, sr_path: str) -> str:
    """A VDI uuid whose 4 MiB VHD lies in the SR (written as dom0's vhd-util would)."""
    vdi_uuid = str(uuid.uuid4())
    path = root / sr_path.lstrip("/") / f"{vdi_uuid}.vhd"
    dom0env_module("simvhd").create(str(path), 4 * MiB)
    return vdi_uuid


def calls(session: XenAPISession, sim: Simulator, root: Path, domid: str, sr_path: str,
          device: str, x: Any) -> list[tuple[str, Callable[[], Any], Callable[[Any], bool]]]:
    """(what, the call, a check of its result that only the stand-in can pass)."""
    master = x.host.get_address(x.pool.get_master(x.pool.get_all()[0]))
    [other] = [r["address"] for r in x.host.get_all_records().values() if r["address"] != master]
    known_hosts = root / "root/.ssh/known_hosts"

    def trust_other_host() -> None:
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        env = {**dom0_environment(root), "XAPI_SIM_SOCKET": sim.unix_path}
        known_hosts.write_text(subprocess.run(
            [str(DOM0ENV / "bin/ssh-keyscan"), other], env=env, capture_output=True, text=True,
            timeout=30, check=True).stdout)

    def transfer(host: str) -> Callable[[], Any]:
        def run() -> str:
            vdi = vhd(root, sr_path)
            instance = str(uuid.uuid4())
            vm_management.transfer_vhd(session, instance, host, vdi, sr_path, 0)
            return (root / f"images/instance{instance}/0.vhd").read_bytes()[-512:-504]
        return run

    rules = "*filter\n:neutron-test - [0:0]\n-A INPUT -j neutron-test\nCOMMIT\n"
    return [
        ("xenstore-write", lambda: host_xenstore.write_record(session, domid, "vm-data/k", "v"),
         lambda result: result == '"v"'),
        ("xenstore-read", lambda: host_xenstore.read_record(session, domid, "vm-data/k"),
         lambda result: result == '"v"'),
        ("xenstore-ls", lambda: host_xenstore.list_records(session, domid, "vm-data"),
         lambda result: result == {"k": "v"}),
        ("xenstore-rm", lambda: host_xenstore.delete_record(session, domid, "vm-data/k"),
         lambda result: result == '""'),
        ("ovs-vsctl", lambda: host_network.ovs_add_port(session, "xenbr0", "tap9.0"),
         lambda result: result is None),
        ("ip", lambda: host_network.ip_link_add_veth_pair(session, "qvb9", "qvo9"),
         lambda result: result is None),
        ("brctl", lambda: host_network.brctl_add_br(session, "qbr9"),
         lambda result: result is None),
        ("lspci", lambda: host_management.get_pci_device_details(session),
         lambda result: "Slot:\t01:00.0\nClass:\t0200\nVendor:\t8086" in result),
        ("netwrap ip", lambda: netwrap(session, "ip", "-o", "link", "show"),
         netwrap_ok("qvb9@qvo9")),
        ("netwrap ovs-vsctl", lambda: netwrap(session, "ovs-vsctl", "--may-exist", "add-br",
                                              "br-int"), netwrap_ok("")),
        ("netwrap ovs-ofctl", lambda: netwrap(session, "ovs-ofctl", "add-flow", "br-int",
                                              "priority=1,actions=normal"), netwrap_ok("")),
        ("netwrap ovs-ofctl dump", lambda: netwrap(session, "ovs-ofctl", "dump-flows", "br-int"),
         netwrap_ok("priority=1 actions=normal")),
        ("netwrap ovsdb-client monitor", lambda: netwrap(
            session, "ovsdb-client", "--timeout=1", "monitor", "Interface", "name,ofport",
            "--format=json"), netwrap_ok('"headings":["row","action","name","ofport"]')),
        ("netwrap ipset", lambda: netwrap(session, "ipset", "create", "-exist", "NIPv4t",
                                          "hash:net", "family", "inet"), netwrap_ok("")),
        ("netwrap ipset list", lambda: netwrap(session, "ipset", "list", "-name"),
         netwrap_ok("NIPv4t")),
        ("netwrap sysctl", lambda: netwrap(session, "sysctl", "-w",
                                           "net.bridge.bridge-nf-call-iptables=1"),
         netwrap_ok("net.bridge.bridge-nf-call-iptables = 1")),
        ("netwrap conntrack", lambda: netwrap(session, "conntrack", "-D", "-s", "10.0.0.1"),
         lambda done: done["returncode"] == 1 and "0 flow entries have been deleted" in
         done["err"]),
        ("netwrap iptables-restore", lambda: netwrap(session, "iptables-restore", "-n",
                                                     cmd_input=rules), netwrap_ok("")),
        ("netwrap iptables-save", lambda: netwrap(session, "iptables-save"),
         netwrap_ok("-A INPUT -j neutron-test")),
        ("netwrap ip6tables-restore", lambda: netwrap(session, "ip6tables-restore",
                                                      cmd_input=rules), netwrap_ok("")),
        ("netwrap ip6tables-save", lambda: netwrap(session, "ip6tables-save"),
         netwrap_ok(":neutron-test - [0:0]")),
        ("xenhost iptables-save", lambda: session.call_plugin_serialized(
            "xenhost", "iptables_config", cmd_args=["iptables-save", "-t", "filter"]),
         lambda result: "-A INPUT -j neutron-test" in result["out"]),
        ("make_partition (sfdisk)", lambda: disk_management.make_partition(
            session, device, 2048, "-"), lambda result: result is None),
        ("mkfs ext4 (kpartx, mkfs, mke2fs)", lambda: disk_management.mkfs(
            session, device, 1, "ext4", "sealed"), lambda result: result is None),
        ("mkfs swap (mkswap)", lambda: disk_management.mkfs(session, device, 1, "swap", None),
         lambda result: result is None),
        ("ipxe inject (mount, mkisofs, umount)", lambda: disk_management.inject_ipxe_config(
            session, sr_path, iso(root, sr_path), "http://192.0.2.1/menu", "192.0.2.20",
            "255.255.255.0", "192.0.2.1", "192.0.2.53", "genisoimage"),
         lambda result: result is None),
        ("safe_copy_vdis (vhd-util)", lambda: disk_management.safe_copy_vdis(
            session, sr_path, [vhd(root, sr_path)], [str(uuid.uuid4())]),
         lambda result: "uuid" in result["root"]),
        ("transfer_vhd here (ip, rsync)", transfer(master), lambda data: data == b"conectix"),
        ("transfer_vhd to the other host (rsync, ssh)",
         lambda: (trust_other_host(), transfer(other)())[1], lambda data: data == b"conectix"),
    ]


def test_no_program_of_the_real_machine_ever_runs(
        sim: Simulator, x: Any, session: XenAPISession, root: Path, markers: Markers,
        domid: str, sr_path: str, plugged: str) -> None:
    outcomes = []
    for what, call, check in calls(session, sim, root, domid, sr_path, plugged, x):
        try:
            result = call()
        except exception.Dom0PluginError as exc:
            outcomes.append((what, "failed", exc.details))
            continue
        outcomes.append((what, "ok" if check(result) else "wrong result", result))
    assert markers.ran() == []
    assert [outcome for outcome in outcomes if outcome[1] != "ok"] == []
    assert markers.count >= 40


def test_a_program_with_no_stand_in_is_missing_not_the_real_one(
        session: XenAPISession, markers: Markers) -> None:
    # cleanup.py lives in the real dom0's /opt/xensource/sm; the simulated dom0 has none.
    with pytest.raises(exception.Dom0PluginError) as info:
        session.call_plugin_serialized("xenhost", "query_gc", sr_uuid=str(uuid.uuid4()),
                                       vdi_uuid=str(uuid.uuid4()))
    assert info.value.details == ["OS_XENAPI_COMMAND_MISSING", "cleanup.py"]
    assert markers.ran() == []
