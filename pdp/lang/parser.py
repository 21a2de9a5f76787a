"""Parse policy files into :mod:`pdp.lang.ast` trees.

The grammar is ``grammar.lark`` (LALR). The tree is built by an inline
transformer while parsing, so nesting in the source never becomes recursion in
Python, and the resulting tree is checked against :data:`ast.MAX_DEPTH`.

Syntax errors are reported in an author's words (``expected 'on' after the action
list``) with file, line, column and the source line. After an error the parser
skips to the next top-level block (a line starting with ``policy``, ``schema`` or
``@``) and goes on, so one run reports an error in every broken block.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path as _FsPath

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from pdp.errors import Diagnostic, PolicyError
from pdp.lang import ast

_GRAMMAR = (_FsPath(__file__).parent / "grammar.lark").read_text(encoding="utf-8")


class _SourceError(Exception):
    """Raised from inside the transformer: a located problem that is not a grammar error."""

    def __init__(self, code: str, message: str, line: int, column: int, hint: str | None = None):
        super().__init__(message)
        self.code, self.message, self.line, self.column, self.hint = code, message, line, column, hint


_ESCAPE = re.compile(r"\\.")


def decode_string(tok: Token) -> str:
    """The value of a STRING token: JSON escapes, no lone surrogates."""
    text = tok.value
    if "\\*" in text:
        # ``\*`` is the literal star of a ``like`` pattern (spec §4): keep it as
        # backslash + star in the value; every other escape is JSON's.
        text = _ESCAPE.sub(lambda m: "\\\\*" if m.group(0) == "\\*" else m.group(0), text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        bad = re.search(r'\\(?:u(?![0-9a-fA-F]{4})|[^"\\/bfnrtu])', tok.value)
        col = tok.column + (bad.start() if bad else 0)
        raise _SourceError("syntax_error", "invalid escape in string; strings use JSON escapes "
                           "(\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)", tok.line, col)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _SourceError("syntax_error", "invalid \\u escape in string: a lone surrogate is not a character",
                           tok.line, tok.column)
    return value


KEYWORDS = frozenset({"policy", "schema", "permit", "forbid", "on", "when", "unless", "reason",
                      "or", "and", "not", "in", "like", "true", "false", "null"})


def _check_ident(tok: Token) -> Token:
    """Keywords are reserved: never a name, wherever the lexer meets them.

    (The contextual lexer reads e.g. ``not`` after ``+`` as a name, because ``not``
    cannot stand there; without this check ``a + not (x)`` would call ``not()``
    and ``a and and b`` would read a path named ``and``.)
    """
    if tok.value in KEYWORDS:
        before = _current_text[: tok.start_pos].rstrip()
        if before.endswith("."):
            raise _SourceError("syntax_error", f"'{tok.value}' is a keyword and cannot follow '.'",
                               tok.line, tok.column, f'write ["{tok.value}"] to read an attribute named {tok.value}')
        hint = None
        if tok.value in ("not", "and", "or"):
            hint = f"'{tok.value}' cannot stand here; use parentheses, e.g. a == (not b)"
        raise _SourceError("syntax_error", f"unexpected keyword '{tok.value}' where a name or value was expected",
                           tok.line, tok.column, hint)
    return tok


_current_text = ""


def _start(node) -> tuple[int, int]:
    """Where an expression starts in the source (operators sit at their operator)."""
    while isinstance(node, (ast.Compare, ast.Arith)):
        node = node.left
    if isinstance(node, ast.BoolOp):
        return _start(node.terms[0])
    return node.line, node.column


class _Builder(Transformer):
    """Grammar rules → AST nodes, applied inline by the LALR parser.

    Per-parse state (the file name, the depth of each node) lives on the instance;
    :func:`parse_module` serialises parses with a lock.
    """

    def __init__(self):
        super().__init__(visit_tokens=False)
        self.file = "<input>"
        self.depth: dict[int, int] = {}

    def reset(self, file: str):
        self.file = file
        self.depth = {}

    # -- depth bookkeeping ------------------------------------------------------------

    def _d(self, node) -> int:
        return self.depth.get(id(node), 1)

    def _set_depth(self, node, *kids):
        d = 1 + max((self._d(k) for k in kids), default=0)
        if d > ast.MAX_DEPTH:
            line, col = _start(node)
            raise _SourceError(
                "nesting_too_deep",
                f"expression nested too deeply (more than {ast.MAX_DEPTH} levels)",
                line, col, hint="split the condition into simpler parts or several policies")
        self.depth[id(node)] = d
        return node

    # -- files and policies -----------------------------------------------------------

    def start(self, items):
        return items

    def policy(self, children):
        annotations = [c for c in children if isinstance(c, ast.Annotation)]
        rest = [c for c in children if not isinstance(c, ast.Annotation)]
        kw, id_tok, effect, *clauses, rbrace = rest
        pid = decode_string(id_tok)
        if not pid:
            raise _SourceError("empty_policy_id", "a policy id must not be empty", id_tok.line, id_tok.column)
        eff_tok, actions, types = effect
        first = annotations[0] if annotations else None
        return ast.Policy(
            id=pid, effect=eff_tok.value, actions=actions, resource_types=types,
            clauses=clauses, annotations=annotations, file=self.file,
            line=first.line if first else kw.line, column=first.column if first else kw.column,
            id_line=id_tok.line, id_column=id_tok.column,
            effect_line=eff_tok.line, effect_column=eff_tok.column, end_line=rbrace.line,
        )

    def annotation(self, children):
        at, name, value = children
        return ast.Annotation(name.value, decode_string(value), at.line, at.column)

    def effect(self, children):
        eff, actions, _on, types = children
        return eff, actions, types

    def any_name(self, children):
        return None

    def action_list(self, children):
        return children[0]

    def action_seq(self, children):
        if len(children) == 1:
            return [children[0]]
        seq, name = children
        seq.append(name)
        return seq

    def action_name(self, children):
        tok = children[0]
        return decode_string(tok) if tok.type == "STRING" else tok.value

    type_list = action_list
    type_seq = action_seq
    type_name = action_name

    def clause(self, children):
        kw, value = children
        if kw.type == "REASON":
            value = decode_string(value)
        return ast.Clause(kw.value, value, kw.line, kw.column)

    # -- expressions ------------------------------------------------------------------

    def bool_op(self, children):
        left, op, right = children
        if isinstance(left, ast.BoolOp) and left.op == op.value:
            left.terms.append(right)
            self.depth[id(left)] = max(self._d(left), 1 + self._d(right))
            return left
        line, col = _start(left)
        return self._set_depth(ast.BoolOp(op.value, [left, right], line, col), left, right)

    def unary(self, children):
        op, operand = children
        if op.type == "MINUS" and isinstance(operand, ast.Literal) \
                and type(operand.value) in (int, float) and self.depth.get(id(operand), 1) == 1:
            return ast.Literal(-operand.value, op.line, op.column)
        return self._set_depth(ast.Unary(op.value, operand, op.line, op.column), operand)

    def compare(self, children):
        left, op, right = children
        return self._set_depth(ast.Compare(op.value, left, right, op.line, op.column), left, right)

    def compare_not_in(self, children):
        left, not_tok, _in, right = children
        return self._set_depth(ast.Compare("not in", left, right, not_tok.line, not_tok.column), left, right)

    def arith(self, children):
        left, op, right = children
        return self._set_depth(ast.Arith(op.value, left, right, op.line, op.column), left, right)

    def paren(self, children):
        return children[1]

    def literal(self, children):
        tok = children[0]
        t = tok.type
        if t == "STRING":
            value = decode_string(tok)
        elif t == "INT":
            value = int(tok.value)
        elif t == "DECIMAL":
            value = float(tok.value)
            if value in (float("inf"), float("-inf")):
                raise _SourceError("syntax_error", f"number {tok.value} is too large", tok.line, tok.column)
        else:
            value = {"true": True, "false": False, "null": None}[tok.value]
        return ast.Literal(value, tok.line, tok.column)

    def list_empty(self, children):
        tok = children[0]
        return ast.ListExpr([], tok.line, tok.column)

    def list(self, children):
        tok, items = children[0], children[1]
        return self._set_depth(ast.ListExpr(items, tok.line, tok.column), *items)

    def expr_seq(self, children):
        if len(children) == 1:
            return [children[0]]
        seq, item = children
        seq.append(item)
        return seq

    def call_empty(self, children):
        name = children[0]
        return ast.Call(name.value, [], name.line, name.column)

    def call(self, children):
        name, args = children[0], children[2]
        return self._set_depth(ast.Call(name.value, args, name.line, name.column), *args)

    def path_root(self, children):
        tok = children[0]
        return ast.Path(tok.value, [], tok.line, tok.column)

    def path_attr(self, children):
        path, _dot, name = children
        path.steps.append(name.value)
        return self._grow_path(path, 1)

    def path_index(self, children):
        path, _lsqb, key = children
        if isinstance(key, ast.Literal) and isinstance(key.value, str):
            path.steps.append(key.value)
            return self._grow_path(path, 1)
        path.steps.append(key)
        return self._grow_path(path, 1 + self._d(key))

    def _grow_path(self, path, step_depth):
        """A path is as deep as its steps are many (plus its deepest computed key)."""
        d = max(self._d(path) + 1, step_depth + 1)
        if d > ast.MAX_DEPTH:
            raise _SourceError(
                "nesting_too_deep", f"path too long or nested too deeply (more than {ast.MAX_DEPTH} levels)",
                path.line, path.column)
        self.depth[id(path)] = d
        return path

    # -- schemas ----------------------------------------------------------------------

    def schema(self, children):
        kw, root, rbrace = children[0], children[1], children[-1]
        rest = children[2:-1]
        rtype = None
        if rest and isinstance(rest[0], str):
            rtype, rest = rest[0], rest[1:]
        return ast.Schema(root.value, rtype, list(rest), file=self.file, line=kw.line, column=kw.column,
                          end_line=rbrace.line)

    def schema_type(self, children):
        tok = children[0]
        return decode_string(tok) if tok.type == "STRING" else tok.value

    def field(self, children):
        name = children[0]
        optional = any(isinstance(c, Token) and c.type == "QMARK" for c in children[1:])
        ftype = children[-1]
        value = decode_string(name) if name.type == "STRING" else name.value
        return ast.Field(value, ftype, optional, name.line, name.column)

    def named_type(self, children):
        tok = children[0]
        return ast.NamedType(tok.value, tok.line, tok.column)

    def list_type(self, children):
        tok, element = children
        return ast.ListType(element, tok.line, tok.column)

    def object_type(self, children):
        tok, *fields = [c for c in children if not (isinstance(c, Token) and c.type == "RBRACE")]
        return ast.ObjectType(fields, tok.line, tok.column)


_builder = _Builder()
_comments: list = []
_lock = threading.Lock()
_parser = Lark(
    _GRAMMAR,
    parser="lalr",
    lexer="contextual",
    start=["start", "expr"],
    transformer=_builder,
    lexer_callbacks={"COMMENT": lambda tok: _comments.append(tok), "IDENT": _check_ident},
    maybe_placeholders=False,
)


# ----------------------------------------------------------------------------- messages

_FRIENDLY = {
    "POLICY": "'policy'", "SCHEMA": "'schema'", "SCHEMA_ROOT": "'subject', 'resource' or 'context'",
    "EFFECT": "'permit' or 'forbid'", "ON": "'on'", "WHEN": "'when'", "UNLESS": "'unless'",
    "REASON": "'reason'", "OR": "'or'", "AND": "'and'", "NOT": "'not'", "IN": "'in'",
    "LIKE": "'like'", "TRUE": "'true'", "FALSE": "'false'", "NULL": "'null'",
    "CMP_OP": "a comparison operator", "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'",
    "DOT": "'.'", "AT": "'@'", "QMARK": "'?'", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['",
    "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','", "COLON": "':'",
    "IDENT": "a name", "NAME": "a name", "STRING": "a quoted string", "INT": "a number",
    "DECIMAL": "a number", "$END": "the end of the file",
}

_OPERAND = {"IDENT", "NAME", "INT", "DECIMAL", "STRING", "TRUE", "FALSE", "NULL", "LPAR", "LSQB"}
_EXPR_START = {"IDENT", "INT", "DECIMAL", "STRING", "TRUE", "FALSE", "NULL", "NOT", "MINUS", "LPAR", "LSQB"}


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    value = tok.value if len(tok.value) <= 30 else tok.value[:27] + "..."
    return repr(value).replace('"', "'") if "'" not in value else f'"{value}"'


def _previous_word(text: str, pos: int) -> str:
    """The last token-ish word before ``pos`` (comments skipped)."""
    before = re.sub(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*',
                    lambda m: m.group(0) if m.group(0).startswith('"') else "", text[:pos])
    m = re.search(r'("(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_:.\-/]*|\S)\s*$', before)
    return m.group(1) if m else ""


def _expected_message(expected: set[str], tok: Token, text: str, pos: int) -> tuple[str, str | None]:
    """An author's-words message (and maybe a hint) for an unexpected token."""
    prev = _previous_word(text, pos)
    got = _describe_token(tok)
    if tok.type == "STRING" and len(tok.value) <= 30:
        got = tok.value                     # "a", not ''a''
    exp = set(expected)

    if tok.type in ("CMP_OP", "IN", "LIKE", "NOT") and "AND" in exp and "CMP_OP" not in exp:
        return (f"comparison operators cannot be chained: unexpected {got} after a comparison",
                "combine comparisons with 'and', or use parentheses")
    if tok.type in ("POLICY", "SCHEMA", "AT") and "RBRACE" in exp:
        return (f"expected '}}' before the next '{tok.value}': the block above is not closed",
                None)
    if "ON" in exp and prev == "on":
        return (f"the action list is missing: expected an action name or '*' before 'on', got {got}",
                "permit read on document (quote an action named on: \"on\")")
    if exp & {"AND", "OR"} and tok.type in _OPERAND:
        return (f"unexpected {got} after a complete expression; expected an operator such as "
                "'and', 'or' or '==', or the next clause ('when', 'unless', 'reason' or '}')", None)
    if exp & {"AND", "OR"} and "ON" not in exp:
        # After a complete operand (LALR states are shared, so ',' ')' ']' may be
        # expected too: say nothing about them).
        digits = re.search(r"[0-9]+$", text[:pos])
        if tok.type == "DOT" and digits:
            n = digits.group(0)
            return f"a number cannot end with '.': write {n}.0 or {n}", None
        return (f"unexpected {got} after an expression; expected an operator such as "
                "'and', 'or' or '==', or the next clause ('when', 'unless', 'reason' or '}')", None)
    if tok.type == "RPAR" and not exp & {"RPAR", "LPAR"}:
        return "unexpected ')' without a matching '('", None
    if exp == {"IN"}:
        return f"expected 'in' after 'not', got {got}", "x not in [1, 2]"
    if "ON" in exp and "COMMA" in exp:
        return f"expected 'on' after the action list, got {got}", "actions are separated by commas: permit read, update on document"
    if exp >= {"WHEN", "UNLESS", "REASON", "RBRACE"} and "COMMA" in exp:
        return f"expected ',', 'when', 'unless', 'reason' or '}}' after the resource types, got {got}", None
    if exp >= {"WHEN", "UNLESS", "REASON", "RBRACE"}:
        return f"expected 'when', 'unless', 'reason' or '}}' in the policy body, got {got}", None
    if exp == {"EFFECT"}:
        return f"expected 'permit' or 'forbid' to start the policy body, got {got}", None
    if exp >= {"STAR", "NAME"}:
        if prev == "on":
            return f"expected a resource type or '*' after 'on', got {got}", None
        if prev in ("permit", "forbid"):
            return f"expected an action name or '*' after '{prev}', got {got}", None
        return f"expected a name after ',', got {got}", None
    if exp >= {"NAME", "STRING"} and "STAR" not in exp and "LBRACE" not in exp:
        return f"expected a name after ',', got {got}", None
    if "POLICY" in exp and "SCHEMA" in exp:
        return f"expected 'policy' or 'schema' at the top level, got {got}", None
    if exp <= {"POLICY", "AT"} and "POLICY" in exp:
        return f"expected 'policy' after annotations, got {got}", None
    if exp == {"STRING"}:
        if prev == "policy":
            return f"expected the policy id as a quoted string after 'policy', got {got}", 'policy "my-policy-id" { … }'
        if prev == "reason":
            return f"expected a quoted string after 'reason', got {got}", None
        if prev == "(":
            return f"expected the annotation value as a quoted string, got {got}", '@owner("team-docs")'
        return f"expected a quoted string, got {got}", None
    if exp == {"LBRACE"} or (exp >= {"LBRACE"} and "SCHEMA_ROOT" not in exp and prev.startswith('"')):
        return f"expected '{{' after {prev}, got {got}", None
    if exp == {"SCHEMA_ROOT"}:
        return f"expected 'subject', 'resource' or 'context' after 'schema', got {got}", None
    if exp == {"IDENT"} and prev == "@":
        return f"expected an annotation name after '@', got {got}", None
    if exp == {"IDENT"} and prev.endswith("."):
        return f"expected an attribute name after '.', got {got}", None
    if exp >= {"IDENT", "RBRACE"} and "INT" not in exp:
        return f"expected a field name or '}}' in the schema, got {got}", None
    if exp <= {"COLON", "QMARK"} and "COLON" in exp:
        return f"expected ':' after the field name, got {got}", "fields are written name: type, or name?: type when optional"
    if "LBRACE" in exp and "LSQB" in exp and "IDENT" in exp and "INT" not in exp:
        return f"expected a type (string, int, float, bool, timestamp, duration, ip, any, [T] or {{…}}), got {got}", None
    if len(exp & _EXPR_START) >= 5:
        if prev in ("=", "<", ">"):         # the whole operator, not its last character
            op = re.search(r"(==|!=|<=|>=|<|>)\s*(?:#[^\n]*\s*)*$", text[:pos])
            prev = op.group(1) if op else prev
        where = f" after {prev!r}".replace('"', "'") if prev else ""
        if tok.type == "$END":
            return f"expected an expression{where}, got the end of the file", None
        return f"expected an expression{where}, got {got}", None
    if exp == {"RPAR"} or ("RPAR" in exp and "COMMA" not in exp and "RBRACE" not in exp):
        return f"expected ')' to close the parenthesis, got {got}", None
    if "RPAR" in exp and "COMMA" in exp:
        return f"expected ',' or ')' in the argument list, got {got}", None
    if "RSQB" in exp:
        return f"expected ',' or ']', got {got}", None
    if exp == {"LPAR"}:
        return f"expected '(' after the annotation name, got {got}", '@owner("team-docs")'
    if "RBRACE" in exp and tok.type == "$END":
        return "unexpected end of file: a '}' is missing", None
    names = sorted({_FRIENDLY.get(e, e) for e in exp})
    return f"unexpected {got}; expected {', '.join(names[:-1]) + ' or ' + names[-1] if len(names) > 1 else names[0]}", None


def _diagnose(exc: UnexpectedInput, text: str, file: str, lines: list[str]) -> tuple[Diagnostic, int]:
    """(diagnostic, offset in the text) for a lark error."""
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream
        ch = text[pos]
        if ch == '"':
            msg, hint = "unterminated string: a closing '\"' is missing on this line", None
        else:
            msg, hint = f"unexpected character {ch!r}", None
            if ch in "'":
                hint = "strings use double quotes"
            elif ch == "=":
                hint = "equality is written '=='"
            elif ch in "&|!":
                hint = "use 'and', 'or' and 'not'"
        line, col = exc.line, exc.column
    elif isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            pos = len(text)
            line = len(lines) if lines else 1
            col = len(lines[-1]) + 1 if lines else 1
            # point at the last non-empty line
            while line > 1 and not lines[line - 1].strip():
                line -= 1
                col = len(lines[line - 1]) + 1
            col = len(lines[line - 1].rstrip()) + 1 if lines else 1
        else:
            pos = tok.start_pos
            line, col = tok.line, tok.column
        msg, hint = _expected_message(set(exc.expected), tok, text, pos)
    else:  # UnexpectedEOF and anything else
        pos = len(text)
        line = max(len(lines), 1)
        col = (len(lines[-1]) if lines else 0) + 1
        msg, hint = "unexpected end of file", None
    src = lines[line - 1] if 0 < line <= len(lines) else None
    return Diagnostic("syntax_error", msg, file, line, col, src, hint), pos


_BLOCK_START = re.compile(r"^[ \t]*(?:policy\b|schema\b|@)", re.M)


def _blank(text: str, a: int, b: int) -> str:
    """``text`` with [a, b) replaced by spaces, newlines kept (positions stay valid)."""
    return text[:a] + re.sub(r"[^\n]", " ", text[a:b]) + text[b:]


def _recovery_span(text: str, pos: int) -> tuple[int, int]:
    """The region to skip after an error at ``pos``: its whole top-level block."""
    starts = [m.start() + len(m.group(0)) - len(m.group(0).lstrip()) for m in _BLOCK_START.finditer(text)]
    before = [s for s in starts if s <= pos]
    after = [s for s in starts if s > pos]
    if before and before[-1] == pos:
        # The error is a block's first token: the block before it was left open.
        prev = [s for s in starts if s < pos]
        if prev:
            return prev[-1], pos
        return pos, after[0] if after else len(text)
    a = before[-1] if before else 0
    b = after[0] if after else len(text)
    return a, max(b, pos + 1)


def _parse_once(text: str, start: str):
    global _current_text
    _current_text = text
    _comments.clear()
    return _parser.parse(text, start=start), list(_comments)


def parse_module(text: str, file: str) -> tuple[ast.Module, list[Diagnostic]]:
    """Parse one ``.policy`` file: its module (what could be parsed) and its syntax errors."""
    lines = text.split("\n")
    diags: list[Diagnostic] = []
    work = text
    if "\x00" in text:         # not text a store can hold (PostgreSQL refuses it)
        for number, line in enumerate(lines, 1):
            column = line.find("\x00")
            if column >= 0:
                diags.append(Diagnostic("syntax_error", "a NUL character (U+0000) is not "
                                        "allowed in a policy file", file, number, column + 1,
                                        line))
        work = text.replace("\x00", " ")
    items, comments = [], []
    with _lock:
        for _ in range(len(_BLOCK_START.findall(text)) + 3):
            _builder.reset(file)
            try:
                items, comments = _parse_once(work, "start")
                break
            except UnexpectedInput as exc:
                diag, pos = _diagnose(exc, work, file, lines)
                diag = Diagnostic(diag.code, diag.message, file, diag.line, diag.column,
                                  lines[diag.line - 1] if 0 < diag.line <= len(lines) else None, diag.hint)
            except _SourceError as exc:
                src = lines[exc.line - 1] if 0 < exc.line <= len(lines) else None
                diag = Diagnostic(exc.code, exc.message, file, exc.line, exc.column, src, exc.hint)
                pos = _offset(lines, exc.line, exc.column)
            diags.append(diag)
            a, b = _recovery_span(work, min(pos, len(work)))
            work = _blank(work, a, b)
        else:  # pragma: no cover - each round blanks a block, so this is unreachable
            items = []
        _builder.reset(file)
    module = ast.Module(
        file=file,
        policies=[i for i in items if isinstance(i, ast.Policy)],
        schemas=[i for i in items if isinstance(i, ast.Schema)],
        comments=[ast.Comment(c.value.rstrip("\r"), c.line, c.column) for c in comments],
        items=list(items),
    )
    return module, diags


def _offset(lines: list[str], line: int, column: int) -> int:
    return sum(len(ln) + 1 for ln in lines[: line - 1]) + column - 1


def parse_expression(text: str, file: str = "<expr>"):
    """Parse a lone expression (tests, tools). Raises :class:`PolicyError`."""
    lines = text.split("\n")
    with _lock:
        _builder.reset(file)
        try:
            expr, _ = _parse_once(text, "expr")
        except UnexpectedInput as exc:
            diag, _pos = _diagnose(exc, text, file, lines)
            raise PolicyError([diag]) from None
        except _SourceError as exc:
            src = lines[exc.line - 1] if 0 < exc.line <= len(lines) else None
            raise PolicyError([Diagnostic(exc.code, exc.message, file, exc.line, exc.column, src, exc.hint)]) from None
        finally:
            _builder.reset(file)
    return expr


def parse_source(text: str, file: str) -> ast.Module:
    """Parse one file, raising :class:`PolicyError` with every syntax error."""
    module, diags = parse_module(text, file)
    if diags:
        raise PolicyError(diags)
    return module
