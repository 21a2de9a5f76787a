"""The parser: every syntax rule of the language (spec §2, §4, §7) and every syntax
error an author can meet (spec §8).

Trees are compared without positions (:func:`tree`), except where a test is about
positions. Error tests give the source, where the caret must be
(line:column) and the message the author reads.
"""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.errors import Diagnostic, PolicyError
from pdp.lang import ast
from pdp.lang.formatter import normalize
from pdp.lang.parser import parse_expression, parse_module, parse_source


def parse(text: str, file: str = "t.policy") -> ast.Module:
    module, errors = parse_module(textwrap.dedent(text), file)
    assert errors == [], [e.render() for e in errors]
    return module


def one_policy(text: str) -> ast.Policy:
    module = parse(text)
    assert len(module.policies) == 1
    return module.policies[0]


def tree(text: str):
    """An expression as position-free data."""
    return normalize(parse_expression(text))


def errors(text: str, file: str = "t.policy") -> list[Diagnostic]:
    module, diags = parse_module(textwrap.dedent(text).lstrip("\n"), file)
    return diags


def one_error(text: str) -> Diagnostic:
    diags = errors(text)
    assert len(diags) == 1, [d.render() for d in diags]
    return diags[0]


# Short constructors for expected trees (positions are ignored by normalize()).
def L(v): return normalize(ast.Literal(v))                                     # noqa: E704
def P(root, *steps): return normalize(ast.Path(root, list(steps)))            # noqa: E704
def C(op, a, b): return {"@": "Compare", "op": op, "left": a, "right": b}    # noqa: E704
def A(op, a, b): return {"@": "Arith", "op": op, "left": a, "right": b}      # noqa: E704
def U(op, x): return {"@": "Unary", "op": op, "operand": x}                  # noqa: E704
def B(op, *ts): return {"@": "BoolOp", "op": op, "terms": list(ts)}          # noqa: E704
def F(name, *args): return {"@": "Call", "name": name, "args": list(args)}   # noqa: E704
def LS(*items): return {"@": "ListExpr", "items": list(items)}               # noqa: E704


a, b, c, d = P("a"), P("b"), P("c"), P("d")


# ============================================================================ §2 policies

def test_the_policy_of_the_spec():
    p = one_policy("""
        policy "doc-owner-edit" {
          permit read, update on document
          when resource.owner == subject.sub
          unless resource.archived
          reason "owners may edit their own documents"
        }
    """)
    assert p.id == "doc-owner-edit"
    assert p.effect == "permit"
    assert p.actions == ["read", "update"]
    assert p.resource_types == ["document"]
    assert normalize(p.when) == C("==", P("resource", "owner"), P("subject", "sub"))
    assert normalize(p.unless) == P("resource", "archived")
    assert p.reason == "owners may edit their own documents"
    assert [c.kind for c in p.clauses] == ["when", "unless", "reason"]


def test_forbid_and_the_minimal_policy():
    p = one_policy('policy "x" { forbid delete on document }')
    assert (p.effect, p.actions, p.resource_types, p.clauses) == ("forbid", ["delete"], ["document"], [])


def test_star_means_any_action_or_type():
    p = one_policy('policy "x" { permit * on * }')
    assert p.actions is None and p.resource_types is None


@pytest.mark.parametrize("written, name", [
    ("read", "read"),
    ("GET", "GET"),
    ("documents:read", "documents:read"),
    ("billing.invoice", "billing.invoice"),
    ("a-b/c_d", "a-b/c_d"),
    ("_x9", "_x9"),
    ('"GET /x"', "GET /x"),
    ('"documents:read"', "documents:read"),
    ('"*"', "*"),
    ('""', ""),
    ('"\\u00e9t\\u00e9"', "été"),
    # keywords are plain names where a name is expected
    ("on", "on"), ("policy", "policy"), ("permit", "permit"), ("when", "when"),
    ("and", "and"), ("not", "not"), ("true", "true"), ("subject", "subject"),
])
def test_names_bare_and_quoted(written, name):
    p = one_policy(f'policy "x" {{ permit {written} on {written} }}')
    assert p.actions == [name] and p.resource_types == [name]


def test_name_lists():
    p = one_policy('policy "x" { permit read, "GET /x" ,update on document,"billing invoice" }')
    assert p.actions == ["read", "GET /x", "update"]
    assert p.resource_types == ["document", "billing invoice"]


def test_clauses_are_kept_in_order_even_repeated():
    # "at most one when" is the checker's rule, not a syntax error
    p = one_policy('policy "x" { permit a on b reason "r" when subject.a unless subject.b when subject.c }')
    assert [c.kind for c in p.clauses] == ["reason", "when", "unless", "when"]
    assert normalize(p.when) == P("subject", "a")


def test_policy_ids_are_json_strings():
    p = one_policy(r'policy "a \"b\" \\ \u00e9 /" { permit x on y }')
    assert p.id == 'a "b" \\ é /'


def test_annotations():
    p = one_policy("""
        @owner("team-docs")
        @description( "Owners edit." )  @x("")
        policy "x" { permit a on b }
    """)
    assert [(n.name, n.value) for n in p.annotations] == [
        ("owner", "team-docs"), ("description", "Owners edit."), ("x", "")]


def test_several_blocks_in_source_order():
    m = parse("""
        schema subject { sub: string }
        policy "a" { permit x on y }
        @o("1") policy "b" { forbid x on y }
        schema context { ip?: string }
    """)
    assert [type(i).__name__ for i in m.items] == ["Schema", "Policy", "Policy", "Schema"]
    assert [p.id for p in m.policies] == ["a", "b"]
    assert [s.root for s in m.schemas] == ["subject", "context"]


def test_an_empty_file_and_a_file_of_comments():
    assert parse("").items == []
    m = parse("# just a comment\n   # another\n")
    assert m.items == [] and [c.text for c in m.comments] == ["# just a comment", "# another"]


def test_positions():
    m = parse("""\
        # header
        @owner("x")
        policy "p" {
          permit read on doc
          when subject.a == 1
        }
        schema subject {
          sub: string
        }
    """)
    p = m.policies[0]
    assert (p.line, p.column) == (2, 1)                      # a policy starts at its first annotation
    assert (p.id_line, p.id_column) == (3, 8)
    assert (p.effect_line, p.effect_column) == (4, 3)
    when = p.clauses[0]
    assert (when.line, when.column) == (5, 3)
    assert (when.value.line, when.value.column) == (5, 18)   # a comparison sits at its operator
    assert (when.value.left.line, when.value.left.column) == (5, 8)
    assert p.end_line == 6
    s = m.schemas[0]
    assert (s.line, s.column, s.end_line) == (7, 1, 9)
    assert (s.fields[0].line, s.fields[0].column) == (8, 3)
    assert [(c.text, c.line, c.column) for c in m.comments] == [("# header", 1, 1)]
    assert p.file == "t.policy"


def test_comments_anywhere_and_hashes_in_strings():
    m = parse("""
        policy "#1" { # after brace
          permit "#a" on b   # trailing
          # own line
          when subject.x == "# not a comment" # end
        }
    """)
    assert [c.text for c in m.comments] == ["# after brace", "# trailing", "# own line", "# end"]
    assert m.policies[0].id == "#1"
    assert normalize(m.policies[0].when) == C("==", P("subject", "x"), L("# not a comment"))


# ============================================================================ §4 expressions

@pytest.mark.parametrize("text, value", [
    ('"text"', "text"),
    ('""', ""),
    (r'"\" \\ \/ \b \f \n \r \t \u0041 \u00e9 \ud83d\ude00"', '" \\ / \b \f \n \r \t A é 😀'),
    ('"é中"', "é中"),
    ("0", 0), ("42", 42), ("007", 7),
    ("123456789012345678901234567890", 123456789012345678901234567890),
    ("1.5", 1.5), ("0.25", 0.25), ("1.0e3", 1000.0), ("2.5E-2", 0.025),
    ("true", True), ("false", False), ("null", None),
    ("-1", -1), ("-1.5", -1.5),
])
def test_literals(text, value):
    got = parse_expression(text)
    assert isinstance(got, ast.Literal)
    assert got.value == value and type(got.value) is type(value)


def test_lists_with_and_without_a_trailing_comma():
    assert tree("[]") == LS()
    assert tree('[1, "a", subject.sub]') == LS(L(1), L("a"), P("subject", "sub"))
    assert tree("[1, 2,]") == LS(L(1), L(2))
    assert tree("[[1], []]") == LS(LS(L(1)), LS())


@pytest.mark.parametrize("text, expected", [
    ("subject", P("subject")),
    ("subject.roles", P("subject", "roles")),
    ("resource.owner.team", P("resource", "owner", "team")),
    ('subject["https://acme.example/roles"]', P("subject", "https://acme.example/roles")),
    ('subject["roles"]', P("subject", "roles")),                  # a literal key is a static step
    ("resource.tags[0]", P("resource", "tags", ast.Literal(0))),
    ("resource.tags[-1]", P("resource", "tags", ast.Literal(-1))),
    ("data.users[subject.sub].roles",
     P("data", "users", ast.Path("subject", ["sub"]), "roles")),
    ('resource["in"]["not"]', P("resource", "in", "not")),  # keywords are reserved: quote them
])
def test_paths(text, expected):
    assert tree(text) == expected


def test_computed_steps_hold_any_expression():
    assert tree("data.x[1 + 2]")["steps"][1] == A("+", L(1), L(2))
    assert tree('data.x[lower("A")]')["steps"][1] == F("lower", L("A"))


@pytest.mark.parametrize("text, expected", [
    ("has(resource.owner)", F("has", P("resource", "owner"))),
    ("f()", F("f")),
    ('starts_with(subject.sub, "a",)', F("starts_with", P("subject", "sub"), L("a"))),
    ("cidr_contains(\"10.0.0.0/8\", context.ip)", F("cidr_contains", L("10.0.0.0/8"), P("context", "ip"))),
    ("len(lower(subject.sub))", F("len", F("lower", P("subject", "sub")))),
])
def test_calls(text, expected):
    assert tree(text) == expected


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">=", "in", "like"])
def test_comparison_operators(op):
    assert tree(f"a {op} b") == C(op, a, b)


def test_not_in_is_one_operator():
    assert tree("a not in b") == C("not in", a, b)
    assert tree("a not   in [1]") == C("not in", a, LS(L(1)))


def test_arithmetic_and_unary_minus():
    assert tree("a + b") == A("+", a, b)
    assert tree("a - b - c") == A("-", A("-", a, b), c)          # left-associative
    assert tree("a - (b - c)") == A("-", a, A("-", b, c))
    assert tree("-a") == U("-", a)
    assert tree("- -a") == U("-", U("-", a))
    assert tree("a - -b") == A("-", a, U("-", b))
    assert tree("-(1 + 2)") == U("-", A("+", L(1), L(2)))


def test_and_or_chains_are_flat():
    assert tree("a and b and c") == B("and", a, b, c)
    assert tree("a or b or c or d") == B("or", a, b, c, d)
    assert tree("(a and b) and c") == B("and", a, b, c)


@pytest.mark.parametrize("text, expected", [
    # or < and < not < comparison < +,- < unary -
    ("a or b and c", B("or", a, B("and", b, c))),
    ("a and b or c", B("or", B("and", a, b), c)),
    ("not a and b", B("and", U("not", a), b)),
    ("not a or b", B("or", U("not", a), b)),
    ("not a == b", U("not", C("==", a, b))),
    ("not not a", U("not", U("not", a))),
    ("a == b and c != d", B("and", C("==", a, b), C("!=", c, d))),
    ("a + b == c - d", C("==", A("+", a, b), A("-", c, d))),
    ("-a + b", A("+", U("-", a), b)),
    ("a + b in c", C("in", A("+", a, b), c)),
    ("(a or b) and c", B("and", B("or", a, b), c)),
    ("not (a and b)", U("not", B("and", a, b))),
    ("(a == b) == c", C("==", C("==", a, b), c)),
    ("((((a))))", a),
])
def test_precedence(text, expected):
    assert tree(text) == expected


def test_parentheses_leave_no_node():
    assert tree("(a)") == a
    assert tree("f((a), [(b)])") == F("f", a, LS(b))


@pytest.mark.parametrize("text", [
    "a < b < c", "a == b == c", "a in b in c", "a == b != c", "a like b like c",
    "a < b in c", "a not in b == c", "a <= b >= c",
])
def test_comparisons_are_not_associative(text):
    with pytest.raises(PolicyError) as info:
        parse_expression(text)
    (diag,) = info.value.diagnostics
    assert diag.code == "syntax_error"
    assert diag.message.startswith("comparison operators cannot be chained")
    assert diag.hint == "combine comparisons with 'and', or use parentheses"


def test_keywords_need_word_boundaries():
    assert tree("android == notice") == C("==", P("android"), P("notice"))
    assert tree("subject.ordered or inx") == B("or", P("subject", "ordered"), P("inx"))


def test_whitespace_and_newlines_inside_expressions():
    p = one_policy("""
        policy "x" {
          permit a on b
          when subject.a
            and (subject.b
                 or subject.c)   # a comment inside
            and subject.d
        }
    """)
    assert normalize(p.when) == B("and", P("subject", "a"), B("or", P("subject", "b"), P("subject", "c")),
                                  P("subject", "d"))


# ============================================================================ §7 schemas

def test_schemas():
    m = parse("""
        schema subject {
          sub: string
          roles: [string]
          department?: string      # '?' = may be absent
        }
        schema resource document {
          owner: string, archived?: bool,
          meta: { team: string, tags?: [{ a: int }] }
          empty: {}
        }
        schema resource "billing invoice" { amount: float, "x-y"?: { "a b": int } }
        schema context { }
    """)
    subject, document, invoice, context = m.schemas
    assert (subject.root, subject.resource_type) == ("subject", None)
    assert [(f.name, f.optional) for f in subject.fields] == [
        ("sub", False), ("roles", False), ("department", True)]
    assert normalize(subject.fields[1].type) == {"@": "ListType", "element": {"@": "NamedType", "name": "string"}}
    assert (document.root, document.resource_type) == ("resource", "document")
    meta = document.fields[2].type
    assert isinstance(meta, ast.ObjectType)
    assert [(f.name, f.optional) for f in meta.fields] == [("team", False), ("tags", True)]
    assert isinstance(document.fields[3].type, ast.ObjectType) and document.fields[3].type.fields == []
    assert invoice.resource_type == "billing invoice"
    assert [(f.name, f.optional) for f in invoice.fields] == [("amount", False), ("x-y", True)]
    assert invoice.fields[1].type.fields[0].name == "a b"           # field names may be quoted
    assert context.fields == []


# ============================================================================ §8 errors

ERRORS = [
    # (source, line, column, message)
    ('policy a { permit x on y }', 1, 8,
     "expected the policy id as a quoted string after 'policy', got 'a'"),
    ('policy "a" permit x on y }', 1, 12, "expected '{' after \"a\", got 'permit'"),
    ('policy "a" { x on y }', 1, 14, "expected 'permit' or 'forbid' to start the policy body, got 'x'"),
    ('policy "a" { permit x y on z }', 1, 23, "expected 'on' after the action list, got 'y'"),
    ('policy "a" { permit on y }', 1, 24,
     "the action list is missing: expected an action name or '*' before 'on', got 'y'"),
    ('policy "a" { permit * , x on y }', 1, 23, "unexpected ','; expected 'on'"),
    ('policy "a" { permit x on }', 1, 26, "expected a resource type or '*' after 'on', got '}'"),
    ('policy "a" { permit x on y, }', 1, 29, "expected a name after ',', got '}'"),
    ('policy "a" { permit x on y z }', 1, 28,
     "expected ',', 'when', 'unless', 'reason' or '}' after the resource types, got 'z'"),
    ('policy "a" { permit x on y when }', 1, 33, "expected an expression after 'when', got '}'"),
    ('policy "a" { forbid x on y unless }', 1, 35, "expected an expression after 'unless', got '}'"),
    ('policy "a" { permit x on y when a == }', 1, 38, "expected an expression after '==', got '}'"),
    ('policy "a" { permit x on y when a >= }', 1, 38, "expected an expression after '>=', got '}'"),
    ('policy "a" { permit x on y when a or }', 1, 38, "expected an expression after 'or', got '}'"),
    ('policy "a" { permit x on y when not }', 1, 37, "expected an expression after 'not', got '}'"),
    ('policy "a" { permit x on y when a + }', 1, 37, "expected an expression after '+', got '}'"),
    ('policy "a" { permit x on y when a like }', 1, 40, "expected an expression after 'like', got '}'"),
    ('policy "a" { permit x on y when f(a,,b) }', 1, 37, "expected an expression after ',', got ','"),
    ('policy "a" { permit x on y when a[ ] }', 1, 36, "expected an expression after '[', got ']'"),
    ('policy "a" { permit x on y when a b }', 1, 35,
     "unexpected 'b' after a complete expression; expected an operator such as 'and', 'or' or '==', "
     "or the next clause ('when', 'unless', 'reason' or '}')"),
    ('policy "a" { permit x on y when a == 1.}', 1, 39, "a number cannot end with '.': write 1.0 or 1"),
    ('policy "a" { permit x on y when a == .5 }', 1, 38, "expected an expression after '==', got '.'"),
    ('policy "a" { permit x on y when a not b }', 1, 39, "expected 'in' after 'not', got 'b'"),
    ('policy "a" { permit x on y when (a }', 1, 36, "expected ')' to close the parenthesis, got '}'"),
    ('policy "a" { permit x on y when a == 1) }', 1, 39, "unexpected ')' without a matching '('"),
    ('policy "a" { permit x on y when x[1 }', 1, 37, "expected ',' or ']', got '}'"),
    ('policy "a" { permit x on y when a. }', 1, 36, "expected an attribute name after '.', got '}'"),
    ('policy "a" { permit x on y when a = b }', 1, 35, "unexpected character '='"),
    ("policy \"a\" { permit x on y when a == 'b' }", 1, 38, "unexpected character \"'\""),
    ('policy "a" { permit x on y when a && b }', 1, 35, "unexpected character '&'"),
    ('policy "a" { permit x on y when a ~ b }', 1, 35, "unexpected character '~'"),
    ('policy "a" { permit x on y when a == "b }', 1, 38,
     "unterminated string: a closing '\"' is missing on this line"),
    ('policy "a" { permit x on y when a == "\\q" }', 1, 39,
     "invalid escape in string; strings use JSON escapes (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)"),
    ('policy "a" { permit x on y when "\\ud800" == a }', 1, 33,
     "invalid \\u escape in string: a lone surrogate is not a character"),
    ('policy "a" { permit x on y when 1.5e999 == 1 }', 1, 33, "number 1.5e999 is too large"),
    ('policy "a" { permit x on y } # a comment \x00 with a NUL', 1, 42,
     "a NUL character (U+0000) is not allowed in a policy file"),
    ('policy "a" { permit x on y when a == "\x00" }', 1, 39,
     "a NUL character (U+0000) is not allowed in a policy file"),
    ('policy "a" { permit x on y reason }', 1, 35, "expected a quoted string after 'reason', got '}'"),
    ('policy "a" { permit x on y reason x }', 1, 35, "expected a quoted string after 'reason', got 'x'"),
    ('policy "a" { permit x on y', 1, 27,
     "expected ',', 'when', 'unless', 'reason' or '}' after the resource types, got end of file"),
    ('policy "a" { permit x on y } }', 1, 30, "expected 'policy' or 'schema' at the top level, got '}'"),
    ('permit x on y', 1, 1, "expected 'policy' or 'schema' at the top level, got 'permit'"),
    ('@owner policy "a" { permit x on y }', 1, 8, "expected '(' after the annotation name, got 'policy'"),
    ('@owner(x) policy "a" { permit x on y }', 1, 8, "expected the annotation value as a quoted string, got 'x'"),
    ('@owner("x")', 1, 12, "expected 'policy' after annotations, got end of file"),
    ('@owner("x") schema subject {}', 1, 13, "expected 'policy' after annotations, got 'schema'"),
    ('schema foo {}', 1, 8, "expected 'subject', 'resource' or 'context' after 'schema', got 'foo'"),
    ('schema subject { a string }', 1, 20, "expected ':' after the field name, got 'string'"),
    ('schema subject { a: }', 1, 21,
     "expected a type (string, int, float, bool, timestamp, duration, ip, any, [T] or {…}), got '}'"),
    ('schema subject { a: [string }', 1, 29, "expected ',' or ']', got '}'"),
    ('schema subject { 1: int }', 1, 18, "expected a field name or '}' in the schema, got '1'"),
    ('schema resource {', 1, 18, "expected a field name or '}' in the schema, got end of file"),
]


@pytest.mark.parametrize("source, line, column, message", ERRORS, ids=[e[3][:50] for e in ERRORS])
def test_syntax_errors_in_an_authors_words(source, line, column, message):
    diag = one_error(source)
    assert diag.code == "syntax_error"
    assert (diag.file, diag.line, diag.column) == ("t.policy", line, column)
    assert diag.message == message
    assert diag.source_line == source.split("\n")[line - 1]


@pytest.mark.parametrize("source, hint", [
    ('policy a { permit x on y }', 'policy "my-policy-id" { … }'),
    ('policy "a" { permit x y on z }', "actions are separated by commas: permit read, update on document"),
    ('policy "a" { permit on y }', 'permit read on document (quote an action named on: "on")'),
    ('policy "a" { permit x on y when a = b }', "equality is written '=='"),
    ("policy \"a\" { permit x on y when a == 'b' }", "strings use double quotes"),
    ('policy "a" { permit x on y when a || b }', "use 'and', 'or' and 'not'"),
    ('policy "a" { permit x on y when a not b }', "x not in [1, 2]"),
    ('schema subject { a string }', "fields are written name: type, or name?: type when optional"),
    ('@owner policy "a" { permit x on y }', '@owner("team-docs")'),
])
def test_hints(source, hint):
    assert one_error(source).hint == hint


def test_an_empty_policy_id():
    diag = one_error('policy "" { permit x on y }')
    assert (diag.code, diag.line, diag.column, diag.message) == (
        "empty_policy_id", 1, 8, "a policy id must not be empty")


def test_an_unclosed_block_is_reported_at_the_next_block():
    diags = errors("""
        policy "a" { permit x on y
        policy "b" { permit x on y }
    """)
    assert [(d.line, d.column, d.message) for d in diags] == [
        (2, 1, "expected '}' before the next 'policy': the block above is not closed")]


def test_the_rendered_error_shows_file_line_column_the_line_and_a_caret():
    diag = one_error("""
        policy "a" {
          permit read update on document
        }
    """)
    assert diag.render() == (
        "t.policy:2:15: error: expected 'on' after the action list, got 'update'\n"
        "    permit read update on document\n"
        "                ^\n"
        "  hint: actions are separated by commas: permit read, update on document")


def test_errors_in_several_blocks_are_all_reported_in_one_run():
    diags = errors("""
        policy "ok-1" { permit x on y }
        policy "a" { permit x y on z }
        policy "ok-2" { permit x on y when subject.a }
        policy "b" {
          permit x on y
          when a < b < c
        }
        schema subject { a string }
        @owner(x)
        policy "c" { permit x on y }
        policy "d" { permit x on y reason }
    """)
    assert [(d.line, d.column) for d in diags] == [(2, 23), (6, 14), (8, 20), (9, 8), (11, 35)]


def test_what_parses_is_kept_alongside_the_errors():
    module, diags = parse_module('policy "ok" { permit x on y }\npolicy "bad" { permit }\n', "t.policy")
    assert len(diags) == 1
    assert [p.id for p in module.policies] == ["ok"]


def test_several_errors_in_one_block_report_the_first():
    diags = errors('policy "a" { permit x y on z when a < b < c }')
    assert [(d.line, d.column) for d in diags] == [(1, 23)]


def test_parse_source_and_parse_expression_raise_policy_error():
    with pytest.raises(PolicyError) as info:
        parse_source('policy "a" { permit x y on z }\npolicy "b" {}', "f.policy")
    assert len(info.value.diagnostics) == 2
    assert "2 errors in the policy set" in str(info.value)
    with pytest.raises(PolicyError) as info:
        parse_expression("a ==", "e")
    assert info.value.diagnostics[0].message == "expected an expression after '==', got the end of the file"


# ============================================================================ size and depth

def test_a_20000_term_and_chain_parses():
    text = " and ".join(f"subject.a{i} == {i}" for i in range(20_000))
    got = parse_expression(text)
    assert isinstance(got, ast.BoolOp) and got.op == "and" and len(got.terms) == 20_000


def test_5000_deep_parentheses_parse():
    got = parse_expression("(" * 5000 + "subject.sub" + ")" * 5000)
    assert normalize(got) == P("subject", "sub")


def test_5000_nested_nots_are_refused():
    with pytest.raises(PolicyError) as info:
        parse_expression("not " * 5000 + "true")
    (diag,) = info.value.diagnostics
    assert diag.code == "nesting_too_deep"
    assert diag.message == f"expression nested too deeply (more than {ast.MAX_DEPTH} levels)"


@pytest.mark.parametrize("make", [
    lambda n: "not " * (n - 1) + "a",
    lambda n: "-" * (n - 1) + "a",
    lambda n: "[" * n + "]" * n,
    lambda n: "f(" * n + ")" * n,
    lambda n: "subject" + ".a" * (n - 1),
], ids=["not", "minus", "lists", "calls", "path steps"])
def test_nesting_is_limited_to_max_depth_nodes(make):
    """A tree may be MAX_DEPTH nodes deep, not one more."""
    parse_expression(make(ast.MAX_DEPTH))
    with pytest.raises(PolicyError) as info:
        parse_expression(make(ast.MAX_DEPTH + 1))
    assert info.value.diagnostics[0].code == "nesting_too_deep"


def test_a_deep_expression_in_a_file_is_reported_with_its_line():
    diags = errors('policy "a" {\n  permit x on y\n  when ' + "not " * 100 + "a\n}\n")
    assert [(d.code, d.line) for d in diags] == [("nesting_too_deep", 3)]


# ============================================================================ robustness

VALID = [
    'policy "doc-owner-edit" {\n  permit read, update on document\n  when resource.owner == subject.sub\n'
    '  unless has(resource.archived) and resource.archived\n  reason "owners"\n}\n',
    '@owner("x")\npolicy "b" {\n  forbid * on "GET /x"\n  when not (context.ip in ["10.0.0.1", -1.5, null])'
    ' or -subject.n + 2 >= len(data.users[subject.sub].roles)\n}\n',
    'schema resource document {\n  owner: string\n  meta?: { tags: [string] }\n}\n',
]


def _only_policy_errors(text: str) -> None:
    module, diags = parse_module(text, "fuzz.policy")
    assert isinstance(module, ast.Module)
    assert all(isinstance(d, Diagnostic) and d.line >= 0 and d.column >= 0 for d in diags)
    for d in diags:
        d.render()
    try:
        parse_source(text, "fuzz.policy")
    except PolicyError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_only_ever_gives_diagnostics(text):
    _only_policy_errors(text)


_ALPHABET = st.sampled_from(list('{}()[],.:"\\#@?*+-=<>!\n \t') + ["policy", "when", "not", "and", "in",
                            "permit", "on", "x", "1", "1.5", '"s"', "schema", "subject"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 5), _ALPHABET),
                                        min_size=1, max_size=4))
def test_mutated_policies_only_ever_give_diagnostics(base, edits):
    text = base
    for pos, cut, insert in edits:
        pos %= len(text) + 1
        text = text[:pos] + insert + text[pos + cut:]
    _only_policy_errors(text)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=50))
def test_any_string_literal_round_trips(value):
    import json
    got = parse_expression(json.dumps(value))
    assert got.value == value


# ============================================================================ known parser problems

def test_a_doubled_operator_is_reported_at_the_second_operator():
    diag = one_error('policy "a" { permit x on y when a and and b }')
    assert (diag.column, diag.message) == (39, "unexpected keyword 'and' where a name or value was expected")


def test_a_comment_after_an_operator_does_not_become_the_previous_word():
    diag = one_error('policy "a" { permit x on y when a == # note\n}')
    assert diag.message == "expected an expression after '==', got '}'"


def test_end_line_is_the_line_of_the_closing_brace():
    m = parse('policy "a" { permit x on y }\n# closing } here\n\npolicy "b" { permit x on y }\n')
    assert [p.end_line for p in m.policies] == [1, 4]


def test_a_backslash_star_in_a_string_is_the_literal_star_of_like_patterns():
    # Spec §4: `\*` is a literal star. Strings otherwise use JSON escapes, where
    # `\*` would be invalid; it is kept as backslash + star, which `like` reads as
    # a literal star (and `"a\\*b"` means the same).
    assert parse_expression(r'"a\*b"').value == "a\\*b"
    assert parse_expression(r'"a\\*b"').value == "a\\*b"
    assert parse_expression(r'"\\\*"').value == "\\\\*"
