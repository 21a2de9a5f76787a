"""Spec §4 — expressions, one test per rule.

``outcome(expr, **context)`` is the result of ``permit * on * when EXPR`` for a
request whose context holds ``context``: True (allow), False (deny) or the code of
the evaluation error. It checks on the way that the compiled engine agrees with
itself when literals are folded at compile time or read at run time, and with a
reference evaluator that walks the tree.
"""


import pytest

from engine_support import errors_of, make_set, outcome, req, run
from pdp.engine import runtime
from pdp.lang import ast
from tests.complexity import assert_linear, calls_to


# --------------------------------------------------------------------------- literals

def test_string_literals_use_json_escapes():
    assert outcome(r'"a\"b\\c\n\u00e9" == context.s', s='a"b\\c\né') is True


def test_integer_and_decimal_literals():
    assert outcome("context.n == 42 and context.f == 1.5", n=42, f=1.5) is True
    assert outcome("-3 == context.n", n=-3) is True


def test_true_false_null_literals():
    assert outcome("context.t == true and context.f == false and context.z == null",
                   t=True, f=False, z=None) is True


def test_list_literal_with_trailing_comma_and_paths():
    assert outcome('[1, "a", context.x,] == [1, "a", 2]', x=2) is True


# --------------------------------------------------------------------------- paths

def test_path_dots_select_object_keys():
    assert outcome('context.owner.team == "red"', owner={"team": "red"}) is True


def test_path_brackets_for_keys_that_are_not_bare_words():
    assert outcome('context["https://acme.example/roles"] == ["x"]',
                   **{"https://acme.example/roles": ["x"]}) is True


def test_path_integer_index_and_negative_index_from_the_end():
    assert outcome('context.tags[0] == "a" and context.tags[-1] == "c"', tags=["a", "b", "c"]) is True


def test_path_computed_lookup():
    data = {"users": {"alice": {"roles": ["admin"]}}}
    assert outcome('"admin" in data.users[context.who].roles', data, who="alice") is True


def test_path_missing_key_is_missing_attribute():
    assert outcome("context.nope == 1") == "missing_attribute"


def test_path_missing_key_message_names_the_prefix():
    ps = make_set('policy "doc-owner-edit" {\n  permit * on *\n  when resource.owner.team == "x"\n}',
                  file="docs.policy")
    assert errors_of(ps, req()) == [("missing_attribute", "doc-owner-edit: resource has no attribute 'owner'",
                                     "doc-owner-edit", "docs.policy:3:8")]
    assert errors_of(ps, req(attributes={"owner": {}}))[0][1] == \
        "doc-owner-edit: resource.owner has no attribute 'team'"


def test_path_index_past_the_end_is_invalid_index():
    assert outcome("context.tags[5] == 1", tags=[1]) == "invalid_index"
    assert outcome("context.tags[-2] == 1", tags=[1]) == "invalid_index"


def test_path_string_key_on_a_list_is_type_mismatch():
    assert outcome('context.tags["a"] == 1', tags=[1]) == "type_mismatch"


def test_path_integer_index_on_an_object_is_type_mismatch():
    assert outcome("context.obj[0] == 1", obj={"0": 1}) == "type_mismatch"


def test_path_integer_index_on_a_string_is_type_mismatch():
    assert outcome("context.s[0] == 1", s="abc") == "type_mismatch"


def test_path_bool_or_float_or_null_index_is_invalid_index():
    assert outcome("context.tags[true] == 1", tags=[1, 1]) == "invalid_index"
    assert outcome("context.tags[0.0] == 1", tags=[1]) == "invalid_index"
    assert outcome("context.tags[null] == 1", tags=[1]) == "invalid_index"


def test_path_stepping_into_null_or_a_number_is_type_mismatch():
    assert outcome("context.x.y == 1", x=None) == "type_mismatch"
    assert outcome("context.x.y == 1", x=3) == "type_mismatch"


def test_path_error_messages_say_what_was_found():
    ps = make_set('policy "p" {\n  permit * on *\n  when context.tags["a"] == 1\n}')
    assert errors_of(ps, req(context={"tags": [1]}))[0][1] == \
        "p: context.tags is a list, not an object: cannot read attribute 'a'"
    ps = make_set('policy "p" {\n  permit * on *\n  when context.tags[3] == 1\n}')
    assert errors_of(ps, req(context={"tags": [1]}))[0][1] == "p: context.tags has no index 3 (length 1)"


def test_path_on_reference_data():
    data = {"org": {"teams": {"red": ["alice"]}}}
    assert outcome('"alice" in data.org.teams.red', data) is True
    assert outcome('data.org.nope == 1', data) == "missing_attribute"


# --------------------------------------------------------------------------- and / or

def test_and_or_short_circuit_left_to_right():
    assert outcome("has(resource.owner) and resource.owner == subject.sub") is False
    assert outcome("true or context.missing") is True
    assert outcome("false and context.missing") is False


def test_and_or_operands_must_be_booleans():
    assert outcome("context.x and true", x=1) == "not_boolean"
    assert outcome('false or context.x', x="yes") == "not_boolean"
    assert outcome("true and 1") == "not_boolean"


def test_and_binds_tighter_than_or():
    assert outcome("true or false and false") is True
    assert outcome("(true or false) and false") is False


def test_not_needs_a_boolean():
    assert outcome("not context.x", x=False) is True
    assert outcome("not context.x", x=None) == "not_boolean"
    assert outcome("not context.x == 1", x=2) is True


# --------------------------------------------------------------------------- ==

def test_eq_numbers_by_value():
    assert outcome("1 == 1.0") is True
    assert outcome("context.a == context.b", a=1, b=1.0) is True


def test_eq_by_type_string_is_not_number():
    assert outcome('"1" == 1') is False


def test_eq_booleans_are_not_numbers():
    assert outcome("true == 1") is False
    assert outcome("context.a == 1", a=True) is False
    assert outcome("context.a == 0.0", a=False) is False
    assert outcome("context.a == context.b", a=1, b=True) is False


def test_eq_lists_and_objects_compare_structurally():
    assert outcome("context.a == context.b", a=[1, {"x": [2]}], b=[1.0, {"x": [2]}]) is True
    assert outcome("context.a == context.b", a=[1], b=[True]) is False
    assert outcome("context.a == context.b", a={"x": True}, b={"x": 1}) is False
    assert outcome("context.a == context.b", a={"x": 1}, b={"x": 1, "y": 2}) is False


def test_eq_against_literal_lists_and_reference_data():
    assert outcome("context.a == [1, [0]]", a=[True, [False]]) is False
    assert outcome("context.a == [1, [0]]", a=[1.0, [0]]) is True
    assert outcome("context.a == data.o", {"o": {"k": 1}}, a={"k": True}) is False
    assert outcome("context.a != data.o", {"o": {"k": [0]}}, a={"k": [0.0]}) is False


def test_eq_null():
    assert outcome("context.a == null", a=None) is True
    assert outcome("context.a == null", a=0) is False


def test_eq_derived_values():
    assert outcome('time("2026-01-01T01:00:00+01:00") == time("2026-01-01T00:00:00Z")') is True
    assert outcome('duration("90s") == duration("1m30s")') is True
    assert outcome('ip("10.0.0.1") == ip(context.a)', a="10.0.0.1") is True
    assert outcome('ip("::1") == ip("0.0.0.1")') is False
    assert outcome('duration("1s") == 1') is False


def test_eq_is_never_an_error():
    assert outcome("context.a == context.b", a=[1], b={"x": 1}) is False
    assert outcome("context.a != context.b", a="x", b=None) is True


def test_ne_is_the_negation_of_eq():
    assert outcome("true != 1") is True
    assert outcome("1 != 1.0") is False


# --------------------------------------------------------------------------- ordering

def test_order_numbers():
    assert outcome("context.a < 2.5 and 3 >= context.a and 1 <= 1.0", a=2) is True


def test_order_strings_by_code_point():
    assert outcome('"B" < "a" and "a" < "b" and "é" > "z"') is True


def test_order_timestamps_and_durations():
    assert outcome('context.time > time("2026-01-01T00:00:00Z")') is True
    assert outcome('duration("1h") > duration("59m")') is True


def test_order_mixed_types_is_type_mismatch():
    assert outcome('context.a < 1', a="1") == "type_mismatch"
    assert outcome('context.a < 1', a=True) == "type_mismatch"
    assert outcome('context.a > context.b', a=[1], b=[0]) == "type_mismatch"
    assert outcome('context.time > 1') == "type_mismatch"
    assert outcome('duration("1h") > context.time') == "type_mismatch"


# --------------------------------------------------------------------------- in

def test_in_is_membership_by_eq():
    assert outcome('"admin" in context.roles', roles=["user", "admin"]) is True
    assert outcome("1 in context.xs", xs=[1.0]) is True
    assert outcome("context.x in [[1], [2]]", x=[2]) is True


def test_in_does_not_confuse_booleans_and_numbers():
    assert outcome("1 in context.xs", xs=[True]) is False
    assert outcome("context.x in [1, 0]", x=True) is False
    assert outcome("context.x in context.xs", x=[1], xs=[[True]]) is False


def test_in_right_side_must_be_a_list():
    assert outcome('"a" in context.s', s="abc") == "type_mismatch"
    assert outcome('"a" in context.o', o={"a": 1}) == "type_mismatch"


def test_not_in():
    assert outcome('"x" not in context.xs', xs=["a"]) is True
    assert outcome('"a" not in context.xs', xs=["a"]) is False
    assert outcome('"a" not in context.s', s="a") == "type_mismatch"


def test_in_with_a_literal_list_of_strings():
    assert outcome('context.c in ["public", "internal"]', c="internal") is True
    assert outcome('context.c in ["public", "internal"]', c=["public"]) is False
    assert outcome('context.c in ["public", "internal"]', c=None) is False


# --------------------------------------------------------------------------- like

@pytest.mark.parametrize("s,pattern,expected", [
    ("documents/2026/a.pdf", "documents/*", True),
    ("documents/", "documents/*", True),          # * matches the empty run
    ("a/b/c", "a*c", True),                         # * crosses '/'
    ("abc", "abc", True),
    ("abcd", "abc", False),                         # whole-string match
    ("xabc", "abc", False),
    ("a*b", r"a\*b", True),                         # \* is a literal star
    ("axb", r"a\*b", False),
    ("ab", "a*b*", True),
    ("aXbYc", "a*b*c", True),
    ("acb", "a*b*c", False),
    ("", "*", True),
    ("", "", True),
    ("x", "", False),
    ("a.b", "a.b", True),                           # no other special characters
    ("a?b", "a?b", True),
    ("aab", "a*ab", True),
    (r"a\b", r"a\b", True),                         # a backslash before anything else is itself
])
def test_like_glob(s, pattern, expected):
    assert outcome(f"context.s like {ast_string(pattern)}", s=s) is expected


def ast_string(s: str) -> str:
    import json
    return json.dumps(s)


def test_like_left_side_must_be_a_string():
    assert outcome('context.s like "a*"', s=1) == "type_mismatch"
    assert outcome('context.s like "a"', s=None) == "type_mismatch"


def test_like_answers_a_pattern_that_makes_backtracking_matchers_explode():
    s = "a" * 100_000
    pattern = "*a" * 2000 + "*b"
    ps = make_set('policy "p" {\n  permit * on *\n  when context.s like ' + ast_string(pattern) + "\n}")
    d = ps.decide(req(context={"s": s}))
    assert d.decision == "deny" and not d.errors


def test_like_scans_the_string_forward_once():
    # Linear time (spec §4): one forward search per segment between stars, never a
    # step back, so the work is bounded by the string's length, whatever the pattern.
    s = "ab" * 50_000 + "c"
    segments = runtime.like_segments("*a" * 2000 + "*c")
    assert calls_to(lambda: runtime.like(s, segments, None), "find") <= len(segments)
    assert runtime.like(s, segments, None) is True

    def prepare(n):
        text, segs = "a" * n, runtime.like_segments("*a" * (n // 50) + "*b")
        return lambda: runtime.like(text, segs, None)
    assert_linear(prepare, 20_000)


# --------------------------------------------------------------------------- has

def test_has_true_when_every_step_exists():
    assert outcome("has(context.a.b[1])", a={"b": [0, 1]}) is True


def test_has_false_for_missing_key_null_on_the_way_or_index_past_end():
    assert outcome("has(context.a.c)", a={"b": 1}) is False
    assert outcome("has(context.a.b)", a=None) is False
    assert outcome("has(context.a[2])", a=[1, 2]) is False
    assert outcome("has(context.a[0])", a="ab") is False
    assert outcome("has(context.a[-3])", a=[1, 2]) is False
    assert outcome("has(context.a[-2]) and has(context.a[1])", a=[1, 2]) is True


def test_has_is_true_for_a_key_whose_value_is_null():
    assert outcome("has(context.a)", a=None) is True


def test_has_is_never_an_error():
    assert outcome("has(context.a[context.missing])", a={"x": 1}) is False
    assert outcome("has(context.a[context.k])", a={"x": 1}, k=[1]) is False
    assert outcome("has(context.a[context.k])", a={"x": 1}, k="x") is True
    assert outcome("has(data.users[context.k].roles)", {"users": {"x": {"roles": []}}}, k="x") is True


def test_has_guards_an_unless():
    ps = make_set('policy "p" {\n  permit * on *\n  when has(resource.archived)\n  unless resource.archived\n}')
    assert ps.decide(req()).errors == []
    assert ps.decide(req(attributes={"archived": False})).decision == "allow"


# --------------------------------------------------------------------------- + and -

def test_arith_numbers():
    assert outcome("context.a + 2 == 5 and context.a - 0.5 == 2.5", a=3) is True


def test_arith_timestamp_plus_minus_duration():
    assert outcome('time("2026-01-01T00:00:00Z") + duration("1h") == time("2026-01-01T01:00:00Z")') is True
    assert outcome('context.time - duration("1d") < context.time') is True


def test_arith_timestamp_minus_timestamp_is_a_duration():
    assert outcome('context.time - time("2026-03-02T09:00:00Z") == duration("1h")') is True


@pytest.mark.parametrize("expr", [
    '"a" + "b" == "ab"',                                 # no string concatenation
    'duration("1h") + duration("1h") == duration("2h")', # no duration arithmetic
    'duration("1h") + context.time == context.time',     # duration first
    "context.b + 1 == 2",                                # booleans are not numbers
    "context.l + [1] == [1]",
    'context.time + 1 == context.time',
])
def test_arith_anything_else_is_type_mismatch(expr):
    assert outcome(expr, b=True, l=[]) == "type_mismatch"


def test_arith_result_out_of_range_is_invalid_argument():
    assert outcome('time("9999-12-31T00:00:00Z") + duration("2d") > context.time') == "invalid_argument"


def test_unary_minus_numbers_only():
    assert outcome("-context.a == -2", a=2) is True
    assert outcome("-context.a == 1", a="1") == "type_mismatch"
    assert outcome("-context.a == 1", a=True) == "type_mismatch"


# --------------------------------------------------------------------------- precedence

def test_precedence_from_or_down_to_unary_minus():
    assert outcome("not 1 + 2 == 3 or false and true") is False       # (not ((1 + 2) == 3)) or (false and true)
    assert outcome("-context.a + 3 == 1", a=2) is True                  # (-a) + 3
    assert outcome("1 - 2 - 3 == -4") is True                           # left to right
    assert outcome("not context.f and context.f", f=False) is False     # (not f) and f


# --------------------------------------------------------------------------- conditions

def test_a_condition_that_is_not_boolean_is_an_error():
    assert run("context.owner", owner="alice") == "not_boolean"
    assert run("context.n", n=1) == "not_boolean"
    assert run(ast.Literal("yes")) == "not_boolean"


def test_condition_error_message_quotes_the_expression():
    ps = make_set('policy "p" {\n  permit * on *\n  when resource.owner\n}')
    assert errors_of(ps, req(attributes={"owner": "alice"})) == [
        ("not_boolean", "p: resource.owner: expected true or false, got string", "p", "test.policy:3:8")]
