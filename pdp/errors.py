"""The one error root of pdp.

Every error pdp raises on purpose is a :class:`PdpError`: it has a stable machine
``code`` (``syntax_error``, ``unknown_attribute``, ``token_expired`` …), a human
``message`` and, when it is about policy text, a source position. Errors about
policy sources are gathered into one :class:`PolicyError` carrying every
:class:`Diagnostic`, sorted by file and position, so an author sees all of them
in one run.

This module imports nothing from the rest of pdp.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A position in a policy-set file: 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One located problem in a policy set (syntax, checking, data)."""

    code: str
    message: str
    file: str
    line: int = 0
    column: int = 0
    source_line: str | None = None
    hint: str | None = None

    @property
    def span(self) -> Span:
        return Span(self.file, self.line, self.column)

    def sort_key(self) -> tuple:
        return (self.file, self.line, self.column, self.code, self.message)

    def render(self) -> str:
        """``file:line:column: error: message`` then the source line and a caret."""
        where = self.file if not self.line else f"{self.file}:{self.line}:{self.column}"
        out = [f"{where}: error: {self.message}"]
        if self.source_line is not None and self.line:
            text = self.source_line.rstrip("\r\n").expandtabs(1)
            col = max(self.column - 1, 0)
            if len(text) > 100:                      # show a window around the spot
                start = max(0, col - 50)
                text = ("..." if start else "") + text[start:start + 100] + ("..." if start + 100 < len(text) else "")
                col = col - start + (3 if start else 0)
            out.append(f"  {text}")
            out.append("  " + " " * col + "^")
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)

    def to_dict(self) -> dict:
        d = {"code": self.code, "message": self.message, "file": self.file,
             "line": self.line, "column": self.column}
        if self.hint:
            d["hint"] = self.hint
        return d

    def __str__(self) -> str:
        return self.render()


class PdpError(Exception):
    """Root of every deliberate pdp error: a code, a message, maybe a position."""

    code = "pdp_error"

    def __init__(self, message: str, *, code: str | None = None, span: Span | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.span = span

    def to_dict(self) -> dict:
        d = {"code": self.code, "message": self.message}
        if self.span is not None:
            d["location"] = str(self.span)
        return d

    def __str__(self) -> str:
        return f"{self.span}: {self.message}" if self.span else self.message


class PolicyError(PdpError):
    """A policy set that does not compile: every diagnostic of every file."""

    code = "policy_error"

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(set(diagnostics), key=Diagnostic.sort_key)
        n = len(self.diagnostics)
        summary = f"{n} error{'s' if n != 1 else ''} in the policy set"
        super().__init__(summary)

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics) + f"\n{self.message}"

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message,
                "diagnostics": [d.to_dict() for d in self.diagnostics]}

    def __str__(self) -> str:
        return self.render()


class LimitError(PdpError):
    """A configured size or depth limit was exceeded."""

    code = "limit_exceeded"


class RequestError(PdpError):
    """A decision request of the wrong shape; ``field`` names the offending part."""

    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message, code=code)
        self.field = field

    def to_dict(self) -> dict:
        d = super().to_dict()
        if self.field:
            d["field"] = self.field
        return d


class NotFound(PdpError):
    code = "not_found"


class Forbidden(PdpError):
    """A known caller asked for something it may not do (403 at the HTTP API)."""

    code = "forbidden"


class Unavailable(PdpError):
    """Something an answer needs is not there right now, e.g. a policy set
    without an active version (503 at the HTTP API); trying later may work."""

    code = "unavailable"


class Conflict(PdpError):
    code = "conflict"
