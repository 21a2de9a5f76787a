"""Properties of the formatter, over generated policies.

A strategy builds random syntax trees (paths, literals, comparisons, and/or/not,
arithmetic, calls, lists) and writes them as messy source: every compound
sub-expression in parentheses, random spacing and line breaks, comments between
tokens. Then:

- formatting is idempotent: ``fmt(fmt(x)) == fmt(x)``;
- the formatted text parses to the same tree as the messy one (positions and the
  grouping of and/or chains aside) and keeps every comment;
- the formatted set compiles exactly when the messy one does, and decides every
  generated request exactly like it: same decision, determining policies,
  reasons and errors (by code and policy; messages name source positions).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pdp.errors import PolicyError
from pdp.lang import ast
from pdp.lang.formatter import format_expr, format_source, normalize
from pdp.lang.parser import parse_expression, parse_module

ROOTS = ("subject", "resource", "context", "action")
KEYS = ("a", "b", "n", "tags", "x y", "é")
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ----------------------------------------------------------------------------- trees

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",), max_codepoint=0x2FFF), max_size=8)
numbers = st.one_of(st.integers(-1000, 1000),
                    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
                    st.sampled_from([1e16, 1.5e-7, 0.1, -0.0, 10**20]))
literals = st.one_of(texts, numbers, st.booleans(), st.none()).map(ast.Literal)


@st.composite
def paths(draw, exprs=None, min_steps=0):
    steps = draw(st.lists(st.one_of(
        st.sampled_from(KEYS),
        st.integers(-2, 2).map(ast.Literal),
        *([exprs] if exprs is not None else [])), min_size=min_steps, max_size=3))
    return ast.Path(draw(st.sampled_from(ROOTS)), steps)


def compound(children):
    comparisons = st.builds(ast.Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"]),
                            children, children)
    likes = st.builds(ast.Compare, st.just("like"), children,
                      st.sampled_from(["a*", "*", "\\*x", "é*b"]).map(ast.Literal))
    bools = st.builds(ast.BoolOp, st.sampled_from(["and", "or"]), st.lists(children, min_size=2, max_size=4))
    calls = st.one_of(
        st.builds(lambda p: ast.Call("has", [p]), paths()),
        st.builds(lambda x: ast.Call("len", [x]), children),
        st.builds(lambda x: ast.Call("lower", [x]), children),
        st.builds(lambda x, y: ast.Call("starts_with", [x, y]), children, children),
        st.builds(lambda x, y: ast.Call("contains", [x, y]), children, children),
    )
    return st.one_of(
        comparisons, likes, bools, calls,
        st.builds(ast.Unary, st.sampled_from(["not", "-"]), children),
        st.builds(ast.Arith, st.sampled_from(["+", "-"]), children, children),
        st.builds(ast.ListExpr, st.lists(children, max_size=3)),
        paths(children),
    )


exprs = st.recursive(st.one_of(literals, paths()), compound, max_leaves=12)

# Conditions that the checker accepts more often (so that most generated sets
# compile and are decided): booleans built from comparisons of paths and values.
small = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.5]), st.sampled_from(["a", "ab", "", "é"]),
                  st.booleans(), st.none()).map(ast.Literal)
strings = st.sampled_from(["a", "ab", "", "é"]).map(ast.Literal)
attrs = paths(min_steps=1)
numeric = st.recursive(
    st.one_of(attrs, st.integers(-3, 3).map(ast.Literal), st.sampled_from([0.5, -1.5]).map(ast.Literal)),
    lambda v: st.one_of(st.builds(ast.Arith, st.sampled_from(["+", "-"]), v, v),
                        st.builds(ast.Unary, st.just("-"), v),
                        st.builds(lambda x: ast.Call("len", [x]), attrs)),
    max_leaves=3)
values = st.one_of(small, numeric, attrs, st.builds(ast.ListExpr, st.lists(st.one_of(small, attrs), max_size=3)),
                   paths(st.one_of(attrs, strings, st.integers(-1, 1).map(ast.Literal)), min_steps=1))
atoms = st.one_of(
    attrs,
    st.booleans().map(ast.Literal),
    st.builds(ast.Compare, st.sampled_from(["==", "!="]), values, values),
    st.builds(ast.Compare, st.sampled_from(["<", "<=", ">", ">="]), numeric, numeric),
    st.builds(ast.Compare, st.sampled_from(["<", ">="]), st.one_of(attrs, strings), st.one_of(attrs, strings)),
    st.builds(ast.Compare, st.sampled_from(["in", "not in"]), values,
              st.one_of(attrs, st.builds(ast.ListExpr, st.lists(values, max_size=3)))),
    st.builds(ast.Compare, st.just("like"), attrs, st.sampled_from(["a*", "*", "é*"]).map(ast.Literal)),
    st.builds(lambda p: ast.Call("has", [p]), attrs),
    st.builds(lambda x, y: ast.Call("starts_with", [x, y]), attrs, strings),
    st.builds(lambda x, y: ast.Call("contains", [x, y]), attrs, values),
)
conditions = st.recursive(
    atoms,
    lambda c: st.one_of(st.builds(ast.BoolOp, st.sampled_from(["and", "or"]), st.lists(c, min_size=2, max_size=3)),
                        st.builds(ast.Unary, st.just("not"), c)),
    max_leaves=6)

names = st.one_of(st.sampled_from(["read", "update", "documents:read", "a.b", "GET /x", "on", "*x"]),
                  st.text(alphabet="ab -", min_size=1, max_size=4))


@st.composite
def policies(draw, pid, conditions=exprs):
    clauses = []
    for kind in draw(st.permutations(["when", "unless", "reason"]))[:draw(st.integers(0, 3))]:
        clauses.append(ast.Clause(kind, draw(texts) if kind == "reason" else draw(conditions)))
    any_actions = draw(st.booleans())
    return ast.Policy(
        id=pid, effect=draw(st.sampled_from(["permit", "forbid"])),
        actions=None if any_actions else draw(st.lists(names, min_size=1, max_size=3)),
        resource_types=draw(st.one_of(st.none(), st.lists(st.sampled_from(["doc", "file", "x-y"]),
                                                          min_size=1, max_size=2))),
        clauses=clauses,
        annotations=[ast.Annotation("owner", draw(texts))] if draw(st.booleans()) else [])


# ----------------------------------------------------------------------------- messy source

class Messy:
    """Writes a tree as valid but untidy source, drawing the untidiness."""

    def __init__(self, draw):
        self.draw = draw
        self.comments = 0

    def gap(self) -> str:
        """Whitespace between two tokens: spaces, a line break, or a comment and a line break."""
        kind = self.draw(st.sampled_from([" ", " ", " ", "  ", "\n    ", "\t", "comment"]))
        if kind == "comment":
            self.comments += 1
            return f"  # note {self.comments} ( ] \"\n      "
        return kind

    def name(self, n: str) -> str:
        bare = n.replace("*", "").replace(" ", "") == n and n[:1].isalpha()
        return n if bare and not self.draw(st.booleans()) else json.dumps(n)

    def string(self, s: str) -> str:
        return json.dumps(s, ensure_ascii=self.draw(st.booleans()))

    def expr(self, node) -> str:
        g = self.gap
        if isinstance(node, ast.Literal):
            if isinstance(node.value, str):
                return self.string(node.value)
            return format_expr(node)
        if isinstance(node, ast.Path):
            out = node.root
            for step in node.steps:
                if isinstance(step, str):
                    use_dot = step.isidentifier() and step.isascii() and self.draw(st.booleans())
                    out += f".{step}" if use_dot else f"[{g()}{self.string(step)}{g()}]"
                else:
                    out += f"[{g()}{self.expr(step)}{g()}]"
            return out
        if isinstance(node, ast.ListExpr):
            items = [self.expr(i) for i in node.items]
            trailing = "," if items and self.draw(st.booleans()) else ""
            return f"[{g()}" + f",{g()}".join(items) + f"{trailing}{g()}]"
        if isinstance(node, ast.Call):
            return f"{node.name}({g()}" + f",{g()}".join(self.expr(a) for a in node.args) + f"{g()})"
        return f"({g()}{self.compound(node)}{g()})"

    def compound(self, node) -> str:
        g = self.gap
        if isinstance(node, ast.BoolOp):
            return f"{g()}{node.op}{g()}".join(self.expr(t) for t in node.terms)
        if isinstance(node, ast.Unary):
            return f"{node.op}{g()}{self.expr(node.operand)}"
        op = "not in" if getattr(node, "op", "") == "not in" else node.op
        if op == "not in":
            op = f"not{g()}in"
        return f"{self.expr(node.left)}{g()}{op}{g()}{self.expr(node.right)}"

    def policy(self, p: ast.Policy) -> str:
        g = self.gap
        out = "".join(f"@{a.name}({self.string(a.value)}){g()}" for a in p.annotations)
        out += f"policy{g()}{self.string(p.id)}{g()}{{{g()}{p.effect}{g()}"
        out += "*" if p.actions is None else f",{g()}".join(self.name(n) for n in p.actions)
        out += f"{g()}on{g()}"
        out += "*" if p.resource_types is None else f",{g()}".join(self.name(n) for n in p.resource_types)
        for c in p.clauses:
            value = self.string(c.value) if c.kind == "reason" else self.expr(c.value)
            out += f"{g()}{c.kind}{g()}{value}"
        return out + f"{g()}}}"


@st.composite
def messy_files(draw, conditions=exprs):
    """(source text, the trees it was written from)."""
    n = draw(st.integers(1, 3))
    trees = [draw(policies(f"p{i}", conditions)) for i in range(n)]
    writer = Messy(draw)
    parts = []
    for t in trees:
        parts.append(draw(st.sampled_from(["", "\n", "\n\n\n", "# between\n"])))
        parts.append(writer.policy(t))
    return "".join(parts) + draw(st.sampled_from(["", "\n", "   \n\n", "\n# the end"])), trees


# ----------------------------------------------------------------------------- properties

def parse_or_skip(text: str) -> ast.Module:
    module, diagnostics = parse_module(text, "gen.policy")
    if any(d.code == "nesting_too_deep" for d in diagnostics):
        assume(False)
    assert diagnostics == [], [d.render() for d in diagnostics] + [text]
    return module


@SETTINGS
@given(messy_files())
def test_formatting_is_idempotent_and_keeps_meaning_and_comments(generated):
    text, _trees = generated
    module = parse_or_skip(text)
    once = format_source(text, "gen.policy")
    assert format_source(once, "gen.policy") == once
    again = parse_or_skip(once)
    assert normalize(again.items) == normalize(module.items)
    assert sorted(c.text.rstrip() for c in again.comments) == sorted(c.text.rstrip() for c in module.comments)
    assert once.endswith("\n") and not once.endswith("\n\n")


@SETTINGS
@given(exprs)
def test_printed_expressions_parse_back_to_what_was_printed(tree):
    """The printer alone: its output parses, and from there printing and parsing
    are a fixed point. (A generated tree may hold what the parser never builds,
    such as ``-`` applied to the literal ``0``, printed ``-0`` and read back as ``0``.)"""
    parsed = parse_expression(format_expr(tree))
    text = format_expr(parsed)
    again = parse_expression(text)
    assert normalize(again) == normalize(parsed)
    assert format_expr(again) == text


# ----------------------------------------------------------------------------- same decisions

pdp = pytest.importorskip("pdp")
needs_engine = pytest.mark.skipif(not hasattr(pdp, "compile_policies"), reason="the engine is not there yet")

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from([0.5, -2.0]),
              st.sampled_from(["a", "ab", "", "é", "GET /x", "2026-01-31T09:00:00Z"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
    max_leaves=6)
attributes = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4)
requests = st.fixed_dictionaries({
    "subject": attributes,
    "action": st.one_of(names, st.builds(lambda n, a: {"name": n, "attributes": a}, names, attributes)),
    "resource": st.builds(lambda t, a: {"type": t, "id": "r", "attributes": a},
                          st.sampled_from(["doc", "file", "x-y", "other"]), attributes),
    "context": attributes,
})


def outcome(policy_set, request):
    d = policy_set.decide(request)
    return d.decision, list(d.policies), list(d.reasons), [(e["code"], e["policy"]) for e in d.errors]


@needs_engine
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messy_files(conditions), st.lists(requests, min_size=1, max_size=8))
def test_the_formatted_set_decides_exactly_like_the_original(generated, reqs):
    text, _trees = generated
    parse_or_skip(text)
    formatted = format_source(text, "gen.policy")
    try:
        original = pdp.compile_policies({"gen.policy": text})
    except PolicyError as exc:
        with pytest.raises(PolicyError) as again:
            pdp.compile_policies({"gen.policy": formatted})
        assert sorted(d.code for d in again.value.diagnostics) == sorted(d.code for d in exc.diagnostics)
        return
    tidy = pdp.compile_policies({"gen.policy": formatted})
    for request in reqs:
        assert outcome(tidy, request) == outcome(original, request), (text, formatted, request)
