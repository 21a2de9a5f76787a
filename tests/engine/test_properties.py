"""Properties: the engine against a tree-walking reference, never raising, and
deciding the same whatever the order of policies."""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_support import T0, glob_match, ref_applies, ref_decide, ref_env, ref_eq, req, summary
from pdp.engine import runtime as rt
from pdp.engine.policyset import PolicySet
from pdp.engine.runtime import EvalError
from pdp.lang import ast
from pdp.lang.values import parse_timestamp

#: PDP_PROPERTY_EXAMPLES=5000 for a longer run.
SETTINGS = settings(max_examples=int(os.environ.get("PDP_PROPERTY_EXAMPLES", "300")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- values and requests

#: Values where Python and the language disagree most (bools and 0/1, ints and floats …).
TRICKY = [None, True, False, True, False, 0, 1, 0, 1, -1, 2, 0.0, 1.0, -0.0, 1.5, 1e20]
TEXTS = ["", "a", "b", "ab", "aab", "A", "x*y", "10.0.0.1", "::1", "10.0.0.0/8", "2026-03-02T10:00:00Z",
         "1h", "Europe/Paris", "é"]
scalars = st.one_of(st.sampled_from(TRICKY), st.sampled_from(TEXTS), st.integers(-3, 3))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.sampled_from(["x", "y", "a", "0"]), c, max_size=3), max_leaves=6)

contexts = st.fixed_dictionaries({}, optional={
    "a": json_values, "b": json_values, "c": json_values,
    "m": st.dictionaries(st.sampled_from(["x", "y", "a", "b", ""]), json_values, max_size=4),
    "l": st.lists(json_values, max_size=4)})

DATA = {"d": {"x": [1, "a"], "a": {"y": True}}, "nets": ["10.0.0.0/8", "::/0"]}


# --------------------------------------------------------------------------- expressions

def _path(root, *steps):
    return ast.Path(root, list(steps))


leaf_paths = st.sampled_from([
    ("context", "a"), ("context", "b"), ("context", "c"), ("context", "m", "x"), ("context", "m"),
    ("context", "l"), ("context", "time"), ("subject", "sub"), ("data", "d", "x"), ("data", "d"),
    ("data", "nets"), ("context", "l", 0), ("context", "l", -1), ("context", "l", -3), ("context", "l", 2),
    ("context", "nope"),
]).map(lambda t: ast.Path(t[0], [s if isinstance(s, str) else ast.Literal(s) for s in t[1:]]))

literals = scalars.filter(lambda v: not isinstance(v, float) or abs(v) < 1e300).map(ast.Literal)
leaves = st.one_of(literals, leaf_paths)

CALLS = {"len": 1, "lower": 1, "upper": 1, "starts_with": 2, "ends_with": 2, "contains": 2,
         "contains_any": 2, "contains_all": 2, "ip": 1, "cidr_contains": 2, "time": 1, "duration": 1,
         "hour": (1, 2), "weekday": (1, 2)}


def _calls(children):
    out = []
    for name, n in CALLS.items():
        counts = n if isinstance(n, tuple) else (n,)
        for k in counts:
            out.append(st.lists(children, min_size=k, max_size=k).map(lambda a, name=name: ast.Call(name, a)))
    return st.one_of(out)


def _extend(children):
    return st.one_of(
        st.builds(ast.Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"]),
                  children, children),
        st.builds(lambda left, pattern: ast.Compare("like", left, ast.Literal(pattern)),
                  children, st.sampled_from(["*", "a*", "*b", "a*b", "\\*", "", "a", "*a*", "*a*a*",
                                             "a*a*b", "*a*b*", "a\\*"])),
        st.builds(ast.BoolOp, st.sampled_from(["and", "or"]), st.lists(children, min_size=2, max_size=3)),
        st.builds(ast.Unary, st.sampled_from(["not", "-"]), children),
        st.builds(ast.Arith, st.sampled_from(["+", "-"]), children, children),
        st.builds(ast.ListExpr, st.lists(children, max_size=3)),
        st.builds(lambda k: ast.Path("context", ["m", k]), children),
        st.builds(lambda k: ast.Path("data", ["d", k, "y"]), children),
        st.builds(lambda p: ast.Call("has", [p]), st.one_of(
            leaf_paths, st.builds(lambda k: ast.Path("context", ["m", k]), children))),
        _calls(children),
    )


expressions = st.recursive(leaves, _extend, max_leaves=6)
conditions = st.one_of(expressions, st.builds(ast.Compare, st.just("=="), expressions, expressions))


def _policy(pid, effect, when, unless=None, actions=None, types=None):
    clauses = [ast.Clause("when", when)]
    if unless is not None:
        clauses.append(ast.Clause("unless", unless))
    return ast.Policy(pid, effect, actions, types, clauses, file="gen.policy", line=1, column=1)


def _context(ctx):
    return {"time": T0, **ctx}


# --------------------------------------------------------------------------- properties

@SETTINGS
@given(conditions, contexts)
def test_engine_agrees_with_the_reference_evaluator(expr, ctx):
    p = _policy("p", "permit", expr)
    ps = PolicySet([p], DATA)
    request = req(subject={"sub": "a"}, context=ctx)
    got = ps.decide(request)
    expected = ref_applies(p, ref_env(request, DATA))
    if expected is True:
        assert (got.decision, got.errors) == ("allow", []), got
    elif expected is False:
        assert (got.decision, got.errors) == ("deny", []), got
    else:
        assert got.decision == "deny" and [e["code"] for e in got.errors] == [expected], (got, expected)


@SETTINGS
@given(conditions, contexts)
def test_fast_and_checked_versions_agree(expr, ctx):
    ps = PolicySet([_policy("p", "permit", expr)], DATA)
    (c,) = ps._compiled
    checked = ps._checked_version(c)
    ctx = _context(ctx)
    ctx["time"] = parse_timestamp(ctx["time"])
    args = ({"sub": "a"}, {"name": "read"}, {"type": "document", "id": "d1"}, ctx, DATA)

    def run(fn):
        try:
            return ("value", fn(*args))
        except EvalError as e:
            return ("error", e.code, e.message, e.site, e.step)
        except RecursionError:
            return ("recursion",)
        except Exception as e:               # the fast version may fail in Python's words
            return ("python", type(e).__name__)
    fast, slow = run(c.fast), run(checked)
    assert slow[0] != "python", slow
    if fast[0] != "python":
        assert fast == slow


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["permit", "forbid"]), conditions,
                          st.one_of(st.none(), conditions),
                          st.sampled_from([None, ["read"], ["write", "read"], ["write"]]),
                          st.sampled_from([None, ["document"], ["folder"]])),
                min_size=1, max_size=6),
       contexts, st.sampled_from(["read", "write"]), st.randoms(use_true_random=False))
def test_decisions_agree_with_the_reference_and_not_with_the_order(specs, ctx, action, rnd):
    policies = [_policy(f"p{i}", eff, when, unless, actions, types)
                for i, (eff, when, unless, actions, types) in enumerate(specs)]
    request = req(subject={"sub": "a"}, action=action, context=ctx)
    ps = PolicySet(policies, DATA)
    got = summary(ps.decide(request))
    assert got == ref_decide(policies, request, DATA)
    shuffled = policies[:]
    rnd.shuffle(shuffled)
    assert summary(PolicySet(shuffled, DATA).decide(request)) == got


@SETTINGS
@given(json_values, json_values)
def test_equality_and_membership_agree_with_the_reference(a, b):
    assert rt.eq(a, b) is ref_eq(a, b)
    assert rt.member(a, [b, 7], None) is (ref_eq(a, b) or ref_eq(a, 7))
    if isinstance(a, list) and isinstance(b, list):
        assert rt.contains_any(a, b, None) is any(ref_eq(y, x) for y in b for x in a)
        assert rt.contains_all(a, b, None) is all(any(ref_eq(y, x) for x in a) for y in b)
        big = a * 200
        assert rt.contains_all(big, b, None) is all(any(ref_eq(y, x) for x in a) for y in b)


@SETTINGS
@given(json_values, st.one_of(st.sampled_from(TRICKY), st.sampled_from(TEXTS),
                              st.lists(st.sampled_from(TRICKY + TEXTS), max_size=3)))
def test_comparisons_with_literals_agree_with_the_reference(value, literal):
    for op in ("==", "!=", "in", "not in"):
        expr = ast.Compare(op, ast.Path("context", ["v"]), ast.Literal(literal) if not isinstance(literal, list)
                           else ast.ListExpr([ast.Literal(x) for x in literal]))
        p = _policy("p", "permit", expr)
        request = req(context={"v": value})
        assert summary(PolicySet([p]).decide(request)) == ref_decide([p], request), (op, value, literal)
        swapped = _policy("p", "permit", ast.Compare(op, expr.right, expr.left))
        assert summary(PolicySet([swapped]).decide(request)) == ref_decide([swapped], request)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="ab*\\", max_size=8), st.text(alphabet="ab*\\", max_size=8))
def test_like_agrees_with_a_dynamic_programming_matcher(s, pattern):
    assert rt.like(s, rt.like_segments(pattern), None) is glob_match(s, pattern)


# --------------------------------------------------------------------------- never raises

any_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
                        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                        max_leaves=8)
shaped = st.fixed_dictionaries(
    {"subject": st.one_of(st.dictionaries(st.sampled_from(["sub", "roles", "exp", "level"]), any_json), any_json),
     "action": st.one_of(st.sampled_from(["read", "write"]),
                         st.fixed_dictionaries({"name": st.sampled_from(["read", "write"])},
                                               optional={"attributes": any_json}), any_json),
     "resource": st.one_of(st.fixed_dictionaries({"type": st.sampled_from(["document", "folder"])},
                                                 optional={"id": any_json, "attributes": st.one_of(
                                                     st.dictionaries(st.sampled_from(["owner", "tags", "archived"]),
                                                                     any_json), any_json)}),
                           any_json)},
    optional={"context": st.one_of(contexts, st.fixed_dictionaries({}, optional={"time": any_json, "ip": any_json}),
                                   any_json), "extra": any_json})

RICH = PolicySet([
    _policy("a", "permit", ast.Compare("==", _path("resource", "owner"), _path("subject", "sub"))),
    _policy("b", "forbid", ast.Path("resource", ["archived"]), types=["document"]),
    _policy("c", "permit", ast.Compare("in", ast.Literal("admin"), _path("subject", "roles"))),
    _policy("d", "permit", ast.BoolOp("and", [
        ast.Compare("<", ast.Call("time", [_path("subject", "exp")]), _path("context", "time")),
        ast.Call("cidr_contains", [ast.Literal("10.0.0.0/8"), _path("context", "ip")])]), actions=["read"]),
    _policy("e", "permit", ast.Compare("like", ast.Call("lower", [_path("resource", "tags", ast.Literal(0))]),
                                       ast.Literal("pub*")), unless=ast.Compare(">", _path("subject", "level"),
                                                                                ast.Literal(3))),
], DATA)


@SETTINGS
@given(st.one_of(shaped, any_json))
def test_the_engine_never_raises_on_any_request(request):
    d = RICH.decide(request)
    assert d.decision in ("allow", "deny")
    assert all(set(e) == {"code", "message", "policy", "location"} for e in d.errors)
    if d.decision == "allow":
        assert d.policies and all(e["code"] != "invalid_request" for e in d.errors)
    assert d.errors == sorted(d.errors, key=lambda e: e["policy"] or "")


@SETTINGS
@given(st.sampled_from(["permit", "forbid"]), conditions, st.one_of(shaped, any_json))
def test_generated_policies_never_raise_on_any_request(effect, expr, request):
    d = PolicySet([_policy("p", effect, expr)], DATA).decide(request)
    assert d.decision in ("allow", "deny")
    if effect == "forbid" and d.errors and d.errors[0]["code"] != "invalid_request":
        assert (d.decision, d.policies) == ("deny", ["p"])          # fail closed
