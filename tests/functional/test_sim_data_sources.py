"""RRD data sources (VM, host and SR ``get_data_sources`` / ``query_data_source`` and friends)
through the official XenAPI SDK, with what Ceilometer's XenAPI inspector made of them."""

from __future__ import annotations

import http.client
import json
import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import XenAPI

from os_xenapi.simulator import Simulator

ORIGINATOR = "data-sources-tests"
NOT_FOUND = "Rrd_interface.Rrdd_error([S(Rrdd_internal_error);S(Not_found)])"
RECORD_FIELDS = {"name_label": str, "name_description": str, "enabled": bool, "standard": bool,
                 "units": str, "min": float, "max": float, "value": float}
MiB = 1024**2


def invalid(name: str) -> str:
    return f'Rrd_interface.Rrdd_error([S(Rrdd_internal_error);S(Rrd.Invalid_data_source("{name}"))])'


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(vms=2, auth_failure_delay=0) as simulator:
        yield simulator


def guests(x: Any) -> list[str]:
    return sorted(ref for ref, rec in x.VM.get_all_records().items()
                  if not rec["is_a_template"] and not rec["is_control_domain"]
                  and rec["name_label"].startswith("sim-vm"))


@pytest.fixture(scope="module")
def vm(x: Any) -> Iterator[str]:
    """The first seeded VM, running (it has PV drivers: it comes from a Linux template)."""
    ref = guests(x)[0]
    x.VM.start(ref, False, False)
    yield ref
    x.VM.hard_shutdown(ref)


@pytest.fixture(scope="module")
def halted(x: Any) -> str:
    return guests(x)[1]


@pytest.fixture
def frozen(sim: Simulator) -> Iterator[Simulator]:
    """The RRD clock stopped for one test, so that a step's values stay put."""
    sim.freeze_rrd_clock()
    yield sim
    sim.freeze_rrd_clock(False)


def failure(call: Any, *args: Any) -> list[str]:
    with pytest.raises(XenAPI.Failure) as info:
        call(*args)
    return info.value.details


def sources(x: Any, vm: str) -> dict[str, dict[str, Any]]:
    return {record["name_label"]: record for record in x.VM.get_data_sources(vm)}


# -- what a running VM offers --------------------------------------------------------------------

def test_running_vm_offers_rrdds_standard_sources_per_vcpu_vif_and_vbd(x: Any, vm: str) -> None:
    names = set(sources(x, vm))
    vcpus = int(x.VM.get_VCPUs_max(vm))
    assert {f"cpu{i}" for i in range(vcpus)} <= names
    assert {"cpu_usage", "memory", "memory_target", "memory_internal_free"} <= names
    for vif in x.VM.get_VIFs(vm):
        device = x.VIF.get_device(vif)
        assert {f"vif_{device}_rx", f"vif_{device}_tx"} <= names
    for vbd in x.VM.get_VBDs(vm):
        device = x.VBD.get_device(vbd)
        assert {f"vbd_{device}_read", f"vbd_{device}_write"} <= names


def test_data_sources_come_sorted_by_name_as_rrdd_lists_them(x: Any, vm: str) -> None:
    labels = [record["name_label"] for record in x.VM.get_data_sources(vm)]
    assert labels == sorted(labels)


def test_data_source_records_have_xapis_fields_and_a_zero_value(x: Any, vm: str) -> None:
    for record in x.VM.get_data_sources(vm):
        assert {key: type(value) for key, value in record.items()} == RECORD_FIELDS
        assert record["value"] == 0.0  # XAPI's to_API_data_source always sends 0


def test_cpu_memory_and_network_sources_carry_rrdds_units_and_bounds(x: Any, vm: str) -> None:
    found = sources(x, vm)
    assert found["cpu0"] == {"name_label": "cpu0", "name_description": "CPU0 usage",
                             "enabled": True, "standard": True, "units": "(fraction)",
                             "min": 0.0, "max": 1.0, "value": 0.0}
    assert (found["memory"]["units"], found["memory"]["max"]) == ("B", math.inf)
    assert found["memory_internal_free"]["units"] == "KiB"
    assert found["vif_0_rx"]["units"] == found["vbd_xvda_read"]["units"] == "B/s"


def test_query_answers_the_latest_value_as_a_float(x: Any, vm: str) -> None:
    cpu = x.VM.query_data_source(vm, "cpu0")
    memory = x.VM.query_data_source(vm, "memory")
    assert isinstance(cpu, float) and 0.0 <= cpu <= 1.0
    assert memory == float(x.VM_metrics.get_memory_actual(x.VM.get_metrics(vm)))
    assert 0 < x.VM.query_data_source(vm, "memory_internal_free") * 1024 < memory


def test_network_rates_match_what_dom0_counts_on_the_vif(x: Any, vm: str) -> None:
    # dom0's /proc/net/dev: vifD.N receives 4000 B/s and sends three times as much; rrdd
    # reports them the guest's way round.
    assert x.VM.query_data_source(vm, "vif_0_tx") == 4000.0
    assert x.VM.query_data_source(vm, "vif_0_rx") == 12000.0


# -- values over time ----------------------------------------------------------------------------

def test_values_move_from_one_rrd_step_to_the_next(x: Any, vm: str, frozen: Simulator) -> None:
    names = ("cpu0", "cpu_usage", "memory_internal_free", "vbd_xvda_read")
    before = [x.VM.query_data_source(vm, name) for name in names]
    frozen.advance_rrd_clock()
    after = [x.VM.query_data_source(vm, name) for name in names]
    assert all(old != new for old, new in zip(before, after, strict=True))


def test_values_stay_put_within_a_step(x: Any, vm: str, frozen: Simulator) -> None:
    assert x.VM.query_data_source(vm, "cpu0") == x.VM.query_data_source(vm, "cpu0")
    frozen.advance_rrd_clock(0.0)
    assert sources(x, vm) == sources(x, vm)


def test_rrd_clock_refuses_to_go_back(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="at least 0"):
        sim.advance_rrd_clock(-5)


def test_ceilometer_cpu_util_and_memory_usage(x: Any, vm: str, frozen: Simulator) -> None:
    """Ceilometer's inspector: cpu_util is the mean of cpuN over VCPUs_max, in percent; memory
    usage is memory less memory_internal_free (KiB), in MiB."""
    vcpus = int(x.VM.get_VCPUs_max(vm))
    cpu_util = sum(float(x.VM.query_data_source(vm, f"cpu{i}")) for i in range(vcpus)) \
        / vcpus * 100
    total = float(x.VM.query_data_source(vm, "memory"))
    free = float(x.VM.query_data_source(vm, "memory_internal_free"))
    usage = (total - free * 1024) / MiB
    assert 0 < cpu_util <= 100
    assert 0 < usage < total / MiB


def test_guest_without_pv_drivers_reports_no_internal_free_memory(x: Any) -> None:
    """Ceilometer catches the Failure and counts the guest's memory as all used."""
    bare = x.VM.clone(x.VM.get_by_name_label("Other install media")[0], "no-tools")
    x.VM.provision(bare)
    x.VM.start(bare, False, False)
    try:
        assert "memory_internal_free" not in sources(x, bare)
        assert failure(x.VM.query_data_source, bare, "memory_internal_free") == [
            "INTERNAL_ERROR", invalid("memory_internal_free")]
    finally:
        x.VM.hard_shutdown(bare)
        x.VM.destroy(bare)


# -- no RRD, no source ---------------------------------------------------------------------------

def test_halted_vm_has_no_rrd(x: Any, halted: str) -> None:
    assert failure(x.VM.query_data_source, halted, "cpu0") == ["INTERNAL_ERROR", NOT_FOUND]
    assert failure(x.VM.get_data_sources, halted) == ["INTERNAL_ERROR", NOT_FOUND]


def test_values_stop_when_the_vm_halts(x: Any, halted: str) -> None:
    x.VM.start(halted, False, False)
    assert x.VM.query_data_source(halted, "memory") > 0
    x.VM.clean_shutdown(halted)
    assert failure(x.VM.query_data_source, halted, "memory") == ["INTERNAL_ERROR", NOT_FOUND]


def test_unknown_name_is_an_invalid_data_source(x: Any, vm: str) -> None:
    assert failure(x.VM.query_data_source, vm, "cpu99") == ["INTERNAL_ERROR", invalid("cpu99")]


def test_bad_vm_ref_is_handle_invalid(x: Any) -> None:
    assert failure(x.VM.query_data_source, "OpaqueRef:nope", "cpu0") == [
        "HANDLE_INVALID", "VM", "OpaqueRef:nope"]


def test_source_that_is_not_standard_is_queried_only_once_recorded(x: Any, vm: str) -> None:
    name = "runstate_blocked"
    assert sources(x, vm)[name]["enabled"] is False
    assert failure(x.VM.query_data_source, vm, name) == ["INTERNAL_ERROR", invalid(name)]
    x.VM.record_data_source(vm, name)
    assert sources(x, vm)[name]["enabled"] is True
    assert 0.0 <= x.VM.query_data_source(vm, name) <= 1.0
    x.VM.forget_data_source_archives(vm, name)
    assert sources(x, vm)[name]["enabled"] is False


def test_recording_a_source_the_vm_lacks_fails(x: Any, vm: str) -> None:
    assert failure(x.VM.record_data_source, vm, "nosuch") == ["INTERNAL_ERROR", NOT_FOUND]


# -- hosts, dom0 and SRs -------------------------------------------------------------------------

def test_host_sources_count_its_cpus_and_its_free_memory(x: Any) -> None:
    host = x.host.get_all()[0]
    names = {record["name_label"] for record in x.host.get_data_sources(host)}
    cpus = int(x.host.get_cpu_info(host)["cpu_count"])
    assert {f"cpu{i}" for i in range(cpus)} | {"cpu_avg", "memory_total_kib"} <= names
    free_kib = x.host.query_data_source(host, "memory_free_kib")
    assert free_kib == float(int(x.host.compute_free_memory(host)) // 1024)
    total_kib = x.host.query_data_source(host, "memory_total_kib")
    assert total_kib == float(int(x.host_metrics.get_memory_total(x.host.get_metrics(host)))
                              // 1024)
    assert failure(x.host.query_data_source, host, "nosuch") == ["INTERNAL_ERROR",
                                                                 invalid("nosuch")]


def test_dom0_reports_its_free_memory_in_bytes(x: Any) -> None:
    dom0 = next(ref for ref, rec in x.VM.get_all_records().items() if rec["is_control_domain"])
    record = sources(x, dom0)["memory_internal_free"]
    assert (record["units"], record["name_description"]) == ("B", "Dom0 current free memory")
    assert 0 < x.VM.query_data_source(dom0, "memory_internal_free") \
        < float(x.VM.get_memory_static_max(dom0))


def test_sr_has_no_rrd(x: Any) -> None:
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    assert x.SR.get_data_sources(sr) == []
    assert failure(x.SR.query_data_source, sr, "io_throughput_read") == [
        "INTERNAL_ERROR", NOT_FOUND]


# -- JSON-RPC ------------------------------------------------------------------------------------

def test_query_over_jsonrpc_answers_a_json_number(sim: Simulator, vm: str) -> None:
    parts = urlsplit(sim.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def call(method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1})
        connection.request("POST", "/jsonrpc", body, {"Content-Type": "application/json"})
        return json.loads(connection.getresponse().read())["result"]

    try:
        session = call("session.login_with_password", sim.username, sim.password, "2.21",
                       ORIGINATOR)
        value = call("VM.query_data_source", session, vm, "memory")
        call("session.logout", session)
    finally:
        connection.close()
    assert type(value) is float and value > 0


def test_data_sources_follow_the_pool_across_a_simulator_restart(sim: Simulator, x: Any,
                                                                 halted: str) -> None:
    x.VM.start(halted, False, False)
    assert x.VM.query_data_source(halted, "memory") > 0  # rrdd is in use
    sim.restart()  # a new database, loaded from the saved state
    x.VM.hard_shutdown(halted)
    assert failure(x.VM.query_data_source, halted, "memory") == ["INTERNAL_ERROR", NOT_FOUND]
