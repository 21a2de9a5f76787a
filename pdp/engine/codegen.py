"""Code generation: the syntax tree of a policy set → one Python module text.

Each policy becomes a function of the five roots that returns whether the policy
*applies* (``when`` true, then ``unless`` false), or raises :class:`EvalError`::

    def _p0(subject, action, resource, context, data):
        if not (resource["owner"] == subject["sub"]):
            return False
        ...
        return True

Two versions are generated per policy. The *fast* one reads static path steps with
plain subscripts (``resource["owner"]["team"]``), which either give the right value
or raise a Python error; the *checked* one reads every step through the runtime,
which raises the precise :class:`EvalError` (``resource has no attribute 'owner'``).
The policy set calls the fast version and, only when it raised something other than
an :class:`EvalError`, runs the checked one to find out what went wrong. Both are
otherwise the same code, so they agree on every value they return.

Safety: the source is produced here and only here, from a validated tree
(:func:`validate_policy`). Literals are emitted with ``repr()`` of exact ``str``,
``int``, ``float``, ``bool`` or ``None`` values, other constants (timestamps,
lists, reference data …) are passed in the namespace as ``_k<n>``; function names
come from :data:`pdp.engine.runtime.NAMES`, roots from :data:`pdp.lang.ast.ROOTS`.
No text from a policy ever reaches the source except through ``repr()``, so a
tampered stored tree cannot inject code.

Positions: every runtime call that can fail gets a small integer *site*; the
policy set's site table maps it to file, line, column and the text of the
expression (or path) for the error message.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from pdp.engine import runtime as rt
from pdp.engine.runtime import EvalError
from pdp.lang import ast
from pdp.lang.builtins import BUILTINS
from pdp.lang.values import Duration, Timestamp

__all__ = ["Site", "Generated", "generate", "namespace", "validate_policy", "expr_text",
           "MAX_IR_DEPTH"]

#: Deepest expression nesting accepted in a stored (compiled) tree.
MAX_IR_DEPTH = 2 * ast.MAX_DEPTH

_ARGS = "subject, action, resource, context, data"
_NOCONST = object()
#: Nesting (parentheses, calls) after which a sub-expression moves into a helper
#: function, far below CPython's limits (200 nested parentheses).
_HOIST_DEPTH = 40
#: Longest string written inline in the source; longer ones become constants.
_INLINE_STR = 200

_NUM_KINDS = frozenset({"int", "float", "number"})
#: Kinds whose Python ``==`` against any value is the language's ``==``.
_STRICT_KINDS = frozenset({"string", "timestamp", "duration", "ip"})
_COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in", "not_in", "like")
_ORDER_FUNCS = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def kind_of(value) -> str | None:
    """The static kind of a constant value."""
    return _KINDS.get(value.__class__)


_KINDS = {bool: "bool", str: "string", int: "int", float: "float", type(None): "null",
          list: "list", dict: "object", Timestamp: "timestamp", Duration: "duration",
          IPv4Address: "ip", IPv6Address: "ip"}


# --------------------------------------------------------------------------- sites

class Site:
    """A place in the policy source where evaluation can fail."""

    __slots__ = ("file", "line", "column", "node", "_text", "_prefixes")

    def __init__(self, file: str, node):
        self.file = file
        self.line = getattr(node, "line", 0)
        self.column = getattr(node, "column", 0)
        self.node = node
        self._text = None
        self._prefixes = None

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    @property
    def text(self) -> str:
        """The source text of the expression (re-rendered, cut at 100 characters)."""
        if self._text is None:
            self._text = _cut(expr_text(self.node))
        return self._text

    def prefix(self, step: int) -> str:
        """For a path site: the text of the path before step number ``step``."""
        if self._prefixes is None:
            self._prefixes = _path_prefixes(self.node)
        if 0 <= step < len(self._prefixes):
            return self._prefixes[step]
        return self.text


def _cut(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --------------------------------------------------------------------------- source text

_PREC = {"or": 1, "and": 2, "not": 3, "compare": 4, "arith": 5, "neg": 6, "primary": 7}


def _prec(node) -> int:
    if isinstance(node, ast.BoolOp):
        return _PREC[node.op] if node.op in _PREC else 1
    if isinstance(node, ast.Unary):
        return _PREC["not"] if node.op == "not" else _PREC["neg"]
    if isinstance(node, ast.Compare):
        return _PREC["compare"]
    if isinstance(node, ast.Arith):
        return _PREC["arith"]
    return _PREC["primary"]


def _literal_text(v) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return repr(v)


def _key_text(step) -> str:
    if isinstance(step, str):
        return f".{step}" if _IDENT.fullmatch(step) else f"[{json.dumps(step, ensure_ascii=False)}]"
    return f"[{expr_text(step)}]"


def _path_prefixes(node) -> tuple:
    out, text = [], node.root
    for s in node.steps:
        out.append(text)
        text += _key_text(s)
    return tuple(out)


def expr_text(node) -> str:
    """An expression rendered back as policy source (for error messages)."""
    if isinstance(node, ast.Literal):
        return _literal_text(node.value)
    if isinstance(node, ast.ListExpr):
        return "[" + ", ".join(expr_text(i) for i in node.items) + "]"
    if isinstance(node, ast.Path):
        return node.root + "".join(_key_text(s) for s in node.steps)
    if isinstance(node, ast.Call):
        return f"{node.name}(" + ", ".join(expr_text(a) for a in node.args) + ")"
    p = _prec(node)

    def sub(child, strict=False):
        t = expr_text(child)
        cp = _prec(child)
        return f"({t})" if cp < p or (strict and cp == p) else t
    if isinstance(node, ast.Unary):
        return f"not {sub(node.operand)}" if node.op == "not" else f"-{sub(node.operand)}"
    if isinstance(node, ast.Arith):
        return f"{sub(node.left)} {node.op} {sub(node.right, strict=True)}"
    if isinstance(node, ast.Compare):
        op = "not in" if node.op in ("not in", "not_in") else node.op
        return f"{sub(node.left, True)} {op} {sub(node.right, True)}"
    if isinstance(node, ast.BoolOp):
        return f" {node.op} ".join(sub(t) for t in node.terms)
    return "?"


# --------------------------------------------------------------------------- validation

class _Invalid(ValueError):
    pass


def validate_policy(p) -> None:
    """Check that ``p`` is a well-formed :class:`ast.Policy` (as the parser builds it).

    Raises ``ValueError`` naming the problem. Code generation relies on this: it is
    what makes a stored tree safe to compile.
    """
    def need(cond, what):
        if not cond:
            raise _Invalid(f"policy {getattr(p, 'id', '?')!r}: {what}")
    need(isinstance(p, ast.Policy), "not a policy node")
    need(p.id.__class__ is str and p.id != "", "the id must be a non-empty string")
    need(p.effect in ("permit", "forbid"), "the effect must be permit or forbid")
    for names, what in ((p.actions, "actions"), (p.resource_types, "resource types")):
        need(names is None or (names.__class__ is list and names
                               and all(n.__class__ is str and n for n in names)),
             f"the {what} must be '*' or a list of names")
    need(p.file.__class__ is str, "the file must be a string")
    for attr in ("line", "column", "id_line", "id_column", "effect_line", "effect_column", "end_line"):
        need(getattr(p, attr).__class__ is int, f"{attr} must be an integer")
    need(p.clauses.__class__ is list, "clauses must be a list")
    seen = set()
    for c in p.clauses:
        need(isinstance(c, ast.Clause) and c.kind in ("when", "unless", "reason"), "bad clause")
        need(c.kind not in seen, f"more than one {c.kind} clause")
        seen.add(c.kind)
        need(c.line.__class__ is int and c.column.__class__ is int, "clause positions must be integers")
        if c.kind == "reason":
            need(c.value.__class__ is str, "a reason must be a string")
        else:
            _validate_expr(c.value, p)
    need(p.annotations.__class__ is list, "annotations must be a list")
    for a in p.annotations:
        need(isinstance(a, ast.Annotation) and a.name.__class__ is str and a.value.__class__ is str
             and a.line.__class__ is int and a.column.__class__ is int, "bad annotation")


def _validate_expr(root, policy) -> None:
    def fail(what):
        raise _Invalid(f"policy {policy.id!r}: {what}")
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_IR_DEPTH:
            fail(f"expression nested deeper than {MAX_IR_DEPTH}")
        cls = node.__class__
        if cls not in _EXPR_CLASSES:
            fail(f"not an expression: {type(node).__name__}")
        if node.line.__class__ is not int or node.column.__class__ is not int:
            fail("positions must be integers")
        d = depth + 1
        if cls is ast.Literal:
            v = node.value
            if not (v is None or v.__class__ in (str, int, bool)
                    or (v.__class__ is float and math.isfinite(v))):
                fail("a literal must be a string, number, boolean or null")
        elif cls is ast.ListExpr:
            if node.items.__class__ is not list:
                fail("list items must be a list")
            stack.extend((i, d) for i in node.items)
        elif cls is ast.Path:
            if node.root not in ast.ROOTS or node.steps.__class__ is not list:
                fail("bad path")
            for s in node.steps:
                if s.__class__ is not str:
                    stack.append((s, d))
        elif cls is ast.Call:
            sig = BUILTINS.get(node.name) if node.name.__class__ is str else None
            if sig is None or node.args.__class__ is not list:
                fail(f"unknown function {node.name!r}")
            if not sig.min_args <= len(node.args) <= sig.max_args:
                fail(f"{node.name}() takes {sig.arity_text()}")
            if node.name == "has" and not isinstance(node.args[0], ast.Path):
                fail("has() takes a path")
            stack.extend((a, d) for a in node.args)
        elif cls is ast.Unary:
            if node.op not in ("not", "-"):
                fail("bad unary operator")
            stack.append((node.operand, d))
        elif cls is ast.Arith:
            if node.op not in ("+", "-"):
                fail("bad arithmetic operator")
            stack.append((node.left, d))
            stack.append((node.right, d))
        elif cls is ast.Compare:
            if node.op not in _COMPARE_OPS:
                fail("bad comparison operator")
            if node.op == "like" and not (isinstance(node.right, ast.Literal)
                                          and node.right.value.__class__ is str):
                fail("the pattern of 'like' must be a literal string")
            stack.append((node.left, d))
            stack.append((node.right, d))
        elif cls is ast.BoolOp:
            if node.op not in ("and", "or") or node.terms.__class__ is not list or not node.terms:
                fail("bad and/or")
            stack.extend((t, d) for t in node.terms)


_EXPR_CLASSES = frozenset({ast.Literal, ast.ListExpr, ast.Path, ast.Call, ast.Unary,
                           ast.Arith, ast.Compare, ast.BoolOp})


# --------------------------------------------------------------------------- generation

@dataclass(slots=True)
class Generated:
    """The generated module.

    ``source`` is all of it (to show); ``fast_source`` the fast versions, to run
    at once; ``checked`` the source of each checked version by function name, to
    compile when first needed (a policy whose fast version never fails never
    needs it). ``functions`` names, per policy, its (fast, checked) functions.
    """
    source: str
    fast_source: str
    checked: dict
    sites: list
    constants: dict
    functions: list = field(default_factory=list)


def generate(policies: list, data=None) -> Generated:
    """Python source for ``policies`` (validated :class:`ast.Policy` nodes, in the
    order their functions should be numbered) with reference ``data``."""
    gen = _SetGenerator({} if data is None else data)
    header = ("# Generated by pdp.engine.codegen from the policy set's syntax tree.\n"
              "# Each _p<n> returns whether policy n applies; _p<n>_checked is the same\n"
              "# policy with every path step checked, run to explain a failure.\n")
    fast, full, checked = [header], [header], {}
    for i, p in enumerate(policies):
        head, fast_src, checked_src = gen.policy(i, p)
        fast.append(head + fast_src)
        full.append(head + fast_src + ("\n" + checked_src if checked_src else ""))
        if checked_src:
            checked[gen.functions[-1][1]] = checked_src
    consts = "".join(f"# _k{n} = {_comment(v)}\n" for n, v in enumerate(gen.const_values))
    source = "\n".join(full) + ("\n# constants\n" + consts if consts else "")
    return Generated(source, "\n".join(fast), checked, gen.sites, gen.constants, gen.functions)


def namespace(generated: Generated) -> dict:
    """The globals for executing ``generated.source``: the runtime names, the
    constants, and no built-ins."""
    ns = {"__builtins__": {}}
    for name, fn in rt.NAMES.items():
        ns["_" + name] = fn
    ns.update(generated.constants)
    return ns


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxset = 2, 4, 6, 6
_SHORT.maxstring, _SHORT.maxother = 60, 60


def _comment(value) -> str:
    """A one-line, bounded description of a constant (reference data can be big)."""
    text = _SHORT.repr(value)
    if len(text) > 100:
        text = text[:99] + "…"
    return text.replace("\r", " ").replace("\n", " ")


class _SetGenerator:
    """State shared by the policies of one set: sites, constants, helper counter."""

    def __init__(self, data):
        self.data = data
        self.sites: list[Site] = []
        self._site_ids: dict = {}
        self.constants: dict = {}
        self.const_values: list = []
        self._const_ids: dict = {}
        self._node_values: dict = {}
        self.functions: list = []
        self.helpers = 0

    def site(self, file: str, node, purpose: str = "") -> int:
        key = (id(node), purpose)
        sid = self._site_ids.get(key)
        if sid is None:
            sid = self._site_ids[key] = len(self.sites)
            self.sites.append(Site(file, node))
        return sid

    def node_constant(self, node, make):
        """The constant value of ``node``, made once (the fast and the checked
        version of a policy share it)."""
        key = ("node", id(node))
        if key not in self._node_values:
            self._node_values[key] = make()
        return self._node_values[key]

    def constant(self, value) -> str:
        c = value.__class__
        key = (c, value) if c in (str, int, float, Timestamp, Duration, IPv4Address,
                                  IPv6Address, frozenset, tuple) else ("id", id(value))
        name = self._const_ids.get(key)
        if name is None:
            name = self._const_ids[key] = f"_k{len(self.const_values)}"
            self.const_values.append(value)
            self.constants[name] = value
        return name

    def policy(self, index: int, p) -> tuple[str, str, str | None]:
        """``(comment, fast version, checked version or None)`` of policy ``p``."""
        head = f"# policy {p.id!r}: {p.effect} at {p.file!r} line {p.line}\n"
        fast = _PolicyEmitter(self, p, fast=True)
        source = fast.function(f"_p{index}")
        if not fast.raw_steps:                   # no unchecked path step: one version
            self.functions.append((f"_p{index}", f"_p{index}"))
            return head, source, None
        checked = _PolicyEmitter(self, p, fast=False)
        self.functions.append((f"_p{index}", f"_p{index}_checked"))
        return head, source, checked.function(f"_p{index}_checked")


class _PolicyEmitter:
    """Emits one version (fast or checked) of one policy's function.

    Expressions compile to ``(code, kind, const, depth)``: the Python expression
    text, its static kind (``bool``, ``string``, ``int`` … or None when unknown), its
    value when it is a constant (else ``_NOCONST``), and its nesting depth.
    """

    def __init__(self, gen: _SetGenerator, policy, fast: bool):
        self.gen = gen
        self.policy = policy
        self.file = policy.file
        self.fast = fast
        self.helpers: list[str] = []
        self.raw_steps = False      # did the fast version read a path step unchecked?

    # ---- function

    def function(self, name: str) -> str:
        """The source of the function (after the helpers it calls)."""
        conds = []
        for expr, applies_if in ((self.policy.when, True), (self.policy.unless, False)):
            if expr is not None:
                conds.append((expr, applies_if, self.emit(expr)))
        if all(e[2][1] == "bool" and e[2][2] is _NOCONST for e in conds):
            # the common case, one expression: when and not unless
            parts = [code if applies_if else f"not {code}" for _, applies_if, (code, *_) in conds]
            body = ["return " + (" and ".join(parts) or "True")]
        else:
            body = []
            for expr, applies_if, emitted in conds:
                body.extend(self._condition(expr, applies_if, emitted))
            body.append("return True")
        return "".join(self.helpers) + f"def {name}({_ARGS}):\n" + "".join(
            f"    {line}\n" for line in body)

    def _condition(self, expr, applies_if: bool, emitted) -> list[str]:
        code, kind, const, _ = emitted
        if const is not _NOCONST and const.__class__ is bool:
            return [] if const is applies_if else ["return False"]
        if kind == "bool":
            return [f"if not {code}:" if applies_if else f"if {code}:", "    return False"]
        site = self.gen.site(self.file, expr, "bool")
        stop, go = ("False", "True") if applies_if else ("True", "False")
        return [f"_t = {code}",
                f"if _t is not {go}:",
                f"    if _t is {stop}:",
                "        return False",
                f"    _not_bool(_t, {site})"]

    # ---- helpers

    def _hoist(self, code: str) -> str:
        """Move a deep expression into its own function (short-circuits are kept:
        the helper runs only where the expression would have been evaluated)."""
        n = self.gen.helpers
        self.gen.helpers += 1
        name = f"_h{n}"
        self.helpers.append(f"def {name}({_ARGS}):\n    return {code}\n\n")
        return f"{name}({_ARGS})"

    def _out(self, code: str, kind, depth: int, const=_NOCONST):
        if depth > _HOIST_DEPTH:
            return (self._hoist(code), kind, const, 1)
        return (code, kind, const, depth)

    def lit(self, value) -> str:
        """Python text for a constant value."""
        c = value.__class__
        if value is None or c is bool:
            return repr(value)
        if c is str and len(value) <= _INLINE_STR:
            return repr(value)
        if (c is int and abs(value) < 10**18) or (c is float and math.isfinite(value)):
            text = repr(value)
            return f"({text})" if text[0] == "-" else text
        return self.gen.constant(value)

    def const(self, value):
        return (self.lit(value), kind_of(value), value, 0)

    def site(self, node, purpose=""):
        return self.gen.site(self.file, node, purpose)

    # ---- expressions

    def emit(self, node):
        cls = node.__class__
        if cls is ast.Literal:
            return self.const(node.value)
        if cls is ast.Path:
            return self.path(node)
        if cls is ast.Compare:
            return self.compare(node)
        if cls is ast.BoolOp:
            return self.boolop(node)
        if cls is ast.Call:
            return self.call(node)
        if cls is ast.Unary:
            return self.unary(node)
        if cls is ast.Arith:
            return self.arith(node)
        if cls is ast.ListExpr:
            return self.list_expr(node)
        raise _Invalid(f"not an expression: {cls.__name__}")

    def as_bool(self, node, emitted=None):
        """Code for ``node`` used as a condition: its value if it is a boolean, else
        a ``not_boolean`` error."""
        code, kind, const, depth = emitted or self.emit(node)
        if kind == "bool":
            return (code, kind, const, depth)
        site = self.site(node, "bool")
        if const is not _NOCONST:
            return (f"_not_bool({code}, {site})", "bool", _NOCONST, depth + 1)
        return self._out(f"((_t := {code}) is True or (_t is not False and _not_bool(_t, {site})))",
                         "bool", depth + 2)

    def list_expr(self, node):
        items = [self.emit(i) for i in node.items]
        if all(c is not _NOCONST for _, _, c, _ in items):
            value = self.gen.node_constant(node, lambda: [c for _, _, c, _ in items])
            return (self.lit(value), "list", value, 0)
        depth = max((d for *_, d in items), default=0) + 1
        return self._out("[" + ", ".join(c for c, *_ in items) + "]", "list", depth)

    # ---- paths

    def _keys(self, node):
        """The steps of a path as ``(code, static key or _NOCONST, depth)``."""
        keys = []
        for s in node.steps:
            if s.__class__ is str:
                keys.append((self.lit(s), s, 0))
                continue
            code, _, const, depth = self.emit(s)
            if const.__class__ is str or const.__class__ is int:
                keys.append((self.lit(const), const, 0))
            else:
                keys.append((code, _NOCONST, depth))
        return keys

    def _data_prefix(self, node, keys):
        """Follow the leading static steps of a ``data`` path at compile time:
        ``(value, steps followed, error)``."""
        obj, i = self.gen.data, 0
        while i < len(keys) and keys[i][1] is not _NOCONST:
            try:
                obj = rt.step(obj, keys[i][1], None, i)
            except EvalError:
                return obj, i, True
            i += 1
        return obj, i, False

    def path(self, node):
        keys = self._keys(node)
        base, start = node.root, 0
        if node.root == "data":
            value, start, _ = self._data_prefix(node, keys)
            if start == len(keys):
                return self.const(value)
            if start:
                base = self.lit(value)
        if start == len(keys):
            return (base, "object", _NOCONST, 0)
        return self._path_code(node, base, keys, start, checked=not self.fast)

    def _path_code(self, node, base, keys, start, checked):
        depth = 0
        if not checked:
            while start < len(keys) and keys[start][1].__class__ is str:
                base += f"[{keys[start][0]}]"
                start += 1
                depth = 1
                self.raw_steps = True
            if start == len(keys):
                return self._out(base, None, depth)
        site = self.site(node, "path")
        rest = keys[start:]
        if start == 0 and len(rest) == 1 and rest[0][1].__class__ is str and base in ast.ROOTS:
            return self._out(f"_get({base}, {rest[0][0]}, {site})", None, 1)
        tup = "(" + ", ".join(k[0] for k in rest) + ("," if len(rest) == 1 else "") + ")"
        depth = max([depth] + [k[2] for k in rest]) + 2
        tail = f", {start}" if start else ""
        return self._out(f"_path({base}, {tup}, {site}{tail})", None, depth)

    def has(self, node):
        if not isinstance(node, ast.Path):
            raise _Invalid("has() takes a path")
        keys = self._keys(node)
        base, start = node.root, 0
        if node.root == "data":
            value, start, failed = self._data_prefix(node, keys)
            if failed:
                return self.const(False)
            if start == len(keys):
                return self.const(True)
            base = self.lit(value) if start else "data"
        if start == len(keys):
            return self.const(True)
        rest = keys[start:]
        if all(k[1] is not _NOCONST for k in rest):
            if len(rest) == 1 and rest[0][1].__class__ is str and base in ast.ROOTS:
                return (f"({rest[0][0]} in {base})", "bool", _NOCONST, 1)
            tup = "(" + ", ".join(k[0] for k in rest) + ("," if len(rest) == 1 else "") + ")"
            return (f"_has({base}, {tup})", "bool", _NOCONST, 2)
        code, _, _, depth = self._path_code(node, base, keys, start, checked=True)
        return self._out(f"_has_dyn(lambda: {code})", "bool", depth + 1)

    # ---- operators

    def compare(self, node):
        op = node.op
        left, right = self.emit(node.left), self.emit(node.right)
        (lc, lk, lv, ld), (rc, rk, rv, rd) = left, right
        depth = max(ld, rd) + 1
        if op in ("==", "!="):
            if lv is not _NOCONST and rv is not _NOCONST:
                return self.const(rt.eq(lv, rv) == (op == "=="))
            code, depth = self._eq(left, right)
            if op == "!=":
                code, depth = f"(not {code})", depth + 1
            return self._out(code, "bool", depth)
        site = self.site(node)
        if op in _ORDER_FUNCS:
            fn = _ORDER_FUNCS[op]
            if lv is not _NOCONST and rv is not _NOCONST:
                try:
                    return self.const(rt.NAMES[fn](lv, rv, None))
                except EvalError:
                    pass
            if (lk in _NUM_KINDS and rk in _NUM_KINDS) or (lk == rk == "string"):
                return self._out(f"({lc} {op} {rc})", "bool", depth)
            return self._out(f"_{fn}({lc}, {rc}, {site})", "bool", depth)
        if op in ("in", "not in", "not_in"):
            if lv is not _NOCONST and rv is not _NOCONST:
                try:
                    return self.const(rt.member(lv, rv, None) == (op == "in"))
                except EvalError:
                    pass
            code, depth = self._member(left, right, site)
            if op != "in":
                code, depth = f"(not {code})", depth + 1
            return self._out(code, "bool", depth)
        if op == "like":
            if rv.__class__ is not str:
                raise _Invalid("the pattern of 'like' must be a literal string")
            segments = rt.like_segments(rv)
            if lv is not _NOCONST:
                try:
                    return self.const(rt.like(lv, segments, None))
                except EvalError:
                    pass
            if len(segments) == 1 and lk == "string":
                return self._out(f"({lc} == {self.lit(segments[0])})", "bool", ld + 1)
            seg_code = self.lit(segments) if sum(map(len, segments)) > _INLINE_STR else repr(segments)
            return self._out(f"_like({lc}, {seg_code}, {site})", "bool", ld + 1)
        raise _Invalid(f"unknown comparison {op!r}")

    def _eq(self, left, right):
        """Code for ``left == right`` and its depth, as plain Python where the static
        kinds make Python's ``==`` the language's."""
        if left[2] is not _NOCONST and right[2] is _NOCONST:
            left, right = right, left
        (lc, lk, _, ld), (rc, rk, rv, rd) = left, right
        depth = max(ld, rd) + 1
        if rv is not _NOCONST:
            if rv is None or rv is True or rv is False:
                return f"({lc} is {rv!r})", ld + 1
            c = rv.__class__
            if c in (int, float):
                if rv != 0 and rv != 1:          # bools only ever equal 0 and 1
                    return f"({lc} == {rc})", ld + 1
                return f"((_t := {lc}) == {rc} and _t.__class__ is not _bool)", ld + 2
            if c is str or kind_of(rv) in _STRICT_KINDS:
                return f"({lc} == {rc})", ld + 1
        if lk in _STRICT_KINDS or rk in _STRICT_KINDS or (lk in _NUM_KINDS and rk in _NUM_KINDS):
            return f"({lc} == {rc})", depth
        return f"_eq({lc}, {rc})", depth

    def _member(self, left, right, site):
        (lc, lk, _, ld), (rc, _, rv, rd) = left, right
        if rv.__class__ is list and rv and all(x.__class__ is str for x in rv):
            name = self.gen.constant(frozenset(rv))
            if lk == "string":
                return f"({lc} in {name})", ld + 1
            return f"(_isinstance((_t := {lc}), _str) and _t in {name})", ld + 2
        return f"_member({lc}, {rc}, {site})", max(ld, rd) + 1

    def boolop(self, node):
        is_and = node.op == "and"
        neutral, absorbing = (True, False) if is_and else (False, True)
        parts, depth, last = [], 0, _NOCONST
        for term in node.terms:
            code, kind, const, d = self.as_bool(term)
            if const is neutral:
                continue
            parts.append(code)
            depth, last = max(depth, d), const
            if const is absorbing:
                break
        if not parts:
            return self.const(neutral)
        if len(parts) == 1:
            return (parts[0], "bool", last, depth)
        joiner = "\n        and " if is_and else "\n        or "
        if len(parts) <= 4:
            joiner = " and " if is_and else " or "
        return self._out("(" + joiner.join(parts) + ")", "bool", depth + 1)

    def unary(self, node):
        if node.op == "not":
            code, kind, const, depth = self.as_bool(node.operand)
            if const.__class__ is bool:
                return self.const(not const)
            return self._out(f"(not {code})", "bool", depth + 1)
        code, kind, const, depth = self.emit(node.operand)
        if const is not _NOCONST:
            try:
                return self.const(rt.neg(const, None))
            except EvalError:
                pass
        if kind in _NUM_KINDS:
            return self._out(f"(-{code})", kind, depth + 1)
        return self._out(f"_neg({code}, {self.site(node)})", None, depth + 1)

    def arith(self, node):
        fn = "add" if node.op == "+" else "sub"
        lc, lk, lv, ld = self.emit(node.left)
        rc, rk, rv, rd = self.emit(node.right)
        if lv is not _NOCONST and rv is not _NOCONST:
            try:
                return self.const(rt.NAMES[fn](lv, rv, None))
            except EvalError:
                pass
        depth = max(ld, rd) + 1
        if lk in _NUM_KINDS and rk in _NUM_KINDS:
            kind = "int" if lk == rk == "int" else "number"
            return self._out(f"({lc} {node.op} {rc})", kind, depth)
        kind = "timestamp" if lk == "timestamp" and rk == "duration" else None
        return self._out(f"_{fn}({lc}, {rc}, {self.site(node)})", kind, depth)

    def call(self, node):
        name = node.name
        if name == "has":
            return self.has(node.args[0])
        if name not in rt.BUILTIN_IMPLS:
            raise _Invalid(f"unknown function {name!r}")
        impl, kind = rt.BUILTIN_IMPLS[name]
        args = [self.emit(a) for a in node.args]
        if name in ("hour", "weekday") and len(args) == 2:
            impl += "_in"
            zone = args[1][2]
            if zone.__class__ is str:
                try:
                    args[1] = self.const(rt.zone(zone, None))
                except EvalError:
                    pass
        if name == "cidr_contains" and args[0][2].__class__ is str:
            try:
                args[0] = self.const(rt.network(args[0][2], None))
            except EvalError:
                pass
        consts = [a[2] for a in args]
        if all(c is not _NOCONST for c in consts):
            try:
                return self.const(rt.NAMES[impl](*consts, None))
            except EvalError:
                pass
        depth = max((a[3] for a in args), default=0) + 1
        code = f"_{impl}(" + "".join(a[0] + ", " for a in args) + f"{self.site(node)})"
        return self._out(code, kind, depth)
