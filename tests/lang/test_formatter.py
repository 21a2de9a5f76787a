"""The formatter (``pdp policy fmt``): one canonical layout.

Each test gives a source and the exact canonical text it must become. Every
example is also checked for the formatter's three promises: it is idempotent,
it keeps every comment, and it never changes meaning (the output parses to the
same tree, positions aside).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pdp.errors import PolicyError
from pdp.lang.formatter import format_expr, format_source, normalize
from pdp.lang.parser import parse_expression, parse_module

REPO = Path(__file__).resolve().parents[2]


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def fmt(text: str) -> str:
    """Format ``text`` and check the formatter's promises on it."""
    source = dedent(text)
    out = format_source(source, "t.policy")
    assert format_source(out, "t.policy") == out, "not idempotent"
    assert_same_meaning(source, out)
    assert_same_comments(source, out)
    return out


def assert_same_meaning(a: str, b: str) -> None:
    ma, da = parse_module(a, "t.policy")
    mb, db = parse_module(b, "t.policy")
    assert da == [] and db == []
    assert normalize(ma.items) == normalize(mb.items)


def assert_same_comments(a: str, b: str) -> None:
    ca = sorted(c.text.rstrip() for c in parse_module(a, "t.policy")[0].comments)
    cb = sorted(c.text for c in parse_module(b, "t.policy")[0].comments)
    assert ca == cb


def expr(text: str) -> str:
    """The canonical text of an expression (parsed, then printed)."""
    out = format_expr(parse_expression(text))
    assert normalize(parse_expression(out)) == normalize(parse_expression(text))
    return out


# ----------------------------------------------------------------------------- blocks

def test_a_messy_policy_becomes_canonical():
    assert fmt("""
        @owner(  "team-docs" )   @description("Owners edit.")
        policy   "doc-owner-edit"{ permit read,update
           on document
          when resource.owner==subject.sub
               unless (resource.archived)   reason   "owners may edit"}
    """) == dedent("""
        @owner("team-docs")
        @description("Owners edit.")
        policy "doc-owner-edit" {
          permit read, update on document
          when resource.owner == subject.sub
          unless resource.archived
          reason "owners may edit"
        }
    """)


def test_canonical_text_is_left_unchanged():
    text = dedent("""
        # Documents.

        @owner("team-docs")
        policy "doc-owner-edit" {
          permit read, update on document # owners
          when resource.owner == subject.sub
          unless has(resource.archived) and resource.archived
          reason "owners may edit their own documents"
        }

        policy "deny-all-secret" {
          forbid * on *
          when resource.classification == "secret"
        }

        schema resource document {
          owner: string
          archived?: bool
        }
    """)
    assert fmt(text) == text


def test_blocks_are_separated_by_exactly_one_blank_line():
    out = fmt("""
        policy "a" { permit x on y }



        policy "b" { permit x on y }   policy "c" { permit x on y }
    """)
    assert out == dedent("""
        policy "a" {
          permit x on y
        }

        policy "b" {
          permit x on y
        }

        policy "c" {
          permit x on y
        }
    """)


def test_blank_lines_inside_a_block_are_dropped():
    assert fmt("""
        policy "a" {

          permit x on y

          when subject.a

        }
    """) == 'policy "a" {\n  permit x on y\n  when subject.a\n}\n'


def test_clauses_keep_their_order():
    assert fmt("""
        policy "a" { permit x on y reason "r" unless subject.b when subject.a }
    """) == dedent("""
        policy "a" {
          permit x on y
          reason "r"
          unless subject.b
          when subject.a
        }
    """)


@pytest.mark.parametrize("names, printed", [
    ("*", "*"),
    ("read", "read"),
    ('"read"', "read"),                                  # a quoted bare word loses its quotes
    ('"documents:read", GET, billing.invoice, a-b/c', "documents:read, GET, billing.invoice, a-b/c"),
    ('"GET /x", "", "9lives", "é"', '"GET /x", "", "9lives", "é"'),
    ('"*"', '"*"'),                                      # the name "*", not any action
    ("on, when, permit", "on, when, permit"),            # keywords are names here
])
def test_names_are_bare_when_they_can_be(names, printed):
    out = fmt(f'policy "a" {{ permit {names} on {names} }}')
    assert out.splitlines()[1] == f"  permit {printed} on {printed}"


def test_ids_annotations_and_reasons_are_json_strings():
    out = fmt(r'''
        @note("tab\there \u00e9 \"q\" \/ \\")
        policy "id with \"quotes\"" { permit x on y reason "line\nbreak \u0001" }
    ''')
    assert out == dedent(r'''
        @note("tab\there é \"q\" / \\")
        policy "id with \"quotes\"" {
          permit x on y
          reason "line\nbreak \u0001"
        }
    ''')


def test_schemas():
    assert fmt("""
        schema subject { sub: string, roles: [string],
          department?: string, }
        schema resource "billing invoice" {
          meta?: {team:string tags:[ {a?: int,} ], e: {}, "x-y": int, "ok": int}
        }
        schema context{}
    """) == dedent("""
        schema subject {
          sub: string
          roles: [string]
          department?: string
        }

        schema resource "billing invoice" {
          meta?: { team: string, tags: [{ a?: int }], e: {}, "x-y": int, ok: int }
        }

        schema context {
        }
    """)


def test_empty_and_whitespace_files():
    assert format_source("") == ""
    assert format_source("\n\n  \n") == ""


def test_files_end_with_exactly_one_newline():
    assert fmt('policy "a" { permit x on y }').endswith("}\n")
    assert fmt('policy "a" { permit x on y }\n\n\n').endswith("}\n")
    assert fmt('policy "a" { permit x on y } # end').endswith("} # end\n")


def test_crlf_line_endings_become_lf():
    out = format_source('# c\r\npolicy "a" {\r\n  permit x on y # t\r\n}\r\n')
    assert out == '# c\npolicy "a" {\n  permit x on y # t\n}\n'


def test_tabs_and_odd_spacing():
    assert fmt('policy\t"a"\t{\tpermit\tx\ton\ty\twhen\tsubject.a==1}') == \
        'policy "a" {\n  permit x on y\n  when subject.a == 1\n}\n'


# ----------------------------------------------------------------------------- expressions

@pytest.mark.parametrize("source, printed", [
    # precedence: or < and < not < comparison < +,- < unary -
    ("a or b and c", "a or b and c"),
    ("(a or b) and c", "(a or b) and c"),
    ("a and (b or c)", "a and (b or c)"),
    ("(a and b) or c", "a and b or c"),
    ("not (a and b)", "not (a and b)"),
    ("(not a) and b", "not a and b"),
    ("not a == b", "not a == b"),
    ("(not a) == b", "(not a) == b"),
    ("not not a", "not not a"),
    ("(a == b) == c", "(a == b) == c"),                 # comparisons are non-associative
    ("a == (b == c)", "a == (b == c)"),
    ("(a < b) and (b < c)", "a < b and b < c"),
    ("(a + b) == (c - d)", "a + b == c - d"),
    ("(a + b) + c", "a + b + c"),                       # the left of + / - needs none
    ("a + (b + c)", "a + (b + c)"),                     # the right does
    ("a - (b - c)", "a - (b - c)"),
    ("a - (-b)", "a - -b"),
    ("-(a + b)", "-(a + b)"),
    ("-(-a)", "--a"),
    ("- a", "-a"),
    ("(((a)))", "a"),
    ("-(5)", "-5"),
    ("1 - -2.5", "1 - -2.5"),
    ("(a in b) == true", "(a in b) == true"),
    ("a not in [1, 2,]", "a not in [1, 2]"),
    ('s like "a*"', 's like "a*"'),
    ("(a or b) or c", "a or b or c"),
    ("a or (b or c)", "a or b or c"),                   # and/or chains are flat
    ("a and (b and (c and d))", "a and b and c and d"),
    ("f((a or b), [(c and d)])", "f(a or b, [c and d])"),
    ("x[(a or b)]", "x[a or b]"),
])
def test_expressions_get_minimal_parentheses(source, printed):
    assert expr(source) == printed


@pytest.mark.parametrize("source, printed", [
    ('"a\\u0041\\n\\"\\\\"', '"aA\\n\\"\\\\"'),
    ('"\\u00e9\\u4e2d"', '"é中"'),
    ('"\\/"', '"/"'),
    ("1", "1"),
    ("007", "7"),
    ("1.50", "1.5"),
    ("0.1", "0.1"),
    ("1.0e3", "1000.0"),
    ("10000000000000000.0", "1.0e+16"),                 # repr would say 1e+16: not a decimal here
    ("1.5e-7", "1.5e-07"),
    ("-0.0", "-0.0"),
    ("123456789012345678901234567890", "123456789012345678901234567890"),
    ("true", "true"), ("false", "false"), ("null", "null"),
    ("[ ]", "[]"),
    ("[1,[2,  [3]],]", "[1, [2, [3]]]"),
    ("f( )", "f()"),
    ("cidr_contains( \"10.0.0.0/8\" , context.ip )", 'cidr_contains("10.0.0.0/8", context.ip)'),
])
def test_literals_lists_and_calls(source, printed):
    assert expr(source) == printed


@pytest.mark.parametrize("source, printed", [
    ("subject.roles", "subject.roles"),
    ('subject["roles"]', "subject.roles"),
    ('subject["https://acme.example/roles"]', 'subject["https://acme.example/roles"]'),
    ('resource["a b"]["_x1"]["1x"]', 'resource["a b"]._x1["1x"]'),
    ('resource["é"]', 'resource["é"]'),
    ('resource[""]', 'resource[""]'),
    ("resource.tags[0]", "resource.tags[0]"),
    ("resource.tags[-1]", "resource.tags[-1]"),
    ("data.users[subject.sub].roles", "data.users[subject.sub].roles"),
    ("data.x[ 1 + 2 ][ (a) ]", "data.x[1 + 2][a]"),
    ('resource["in"]["not"]', 'resource["in"]["not"]'),
])
def test_paths(source, printed):
    assert expr(source) == printed


def test_a_very_long_expression_stays_on_one_line():
    terms = " and ".join(f"subject.a{i} == {i}" for i in range(300))
    out = fmt(f'policy "a" {{ permit x on y when {terms} }}')
    assert out.splitlines()[2] == f"  when {terms}"


def test_a_long_and_chain_formats_quickly():
    terms = "\n    and ".join(f"subject.a{i} == {i}" for i in range(5000))
    out = format_source(f'policy "a" {{\n  permit x on y\n  when {terms}\n}}\n')
    assert len(out.splitlines()) == 4


# ----------------------------------------------------------------------------- comments

def test_own_line_comments_go_before_what_follows_them():
    assert fmt("""
        # file header
        policy "a" {
        # about the effect
              permit x on y
            # about when
          when subject.a
        }
    """) == dedent("""
        # file header
        policy "a" {
          # about the effect
          permit x on y
          # about when
          when subject.a
        }
    """)


def test_trailing_comments_stay_at_the_end_of_their_line():
    assert fmt("""
        @owner("x")    # who owns it
        policy "a" {   # header
          permit x on y    # effect
          when subject.a   # why
          reason "r"       #reason
        }  # closing
        schema subject { # schema header
          sub: string    # the subject id
        }
    """) == dedent("""
        @owner("x") # who owns it
        policy "a" { # header
          permit x on y # effect
          when subject.a # why
          reason "r" #reason
        } # closing

        schema subject { # schema header
          sub: string # the subject id
        }
    """)


def test_a_comment_inside_a_multi_line_expression_moves_before_its_clause():
    assert fmt("""
        policy "a" {
          permit x on y
          when subject.a   # first part
            or (subject.b  # second part
                # own line inside
                and subject.c)  # last line
          unless subject.d
        }
    """) == dedent("""
        policy "a" {
          permit x on y
          # first part
          # second part
          # own line inside
          when subject.a or subject.b and subject.c # last line
          unless subject.d
        }
    """)


def test_comments_inside_a_multi_line_effect_or_header_move_before_it():
    assert fmt("""
        policy   # what
          "a"
        {
          permit read,   # reading
                 write   # writing
            on y
        }
    """) == dedent("""
        # what
        policy "a" {
          # reading
          # writing
          permit read, write on y
        }
    """)


def test_comments_at_the_end_of_a_block_stay_in_the_block():
    assert fmt("""
        policy "a" {
          permit x on y
        # todo: add a reason
              # and a test
        }
        schema subject {
          sub: string
          # more later
        }
    """) == dedent("""
        policy "a" {
          permit x on y
          # todo: add a reason
          # and a test
        }

        schema subject {
          sub: string
          # more later
        }
    """)


def test_comments_inside_object_types_move_before_the_field():
    assert fmt("""
        schema resource document {
          meta: {
            team: string   # the owning team
            # tags
            tags: [string]
          }   # meta
        }
    """) == dedent("""
        schema resource document {
          # the owning team
          # tags
          meta: { team: string, tags: [string] } # meta
        }
    """)


def test_top_level_comments_keep_one_blank_line_where_there_was_one():
    assert fmt("""
        # Licence header.


        # Section: documents
        # (two lines)

        # About policy a:
        policy "a" { permit x on y }
        # About b, right after a
        policy "b" { permit x on y }
        # the end

        # really
    """) == dedent("""
        # Licence header.

        # Section: documents
        # (two lines)

        # About policy a:
        policy "a" {
          permit x on y
        }

        # About b, right after a
        policy "b" {
          permit x on y
        }

        # the end

        # really
    """)


def test_a_file_of_only_comments():
    assert fmt("   # one\n#two   \n\n\n   # three") == "# one\n#two\n\n# three\n"


def test_comments_between_annotations():
    assert fmt("""
        @a("1")
          # between
        @b("2")  # b
        # before policy
        policy "x" { permit x on y }
    """) == dedent("""
        @a("1")
        # between
        @b("2") # b
        # before policy
        policy "x" {
          permit x on y
        }
    """)


def test_hashes_inside_strings_are_not_comments():
    out = fmt('policy "#a" { permit "#b" on y when subject.x == "# no" reason "#r" } # yes')
    assert out == dedent("""
        policy "#a" {
          permit "#b" on y
          when subject.x == "# no"
          reason "#r"
        } # yes
    """)


def test_comment_text_is_kept_but_trailing_spaces_go():
    out = fmt("#   spaced    out   \npolicy \"a\" { permit x on y }\n")
    assert out.startswith("#   spaced    out\n")


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("broken", [
    'policy "a" { permit x y on z }',
    'policy "a" { permit x on z ',
    'policy "a" { permit x on z when a < b < c }',
    'policy "" { permit x on z }',
    'policy "a" { permit x on z when "unterminated }',
    'policy "a" { permit x on z when ' + "not " * 100 + "a }",
])
def test_a_file_with_syntax_errors_is_never_formatted(broken):
    with pytest.raises(PolicyError) as info:
        format_source(broken, "bad.policy")
    assert all(d.file == "bad.policy" for d in info.value.diagnostics)


def test_every_syntax_error_of_the_file_is_reported():
    with pytest.raises(PolicyError) as info:
        format_source('policy "a" { permit x y on z }\npolicy "b" { permit on }\n', "bad.policy")
    assert [d.line for d in info.value.diagnostics] == [1, 2]


# ----------------------------------------------------------------------------- the example set

def example_files() -> list[Path]:
    return sorted((REPO / "policies").rglob("*.policy"))


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_the_example_policies_format_faithfully(path):
    text = path.read_text(encoding="utf-8")
    out = format_source(text, path.name)
    assert format_source(out, path.name) == out
    assert_same_meaning(text, out)
    assert_same_comments(text, out)


SUBJECTS = [{}, {"sub": "alice", "roles": ["admin"]}, {"sub": "bob", "roles": ["viewer", "editor"],
                                                   "department": "sales"}]
ATTRIBUTES = [{}, {"owner": "alice", "classification": "public", "archived": False, "tags": ["a"]},
              {"owner": "carol", "classification": "secret", "department": "sales", "amount": 1500.5}]
TIMES = ["2026-03-02T10:00:00Z", "2026-03-07T22:30:00+01:00"]


def test_the_formatted_example_set_decides_like_the_original():
    import pdp
    from pdp.service.policies import read_policy_dir

    files = read_policy_dir(REPO / "policies")
    formatted = {name: format_source(text, name) if name.endswith(".policy") else text
                 for name, text in files.items()}
    original, again = pdp.compile_policies(files), pdp.compile_policies(formatted)
    types = {t for p in original.policies for t in p["resource_types"] or ["thing"]}
    actions = {a for p in original.policies for a in p["actions"] or ["act"]}
    checked = 0
    for rtype in sorted(types):
        for action in sorted(actions):
            for subject in SUBJECTS:
                for attributes in ATTRIBUTES:
                    for time in TIMES:
                        request = {"subject": subject, "action": action,
                                   "resource": {"type": rtype, "id": "r1", "attributes": attributes},
                                   "context": {"time": time, "ip": "10.1.2.3"}}
                        a, b = original.decide(request), again.decide(request)
                        assert (a.decision, a.policies, a.reasons) == (b.decision, b.policies, b.reasons)
                        assert [(e["code"], e["policy"]) for e in a.errors] == \
                            [(e["code"], e["policy"]) for e in b.errors]
                        checked += 1
    assert checked > 100
