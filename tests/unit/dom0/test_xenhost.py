"""xenhost plugin: host data, uptime, enable/disable, maintenance, power actions, xenhost.conf.

Host state goes through the XAPI session the plugin is given. Where the simulator has the
calls, the session is an official-SDK session logged in to it over a real socket
(xapi_session); power actions and evacuation, which the simulator lacks, are checked
against RecordingXapi, which records the calls the plugin makes.

Plugin files are imported in-process with a stand-in XenAPIPlugin (stubs/XenAPIPlugin.py)
put into sys.modules only while they load (see harness.py); XenAPI is the official SDK.
"""

import json
import types

import pytest
import XenAPI

from . import harness

CODES = harness.dom0lib().errors
HOST_UUID = "0e7b6a7c-1111-2222-3333-444455556666"


def _sim_host_uuid(session):
    return session.xenapi.host.get_uuid(session.xenapi.host.get_all()[0])


class RecordingXapi:
    """Stands in for session.xenapi: records (class.method, args) and answers from `answers`."""

    def __init__(self, answers=None):
        self.calls = []
        self.answers = dict(answers or {})
        self.answers.setdefault("host.get_by_uuid", "OpaqueRef:host")

    def __getattr__(self, cls):
        if cls.startswith("__"):
            raise AttributeError(cls)
        return _Methods(self, cls)

    def names(self):
        return [name for name, _ in self.calls]


class _Methods:
    def __init__(self, xapi, cls):
        self._xapi, self._cls = xapi, cls

    def __getattr__(self, method):
        name = self._cls + "." + method

        def invoke(*args):
            self._xapi.calls.append((name, args))
            answer = self._xapi.answers.get(name)
            return answer(*args) if callable(answer) else answer
        return invoke


def _recording(answers=None):
    xapi = RecordingXapi(answers)
    return types.SimpleNamespace(xenapi=xapi), xapi


def _call(function, session, *args, **kwargs):
    return harness.call("xenhost", function, *args, session=session, host_uuid=HOST_UUID,
                        **kwargs)


def test_host_data_reports_the_hosts_memory_names_and_cpu(xapi_session):
    host_uuid = _sim_host_uuid(xapi_session)
    data = harness.call("xenhost", "host_data", session=xapi_session, host_uuid=host_uuid)
    record = xapi_session.xenapi.host.get_record(xapi_session.xenapi.host.get_by_uuid(host_uuid))
    assert data["host_uuid"] == host_uuid
    assert data["host_name-label"] == record["name_label"]
    assert data["host_ip_address"] == record["address"]
    assert data["enabled"] is True
    assert data["host_cpu_info"]["cpu_count"] == int(record["cpu_info"]["cpu_count"])
    assert data["host_capabilities"] == record["capabilities"]
    assert all(isinstance(data["host_memory"][key], int)
               for key in ("total", "overhead", "free-computed"))
    # "free" comes from the host's memory_free_kib data source (KiB), in bytes.
    free_kib = xapi_session.xenapi.host.query_data_source(
        xapi_session.xenapi.host.get_by_uuid(host_uuid), "memory_free_kib")
    assert data["host_memory"]["free"] == int(free_kib) * 1024 > 0


def test_host_data_reads_free_memory_from_the_rrd_data_source():
    session, xapi = _recording({"host.get_record": {
        "uuid": HOST_UUID, "enabled": True, "metrics": "OpaqueRef:NULL", "memory_overhead": "1",
        "name_label": "h", "name_description": "", "hostname": "h", "address": "10.0.0.1",
        "other_config": {}, "capabilities": [], "cpu_info": {}},
        "host.query_data_source": 2048.0, "host.compute_free_memory": "100"})
    memory = _call("host_data", session)["host_memory"]
    assert memory == {"total": None, "overhead": 1, "free": 2048 * 1024, "free-computed": 100}
    assert ("host.query_data_source", ("OpaqueRef:host", "memory_free_kib")) in xapi.calls


def test_host_data_includes_the_xenhost_conf_settings(xapi_session, dom0_root):
    (dom0_root / "usr" / "etc").mkdir(parents=True)
    (dom0_root / "usr" / "etc" / "xenhost.conf").write_text('{"custom": 1}')
    data = harness.call("xenhost", "host_data", session=xapi_session,
                        host_uuid=_sim_host_uuid(xapi_session))
    assert data["custom"] == 1


def test_host_data_finds_this_host_in_the_inventory_without_a_host_uuid(xapi_session, dom0_root):
    host_uuid = _sim_host_uuid(xapi_session)
    (dom0_root / "etc").mkdir()
    (dom0_root / "etc" / "xensource-inventory").write_text(f"INSTALLATION_UUID='{host_uuid}'\n")
    assert harness.call("xenhost", "host_data", session=xapi_session)["host_uuid"] == host_uuid


def test_unknown_host_uuid_gives_xapis_own_error(xapi_session, failure):
    with pytest.raises(failure) as info:
        _call("host_data", xapi_session)
    assert info.value.params == ["UUID_INVALID", "host", HOST_UUID]


def test_set_host_enabled_false_disables_the_host(xapi_session):
    host_uuid = _sim_host_uuid(xapi_session)
    result = harness.call("xenhost", "set_host_enabled", False, session=xapi_session,
                          host_uuid=host_uuid)
    assert result == {"status": "disabled"}
    host = xapi_session.xenapi.host.get_by_uuid(host_uuid)
    assert xapi_session.xenapi.host.get_enabled(host) is False


def test_set_host_enabled_accepts_0_3_4s_true_string(xapi_session):
    host_uuid = _sim_host_uuid(xapi_session)
    harness.call("xenhost", "set_host_enabled", False, session=xapi_session, host_uuid=host_uuid)
    assert harness.call("xenhost", "set_host_enabled", enabled="true", session=xapi_session,
                        host_uuid=host_uuid) == {"status": "enabled"}


def test_set_host_enabled_refuses_other_words_before_calling_xapi(failure):
    session, xapi = _recording()
    with pytest.raises(failure) as info:
        _call("set_host_enabled", session, enabled="maybe")
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "xenhost.set_host_enabled", "enabled"]
    assert xapi.calls == []


def test_entering_maintenance_disables_then_evacuates():
    session, xapi = _recording({"host.get_enabled": True})
    assert _call("host_maintenance_mode", session, mode=True) == "on_maintenance"
    assert xapi.names() == ["host.get_by_uuid", "host.get_enabled", "host.disable",
                            "host.evacuate"]


def test_leaving_maintenance_enables_the_host():
    session, xapi = _recording()
    assert _call("host_maintenance_mode", session, mode=False) == "off_maintenance"
    assert xapi.names() == ["host.get_by_uuid", "host.enable"]


def test_failed_evacuation_enables_the_host_again_and_reports_xapis_error(failure):
    def refuse(host):
        raise XenAPI.Failure(["HOST_NOT_ENOUGH_FREE_MEMORY", "1024", "512"])

    session, xapi = _recording({"host.get_enabled": True, "host.evacuate": refuse})
    with pytest.raises(failure) as info:
        _call("host_maintenance_mode", session, mode=True)
    assert info.value.params == ["HOST_NOT_ENOUGH_FREE_MEMORY", "1024", "512"]
    assert xapi.names()[-1] == "host.enable"


def test_maintenance_against_a_xapi_without_evacuate_passes_its_error_through(xapi_session,
                                                                            failure):
    host_uuid = _sim_host_uuid(xapi_session)
    with pytest.raises(failure) as info:
        harness.call("xenhost", "host_maintenance_mode", True, session=xapi_session,
                     host_uuid=host_uuid)
    assert info.value.params == ["MESSAGE_METHOD_UNKNOWN", "host.evacuate"]
    host = xapi_session.xenapi.host.get_by_uuid(host_uuid)
    assert xapi_session.xenapi.host.get_enabled(host) is True


GUESTS = {
    "OpaqueRef:dom0": {"is_control_domain": True, "power_state": "Running"},
    "OpaqueRef:run": {"is_control_domain": False, "power_state": "Running"},
    "OpaqueRef:paused": {"is_control_domain": False, "power_state": "Paused"},
}


def _power_session():
    return _recording({"host.get_resident_VMs": list(GUESTS),
                       "VM.get_record": lambda vm: GUESTS[vm]})


@pytest.mark.parametrize("function,action,xapi_call", [
    ("host_reboot", "reboot", "host.reboot"),
    ("host_shutdown", "shutdown", "host.shutdown"),
    ("host_start", "startup", "host.power_on"),
])
def test_power_action_disables_host_stops_guests_then_acts(function, action, xapi_call):
    session, xapi = _power_session()
    assert _call(function, session) == {"power_action": action}
    stops = [(name, args[0]) for name, args in xapi.calls if name.endswith("_shutdown")]
    assert stops == [("VM.clean_shutdown", "OpaqueRef:run"),
                     ("VM.hard_shutdown", "OpaqueRef:paused")]
    assert xapi.names()[1] == "host.disable"
    assert xapi.calls[-1] == (xapi_call, ("OpaqueRef:host",))


def test_power_action_stops_when_a_guest_will_not_shut_down(failure):
    session, xapi = _power_session()

    def refuse(vm):
        raise XenAPI.Failure(["VM_BAD_POWER_STATE", vm, "Halted", "Running"])

    xapi.answers["VM.clean_shutdown"] = refuse
    with pytest.raises(failure) as info:
        _call("host_reboot", session)
    assert info.value.params[0] == "VM_BAD_POWER_STATE"
    assert "host.reboot" not in xapi.names()


def test_host_uptime_reads_proc(dom0_root):
    (dom0_root / "proc").mkdir()
    (dom0_root / "proc" / "uptime").write_text("266470.51 1000.00\n")
    (dom0_root / "proc" / "loadavg").write_text("0.10 0.25 0.50 1/200 4242\n")
    result = harness.call("xenhost", "host_uptime")
    assert result["uptime_seconds"] == 266470.51
    assert result["uptime"].endswith(" up 3 days,  2:01,  load average: 0.10, 0.25, 0.50")


def test_host_uptime_with_unreadable_proc_is_bad_data(dom0_root, failure):
    (dom0_root / "proc").mkdir()
    (dom0_root / "proc" / "uptime").write_text("garbage\n")
    (dom0_root / "proc" / "loadavg").write_text("0.10 0.25 0.50 1/200 4242\n")
    with pytest.raises(failure) as info:
        harness.call("xenhost", "host_uptime")
    assert info.value.params[0] == CODES.BAD_DATA


def test_set_config_then_get_config_returns_the_value():
    harness.call("xenhost", "set_config", key="region", value="eu-1")
    assert harness.call("xenhost", "get_config", key="region") == "eu-1"


def test_set_config_writes_json_to_xenhost_conf(dom0_root):
    harness.call("xenhost", "set_config", key="weight", value=3)
    assert json.loads((dom0_root / "usr" / "etc" / "xenhost.conf").read_text()) == {"weight": 3}


def test_set_config_to_null_removes_the_key():
    harness.call("xenhost", "set_config", key="region", value="eu-1")
    harness.call("xenhost", "set_config", key="region", value=None)
    assert harness.call("xenhost", "get_config", key="region") is None


def test_get_config_of_a_corrupt_file_is_bad_data(dom0_root, failure):
    (dom0_root / "usr" / "etc").mkdir(parents=True)
    (dom0_root / "usr" / "etc" / "xenhost.conf").write_text("{not json")
    with pytest.raises(failure) as info:
        harness.call("xenhost", "get_config", key="region")
    assert info.value.params == [CODES.BAD_DATA, "/usr/etc/xenhost.conf", "not JSON"]


def test_set_config_refuses_a_nested_value_and_writes_nothing(dom0_root, failure):
    with pytest.raises(failure) as info:
        harness.call("xenhost", "set_config", key="k", value={"a": 1})
    assert info.value.params[2] == "value"
    assert not (dom0_root / "usr").exists()


# -- os-xenapi 0.3.4's plain arguments (Nova's direct call_plugin calls) ----------------------

def _plain(function, session, args):
    return harness.call_plain("xenhost", function, dict(args, host_uuid=HOST_UUID),
                              session=session)


@pytest.mark.parametrize("function,action,xapi_call", [
    ("host_reboot", "reboot", "host.reboot"),
    ("host_shutdown", "shutdown", "host.shutdown"),
])
def test_novas_power_action_call_answers_0_3_4s_json_text(function, action, xapi_call):
    session, xapi = _power_session()
    text = _plain(function, session, {"action": json.dumps(action)})
    assert text == json.dumps({"power_action": action})
    assert xapi.calls[-1] == (xapi_call, ("OpaqueRef:host",))


def test_an_action_naming_another_power_action_is_refused_before_any_xapi_call(failure):
    session, xapi = _power_session()
    with pytest.raises(failure) as info:
        _plain("host_reboot", session, {"action": json.dumps("shutdown")})
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "xenhost.host_reboot", "action"]
    assert xapi.calls == []


def test_plain_set_host_enabled_answers_the_status_as_json_text(xapi_session):
    host_uuid = _sim_host_uuid(xapi_session)
    text = harness.call_plain("xenhost", "set_host_enabled",
                              {"enabled": "false", "host_uuid": host_uuid}, session=xapi_session)
    assert text == '{"status": "disabled"}'
    text = harness.call_plain("xenhost", "set_host_enabled",
                              {"enabled": "true", "host_uuid": host_uuid}, session=xapi_session)
    assert text == '{"status": "enabled"}'


def test_plain_get_config_takes_0_3_4s_params_object_and_answers_json_text():
    harness.call("xenhost", "set_config", key="region", value="eu-1")
    text = harness.call_plain("xenhost", "get_config", {"params": json.dumps({"key": "region"})})
    assert text == '"eu-1"'


def test_plain_get_config_of_a_missing_key_answers_the_string_none_as_0_3_4():
    text = harness.call_plain("xenhost", "get_config", {"params": json.dumps({"key": "nokey"})})
    assert text == '"None"'


def test_plain_set_config_writes_and_answers_null(dom0_root):
    text = harness.call_plain("xenhost", "set_config",
                              {"params": json.dumps({"key": "weight", "value": 3})})
    assert text == "null"
    assert json.loads((dom0_root / "usr" / "etc" / "xenhost.conf").read_text()) == {"weight": 3}


def test_plain_set_config_refuses_what_the_json_form_refuses(dom0_root, failure):
    with pytest.raises(failure) as info:
        harness.call_plain("xenhost", "set_config",
                           {"params": json.dumps({"key": "k", "value": {"a": 1}})})
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "xenhost.set_config", "value"]
    assert not (dom0_root / "usr").exists()
