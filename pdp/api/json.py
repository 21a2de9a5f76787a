"""Strict JSON request bodies.

Every endpoint that takes a body reads it through :func:`read_object`, which
refuses, before any schema sees the data:

* a ``Content-Type`` that is not JSON (``application/json`` or ``…+json``) → 415;
* a body over the size limit → 413 (werkzeug's ``RequestEntityTooLarge``);
* bytes that are not UTF-8, or text that is not JSON → 400 ``invalid_json``;
* a key repeated in one object → 400 ``duplicate_key`` (the field is named);
* ``NaN``, ``Infinity``, ``-Infinity`` or a number too large for a float
  (``1e999``) → 400 ``invalid_number``;
* objects and arrays nested deeper than the limit → 400 ``too_deep``;
* a lone surrogate escape in a string or key (``"\\ud800"``: half of a UTF-16 pair,
  not a Unicode character; I-JSON, RFC 7493, forbids it) → 400 ``invalid_string``
  (a pair, ``"\\ud83d\\ude00"``, is one character and is accepted);
* anything but an object at the top → 400 ``not_an_object``.

Fields are named as dotted paths with array indexes: ``files.docs.policy``,
``checks[2].resource``.
"""

from __future__ import annotations

import json
import math
import re

from flask import request
from werkzeug.exceptions import UnsupportedMediaType

from pdp.errors import RequestError

#: Default deepest nesting of objects and arrays (the top-level object is depth 1).
MAX_DEPTH = 32

#: A ``\\u`` escape of a surrogate in the raw body: only then can a string hold a
#: lone one (UTF-8 cannot encode surrogates), so only then are strings searched.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
#: A surrogate left in a decoded string is a lone one (a pair decodes to one
#: character).
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _RepeatedKeys(dict):
    """A JSON object in which ``repeated`` appeared more than once."""

    __slots__ = ("repeated",)


class _NonFinite:
    """Stands in for ``NaN``/``Infinity``/an overflowing number until reported."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def field_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def is_json_mimetype() -> bool:
    mimetype = request.mimetype
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json"))


def read_object(*, max_bytes: int, max_depth: int = MAX_DEPTH, optional: bool = False) -> dict:
    """The request body as a dict, checked as described in the module docstring.

    With ``optional=True`` an empty body (no ``Content-Type`` needed) reads as ``{}``.
    """
    request.max_content_length = max_bytes
    raw = request.get_data(cache=True)
    if not raw and optional:
        return {}
    if not is_json_mimetype():
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")
    if not raw:
        raise RequestError("a JSON object is required as the request body", code="invalid_json")
    return parse_object(raw, max_depth=max_depth)


def parse_object(raw: bytes, *, max_depth: int = MAX_DEPTH) -> dict:
    """``raw`` as a JSON object, strictly (see the module docstring)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"the request body is not UTF-8 (byte {exc.start})",
                           code="invalid_json") from None
    # The hooks note whether anything that _check reports was seen (a repeated key,
    # a non-finite number); with neither, and fewer brackets than the depth limit,
    # the body cannot fail _check and the walk is skipped.
    seen: list[object] = []

    def on_object(pairs: list[tuple[str, object]]) -> dict:
        obj = _object(pairs)
        if obj.__class__ is not dict:
            seen.append(obj)
        return obj

    def on_constant(text: str) -> _NonFinite:
        seen.append(None)
        return _NonFinite(text)

    def on_float(text: str) -> float | _NonFinite:
        value = float(text)
        if math.isfinite(value):
            return value
        seen.append(None)
        return _NonFinite(text)

    try:
        value = json.loads(text, object_pairs_hook=on_object, parse_constant=on_constant,
                           parse_float=on_float)
    except json.JSONDecodeError as exc:
        raise RequestError(f"the request body is not valid JSON: {exc.msg} "
                           f"(line {exc.lineno}, column {exc.colno})",
                           code="invalid_json") from None
    except RecursionError:
        raise _too_deep("", max_depth) from None
    except ValueError as exc:                       # e.g. an integer of 5000 digits
        raise RequestError(f"the request body is not usable JSON: {exc}",
                           code="invalid_json") from None
    if seen or raw.count(b"{") + raw.count(b"[") > max_depth:
        _check(value, max_depth)
    if _SURROGATE_ESCAPE.search(raw):
        _check_strings(value)
    if not isinstance(value, dict):
        raise RequestError(f"the request body must be a JSON object, not {_kind(value)}",
                           code="not_an_object")
    return value


def _object(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    marked = _RepeatedKeys(obj)
    for key, _ in pairs:
        if key in seen:
            marked.repeated = key
            break
        seen.add(key)
    return marked


def _float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _check(value: object, max_depth: int) -> None:
    """Depth, repeated keys and non-finite numbers, iteratively (no recursion)."""
    stack: list[tuple[object, str, int]] = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, _NonFinite):
            raise RequestError(f"{node.text} is not a JSON number pdp accepts "
                               "(NaN and infinities are refused)",
                               field=path or None, code="invalid_number")
        if isinstance(node, dict):
            items = node.items()
            if isinstance(node, _RepeatedKeys):
                raise RequestError(f"the key {node.repeated!r} appears more than once",
                                   field=field_path(path, node.repeated), code="duplicate_key")
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        if depth > max_depth:
            raise _too_deep(path, max_depth)
        for key, child in items:
            if isinstance(child, (dict, list, _NonFinite)):
                stack.append((child, field_path(path, key), depth + 1))


def _check_strings(value: object) -> None:
    """No lone surrogate in any string or key (depth is already checked)."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if _LONE_SURROGATE.search(node):
                raise RequestError("a string holds a lone surrogate escape (\\ud800-\\udfff "
                                   "without its pair): not a Unicode character",
                                   field=path or None, code="invalid_string")
            continue
        if isinstance(node, dict):
            for key, child in node.items():
                if _LONE_SURROGATE.search(key):
                    raise RequestError("a key holds a lone surrogate escape (\\ud800-\\udfff "
                                       "without its pair): not a Unicode character",
                                       field=path or None, code="invalid_string")
                stack.append((child, field_path(path, key)))
        elif isinstance(node, list):
            stack.extend((child, field_path(path, i)) for i, child in enumerate(node))


def _too_deep(path: str, max_depth: int) -> RequestError:
    return RequestError(f"the request body nests objects and arrays deeper than {max_depth} levels",
                        field=path or None, code="too_deep")


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
