"""dom0lib.validate: the declarative argument types every plugin argument is checked with.

Plugin files are imported in-process with a stand-in XenAPIPlugin (stubs/XenAPIPlugin.py)
put into sys.modules only while they load (see harness.py); XenAPI is the official SDK.
"""

import pytest

from . import harness

V = harness.dom0lib().validate


def _reason(rule, value):
    with pytest.raises(V.Invalid) as info:
        rule.check(value)
    return str(info.value)


def test_str_accepts_a_matching_string():
    assert V.Str(10, r"[a-z]+").check("abc") == "abc"


def test_str_refuses_a_non_string():
    assert _reason(V.Str(10), 5) == "must be a string, got integer"


def test_str_refuses_an_oversized_string_without_echoing_it():
    reason = _reason(V.Str(4), "secret")
    assert reason == "must be at most 4 characters, got 6" and "secret" not in reason


def test_str_pattern_must_match_the_whole_string():
    assert _reason(V.Str(20, r"[a-z]+", what="letters"), "abc; rm -rf /") == "must be letters"


def test_str_without_pattern_refuses_control_characters():
    assert "control character" in _reason(V.Str(20), "line\nbreak")


def test_multiline_str_accepts_newlines_and_tabs():
    assert V.Str(20, multiline=True).check("a\n\tb") == "a\n\tb"


def test_int_accepts_decimal_strings_as_xapi_sends_domids():
    assert V.Int(1, 10).check("7") == 7


def test_int_refuses_booleans():
    assert _reason(V.Int(0, 1), True) == "must be an integer, got boolean"


def test_int_refuses_out_of_range_values():
    assert _reason(V.Int(1, 10), 11) == "must be between 1 and 10, got 11"


def test_int_refuses_non_decimal_strings():
    assert _reason(V.Int(1, 10), "0x5") == "must be an integer, got string"


@pytest.mark.parametrize("value,expected", [(True, True), (False, False), ("True", True),
                                            ("false", False), ("FALSE", False)])
def test_bool_reads_false_strings_as_false(value, expected):
    assert V.Bool().check(value) is expected


def test_bool_refuses_other_strings():
    assert _reason(V.Bool(), "yes") == "must be true or false, got string"


def test_choice_refuses_values_outside_the_set():
    assert _reason(V.Choice("up", "down"), "sideways") == "must be one of up, down"


def test_list_checks_each_item_and_names_the_bad_one():
    assert _reason(V.List(V.Int(0, 5), 3), [1, 9]) == "item 1 must be between 0 and 5, got 9"


def test_list_refuses_too_many_items():
    assert _reason(V.List(V.Int(0, 5), 2), [1, 2, 3]) == "must have between 0 and 2 items, got 3"


def test_struct_refuses_unknown_keys():
    assert _reason(V.Struct({"a": V.Bool()}), {"a": True, "b": 1}).startswith(
        "has unknown keys: b")


def test_struct_requires_its_keys():
    assert _reason(V.Struct({"a": V.Bool()}), {}) == "lacks the required key a"


def test_struct_leaves_out_missing_optional_keys():
    assert V.Struct({"a": V.Bool()}, optional=("a",)).check({}) == {}


def test_scalar_refuses_nested_values():
    assert _reason(V.Scalar(10), [1]) == (
        "must be null, a boolean, a number or a string, got array")


def test_base64_refuses_text_that_is_not_base64():
    assert "standard base64" in _reason(V.Base64(100), "not base64!")


def test_base64_refuses_bad_padding():
    assert "standard base64" in _reason(V.Base64(100), "abc")


def test_dom_id_refuses_dom0():
    assert _reason(V.DOM_ID, 0) == "must be between 1 and 32751, got 0"


def test_xenstore_path_refuses_parent_references():
    assert "relative xenstore path" in _reason(V.XS_PATH, "../1/data")


def test_xenstore_path_refuses_absolute_paths():
    assert "relative xenstore path" in _reason(V.XS_PATH, "/local/domain/0")


def test_interface_name_refuses_a_leading_dash():
    assert "not starting with -" in _reason(V.IFNAME, "-evil")


def test_pci_address_accepts_a_short_form():
    assert V.PCI_ADDRESS.check("04:00.1") == "04:00.1"
