"""Tests for the simulator's get_all_records_where expression language (simulator/where.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from os_xenapi.simulator.values import DateTime, Int32
from os_xenapi.simulator.where import (
    LEXING_ERROR_REASON,
    PARSE_ERROR_REASON,
    UnknownField,
    Where,
    WhereSyntaxError,
    db_string,
    parse_where,
)

HOST = "OpaqueRef:0b1c2d3e-0000-4000-8000-000000000001"
OTHER_HOST = "OpaqueRef:0b1c2d3e-0000-4000-8000-000000000002"
DOM0 = {
    "is_control_domain": "true",
    "resident_on": HOST,
    "uuid": "u-1",
    "name__label": "Control domain",
}


def matches(expr: str, row: dict[str, str] | None = None) -> bool:
    return parse_where(expr).matches((row or {}).__getitem__)


def syntax_error(expr: str) -> WhereSyntaxError:
    with pytest.raises(WhereSyntaxError) as info:
        parse_where(expr)
    return info.value


# --- the examples in PROTOCOL.md 1.9 ----------------------------------------------------------


def test_dom0_lookup_matches_control_domain_resident_on_host():
    expr = f'field "is_control_domain"="true" and field "resident_on"="{HOST}"'
    assert matches(expr, DOM0)


def test_dom0_lookup_rejects_control_domain_on_another_host():
    expr = f'field "is_control_domain"="true" and field "resident_on"="{OTHER_HOST}"'
    assert not matches(expr, DOM0)


def test_dom0_lookup_rejects_guest_on_host():
    expr = f'field "is_control_domain"="true" and field "resident_on"="{HOST}"'
    assert not matches(expr, {**DOM0, "is_control_domain": "false"})


def test_pif_ip_lookup_compares_the_address_text():
    assert matches('field "IP"="10.0.0.1"', {"IP": "10.0.0.1"})
    assert not matches('field "IP"="10.0.0.1"', {"IP": "10.0.0.10"})


def test_uuid_or_name_label_matches_on_either_column():
    expr = '(field "uuid"="X") or (field "name__label"="X")'
    assert matches(expr, {"uuid": "X", "name__label": "vm"})
    assert matches(expr, {"uuid": "u", "name__label": "X"})
    assert not matches(expr, {"uuid": "u", "name__label": "vm"})


# --- precedence and associativity -------------------------------------------------------------


def test_or_then_and_groups_to_the_left():
    # ((T or F) and F) = F; "and binds tighter" would give T or (F and F) = T.
    assert not matches('"a"="a" or "a"="b" and "a"="b"')


def test_and_then_or_groups_to_the_left():
    # ((F and F) or T) = T; "or binds tighter" would give F and (F or T) = F.
    assert matches('"a"="b" and "a"="b" or "a"="a"')


def test_not_takes_the_whole_rest_of_the_expression():
    # XAPI: not (F and F) = T. A tight "not" would give (not F) and F = F.
    assert matches('not "a"="b" and "a"="b"')


def test_not_in_a_right_operand_takes_the_following_or():
    # T and not (T or T) = F. A tight "not" would give ((T and F) or T) = T.
    assert not matches('"a"="a" and not "a"="a" or "a"="a"')


def test_not_stops_at_the_closing_parenthesis():
    assert not matches('(not "a"="b") and "a"="b"')


def test_not_not_is_identity():
    assert matches('not not "a"="a"')
    assert not matches('not not "a"="b"')


def test_parentheses_override_grouping():
    assert matches('"a"="a" or ("a"="b" and "a"="b")')


# --- atoms ------------------------------------------------------------------------------------


def test_true_matches_any_row():
    assert matches("true", {"x": "1"})


def test_false_matches_no_row():
    assert not matches("false", {"x": "1"})


def test_quoted_true_is_a_literal_not_the_keyword():
    assert matches('"true"="true"')
    assert not matches('"true"="false"')


def test_literal_equals_literal_compares_the_texts():
    assert matches('"abc"="abc"')
    assert not matches('"abc"="abd"')


def test_literal_may_stand_left_of_field():
    assert matches('"Running"=field "power_state"', {"power_state": "Running"})


def test_field_may_be_compared_with_field():
    assert matches('field "a"=field "b"', {"a": "v", "b": "v"})
    assert not matches('field "a"=field "b"', {"a": "v", "b": "w"})


def test_comparison_is_case_sensitive():
    assert not matches('field "power_state"="running"', {"power_state": "Running"})


def test_empty_literal_matches_empty_column():
    assert matches('field "name__description"=""', {"name__description": ""})


def test_literal_may_hold_spaces_keywords_and_single_quotes():
    assert matches('field "n"="not a and \'b\' or (c)"', {"n": "not a and 'b' or (c)"})


# --- lexing -----------------------------------------------------------------------------------


def test_tabs_newlines_and_spaces_are_whitespace():
    assert matches('\n\tfield  "a"\t=\n"1"   and\ttrue \n', {"a": "1"})


def test_tokens_need_no_separating_whitespace():
    assert matches('field"a"="1"and"x"="x"ornot"y"="y"', {"a": "1"})


def test_keywords_need_no_word_boundary():
    assert matches("nottrueandfalse")  # not (true and false)


def test_carriage_return_is_not_whitespace():
    err = syntax_error('"a"="a"\r\n')
    assert (err.position, err.reason) == (7, LEXING_ERROR_REASON)


def test_keywords_are_lower_case_only():
    assert syntax_error('"a"="a" AND "b"="b"').position == 8


# --- syntax errors ----------------------------------------------------------------------------


def test_unterminated_string_is_a_lexing_error_at_its_quote():
    err = syntax_error('field "name__label"="abc')
    assert (err.position, err.reason) == (20, LEXING_ERROR_REASON)
    assert "unterminated string" in str(err)


def test_dangling_and_is_a_parse_error_at_the_end():
    err = syntax_error('"a"="a" and')
    assert (err.position, err.reason) == (11, PARSE_ERROR_REASON)
    assert "end of expression" in str(err)


def test_unclosed_parenthesis_is_a_parse_error():
    err = syntax_error('("a"="a"')
    assert (err.position, err.reason) == (8, PARSE_ERROR_REASON)


def test_unopened_parenthesis_is_a_parse_error():
    err = syntax_error('"a"="a")')
    assert (err.position, err.reason) == (7, PARSE_ERROR_REASON)


def test_unknown_character_is_a_lexing_error():
    err = syntax_error('field "a"!="b"')
    assert (err.position, err.reason) == (9, LEXING_ERROR_REASON)
    assert "'!'" in str(err)


def test_parse_error_before_a_bad_character_wins():
    # XAPI's lexer runs on demand, so the earlier parse error is the one reported.
    err = syntax_error('"a" and "b" $')
    assert (err.position, err.reason) == (4, PARSE_ERROR_REASON)


def test_empty_expression_is_a_parse_error():
    assert syntax_error("").reason == PARSE_ERROR_REASON
    assert syntax_error("  ").position == 2


def test_bare_string_without_comparison_is_a_parse_error():
    assert syntax_error('"a"').position == 3


def test_field_without_quoted_name_is_a_parse_error():
    assert syntax_error('field = "a"').position == 6


def test_keyword_cannot_be_compared():
    assert syntax_error('true="true"').position == 4


def test_syntax_error_is_a_value_error_with_xapi_description():
    err = syntax_error('"a"=')
    assert isinstance(err, ValueError)
    assert err.error_description == ["INVALID_VALUE", '"a"=', PARSE_ERROR_REASON]


# --- columns, caching, unknown fields ---------------------------------------------------------


def test_columns_lists_every_field_read():
    where = parse_where('field "a"="1" or not (field "b"=field "c") and false')
    assert where.columns == frozenset({"a", "b", "c"})


def test_columns_is_empty_without_fields():
    assert parse_where('"a"="a" and true').columns == frozenset()


def test_parse_where_reuses_the_parsed_expression():
    expr = 'field "uuid"="cache-me"'
    assert parse_where(expr) is parse_where(expr)
    assert isinstance(parse_where(expr), Where)


def test_unknown_field_fails_with_its_column_name():
    with pytest.raises(UnknownField) as info:
        matches('field "nope"="x"', {"a": "1"})
    assert info.value.column == "nope"
    assert info.value.error_description == ["INTERNAL_ERROR", "missing field", "nope", ""]


def test_unknown_field_is_a_key_error():
    with pytest.raises(KeyError):
        matches('field "nope"="x"', {})


def test_unknown_field_not_reached_is_never_looked_up():
    assert not matches('false and field "nope"="x"', {})
    assert matches('"a"="a" or field "nope"="x"', {})


def test_unknown_field_after_a_false_constant_is_still_looked_up():
    with pytest.raises(UnknownField):
        matches('field "nope"="x" and false', {})


def test_field_against_field_reads_the_right_hand_side_first():
    # OCaml evaluates the arguments of Db_filter's compare right to left.
    with pytest.raises(UnknownField) as info:
        matches('field "left"=field "right"', {})
    assert info.value.column == "right"


# --- db_string ---------------------------------------------------------------------------------


def test_db_string_of_bools_is_lower_case():
    assert (db_string(True), db_string(False)) == ("true", "false")


def test_db_string_of_ints_is_decimal():
    assert (db_string(0), db_string(-42), db_string(2**63 - 1)) == (
        "0",
        "-42",
        "9223372036854775807",
    )


def test_db_string_of_int32_is_plain_decimal():
    assert db_string(Int32(7)) == "7"


def test_db_string_of_floats_uses_eighteen_significant_digits():
    assert db_string(0.1) == "0.100000000000000006"
    assert db_string(1.0) == "1"
    assert db_string(-2.5) == "-2.5"
    assert db_string(1e20) == "1e+20"


def test_db_string_of_strings_refs_and_datetimes_is_the_text():
    assert db_string(HOST) == HOST
    assert db_string("Running") == "Running"
    assert db_string(DateTime("20240102T03:04:05Z")) == "20240102T03:04:05Z"
    assert type(db_string(DateTime("20240102T03:04:05Z"))) is str


def test_db_string_of_empty_set_and_map():
    assert (db_string([]), db_string({})) == ("()", "()")


def test_db_string_of_set_quotes_each_member():
    assert db_string(["a"]) == "('a')"
    assert db_string([HOST, OTHER_HOST]) == f"('{HOST}' '{OTHER_HOST}')"


def test_db_string_of_map_lists_key_value_pairs():
    assert db_string({"k": "v"}) == "(('k' 'v'))"
    assert db_string({"k": "v", "k2": ""}) == "(('k' 'v') ('k2' ''))"


def test_db_string_escapes_quotes_and_backslashes():
    assert db_string(["it's", 'say "hi"', "c:\\dir"]) == "('it\\'s' 'say \\\"hi\\\"' 'c:\\\\dir')"
    assert db_string({"o'k": "v\\"}) == "(('o\\'k' 'v\\\\'))"


def test_db_string_converts_members_first():
    assert db_string({1: 0.5, 2: True}) == "(('1' '0.5') ('2' 'true'))"


def test_db_string_rejects_values_xapi_cannot_store():
    with pytest.raises(TypeError):
        db_string(None)


def test_set_column_matches_its_db_string():
    row = {"tags": db_string(["web", "it's"])}
    assert matches("field \"tags\"=\"('web' 'it\\'s')\"", row)


# --- property: the parser agrees with XAPI's grammar on random trees --------------------------

COLUMNS = ["a", "b", "name__label"]
TEXTS = ["", "x", "y", "true", "and", "not x", "a b", "it's", "back\\slash", "(", "="]
SEPARATORS = ["", " ", "\t", "\n ", "  "]

values = st.one_of(
    st.builds(lambda t: ("lit", t), st.sampled_from(TEXTS)),
    st.builds(lambda c: ("field", c), st.sampled_from(COLUMNS)),
)
leaves = st.one_of(
    st.just(("true",)),
    st.just(("false",)),
    st.builds(lambda a, b: ("eq", a, b), values, values),
)
trees = st.recursive(
    leaves,
    lambda sub: st.one_of(
        st.builds(lambda x: ("not", x), sub),
        st.builds(lambda x: ("paren", x), sub),
        st.builds(lambda op, x, y: (op, x, y), st.sampled_from(["and", "or"]), sub, sub),
    ),
    max_leaves=12,
)
rows = st.fixed_dictionaries({c: st.sampled_from(TEXTS) for c in COLUMNS})


def render_value(value: tuple, sep: str) -> str:
    return f'"{value[1]}"' if value[0] == "lit" else f'field{sep}"{value[1]}"'


def render(node: tuple, tail: bool, sep: str) -> str:
    """Text for ``node``; ``tail`` means nothing of the same chain follows it."""
    kind = node[0]
    if kind in ("true", "false"):
        return kind
    if kind == "eq":
        return f"{render_value(node[1], sep)}{sep}={sep}{render_value(node[2], sep)}"
    if kind == "paren":
        return f"({sep}{render(node[1], True, sep)}{sep})"
    if kind == "not":  # "not" runs to the end of its chain, so guard it unless it is last
        text = f"not{sep}{render(node[1], True, sep)}"
        return text if tail else f"({text})"
    left = render(node[1], False, sep)
    right = node[2]
    if right[0] in ("and", "or"):  # left-associative: a binary right operand needs parentheses
        right_text = f"({render(right, True, sep)})"
    else:
        right_text = render(right, tail, sep)
    return f"{left}{sep}{kind}{sep}{right_text}"


def evaluate(node: tuple, row: dict[str, str]) -> bool:
    kind = node[0]
    if kind in ("true", "false"):
        return kind == "true"
    if kind == "eq":
        a, b = (row[v[1]] if v[0] == "field" else v[1] for v in node[1:])
        return a == b
    if kind == "paren":
        return evaluate(node[1], row)
    if kind == "not":
        return not evaluate(node[1], row)
    left, right = evaluate(node[1], row), evaluate(node[2], row)
    return (left and right) if kind == "and" else (left or right)


def fields_of(node: tuple) -> set[str]:
    if node[0] == "eq":
        return {v[1] for v in node[1:] if v[0] == "field"}
    return set().union(*(fields_of(child) for child in node[1:]))


@given(trees, st.lists(rows, min_size=1, max_size=4), st.sampled_from(SEPARATORS))
def test_random_expressions_evaluate_like_the_tree_they_render(tree, sample_rows, sep):
    where = parse_where(render(tree, True, sep))
    for row in sample_rows:
        assert where.matches(row.__getitem__) is evaluate(tree, row)


@given(trees, st.sampled_from(SEPARATORS))
def test_random_expressions_report_the_columns_they_read(tree, sep):
    assert parse_where(render(tree, True, sep)).columns == fields_of(tree)
