"""Signatures of the built-in functions (spec §6).

The language side only needs names, arities and result types (for the checker);
the implementations live in :mod:`pdp.engine.runtime`. Types are written as in
schemas: ``string int float number bool timestamp duration ip any [T]``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    min_args: int
    max_args: int
    params: tuple          # a type per parameter (the last repeats for optional ones)
    result: str
    doc: str

    def arity_text(self) -> str:
        if self.min_args == self.max_args:
            n = self.min_args
            return f"{n} argument{'s' if n != 1 else ''}"
        return f"{self.min_args} or {self.max_args} arguments"


BUILTINS: dict[str, Signature] = {s.name: s for s in (
    Signature("has", 1, 1, ("path",), "bool", "true when every step of the path exists"),
    Signature("len", 1, 1, ("any",), "int", "length of a string (code points), list or object"),
    Signature("lower", 1, 1, ("string",), "string", "lower-cased string"),
    Signature("upper", 1, 1, ("string",), "string", "upper-cased string"),
    Signature("starts_with", 2, 2, ("string", "string"), "bool", "string prefix test"),
    Signature("ends_with", 2, 2, ("string", "string"), "bool", "string suffix test"),
    Signature("contains", 2, 2, ("any", "any"), "bool", "substring test on strings; membership on lists"),
    Signature("contains_any", 2, 2, ("[any]", "[any]"), "bool", "true when the lists share an element"),
    Signature("contains_all", 2, 2, ("[any]", "[any]"), "bool", "true when the first list holds every element of the second"),
    Signature("ip", 1, 1, ("string",), "ip", "an ip value from text"),
    Signature("cidr_contains", 2, 2, ("string", "any"), "bool", "true when the network holds the address"),
    Signature("time", 1, 1, ("any",), "timestamp", "a timestamp from RFC 3339 text or seconds since the epoch"),
    Signature("duration", 1, 1, ("string",), "duration", "a duration from text such as 90s, 15m, 2h, 1d, 1h30m"),
    Signature("hour", 1, 2, ("timestamp", "string"), "int", "hour 0-23, in UTC or the named IANA zone"),
    Signature("weekday", 1, 2, ("timestamp", "string"), "int", "weekday 1 (Monday) to 7, in UTC or the named IANA zone"),
)}
