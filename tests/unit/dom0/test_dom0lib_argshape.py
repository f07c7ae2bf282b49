"""dom0lib.argshape: how a command line is matched against an allowed shape."""

import pytest

from . import harness

LIB = harness.dom0lib()
argshape = LIB.argshape
validate = LIB.validate
SLOTS = {"name": validate.Str(8, r"[a-z]+"), "n": validate.Int(1, 9)}


def _shape(text, **kwargs):
    return argshape.Shape(text, SLOTS, **kwargs)


def test_literal_words_must_match_exactly():
    shape = _shape("ip link show")
    assert shape.matches(["ip", "link", "show"])
    assert not shape.matches(["ip", "link", "show", "x"])
    assert not shape.matches(["ip", "link"])


def test_a_slot_takes_one_token_its_type_accepts():
    shape = _shape("ip link show {name}")
    assert shape.matches(["ip", "link", "show", "eth"])
    assert not shape.matches(["ip", "link", "show", "ETH0"])


def test_literal_text_around_a_slot_is_part_of_the_token():
    shape = _shape("x --count={n}")
    assert shape.matches(["x", "--count=3"])
    assert not shape.matches(["x", "--count="])
    assert not shape.matches(["x", "--count=10"])
    assert not shape.matches(["x", "3"])


def test_an_optional_group_may_be_left_out_as_a_whole():
    shape = _shape("ip [-o] link set [dev {name}] up")
    assert shape.matches(["ip", "link", "set", "up"])
    assert shape.matches(["ip", "-o", "link", "set", "dev", "eth", "up"])
    assert not shape.matches(["ip", "link", "set", "dev", "up"])


def test_a_repeated_last_slot_takes_one_to_max_repeat_tokens():
    shape = _shape("set {name}...")
    assert shape.matches(["set", "a"])
    assert shape.matches(["set"] + ["a"] * argshape.MAX_REPEAT)
    assert not shape.matches(["set"])
    assert not shape.matches(["set"] + ["a"] * (argshape.MAX_REPEAT + 1))
    assert not shape.matches(["set", "a", "B"])


@pytest.mark.parametrize("text", ["x {unknown}", "x {name}... y", "x [y", "x y]", "x {a}{n}"])
def test_a_malformed_shape_is_a_programming_error(text):
    with pytest.raises(ValueError):
        _shape(text)


def test_options_accept_known_pairs_in_any_order_each_once():
    shape = argshape.Options("c -D", {"-a": SLOTS["name"], "-n": SLOTS["n"]},
                             required_any=("-a",))
    assert shape.matches(["c", "-D", "-n", "3", "-a", "x"])
    assert not shape.matches(["c", "-D", "-n", "3"])
    assert not shape.matches(["c", "-D", "-a", "x", "-a", "y"])
    assert not shape.matches(["c", "-D", "-a"])
    assert not shape.matches(["c", "-D", "-z", "1", "-a", "x"])


def test_find_returns_the_first_matching_shape():
    shapes = [_shape("a {n}"), _shape("a {name}")]
    assert argshape.find(shapes, ["a", "z"]) is shapes[1]
    assert argshape.find(shapes, ["b"]) is None
