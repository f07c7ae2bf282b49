"""The data sources xcp-rrdd keeps for a running domain and for a host, with their latest values.

Names, descriptions, units and bounds are rrdd's (``xcp_rrdd.ml``: ``dss_vcpus``,
``dss_mem_vms``, ``dss_netdev``, ``dss_pcpus``, ``dss_mem_host``, ``dss_hostload``;
``rrdp_iostat.ml`` for the ``vbd_<device>_*`` sources), ``standard`` being rrdd's ``default``.
Values are made up but not random: each is a pure function of the object, the domain and the
5-second RRD step the :class:`~.rrd.RrdClock` is in, so that they move from one step to the next
(what Ceilometer samples) and repeat within a step. The network rates are those the simulated
dom0 shows in ``/proc/net/dev`` (:mod:`.dom0_root`), turned round as rrdd turns them: what dom0
receives on ``vif<domid>.<N>`` is what the guest sends (``vif_N_tx``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import dom0_root

STEP = 5.0  # seconds between two RRD updates (rrdd's timeslice)
KiB = 1024
INF = math.inf
_RUNSTATES = (
    ("fullrun", "Fraction of time that all VCPUs are running"),
    ("full_contention", "Fraction of time that all VCPUs are runnable (i.e., waiting for CPU)"),
    ("concurrency_hazard",
     "Fraction of time that some VCPUs are running and some are runnable"),
    ("blocked", "Fraction of time that all VCPUs are blocked or offline"),
    ("partial_run", "Fraction of time that some VCPUs are running, and some are blocked"),
    ("partial_contention",
     "Fraction of time that some VCPUs are runnable and some are blocked"),
)
# (suffix, description, units, standard, range of the made-up value), per VBD device.
_VBD = (
    ("read", "Reads from device VDI, in B/s", "B/s", (0.0, 8 * 1024**2)),
    ("write", "Writes from device VDI, in B/s", "B/s", (0.0, 4 * 1024**2)),
    ("read_latency", "Read latency from device VDI, in microseconds", "μs", (80.0, 900.0)),
    ("write_latency", "Write latency from device VDI, in microseconds", "μs", (90.0, 1500.0)),
    ("io_throughput_read", "Data read from the VDI, in MiB/s", "MiB/s", None),
    ("io_throughput_write", "Data written to the VDI, in MiB/s", "MiB/s", None),
    ("io_throughput_total", "All VDI I/O, in MiB/s", "MiB/s", None),
    ("iops_read", "Read requests per second", "requests/s", None),
    ("iops_write", "Write requests per second", "requests/s", None),
    ("iops_total", "I/O Requests per second", "requests/s", None),
    ("iowait", "Total I/O wait time (all requests) per second", "s/s", (0.0, 0.2)),
    ("inflight", "Number of I/O requests currently in flight", "requests", (0.0, 4.0)),
    ("latency", "Average I/O latency", "μs", (80.0, 1200.0)),
    ("avgqu_sz", "Average I/O queue size", "requests", (0.0, 2.0)),
)


@dataclass(frozen=True)
class Source:
    """One data source as rrdd describes it, with its value at the step it was made for."""

    name: str
    description: str
    units: str
    minimum: float
    maximum: float
    standard: bool  # recorded by default; the others only after record_data_source
    value: float

    def record(self, enabled: bool) -> dict[str, Any]:
        """The XAPI ``data_source`` record; its ``value`` is always 0, as XAPI sends it."""
        return {"name_label": self.name, "name_description": self.description,
                "enabled": enabled, "standard": self.standard, "units": self.units,
                "min": self.minimum, "max": self.maximum, "value": 0.0}


def _unit(*key: object) -> float:
    """A number in [0, 1) fixed by ``key``, the same in every run (no salted hash)."""
    digest = hashlib.blake2b("/".join(map(str, key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _between(low: float, high: float, *key: object) -> float:
    return low + (high - low) * _unit(*key)


def _vcpu_sources(record: dict[str, Any], metrics: dict[str, Any], seed: tuple,
                  running: bool) -> Iterator[Source]:
    """cpu0..cpuN-1 for every VCPU the domain may have (VCPUs_max), busy while online."""
    online = int(metrics.get("VCPUs_number", 0) or 0) if running else 0
    loads = [_between(0.02, 0.85, *seed, "cpu", i) if i < online else 0.0
             for i in range(int(record["VCPUs_max"]))]
    for i, load in enumerate(loads):
        yield Source(f"cpu{i}", f"CPU{i} usage", "(fraction)", 0.0, 1.0, True, load)
    usage = sum(loads[:online]) / online if online else 0.0
    yield Source("cpu_usage", "Domain CPU usage", "(fraction)", 0.0, 1.0, True, usage)
    shares = [_unit(*seed, "runstate", name) for name, _ in _RUNSTATES]
    total = sum(shares) or 1.0
    for (name, description), share in zip(_RUNSTATES, shares, strict=True):
        yield Source(f"runstate_{name}", description, "(fraction)", 0.0, INF, False,
                     share / total if running else 0.0)


def _memory_sources(db: Any, record: dict[str, Any], metrics: dict[str, Any],
                    seed: tuple) -> Iterator[Source]:
    actual = float(metrics.get("memory_actual", 0) or 0)
    yield Source("memory", "Memory currently allocated to VM", "B", 0.0, INF, True, actual)
    yield Source("memory_target", "Target of VM balloon driver", "B", 0.0, INF, True, actual)
    if record["is_control_domain"]:
        total = int(record["memory_static_max"]) // KiB
        available = total * dom0_root.AVAILABLE_PERCENT // 100 * KiB
        yield Source("memory_internal_free", "Dom0 current free memory", "B", 0.0, INF, True,
                     float(available))
    elif db.exists("VM_guest_metrics", record["guest_metrics"]):
        # rrdd has this one only from a guest whose tools write data/meminfo_free.
        free_kib = int(actual / KiB * _between(0.25, 0.75, *seed, "meminfo_free"))
        yield Source("memory_internal_free", "Memory used as reported by the guest agent",
                     "KiB", 0.0, INF, True, float(free_kib))


def _vif_sources(db: Any, record: dict[str, Any]) -> Iterator[Source]:
    received = float(dom0_root.RECEIVE_RATES["vif"])  # by dom0: sent by the guest
    for vif in record["VIFs"]:
        vif_record = db.get("VIF", vif)
        if not vif_record["currently_attached"]:
            continue
        device = vif_record["device"]
        number = f"number '{device}'"
        yield Source(f"vif_{device}_tx", f"Bytes per second transmitted on virtual interface "
                     f"{number}", "B/s", 0.0, INF, True, received)
        yield Source(f"vif_{device}_rx", f"Bytes per second received on virtual interface "
                     f"{number}", "B/s", 0.0, INF, True, received * dom0_root.SEND_FACTOR)
        yield Source(f"vif_{device}_rx_errors", "Receive errors per second on virtual "
                     f"interface {number}", "err/s", 0.0, INF, False, 0.0)
        yield Source(f"vif_{device}_tx_errors", "Transmit errors per second on virtual "
                     f"interface {number}", "err/s", 0.0, INF, False, 0.0)


def _vbd_values(seed: tuple, device: str) -> dict[str, float]:
    values = {suffix: _between(*bounds, *seed, "vbd", device, suffix)
              for suffix, _, _, bounds in _VBD if bounds is not None}
    mib = float(1024**2)
    values.update(
        io_throughput_read=values["read"] / mib, io_throughput_write=values["write"] / mib,
        io_throughput_total=(values["read"] + values["write"]) / mib,
        iops_read=float(int(values["read"] / 65536)), iops_write=float(int(values["write"] / 65536)),
        inflight=float(int(values["inflight"])))
    values["iops_total"] = values["iops_read"] + values["iops_write"]
    return values


def _vbd_sources(db: Any, record: dict[str, Any], seed: tuple) -> Iterator[Source]:
    for vbd in record["VBDs"]:
        vbd_record = db.get("VBD", vbd)
        device = vbd_record["device"]
        if not vbd_record["currently_attached"] or not device or vbd_record["empty"]:
            continue
        values = _vbd_values(seed, device)
        for suffix, description, units, _ in _VBD:
            yield Source(f"vbd_{device}_{suffix}", description, units, 0.0, INF, True,
                         values[suffix])


def vm_sources(db: Any, vm: str, step: int) -> dict[str, Source]:
    """The sources of ``vm``'s running domain at RRD step ``step``, by name."""
    record = db.get("VM", vm)
    metrics = db.all("VM_metrics").get(record["metrics"], {})
    seed = (record["uuid"], record["domid"], step)
    running = record["power_state"] == "Running"
    sources = [*_vcpu_sources(record, metrics, seed, running),
               *_memory_sources(db, record, metrics, seed),
               *_vif_sources(db, record), *_vbd_sources(db, record, seed)]
    return {source.name: source for source in sources}


def host_sources(db: Any, host: str, step: int) -> dict[str, Source]:
    """The sources of ``host`` at RRD step ``step``, by name."""
    from .ops.placement import memory_free  # the ops package imports this module's users

    record = db.get("host", host)
    seed = (record["uuid"], step)
    count = max(int(record.get("cpu_info", {}).get("cpu_count", "1") or 1), 1)
    loads = [_between(0.01, 0.6, *seed, "pcpu", i) for i in range(count)]
    sources = [Source(f"cpu{i}", f"Physical cpu usage for cpu {i}", "(fraction)", 0.0, 1.0,
                      True, load) for i, load in enumerate(loads)]
    sources.append(Source("cpu_avg", "Average physical cpu usage", "(fraction)", 0.0, 1.0, True,
                          sum(loads) / count))
    domains = [db.get("VM", vm) for vm in record["resident_VMs"]]
    running = [vm for vm in domains if vm["power_state"] == "Running"]
    guests = sum(1 for vm in running if not vm["is_control_domain"])
    vcpus = sum(int(db.all("VM_metrics").get(vm["metrics"], {}).get("VCPUs_number", 0) or 0)
                for vm in running)
    metrics = db.all("host_metrics").get(record["metrics"], {})
    sources += [
        Source("loadavg", "Domain0 loadavg", "(fraction)", -INF, INF, True,
               0.05 + 0.02 * guests),  # what dom0's /proc/loadavg shows
        Source("memory_total_kib", "Total amount of memory in the host", "KiB", 0.0, INF, True,
               float(int(metrics.get("memory_total", 0) or 0) // KiB)),
        Source("memory_free_kib", "Total amount of free memory", "KiB", 0.0, INF, True,
               float(max(memory_free(db, host), 0) // KiB)),
        Source("running_vcpus", "The total number of running vCPUs per host", "count", 0.0,
               INF, True, float(vcpus)),
        Source("running_domains", "The total number of running domains per host", "count",
               0.0, INF, True, float(len(running))),
    ]
    received = float(dom0_root.RECEIVE_RATES["eth0"])
    sent = received * dom0_root.SEND_FACTOR
    physical = sorted({db.get("PIF", pif)["device"] for pif in record["PIFs"]
                       if db.get("PIF", pif)["physical"]})
    for device in physical:
        sources += [
            Source(f"pif_{device}_rx", f"Bytes per second received on physical interface "
                   f"{device}", "B/s", 0.0, INF, True, received),
            Source(f"pif_{device}_tx", f"Bytes per second sent on physical interface {device}",
                   "B/s", 0.0, INF, True, sent)]
    sources += [
        Source("pif_aggr_rx", "Bytes per second received on all physical interfaces", "B/s",
               0.0, INF, True, received * len(physical)),
        Source("pif_aggr_tx", "Bytes per second sent on all physical interfaces", "B/s", 0.0,
               INF, True, sent * len(physical))]
    return {source.name: source for source in sources}
