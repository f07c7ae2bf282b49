"""dom0lib.plainargs: os-xenapi 0.3.4's plain string arguments, checked as the JSON form is.

The functions under test are dispatch table entries register() builds for small functions
declared here; the plugins' own plain forms are tested with each plugin.
"""

import json

import pytest

from . import harness

lib = harness.dom0lib()
errors = lib.errors
V = lib.validate
HOST_UUID = "00000000-1111-2222-3333-444444444444"


@lib.plain(renamed={"vdi-ref": "vdi_ref"}, json_keys=("cmd",),
           ignored={"attempts": V.Int(0, 9)}, answer=lambda result: "got " + json.dumps(result))
@lib.takes(vdi_ref=V.Str(12, r"[a-z:]+"), count=V.Int(1, 5), cmd=V.List(V.Str(8), 3),
           label=V.Nullable(V.Str(8, r"[a-z]+")))
def _copy(ctx, vdi_ref, count=1, cmd=None, label=None):
    return {"vdi_ref": vdi_ref, "count": count, "cmd": cmd, "label": label}


@lib.plain(params_object=True)
@lib.takes(key=V.Str(8, r"[a-z]+"), value=V.Scalar(8))
def _config(ctx, key, value=None):
    return [key, value]


def _reshape(code, details, function):
    return "XENAPI_PLUGIN_FAILURE", [function, code, "refused"]


@lib.plain(failure=_reshape)
@lib.takes(word=V.Choice("yes"))
def _strict(ctx, word):
    return word


@lib.plain()
@lib.takes()
def _nothing(ctx):
    return {"answered": True}


TABLE = lib.register("testplugin", _copy, _config, _strict, _nothing)


def _plain(function, args):
    return TABLE[function](None, args)


def _fails(failure, function, args):
    with pytest.raises(failure) as info:
        TABLE[function](None, args)
    return info.value.params


def test_plain_keys_bind_to_parameters_and_the_answer_is_the_declared_text():
    text = _plain("_copy", {"vdi-ref": "ref:a", "count": "3", "cmd": '["a", "b"]',
                            "host_uuid": HOST_UUID})
    assert text == 'got {"vdi_ref": "ref:a", "count": 3, "cmd": ["a", "b"], "label": null}'


def test_the_json_form_of_the_same_function_still_answers_json():
    params = json.dumps({"args": [], "kwargs": {"vdi_ref": "ref:a"}})
    assert json.loads(_plain("_copy", {"params": params}))["vdi_ref"] == "ref:a"


def test_a_map_with_only_host_uuid_is_the_json_form_without_arguments():
    assert _plain("_nothing", {"host_uuid": HOST_UUID}) == '{"answered": true}'


def test_a_plain_value_is_checked_by_the_json_forms_type_and_the_error_names_the_key_sent(
        failure):
    params = _fails(failure, "_copy", {"vdi-ref": "REF!"})
    assert params == [errors.INVALID_ARGUMENT, "testplugin._copy", "vdi-ref",
                      "must be a string matching [a-z:]+"]


def test_the_python_name_of_a_renamed_key_is_not_a_plain_key(failure):
    params = _fails(failure, "_copy", {"vdi_ref": "ref:a"})
    assert params[2] == "vdi_ref"
    assert params[3] == "is not an argument of this function (it takes: vdi-ref, count, cmd, " \
                        "label, attempts)"


def test_an_unknown_key_is_refused(failure):
    assert _fails(failure, "_copy", {"vdi-ref": "ref:a", "shell": "1"})[2] == "shell"


def test_a_required_key_left_out_is_refused_by_its_plain_name(failure):
    assert _fails(failure, "_copy", {"count": "2"})[2:] == ["vdi-ref", "is required"]


def test_an_empty_string_leaves_an_optional_argument_out_as_0_3_4_read_it():
    text = _plain("_copy", {"vdi-ref": "ref:a", "count": "", "label": ""})
    assert json.loads(text[len("got "):])["count"] == 1


def test_an_empty_string_for_a_required_argument_is_checked_as_given(failure):
    assert _fails(failure, "_copy", {"vdi-ref": ""})[2] == "vdi-ref"


@pytest.mark.parametrize("raw", ['["a", NaN]', '{"a": 1, "a": 2}', "[a]"],
                         ids=["nan", "duplicate-key", "not-json"])
def test_a_json_key_must_hold_strict_json(failure, raw):
    params = _fails(failure, "_copy", {"vdi-ref": "ref:a", "cmd": raw})
    assert params[2] == "cmd"
    assert "is not valid JSON" in params[3]


def test_an_optional_json_key_sent_as_an_empty_string_is_left_out():
    assert json.loads(_plain("_copy", {"vdi-ref": "ref:a", "cmd": ""})[len("got "):])["cmd"] is None


def test_a_json_keys_decoded_value_is_checked_by_the_type(failure):
    params = _fails(failure, "_copy", {"vdi-ref": "ref:a", "cmd": '["a", 1]'})
    assert params[2:] == ["cmd", "item 1 must be a string, got integer"]


def test_an_ignored_key_is_checked_then_dropped(failure):
    assert _plain("_copy", {"vdi-ref": "ref:a", "attempts": "5"}).startswith("got ")
    assert _fails(failure, "_copy", {"vdi-ref": "ref:a", "attempts": "lots"})[2] == "attempts"


def test_plain_values_must_be_strings_as_xapi_passes_them(failure):
    params = _fails(failure, "_copy", {"vdi-ref": "ref:a", "count": 3})
    assert params[2:] == ["count", "must be a string, as XAPI passes plugin arguments, got integer"]


def test_a_malformed_host_uuid_is_refused_in_the_plain_form_too(failure):
    assert _fails(failure, "_copy", {"vdi-ref": "ref:a", "host_uuid": "../x"})[2] == "host_uuid"


def test_a_params_object_of_0_3_4_binds_its_keys():
    assert _plain("_config", {"params": json.dumps({"key": "k", "value": 2})}) == '["k", 2]'


def test_protocol_3_0_params_still_work_where_0_3_4_sent_an_object():
    params = json.dumps({"args": ["k"], "kwargs": {}})
    assert _plain("_config", {"params": params}) == '["k", null]'


def test_a_params_object_with_unknown_keys_is_refused(failure):
    params = _fails(failure, "_config", {"params": json.dumps({"key": "k", "other": 1})})
    assert params[2] == "other"


def test_a_plain_failure_may_be_reshaped_for_0_3_4s_callers(failure):
    assert _fails(failure, "_strict", {"word": "no"}) == [
        "XENAPI_PLUGIN_FAILURE", "_strict", errors.INVALID_ARGUMENT, "refused"]


def test_the_json_form_of_a_reshaping_function_keeps_the_typed_code(failure):
    params = _fails(failure, "_strict", {"params": json.dumps({"args": ["no"]})})
    assert params[:3] == [errors.INVALID_ARGUMENT, "testplugin._strict", "word"]


def test_pickled_params_stay_refused_for_a_function_with_a_plain_form(failure):
    params = _fails(failure, "_nothing", {"params": "(dp0\nS'args'\np1\n(lp2\n"})
    assert params[2] == "params" and params[3].startswith("is a pickle")


def test_a_rename_to_a_parameter_the_function_lacks_is_a_plugin_bug():
    @lib.plain(renamed={"a-b": "a_c"})
    @lib.takes(a_b=V.Str(3))
    def _broken(ctx, a_b):
        return a_b

    with pytest.raises(TypeError, match="renames to parameters the function lacks: a_c"):
        lib.register("testplugin", _broken)


# consumers-0.3.4.md, section 2.1: the functions 0.3.4 registered with XenAPIPlugin.dispatch
# (plain string arguments) and those it registered with register_plugin_calls (pickle).
PLAIN_IN_0_3_4 = [
    ("agent", name) for name in ("version", "key_init", "password", "resetnetwork",
                                 "inject_file", "agentupdate")
] + [
    ("config_file", "get_val"), ("console", "get_console_log"),
    ("kernel", "copy_vdi"), ("kernel", "create_kernel_ramdisk"),
    ("kernel", "remove_kernel_ramdisk"), ("netwrap", "run_command"),
] + [
    ("xenhost", name) for name in ("get_config", "set_config", "host_data", "host_join",
                                   "host_reboot", "host_shutdown", "host_start", "host_uptime",
                                   "iptables_config", "set_host_enabled")
] + [
    ("xenstore", name) for name in ("read_record", "write_record", "list_records",
                                    "delete_record")
]
PICKLED_IN_0_3_4 = [
    ("bandwidth", "fetch_all_bandwidth"), ("dom0_plugin_version", "get_version"),
    ("glance", "download_vhd2"), ("glance", "upload_vhd2"), ("ipxe", "inject"),
    ("migration", "move_vhds_into_sr"), ("migration", "transfer_vhd"),
    ("partition_utils", "make_partition"), ("partition_utils", "mkfs"),
    ("partition_utils", "wait_for_dev"), ("workarounds", "safe_copy_vdis"),
    ("xenhost", "get_pci_device_details"), ("xenhost", "get_pci_type"),
    ("xenhost", "network_config"), ("xenhost", "query_gc"),
]


@pytest.mark.parametrize("plugin,function", PLAIN_IN_0_3_4,
                         ids=[f"{p}.{f}" for p, f in PLAIN_IN_0_3_4])
def test_every_function_0_3_4_took_plain_arguments_takes_them_again(plugin, function):
    assert hasattr(getattr(harness.load_plugin(plugin), function), "dom0_plain")


@pytest.mark.parametrize("plugin,function", PICKLED_IN_0_3_4,
                         ids=[f"{p}.{f}" for p, f in PICKLED_IN_0_3_4])
def test_a_function_0_3_4_called_with_pickle_has_no_plain_form(plugin, function):
    assert not hasattr(getattr(harness.load_plugin(plugin), function), "dom0_plain")


def test_a_params_object_call_with_other_keys_is_refused(failure):
    params = _fails(failure, "_config", {"params": json.dumps({"key": "k"}), "value": "v"})
    assert params[2] == "value"


def test_an_empty_string_inside_a_params_object_is_a_value():
    assert _plain("_config", {"params": json.dumps({"key": "k", "value": ""})}) == '["k", ""]'


def test_json_text_of_an_empty_string_is_an_empty_string_not_a_missing_argument():
    text = _plain("_copy", {"vdi-ref": "ref:a", "cmd": '[""]'})
    assert json.loads(text[len("got "):])["cmd"] == [""]
