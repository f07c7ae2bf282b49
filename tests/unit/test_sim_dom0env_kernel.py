"""The simulated dom0's kernel files and the stand-ins that read them: sysctl on DOM0_ROOT/proc/sys,
lspci on DOM0_ROOT/sys/bus/pci/devices, and what the simulator seeds there (dom0_root.seed), never
the real machine's /proc, /sys or PCI bus."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from os_xenapi.simulator import dom0_root
from os_xenapi.simulator.plugins import DOM0ENV, dom0_environment

BIN = DOM0ENV / "bin"
TIMEOUT = 60.0


def run(root: Path, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / command), *args], env=dom0_environment(root),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=root)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    made = tmp_path / "dom0"
    made.mkdir()
    dom0_root.seed(made)
    return made


# -- seed ----------------------------------------------------------------------------------------

def test_seed_makes_the_settings_and_a_pci_bus(root: Path) -> None:
    assert (root / "proc/sys/net/bridge/bridge-nf-call-iptables").read_text() == "0\n"
    assert (root / "proc/sys/net/ipv6/conf/eth0/disable_ipv6").read_text() == "0\n"
    devices = root / "sys/bus/pci/devices"
    assert sorted(os.listdir(devices)) == sorted(dom0_root.PCI_DEVICES)
    assert os.readlink(devices / "0000:02:10.0/physfn") == "../0000:01:00.0"
    assert (devices / "0000:02:10.0/physfn").resolve() == (devices / "0000:01:00.0").resolve()


def test_seed_keeps_what_is_there(root: Path) -> None:
    setting = root / "proc/sys/net/bridge/bridge-nf-call-iptables"
    setting.write_text("1\n")
    dom0_root.seed(root)
    assert setting.read_text() == "1\n"


def test_seed_leaves_a_pci_tree_of_the_callers_alone(tmp_path: Path) -> None:
    (tmp_path / "sys/bus/pci/devices/0000:81:00.1").mkdir(parents=True)
    dom0_root.seed(tmp_path)
    assert os.listdir(tmp_path / "sys/bus/pci/devices") == ["0000:81:00.1"]


def test_nothing_is_written_through_a_link_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "dom0"
    root.mkdir()
    (root / "proc").symlink_to(outside)
    with pytest.raises(OSError):
        dom0_root.refresh(root, {"uptime": "1.00 1.00\n"})
    with pytest.raises(OSError):
        dom0_root.seed(root)
    assert list(outside.iterdir()) == []


def test_refreshes_at_the_same_time_never_show_half_a_file(root: Path) -> None:
    texts = [f"{n}.00 {n}.00\n" * 200 for n in range(1, 5)]
    errors: list[BaseException] = []
    seen: set[str] = set()
    stop = threading.Event()

    def write(text: str) -> None:
        try:
            for _ in range(200):
                dom0_root.refresh(root, {"uptime": text})
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    def read() -> None:
        while not stop.is_set():
            seen.add((root / "proc/uptime").read_text())

    dom0_root.refresh(root, {"uptime": texts[0]})
    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(text,)) for text in texts]
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(60)
    stop.set()
    reader.join(60)
    assert errors == []
    assert seen <= set(texts)
    assert [name for name in os.listdir(root / "proc") if name.startswith(".")] == []


# -- sysctl --------------------------------------------------------------------------------------

def test_sysctl_writes_and_reads_a_setting(root: Path) -> None:
    done = run(root, "sysctl", "-w", "net.bridge.bridge-nf-call-iptables=1")
    assert (done.returncode, done.stdout) == (0, "net.bridge.bridge-nf-call-iptables = 1\n")
    assert (root / "proc/sys/net/bridge/bridge-nf-call-iptables").read_text() == "1\n"
    assert run(root, "sysctl", "-n", "net.bridge.bridge-nf-call-iptables").stdout == "1\n"
    assert run(root, "sysctl", "net/bridge/bridge-nf-call-iptables").stdout == \
        "net/bridge/bridge-nf-call-iptables = 1\n"


def test_sysctl_of_a_missing_setting_names_dom0s_path(root: Path) -> None:
    done = run(root, "sysctl", "-n", "net.bridge.no-such-setting")
    assert done.returncode == 255
    assert done.stderr == ("sysctl: cannot stat /proc/sys/net/bridge/no-such-setting: "
                           "No such file or directory\n")
    assert str(root) not in done.stderr


def test_sysctl_knows_the_ipv6_settings_of_every_simulated_link(root: Path) -> None:
    assert subprocess.run([str(BIN / "ip"), "link", "add", "qvb1", "type", "veth", "peer",
                           "name", "qvo1"], env=dom0_environment(root), check=False,
                          timeout=TIMEOUT).returncode == 0
    assert run(root, "sysctl", "-n", "net.ipv6.conf.qvb1.disable_ipv6").stdout == "0\n"
    assert run(root, "sysctl", "-w", "net.ipv6.conf.qvb1.disable_ipv6=1").returncode == 0
    assert (root / "proc/sys/net/ipv6/conf/qvb1/disable_ipv6").read_text() == "1\n"
    assert run(root, "sysctl", "-n", "net.ipv6.conf.nosuchlink.disable_ipv6").returncode == 255


@pytest.mark.parametrize(("args", "message"), [
    (["-w", "net.bridge.bridge-nf-call-iptables=yes"], "Invalid argument"),
    (["-n", "../../etc/passwd"], "is an unknown key"),
    (["-w", "net.bridge.bridge-nf-call-iptables"], "must be of the form name=value"),
    (["-p"], "option -p is not simulated"),
])
def test_sysctl_refusals_change_nothing(root: Path, args: list[str], message: str) -> None:
    done = run(root, "sysctl", *args)
    assert done.returncode == 255 and message in done.stderr
    assert (root / "proc/sys/net/bridge/bridge-nf-call-iptables").read_text() == "0\n"


def test_sysctl_never_follows_a_link_out_of_the_root(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("0\n")
    (root / "proc/sys/net/leak").symlink_to(outside)
    done = run(root, "sysctl", "-w", "net.leak.secret=1")
    assert done.returncode == 255 and "cannot stat /proc/sys/net/leak/secret" in done.stderr
    assert (outside / "secret").read_text() == "0\n"


# -- lspci ---------------------------------------------------------------------------------------

def test_lspci_machine_readable_lists_the_seeded_devices(root: Path) -> None:
    done = run(root, "lspci", "-vmmnk")
    assert done.returncode == 0
    blocks = done.stdout.split("\n\n")
    assert blocks[-1] == ""
    assert len(blocks) - 1 == len(dom0_root.PCI_DEVICES)
    assert blocks[2] == ("Slot:\t01:00.0\nClass:\t0200\nVendor:\t8086\nDevice:\t10fb\n"
                         "SVendor:\t15d9\nSDevice:\t0611\nRev:\t01\nDriver:\tixgbe\n"
                         "Module:\tixgbe")
    assert "ProgIf:\t01" in blocks[1]  # the AHCI controller's programming interface


def test_lspci_one_line_per_device_with_domains(root: Path) -> None:
    lines = run(root, "lspci", "-n", "-D").stdout.splitlines()
    assert lines[0] == "0000:00:00.0 0600: 8086:0e00 (rev 04)"
    assert len(lines) == len(dom0_root.PCI_DEVICES)


def test_lspci_refuses_options_it_does_not_simulate(root: Path) -> None:
    done = run(root, "lspci", "-x")
    assert done.returncode == 2 and "invalid option -- 'x'" in done.stderr
