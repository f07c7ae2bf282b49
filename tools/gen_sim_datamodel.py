#!/usr/bin/env python3
"""Write the simulator's data model (src/os_xenapi/simulator/datamodel.json) from XAPI's xenapi.json.

The simulator never reads xenapi.json at run time: this tool extracts the facts it needs (fields with
type, qualifier and default; messages with parameter types; constructor fields; enums) for the
classes the simulator serves, adds the facts xenapi.json lacks (async mode, parameter defaults; from
shared/xapi/PROTOCOL.md section 1.4 and appendix B) and writes them compactly.

    python tools/gen_sim_datamodel.py ../shared/xapi/xenapi.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

CLASSES = [
    "session", "pool", "host", "host_metrics", "host_cpu", "VM", "VM_metrics", "VM_guest_metrics",
    "VBD", "VDI", "SR", "PBD", "SM", "network", "VIF", "PIF", "task", "event", "message", "console",
]

# Custom messages WITHOUT async mode (PROTOCOL.md appendix B); every other custom message of these
# classes is async, as are generated create/destroy. event has none at all.
NOT_ASYNC = {
    "session": "*",
    "event": "*",
    "task": "create destroy set_status set_progress set_result set_error_info",
    "SR": "get_supported_types set_physical_size set_virtual_allocation set_physical_utilisation "
    "get_data_sources record_data_source query_data_source forget_data_source_archives",
    "VDI": "set_managed set_sharable set_read_only set_missing set_virtual_size "
    "set_physical_utilisation set_is_a_snapshot set_snapshot_of set_snapshot_time "
    "set_metadata_of_pool get_nbd_info",
    "message": "create destroy get get_all get_since get_record get_by_uuid get_all_records "
    "get_all_records_where",
    "VM": "set_NVRAM add_to_NVRAM remove_from_NVRAM set_ha_restart_priority set_ha_always_run "
    "set_memory_dynamic_max set_memory_dynamic_min set_memory_static_max set_memory_static_min "
    "set_HVM_shadow_multiplier set_VCPUs_max set_VCPUs_at_startup get_boot_record get_data_sources "
    "record_data_source query_data_source forget_data_source_archives get_allowed_VBD_devices "
    "get_allowed_VIF_devices set_protection_policy set_snapshot_schedule set_domain_type "
    "set_HVM_boot_policy set_NVRAM_EFI_variables add_to_other_config remove_from_other_config "
    "set_other_config add_to_platform remove_from_platform set_platform",
    "host": "list_methods emergency_ha_disable ha_xapi_healthcheck local_assert_healthy "
    "request_backup request_config_file_sync propose_new_master commit_new_master "
    "abort_new_master get_data_sources record_data_source query_data_source "
    "forget_data_source_archives signal_networking_change local_management_reconfigure "
    "management_disable get_system_status_capabilities get_diagnostic_timing_stats shutdown_agent "
    "set_hostname_live is_in_emergency_mode tickle_heartbeat sync_data backup_rrds call_extension "
    "get_servertime get_server_localtime enable_external_auth disable_external_auth "
    "external_auth_set_ldaps emergency_reset_server_certificate apply_edition set_cpu_features "
    "reset_cpu_features enable_local_storage_caching disable_local_storage_caching "
    "get_sm_diagnostics get_thread_diagnostics sm_dp_destroy sync_vlans sync_tunnels "
    "sync_pif_currently_attached emergency_disable_tls_verification "
    "emergency_reenable_tls_verification emergency_clear_mandatory_guidance "
    "update_firewalld_service_status",
    "pool": "emergency_transition_to_master emergency_reset_master is_slave "
    "ha_prevent_restarts_for ha_failover_plan_exists ha_compute_max_host_failures_to_tolerate "
    "ha_compute_hypothetical_max_host_failures_to_tolerate ha_compute_vm_failover_plan "
    "enable_external_auth disable_external_auth external_auth_set_ldaps "
    "detect_nonhomogeneous_external_auth enable_tls_verification test_archive_target "
    "set_local_auth_max_threads set_ext_auth_max_threads get_guest_secureboot_readiness",
}

# Trailing parameter defaults (PROTOCOL.md section 1.4); xenapi.json does not record them.
DEFAULTS = {
    ("session", "login_with_password"): ["1.1", ""],
    ("SR", "create"): [{}],
    ("SR", "introduce"): [{}],
    ("SR", "probe"): [{}],
    ("SR", "probe_ext"): [{}],
    ("VDI", "introduce"): [{}, {}, True, 0, 0, "", False, "19700101T00:00:00Z", "OpaqueRef:NULL"],
    ("VDI", "snapshot"): [{}],
    ("VDI", "clone"): [{}],
    ("VDI", "copy"): ["OpaqueRef:NULL", "OpaqueRef:NULL"],
    ("VM", "snapshot"): [[]],
}


def _constructor(message: dict) -> tuple[list[str], list[str]] | None:
    """The constructor's field names and the required ones, read from its description."""
    found = re.search(r"The constructor args are: (.*?) \(\* = non-optional\)", message["description"])
    if not found:
        return None
    names = [n.strip() for n in found.group(1).split(",")]
    return [n.rstrip("*") for n in names], [n.rstrip("*") for n in names if n.endswith("*")]


def _class_entry(cls: dict) -> dict:
    name = cls["name"]
    fields = [
        [f["name"], f["type"], f["qualifier"], f.get("default")]
        for f in cls["fields"]
        if f["lifecycle"]["state"] != "Removed_s"
    ]
    live = {f[0] for f in fields}
    not_async = NOT_ASYNC.get(name, "")
    messages = {}
    ctor = None
    for m in cls["messages"]:
        if m["lifecycle"]["state"] == "Removed_s":
            continue
        if m["implicit"] and m["name"].startswith("get_") and m["name"][4:] not in live and m[
            "name"
        ] not in ("get_record", "get_by_uuid", "get_by_name_label", "get_all", "get_all_records"):
            continue  # the getter of a removed field
        params = m["params"]
        session = bool(params) and params[0]["type"] == "session ref" and params[0]["name"] == "session_id"
        if session:
            params = params[1:]
        if m["implicit"]:
            is_async = m["name"] in ("create", "destroy")
        else:
            is_async = not_async != "*" and m["name"] not in not_async.split()
        entry = {
            "params": [[p["name"], p["type"]] for p in params],
            "result": m["result"][0],
            "session": session,
            "async": is_async,
            "implicit": m["implicit"],
        }
        if (name, m["name"]) in DEFAULTS:
            entry["defaults"] = DEFAULTS[(name, m["name"])]
        messages[m["name"]] = entry
        if m["name"] == "create" and m["implicit"]:
            ctor = _constructor(m)
    entry = {"fields": fields, "messages": messages}
    if ctor:
        entry["constructor"], entry["constructor_required"] = ctor
    return entry


def main(source: str) -> None:
    data = json.loads(Path(source).read_text())
    by_name = {c["name"]: c for c in data}
    enums: dict[str, list[str]] = {}
    classes = {}
    for name in CLASSES:
        classes[name] = _class_entry(by_name[name])
        for enum in by_name[name]["enums"]:
            enums[enum["name"]] = [v["name"] for v in enum["values"]]
    out = Path(__file__).resolve().parent.parent / "src/os_xenapi/simulator/datamodel.json"
    out.write_text(json.dumps({"classes": classes, "enums": enums}, separators=(",", ":"), sort_keys=True))
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(classes)} classes, {len(enums)} enums)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/xapi/xenapi.json")
