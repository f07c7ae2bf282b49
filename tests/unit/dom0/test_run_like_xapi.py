"""Plugins run the way XAPI runs them: a subprocess whose argv[1] is an XML-RPC methodCall of
(session_ref, args), answering with one methodResponse on stdout.

XenAPIPlugin and XenAPI come from stubs/ on PYTHONPATH (dom0's own modules are not on this
machine). The interpreter is Python 3.6, dom0's, when one is installed (see
harness.dom0_python); the xenstore-* commands are launchers over stubs/fake_xenstore.py.
"""

import json
import os

import pytest

from . import harness

VERSION = harness.PLUGINS / "dom0_plugin_version.py"
XENSTORE = harness.PLUGINS / "xenstore.py"


def _params(**kwargs):
    return {"params": json.dumps({"args": [], "kwargs": kwargs})}


@pytest.fixture
def xenstore_env(tmp_path, dom0_root):
    tree = harness.fake_xenstore_module().XenstoreTree({"/local/domain/5/name": "guest-5"})
    database = tmp_path / "xenstore.json"
    harness.install_xenstore_launchers(tmp_path / "bin", database, tree)
    env = {"PATH": str(tmp_path / "bin") + os.pathsep + os.environ["PATH"],
           "FAKE_XENSTORE_DB": str(database), "DOM0_ROOT": str(dom0_root)}
    return env, database


def test_get_version_answers_3_0_in_a_methodresponse():
    assert harness.run_like_xapi(VERSION, "get_version", {"params": "{}"}) == ("Success", '"3.0"')


def test_get_version_runs_through_its_shebang_as_forkexecd_runs_it(dom0_root):
    assert os.access(str(VERSION), os.X_OK)
    status = harness.run_like_xapi(VERSION, "get_version", {}, python=None,
                                   env_extra={"DOM0_ROOT": str(dom0_root)},
                                   direct=True)
    assert status == ("Success", '"3.0"')


def test_unknown_function_is_reported_by_xenapiplugin():
    assert harness.run_like_xapi(VERSION, "get_versions", {}) == (
        "Failure", ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "get_versions"])


def test_pickled_params_are_refused_with_a_plugin_error():
    status, details = harness.run_like_xapi(VERSION, "get_version",
                                            {"params": "(dp0\nS'args'\np1\n(lp2\n"})
    assert status == "Failure"
    assert details[:3] == ["OS_XENAPI_INVALID_ARGUMENT", "dom0_plugin_version.get_version",
                           "params"]


def test_xenstore_write_then_read_round_trips(xenstore_env):
    env, _ = xenstore_env
    assert harness.run_like_xapi(XENSTORE, "write_record",
                                 _params(dom_id=5, path="vm-data/hostname", value="web-1"),
                                 env_extra=env) == ("Success", '"web-1"')
    assert harness.run_like_xapi(XENSTORE, "read_record",
                                 _params(dom_id=5, path="vm-data/hostname"),
                                 env_extra=env) == ("Success", '"web-1"')


def test_xenstore_missing_path_is_a_not_found_failure(xenstore_env):
    env, _ = xenstore_env
    assert harness.run_like_xapi(XENSTORE, "read_record", _params(dom_id=5, path="data/none"),
                                 env_extra=env) == (
        "Failure", ["OS_XENAPI_NOT_FOUND", "xenstore path", "/local/domain/5/data/none"])


def test_xenstore_ignore_missing_path_gives_null(xenstore_env):
    env, _ = xenstore_env
    assert harness.run_like_xapi(XENSTORE, "read_record",
                                 _params(dom_id=5, path="data/none", ignore_missing_path=True),
                                 env_extra=env) == ("Success", "null")


def test_xenstore_traversal_attempt_fails_and_leaves_the_store_alone(xenstore_env):
    env, database = xenstore_env
    before = database.read_text()
    status, details = harness.run_like_xapi(
        XENSTORE, "delete_record", _params(dom_id=5, path="../../0"), env_extra=env)
    assert (status, details[:3]) == ("Failure", ["OS_XENAPI_INVALID_ARGUMENT",
                                                 "xenstore.delete_record", "path"])
    assert database.read_text() == before
