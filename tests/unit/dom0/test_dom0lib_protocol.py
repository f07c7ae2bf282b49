"""dom0lib.protocol: the JSON calling convention every plugin function goes through.

Plugins are imported in-process with the XenAPIPlugin stand-in from stubs/ (see harness);
the functions under test here are the dispatch table entries register() builds.
"""

import json

import pytest
import XenAPI

from . import harness

lib = harness.dom0lib()
errors = lib.errors
V = lib.validate


@lib.takes(name=V.Str(8, r"[a-z]+"), count=V.Int(0, 9), loud=V.Bool())
def _greet(ctx, name, count=1, *, loud=False):
    text = ("hello " + name) * count
    return text.upper() if loud else text


@lib.takes()
def _boom(ctx):
    raise KeyError("secret-free message")


@lib.takes()
def _xapi_error(ctx):
    raise XenAPI.Failure(["HOST_OFFLINE", "OpaqueRef:h1"])


@lib.takes()
def _plugin_error(ctx):
    raise errors.PluginError(errors.NOT_FOUND, "thing", "t1")


@lib.takes()
def _unserialisable(ctx):
    return {1, 2}


@lib.takes()
def _host(ctx):
    return ctx.host_uuid()


TABLE = lib.register("testplugin", _greet, _boom, _xapi_error, _plugin_error, _unserialisable,
                     _host)


def _params(*args, **kwargs):
    return {"params": json.dumps({"args": list(args), "kwargs": kwargs})}


def _fails(failure, function, xapi_args):
    with pytest.raises(failure) as info:
        TABLE[function](None, xapi_args)
    return info.value.params


def test_result_is_json_of_the_return_value():
    assert json.loads(TABLE["_greet"](None, _params("bob", 2))) == "hello bobhello bob"


def test_arguments_bind_by_name():
    assert json.loads(TABLE["_greet"](None, _params(name="al", loud=True))) == "HELLO AL"


def test_keyword_only_parameters_can_also_be_given_by_position():
    assert json.loads(TABLE["_greet"](None, _params("al", 1, "true"))) == "HELLO AL"


def test_missing_params_means_no_arguments():
    host_uuid = "00000000-1111-2222-3333-444444444444"
    assert json.loads(TABLE["_host"](None, {"host_uuid": host_uuid})) == host_uuid


def test_required_argument_missing_is_invalid_argument(failure):
    assert _fails(failure, "_greet", _params()) == [
        errors.INVALID_ARGUMENT, "testplugin._greet", "name", "is required"]


def test_unknown_keyword_is_invalid_argument(failure):
    params = _fails(failure, "_greet", _params("bob", colour="red"))
    assert params[:3] == [errors.INVALID_ARGUMENT, "testplugin._greet", "colour"]
    assert "name, count, loud" in params[3]


def test_too_many_positional_arguments_is_invalid_argument(failure):
    params = _fails(failure, "_greet", _params("bob", 1, True, "extra"))
    assert params[2:] == ["args", "takes at most 3 arguments, got 4"]


def test_argument_given_twice_is_invalid_argument(failure):
    params = _fails(failure, "_greet", _params("bob", name="al"))
    assert params[2:] == ["name", "was given both by position and by name"]


def test_mistyped_argument_names_argument_and_rule(failure):
    params = _fails(failure, "_greet", _params("bob", count="many"))
    assert params == [errors.INVALID_ARGUMENT, "testplugin._greet", "count",
                      "must be an integer, got string"]


def test_non_json_params_is_invalid_argument_that_mentions_the_protocol(failure):
    params = _fails(failure, "_greet", {"params": "{'args': []}"})
    assert params[:3] == [errors.INVALID_ARGUMENT, "testplugin._greet", "params"]
    assert "not valid JSON" in params[3] and "protocol 3.0" in params[3]


@pytest.mark.parametrize("pickled", [
    "(dp0\nS'args'\np1\n(lp2\n",                      # protocol 0, as Python 2 wrote it
    "(dp1\nS'kwargs'\np2\n(dp3\nsS'args'\np4\n(tp5\ns.",
    "\x80\x02}q\x00(U\x04argsq\x01)U\x06kwargsq\x02}q\x03u.",  # protocol 2
], ids=["protocol-0", "protocol-0-dict", "protocol-2"])
def test_pickled_params_are_refused_saying_pickle_is_refused(failure, pickled):
    params = _fails(failure, "_greet", {"params": pickled})
    assert params[:3] == [errors.INVALID_ARGUMENT, "testplugin._greet", "params"]
    assert params[3].startswith("is a pickle")
    assert "pickle is refused" in params[3] and "protocol 3.0" in params[3]


def test_params_that_is_not_an_object_is_invalid_argument(failure):
    params = _fails(failure, "_greet", {"params": "[1, 2]"})
    assert params[2:] == ["params", "must be a JSON object, got array"]


def test_params_with_unexpected_keys_is_invalid_argument(failure):
    params = _fails(failure, "_greet", {"params": '{"args": [], "extra": 1}'})
    assert params[2:] == ["params", "may hold only 'args' and 'kwargs', not extra"]


def test_params_with_duplicate_keys_is_invalid_argument(failure):
    params = _fails(failure, "_greet", {"params": '{"kwargs": {"name": "a", "name": "b"}}'})
    assert "duplicate key" in params[3]


def test_params_with_nan_is_invalid_argument(failure):
    params = _fails(failure, "_greet", {"params": '{"args": ["bob", NaN]}'})
    assert "NaN is not JSON" in params[3]


def test_deeply_nested_params_is_invalid_argument(failure):
    params = _fails(failure, "_greet", {"params": "[" * 50000 + "]" * 50000})
    assert params[2] == "params" and "not valid JSON" in params[3]


def test_oversized_params_is_invalid_argument(failure):
    params = _fails(failure, "_greet", {"params": json.dumps({"args": ["x" * 200000]})})
    assert params[2:] == ["params", f"must be at most {128 * 1024} bytes"]


def test_unknown_top_level_key_is_invalid_argument(failure):
    params = _fails(failure, "_greet", {"name": "bob"})
    assert params[2] == "name"
    assert "send arguments as JSON in 'params'" in params[3]


def test_malformed_host_uuid_is_invalid_argument(failure):
    params = _fails(failure, "_greet", dict(_params("bob"), host_uuid="../etc"))
    assert params[2] == "host_uuid"


def test_plugin_error_keeps_its_code_and_details(failure):
    assert _fails(failure, "_plugin_error", {}) == [errors.NOT_FOUND, "thing", "t1"]


def test_xapi_error_from_the_session_passes_through_unchanged(failure):
    assert _fails(failure, "_xapi_error", {}) == ["HOST_OFFLINE", "OpaqueRef:h1"]


def test_unexpected_exception_becomes_internal_error(failure):
    assert _fails(failure, "_boom", {}) == [
        errors.INTERNAL_ERROR, "testplugin._boom", "KeyError", "'secret-free message'"]


def test_unserialisable_result_becomes_internal_error(failure):
    params = _fails(failure, "_unserialisable", {})
    assert params[:3] == [errors.INTERNAL_ERROR, "testplugin._unserialisable", "TypeError"]


def test_host_uuid_comes_from_the_inventory_when_the_client_sends_none(dom0_root):
    (dom0_root / "etc").mkdir()
    (dom0_root / "etc" / "xensource-inventory").write_text(
        "PRIMARY_DISK='/dev/sda'\nINSTALLATION_UUID='3f1c2a54-1111-2222-3333-444455556666'\n")
    assert json.loads(TABLE["_host"](None, {})) == "3f1c2a54-1111-2222-3333-444455556666"


def test_host_uuid_without_inventory_is_not_found(failure):
    params = _fails(failure, "_host", {})
    assert params[:2] == [errors.NOT_FOUND, "host inventory"]


def test_takes_refuses_an_untyped_parameter():
    with pytest.raises(TypeError, match="must type exactly the parameters"):
        @lib.takes(a=V.Bool())
        def _untyped(ctx, a, b):
            return None


def test_register_refuses_a_function_without_takes():
    def _plain(ctx):
        return None

    with pytest.raises(TypeError, match="no @takes"):
        lib.register("testplugin", _plain)
