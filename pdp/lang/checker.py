"""Compile-time checks of a parsed policy set (spec §2, §4, §6, §7).

:func:`check` takes the parsed modules of a policy set (and, optionally, its
reference data and the source texts) and returns every problem it finds, in every
module, as :class:`~pdp.errors.Diagnostic` values sorted by file and position.

What is checked:

* names — duplicate policy ids, repeated clauses, unknown path roots, unknown
  functions and wrong argument counts, ``has`` on a non-path, ``like`` with a
  pattern that is not a literal string, ``data.X`` that the data files do not give;
* literals — a built-in called with a literal that can never be valid
  (``ip("10.1.2")``, ``lower(5)``);
* schemas (§7) — the schemas themselves (unknown types, duplicates), then, for every
  policy, attributes that are not declared, comparisons that can never be true,
  arithmetic and conditions of the wrong type, and reads of optional attributes
  that are not guarded by ``has(…)``.

Static types are inferred from literals, schema-typed paths, built-in results and
arithmetic. Whatever is not known is ``any`` and never reported: the checker only
speaks when the program is wrong for every request. Schemas never change a
decision.

Pure: the standard library, :mod:`pdp.errors` and :mod:`pdp.lang` only.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass

from pdp.errors import Diagnostic
from pdp.lang import ast
from pdp.lang.builtins import BUILTINS

__all__ = ["check", "SCHEMA_TYPES"]

# ----------------------------------------------------------------------------- static types
#
# A static type is one of the scalar names below, a ListT or an ObjT. Numbers are
# "int", "float" or "number" (either); they share the kind "number".

ANY = "any"
SCHEMA_TYPES = ("string", "int", "float", "bool", "timestamp", "duration", "ip", "any")


@dataclass(frozen=True, slots=True)
class ListT:
    elem: object


@dataclass(frozen=True, slots=True)
class Slot:
    """A declared attribute: its type and whether it may be absent."""
    type: object
    optional: bool = False


@dataclass(frozen=True, eq=False, slots=True)
class ObjT:
    """An object type. ``closed``: declared by a schema, so other keys do not exist."""
    fields: dict
    closed: bool


def _kind(t) -> str:
    if isinstance(t, ListT):
        return "list"
    if isinstance(t, ObjT):
        return "object"
    if t in ("int", "float", "number"):
        return "number"
    return t


_A = {"string": "a string", "int": "an int", "float": "a float", "number": "a number",
      "bool": "a bool", "null": "null", "timestamp": "a timestamp", "duration": "a duration",
      "ip": "an ip address", "list": "a list", "object": "an object", "any": "anything"}
_PLURAL = {"string": "strings", "int": "ints", "float": "floats", "number": "numbers",
           "bool": "bools", "null": "nulls", "timestamp": "timestamps", "duration": "durations",
           "ip": "ip addresses", "list": "lists", "object": "objects"}


def _phrase(t) -> str:
    """``a string``, ``a list of strings`` …: a type as the object of 'is'."""
    if isinstance(t, ListT):
        if t.elem == ANY:
            return "a list"
        elem = t.elem if isinstance(t.elem, str) else _kind(t.elem)
        return f"a list of {_PLURAL.get(elem, elem)}"
    if isinstance(t, ObjT):
        return "an object"
    return _A.get(t, t)


def _literal_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return ANY


def _join(types: list):
    """The one type that covers all of ``types`` (``any`` when they differ in kind)."""
    if not types:
        return ANY
    first = types[0]
    kinds = {_kind(t) for t in types}
    if len(kinds) != 1 or ANY in kinds:
        return ANY
    kind = kinds.pop()
    if kind == "number":
        names = set(types)
        return names.pop() if len(names) == 1 else "number"
    if kind == "list":
        return ListT(_join([t.elem for t in types]))
    if kind == "object":
        return ObjT({}, closed=False)
    return first


def _parse_type_text(text: str):
    """A type written as in :mod:`pdp.lang.builtins` (``string``, ``[any]`` …)."""
    if text.startswith("[") and text.endswith("]"):
        return ListT(_parse_type_text(text[1:-1]))
    return text


def _can_equal(a, b) -> bool:
    ka, kb = _kind(a), _kind(b)
    return ka == ANY or kb == ANY or ka == kb


_ORDERED = ("number", "string", "timestamp", "duration")

# (left kind, op, right kind) -> result type, for + and - (spec §4).
_ARITH = {
    ("number", "+", "number"): "number",
    ("number", "-", "number"): "number",
    ("timestamp", "+", "duration"): "timestamp",
    ("timestamp", "-", "duration"): "timestamp",
    ("timestamp", "-", "timestamp"): "duration",
}
_ARITH_TEXT = {
    "+": "'+' adds two numbers, or a duration to a timestamp",
    "-": "'-' subtracts two numbers, a duration from a timestamp, or two timestamps",
}

# Which kinds a built-in accepts where its signature says more loosely "any"
# (spec §6 describes what each function takes).
_ACCEPTS_OVERRIDE = {
    ("time", 0): ("string", "number"),
    ("cidr_contains", 1): ("string", "ip"),
    ("len", 0): ("string", "list", "object"),
    ("contains", 0): ("string", "list"),
}

# Literal arguments that can be validated at compile time: (function, index, kind
# of the literal) -> validator name in pdp.lang.values (each raises ValueError
# with an author-readable message).
_VALIDATE = {
    ("ip", 0, "string"): "parse_ip",
    ("time", 0, "string"): "parse_timestamp",
    ("time", 0, "number"): "timestamp_from_seconds",
    ("duration", 0, "string"): "parse_duration",
    ("cidr_contains", 0, "string"): "parse_cidr",
    ("cidr_contains", 1, "string"): "parse_ip",
    ("hour", 1, "string"): "check_zone",
    ("weekday", 1, "string"): "check_zone",
}


def _validator(name: str):
    """A literal validator from :mod:`pdp.lang.values`, or None while it is missing."""
    try:
        from pdp.lang import values
    except ImportError:
        return None
    return getattr(values, name, None)


# Attributes that every request has, whatever the schemas say (spec §3).
_BUILTIN_ATTRS = {
    "action": {"name": Slot("string")},
    "resource": {"type": Slot("string"), "id": Slot("string")},
    "context": {"time": Slot("timestamp"), "caller": Slot("string")},
}
_BUILTIN_ORIGIN = {
    ("resource", "type"): "is the type of the requested resource",
    ("resource", "id"): "is the id of the requested resource",
    ("context", "time"): "is set by the PDP to the decision time",
    ("context", "caller"): "is set by the PDP to the calling service's name",
}

# ----------------------------------------------------------------------------- showing code

_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_SHOWN = 48


def _lit_text(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return repr(v)


def _path_text(root: str, steps) -> str:
    out = [root]
    for s in steps:
        if isinstance(s, str):
            out.append(f".{s}" if _BARE.match(s) else f"[{json.dumps(s, ensure_ascii=False)}]")
        else:
            out.append(f"[{_text(s, 0)}]")
    return "".join(out)


def _text(e, depth: int) -> str:
    """Source-like text of an expression (for messages; may abbreviate with …)."""
    if depth > 6:
        return "…"
    d = depth + 1
    if isinstance(e, ast.Literal):
        return _lit_text(e.value)
    if isinstance(e, ast.Path):
        return _path_text(e.root, e.steps)
    if isinstance(e, ast.Call):
        args = ", ".join(_text(a, d) for a in e.args[:4]) + (", …" if len(e.args) > 4 else "")
        return f"{e.name}({args})"
    if isinstance(e, ast.ListExpr):
        items = ", ".join(_text(a, d) for a in e.items[:4]) + (", …" if len(e.items) > 4 else "")
        return f"[{items}]"
    if isinstance(e, ast.Unary):
        inner = _operand_text(e.operand, d)
        return f"not {inner}" if e.op == "not" else f"-{inner}"
    if isinstance(e, (ast.Arith, ast.Compare)):
        return f"{_operand_text(e.left, d)} {e.op} {_operand_text(e.right, d)}"
    if isinstance(e, ast.BoolOp):
        terms = [_operand_text(t, d) for t in e.terms[:3]]
        if len(e.terms) > 3:
            terms.append("…")
        return f" {e.op} ".join(terms)
    return "…"


def _operand_text(e, depth: int) -> str:
    s = _text(e, depth)
    return f"({s})" if isinstance(e, (ast.Arith, ast.Compare, ast.BoolOp)) else s


def _show(e, fallback: str) -> str:
    s = _text(e, 0)
    return s if len(s) <= _MAX_SHOWN and "…" not in s else fallback


def _is(e, t, fallback: str) -> str:
    """``resource.owner is a string``: an expression and its static type, for messages."""
    if isinstance(e, ast.Literal) and e.value is None:
        return f"{fallback} is null"
    return f"{_show(e, fallback)} is {_phrase(t)}"


def _did_you_mean(word: str, choices) -> str | None:
    """``did you mean 'owner'?`` for a misspelt name, or None."""
    return _close(word, tuple(choices))


@functools.lru_cache(maxsize=1024)
def _close(word: str, choices: tuple) -> str | None:
    matches = difflib.get_close_matches(word, choices, n=3)
    if not matches:
        return None
    return "did you mean " + " or ".join(f"'{m}'" for m in matches) + "?"


def _listing(names, limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (", …" if len(names) > limit else "")


# ----------------------------------------------------------------------------- structural keys

def _node_key(n):
    """A hashable key equal for structurally equal expressions (positions ignored)."""
    if isinstance(n, ast.Literal):
        return ("L", type(n.value).__name__, n.value)
    if isinstance(n, ast.Path):
        return _path_key(n)
    if isinstance(n, ast.BoolOp):
        return ("B", n.op, tuple(_node_key(t) for t in n.terms))
    if isinstance(n, ast.ListExpr):
        return ("[", tuple(_node_key(t) for t in n.items))
    if isinstance(n, ast.Call):
        return ("C", n.name, tuple(_node_key(t) for t in n.args))
    if isinstance(n, ast.Unary):
        return ("U", n.op, _node_key(n.operand))
    if isinstance(n, (ast.Arith, ast.Compare)):
        return (type(n).__name__, n.op, _node_key(n.left), _node_key(n.right))
    return ("?", id(n))


def _step_key(step):
    if isinstance(step, str):
        return step
    if isinstance(step, ast.Literal) and isinstance(step.value, str):
        return step.value
    return ("=", _node_key(step))


def _path_key(p: ast.Path) -> tuple:
    return (p.root,) + tuple(_step_key(s) for s in p.steps)


# ----------------------------------------------------------------------------- the checker

_ROOT_LIST = "subject, action, resource, context or data"


class _Checker:
    def __init__(self, data: dict | None, sources: dict[str, str] | None):
        self.data_keys = list(data.keys()) if isinstance(data, dict) else None
        self.data_key_set = set(self.data_keys or ())
        self.sources = sources or {}
        self._lines: dict[str, list[str]] = {}
        self.diags: set[Diagnostic] = set()
        # schemas: ("subject",) / ("context",) / ("resource", type) -> ObjT
        self.schemas: dict[tuple, ObjT] = {}
        # per policy and resource-type variant
        self.file = ""
        self.roots: dict[str, ObjT] = {}
        self.resource_type: str | None = None
        self.guards: dict[tuple, int] = {}
        self.has_depth = 0
        self.optional_leaf: set[int] = set()

    # -- reporting --------------------------------------------------------------------

    def source_line(self, file: str, line: int) -> str | None:
        if not line or file not in self.sources:
            return None
        lines = self._lines.get(file)
        if lines is None:
            lines = [ln.rstrip("\r") for ln in self.sources[file].split("\n")]
            self._lines[file] = lines
        return lines[line - 1] if 0 < line <= len(lines) else None

    def report(self, code: str, message: str, node=None, *, file: str | None = None,
               line: int | None = None, column: int | None = None, hint: str | None = None):
        file = self.file if file is None else file
        if line is None:
            line = getattr(node, "line", 0) or 0
            column = getattr(node, "column", 0) or 0
        self.diags.add(Diagnostic(code, message, file, line, column or 0,
                                  self.source_line(file, line), hint))

    # -- schemas ----------------------------------------------------------------------

    def load_schemas(self, modules: list[ast.Module]):
        entries = []
        for m in modules:
            for s in m.schemas:
                entries.append((s.file or m.file, s))
        entries.sort(key=lambda fs: (fs[0], fs[1].line, fs[1].column))
        first_at: dict[tuple, str] = {}
        for file, s in entries:
            self.file = file
            key = self.schema_key(s)
            obj = ObjT(self.convert_fields(s.fields), closed=True)
            if key is None:
                continue
            if key in first_at:
                what = "subject" if key == ("subject",) else "context" if key == ("context",) \
                    else f"resource type '{key[1]}'"
                self.report("duplicate_schema",
                            f"a schema for {what} is already declared at {first_at[key]}", s,
                            hint="merge the two schemas into one")
                continue
            first_at[key] = f"{file}:{s.line}:{s.column}"
            self.check_reserved(s, key[0])
            builtin = _BUILTIN_ATTRS.get(key[0], {})
            self.schemas[key] = ObjT({**obj.fields, **builtin}, closed=True)

    def schema_key(self, s: ast.Schema) -> tuple | None:
        if s.root == "resource":
            if not s.resource_type:
                self.report("invalid_schema", "a resource schema names its resource type", s,
                            hint="schema resource document { owner: string }")
                return None
            return ("resource", s.resource_type)
        if s.root in ("subject", "context"):
            if s.resource_type:
                self.report("invalid_schema",
                            f"schema {s.root} takes no type name ('{s.resource_type}')", s,
                            hint=f"write 'schema {s.root} {{ … }}'; only resource schemas name a type")
                return None
            return (s.root,)
        self.report("invalid_schema",
                    f"schemas describe subject, resource or context, not '{s.root}'", s)
        return None

    def check_reserved(self, s: ast.Schema, root: str):
        builtin = _BUILTIN_ATTRS.get(root, {})
        for f in s.fields:
            slot = builtin.get(f.name)
            if slot is None:
                continue
            declared = self.type_of_decl(f.type)
            if f.optional or not _can_equal(declared, slot.type):
                self.report(
                    "reserved_attribute",
                    f"{root}.{f.name} {_BUILTIN_ORIGIN[(root, f.name)]} and is always "
                    f"{_phrase(slot.type)}; it cannot be declared '{f.name}{'?' if f.optional else ''}: "
                    f"{_decl_text(f.type)}'", f,
                    hint=f"declare it as '{f.name}: {slot.type}' or leave it out")

    def type_of_decl(self, t):
        """A declared type without reporting (for re-reading a field)."""
        if isinstance(t, ast.NamedType):
            return t.name if t.name in SCHEMA_TYPES else ANY
        if isinstance(t, ast.ListType):
            return ListT(self.type_of_decl(t.element))
        if isinstance(t, ast.ObjectType):
            return ObjT({}, closed=False)
        return ANY

    def convert_fields(self, fields: list) -> dict:
        slots: dict[str, Slot] = {}
        first_line: dict[str, int] = {}
        for f in fields:
            t = self.convert_type(f.type)
            if f.name in slots:
                self.report("duplicate_field",
                            f"attribute '{f.name}' is declared twice (first at line {first_line[f.name]})", f)
                continue
            slots[f.name] = Slot(t, bool(f.optional))
            first_line[f.name] = f.line
        return slots

    def convert_type(self, t):
        if isinstance(t, ast.NamedType):
            if t.name in SCHEMA_TYPES:
                return t.name
            if t.name == "number":
                hint = "use 'int' or 'float' (an int and a float with the same value are equal)"
            else:
                hint = _did_you_mean(t.name, SCHEMA_TYPES) or \
                    ("types are " + ", ".join(SCHEMA_TYPES) + ", [T] (a list) and { name: T, … } (an object)")
            self.report("unknown_type", f"unknown type '{t.name}'", t, hint=hint)
            return ANY
        if isinstance(t, ast.ListType):
            return ListT(self.convert_type(t.element))
        if isinstance(t, ast.ObjectType):
            return ObjT(self.convert_fields(t.fields), closed=True)
        return ANY

    # -- policies ---------------------------------------------------------------------

    def check_policies(self, modules: list[ast.Module]):
        entries = []
        for m in modules:
            for p in m.policies:
                entries.append((p.file or m.file, p))
        entries.sort(key=lambda fp: (fp[0], fp[1].line, fp[1].column))
        seen: dict[str, str] = {}
        for file, p in entries:
            self.file = file
            id_line, id_col = (p.id_line, p.id_column) if p.id_line else (p.line, p.column)
            if p.id in seen:
                self.report("duplicate_policy_id",
                            f"policy id {json.dumps(p.id, ensure_ascii=False)} is already used at {seen[p.id]}",
                            line=id_line, column=id_col,
                            hint="policy ids are unique in the whole policy set")
            else:
                seen[p.id] = f"{file}:{id_line}:{id_col}"
            self.check_policy(p)

    def check_policy(self, p: ast.Policy):
        first: dict[str, ast.Clause] = {}
        for c in p.clauses:
            if c.kind in first:
                self.report("repeated_clause",
                            f"a policy has at most one '{c.kind}' clause; the first is at line {first[c.kind].line}",
                            c, hint=self._repeat_hint(c.kind))
            else:
                first[c.kind] = c

        base = {
            "subject": self.schemas.get(("subject",)) or ObjT({}, closed=False),
            "action": ObjT(dict(_BUILTIN_ATTRS["action"]), closed=False),
            "context": self.schemas.get(("context",)) or ObjT(dict(_BUILTIN_ATTRS["context"]), closed=False),
            "data": ObjT({}, closed=False),
        }
        open_resource = ObjT(dict(_BUILTIN_ATTRS["resource"]), closed=False)
        variants: list[tuple[str | None, ObjT]] = []
        if p.resource_types is not None:
            for rt in dict.fromkeys(p.resource_types):
                schema = self.schemas.get(("resource", rt))
                if schema is not None:
                    variants.append((rt, schema))
        if not variants:
            variants.append((None, open_resource))

        when = first.get("when")
        for rt, resource in variants:
            self.roots = {**base, "resource": resource}
            self.resource_type = rt
            self.guards = {}
            self.has_depth = 0
            self.optional_leaf = set()
            for c in p.clauses:
                if c.kind == "when" and c.value is not None:
                    self.condition(c.value)
                elif c.kind == "unless" and c.value is not None:
                    added = []
                    if when is not None and when.value is not None:
                        for key in self.facts(when.value, True):
                            added.extend(self.add_guard(key))
                    self.condition(c.value)
                    self.drop_guards(added)

    @staticmethod
    def _repeat_hint(kind: str) -> str | None:
        if kind == "when":
            return "join the conditions with 'and'"
        if kind == "unless":
            return "join the conditions with 'or'"
        return None

    # -- guards (has) -----------------------------------------------------------------

    def facts(self, e, truth: bool) -> set:
        """Paths that certainly exist when ``e`` evaluated to ``truth``."""
        if isinstance(e, ast.Call):
            if truth and e.name == "has" and len(e.args) == 1 and isinstance(e.args[0], ast.Path):
                return {_path_key(e.args[0])}
            return set()
        if isinstance(e, ast.Unary) and e.op == "not":
            return self.facts(e.operand, not truth)
        if isinstance(e, ast.BoolOp):
            if (e.op == "and") == truth:        # every term had this truth value
                out: set = set()
                for t in e.terms:
                    out |= self.facts(t, truth)
                return out
            result = None                       # one of the terms had it
            for t in e.terms:
                f = self.facts(t, truth)
                result = f if result is None else result & f
                if not result:
                    return set()
            return result or set()
        return set()

    def add_guard(self, key: tuple) -> list:
        """Record that ``key`` (and so each of its prefixes) exists."""
        added = [key[:i] for i in range(1, len(key) + 1)]
        for k in added:
            self.guards[k] = self.guards.get(k, 0) + 1
        return added

    def drop_guards(self, added: list):
        for k in added:
            n = self.guards[k] - 1
            if n:
                self.guards[k] = n
            else:
                del self.guards[k]

    # -- expressions ------------------------------------------------------------------

    def condition(self, e):
        """An expression whose value must be a boolean."""
        t = self.expr(e)
        k = _kind(t)
        if k not in (ANY, "bool"):
            self.report("not_boolean",
                        f"a condition must be true or false, but {_is(e, t, 'this expression')}", e)
        return t

    def expr(self, e):
        if isinstance(e, ast.Literal):
            return _literal_type(e.value)
        if isinstance(e, ast.Path):
            return self.path(e)
        if isinstance(e, ast.Compare):
            self.compare(e)
            return "bool"
        if isinstance(e, ast.BoolOp):
            self.bool_op(e)
            return "bool"
        if isinstance(e, ast.Call):
            return self.call(e)
        if isinstance(e, ast.Arith):
            return self.arith(e)
        if isinstance(e, ast.Unary):
            return self.unary(e)
        if isinstance(e, ast.ListExpr):
            return ListT(_join([self.expr(i) for i in e.items]))
        return ANY

    def bool_op(self, e: ast.BoolOp):
        truth = e.op == "and"        # a later term runs only when the earlier ones were (and: true, or: false)
        added: list = []
        terms = e.terms
        last = len(terms) - 1
        for i, term in enumerate(terms):
            self.condition(term)
            if i < last:
                for key in self.facts(term, truth):
                    added.extend(self.add_guard(key))
        self.drop_guards(added)

    def unary(self, e: ast.Unary):
        if e.op == "not":
            self.condition(e.operand)
            return "bool"
        t = self.expr(e.operand)
        k = _kind(t)
        if k in ("number", "duration"):
            return t
        if k != ANY:
            self.report("impossible_arithmetic",
                        f"'-' negates a number, but {_is(e.operand, t, 'its operand')}", e)
        return ANY

    def arith(self, e: ast.Arith):
        lt, rt = self.expr(e.left), self.expr(e.right)
        kl, kr = _kind(lt), _kind(rt)
        results = {res for (a, op, b), res in _ARITH.items()
                   if op == e.op and kl in (a, ANY) and kr in (b, ANY)}
        if not results:
            parts = []
            if kl != ANY:
                parts.append(_is(e.left, lt, "the left side"))
            if kr != ANY:
                parts.append(_is(e.right, rt, "the right side"))
            self.report("impossible_arithmetic", f"{_ARITH_TEXT[e.op]}; {' and '.join(parts)}", e)
            return ANY
        if len(results) != 1:
            return ANY
        res = results.pop()
        if res == "number" and kl == kr == "number":
            if lt == rt == "int":
                return "int"
            if "number" not in (lt, rt):
                return "float"
        return res

    def compare(self, e: ast.Compare):
        lt, rt = self.expr(e.left), self.expr(e.right)
        op = e.op
        if op in ("==", "!="):
            self.check_equality(e, lt, rt)
        elif op in ("<", "<=", ">", ">="):
            self.check_order(e, lt, rt)
        elif op in ("in", "not in", "not_in"):
            self.check_in(e, lt, rt)
        elif op == "like":
            if not (isinstance(e.right, ast.Literal) and isinstance(e.right.value, str)):
                self.report("like_pattern_not_literal",
                            "the pattern of 'like' must be a literal string, such as \"*.pdf\"",
                            e.right,
                            hint="to compare with a computed value use '==', starts_with() or ends_with()")
            if _kind(lt) not in (ANY, "string"):
                self.report("impossible_comparison",
                            f"'like' matches strings, but {_is(e.left, lt, 'the left side')}", e)

    def _is_nullable(self, e) -> bool:
        return isinstance(e, ast.Path) and id(e) in self.optional_leaf

    def check_equality(self, e: ast.Compare, lt, rt):
        outcome = "false" if e.op == "==" else "true"
        kl, kr = _kind(lt), _kind(rt)
        if kl == ANY or kr == ANY or kl == kr:
            return
        if "null" in (kl, kr):
            other, ot = (e.right, rt) if kl == "null" else (e.left, lt)
            if self._is_nullable(other):
                return
            self.report("impossible_comparison",
                        f"comparison is always {outcome}: {_show(other, 'the other side')} is "
                        f"{_phrase(ot)} and never null", e,
                        hint="to test whether an attribute is present use has(…)"
                        if isinstance(other, ast.Path) else None)
            return
        self.report("impossible_comparison",
                    f"comparison is always {outcome}: {_is(e.left, lt, 'the left side')} "
                    f"and {_is(e.right, rt, 'the right side')}", e)

    def check_order(self, e: ast.Compare, lt, rt):
        kl, kr = _kind(lt), _kind(rt)
        bad_l = kl not in _ORDERED and kl != ANY
        bad_r = kr not in _ORDERED and kr != ANY
        mismatch = kl != ANY and kr != ANY and kl != kr
        if not (bad_l or bad_r or mismatch):
            return
        parts = []
        if kl != ANY:
            parts.append(_is(e.left, lt, "the left side"))
        if kr != ANY:
            parts.append(_is(e.right, rt, "the right side"))
        self.report("impossible_comparison",
                    f"'{e.op}' compares two numbers, two strings, two timestamps or two durations; "
                    f"{' and '.join(parts)}", e)

    def check_in(self, e: ast.Compare, lt, rt):
        op = "not in" if e.op in ("not in", "not_in") else "in"
        outcome = "false" if op == "in" else "true"
        kr = _kind(rt)
        if kr == ANY:
            return
        if kr != "list":
            hint = "to test for a substring use contains(s, sub)" if kr == "string" else None
            self.report("impossible_comparison",
                        f"'{op}' needs a list on its right, but {_is(e.right, rt, 'the right side')}",
                        e, hint=hint)
            return
        if _kind(lt) == ANY:
            return
        if isinstance(e.right, ast.ListExpr):
            items = e.right.items
            if not items:
                return
            if any(_can_equal(lt, self._static_type(i)) for i in items):
                return
            self.report("impossible_comparison",
                        f"test is always {outcome}: {_is(e.left, lt, 'the left side')} and "
                        f"no element of {_show(e.right, 'the list')} can equal it", e)
            return
        if _can_equal(lt, rt.elem):
            return
        self.report("impossible_comparison",
                    f"test is always {outcome}: {_is(e.left, lt, 'the left side')} and "
                    f"{_is(e.right, rt, 'the right side')}", e)

    def _static_type(self, e):
        """The type of an already-checked list item (without reporting again)."""
        if isinstance(e, ast.Literal):
            return _literal_type(e.value)
        if isinstance(e, ast.ListExpr):
            return ListT(ANY)
        if isinstance(e, ast.Path):
            return self.path_type_quiet(e)
        if isinstance(e, (ast.Compare, ast.BoolOp)) or (isinstance(e, ast.Unary) and e.op == "not"):
            return "bool"
        if isinstance(e, ast.Call) and e.name in BUILTINS:
            return _parse_type_text(BUILTINS[e.name].result)
        return ANY

    # -- calls ------------------------------------------------------------------------

    def call(self, e: ast.Call):
        sig = BUILTINS.get(e.name)
        if sig is None:
            hint = _did_you_mean(e.name, BUILTINS) or ("built-in functions: " + ", ".join(sorted(BUILTINS)))
            self.report("unknown_function", f"unknown function '{e.name}'", e, hint=hint)
            for a in e.args:
                self.expr(a)
            return ANY
        n = len(e.args)
        arity_ok = sig.min_args <= n <= sig.max_args
        if not arity_ok:
            self.report("wrong_arity", f"{e.name}() takes {sig.arity_text()}, got {n}", e)
        if e.name == "has":
            for i, a in enumerate(e.args):
                if i == 0 and isinstance(a, ast.Path):
                    self.has_depth += 1
                    try:
                        self.path(a)
                    finally:
                        self.has_depth -= 1
                else:
                    if i == 0:
                        self.report("has_needs_path",
                                    f"has() takes a path such as resource.owner, not {_show(a, 'an expression')}",
                                    a)
                    self.expr(a)
            return "bool"
        types = [self.expr(a) for a in e.args]
        if arity_ok:
            for i, (a, t) in enumerate(zip(e.args, types)):
                self.check_argument(e, sig, i, a, t)
        return _parse_type_text(sig.result)

    def check_argument(self, call: ast.Call, sig, i: int, arg, t):
        accepts = _ACCEPTS_OVERRIDE.get((call.name, i))
        if accepts is None:
            param = sig.params[min(i, len(sig.params) - 1)]
            pk = _kind(_parse_type_text(param))
            accepts = None if pk == ANY else (pk,)
        k = _kind(t)
        literal = isinstance(arg, (ast.Literal, ast.ListExpr))
        if accepts is not None and k != ANY and k not in accepts:
            wanted = " or ".join(_A[a] for a in accepts)
            self.report("invalid_literal" if literal else "wrong_argument_type",
                        f"argument {i + 1} of {call.name}() must be {wanted}, but "
                        f"{_is(arg, t, 'it')}", arg)
            return
        if isinstance(arg, ast.Literal):
            name = _VALIDATE.get((call.name, i, k))
            fn = _validator(name) if name else None
            if fn is None:
                return
            try:
                fn(arg.value)
            except ValueError as exc:
                self.report("invalid_literal", str(exc), arg,
                            hint=f"{call.name}() would fail with this argument on every request")

    # -- paths ------------------------------------------------------------------------

    def path(self, p: ast.Path):
        """The static type of a path; reports unknown roots, attributes, data and unguarded reads."""
        if p.root not in ast.ROOTS:
            self.report("unknown_root",
                        f"unknown name '{p.root}'; a path starts with {_ROOT_LIST}", p,
                        hint=_did_you_mean(p.root, ast.ROOTS))
            for s in p.steps:
                if not isinstance(s, str):
                    self.expr(s)
            return ANY
        if p.root == "data" and p.steps and self.data_keys is not None:
            first = p.steps[0]
            if isinstance(first, ast.Literal) and isinstance(first.value, str):
                first = first.value
            if isinstance(first, str) and first not in self.data_key_set:
                if self.data_keys:
                    msg = f"no reference data '{first}'; data files give: {_listing(self.data_keys)}"
                else:
                    msg = f"no reference data '{first}'; the policy set has no data files"
                self.report("unknown_data", msg, p, hint=_did_you_mean(first, self.data_keys))
        t = self.roots[p.root]
        keys = [p.root]
        optional = None          # (key, step index, name) of the deepest optional step
        leaf_optional = False
        for i, step in enumerate(p.steps):
            if not isinstance(step, str):
                kt = self.expr(step)
                if isinstance(step, ast.Literal) and isinstance(step.value, str):
                    step = step.value
            leaf_optional = False
            if isinstance(step, str):
                keys.append(step)
                if t == ANY:
                    continue
                t, slot = self.attribute(t, step, p, i)
                if slot is not None and slot.optional:
                    optional = (tuple(keys), i, step)
                    leaf_optional = True
            else:
                keys.append(_step_key(step))
                t = self.index(t, kt)
        if leaf_optional:
            self.optional_leaf.add(id(p))
        if optional is not None and self.has_depth == 0 and optional[0] not in self.guards:
            _key, i, name = optional
            shown = _path_text(p.root, p.steps[: i + 1])
            self.report("unguarded_optional",
                        f"{shown} may be absent (declared '{name}?'); guard it with has({shown})", p)
        return t

    def path_type_quiet(self, p: ast.Path):
        """The static type of an already-checked path, reporting nothing."""
        if p.root not in ast.ROOTS:
            return ANY
        t = self.roots[p.root]
        for step in p.steps:
            if isinstance(step, ast.Literal) and isinstance(step.value, str):
                step = step.value
            if t == ANY:
                return ANY
            if isinstance(step, str):
                if not isinstance(t, ObjT) or step not in t.fields:
                    return ANY
                t = t.fields[step].type
            else:
                t = t.elem if isinstance(t, ListT) and _kind(self._static_type(step)) in ("number", ANY) else ANY
        return t

    def attribute(self, t, name: str, p: ast.Path, i: int):
        """(type, slot) of ``t.name``; reports a name that cannot exist."""
        if isinstance(t, ObjT):
            slot = t.fields.get(name)
            if slot is not None:
                return slot.type, slot
            if not t.closed:
                return ANY, None
            if i == 0:
                where = f"resource type '{self.resource_type}'" if p.root == "resource" else p.root
                msg = f"{where} has no attribute '{name}'"
            else:
                msg = f"{_path_text(p.root, p.steps[:i])} has no attribute '{name}'"
                if p.root == "resource" and self.resource_type:
                    msg += f" (resource type '{self.resource_type}')"
            hint = _did_you_mean(name, t.fields)
            if hint is None and t.fields:
                hint = "declared attributes: " + _listing(sorted(t.fields))
            self.report("unknown_attribute", msg, p, hint=hint)
            return ANY, None
        shown = _path_text(p.root, p.steps[:i])
        hint = f"use len({shown})" if name in ("length", "size", "count", "len") \
            and _kind(t) in ("list", "string") else None
        self.report("unknown_attribute",
                    f"{shown} is {_phrase(t)}, which has no attribute '{name}'", p, hint=hint)
        return ANY, None

    @staticmethod
    def index(t, key_type):
        if isinstance(t, ListT) and _kind(key_type) in ("number", ANY):
            return t.elem
        return ANY


def _decl_text(t) -> str:
    if isinstance(t, ast.NamedType):
        return t.name
    if isinstance(t, ast.ListType):
        return f"[{_decl_text(t.element)}]"
    if isinstance(t, ast.ObjectType):
        return "{ … }"
    return "?"


# ----------------------------------------------------------------------------- entry point

def check(modules: list[ast.Module], data: dict | None = None,
          sources: dict[str, str] | None = None) -> list[Diagnostic]:
    """Every compile-time problem of a policy set, sorted by (file, line, column).

    ``modules`` are the parsed files of the set; ``data`` the reference data (its
    top-level keys are what ``data.X`` may name; ``None`` skips that check);
    ``sources`` maps a file name to its text, to quote the offending line.
    """
    checker = _Checker(data, sources)
    checker.load_schemas(modules)
    checker.check_policies(modules)
    return sorted(checker.diags, key=Diagnostic.sort_key)
