"""xenstore plugin: read, write, list and delete nodes of one guest's xenstore tree.

The xenstore-* commands are faked at dom0lib.commands.spawn by an in-memory tree
(stubs/fake_xenstore.py) that answers with the exit codes and output of the real tools.

Plugin files are imported in-process with a stand-in XenAPIPlugin (stubs/XenAPIPlugin.py)
put into sys.modules only while they load (see harness.py); XenAPI is the official SDK.
"""

import json

import pytest

from . import harness

CODES = harness.dom0lib().errors


def _call(function, **kwargs):
    return harness.call("xenstore", function, **kwargs)


def test_read_record_returns_the_value(xenstore_tree):
    xenstore_tree.write("/local/domain/5/vm-data/hostname", "web-1")
    assert _call("read_record", dom_id=5, path="vm-data/hostname") == "web-1"


def test_read_record_keeps_surrounding_spaces(xenstore_tree):
    xenstore_tree.write("/local/domain/5/data/x", "  padded  ")
    assert _call("read_record", dom_id=5, path="data/x") == "  padded  "


def test_read_record_accepts_the_domid_as_xapi_reports_it(xenstore_tree):
    xenstore_tree.write("/local/domain/5/data/x", "1")
    assert _call("read_record", dom_id="5", path="data/x") == "1"


def test_read_record_of_missing_path_with_ignore_missing_path_is_null(xenstore_tree):
    assert _call("read_record", dom_id=5, path="data/none", ignore_missing_path=True) is None


def test_read_record_of_missing_path_is_not_found_by_default(xenstore_tree, failure):
    with pytest.raises(failure) as info:
        _call("read_record", dom_id=5, path="data/none")
    assert info.value.params == [CODES.NOT_FOUND, "xenstore path", "/local/domain/5/data/none"]


def test_ignore_missing_path_false_as_a_string_is_honoured(xenstore_tree, failure):
    # os-xenapi 0.3.4 sent the string 'False', which its plugin read as true.
    with pytest.raises(failure) as info:
        _call("read_record", dom_id=5, path="data/none", ignore_missing_path="False")
    assert info.value.params[0] == CODES.NOT_FOUND


def test_read_record_retries_once_when_the_node_appears_after_a_failed_read(commands, xenstore_tree):
    reads = []

    def read(argv, text):
        reads.append(argv)
        if len(reads) == 1:
            xenstore_tree.write("/local/domain/5/data/late", "here")
            return 1, "", "xenstore-read: couldn't read path\n"
        return xenstore_tree.command(argv)

    commands.on("xenstore-read", handler=read)
    assert _call("read_record", dom_id=5, path="data/late") == "here"
    assert commands.programs() == ["xenstore-read", "xenstore-exists", "xenstore-read"]


def test_read_record_reports_a_failing_xenstore_exists(commands, xenstore_tree, failure):
    commands.on("xenstore-exists", returncode=2, stderr="xenstore daemon not running")
    with pytest.raises(failure) as info:
        _call("read_record", dom_id=5, path="data/none", ignore_missing_path=True)
    assert info.value.params == [CODES.COMMAND_FAILED, "xenstore-exists", "2",
                                 "xenstore daemon not running"]


def test_write_record_stores_the_value_and_returns_it(xenstore_tree):
    assert _call("write_record", dom_id=5, path="vm-data/user", value="alice") == "alice"
    assert xenstore_tree.nodes["/local/domain/5/vm-data/user"] == "alice"


def test_write_record_stores_a_value_that_starts_with_a_dash(commands, xenstore_tree):
    _call("write_record", dom_id=5, path="data/n", value="-1")
    assert commands.calls == [["xenstore-write", "--", "/local/domain/5/data/n", "-1"]]
    assert xenstore_tree.nodes["/local/domain/5/data/n"] == "-1"


def test_write_record_passes_shell_syntax_as_one_plain_argument(commands, xenstore_tree):
    value = "$(reboot); rm -rf / `id` | cat"
    _call("write_record", dom_id=5, path="data/v", value=value)
    assert commands.calls[0][-1] == value
    assert xenstore_tree.nodes["/local/domain/5/data/v"] == value


def test_list_records_returns_every_node_below_the_path(xenstore_tree):
    xenstore_tree.write("/local/domain/5/vm-data/net/eth0", "a")
    xenstore_tree.write("/local/domain/5/vm-data/net/eth1", "b")
    xenstore_tree.write("/local/domain/5/vm-data/user", "c")
    assert _call("list_records", dom_id=5, path="vm-data") == {
        "net": "", "net/eth0": "a", "net/eth1": "b", "user": "c"}


def test_list_records_of_the_domain_itself_takes_an_empty_path(xenstore_tree):
    assert _call("list_records", dom_id=5) == {"name": "guest-5"}


def test_list_records_of_a_missing_path_is_empty(xenstore_tree):
    assert _call("list_records", dom_id=5, path="nothing/here") == {}


def test_list_records_refuses_unparsable_xenstore_ls_output(commands, xenstore_tree, failure):
    commands.on("xenstore-ls", stdout="garbage without the separator\n")
    with pytest.raises(failure) as info:
        _call("list_records", dom_id=5, path="data")
    assert info.value.params[0] == CODES.BAD_DATA


def test_list_records_stops_past_its_entry_limit(commands, xenstore_tree, failure):
    commands.on("xenstore-ls", stdout="".join(f"k{i} = \"v\"\n" for i in range(1001)))
    with pytest.raises(failure) as info:
        _call("list_records", dom_id=5, path="data")
    assert info.value.params == [CODES.TOO_LARGE, "xenstore listing", "1000 entries"]
    assert commands.programs() == ["xenstore-ls"]


def test_delete_record_removes_the_node_and_its_children(xenstore_tree):
    xenstore_tree.write("/local/domain/5/data/a/b", "1")
    assert _call("delete_record", dom_id=5, path="data/a") is None
    assert not any(node.startswith("/local/domain/5/data/a") for node in xenstore_tree.nodes)


def test_delete_record_of_a_missing_path_succeeds(xenstore_tree):
    assert _call("delete_record", dom_id=5, path="data/never") is None


def test_delete_record_reports_a_node_that_would_not_go(commands, xenstore_tree, failure):
    xenstore_tree.write("/local/domain/5/data/stuck", "1")
    commands.on("xenstore-rm", returncode=1, stderr="permission denied")
    with pytest.raises(failure) as info:
        _call("delete_record", dom_id=5, path="data/stuck")
    assert info.value.params == [CODES.COMMAND_FAILED, "xenstore-rm", "1", "permission denied"]


def test_missing_xenstore_tools_are_command_missing(commands, failure):
    with pytest.raises(failure) as info:
        _call("read_record", dom_id=5, path="data/x")
    assert info.value.params == [CODES.COMMAND_MISSING, "xenstore-read"]


# -- os-xenapi 0.3.4's plain arguments (Nova's host_xenstore and vmops calls) -----------------
# The answers are 0.3.4's text: a stored value that is JSON text as it is (stripped), any other
# value as a JSON string, a missing node '"None"'.

def _plain(function, **args):
    return harness.call_plain("xenstore", function, args)


@pytest.mark.parametrize("stored,answer", [
    ('{"name": "version", "value": "1.0"}', '{"name": "version", "value": "1.0"}'),
    ("web-1", '"web-1"'),
    ("  42 ", "42"),
    ('"quoted"', '"quoted"'),
    ("", '""'),
], ids=["json-object", "bare-text", "padded-number", "json-string", "empty"])
def test_plain_read_record_answers_0_3_4s_json_text(xenstore_tree, stored, answer):
    xenstore_tree.write("/local/domain/5/vm-data/x", stored)
    assert _plain("read_record", dom_id="5", path="vm-data/x") == answer


def test_plain_read_record_of_a_missing_path_is_the_string_none_nova_compares_with(
        xenstore_tree):
    text = _plain("read_record", dom_id="5", path="data/PVAddons/MajorVersion",
                  ignore_missing_path="True")
    assert text == '"None"'


def test_plain_read_record_of_a_missing_path_without_ignoring_is_not_found(xenstore_tree,
                                                                          failure):
    with pytest.raises(failure) as info:
        _plain("read_record", dom_id="5", path="data/none", ignore_missing_path="False")
    assert info.value.params[0] == CODES.NOT_FOUND


def test_plain_write_record_answers_the_value_as_json_text(xenstore_tree):
    assert _plain("write_record", dom_id="5", path="vm-data/a", value="v") == '"v"'
    assert _plain("write_record", dom_id="5", path="vm-data/b", value='{"k": 1}') == '{"k": 1}'
    assert xenstore_tree.nodes["/local/domain/5/vm-data/a"] == "v"
    assert xenstore_tree.nodes["/local/domain/5/vm-data/b"] == '{"k": 1}'


def test_plain_list_records_decodes_the_json_values_as_0_3_4_did(xenstore_tree):
    xenstore_tree.write("/local/domain/5/vm-data/networking/mac1", '{"ip": "10.0.0.2"}')
    xenstore_tree.write("/local/domain/5/vm-data/hostname", "web-1")
    text = _plain("list_records", dom_id="5", path="vm-data")
    assert json.loads(text) == {"networking": "", "networking/mac1": {"ip": "10.0.0.2"},
                                "hostname": "web-1"}


def test_plain_delete_record_answers_an_empty_json_string(xenstore_tree):
    xenstore_tree.write("/local/domain/5/vm-data/x", "1")
    assert _plain("delete_record", dom_id="5", path="vm-data/x") == '""'
    assert "/local/domain/5/vm-data/x" not in xenstore_tree.nodes
    assert _plain("delete_record", dom_id="5", path="vm-data/x") == '""'


@pytest.mark.parametrize("function,args,argument", [
    ("read_record", {"dom_id": "5", "path": "../0/vm-data"}, "path"),
    ("read_record", {"dom_id": "0", "path": "name"}, "dom_id"),
    ("write_record", {"dom_id": "5", "path": "data/x", "value": "a\nb"}, "value"),
    ("read_record", {"dom_id": "5", "path": "name", "ignore_missing_path": "maybe"},
     "ignore_missing_path"),
    ("list_records", {"dom_id": "5", "path": "x", "extra": "1"}, "extra"),
    ("delete_record", {"dom_id": "5"}, "path"),
], ids=["traversal", "dom0", "newline", "not-a-boolean", "unknown-key", "missing"])
def test_plain_arguments_are_refused_as_json_ones_are(xenstore_tree, commands, failure,
                                                      function, args, argument):
    with pytest.raises(failure) as info:
        _plain(function, **args)
    assert info.value.params[:3] == [CODES.INVALID_ARGUMENT, "xenstore." + function, argument]
    assert commands.calls == []
