"""Value types through the 0.3.4 surface (issue 10, item 6): 0.3.4 spoke XML-RPC, where XAPI
sends 64-bit integers as strings and datetimes as ``dateTime.iso8601`` (``xmlrpc.client.DateTime``
in Python), and its consumers compare and index with those types: Nova's ``_get_dom_id`` tests
``VM.get_domid(...) == "-1"`` and stores the domid in ``other_config`` (a string map),
Ceilometer indexes ``bw_all[dom_id]`` with it. The session is made with its defaults, which pick
the protocol ("auto"): whatever goes on the wire, ``call_xenapi``, the ``session.VM...``
helpers, ``get_rec`` and ``get_all_refs_and_recs`` give the XML-RPC types."""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import pytest

from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator

from .conftest import boot_instance, halted_instance

ORIGINATOR = "value-types-referee"
INT64_FIELDS = ("memory_static_max", "memory_dynamic_max", "VCPUs_max", "VCPUs_at_startup",
                "user_version", "domid")


@pytest.fixture(scope="module")
def running(x: Any) -> str:
    return boot_instance(x, "instance-00000010")


@pytest.fixture(scope="module")
def halted(x: Any) -> str:
    return halted_instance(x, "instance-00000011")


def int64_types(record: dict[str, Any]) -> dict[str, type]:
    return {field: type(record[field]) for field in INT64_FIELDS}


# -------------------------------------------------------------------------------- domids


def test_domid_of_a_halted_vm_is_the_string_minus_one(nova: XenAPISession,
                                                      halted: str) -> None:
    assert nova.call_xenapi("VM.get_domid", halted) == "-1"


def test_domid_of_a_running_vm_is_its_number_as_a_string(nova: XenAPISession,
                                                         running: str) -> None:
    domid = nova.call_xenapi("VM.get_domid", running)
    assert isinstance(domid, str) and domid.isdigit() and domid not in ("0", "-1")


def test_domid_stored_in_other_config_reads_back_the_same(x: Any, nova: XenAPISession,
                                                          running: str) -> None:
    domid = nova.VM.get_domid(running)
    nova.VM.add_to_other_config(running, "last_dom_id", domid)
    assert nova.VM.get_other_config(running)["last_dom_id"] == domid
    assert x.VM.get_domid(running) == domid


# ------------------------------------------------------------------ 64-bit integers in records


def test_vm_record_gives_64_bit_integers_as_strings(nova: XenAPISession, running: str) -> None:
    record = nova.call_xenapi("VM.get_record", running)
    assert int64_types(record) == dict.fromkeys(INT64_FIELDS, str)


def test_get_rec_gives_64_bit_integers_as_strings(nova: XenAPISession, running: str) -> None:
    assert int64_types(nova.get_rec("VM", running)) == dict.fromkeys(INT64_FIELDS, str)


def test_get_all_refs_and_recs_gives_64_bit_integers_as_strings(nova: XenAPISession,
                                                                running: str) -> None:
    record = dict(nova.get_all_refs_and_recs("VM"))[running]
    assert int64_types(record) == dict.fromkeys(INT64_FIELDS, str)


def test_session_helper_field_getters_give_64_bit_integers_as_strings(
    nova: XenAPISession, running: str,
) -> None:
    assert isinstance(nova.VM.get_memory_static_max(running), str)
    assert isinstance(nova.VM.get_VCPUs_max(running), str)


def test_integers_of_other_classes_are_strings_too(nova: XenAPISession, running: str) -> None:
    metrics = nova.call_xenapi("VM_metrics.get_record", nova.VM.get_metrics(running))
    host = nova.host.get_record(nova.host_ref)
    assert isinstance(metrics["memory_actual"], str) and int(metrics["memory_actual"]) > 0
    assert isinstance(host["API_version_major"], str)


def test_64_bit_integer_arguments_may_be_strings_as_xmlrpc_sent_them(
    x: Any, nova: XenAPISession, halted: str,
) -> None:
    nova.VM.set_user_version(halted, "3")
    assert x.VM.get_user_version(halted) == "3"


# ------------------------------------------------------------------- other types of the model


def test_datetimes_are_xmlrpc_datetimes(nova: XenAPISession, running: str) -> None:
    metrics = nova.VM.get_metrics(running)
    started = nova.call_xenapi("VM_metrics.get_start_time", metrics)
    with nova.custom_task("types") as task:
        created = nova.call_xenapi("task.get_created", task)
    assert isinstance(started, xmlrpc.client.DateTime)
    assert isinstance(created, xmlrpc.client.DateTime)


def test_datetimes_inside_records_are_xmlrpc_datetimes(nova: XenAPISession,
                                                       running: str) -> None:
    record = nova.get_rec("VM_metrics", nova.VM.get_metrics(running))
    assert isinstance(record["start_time"], xmlrpc.client.DateTime)


def test_floats_are_floats(nova: XenAPISession) -> None:
    with nova.custom_task("progress") as task:
        assert isinstance(nova.call_xenapi("task.get_progress", task), float)


def test_booleans_and_strings_keep_their_types(nova: XenAPISession, running: str) -> None:
    record = nova.call_xenapi("VM.get_record", running)
    assert (record["is_a_template"], record["is_control_domain"]) == (False, False)
    assert record["power_state"] == "Running"


# ---------------------------------------------------------------- on either protocol, stated


@pytest.fixture(scope="module", params=["xmlrpc", "jsonrpc"])
def on_the_wire(request: pytest.FixtureRequest, sim: Simulator) -> Iterator[XenAPISession]:
    with XenAPISession(sim.url, sim.username, sim.password, "nova",
                       protocol=request.param) as made:
        yield made


def test_domid_is_a_string_over_either_protocol(on_the_wire: XenAPISession,
                                                running: str) -> None:
    assert isinstance(on_the_wire.VM.get_domid(running), str)


def test_datetimes_are_xmlrpc_datetimes_over_either_protocol(on_the_wire: XenAPISession,
                                                             running: str) -> None:
    started = on_the_wire.call_xenapi("VM_metrics.get_start_time",
                                      on_the_wire.VM.get_metrics(running))
    assert isinstance(started, xmlrpc.client.DateTime)
