"""XenAPISession's values have the types 0.3.4's XML-RPC gave them, whichever protocol it speaks.

The referee is the official SDK (PyPI XenAPI) over XML-RPC, what os-xenapi 0.3.4 spoke: the same
call through ``XenAPISession(protocol="jsonrpc")``, ``("xmlrpc")`` and ``("auto")`` must give
exactly its values with exactly its types (API ints as ``str``, datetimes as
``xmlrpc.client.DateTime``, floats as ``float``...), for the records of every class the simulator
serves, field getters, method results, event.from batches and tasks. ``native_types=True`` gives
JSON-RPC's own types on both wires instead.
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client.retry import Retry
from os_xenapi.client.session import XenAPISession
from os_xenapi.client.transport import Transport
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.schema import classes as sim_classes

ORIGINATOR = "value types"
PROTOCOLS = ("jsonrpc", "xmlrpc", "auto")
NUMERIC = ("int", "float", "datetime")  # field types whose Python type differs by wire
# Objects other sessions make and drop while a test runs: not comparable between two calls.
VOLATILE = frozenset({"session", "task", "event", "message"})


def typed(value: Any) -> Any:
    """``value`` with every leaf paired with its exact type: ``"1"`` and ``1`` differ, and so do
    a DateTime and its text."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, xmlrpc.client.DateTime):
        return ("DateTime", value.value)
    return (type(value).__name__, value)


def _session(sim: Simulator, protocol: str, **options: Any) -> XenAPISession:
    return XenAPISession(sim.url, sim.username, sim.password, ORIGINATOR, protocol=protocol,
                         retry=Retry(wait=0.01, backoff=0.0), **options)


@pytest.fixture(scope="module")
def sim(root: Path) -> Iterator[Simulator]:
    """A one-host pool with two ordinary VMs, whose plugins run in ``root``."""
    with Simulator(vms=2, auth_failure_delay=0, dom0_root=root) as simulator:
        yield simulator


@pytest.fixture(scope="module", params=PROTOCOLS)
def ours(sim: Simulator, request: pytest.FixtureRequest) -> Iterator[XenAPISession]:
    with _session(sim, request.param) as session:
        yield session


@pytest.fixture(scope="module")
def record_classes(sim: Simulator) -> list[str]:
    """Every class whose records the simulator serves with get_all_records."""
    return sorted(name for name, cls in sim_classes().items()
                  if "get_all_records" in cls.messages and name not in VOLATILE)


@pytest.fixture
def running_vm(x: Any) -> Iterator[str]:
    """A running VM with one VIF (device "1"), destroyed afterwards."""
    template = x.VM.get_by_name_label("Debian Bookworm 12")[0]
    vm = x.VM.clone(template, "value types")
    x.VM.provision(vm)
    network = x.network.get_all()[0]
    x.VIF.create({"VM": vm, "network": network, "device": "1", "MAC": "", "MTU": "1500",
                  "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
    x.VM.start(vm, False, False)
    try:
        yield vm
    finally:
        x.VM.hard_shutdown(vm)
        x.VM.destroy(vm)


def halted_vm(x: Any) -> str:
    records = x.VM.get_all_records()
    return next(ref for ref, vm in records.items() if not vm["is_a_template"]
                and not vm["is_control_domain"] and vm["power_state"] == "Halted")


# --------------------------------------------------------------------------- records


def test_every_class_records_have_the_sdks_types(ours: XenAPISession, x: Any,
                                                 record_classes: list[str]) -> None:
    for cls in record_classes:
        expected = typed(getattr(x, cls).get_all_records())
        assert typed(ours.call_xenapi(f"{cls}.get_all_records")) == expected, cls
        assert typed(dict(ours.get_all_refs_and_recs(cls))) == expected, cls


def test_get_record_get_rec_and_helpers_have_the_sdks_types(ours: XenAPISession, x: Any,
                                                            record_classes: list[str]) -> None:
    helpers = {name: getattr(ours, name) for name in ("VM", "VDI", "SR", "host", "pool", "VBD",
                                                       "VIF", "PIF", "PBD", "network", "SM",
                                                       "host_metrics")}
    compared = 0
    for cls in record_classes:
        for ref in getattr(x, cls).get_all()[:2]:
            expected = typed(getattr(x, cls).get_record(ref))
            assert typed(ours.get_rec(cls, ref)) == expected, cls
            if cls in helpers:
                assert typed(helpers[cls].get_record(ref)) == expected, cls
            compared += 1
    assert compared >= len(record_classes) // 2


def test_numeric_and_date_field_getters_have_the_sdks_types(ours: XenAPISession, x: Any,
                                                            record_classes: list[str]) -> None:
    checked = set()
    for cls in record_classes:
        refs = getattr(x, cls).get_all()
        if not refs:
            continue
        for field in sim_classes()[cls].fields.values():
            if not any(kind in field.type_text for kind in NUMERIC):
                continue
            getter = f"{cls}.get_{field.name}"
            expected = typed(getattr(getattr(x, cls), f"get_{field.name}")(refs[0]))
            assert typed(ours.call_xenapi(getter, refs[0])) == expected, getter
            checked.add(field.type_text)
    assert {"int", "float", "datetime"} <= checked


def test_a_set_of_ints_and_a_map_of_ints_are_strings_as_over_xmlrpc(ours: XenAPISession,
                                                                    x: Any) -> None:
    host = x.host.get_all()[0]
    versions = ours.host.get_virtual_hardware_platform_versions(host)
    assert versions == x.host.get_virtual_hardware_platform_versions(host)
    assert versions and all(type(v) is str for v in versions)
    sm = x.SM.get_all()[0]
    features = ours.SM.get_features(sm)
    assert typed(features) == typed(x.SM.get_features(sm))
    assert features and all(type(v) is str for v in features.values())


def test_a_running_vms_records_and_metrics_have_the_sdks_types(ours: XenAPISession, x: Any,
                                                               running_vm: str) -> None:
    metrics, guest = x.VM.get_metrics(running_vm), x.VM.get_guest_metrics(running_vm)
    for cls, ref in [("VM", running_vm), ("VM_metrics", metrics), ("VM_guest_metrics", guest),
                     *[("VIF", vif) for vif in x.VM.get_VIFs(running_vm)],
                     *[("VBD", vbd) for vbd in x.VM.get_VBDs(running_vm)]]:
        assert typed(ours.get_rec(cls, ref)) == typed(getattr(x, cls).get_record(ref)), cls
    record = ours.get_rec("VM_metrics", metrics)
    assert type(record["memory_actual"]) is str
    assert isinstance(record["start_time"], xmlrpc.client.DateTime)


# --------------------------------------------------------------------------- what consumers do


def test_nova_sees_a_halted_vms_domid_as_the_string_minus_one(ours: XenAPISession,
                                                              x: Any) -> None:
    vm = halted_vm(x)
    assert ours.call_xenapi("VM.get_domid", vm) == "-1"
    assert ours.VM.get_domid(vm) == "-1"
    assert ours.get_rec("VM", vm)["domid"] == "-1"


def test_ceilometer_indexes_the_bandwidth_map_with_the_domid(ours: XenAPISession, x: Any,
                                                             running_vm: str) -> None:
    dom_id = ours.VM.get_domid(running_vm)
    assert dom_id == x.VM.get_domid(running_vm) and type(dom_id) is str and dom_id != "-1"
    bw_all = ours.call_plugin_serialized("bandwidth", "fetch_all_bandwidth")
    for vif in ours.VM.get_VIFs(running_vm):
        vif_rec = ours.VIF.get_record(vif)
        usage = bw_all[dom_id][vif_rec["device"]]
        assert usage["bw_in"] >= 0 and usage["bw_out"] >= 0


def test_method_results_have_the_sdks_types(ours: XenAPISession, x: Any) -> None:
    host = x.host.get_all()[0]
    vm = halted_vm(x)
    for method, args in [("host.compute_free_memory", [host]),
                         ("host.compute_memory_overhead", [host]),
                         ("VM.compute_memory_overhead", [vm]),
                         ("VM.get_VCPUs_max", [vm]),
                         ("event.get_current_id", [])]:
        expected = typed(getattr(getattr(x, method.split(".")[0]), method.split(".")[1])(*args))
        assert typed(ours.call_xenapi(method, *args)) == expected, method
    server_time = ours.call_xenapi("host.get_servertime", host)
    assert isinstance(server_time, xmlrpc.client.DateTime)
    assert isinstance(x.host.get_servertime(host), xmlrpc.client.DateTime)


def test_messages_and_their_dates_have_the_sdks_types(ours: XenAPISession, x: Any) -> None:
    pool = x.pool.get_all()[0]
    uuid = x.pool.get_uuid(pool)
    ref = ours.call_xenapi("message.create", "VALUE_TYPES", 3, "Pool", uuid, "body")
    try:
        record = ours.call_xenapi("message.get_record", ref)
        assert typed(record) == typed(x.message.get_record(ref))
        assert record["priority"] == "3" and isinstance(record["timestamp"],
                                                        xmlrpc.client.DateTime)
        since = xmlrpc.client.DateTime("20000101T00:00:00Z")
        assert typed(ours.call_xenapi("message.get_since", since)[ref]) == typed(record)
        assert typed(ours.call_xenapi("message.get_all_records")[ref]) == typed(record)
    finally:
        x.message.destroy(ref)


# --------------------------------------------------------------------------- events and tasks


def test_event_from_records_have_the_sdks_types(ours: XenAPISession, x: Any) -> None:
    watched = ["vm", "vm_metrics", "host", "host_metrics", "host_cpu", "vdi", "sr", "pool", "sm"]
    theirs = getattr(x.event, "from")(watched, "", 0.0)
    mine = ours.call_xenapi("event.from", watched, "", 0.0)

    def by_ref(batch: dict[str, Any]) -> dict[str, Any]:
        return {event["ref"]: typed(event) for event in batch["events"]}

    assert by_ref(mine) == by_ref(theirs)
    assert {event["class"] for event in mine["events"]} == set(watched)
    counts = mine["valid_ref_counts"]
    assert counts and all(type(count) is int for count in counts.values())
    assert {k: v for k, v in counts.items() if k not in VOLATILE} == {
        k: v for k, v in theirs["valid_ref_counts"].items() if k not in VOLATILE}
    # A change after the token: a mod event, with its snapshot's ints as str.
    vm = halted_vm(x)
    before = x.VM.get_user_version(vm)
    x.VM.set_user_version(vm, "7")
    try:
        changed = ours.call_xenapi("event.from", [f"vm/{vm}"], mine["token"], 5.0)
        event = next(e for e in changed["events"] if e["ref"] == vm)
        assert (event["operation"], event["snapshot"]["user_version"]) == ("mod", "7")
        assert typed(event["snapshot"]) == typed(x.VM.get_record(vm))
    finally:
        x.VM.set_user_version(vm, before)


def test_task_records_and_results_have_the_sdks_types(ours: XenAPISession, x: Any) -> None:
    with ours.custom_task("value types") as task:
        record = ours.task.get_record(task)
        assert typed(record) == typed(x.task.get_record(task))
        assert isinstance(record["created"], xmlrpc.client.DateTime)
        assert type(record["progress"]) is float
    vm = halted_vm(x)
    task = ours.call_xenapi("Async.VM.clone", vm, "value types clone")
    try:
        record = ours.task.get_record(task)
        while record["status"] == "pending":
            token = ours.call_xenapi("event.from", [f"task/{task}"], "", 0.0)["token"]
            ours.call_xenapi("event.from", [f"task/{task}"], token, 5.0)
            record = ours.task.get_record(task)
        assert record["status"] == "success"
        assert typed(record) == typed(x.task.get_record(task))
        assert isinstance(record["finished"], xmlrpc.client.DateTime)
        assert ours.call_xenapi("task.get_result", task) == x.task.get_result(task)
        clone = xmlrpc.client.loads(
            f"<methodResponse><params><param>{record['result']}</param></params>"
            "</methodResponse>")[0][0]
        assert typed(ours.VM.get_record(clone)) == typed(x.VM.get_record(clone))
        x.VM.destroy(clone)
    finally:
        x.task.destroy(task)


# --------------------------------------------------------------------------- native types


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_native_types_are_jsonrpcs_on_either_wire(sim: Simulator, x: Any, protocol: str,
                                                  record_classes: list[str]) -> None:
    raw = Transport(sim.url, protocol="jsonrpc")  # the JSON-RPC wire, decoded as it is
    with _session(sim, protocol, native_types=True) as native:
        ref = native.get_session_id()
        for cls in record_classes:
            assert typed(native.call_xenapi(f"{cls}.get_all_records")) == typed(
                raw.call(f"{cls}.get_all_records", [ref])), cls
        vm = halted_vm(x)
        assert native.VM.get_domid(vm) == -1
        host = x.host.get_all()[0]
        assert type(native.call_xenapi("host.compute_free_memory", host)) is int
        assert type(native.call_xenapi("host.get_servertime", host)) is str
        batch = native.call_xenapi("event.from", ["vm"], "", 0.0)
        assert typed(batch["events"]) == typed(raw.call("event.from", [ref, ["vm"], "", 0.0])[
            "events"])
    raw.close()


def test_native_types_must_be_a_bool(sim: Simulator) -> None:
    with pytest.raises(TypeError, match="native_types must be True or False, not 'yes'"):
        _session(sim, "auto", native_types="yes")
