"""Hostile input against every plugin: each attempt is a clear OS_XENAPI_INVALID_ARGUMENT that
names the argument, and nothing happens: no command runs (FakeCommands stays empty) and no
file appears under DOM0_ROOT.

Plugin files are imported in-process with a stand-in XenAPIPlugin (stubs/XenAPIPlugin.py)
put into sys.modules only while they load (see harness.py); XenAPI is the official SDK.
"""

import json
import os

import pytest

from . import harness

INVALID = harness.dom0lib().errors.INVALID_ARGUMENT

UUID1 = "0b6e7a1c-1111-2222-3333-444444444444"
JOIN = {"compute_uuid": UUID1, "url": "http://192.0.2.7", "user": "root", "password": "pw",
        "master_addr": "192.0.2.1", "master_user": "root", "master_pass": "mpw"}

# (plugin, function, kwargs, the argument the error must name)
HOSTILE = [
    # path traversal and escapes from the guest's xenstore tree
    ("xenstore", "read_record", {"dom_id": 5, "path": "../0/vm-data"}, "path"),
    ("xenstore", "read_record", {"dom_id": 5, "path": "/local/domain/0/x"}, "path"),
    ("xenstore", "write_record", {"dom_id": 5, "path": "data//x", "value": "v"}, "path"),
    ("xenstore", "delete_record", {"dom_id": 5, "path": "data/"}, "path"),
    ("xenstore", "list_records", {"dom_id": 5, "path": "data/*"}, "path"),
    ("xenstore", "read_record", {"dom_id": 0, "path": "name"}, "dom_id"),
    ("xenstore", "read_record", {"dom_id": "5/../0", "path": "name"}, "dom_id"),
    ("console", "get_console_log", {"dom_id": "../../../etc/shadow"}, "dom_id"),
    ("xenhost", "get_pci_type", {"pci_device": "../../../../etc"}, "pci_device"),
    # command injection attempts
    ("xenstore", "read_record", {"dom_id": 5, "path": "x; rm -rf /"}, "path"),
    ("xenstore", "write_record", {"dom_id": 5, "path": "$(reboot)", "value": "v"}, "path"),
    ("xenstore", "write_record", {"dom_id": 5, "path": "data/x", "value": "a\nb"}, "value"),
    ("agent", "version", {"id": "`reboot`", "dom_id": 5}, "id"),
    ("agent", "key_init", {"id": "r1", "dom_id": 5, "pub": "1; reboot"}, "pub"),
    ("xenhost", "network_config", {"cmd": "brctl_add_br", "args": {"bridge_name": "b;id"}},
     "args"),
    ("xenhost", "network_config", {"cmd": "ovs_del_br; reboot", "args": {}}, "cmd"),
    ("xenhost", "iptables_config", {"cmd_args": ["iptables-save", "; rm -rf /"]}, "cmd_args"),
    ("config_file", "get_val", {"key": "a\nb"}, "key"),
    ("xenhost", "set_config", {"key": "$(id)", "value": 1}, "key"),
    # oversized
    ("xenstore", "read_record", {"dom_id": 5, "path": "a/" * 1100 + "a"}, "path"),
    ("xenstore", "write_record", {"dom_id": 5, "path": "data/x", "value": "v" * 5000}, "value"),
    ("agent", "inject_file", {"id": "r1", "dom_id": 5, "b64_path": "QUFB" * 1000,
                              "b64_contents": "QQ=="}, "b64_path"),
    ("xenhost", "set_config", {"key": "k", "value": "v" * 2000}, "value"),
    ("xenhost", "iptables_config", {"cmd_args": ["iptables-save"] + ["-c"] * 20}, "cmd_args"),
    # mistyped
    ("xenstore", "read_record", {"dom_id": [5], "path": "name"}, "dom_id"),
    ("xenstore", "read_record", {"dom_id": 5, "path": 7}, "path"),
    ("xenstore", "read_record", {"dom_id": 5, "path": "name", "ignore_missing_path": "maybe"},
     "ignore_missing_path"),
    ("xenstore", "read_record", {"dom_id": True, "path": "name"}, "dom_id"),
    ("agent", "version", {"id": "r1", "dom_id": 5, "timeout": "30s"}, "timeout"),
    ("xenhost", "set_host_enabled", {"enabled": 1}, "enabled"),
    ("xenhost", "host_maintenance_mode", {"mode": None}, "mode"),
    ("bandwidth", "fetch_all_bandwidth", {"extra": 1}, "extra"),
    # host_join: credentials and addresses
    ("xenhost", "host_join", dict(JOIN, url="http://root:secret@192.0.2.7"), "url"),
    ("xenhost", "host_join", dict(JOIN, url="file:///etc/shadow"), "url"),
    ("xenhost", "host_join", dict(JOIN, compute_uuid="../../x"), "compute_uuid"),
    ("xenhost", "host_join", dict(JOIN, password="pw\x00"), "password"),
    ("xenhost", "host_join", dict(JOIN, master_addr="192.0.2.1 -o x"), "master_addr"),
    ("xenhost", "host_join", dict(JOIN, force="sometimes"), "force"),
    ("kernel", "remove_kernel_ramdisk", {"kernel_file": "/etc/shadow"}, "kernel_file"),
    ("kernel", "create_kernel_ramdisk", {"cached_image": "../x", "new_image_uuid": UUID1},
     "cached_image"),
    ("netwrap", "run_command", {"cmd": ["ip", "netns", "exec", "x", "sh"]}, "cmd"),
]


def _nothing_under(root):
    return [os.path.join(directory, name) for directory, dirs, files in os.walk(str(root))
            for name in dirs + files]


@pytest.mark.parametrize("plugin,function,kwargs,argument", HOSTILE,
                         ids=[f"{case[0]}.{case[1]}-{i}" for i, case in enumerate(HOSTILE)])
def test_hostile_argument_is_refused_and_changes_nothing(commands, dom0_root, failure, plugin,
                                                        function, kwargs, argument):
    with pytest.raises(failure) as info:
        harness.call(plugin, function, **kwargs)
    code, where, named = info.value.params[:3]
    assert (code, where, named) == (INVALID, f"{plugin}.{function}", argument)
    assert commands.calls == []
    assert _nothing_under(dom0_root) == []


def _plain_form(plugin, function, kwargs, argument):
    """The hostile call as 0.3.4's plain arguments (strings; JSON text for netwrap's cmd...),
    or None if the function has no plain form or the hostile value is no string."""
    spec = getattr(getattr(harness.load_plugin(plugin), function), "dom0_plain", None)
    if spec is None:
        return None
    if spec.params_object:
        return {"params": json.dumps(kwargs)}
    args = {}
    for name, value in kwargs.items():
        key = spec.key_of(name)
        if key in spec.json_keys:
            args[key] = json.dumps(value)
        elif isinstance(value, str):
            args[key] = value
        elif isinstance(value, int) and not isinstance(value, bool) and name != argument:
            args[key] = str(value)
        else:
            return None
    return args


PLAIN_HOSTILE = [(plugin, function, _plain_form(plugin, function, kwargs, argument), argument)
                 for plugin, function, kwargs, argument in HOSTILE
                 if _plain_form(plugin, function, kwargs, argument) is not None]


@pytest.mark.parametrize("plugin,function,args,argument", PLAIN_HOSTILE,
                         ids=[f"{case[0]}.{case[1]}-{i}" for i, case in enumerate(PLAIN_HOSTILE)])
def test_the_same_hostile_argument_in_0_3_4s_plain_form_is_refused_alike(
        commands, dom0_root, failure, plugin, function, args, argument):
    with pytest.raises(failure) as info:
        harness.call_plain(plugin, function, args)
    spec = getattr(harness.load_plugin(plugin), function).dom0_plain
    if plugin == "netwrap":  # Neutron's root helper reads this shape (test_netwrap_neutron)
        assert info.value.params[0] == "XENAPI_PLUGIN_FAILURE"
        assert info.value.params[2].startswith(f"{INVALID}: {argument} ")
    else:
        code, where, named = info.value.params[:3]
        assert (code, where, named) == (INVALID, f"{plugin}.{function}", spec.key_of(argument))
    assert commands.calls == []
    assert _nothing_under(dom0_root) == []


def test_most_hostile_cases_have_a_plain_form():
    assert len(PLAIN_HOSTILE) >= 30


FUNCTIONS = [
    ("dom0_plugin_version", "get_version"),
    ("xenstore", "read_record"), ("xenstore", "write_record"), ("xenstore", "list_records"),
    ("xenstore", "delete_record"),
    ("agent", "version"), ("agent", "key_init"), ("agent", "password"),
    ("agent", "resetnetwork"), ("agent", "inject_file"), ("agent", "agentupdate"),
    ("bandwidth", "fetch_all_bandwidth"), ("console", "get_console_log"),
    ("config_file", "get_val"),
    ("xenhost", "host_data"), ("xenhost", "host_uptime"), ("xenhost", "set_host_enabled"),
    ("xenhost", "host_maintenance_mode"), ("xenhost", "host_reboot"),
    ("xenhost", "host_shutdown"), ("xenhost", "host_start"), ("xenhost", "host_join"),
    ("xenhost", "get_config"),
    ("xenhost", "set_config"), ("xenhost", "iptables_config"), ("xenhost", "network_config"),
    ("xenhost", "get_pci_device_details"), ("xenhost", "get_pci_type"), ("xenhost", "query_gc"),
]


@pytest.mark.parametrize("raw", ["(dp0\nS'args'\np1\n(lp2\n", "{'args': []}", "", "null",
                                 json.dumps({"args": {}}), json.dumps({"kwargs": []})],
                         ids=["pickle", "python-repr", "empty", "null", "args-object",
                              "kwargs-array"])
@pytest.mark.parametrize("plugin,function", FUNCTIONS, ids=[f"{p}.{f}" for p, f in FUNCTIONS])
def test_params_that_are_not_the_json_protocol_are_refused(commands, dom0_root, failure, plugin,
                                                           function, raw):
    with pytest.raises(failure) as info:
        harness.call(plugin, function, raw_params=raw)
    assert info.value.params[:3] == [INVALID, f"{plugin}.{function}", "params"]
    assert commands.calls == []
    assert _nothing_under(dom0_root) == []


def test_every_exported_function_is_covered_by_the_params_test():
    exported = set()
    for plugin in ("dom0_plugin_version", "xenstore", "agent", "bandwidth", "console",
                   "config_file", "xenhost"):
        source = (harness.PLUGINS / (plugin + ".py")).read_text()
        register_call = source.split("dom0lib.register(", 1)[1].split(")", 1)[0]
        names = [name.strip() for name in register_call.split(",")[1:]]
        exported.update((plugin, name) for name in names if name)
    assert exported == set(FUNCTIONS)
