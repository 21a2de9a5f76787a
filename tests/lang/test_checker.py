"""The compile-time checker (spec §2, §4, §6, §7, §8).

Each test is a small policy file and the diagnostics the checker must give for it:
``(code, line, column)`` and, where the wording matters, the message and hint.
"""

from __future__ import annotations

import textwrap

import pytest

from pdp.errors import Diagnostic
from pdp.lang import ast
from pdp.lang.checker import check
from pdp.lang.parser import parse_module
from tests.complexity import assert_linear


def run(*files: str | tuple[str, str], data: dict | None = None) -> list[Diagnostic]:
    """Parse the files (text, or (name, text)) and check them as one policy set."""
    modules, sources = [], {}
    for i, f in enumerate(files):
        name, text = f if isinstance(f, tuple) else (f"p{i}.policy" if i else "a.policy", f)
        text = textwrap.dedent(text)
        module, errors = parse_module(text, name)
        assert errors == [], [str(e) for e in errors]
        modules.append(module)
        sources[name] = text
    return check(modules, data=data, sources=sources)


def where(diags) -> list[tuple[str, int, int]]:
    return [(d.code, d.line, d.column) for d in diags]


def one(diags) -> Diagnostic:
    assert len(diags) == 1, [str(d) for d in diags]
    return diags[0]


def policy(cond: str, *, head: str = "permit read on document", schemas: str = "") -> str:
    """A file: one policy whose `when` is ``cond`` (on line 3), then the schemas (if any)."""
    return f'policy "p" {{\n  {head}\n  when {cond}\n}}\n{schemas}'


# In files built by `policy(...)` the condition starts on line 3, column W.
W = 8

# The schemas most tests check against.
DOC = """
schema resource document {
  owner: string
  classification: string
  archived?: bool
  tags: [string]
  pages: int
  size: float
  created: timestamp
  retention: duration
  origin: ip
  meta: { team: string, level?: int, labels: [string] }
  extra?: { note?: string }
  blob: any
}
schema subject {
  sub: string
  roles: [string]
  department?: string
}
schema context {
  ip?: string
}
"""


def typed(cond: str, head: str = "permit read on document") -> list[Diagnostic]:
    """The diagnostics of a policy whose `when` is ``cond``, checked against DOC."""
    return run(policy(cond, head=head, schemas=DOC))


# ----------------------------------------------------------------------------- clean sets

def test_a_correct_policy_set_has_no_diagnostics():
    assert run(textwrap.dedent("""
        @owner("team-docs")
        policy "doc-owner-edit" {
          permit read, update on document
          when resource.owner == subject.sub and has(resource.archived)
          unless resource.archived
          reason "owners may edit their own documents"
        }
        policy "admins" {
          permit * on *
          when "admin" in subject.roles and has(context.ip) and cidr_contains("10.0.0.0/8", context.ip)
               and hour(context.time, "Europe/Paris") >= 8
               and context.time < time("2030-01-01T00:00:00Z") + duration("1h")
               and data.users[subject.sub].active == true
               and resource.name like "*.pdf"
        }
    """) + DOC, data={"users": {}}) == []


def test_an_empty_policy_set_is_fine():
    assert check([]) == []


# ----------------------------------------------------------------------------- 1 duplicate ids

def test_a_duplicate_policy_id_is_reported_at_the_second_naming_the_first():
    diags = run(
        ("a.policy", 'policy "x" { permit read on doc }\n'),
        ("b.policy", '\n\npolicy "x" {\n  forbid read on doc\n}\n'),
    )
    d = one(diags)
    assert (d.code, d.file, d.line, d.column) == ("duplicate_policy_id", "b.policy", 3, 8)
    assert d.message == 'policy id "x" is already used at a.policy:1:8'
    assert d.source_line == 'policy "x" {'


def test_duplicate_ids_in_one_file_are_reported_in_line_order():
    diags = run('policy "x" { permit read on doc }\npolicy "y" { permit read on doc }\n'
                'policy "x" { permit read on doc }\npolicy "x" { permit read on doc }\n')
    assert where(diags) == [("duplicate_policy_id", 3, 8), ("duplicate_policy_id", 4, 8)]
    assert all("a.policy:1:8" in d.message for d in diags)


def test_the_order_of_modules_does_not_matter_for_which_one_is_reported():
    a = ("a.policy", 'policy "x" { permit read on doc }\n')
    b = ("b.policy", 'policy "x" { permit read on doc }\n')
    assert run(b, a) == run(a, b)
    assert one(run(b, a)).file == "b.policy"


# ----------------------------------------------------------------------------- 2 roots

def test_an_unknown_root_is_reported_with_a_suggestion():
    d = one(run(policy("subjet.sub == \"alice\"")))
    assert (d.code, d.line, d.column) == ("unknown_root", 3, W)
    assert d.message == "unknown name 'subjet'; a path starts with subject, action, resource, context or data"
    assert d.hint == "did you mean 'subject'?"


def test_an_unknown_root_without_a_close_match_has_no_hint():
    d = one(run(policy('user.name == "alice"')))
    assert d.message == "unknown name 'user'; a path starts with subject, action, resource, context or data"
    assert d.hint is None


def test_computed_keys_of_a_path_are_checked_too():
    diags = run(policy("data.users[usr.sub] == 1"))
    assert where(diags) == [("unknown_root", 3, W + 11)]


# ----------------------------------------------------------------------------- 3 functions

def test_an_unknown_function_is_reported_at_its_name_with_a_suggestion():
    d = one(run(policy('lowr(subject.sub) == "a"')))
    assert (d.code, d.line, d.column) == ("unknown_function", 3, W)
    assert d.message == "unknown function 'lowr'"
    assert d.hint == "did you mean 'lower'?"


def test_an_unknown_function_far_from_any_builtin_lists_them():
    d = one(run(policy("frobnicate(subject.sub)")))
    assert d.hint.startswith("built-in functions: cidr_contains, contains,")


def test_arguments_of_an_unknown_function_are_still_checked():
    assert where(run(policy("frob(usr.x)"))) == [("unknown_function", 3, W), ("unknown_root", 3, W + 5)]


@pytest.mark.parametrize("call, message", [
    ('hour(context.time, "UTC", 3)', "hour() takes 1 or 2 arguments, got 3"),
    ("lower()", "lower() takes 1 argument, got 0"),
    ('starts_with("a")', "starts_with() takes 2 arguments, got 1"),
    ("has(resource.a, resource.b)", "has() takes 1 argument, got 2"),
])
def test_a_wrong_number_of_arguments_is_reported_at_the_function_name(call, message):
    d = one(run(policy(call if call.startswith("has") else f"{call} == subject.x")))
    assert (d.code, d.column, d.message) == ("wrong_arity", W, message)


# ----------------------------------------------------------------------------- 4 has

def test_has_needs_a_path():
    d = one(run(policy('has("owner")')))
    assert (d.code, d.line, d.column) == ("has_needs_path", 3, W + 4)
    assert d.message == 'has() takes a path such as resource.owner, not "owner"'


def test_has_of_a_call_is_reported():
    assert where(run(policy("has(lower(subject.sub))"))) == [("has_needs_path", 3, W + 4)]


# ----------------------------------------------------------------------------- 5 like

def test_the_pattern_of_like_must_be_a_literal_string():
    d = one(run(policy("resource.name like subject.pattern")))
    assert (d.code, d.line, d.column) == ("like_pattern_not_literal", 3, W + 19)
    assert d.message == "the pattern of 'like' must be a literal string, such as \"*.pdf\""


def test_a_number_is_not_a_like_pattern():
    assert where(run(policy("resource.name like 5"))) == [("like_pattern_not_literal", 3, W + 19)]


def test_a_literal_pattern_is_fine():
    assert run(policy('resource.name like "*.pdf"')) == []


# ----------------------------------------------------------------------------- 6 clauses

def test_a_second_when_unless_or_reason_is_reported_at_its_keyword():
    diags = run("""\
        policy "p" {
          permit read on doc
          when true
          unless false
          reason "one"
          when false
          unless true
          reason "two"
          reason "three"
        }
    """)
    assert where(diags) == [("repeated_clause", 6, 3), ("repeated_clause", 7, 3),
                            ("repeated_clause", 8, 3), ("repeated_clause", 9, 3)]
    assert diags[0].message == "a policy has at most one 'when' clause; the first is at line 3"
    assert diags[0].hint == "join the conditions with 'and'"
    assert diags[3].message == "a policy has at most one 'reason' clause; the first is at line 5"


# ----------------------------------------------------------------------------- 7 literals

@pytest.mark.parametrize("call, column, message", [
    ('lower(5) == "x"', W + 6, "argument 1 of lower() must be a string, but 5 is an int"),
    ("starts_with(subject.sub, true)", W + 25, "argument 2 of starts_with() must be a string, but true is a bool"),
    ("contains_any(subject.roles, \"admin\")", W + 28,
     'argument 2 of contains_any() must be a list, but "admin" is a string'),
    ("len(5) > 1", W + 4, "argument 1 of len() must be a string or a list or an object, but 5 is an int"),
    ("time(true) < context.time", W + 5, "argument 1 of time() must be a string or a number, but true is a bool"),
    ("hour(context.time, 2) == 3", W + 19, "argument 2 of hour() must be a string, but 2 is an int"),
    ("lower(null) == \"x\"", W + 6, "argument 1 of lower() must be a string, but it is null"),
    ("upper([\"a\"]) == \"A\"", W + 6, 'argument 1 of upper() must be a string, but ["a"] is a list of strings'),
])
def test_a_literal_of_the_wrong_type_is_reported(call, column, message):
    d = one(run(policy(call)))
    assert (d.code, d.line, d.column, d.message) == ("invalid_literal", 3, column, message)


def test_literals_of_the_right_type_are_fine():
    assert run(policy('time(1767225600) < context.time and lower("A") == "a"'
                      ' and cidr_contains("10.0.0.0/8", ip("10.1.2.3"))')) == []


@pytest.mark.parametrize("call, column", [
    ('ip("10.1.2") == ip("10.1.2.3")', W + 3),
    ('time("yesterday") < context.time', W + 5),
    ('duration("5 minutes") < duration("1h")', W + 9),
    ('cidr_contains("10.0.0.0/33", context.ip)', W + 14),
    ('cidr_contains("10.0.0.0/8", "10.0.0")', W + 28),
    ('hour(context.time, "Mars/Olympus") == 3', W + 19),
    ('weekday(context.time, "Mars/Olympus") == 3', W + 22),
    ("time(99999999999999) < context.time", W + 5),
])
def test_a_literal_that_can_never_be_valid_is_reported(call, column):
    pytest.importorskip("pdp.lang.values")
    d = one(run(policy(call)))
    assert (d.code, d.line, d.column) == ("invalid_literal", 3, column)


def test_an_invalid_literal_says_what_is_wrong_in_the_words_of_the_value_parser():
    pytest.importorskip("pdp.lang.values")
    d = one(run(policy('ip("10.1.2") == ip(context.ip)')))
    assert d.message.startswith("invalid ip address '10.1.2': expected an address such as")
    assert d.hint == "ip() would fail with this argument on every request"


def test_valid_literals_pass_validation():
    pytest.importorskip("pdp.lang.values")
    assert run(policy('ip("2001:db8::1") == ip("10.1.2.3") and time("2026-01-31T09:00:00Z") < context.time'
                      ' and duration("1h30m") > duration("90s") and hour(context.time, "Europe/Paris") > 1'
                      ' and cidr_contains("10.0.0.0/8", "10.1.2.3")')) == []


def test_a_non_literal_argument_is_not_validated_without_a_schema():
    assert run(policy("ip(subject.addr) == ip(context.ip) and lower(resource.n) == \"x\"")) == []


# ----------------------------------------------------------------------------- 8 data

def test_unknown_reference_data_lists_what_the_data_files_give():
    d = one(run(policy("subject.sub in data.admin"), data={"users": {}, "networks": [], "admins": []}))
    assert (d.code, d.line, d.column) == ("unknown_data", 3, W + 15)
    assert d.message == "no reference data 'admin'; data files give: users, networks, admins"
    assert d.hint == "did you mean 'admins'?"


def test_unknown_reference_data_in_brackets_is_reported_too():
    assert where(run(policy('data["admins"] == 1'), data={"users": {}})) == [("unknown_data", 3, W)]


def test_reference_data_without_data_files():
    d = one(run(policy("data.users == 1"), data={}))
    assert d.message == "no reference data 'users'; the policy set has no data files"


def test_reference_data_is_not_checked_when_the_data_is_not_given():
    assert run(policy("data.anything.at.all == 1")) == []


def test_known_reference_data_and_computed_keys_are_fine():
    assert run(policy('data.users[subject.sub].roles == ["a"] and data[subject.t] == 1'),
               data={"users": {}}) == []


# ----------------------------------------------------------------------------- 9 schemas themselves

def test_an_unknown_type_in_a_schema_suggests_the_right_one():
    diags = run("""\
        schema resource document {
          owner: strng
          tags: [integer]
          meta: { level: number }
        }
    """)
    assert where(diags) == [("unknown_type", 2, 10), ("unknown_type", 3, 10), ("unknown_type", 4, 18)]
    assert diags[0].message == "unknown type 'strng'"
    assert diags[0].hint == "did you mean 'string'?"
    assert diags[1].hint == "did you mean 'int'?"
    assert diags[2].hint.startswith("use 'int' or 'float'")


def test_a_duplicate_schema_is_reported_at_the_second():
    diags = run(
        ("a.policy", "schema subject { sub: string }\nschema resource doc { a: int }\n"),
        ("b.policy", "schema resource doc { b: int }\nschema resource other { a: int }\n"
                     "schema subject { roles: [string] }\n"),
    )
    assert [(d.code, d.file, d.line) for d in diags] == [
        ("duplicate_schema", "b.policy", 1), ("duplicate_schema", "b.policy", 3)]
    assert diags[0].message == "a schema for resource type 'doc' is already declared at a.policy:2:1"
    assert diags[1].message == "a schema for subject is already declared at a.policy:1:1"


def test_a_duplicate_field_is_reported_in_schemas_and_object_types():
    diags = run("""\
        schema context {
          ip: string
          meta: { a: int, a: string }
          ip?: string
        }
    """)
    assert where(diags) == [("duplicate_field", 3, 19), ("duplicate_field", 4, 3)]
    assert diags[1].message == "attribute 'ip' is declared twice (first at line 2)"


def test_an_unknown_type_far_from_any_known_one_lists_the_types():
    d = one(run("schema subject { a: frobnitz }\n"))
    assert d.hint == ("types are string, int, float, bool, timestamp, duration, ip, any, "
                      "[T] (a list) and { name: T, … } (an object)")


def test_a_resource_schema_must_name_its_type():
    assert where(run("schema resource { a: int }\n")) == [("invalid_schema", 1, 1)]


def test_only_resource_schemas_name_a_type():
    d = one(run("schema subject user { a: int }\n"))
    assert (d.code, d.message) == ("invalid_schema", "schema subject takes no type name ('user')")


def test_the_attributes_every_request_has_cannot_be_redeclared_with_another_type():
    diags = run("""\
        schema resource doc { id: int  type: string }
        schema context { time: string  caller?: string }
    """)
    assert where(diags) == [("reserved_attribute", 1, 23), ("reserved_attribute", 2, 18),
                            ("reserved_attribute", 2, 32)]
    assert diags[0].message == ("resource.id is the id of the requested resource and is always a string; "
                                "it cannot be declared 'id: int'")
    assert diags[0].hint == "declare it as 'id: string' or leave it out"


# ----------------------------------------------------------------------------- 9 unknown attributes

def test_an_undeclared_resource_attribute_is_reported_with_a_suggestion():
    d = one(typed('resource.ownr == "a"'))
    assert (d.code, d.line, d.column) == ("unknown_attribute", 3, W)
    assert d.message == "resource type 'document' has no attribute 'ownr'"
    assert d.hint == "did you mean 'owner'?"


def test_an_undeclared_subject_attribute_is_reported():
    d = one(typed('"admin" in subject.rolse'))
    assert d.message == "subject has no attribute 'rolse'"
    assert d.hint == "did you mean 'roles'?"


def test_an_undeclared_attribute_without_a_close_match_lists_the_declared_ones():
    d = one(typed('context.zzzzzz == "a"'))
    assert d.message == "context has no attribute 'zzzzzz'"
    assert d.hint == "declared attributes: caller, ip, time"


def test_undeclared_attributes_of_nested_object_types_are_reported():
    d = one(typed('resource.meta.tem == "a"'))
    assert d.message == "resource.meta has no attribute 'tem' (resource type 'document')"
    assert d.hint == "did you mean 'team'?"


def test_an_attribute_of_a_scalar_is_reported():
    d = one(typed('resource.owner.name == "a"'))
    assert (d.code, d.message) == ("unknown_attribute", "resource.owner is a string, which has no attribute 'name'")


def test_a_length_attribute_on_a_list_suggests_len():
    d = one(typed("resource.tags.length > 1"))
    assert d.message == "resource.tags is a list of strings, which has no attribute 'length'"
    assert d.hint == "use len(resource.tags)"


def test_the_attributes_every_request_has_exist_without_declaration():
    assert typed('resource.type == "document" and resource.id == "d1" and action.name == "read"'
                 ' and context.caller == "svc" and context.time > time("2020-01-01T00:00:00Z")') == []


def test_list_elements_and_any_typed_attributes_are_followed():
    assert typed('resource.tags[0] == "a" and resource.meta.labels[-1] == "b"'
                 ' and resource.blob.x.y == 1 and resource["owner"] == "a"') == []


def test_a_root_without_schema_is_not_checked():
    assert run(policy('subject.whatever == 1 and resource.anything.at[0].all == "x"')) == []


def test_a_resource_type_without_schema_is_not_checked():
    assert typed('resource.ownr == "a"', head="permit read on folder") == []


def test_a_policy_on_any_type_gets_no_resource_schema_checks():
    assert typed('resource.ownr == "a"', head="permit read on *") == []


def test_a_policy_on_several_types_is_checked_against_each_schema():
    diags = run(policy('resource.owner == "a" and resource.size == 1', head="permit read on document, folder, image",
                       schemas=DOC + "schema resource folder { owner: string }\n"))
    d = one(diags)
    assert d.message == "resource type 'folder' has no attribute 'size'"


def test_has_of_an_undeclared_attribute_is_reported():
    assert where(typed("has(resource.ownr)")) == [("unknown_attribute", 3, W + 4)]


# ----------------------------------------------------------------------------- 9 impossible comparisons

@pytest.mark.parametrize("cond, message", [
    ('resource.pages == "5"', 'comparison is always false: resource.pages is an int and "5" is a string'),
    ("resource.tags != subject.sub",
     "comparison is always true: resource.tags is a list of strings and subject.sub is a string"),
    ("resource.archived == 1", None),
    ("has(resource.archived) and resource.archived == 1", None),
    ("resource.owner == null", "comparison is always false: resource.owner is a string and never null"),
    ("resource.created == resource.retention", None),
    ("ip(context.ip) == \"10.0.0.1\"", None),
    ("len(resource.tags) == \"3\"", None),
    ("resource.meta == []", None),
])
def test_equality_between_types_that_are_never_equal_is_reported(cond, message):
    diags = [d for d in typed(cond) if d.code != "unguarded_optional"]
    d = one(diags)
    assert d.code == "impossible_comparison"
    assert d.column == cond.index("=") + W if "!=" not in cond else cond.index("!=") + W
    if message:
        assert d.message == message


@pytest.mark.parametrize("cond", [
    "resource.pages == resource.size",       # int and float are both numbers
    "resource.pages == 1.5",
    "resource.blob == 1 and resource.blob == \"x\"",   # any matches everything
    "resource.meta.labels[0] == resource.owner",
    "data.x == 1 and action.colour == 2",    # no schema: any
])
def test_equality_that_may_hold_is_fine(cond):
    assert typed(cond) == []


def test_null_against_an_optional_attribute_is_fine():
    assert typed("has(resource.archived) and resource.archived != null") == []


def test_lists_may_always_be_equal_because_both_may_be_empty():
    assert typed("resource.tags == [1, 2] and resource.meta.labels != resource.tags") == []


@pytest.mark.parametrize("cond, message", [
    ('resource.pages < "5"', "'<' compares two numbers, two strings, two timestamps or two durations; "
                             'resource.pages is an int and "5" is a string'),
    ("resource.tags >= resource.blob", "'>=' compares two numbers, two strings, two timestamps or two durations; "
                                   "resource.tags is a list of strings"),
    ("context.time > 1767225600", None),
    ("resource.created <= resource.retention", None),
    ("true < false", None),
])
def test_ordering_needs_two_numbers_strings_timestamps_or_durations(cond, message):
    d = one(typed(cond))
    assert d.code == "impossible_comparison"
    if message:
        assert d.message == message


def test_ordering_that_may_hold_is_fine():
    assert typed('resource.pages < resource.size and resource.owner > "m" and context.time - resource.created'
                 ' > resource.retention and resource.created + duration("1d") < context.time'
                 " and resource.blob < 3") == []


@pytest.mark.parametrize("cond, message", [
    ('"x" in resource.owner', "'in' needs a list on its right, but resource.owner is a string"),
    ("resource.pages in resource.tags",
     "test is always false: resource.pages is an int and resource.tags is a list of strings"),
    ('resource.pages not in ["a", "b"]',
     'test is always true: resource.pages is an int and no element of ["a", "b"] can equal it'),
    ("subject.sub in 5", "'in' needs a list on its right, but 5 is an int"),
])
def test_in_needs_a_list_whose_elements_can_equal_the_left(cond, message):
    d = one(typed(cond))
    assert d.code == "impossible_comparison"
    assert d.message == message


def test_null_is_never_an_element_of_a_declared_list():
    d = one(typed("null in subject.roles"))
    assert d.message == "test is always false: the left side is null and subject.roles is a list of strings"


def test_in_a_string_suggests_contains():
    assert one(typed('"x" in resource.owner')).hint == "to test for a substring use contains(s, sub)"


def test_in_that_may_hold_is_fine():
    assert typed('resource.pages in [1, "a"] and resource.owner in subject.roles and resource.pages in []'
                 " and subject.sub in data.admins and resource.pages in resource.blob") == []


def test_like_on_a_non_string_is_reported():
    d = one(typed('resource.pages like "1*"'))
    assert (d.code, d.column) == ("impossible_comparison", W + 15)
    assert d.message == "'like' matches strings, but resource.pages is an int"


def test_builtin_results_have_types():
    diags = typed('lower(resource.owner) == 1 or hour(context.time) == "9" or starts_with("a", "b") == "yes"')
    assert [d.code for d in diags] == ["impossible_comparison"] * 3


def test_arithmetic_has_types():
    diags = typed('resource.pages + 1 == "2" or context.time - resource.created == 5'
                  ' or context.time + resource.retention == resource.created')
    assert [d.code for d in diags] == ["impossible_comparison"] * 2


def test_literal_types_are_known_without_a_schema():
    diags = run(policy('"1" == 1 or [1] == "a" or true == 1 or null == "a" or 1 == 1.0 or null == null'))
    assert [d.code for d in diags] == ["impossible_comparison"] * 4


# ----------------------------------------------------------------------------- 9 more type errors

def test_arithmetic_on_the_wrong_types_is_reported():
    diags = typed('resource.owner + 1 == 2 or resource.retention + resource.created < context.time'
                  " or -resource.owner == 1")
    assert [d.code for d in diags] == ["impossible_arithmetic"] * 3
    assert diags[0].message == ("'+' adds two numbers, or a duration to a timestamp; "
                                "resource.owner is a string and 1 is an int")
    assert diags[0].column == W + 15


def test_a_condition_of_a_known_non_boolean_type_is_reported():
    diags = run(policy("resource.owner or 1", schemas=DOC) + 'policy "q" { permit a on b unless "yes" }\n')
    assert [(d.code, d.message) for d in diags] == [
        ("not_boolean", "a condition must be true or false, but resource.owner is a string"),
        ("not_boolean", "a condition must be true or false, but 1 is an int"),
        ("not_boolean", 'a condition must be true or false, but "yes" is a string'),
    ]


def test_not_needs_a_boolean_operand():
    assert where(run(policy("not 1"))) == [("not_boolean", 3, W + 4)]


def test_a_typed_argument_of_the_wrong_type_is_reported():
    d = one(typed('hour(resource.owner) == 3'))
    assert (d.code, d.column) == ("wrong_argument_type", W + 5)
    assert d.message == "argument 1 of hour() must be a timestamp, but resource.owner is a string"


# ----------------------------------------------------------------------------- 9 optional attributes

def test_an_unguarded_read_of_an_optional_attribute_is_reported():
    d = one(typed("resource.archived"))
    assert (d.code, d.line, d.column) == ("unguarded_optional", 3, W)
    assert d.message == ("resource.archived may be absent (declared 'archived?'); "
                         "guard it with has(resource.archived)")


@pytest.mark.parametrize("cond", [
    "has(resource.archived)",
    "has(resource.archived) and resource.archived",
    "has(resource.archived) and (true or not resource.archived)",
    "true and has(resource.archived) and subject.sub == \"a\" and resource.archived",
    "not has(resource.archived) or resource.archived",
    "not has(resource.archived) or true or resource.archived == false",
    "has(resource.meta.level) and resource.meta.level > 1",
    "has(resource.extra.note) and resource.extra.note == \"x\"",
    "(has(resource.archived) and has(subject.department)) and resource.archived and subject.department == \"x\"",
    "not (not has(resource.archived)) and resource.archived",
    "not (has(resource.archived) and has(subject.department)) or subject.department == \"x\"",
    "(has(resource.archived) or has(resource.archived) and true) and resource.archived",
])
def test_a_guarded_read_is_fine(cond):
    assert typed(cond) == []


@pytest.mark.parametrize("cond, path", [
    ("resource.archived and has(resource.archived)", "resource.archived"),        # guard comes too late
    ("has(resource.archived) or resource.archived", "resource.archived"),         # or: the guard was false
    ("not has(resource.archived) and resource.archived", "resource.archived"),
    ("has(resource.extra) and resource.extra.note == \"x\"", "resource.extra.note"),
    ("resource.extra.note == \"x\"", "resource.extra.note"),
    ("resource.meta.level == 1", "resource.meta.level"),
    ("has(resource.meta) and resource.meta.level == 1", "resource.meta.level"),
    ("(has(resource.archived) or true) and resource.archived", "resource.archived"),
    ("subject.department == \"x\"", "subject.department"),
    ("context.ip == \"x\"", "context.ip"),
    ("lower(subject.department) == \"x\"", "subject.department"),
    ("data.users[subject.department] == 1", "subject.department"),
])
def test_an_unguarded_read_is_reported(cond, path):
    d = one(typed(cond))
    assert d.code == "unguarded_optional"
    assert d.message.startswith(f"{path} may be absent")
    assert d.message.endswith(f"guard it with has({path})")


def test_a_when_guard_covers_the_unless_clause():
    for when in ("has(resource.archived)", 'subject.sub == "a" and has(resource.archived)'):
        assert run(textwrap.dedent(f"""\
            policy "p" {{
              permit read on document
              when {when}
              unless resource.archived
            }}
        """) + DOC) == []


def test_an_unless_guard_does_not_cover_the_when_clause():
    diags = run(textwrap.dedent("""\
        policy "p" {
          permit read on document
          when resource.archived
          unless not has(resource.archived)
        }
    """) + DOC)
    assert where(diags) == [("unguarded_optional", 3, 8)]


def test_a_when_guard_under_or_does_not_cover_the_unless_clause():
    diags = run(textwrap.dedent("""\
        policy "p" {
          permit read on document
          when has(resource.archived) or true
          unless resource.archived
        }
    """) + DOC)
    assert where(diags) == [("unguarded_optional", 4, 10)]


def test_guards_do_not_leak_to_the_next_policy_or_the_next_term_of_an_outer_or():
    diags = run(textwrap.dedent("""\
        policy "p" {
          permit read on document
          when (has(resource.archived) and resource.archived) or resource.archived
        }
        policy "q" {
          permit read on document
          when resource.archived
        }
    """) + DOC)
    assert where(diags) == [("unguarded_optional", 3, 58), ("unguarded_optional", 7, 8)]


# ----------------------------------------------------------------------------- output shape

def test_every_problem_of_every_file_is_reported_sorted_and_without_duplicates():
    a = ("b.policy", 'policy "p" {\n  permit read on doc\n  when usr.x == 1 and lowr(1)\n}\n')
    b = ("a.policy", 'policy "q" {\n  permit read on document, image\n  when resource.ownr == 1\n}\n'
                     "schema resource document { owner: string }\nschema resource image { owner: string }\n")
    diags = run(a, b)
    assert [(d.file, d.line, d.column, d.code) for d in diags] == [
        ("a.policy", 3, 8, "unknown_attribute"),       # one per resource type: the messages differ
        ("a.policy", 3, 8, "unknown_attribute"),
        ("b.policy", 3, 8, "unknown_root"),
        ("b.policy", 3, 23, "unknown_function"),
    ]
    assert {d.message for d in diags[:2]} == {"resource type 'document' has no attribute 'ownr'",
                                              "resource type 'image' has no attribute 'ownr'"}
    assert len(set(diags)) == len(diags)


def test_the_source_line_is_quoted_for_the_caret():
    d = one(run(policy("usr.x == 1")))
    assert d.source_line == "  when usr.x == 1"
    assert d.render().splitlines()[1:3] == ["    when usr.x == 1", "         ^"]


def test_without_sources_there_is_no_source_line():
    module, _ = parse_module(policy("usr.x == 1"), "a.policy")
    d = one(check([module]))
    assert d.source_line is None and (d.line, d.column) == (3, W)


def test_schemas_never_affect_a_policy_set_that_has_none():
    assert run(policy('resource.x.y[3] == "a" and subject.z > 3')) == []


# ----------------------------------------------------------------------------- size

def _chain(n: int, op: str) -> ast.BoolOp:
    terms = []
    for i in range(n):
        path = ast.Path("resource", ["archived"], 3, 8)
        if i % 3 == 0:
            terms.append(ast.Call("has", [path], 3, 8))
        elif i % 3 == 1:
            terms.append(ast.Compare("==", path, ast.Literal(True, 3, 9), 3, 9))
        else:
            terms.append(ast.Compare("==", ast.Path("resource", ["owner"], 3, 8), ast.Literal(i, 3, 9), 3, 9))
    return ast.BoolOp(op, terms, 3, 8)


@pytest.mark.parametrize("op", ["and", "or"])
def _module_with_chain(n, op):
    module, errors = parse_module(DOC, "a.policy")
    assert errors == []
    module.policies.append(ast.Policy("big", "permit", ["read"], ["document"],
                                      [ast.Clause("when", _chain(n, op), 3, 3)], file="a.policy"))
    return module


@pytest.mark.parametrize("op", ["and", "or"])
def test_a_20000_term_chain_is_checked(op):
    diags = check([_module_with_chain(20_000, op)])
    assert {d.code for d in diags} == {"impossible_comparison"} | ({"unguarded_optional"} if op == "or" else set())


@pytest.mark.parametrize("op", ["and", "or"])
def test_checking_a_chain_takes_time_linear_in_its_length(op):
    # What guards an optional read is carried along the chain; carrying it by copy
    # would make a long chain quadratic. Counted in calls, not seconds.
    assert_linear(lambda n: (lambda module=_module_with_chain(n, op): check([module])), 4_000)


def test_a_20000_term_chain_from_source_is_checked():
    cond = " and ".join(f'subject.sub == "u{i}"' for i in range(20_000))
    text = f'policy "big" {{\n  permit read on document\n  when {cond}\n}}\n' + DOC
    module, errors = parse_module(text, "a.policy")
    assert errors == []
    assert check([module], sources={"a.policy": text}) == []
