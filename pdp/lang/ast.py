"""The syntax tree of the policy language.

Every node carries the 1-based ``line`` and ``column`` where it starts in its file.
Expressions are kept shallow on purpose: ``and``/``or`` chains are one n-ary
:class:`BoolOp`, parentheses leave no node, and the parser refuses nesting deeper
than :data:`MAX_DEPTH`, so every pass over a tree may recurse safely.

Trees serialise to plain JSON-able dicts (:func:`to_data`/:func:`from_data`): that
is the compiled form a policy store keeps, loadable without re-parsing sources.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Union

#: Deepest expression nesting an author may write (``not not …``, nested calls,
#: lists in lists …). Long ``and``/``or`` chains are flat and do not count.
MAX_DEPTH = 64

ROOTS = ("subject", "action", "resource", "context", "data")


# --------------------------------------------------------------------------- expressions

@dataclass(slots=True)
class Literal:
    """A string, int, float, bool or null written in the source."""
    value: object
    line: int = 0
    column: int = 0


@dataclass(slots=True)
class ListExpr:
    items: list
    line: int = 0
    column: int = 0


@dataclass(slots=True)
class Path:
    """``root.step…``: ``root`` is one of :data:`ROOTS`. Each step is a ``str`` (a
    static key, from ``.name`` or ``["name"]``) or an expression (``[expr]``)."""
    root: str
    steps: list
    line: int = 0
    column: int = 0


@dataclass(slots=True)
class Call:
    name: str
    args: list
    line: int = 0
    column: int = 0


@dataclass(slots=True)
class Unary:
    """``not x`` or ``-x``."""
    op: str
    operand: object
    line: int = 0
    column: int = 0


@dataclass(slots=True)
class Arith:
    """``left + right`` or ``left - right``; position is the operator's."""
    op: str
    left: object
    right: object
    line: int = 0
    column: int = 0


@dataclass(slots=True)
class Compare:
    """``== != < <= > >= in like`` and ``not in`` (with a space); position is the operator's."""
    op: str
    left: object
    right: object
    line: int = 0
    column: int = 0


@dataclass(slots=True)
class BoolOp:
    """``and``/``or`` over two or more terms, evaluated left to right."""
    op: str
    terms: list
    line: int = 0
    column: int = 0


Expr = Union[Literal, ListExpr, Path, Call, Unary, Arith, Compare, BoolOp]


# --------------------------------------------------------------------------- policies

@dataclass(slots=True)
class Annotation:
    name: str
    value: str
    line: int = 0
    column: int = 0


@dataclass(slots=True)
class Clause:
    """``when EXPR``, ``unless EXPR`` or ``reason "text"`` (value is then a str)."""
    kind: str
    value: object
    line: int = 0
    column: int = 0


@dataclass(slots=True)
class Policy:
    id: str
    effect: str                    # "permit" | "forbid"
    actions: list | None           # None means "*"
    resource_types: list | None    # None means "*"
    clauses: list = field(default_factory=list)
    annotations: list = field(default_factory=list)
    file: str = ""
    line: int = 0
    column: int = 0
    id_line: int = 0
    id_column: int = 0
    effect_line: int = 0
    effect_column: int = 0
    end_line: int = 0

    def _first(self, kind: str):
        for c in self.clauses:
            if c.kind == kind:
                return c.value
        return None

    @property
    def when(self):
        return self._first("when")

    @property
    def unless(self):
        return self._first("unless")

    @property
    def reason(self) -> str | None:
        return self._first("reason")


# --------------------------------------------------------------------------- schemas

@dataclass(slots=True)
class NamedType:
    """``string int float bool timestamp duration ip any``."""
    name: str
    line: int = 0
    column: int = 0


@dataclass(slots=True)
class ListType:
    element: object
    line: int = 0
    column: int = 0


@dataclass(slots=True)
class ObjectType:
    fields: list                    # list[Field]
    line: int = 0
    column: int = 0


@dataclass(slots=True)
class Field:
    name: str
    type: object
    optional: bool = False
    line: int = 0
    column: int = 0


@dataclass(slots=True)
class Schema:
    """``schema subject {…}``, ``schema context {…}``, ``schema resource TYPE {…}``."""
    root: str
    resource_type: str | None
    fields: list
    file: str = ""
    line: int = 0
    column: int = 0
    end_line: int = 0


# --------------------------------------------------------------------------- files

@dataclass(slots=True)
class Comment:
    text: str                      # including the leading '#'
    line: int
    column: int


@dataclass(slots=True)
class Module:
    """One parsed ``.policy`` file."""
    file: str
    policies: list
    schemas: list
    comments: list = field(default_factory=list)
    items: list = field(default_factory=list)   # policies and schemas in source order


# --------------------------------------------------------------------------- (de)serialisation

_NODE_TYPES = {cls.__name__: cls for cls in (
    Literal, ListExpr, Path, Call, Unary, Arith, Compare, BoolOp,
    Annotation, Clause, Policy, NamedType, ListType, ObjectType, Field, Schema,
)}


def to_data(node):
    """A node (or list of nodes, or plain value) as JSON-able data.

    Nodes become ``{"@": TypeName, field: …}``; plain values stay as they are, so a
    string key in a path and a string literal stay distinguishable.
    """
    if isinstance(node, list):
        return [to_data(x) for x in node]
    cls = type(node)
    if cls.__name__ in _NODE_TYPES and _NODE_TYPES[cls.__name__] is cls:
        out = {"@": cls.__name__}
        for f in fields(cls):
            out[f.name] = to_data(getattr(node, f.name))
        return out
    return node


def from_data(data):
    """Inverse of :func:`to_data`. Refuses unknown node types."""
    if isinstance(data, list):
        return [from_data(x) for x in data]
    if isinstance(data, dict) and "@" in data:
        name = data["@"]
        cls = _NODE_TYPES.get(name)
        if cls is None:
            raise ValueError(f"unknown node type {name!r} in compiled policy data")
        kwargs = {k: from_data(v) for k, v in data.items() if k != "@"}
        if cls is Literal:
            kwargs["value"] = data["value"]     # a literal's value is data, never a node
        return cls(**kwargs)
    return data


def children(node) -> list:
    """The direct sub-expressions of an expression node."""
    if isinstance(node, (Literal,)):
        return []
    if isinstance(node, ListExpr):
        return list(node.items)
    if isinstance(node, Path):
        return [s for s in node.steps if not isinstance(s, str)]
    if isinstance(node, Call):
        return list(node.args)
    if isinstance(node, Unary):
        return [node.operand]
    if isinstance(node, (Arith, Compare)):
        return [node.left, node.right]
    if isinstance(node, BoolOp):
        return list(node.terms)
    return []


def walk(node):
    """Every expression node under ``node`` (itself included), depth first, pre-order.

    Iterative, so it is safe on any tree the parser builds.
    """
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(children(n)))
