"""The canonical layout of a ``.policy`` file (``pdp policy fmt``).

:func:`format_source` parses a file and prints it back in one canonical layout.
It is idempotent (``format(format(x)) == format(x)``), keeps every comment and
never changes meaning: the printed file parses to the same tree, up to source
positions and the grouping of ``and``/``or`` chains (``a or (b or c)`` is
printed ``a or b or c``: both evaluate left to right and short-circuit alike).
A file with syntax errors is never formatted: :class:`PolicyError` is raised.

The layout::

    # a comment before the block
    @owner("team-docs")
    policy "doc-owner-edit" {
      permit read, update on document     # a trailing comment stays put
      when resource.owner == subject.sub
      unless resource.archived
      reason "owners may edit their own documents"
    }

    schema resource document {
      owner: string
      meta?: { team: string, tags: [string] }
    }

- annotations one per line, then ``policy "id" {``, the effect line and each
  clause on its own line indented by two spaces, then ``}``; one blank line
  between blocks; blank lines inside a block are dropped;
- names that are bare words are printed bare, others quoted; ``*`` for any;
- expressions on one line with the fewest parentheses their precedence needs;
  strings with JSON escapes, floats as ``repr`` (always with a ``.``), path steps
  as ``.name`` when the key is an identifier, else ``["key"]``;
- comments: an own-line comment is printed, re-indented, before the line that
  follows it (at the end of its block or file when nothing follows); a comment
  that ends the last line of a clause, effect, field, annotation or header stays
  at the end of that printed line; a comment inside a multi-line construct moves
  to just before it. At the top level, a blank line that separated a comment
  from the next comment or block is kept (one at most);
- the file ends with exactly one newline (an empty file stays empty).

Source positions come from the parser; comments are placed by comparing their
offsets with the offsets where each printed line's construct starts and ends.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field

from pdp.errors import Diagnostic, PolicyError
from pdp.lang import ast
from pdp.lang.parser import KEYWORDS, parse_module

__all__ = ["format_source", "format_expr", "format_type", "format_name", "format_module"]

INDENT = "  "

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
def _is_ident(name: str) -> bool:
    """Printable as a bare name: an identifier that is not a keyword."""
    return bool(_IDENT.match(name)) and name not in KEYWORDS


_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_:.\-/]*\Z")

# Precedence levels, lowest first (spec §4).
_OR, _AND, _NOT, _CMP, _SUM, _NEG, _PRIMARY = range(1, 8)


# ----------------------------------------------------------------------------- expressions

def format_string(s: str) -> str:
    """A string literal with JSON escapes (non-ASCII kept as is)."""
    return json.dumps(s, ensure_ascii=False)


def format_name(name: str) -> str:
    """An action, resource-type or schema type name: bare when it is a bare word."""
    return name if _BARE_NAME.match(name) else format_string(name)


def _format_number(value) -> str:
    if isinstance(value, int):
        return str(value)
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:     # 1e+16 -> 1.0e+16 (the grammar needs a '.')
        mantissa, exp = text.split("e")
        text = f"{mantissa}.0e{exp}"
    return text


def _format_literal(value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return format_string(value)
    if isinstance(value, (int, float)):
        return _format_number(value)
    raise TypeError(f"not a literal value: {value!r}")


def _precedence(node) -> int:
    if isinstance(node, ast.BoolOp):
        return _OR if node.op == "or" else _AND
    if isinstance(node, ast.Unary):
        return _NOT if node.op == "not" else _NEG
    if isinstance(node, ast.Compare):
        return _CMP
    if isinstance(node, ast.Arith):
        return _SUM
    if isinstance(node, ast.Literal) and _format_literal(node.value).startswith("-"):
        return _NEG
    return _PRIMARY


def format_expr(node, min_prec: int = _OR) -> str:
    """An expression on one line, parenthesised only where precedence needs it.

    ``min_prec`` is the lowest precedence the context accepts without parentheses.
    """
    text = _format(node)
    return f"({text})" if _precedence(node) < min_prec else text


def _bool_terms(node: ast.BoolOp) -> list:
    """The terms of an and/or chain, with same-operator sub-chains flattened."""
    out, stack = [], list(reversed(node.terms))
    while stack:
        t = stack.pop()
        if isinstance(t, ast.BoolOp) and t.op == node.op:
            stack.extend(reversed(t.terms))
        else:
            out.append(t)
    return out


def _format(node) -> str:
    if isinstance(node, ast.Literal):
        return _format_literal(node.value)
    if isinstance(node, ast.Path):
        parts = [node.root]
        for step in node.steps:
            if isinstance(step, str):
                parts.append(f".{step}" if _is_ident(step) else f"[{format_string(step)}]")
            else:
                parts.append(f"[{format_expr(step)}]")
        return "".join(parts)
    if isinstance(node, ast.ListExpr):
        return "[" + ", ".join(format_expr(i) for i in node.items) + "]"
    if isinstance(node, ast.Call):
        return f"{node.name}(" + ", ".join(format_expr(a) for a in node.args) + ")"
    if isinstance(node, ast.BoolOp):
        inner = _AND if node.op == "or" else _NOT
        return f" {node.op} ".join(format_expr(t, inner) for t in _bool_terms(node))
    if isinstance(node, ast.Unary):
        if node.op == "not":
            return "not " + format_expr(node.operand, _NOT)
        return "-" + format_expr(node.operand, _NEG)
    if isinstance(node, ast.Compare):
        return f"{format_expr(node.left, _SUM)} {node.op} {format_expr(node.right, _SUM)}"
    if isinstance(node, ast.Arith):
        return f"{format_expr(node.left, _SUM)} {node.op} {format_expr(node.right, _NEG)}"
    raise TypeError(f"not an expression node: {type(node).__name__}")


def format_type(node) -> str:
    """A schema type: ``string``, ``[T]``, ``{ a: int, b?: string }`` (``{}`` when empty)."""
    if isinstance(node, ast.NamedType):
        return node.name
    if isinstance(node, ast.ListType):
        return f"[{format_type(node.element)}]"
    if isinstance(node, ast.ObjectType):
        if not node.fields:
            return "{}"
        return "{ " + ", ".join(_format_field(f) for f in node.fields) + " }"
    raise TypeError(f"not a type node: {type(node).__name__}")


def _format_field(f: ast.Field) -> str:
    name = f.name if _is_ident(f.name) else format_string(f.name)
    return f"{name}{'?' if f.optional else ''}: {format_type(f.type)}"


def _format_names(names: list | None) -> str:
    return "*" if names is None else ", ".join(format_name(n) for n in names)


def _format_clause(c: ast.Clause) -> str:
    if c.kind == "reason":
        return f"reason {format_string(c.value)}"
    return f"{c.kind} {format_expr(c.value)}"


# ----------------------------------------------------------------------------- layout

@dataclass
class _Line:
    """One printed line of a block, and where its construct sits in the source."""
    text: str
    indent: int                     # indent of the line itself
    comment_indent: int             # indent of comments moved before it
    start: int                      # offset of its first source character
    end: int = 0                    # offset just past its last source character
    first_of_item: bool = False     # the first line of a top-level block
    leading: list = field(default_factory=list)     # comments printed before it
    trailing: str | None = None


class _Source:
    """Offsets, and the text with every comment blanked out (code only)."""

    def __init__(self, text: str, comments: list):
        self.text = text
        self.raw_lines = text.split("\n")
        self.line_starts = [0]
        for ln in self.raw_lines[:-1]:
            self.line_starts.append(self.line_starts[-1] + len(ln) + 1)
        chars = list(text)
        for c in comments:
            a = self.offset(c.line, c.column)
            for i in range(a, min(a + len(c.text), len(chars))):
                chars[i] = " "
        self.code = "".join(chars)

    def offset(self, line: int, column: int) -> int:
        return self.line_starts[line - 1] + column - 1

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset)

    def code_end_before(self, offset: int) -> int:
        """Offset just past the last code character before ``offset``."""
        code, i = self.code, offset
        while i > 0 and code[i - 1].isspace():
            i -= 1
        return i

    def code_before_on_line(self, offset: int) -> bool:
        start = self.line_starts[self.line_of(offset) - 1]
        return bool(self.code[start:offset].strip())

    def blank_line_between(self, line_a: int, line_b: int) -> bool:
        """Whether some line strictly between the two (1-based) lines is blank."""
        return any(not self.raw_lines[i - 1].strip() for i in range(line_a + 1, line_b))


def _item_lines(item, src: _Source) -> list[_Line]:
    """The printed lines of one block, each with its source start offset."""
    lines: list[_Line] = []
    if isinstance(item, ast.Policy):
        for a in item.annotations:
            lines.append(_Line(f"@{a.name}({format_string(a.value)})", 0, 0, src.offset(a.line, a.column)))
        id_off = src.offset(item.id_line, item.id_column)
        kw_off = src.code_end_before(id_off) - len("policy")
        lines.append(_Line(f"policy {format_string(item.id)} {{", 0, 0, kw_off))
        lines.append(_Line(
            f"{INDENT}{item.effect} {_format_names(item.actions)} on {_format_names(item.resource_types)}",
            1, 1, src.offset(item.effect_line, item.effect_column)))
        for c in item.clauses:
            lines.append(_Line(INDENT + _format_clause(c), 1, 1, src.offset(c.line, c.column)))
    else:
        header = f"schema {item.root}"
        if item.resource_type is not None:
            header += f" {format_name(item.resource_type)}"
        lines.append(_Line(header + " {", 0, 0, src.offset(item.line, item.column)))
        for f in item.fields:
            lines.append(_Line(INDENT + _format_field(f), 1, 1, src.offset(f.line, f.column)))
    lines[0].first_of_item = True
    return lines


def format_module(module: ast.Module, text: str) -> str:
    """Print a parsed module (with no syntax errors) in the canonical layout."""
    src = _Source(text, module.comments)
    items = module.items
    blocks: list[list[_Line]] = []
    for i, item in enumerate(items):
        lines = _item_lines(item, src)
        nxt = src.offset(items[i + 1].line, items[i + 1].column) if i + 1 < len(items) else len(text)
        close = src.code_end_before(nxt) - 1          # a block ends with its '}'
        lines.append(_Line("}", 0, 1, close))
        blocks.append(lines)

    flat = [ln for block in blocks for ln in block]
    for k, ln in enumerate(flat):
        nxt = flat[k + 1].start if k + 1 < len(flat) else len(text)
        ln.end = src.code_end_before(nxt)
    starts = [ln.start for ln in flat]

    end_comments: list = []
    for c in sorted(module.comments, key=lambda c: (c.line, c.column)):
        off = src.offset(c.line, c.column)
        k = bisect.bisect_left(starts, off) - 1        # the last construct starting before it
        if k >= 0 and off < flat[k].end:
            flat[k].leading.append(c)                  # inside a multi-line construct
        elif k >= 0 and src.code_before_on_line(off):
            flat[k].trailing = c.text.rstrip()
        elif k + 1 < len(flat):
            flat[k + 1].leading.append(c)
        else:
            end_comments.append(c)

    out: list[str] = []
    for ln in flat:
        if ln.first_of_item:
            prev_line = None
            if out:
                out.append("")
            for c in ln.leading:
                if prev_line is not None and src.blank_line_between(prev_line, c.line):
                    out.append("")
                out.append(c.text.rstrip())
                prev_line = c.line
            if prev_line is not None and src.blank_line_between(prev_line, src.line_of(ln.start)):
                out.append("")
        else:
            out.extend(INDENT * ln.comment_indent + c.text.rstrip() for c in ln.leading)
        out.append(ln.text + (f" {ln.trailing}" if ln.trailing else ""))

    prev_line = None
    for c in end_comments:
        if out and (prev_line is None or src.blank_line_between(prev_line, c.line)):
            out.append("")
        out.append(c.text.rstrip())
        prev_line = c.line
    return "\n".join(out) + "\n" if out else ""


def format_source(text: str, file: str = "<input>") -> str:
    """``text`` in the canonical layout. Raises :class:`PolicyError` on syntax errors."""
    module, diagnostics = parse_module(text, file)
    if diagnostics:
        raise PolicyError(diagnostics)
    result = format_module(module, text)
    _check_round_trip(module, result, file)
    return result


def _check_round_trip(module: ast.Module, result: str, file: str) -> None:
    """Refuse to hand back text that does not parse to the same policies.

    A safety net: a formatter bug must never rewrite an author's file into
    something else.
    """
    again, diagnostics = parse_module(result, file)
    if diagnostics or [normalize(i) for i in again.items] != [normalize(i) for i in module.items] \
            or sorted(c.text.rstrip() for c in again.comments) != sorted(c.text.rstrip() for c in module.comments):
        raise PolicyError([Diagnostic(
            "format_error", "the formatter could not reproduce this file faithfully; it was left unchanged "
            "(please report this as a bug)", file)])


_POSITION_FIELDS = {"line", "column", "id_line", "id_column", "effect_line", "effect_column", "end_line", "file"}


def normalize(node):
    """A node as plain data without positions, and/or chains flattened: two trees
    that normalize equal mean the same."""
    if isinstance(node, list):
        return [normalize(x) for x in node]
    if isinstance(node, ast.BoolOp):
        return {"@": "BoolOp", "op": node.op, "terms": [normalize(t) for t in _bool_terms(node)]}
    if isinstance(node, ast.Literal):
        v = node.value
        return {"@": "Literal", "type": type(v).__name__, "value": repr(v)}
    if hasattr(node, "__dataclass_fields__"):
        out = {"@": type(node).__name__}
        for name in node.__dataclass_fields__:
            if name not in _POSITION_FIELDS:
                out[name] = normalize(getattr(node, name))
        return out
    return node
