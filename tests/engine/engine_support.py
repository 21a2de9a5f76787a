"""Helpers for the engine tests: policy sets from text, requests, outcomes, and a
reference evaluator that walks the tree (the spec, written as directly as possible)
to compare the compiled engine against."""

from __future__ import annotations

import ipaddress
import math

from pdp.engine.policyset import Decision, PolicySet
from pdp.lang import ast
from pdp.lang.parser import parse_expression, parse_source
from pdp.lang.values import (
    Duration, Timestamp, check_zone, parse_cidr, parse_duration, parse_ip, parse_timestamp,
    timestamp_from_seconds,
)

#: A Monday, 10:00 UTC.
T0 = "2026-03-02T10:00:00Z"


def make_set(text: str, data: dict | None = None, file: str = "test.policy") -> PolicySet:
    """A policy set straight from policy text (parsed, not checked: these tests are
    about run-time behaviour, including what the checker would refuse)."""
    return PolicySet(parse_source(text, file).policies, data or {})


def req(subject=None, action="read", type="document", id="d1", attributes=None, context=None):
    return {"subject": {"sub": "alice"} if subject is None else subject,
            "action": action,
            "resource": {"type": type, "id": id, "attributes": attributes or {}},
            "context": {"time": T0, **(context or {})}}


def result(d: Decision):
    """``True`` (allow), ``False`` (deny without errors) or the first error's code."""
    if d.errors:
        return d.errors[0]["code"]
    return d.decision == "allow"


def when_policy(expr) -> ast.Policy:
    if isinstance(expr, str):
        expr = parse_expression(expr)
    return ast.Policy("t", "permit", None, None, clauses=[ast.Clause("when", expr, 3, 2)],
                      file="test.policy", line=1, column=1)


def run(expr, data=None, **context):
    """The outcome of ``permit * on * when EXPR`` for a request with ``context``."""
    ps = PolicySet([when_policy(expr)], data or {})
    return result(ps.decide(req(context=context)))


def lift(node, values: dict):
    """``node`` with every literal replaced by a read of ``context.litN`` (except
    ``like`` patterns), so that nothing can be folded at compile time."""
    if isinstance(node, ast.Literal):
        name = f"lit{len(values)}"
        values[name] = node.value
        return ast.Path("context", [name], node.line, node.column)
    if isinstance(node, ast.ListExpr):
        return ast.ListExpr([lift(i, values) for i in node.items], node.line, node.column)
    if isinstance(node, ast.Path):
        return ast.Path(node.root, [s if isinstance(s, str) else lift(s, values) for s in node.steps],
                        node.line, node.column)
    if isinstance(node, ast.Call):
        return ast.Call(node.name, [lift(a, values) for a in node.args], node.line, node.column)
    if isinstance(node, ast.Unary):
        return ast.Unary(node.op, lift(node.operand, values), node.line, node.column)
    if isinstance(node, ast.Arith):
        return ast.Arith(node.op, lift(node.left, values), lift(node.right, values), node.line, node.column)
    if isinstance(node, ast.Compare):
        right = node.right if node.op == "like" else lift(node.right, values)
        return ast.Compare(node.op, lift(node.left, values), right, node.line, node.column)
    if isinstance(node, ast.BoolOp):
        return ast.BoolOp(node.op, [lift(t, values) for t in node.terms], node.line, node.column)
    raise TypeError(node)


def outcome(expr: str, data=None, **context):
    """The outcome of ``when EXPR`` (see :func:`result`), checked to be the same
    with every literal folded at compile time and with every literal read from
    the request at run time."""
    folded = run(expr, data, **context)
    values: dict = {}
    lifted = lift(parse_expression(expr), values)
    at_run_time = run(lifted, data, **{**context, **values})
    assert folded == at_run_time, f"folded {folded!r} but at run time {at_run_time!r}"
    assert folded == reference_outcome(parse_expression(expr), data, context)
    return folded


def errors_of(ps: PolicySet, request) -> list[tuple]:
    return [(e["code"], e["message"], e["policy"], e["location"]) for e in ps.decide(request).errors]


# --------------------------------------------------------------------------- reference

class RefError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def _is_num(x):
    return type(x) in (int, float)


def ref_eq(a, b) -> bool:
    if _is_num(a) and _is_num(b):
        return a == b
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(ref_eq(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(ref_eq(a[k], b[k]) for k in a)
    return a == b


def _truth(v):
    if type(v) is not bool:
        raise RefError("not_boolean")
    return v


def _step(obj, key):
    if type(key) is str:
        if type(obj) is not dict:
            raise RefError("type_mismatch")
        if key not in obj:
            raise RefError("missing_attribute")
        return obj[key]
    if type(key) is int:
        if type(obj) is not list:
            raise RefError("type_mismatch")
        if not -len(obj) <= key < len(obj):
            raise RefError("invalid_index")
        return obj[key]
    raise RefError("invalid_index")


def _ordered(a, b):
    for kinds in ((int, float), (str,), (Timestamp,), (Duration,)):
        if type(a) in kinds and type(b) in kinds:
            return True
    raise RefError("type_mismatch")


def glob_match(s, pattern):
    """``like`` by dynamic programming (quadratic, obviously right)."""
    toks, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\" and pattern[i + 1:i + 2] == "*":
            toks.append(("c", "*"))
            i += 2
        else:
            toks.append(("star", None) if pattern[i] == "*" else ("c", pattern[i]))
            i += 1
    ok = [True] + [False] * len(s)          # ok[j]: tokens so far match s[:j]
    for kind, ch in toks:
        if kind == "star":
            new, seen = [], False
            for j in range(len(s) + 1):
                seen = seen or ok[j]
                new.append(seen)
        else:
            new = [False] + [ok[j] and s[j] == ch for j in range(len(s))]
        ok = new
    return ok[len(s)]


def _call(name, args):
    def need(cond):
        if not cond:
            raise RefError("type_mismatch")

    def arg_error(fn, *a):
        try:
            return fn(*a)
        except ValueError:
            raise RefError("invalid_argument") from None
    if name == "len":
        need(type(args[0]) in (str, list, dict))
        return len(args[0])
    if name in ("lower", "upper"):
        need(type(args[0]) is str)
        return args[0].lower() if name == "lower" else args[0].upper()
    if name in ("starts_with", "ends_with"):
        need(type(args[0]) is str and type(args[1]) is str)
        return args[0].startswith(args[1]) if name == "starts_with" else args[0].endswith(args[1])
    if name == "contains":
        a, b = args
        if type(a) is str:
            need(type(b) is str)
            return b in a
        need(type(a) is list)
        return any(ref_eq(b, x) for x in a)
    if name in ("contains_any", "contains_all"):
        a, b = args
        need(type(a) is list and type(b) is list)
        test = any if name == "contains_any" else all
        return test(any(ref_eq(y, x) for x in a) for y in b)
    if name == "ip":
        if isinstance(args[0], (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return args[0]
        need(type(args[0]) is str)
        return arg_error(parse_ip, args[0])
    if name == "cidr_contains":
        net, addr = args
        need(type(net) is str)
        net = arg_error(parse_cidr, net)
        if type(addr) is str:
            addr = arg_error(parse_ip, addr)
        need(isinstance(addr, (ipaddress.IPv4Address, ipaddress.IPv6Address)))
        return addr.version == net.version and addr in net
    if name == "time":
        x = args[0]
        if type(x) is Timestamp:
            return x
        if type(x) is str:
            return arg_error(parse_timestamp, x)
        need(_is_num(x))
        return arg_error(timestamp_from_seconds, x)
    if name == "duration":
        if type(args[0]) is Duration:
            return args[0]
        need(type(args[0]) is str)
        return arg_error(parse_duration, args[0])
    if name in ("hour", "weekday"):
        t = args[0]
        need(type(t) is Timestamp)
        if len(args) == 2:
            need(type(args[1]) is str)
            dt = t.to_datetime(arg_error(check_zone, args[1]))
        else:
            dt = t.to_datetime()
        return dt.hour if name == "hour" else dt.isoweekday()
    raise AssertionError(name)


def ref_eval(node, env):
    """The value of an expression, or :class:`RefError` — the spec, walked."""
    if isinstance(node, ast.Literal):
        return node.value
    if isinstance(node, ast.ListExpr):
        return [ref_eval(i, env) for i in node.items]
    if isinstance(node, ast.Path):
        keys = [s if isinstance(s, str) else ref_eval(s, env) for s in node.steps]
        v = env[node.root]
        for k in keys:
            v = _step(v, k)
        return v
    if isinstance(node, ast.Call):
        if node.name == "has":
            try:
                ref_eval(node.args[0], env)
                return True
            except RefError:
                return False
        return _call(node.name, [ref_eval(a, env) for a in node.args])
    if isinstance(node, ast.Unary):
        v = ref_eval(node.operand, env)
        if node.op == "not":
            return not _truth(v)
        if not _is_num(v):
            raise RefError("type_mismatch")
        return -v
    if isinstance(node, ast.Arith):
        a, b = ref_eval(node.left, env), ref_eval(node.right, env)
        if _is_num(a) and _is_num(b):
            return a + b if node.op == "+" else a - b
        if type(a) is Timestamp and type(b) is Duration:
            m = a.micros + b.micros if node.op == "+" else a.micros - b.micros
            try:
                return Timestamp(m)
            except ValueError:
                raise RefError("invalid_argument") from None
        if type(a) is Timestamp and type(b) is Timestamp and node.op == "-":
            return Duration(a.micros - b.micros)
        raise RefError("type_mismatch")
    if isinstance(node, ast.Compare):
        a = ref_eval(node.left, env)
        if node.op == "like":
            if type(a) is not str:
                raise RefError("type_mismatch")
            return glob_match(a, node.right.value)
        b = ref_eval(node.right, env)
        if node.op in ("==", "!="):
            return ref_eq(a, b) == (node.op == "==")
        if node.op in ("in", "not in", "not_in"):
            if type(b) is not list:
                raise RefError("type_mismatch")
            return any(ref_eq(a, x) for x in b) == (node.op == "in")
        _ordered(a, b)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[node.op]
    if isinstance(node, ast.BoolOp):
        for t in node.terms:
            v = _truth(ref_eval(t, env))
            if v is (node.op == "or"):
                return v
        return node.op == "and"
    raise AssertionError(node)


def ref_env(request, data):
    ctx = dict(request["context"])
    ctx["time"] = parse_timestamp(ctx["time"]) if isinstance(ctx.get("time"), str) else ctx["time"]
    r = request["resource"]
    a = request["action"]
    action = {"name": a} if isinstance(a, str) else {**(a.get("attributes") or {}), "name": a["name"]}
    return {"subject": request["subject"], "action": action,
            "resource": {**r.get("attributes", {}), "type": r["type"], "id": r["id"]},
            "context": ctx, "data": data or {}}


def ref_applies(policy, env):
    """True, False, or the error code (spec §5: when, then unless)."""
    try:
        if policy.when is not None and not _truth(ref_eval(policy.when, env)):
            return False
        if policy.unless is not None and _truth(ref_eval(policy.unless, env)):
            return False
        return True
    except RefError as e:
        return e.code
    except RecursionError:
        return "internal_error"


def reference_outcome(expr, data, context):
    env = ref_env(req(context=context), data)
    return ref_applies(when_policy(expr), env)


def ref_decide(policies, request, data=None) -> dict:
    """The decision of spec §5 over ``policies`` (all of them candidates)."""
    env = ref_env(request, data)
    forbids, permits, errors = [], [], []
    for p in sorted(policies, key=lambda p: p.id):
        if not _matches(p, request):
            continue
        r = ref_applies(p, env)
        if r is not True and r is not False:
            errors.append((p.id, r))
            r = p.effect == "forbid"
        if r:
            (forbids if p.effect == "forbid" else permits).append(p.id)
    if forbids:
        return {"decision": "deny", "policies": forbids, "errors": errors}
    if permits:
        return {"decision": "allow", "policies": permits, "errors": errors}
    return {"decision": "deny", "policies": [], "errors": errors}


def _matches(p, request):
    a = request["action"]
    name = a if isinstance(a, str) else a["name"]
    return ((p.actions is None or name in p.actions)
            and (p.resource_types is None or request["resource"]["type"] in p.resource_types))


def summary(d: Decision) -> dict:
    return {"decision": d.decision, "policies": d.policies,
            "errors": [(e["policy"], e["code"]) for e in d.errors]}


def finite(x) -> bool:
    return not isinstance(x, float) or math.isfinite(x)
