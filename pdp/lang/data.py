"""Reference data of a policy set (spec §1): JSON files under ``data/``.

``data/users.json`` becomes ``data.users``, ``data/org/teams.json`` becomes
``data.org.teams``. Every problem is a :class:`Diagnostic` with the file and, for
JSON errors, the line and column: invalid JSON, ``NaN``/``Infinity`` (not JSON),
an object with the same key twice, a name that is both a file and a folder, and
data over the size limit (``data_too_large``).
"""

from __future__ import annotations

import json
import re

from pdp.errors import Diagnostic

__all__ = ["load_data", "is_data_file", "DEFAULT_MAX_BYTES"]

DEFAULT_MAX_BYTES = 16 * 1024 * 1024


def is_data_file(path: str) -> bool:
    """True for ``data/….json`` paths (relative, POSIX)."""
    return path.startswith("data/") and path.endswith(".json")


class _Duplicate(ValueError):
    def __init__(self, key):
        super().__init__(key)
        self.key = key


class _NotJson(ValueError):
    def __init__(self, name):
        super().__init__(name)
        self.name = name


def _pairs(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise _Duplicate(k)
        obj[k] = v
    return obj


def _constant(name):
    raise _NotJson(name)


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _source_line(text: str, line: int) -> str | None:
    lines = text.split("\n")
    return lines[line - 1] if 0 < line <= len(lines) else None


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|-?Infinity|NaN', re.S)


def _find(text: str, want: str, key=None) -> int | None:
    """Offset of the first ``NaN``/``Infinity`` (``want="constant"``) or of the first
    repeated key of an object (``want="duplicate"``), scanning JSON tokens."""
    stack: list = []                  # one set of keys per open object, None per list
    tokens = list(_TOKEN.finditer(text))
    for i, m in enumerate(tokens):
        tok = m.group()
        if tok in ("NaN", "Infinity", "-Infinity"):
            if want == "constant":
                return m.start()
        elif tok == "{":
            stack.append(set())
        elif tok == "[":
            stack.append(None)
        elif tok in ("}", "]"):
            if stack:
                stack.pop()
        elif tok.startswith('"') and want == "duplicate" and stack and stack[-1] is not None:
            if i + 1 < len(tokens) and tokens[i + 1].group() == ":":
                try:
                    name = json.loads(tok)
                except ValueError:
                    continue
                if name in stack[-1]:
                    return m.start()
                stack[-1].add(name)
    return None


def _load_one(path: str, text: str) -> tuple[object, Diagnostic | None]:
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant), None
    except _Duplicate as exc:
        pos = _find(text, "duplicate")
        line, col = _line_col(text, pos) if pos is not None else (0, 0)
        return None, Diagnostic("invalid_data", f"duplicate key {exc.key!r} in a JSON object",
                                path, line, col, _source_line(text, line))
    except _NotJson as exc:
        pos = _find(text, "constant")
        line, col = _line_col(text, pos) if pos is not None else (0, 0)
        return None, Diagnostic("invalid_data", f"{exc.name} is not a JSON value",
                                path, line, col, _source_line(text, line),
                                hint="JSON numbers are finite; use null or a string")
    except json.JSONDecodeError as exc:
        return None, Diagnostic("invalid_json", f"invalid JSON: {exc.msg}", path,
                                exc.lineno, exc.colno, _source_line(text, exc.lineno))
    except RecursionError:
        return None, Diagnostic("invalid_data", "JSON nested too deeply", path)
    except ValueError as exc:        # e.g. an integer with too many digits
        return None, Diagnostic("invalid_data", f"invalid JSON: {exc}", path)


def load_data(files: dict[str, str], max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[dict, list[Diagnostic]]:
    """The reference data of the ``data/….json`` entries of ``files`` (path → text;
    other paths are ignored) and the problems found."""
    paths = sorted(p for p in files if is_data_file(p))
    diags: list[Diagnostic] = []
    total = sum(len(files[p].encode("utf-8", "surrogatepass")) for p in paths)
    if total > max_bytes:
        return {}, [Diagnostic("data_too_large", f"reference data is {total} bytes, over the "
                               f"limit of {max_bytes} bytes", "data/")]
    data: dict = {}
    owner: dict[tuple, str] = {}         # name path -> file that made it a value
    for path in paths:
        parts = tuple(path[len("data/"):-len(".json")].split("/"))
        if any(not part for part in parts):
            diags.append(Diagnostic("invalid_data", "a data file needs a name: data/NAME.json "
                                    "or data/FOLDER/NAME.json", path))
            continue
        value, diag = _load_one(path, files[path])
        if diag is not None:
            diags.append(diag)
            continue
        clash = None
        for i in range(1, len(parts)):
            if parts[:i] in owner:                        # data/org.json, then data/org/x.json
                clash = (parts[:i], owner[parts[:i]], path)
                break
        else:
            if _is_folder(data, parts):                  # data/org/x.json, then data/org.json
                clash = (parts, path, "/".join(("data",) + parts) + "/")
        if clash is not None:
            name, file, folder = clash
            if folder == path:
                folder = "/".join(("data",) + name) + "/"
            diags.append(Diagnostic("invalid_data", f"data.{'.'.join(name)} is both a file "
                                    f"({file}) and a folder ({folder})", path))
            continue
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        owner[parts] = path
    return data, diags


def _is_folder(data: dict, parts: tuple) -> bool:
    node = data
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
