"""Benchmark 2: ``VM.get_all_records`` on a simulator seeded with 5,000 VMs.

Seeding is timed on its own (start-up with 5,000 VMs minus start-up of an empty pool).  Then, in
each round, the same call is made

* with the official SDK over XML-RPC (request, server, transfer and the SDK's decoding);
* as a raw XML-RPC POST over http.client, the reply read but not decoded (server and transfer);
* as a JSON-RPC 2.0 POST over urllib3, timed to the last byte and again after ``json.loads``;

and the reference is the stdlib doing the pure codec work on the same data in-process:
``xmlrpc.client.dumps`` + ``loads`` of ``{Status, Value: records}`` (and ``json.dumps`` +
``loads`` for JSON-RPC), so that each ratio shows what the server adds to the bare cost of
encoding and decoding that payload.

    .venv/bin/python bench/get_all_records.py [--quick]
"""

from __future__ import annotations

import http.client
import json
import sys
import time
import xmlrpc.client
from typing import Any

import urllib3
from common import close_session, median, no_gc, ratio, sdk_session, time_once

from os_xenapi.simulator import codec
from os_xenapi.simulator.runner import Simulator
from os_xenapi.simulator.xapi import Xapi

VMS = 5000
MB = 1e6
STEPS = ("raw_xmlrpc", "ref_xml_dumps", "sim_xml_encode", "sdk_xmlrpc", "ref_xml_loads",
         "jsonrpc_transfer", "jsonrpc_decoded", "ref_json_dumps", "sim_json_encode",
         "ref_json_loads")


def _start(vms: int) -> tuple[Simulator, float]:
    start = time.perf_counter()
    sim = Simulator(hosts=1, vms=vms, auth_failure_delay=0).start()
    return sim, time.perf_counter() - start


def _encode_xml(xapi: Xapi) -> bytes:
    """The simulator's own XML-RPC encoder on the reply, on its loop, without the network."""
    return codec.encode_xmlrpc_success(xapi.db.all("VM"))


def _encode_json(xapi: Xapi) -> bytes:
    """The simulator's own JSON-RPC encoder on the reply, on its loop, without the network."""
    call = codec.JsonRpcCall("2.0", 1, "VM.get_all_records", [])
    return codec.encode_jsonrpc_success(call, xapi.db.all("VM"))


def _raw_xmlrpc(conn: http.client.HTTPConnection, body: bytes) -> bytes:
    conn.request("POST", "/", body, {"Content-Type": "text/xml"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"XML-RPC POST answered HTTP {response.status}")
    return data


def _raw_jsonrpc(pool: urllib3.HTTPConnectionPool, body: bytes) -> bytes:
    response = pool.urlopen(
        "POST", "/jsonrpc", body=body, headers={"Content-Type": "application/json"},
        retries=False, preload_content=True,
    )
    if response.status != 200:
        raise RuntimeError(f"JSON-RPC POST answered HTTP {response.status}")
    return response.data


def run(quick: bool = False, vms: int = VMS) -> dict[str, Any]:
    rounds = 1 if quick else 3

    empty, empty_start = _start(0)
    empty.stop()
    sim, seeded_start = _start(vms)
    try:
        session = sdk_session(sim.url, sim.username, sim.password)
        conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=120)
        pool = urllib3.HTTPConnectionPool("127.0.0.1", sim.port, maxsize=1, timeout=120)
        xml_request = xmlrpc.client.dumps((session.handle,), "VM.get_all_records").encode()
        json_request = json.dumps(
            {"jsonrpc": "2.0", "method": "VM.get_all_records", "params": [session.handle],
             "id": 1}
        ).encode()
        try:
            # Warm-up, and the data the references encode: what each client gets back.
            xml_reply = _raw_xmlrpc(conn, xml_request)
            sdk_records = xmlrpc.client.loads(xml_reply)[0][0]["Value"]
            json_reply = _raw_jsonrpc(pool, json_request)
            records = json.loads(json_reply)["result"]
            del xml_reply, json_reply
            count = len(records)
            document = {"Status": "Success", "Value": sdk_records}
            reply = {"jsonrpc": "2.0", "result": records, "id": 1}
            times: dict[str, list[float]] = {name: [] for name in STEPS}
            sizes: dict[str, int] = {}
            # In each round every measurement sits next to its reference, so that a machine
            # that speeds up or slows down over the run affects both alike.
            for _ in range(rounds):
                elapsed, xml_reply = time_once(lambda: _raw_xmlrpc(conn, xml_request))
                times["raw_xmlrpc"].append(elapsed)
                sizes["xmlrpc_reply"] = len(xml_reply)
                del xml_reply
                elapsed, text = time_once(
                    lambda: xmlrpc.client.dumps(
                        (document,), methodresponse=True, allow_none=True
                    ).encode("utf-8")
                )
                times["ref_xml_dumps"].append(elapsed)
                sizes["ref_xml"] = len(text)
                elapsed, _ = time_once(lambda: sim.run(_encode_xml))
                times["sim_xml_encode"].append(elapsed)

                elapsed, sdk_records = time_once(session.xenapi.VM.get_all_records)
                times["sdk_xmlrpc"].append(elapsed)
                elapsed, _ = time_once(lambda text=text: xmlrpc.client.loads(text))
                times["ref_xml_loads"].append(elapsed)
                del text

                with no_gc():
                    start = time.perf_counter()
                    json_reply = _raw_jsonrpc(pool, json_request)
                    transferred = time.perf_counter()
                    json.loads(json_reply)
                    decoded = time.perf_counter()
                times["jsonrpc_transfer"].append(transferred - start)
                times["jsonrpc_decoded"].append(decoded - start)
                sizes["jsonrpc_reply"] = len(json_reply)
                del json_reply
                elapsed, text = time_once(
                    lambda: json.dumps(reply, separators=(",", ":")).encode("ascii")
                )
                times["ref_json_dumps"].append(elapsed)
                sizes["ref_json"] = len(text)
                elapsed, _ = time_once(lambda: sim.run(_encode_json))
                times["sim_json_encode"].append(elapsed)
                elapsed, _ = time_once(lambda text=text: json.loads(text))
                times["ref_json_loads"].append(elapsed)
                del text
            if len(sdk_records) != count:
                raise RuntimeError("XML-RPC and JSON-RPC returned different numbers of VMs")
        finally:
            conn.close()
            pool.close()
            close_session(session)
    finally:
        sim.stop()

    ms = {name: median(values) * 1000 for name, values in times.items()}
    ref_xml = ms["ref_xml_dumps"] + ms["ref_xml_loads"]
    ref_json = ms["ref_json_dumps"] + ms["ref_json_loads"]
    mb = {name: size / MB for name, size in sizes.items()}

    def per_round(measured: str, *references: str) -> float:
        """Median over rounds of measured / sum of references, each taken in the same round."""
        return median([
            ratio(times[measured][i], sum(times[name][i] for name in references))
            for i in range(len(times[measured]))
        ])

    ratios = {
        "sdk_xmlrpc_vs_xml_dumps_loads": per_round("sdk_xmlrpc", "ref_xml_dumps", "ref_xml_loads"),
        "raw_xmlrpc_vs_xml_dumps": per_round("raw_xmlrpc", "ref_xml_dumps"),
        "sim_xml_encode_vs_xml_dumps": per_round("sim_xml_encode", "ref_xml_dumps"),
        "sim_json_encode_vs_json_dumps": per_round("sim_json_encode", "ref_json_dumps"),
        "jsonrpc_decoded_vs_json_dumps_loads": per_round(
            "jsonrpc_decoded", "ref_json_dumps", "ref_json_loads"
        ),
        "jsonrpc_transfer_vs_json_dumps": per_round("jsonrpc_transfer", "ref_json_dumps"),
    }
    return {
        "name": "get_all_records",
        "title": f"VM.get_all_records, {vms:,} seeded VMs ({count:,} VM records)",
        "rounds": rounds,
        "vms_seeded": vms,
        "vm_records": count,
        "startup_s": {"empty": empty_start, "seeded": seeded_start},
        "seeding_s": seeded_start - empty_start,
        "payload_mb": mb,
        "ms": ms,
        "ms_rounds": {name: [v * 1000 for v in values] for name, values in times.items()},
        "ref_xml_ms": ref_xml,
        "ref_json_ms": ref_json,
        "ratios": ratios,
        "rows": [
            [f"seeding {vms:,} VMs (start-up minus empty)", f"{seeded_start - empty_start:.2f}",
             "s", "", ""],
            ["XML-RPC reply size", f"{mb['xmlrpc_reply']:.1f}", "MB",
             f"stdlib {mb['ref_xml']:.1f} MB", ""],
            ["XML-RPC, SDK call", f"{ms['sdk_xmlrpc']:,.0f}", "ms",
             f"dumps+loads {ref_xml:,.0f} ms", f"{ratios['sdk_xmlrpc_vs_xml_dumps_loads']:.2f}x"],
            ["XML-RPC, raw POST (server+transfer)", f"{ms['raw_xmlrpc']:,.0f}", "ms",
             f"dumps {ms['ref_xml_dumps']:,.0f} ms",
             f"{ratios['raw_xmlrpc_vs_xml_dumps']:.2f}x"],
            ["XML-RPC, simulator encoder alone", f"{ms['sim_xml_encode']:,.0f}", "ms",
             f"dumps {ms['ref_xml_dumps']:,.0f} ms",
             f"{ratios['sim_xml_encode_vs_xml_dumps']:.2f}x"],
            ["JSON-RPC reply size", f"{mb['jsonrpc_reply']:.1f}", "MB",
             f"stdlib {mb['ref_json']:.1f} MB", ""],
            ["JSON-RPC, POST + json.loads", f"{ms['jsonrpc_decoded']:,.0f}", "ms",
             f"dumps+loads {ref_json:,.0f} ms",
             f"{ratios['jsonrpc_decoded_vs_json_dumps_loads']:.2f}x"],
            ["JSON-RPC, POST (server+transfer)", f"{ms['jsonrpc_transfer']:,.0f}", "ms",
             f"dumps {ms['ref_json_dumps']:,.0f} ms",
             f"{ratios['jsonrpc_transfer_vs_json_dumps']:.2f}x"],
            ["JSON-RPC, simulator encoder alone", f"{ms['sim_json_encode']:,.0f}", "ms",
             f"dumps {ms['ref_json_dumps']:,.0f} ms",
             f"{ratios['sim_json_encode_vs_json_dumps']:.2f}x"],
        ],
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
