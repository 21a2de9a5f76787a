"""From policy-set files to a :class:`PolicySet`: parse, load data, check, compile.

:func:`compile_policies` takes the files of a policy set as a mapping of relative
POSIX paths to text: every ``*.policy`` is parsed, every ``data/….json`` is
reference data, anything else (``*.test.yaml``, a README …) is ignored. Every
problem of every file (syntax, data, checks) is gathered into one
:class:`~pdp.errors.PolicyError`. :func:`load_policy_dir` does the same for a
directory on disk.
"""

from __future__ import annotations

import os
from pathlib import Path

from pdp.engine import codegen
from pdp.engine.policyset import PolicySet
from pdp.errors import Diagnostic, PdpError, PolicyError
from pdp.lang.data import DEFAULT_MAX_BYTES, is_data_file, load_data

__all__ = ["compile_policies", "load_policy_dir", "read_policy_dir"]


def _checker():
    """``pdp.lang.checker.check``, or None when it is not available."""
    try:
        from pdp.lang.checker import check
    except ImportError:
        return None
    return check


def compile_policies(files: dict[str, str], *, max_data_bytes: int = DEFAULT_MAX_BYTES) -> PolicySet:
    """The policy set of ``files`` (relative path → text). Raises :class:`PolicyError`
    with every diagnostic of every file when anything is wrong."""
    data, data_diags = load_data(files, max_data_bytes)
    return _build(files, data, data_diags, [])


def _build(files: dict[str, str], data: dict, data_diags: list, diags: list) -> PolicySet:
    from pdp.lang.parser import parse_module

    diags = list(diags) + list(data_diags)
    modules, sources = [], {}
    for path in sorted(files):
        if not path.endswith(".policy"):
            continue
        text = files[path]
        module, syntax = parse_module(text, path)
        modules.append(module)
        sources[path] = text
        diags.extend(syntax)
    check = _checker()
    if check is not None:
        diags.extend(check(modules, None if data_diags else data, sources))
    policies = [p for m in modules for p in m.policies]
    if check is None:
        diags.extend(_duplicates(policies, sources))
    if diags:
        raise PolicyError(diags)
    # The tree checks that code generation relies on; after the parser and the
    # checker they find nothing, so they only speak when nothing else did.
    for p in policies:
        try:
            codegen.validate_policy(p)
        except ValueError as exc:
            diags.append(Diagnostic("invalid_policy", str(exc), p.file, p.line, p.column,
                                    _line(sources.get(p.file), p.line)))
    if diags:
        raise PolicyError(diags)
    try:
        return PolicySet(policies, data)
    except PdpError as exc:
        raise PolicyError([Diagnostic(exc.code, exc.message, "")]) from None


def _line(text: str | None, line: int) -> str | None:
    if text is None or line <= 0:
        return None
    lines = text.split("\n")
    return lines[line - 1] if line <= len(lines) else None


def _duplicates(policies, sources) -> list[Diagnostic]:
    """Duplicate ids (reported here only when the checker is not available)."""
    first, out = {}, []
    for p in sorted(policies, key=lambda p: (p.file, p.line, p.column)):
        if p.id in first:
            q = first[p.id]
            out.append(Diagnostic("duplicate_policy_id", f"policy id {p.id!r} is already used at "
                                  f"{q.file}:{q.line}", p.file, p.line, p.column,
                                  _line(sources.get(p.file), p.line)))
        else:
            first[p.id] = p
    return out


def read_policy_dir(path, *, max_data_bytes: int | None = None) -> dict[str, str]:
    """The files of the policy set in directory ``path``: ``**/*.policy`` and
    ``data/**/*.json``, keyed by relative POSIX path, hidden files and folders
    skipped, a UTF-8 BOM dropped. Raises :class:`PolicyError` for files that cannot
    be read or are not UTF-8, and — checked from file sizes before anything is
    read — reference data over ``max_data_bytes``.

    The one reader of policy directories: the CLI, the store's ``push`` and
    :func:`load_policy_dir` all use it.
    """
    root = Path(path)
    if not root.is_dir():
        raise PdpError(f"{path}: not a directory", code="not_a_directory")
    found: list[tuple[str, Path]] = []
    data_size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if not (rel.endswith(".policy") or is_data_file(rel)) or not full.is_file():
                continue
            if is_data_file(rel):
                data_size += full.stat().st_size
            found.append((rel, full))
    if max_data_bytes is not None and data_size > max_data_bytes:
        raise PolicyError([Diagnostic("data_too_large", f"reference data is {data_size} bytes, "
                                      f"over the limit of {max_data_bytes} bytes", "data/")])
    files, diags = {}, []
    for rel, full in found:
        text = _read(full, rel, diags)
        if text is not None:
            files[rel] = text
    if diags:
        raise PolicyError(diags)
    return files


def load_policy_dir(path, *, max_data_bytes: int = DEFAULT_MAX_BYTES) -> PolicySet:
    """The policy set in directory ``path`` (see :func:`read_policy_dir`)."""
    return compile_policies(read_policy_dir(path, max_data_bytes=max_data_bytes),
                            max_data_bytes=max_data_bytes)


def _read(full: Path, rel: str, diags: list) -> str | None:
    try:
        raw = full.read_bytes()
    except OSError as exc:
        diags.append(Diagnostic("unreadable_file", f"cannot read the file: {exc.strerror}", rel))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        diags.append(Diagnostic("invalid_encoding", "the file is not UTF-8 text", rel, line, col))
        return None
    return text[1:] if text.startswith("\ufeff") else text
