"""``pdp policy …``: working with policy sets.

The author's tools live here: ``check``, ``test``, ``fmt``, ``eval`` and
``compile`` work on a directory of sources and touch no store. (The store's
commands — ``push``, ``versions``, ``activate``, ``show``, ``diff`` — are added
onto this group by :mod:`pdp.cli.store`.)

Exit status: 0 success; 1 a policy error, a failed test, a file that would be
reformatted, or invalid input; 2 a usage error (click's own). Diagnostics and
errors go to stderr, results to stdout. File names in messages are the paths as
seen from the working directory (``policies/documents.policy:3:7``), so an
editor can jump to them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

import click

from pdp.errors import Diagnostic, PdpError, PolicyError

EXIT_FAILED = 1

#: Print a progress dot per this many tests, when there are at least
#: PROGRESS_MIN_TESTS tests and stderr is a terminal.
PROGRESS_EVERY = 100
PROGRESS_MIN_TESTS = 500


@click.group()
def policy() -> None:
    """Check, test, format, publish and activate policy sets."""


_DIR = click.Path(exists=True, file_okay=False, dir_okay=True, path_type=Path)


# ----------------------------------------------------------------------------- helpers

def _shown(directory: Path, rel: str) -> str:
    """A set-relative file name as a path from the working directory."""
    return Path(os.path.normpath(os.path.join(directory, rel))).as_posix()


def _report(exc: PolicyError, directory: Path | None = None) -> None:
    """Every diagnostic (with file names as seen from here), then the summary line."""
    for d in exc.diagnostics:
        if directory is not None and d.file:
            d = dataclasses.replace(d, file=_shown(directory, d.file))
        click.echo(d.render(), err=True)
    click.echo(exc.message, err=True)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(EXIT_FAILED)


def _read_sources(directory: Path) -> dict[str, str]:
    """The files of the policy set under ``directory``; exits 1 when unreadable."""
    from pdp.service.policies import read_policy_dir

    try:
        return read_policy_dir(directory)
    except PolicyError as exc:
        _report(exc, directory)
        raise SystemExit(EXIT_FAILED) from None
    except PdpError as exc:
        _fail(str(exc))


def _compile(directory: Path, files: dict[str, str]):
    """The compiled policy set, or every diagnostic on stderr and exit 1."""
    if not any(name.endswith(".policy") for name in files):
        _fail(f"no '.policy' files under {directory.as_posix()}")
    try:
        return compile_policies(files)
    except PolicyError as exc:
        _report(exc, directory)
        raise SystemExit(EXIT_FAILED) from None


def compile_policies(files: dict[str, str]):
    """``pdp.compile_policies`` (imported from its module, so that it works even
    where ``pdp`` is only seen as a namespace package)."""
    from pdp.engine.compiler import compile_policies as compile_

    return compile_(files)


def _load_set(directory: Path):
    files = _read_sources(directory)
    return files, _compile(directory, files)


def _policies_of(policy_set) -> list[dict]:
    """Metadata of every policy of a compiled set: id, effect, actions,
    resource_types (None for ``*``), file, line …"""
    return list(policy_set.policies)


# ----------------------------------------------------------------------------- check

@policy.command("check")
@click.argument("directory", type=_DIR)
def check_command(directory: Path) -> None:
    """Parse, check and compile the policy set under DIRECTORY.

    Every error of every file is printed (file:line:column, the line, a caret);
    on success prints "ok: N policies in M files". Exit 1 on any error.
    """
    files, policy_set = _load_set(directory)
    n_files = sum(1 for name in files if name.endswith(".policy"))
    n = len(_policies_of(policy_set))
    click.echo(f"ok: {n} polic{'ies' if n != 1 else 'y'} in {n_files} file{'s' if n_files != 1 else ''}")


# ----------------------------------------------------------------------------- test

@policy.command("test")
@click.argument("directory", type=_DIR)
@click.option("-v", "--verbose", is_flag=True, help="Also list the tests that pass.")
def test_command(directory: Path, verbose: bool) -> None:
    """Run every policy test (*.test.yaml, *.test.yml, *.test.json) under DIRECTORY.

    Compiles the policy set under DIRECTORY, then prints one line per failed test
    (file, test name, expected, got, determining policies, errors) and ends with
    "N passed, M failed". Exit 0 only when every test passed and the set compiled.
    A test file that cannot be read counts as one failure.
    """
    from pdp.engine.testing import TestFileError, discover, load_test_file, run_test

    from pdp.service.policies import read_policy_dir

    suites: list[tuple[str, list]] = []
    broken: list[str] = []
    for path in discover(directory):
        shown = _shown(directory, path.relative_to(directory).as_posix())
        try:
            suites.append((shown, load_test_file(shown, path.read_bytes().decode("utf-8"))))
        except UnicodeDecodeError as exc:
            broken.append(f"{shown}: not UTF-8 text (byte {exc.start})")
        except TestFileError as exc:
            broken.append(exc.message)
    total = sum(len(cases) for _, cases in suites)

    try:
        files = read_policy_dir(directory)
        if not any(name.endswith(".policy") for name in files):
            raise PdpError(f"no '.policy' files under {directory.as_posix()}")
        policy_set = compile_policies(files)
    except PolicyError as exc:
        _report(exc, directory)
        policy_set = None
    except PdpError as exc:
        click.echo(f"error: {exc}", err=True)
        policy_set = None

    failed = 0
    for message in broken:
        click.echo(f"FAIL {message}")
        failed += 1
    if policy_set is None:
        if total:
            click.echo(f"FAIL {total} test{'s' if total != 1 else ''} not run: the policy set does not compile")
        click.echo(f"0 passed, {failed + total} failed")
        raise SystemExit(EXIT_FAILED)

    if not suites and not broken:
        click.echo(f"warning: no test files (*.test.yaml, *.test.yml, *.test.json) under "
                   f"{directory.as_posix()}", err=True)
    progress = total >= PROGRESS_MIN_TESTS and _stderr_is_a_terminal()
    passed = done = 0
    for _shown_name, cases in suites:
        for case in cases:
            result = run_test(policy_set, case)
            done += 1
            if progress and done % PROGRESS_EVERY == 0:
                click.echo(".", err=True, nl=False)
            if result.passed:
                passed += 1
                if verbose:
                    click.echo(result.describe())
            else:
                failed += 1
                if progress:
                    click.echo("", err=True)
                click.echo(result.describe())
    if progress:
        click.echo("", err=True)
    click.echo(f"{passed} passed, {failed} failed")
    if failed:
        raise SystemExit(EXIT_FAILED)


def _stderr_is_a_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# ----------------------------------------------------------------------------- fmt

def _policy_files(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    found = []
    for path in target.rglob("*.policy"):
        rel = path.relative_to(target)
        if not any(part.startswith(".") for part in rel.parts) and path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(target).as_posix())


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        try:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@policy.command("fmt")
@click.argument("target", metavar="DIRECTORY", type=click.Path(exists=True, path_type=Path))
@click.option("--check", "check_only", is_flag=True,
              help="Change nothing; list the files that would change and exit 1 if any.")
def fmt_command(target: Path, check_only: bool) -> None:
    """Rewrite every .policy file under DIRECTORY (or one FILE) in the canonical layout.

    Prints the files it changed. With --check, changes nothing, prints the files
    that would change and exits 1 if there are any. A file with syntax errors is
    left as it is; its errors are printed and the exit status is 1.
    """
    from pdp.lang.formatter import format_source

    problems: list[Diagnostic] = []
    changed: list[str] = []
    for path in _policy_files(target):
        shown = path.as_posix()
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Diagnostic("invalid_encoding", f"the file is not UTF-8 text (byte {exc.start})", shown))
            continue
        except OSError as exc:
            problems.append(Diagnostic("unreadable_file", f"cannot read: {exc.strerror or exc}", shown))
            continue
        try:
            formatted = format_source(text, shown)
        except PolicyError as exc:
            problems.extend(exc.diagnostics)
            continue
        if formatted != text:
            changed.append(shown)
            if not check_only:
                _write_atomically(path, formatted)
            click.echo(shown)
    if problems:
        _report(PolicyError(problems))
    if problems or (check_only and changed):
        raise SystemExit(EXIT_FAILED)


# ----------------------------------------------------------------------------- eval

@policy.command("eval")
@click.argument("directory", type=_DIR)
@click.argument("request_file", metavar="REQUEST.json", type=click.File("rb"))
def eval_command(directory: Path, request_file) -> None:
    """Decide one request (a JSON file, or - for stdin) with the set under DIRECTORY.

    Prints the decision as JSON: decision, determining policies, reasons, errors.
    This is an evaluation, not a check: the exit status is 0 for allow and deny
    alike; it is 1 only when the set does not compile or the request is invalid.
    A "context.time" in RFC 3339 text decides at that time (default: now).
    """
    name = getattr(request_file, "name", "-")
    name = "stdin" if name in ("-", "<stdin>") else name
    raw = request_file.read()
    try:
        request = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        _fail(f"{name}: not UTF-8 text (byte {exc.start})")
    except json.JSONDecodeError as exc:
        _fail(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}")
    if not isinstance(request, dict):
        _fail(f"{name}: a request is a JSON object with subject, action, resource and context")
    _files, policy_set = _load_set(directory)
    decision = policy_set.decide(request)        # never raises: a bad request is a refused deny
    refused = [e for e in decision.errors if isinstance(e, dict) and e.get("code") == "invalid_request"]
    if refused:
        _fail(f"{name}: invalid request: " + "; ".join(str(e.get("message")) for e in refused))
    click.echo(json.dumps(decision.to_dict(), indent=2, ensure_ascii=False, default=str))


# ----------------------------------------------------------------------------- compile

@policy.command("compile")
@click.argument("directory", type=_DIR)
@click.option("--show-source", is_flag=True, help="Print the generated Python.")
def compile_command(directory: Path, show_source: bool) -> None:
    """Compile the policy set under DIRECTORY and describe it.

    Prints the policies, resource types and actions of the set, or, with
    --show-source, the Python it compiles to.
    """
    files, policy_set = _load_set(directory)
    if show_source:
        source = policy_set.source()
        click.echo(source, nl=not source.endswith("\n"))
        return
    policies = sorted(_policies_of(policy_set), key=lambda p: (p["file"], p["line"], p["id"]))
    types: set[str] = set()
    actions: set[str] = set()
    any_type = any_action = False
    for p in policies:
        if p["resource_types"] is None:
            any_type = True
        else:
            types.update(p["resource_types"])
        if p["actions"] is None:
            any_action = True
        else:
            actions.update(p["actions"])
    n_files = sum(1 for name in files if name.endswith(".policy"))
    n_data = len(files) - n_files
    permits = sum(1 for p in policies if p["effect"] == "permit")
    click.echo(f"policies: {len(policies)} ({permits} permit, {len(policies) - permits} forbid) "
               f"in {n_files} file{'s' if n_files != 1 else ''}"
               + (f", {n_data} data file{'s' if n_data != 1 else ''}" if n_data else ""))
    click.echo("resource types: " + _names(types, any_type))
    click.echo("actions: " + _names(actions, any_action))
    for p in policies:
        actions_text = _names(p["actions"] or (), p["actions"] is None)
        types_text = _names(p["resource_types"] or (), p["resource_types"] is None)
        click.echo(f"  {p['id']}: {p['effect']} {actions_text} on {types_text} "
                   f"({_shown(directory, p['file'])}:{p['line']})")


def _names(names, star: bool) -> str:
    from pdp.lang.formatter import format_name

    shown = [format_name(n) for n in sorted(names)]
    if star:
        shown.append("*")
    return ", ".join(shown) if shown else "(none)"
