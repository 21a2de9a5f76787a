"""Code generation: what the generated Python may use, how deep and long
expressions compile, and that the fast and checked versions agree."""

import ast as pyast
import re

import pytest

from engine_support import make_set, req, run
from pdp.engine import codegen, runtime
from pdp.engine.policyset import PolicySet
from pdp.lang import ast

EVERYTHING = '''
policy "all" {
  permit * on *
  when (resource.owner == subject.sub or "admin" in subject.roles)
   and resource.tags[0] != "secret" and resource.tags[-1] like "pub*"
   and has(resource.meta.x) and not has(data.users[subject.sub].banned)
   and len(subject.roles) >= 1 and lower(subject.sub) != upper(subject.sub)
   and contains(subject.roles, "user") and contains_any(subject.roles, ["user"])
   and contains_all(subject.roles, data.roles) and starts_with(subject.sub, "a")
   and ends_with(subject.sub, "e") and cidr_contains("10.0.0.0/8", context.ip)
   and ip(context.ip) == ip("10.0.0.1") and time(subject.exp) > context.time - duration("1h")
   and hour(context.time) + weekday(context.time, "UTC") > -1 and resource.n - 1 < 2.5
   and subject.level in [1, 2, 3] and resource.tags[context.i] not in ["x"]
  unless resource.archived
}
'''

ALLOWED_CALLS = {"_" + n for n in runtime.NAMES}


def test_generated_code_uses_only_the_runtime_its_constants_and_the_roots():
    ps = make_set(EVERYTHING, {"users": {}, "roles": ["user"]})
    tree = pyast.parse(ps.source())
    names = {n.id for n in pyast.walk(tree) if isinstance(n, pyast.Name)}
    allowed = ALLOWED_CALLS | set(ast.ROOTS) | {"_t"}
    assert {n for n in names if not re.fullmatch(r"_k\d+|_h\d+|_p\d+(_checked)?", n)} <= allowed
    attrs = {n.attr for n in pyast.walk(tree) if isinstance(n, pyast.Attribute)}
    assert attrs <= {"__class__"}
    assert not any(isinstance(n, (pyast.Import, pyast.ImportFrom, pyast.Global, pyast.Nonlocal,
                                  pyast.ClassDef, pyast.AsyncFunctionDef, pyast.While, pyast.For))
                   for n in pyast.walk(tree))


def test_generated_module_has_no_builtins():
    ps = make_set('policy "p" { permit * on * }')
    assert ps._ns["__builtins__"] == {}


def test_everything_together_evaluates():
    ps = make_set(EVERYTHING, {"users": {}, "roles": ["user"]})
    r = req(subject={"sub": "alice", "roles": ["user"], "exp": 1_800_000_000, "level": 2},
            attributes={"owner": "alice", "tags": ["public", "pub2"], "meta": {"x": None}, "n": 3,
                        "archived": False},
            context={"ip": "10.0.0.1", "i": 0})
    d = ps.decide(r)
    assert (d.decision, d.errors) == ("allow", [])
    r["resource"]["attributes"]["tags"] = ["public", "secret"]
    assert ps.decide(r).decision == "deny"
    del r["resource"]["attributes"]["meta"]
    assert ps.decide(r).errors == []


def test_show_source_names_each_policy():
    ps = make_set('policy "p" { permit * on * when context.a == 1 }\npolicy "q" { forbid * on * }',
                  file="x.policy")
    src = ps.source()
    assert "# policy 'p': permit at 'x.policy' line 1" in src
    assert "def _p0(subject, action, resource, context, data):" in src
    assert "def _p0_checked(" in src
    assert "def _p1(" in src


# --------------------------------------------------------------------------- specialisation

def test_comparisons_with_string_literals_are_plain_python():
    src = make_set('policy "p" { permit * on * when resource.kind == "doc" and '
                   'resource.c in ["a", "b"] }').source()
    assert "resource['kind'] == 'doc'" in src
    assert "_eq(" not in src and "_member(" not in src


def test_calls_on_literals_are_folded_at_compile_time():
    src = make_set('policy "p" { permit * on * when context.time - duration("1h") > '
                   'time("2026-01-01T00:00:00Z") and hour(context.time, "Europe/Paris") > 1 }').source()
    assert "_duration(" not in src and "_time(" not in src
    assert "# _k0 = Duration('1h')" in src


def test_static_reference_data_is_folded():
    ps = make_set('policy "p" { permit * on * when subject.sub in data.admins and has(data.x) }',
                  {"admins": ["alice"], "x": 1})
    assert "data[" not in ps.source()
    assert ps.decide(req()).decision == "allow"


def test_a_literal_error_is_reported_at_run_time_not_at_compile_time():
    ps = make_set('policy "p" {\n  permit * on *\n  when context.time > time("nope")\n}')
    (e,) = ps.decide(req()).errors
    assert (e["code"], e["location"]) == ("invalid_argument", "test.policy:3:23")


# --------------------------------------------------------------------------- size and depth

def test_a_20000_term_and_chain_compiles_and_evaluates():
    terms = [ast.Compare("==", ast.Path("context", [f"k{i % 10}"]), ast.Literal(f"v{i % 10}"))
             for i in range(20_000)]
    terms.append(ast.Path("context", ["last"]))
    p = ast.Policy("chain", "permit", None, None, [ast.Clause("when", ast.BoolOp("and", terms))])
    ps = PolicySet([p])
    ctx = {f"k{i}": f"v{i}" for i in range(10)}
    assert ps.decide(req(context={**ctx, "last": True})).decision == "allow"
    assert ps.decide(req(context={**ctx, "last": False})).decision == "deny"
    assert ps.decide(req(context={**ctx, "last": 1})).errors[0]["code"] == "not_boolean"
    assert ps.decide(req(context={**ctx, "k3": "x"})).errors == []                # short-circuit


def test_a_20000_term_or_chain_of_mixed_terms():
    terms = [ast.BoolOp("and", [ast.Call("has", [ast.Path("context", [f"k{i}"])]),
                                ast.Path("context", [f"k{i}"])]) for i in range(20_000)]
    p = ast.Policy("chain", "permit", None, None, [ast.Clause("when", ast.BoolOp("or", terms))])
    ps = PolicySet([p])
    assert ps.decide(req(context={"k19999": True})).decision == "allow"
    assert ps.decide(req(context={"k5": "x"})).errors[0]["code"] == "not_boolean"


def _nest(kind, depth):
    node = ast.Path("context", ["x"])
    for i in range(depth):
        if kind == "not":
            node = ast.Unary("not", node)
        elif kind == "neg":
            node = ast.Unary("-", node)
        elif kind == "list":
            node = ast.ListExpr([node])
        elif kind == "call":
            node = ast.Call("lower", [node])
        elif kind == "arith":
            node = ast.Arith("+", node, ast.Path("context", ["one"]))
        elif kind == "compare":
            node = ast.Compare("==", node, ast.Literal(True))
        elif kind == "key":
            node = ast.Path("context", ["m", node])
        elif kind == "has":
            node = ast.BoolOp("and", [ast.Call("has", [ast.Path("context", ["m", node])]), ast.Literal(True)])
        elif kind == "bool":
            node = ast.BoolOp("or" if i % 2 else "and", [ast.Path("context", ["t"]), node])
    return node


@pytest.mark.parametrize("kind,levels", [("not", 1), ("neg", 1), ("list", 1), ("call", 1), ("arith", 1),
                                         ("compare", 1), ("key", 1), ("has", 3), ("bool", 1)])
def test_expressions_nested_deeper_than_the_parser_allows_compile(kind, levels):
    # the parser stops at ast.MAX_DEPTH; a stored tree may be up to codegen.MAX_IR_DEPTH deep
    expr = _nest(kind, (codegen.MAX_IR_DEPTH - 2) // levels)
    p = ast.Policy("deep", "permit", None, None, [ast.Clause("when", ast.Compare("==", expr, expr))])
    ps = PolicySet([p])
    d = ps.decide(req(context={"x": True, "t": True, "one": 1, "m": {}}))
    assert d.decision in ("allow", "deny")


def test_fast_and_checked_versions_agree_on_errors():
    ps = make_set('policy "p" {\n  permit * on *\n  when resource.a.b.c == 1\n}')
    for attrs, message in [({}, "p: resource has no attribute 'a'"),
                           ({"a": {}}, "p: resource.a has no attribute 'b'"),
                           ({"a": {"b": []}}, "p: resource.a.b is a list, not an object: cannot read attribute 'c'"),
                           ({"a": {"b": None}}, "p: resource.a.b is null, not an object: cannot read attribute 'c'")]:
        assert [e["message"] for e in ps.decide(req(attributes=attrs)).errors] == [message]
    assert ps.decide(req(attributes={"a": {"b": {"c": 1}}})).decision == "allow"


def test_runtime_names_are_all_that_generated_code_sees():
    ps = make_set('policy "p" { permit * on * }')
    visible = {k for k in ps._ns if not re.fullmatch(r"_k\d+|_h\d+|_p\d+(_checked)?", k)}
    assert visible == ALLOWED_CALLS | {"__builtins__"}


def test_run_helper_sees_type_mismatch_for_bool_index():
    assert run("context.l[context.b] == 1", l=[1, 2], b=True) == "invalid_index"
