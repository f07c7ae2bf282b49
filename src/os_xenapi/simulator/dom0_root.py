"""The kernel's files in the simulated dom0: ``/proc`` that follows the simulated host, a few
``/proc/sys`` settings and a PCI bus in ``/sys``, written under the dom0 root.

Plugins read ``/proc/uptime``, ``/proc/loadavg``, ``/proc/meminfo`` and ``/proc/net/dev`` (host
uptime, Ceilometer's per-VIF bandwidth); :func:`refresh` writes them again before each plugin run
from the database: the uptime from the host's ``other_config:boot_time`` (as XAPI records it), a
line ``vif<domid>.<device>`` for each VIF of each running VM on the host, whose byte counters grow
with the VM's time running, dom0's memory. :func:`seed` makes, once and only where nothing is
yet, the settings the ``sysctl`` stand-in serves and the PCI devices ``lspci`` and
``xenhost.get_pci_type`` read. Every simulated host shares the one dom0 root, so ``/proc`` shows
the host of the latest plugin run.

Nothing is written through a symlink: each directory is opened level by level with O_NOFOLLOW,
and files are replaced by rename, so a link a plugin left in the root cannot lead the simulator
(perhaps root) to a file of the real machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .values import DateTime

KiB = 1024
# Bytes per second dom0 receives on each interface in /proc/net/dev; it sends SEND_FACTOR
# times as much. The guests' RRD data sources vif_N_rx/tx report the same rates (:mod:`.rrd`).
RECEIVE_RATES = {"lo": 1_000, "eth0": 250_000, "vif": 4_000}
SEND_FACTOR = 3
# Of dom0's memory, the share /proc/meminfo shows as available (dom0's memory_internal_free).
AVAILABLE_PERCENT = 70
# Settings a dom0 has from boot; sysctl -w may change them later, seed() never resets them.
SYSCTL_DEFAULTS = {
    "net/bridge/bridge-nf-call-arptables": "0",
    "net/bridge/bridge-nf-call-iptables": "0",
    "net/bridge/bridge-nf-call-ip6tables": "0",
    "net/ipv4/ip_forward": "0",
    **{f"net/ipv6/conf/{name}/disable_ipv6": "0" for name in ("all", "default", "lo", "eth0")},
}
# The simulated host's PCI bus: sysfs attributes of each device, and links between them. Two
# devices are hidden from dom0 for passthrough (bound to pciback, as Nova's XenAPI driver looks
# for them in lspci's "Driver:" lines): a virtual function of the 10 GbE card, and a GPU.
PCI_DEVICES: dict[str, dict[str, str]] = {
    "0000:00:00.0": {"vendor": "0x8086", "device": "0x0e00", "class": "0x060000",
                     "subsystem_vendor": "0x15d9", "subsystem_device": "0x0666",
                     "revision": "0x04"},
    "0000:00:1f.2": {"vendor": "0x8086", "device": "0x1d02", "class": "0x010601",
                     "subsystem_vendor": "0x15d9", "subsystem_device": "0x0666",
                     "revision": "0x06", "driver": "ahci"},
    "0000:01:00.0": {"vendor": "0x8086", "device": "0x10fb", "class": "0x020000",
                     "subsystem_vendor": "0x15d9", "subsystem_device": "0x0611",
                     "revision": "0x01", "driver": "ixgbe", "virtfn0": "0000:02:10.0",
                     "virtfn1": "0000:02:10.1"},
    "0000:01:00.1": {"vendor": "0x8086", "device": "0x10fb", "class": "0x020000",
                     "subsystem_vendor": "0x15d9", "subsystem_device": "0x0611",
                     "revision": "0x01", "driver": "ixgbe"},
    "0000:02:10.0": {"vendor": "0x8086", "device": "0x10ed", "class": "0x020000",
                     "subsystem_vendor": "0x15d9", "subsystem_device": "0x0611",
                     "revision": "0x01", "driver": "ixgbevf", "physfn": "0000:01:00.0"},
    "0000:02:10.1": {"vendor": "0x8086", "device": "0x10ed", "class": "0x020000",
                     "subsystem_vendor": "0x15d9", "subsystem_device": "0x0611",
                     "revision": "0x01", "driver": "pciback", "physfn": "0000:01:00.0"},
    "0000:83:00.0": {"vendor": "0x10de", "device": "0x1eb8", "class": "0x030200",
                     "subsystem_vendor": "0x10de", "subsystem_device": "0x12a2",
                     "revision": "0xa1", "driver": "pciback"},
}
_LINKS = ("physfn", "virtfn0", "virtfn1", "driver")
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


@contextlib.contextmanager
def _directory(root: Path, relative: str) -> Iterator[int]:
    """A descriptor of root/relative, made level by level; OSError if a level is a symlink."""
    fd = os.open(root, _OPEN_DIR)
    try:
        for part in relative.split("/"):
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            inner = os.open(part, _OPEN_DIR, dir_fd=fd)
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def _write(fd: int, name: str, text: str, replace: bool = True) -> None:
    """Write name in the directory fd: replaced whole by rename, or made only if missing.

    Plugin runs may refresh /proc at the same time: each writer renames a file of its own
    (a unique name), so a reader always finds one whole version or the other."""
    target = f".{name}.{uuid.uuid4().hex}" if replace else name
    try:
        handle = os.open(target, _NEW_FILE, 0o644, dir_fd=fd)
    except FileExistsError:
        return  # made only if missing, and it is there
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        if replace:
            os.replace(target, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException:
        if replace:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target, dir_fd=fd)
        raise


def network_state(db: Any) -> dict[str, Any]:
    """The network stand-ins' first state (lib/simnet.py's layout): dom0's links, and an Open
    vSwitch bridge for each XAPI network, holding its PIFs' devices as ports, as the host's
    networking daemon makes them."""
    links = {"lo": {"kind": "loopback", "up": True, "promisc": False, "master": None},
             "eth0": {"kind": "ether", "up": True, "promisc": False, "master": None}}
    bridges: dict[str, Any] = {}
    interfaces: dict[str, Any] = {}
    for network in db.all("network").values():
        if network["bridge"]:
            bridges.setdefault(network["bridge"], {"ports": [], "flows": []})
    for pif in db.all("PIF").values():
        bridge = db.all("network").get(pif["network"], {}).get("bridge")
        if bridge and pif["device"] not in interfaces:
            bridges[bridge]["ports"].append(pif["device"])
            interfaces[pif["device"]] = {"external_ids": {}, "_uuid": str(uuid.uuid4()),
                                         "ofport": len(bridges[bridge]["ports"])}
    return {"links": links, "bridges": bridges, "interfaces": interfaces}


def seed(root: Path, network: dict[str, Any] | None = None) -> None:
    """Make the settings, the network state (when given) and the PCI devices that are missing;
    leave every existing file alone."""
    if network is not None:
        with _directory(root, "var/lib") as fd:
            _write(fd, "simnet.json", json.dumps(network, indent=1, sort_keys=True),
                   replace=False)
    for key, value in SYSCTL_DEFAULTS.items():
        folder, name = key.rsplit("/", 1)
        with _directory(root, "proc/sys/" + folder) as fd:
            _write(fd, name, value + "\n", replace=False)
    with _directory(root, "sys/bus/pci/devices") as devices:
        if os.listdir(devices):
            return  # a tree of the caller's own: lspci and get_pci_type show that one
    for address, attributes in PCI_DEVICES.items():
        with _directory(root, "sys/bus/pci/devices/" + address) as fd:
            for name, value in attributes.items():
                if name == "driver":
                    with _directory(root, "sys/bus/pci/drivers/" + value):
                        pass
                    with contextlib.suppress(FileExistsError):
                        os.symlink("../../drivers/" + value, name, dir_fd=fd)
                elif name in _LINKS:
                    with contextlib.suppress(FileExistsError):
                        os.symlink("../" + value, name, dir_fd=fd)
                else:
                    _write(fd, name, value + "\n", replace=False)


def _seconds(stamp: Any, default: float) -> float:
    try:
        return DateTime(stamp).to_datetime().timestamp()
    except (TypeError, ValueError):
        return default


def boot_time(host: dict[str, Any], default: float) -> float:
    """When the host booted: its other_config:boot_time (seconds, as XAPI writes it)."""
    try:
        return float(host.get("other_config", {}).get("boot_time", ""))
    except ValueError:
        return default


def _net_dev(db: Any, host: str, now: float, uptime: float) -> str:
    """/proc/net/dev: lo, eth0 and each running guest's vif, counters growing with time up."""
    lines = ["Inter-|   Receive                                                |  Transmit",
             " face |bytes    packets errs drop fifo frame compressed multicast|bytes    "
             "packets errs drop fifo colls carrier compressed"]
    interfaces = [("lo", uptime, RECEIVE_RATES["lo"]), ("eth0", uptime, RECEIVE_RATES["eth0"])]
    for vm in db.all("VM").values():
        if vm["resident_on"] != host or vm["power_state"] not in ("Running", "Paused") or \
                vm["is_control_domain"] or int(vm["domid"]) < 1:
            continue
        started = _seconds(db.all("VM_metrics").get(vm["metrics"], {}).get("start_time"), now)
        for vif in vm["VIFs"]:
            device = db.get("VIF", vif)["device"]
            interfaces.append((f"vif{vm['domid']}.{device}", max(now - started, 0.0),
                               RECEIVE_RATES["vif"]))
    for name, seconds, rate in interfaces:
        received = int(seconds * rate)
        sent = received * SEND_FACTOR
        counters = [received, received // 600, 0, 0, 0, 0, 0, 0,
                    sent, sent // 600, 0, 0, 0, 0, 0, 0]
        lines.append(f"{name:>6}: " + " ".join(str(value) for value in counters))
    return "\n".join(lines) + "\n"


def proc_files(db: Any, host: str, started: float) -> dict[str, str]:
    """{name under /proc: text} for the host now; started is the fallback boot time."""
    now = time.time()
    record = db.get("host", host)
    uptime = max(now - boot_time(record, started), 0.0)
    cpus = max(int(record.get("cpu_info", {}).get("cpu_count", "1") or 1), 1)
    running = sum(1 for vm in db.all("VM").values()
                  if vm["resident_on"] == host and vm["power_state"] == "Running")
    dom0 = db.get("VM", record["control_domain"]) if db.exists("VM", record["control_domain"]) \
        else {}
    total = int(dom0.get("memory_static_max", 4 << 30)) // KiB
    load = 0.05 + 0.02 * running
    return {
        "uptime": f"{uptime:.2f} {uptime * cpus * 0.97:.2f}\n",
        "loadavg": f"{load:.2f} {load * 0.8:.2f} {load * 0.6:.2f} 1/{180 + running * 4} "
                   f"{4000 + running}\n",
        "meminfo": "".join(f"{label + ':':<16}{value:>8} kB\n" for label, value in [
            ("MemTotal", total), ("MemFree", total * 55 // 100),
            ("MemAvailable", total * AVAILABLE_PERCENT // 100), ("Buffers", total // 50),
            ("Cached", total // 8), ("SwapTotal", 1 << 20), ("SwapFree", 1 << 20)]),
        "net/dev": _net_dev(db, host, now, uptime),
    }


def refresh(root: Path, files: dict[str, str]) -> None:
    """Write the /proc files proc_files made under root, each replaced whole."""
    for name, text in files.items():
        folder, _, base = ("proc/" + name).rpartition("/")
        with _directory(root, folder) as fd:
            _write(fd, base, text)
