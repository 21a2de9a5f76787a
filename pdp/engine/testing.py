"""Policy tests (spec §9): test files kept beside the policies, and their runner.

A test file ends in ``.test.yaml``, ``.test.yml`` or ``.test.json``::

    tests:
      - name: owner can edit
        request:
          subject: {sub: alice, roles: [user]}
          action: update                   # or {name: update, attributes: {...}}
          resource: {type: document, id: d1, attributes: {owner: alice}}
          context: {time: "2026-03-02T10:00:00Z"}   # optional
        expect: allow                      # or deny
        policies: [doc-owner-edit]         # optional: the exact set of determining policies
        errors: 0                          # optional: the number of evaluation errors

- ``name`` is optional (a test is then called ``#<n>``, its 1-based position);
  ``request`` and ``expect`` are required; no other key is allowed (a typo such as
  ``polices`` is an error, not a silently ignored check).
- ``context.time`` is RFC 3339 text (an unquoted YAML timestamp works too) and
  becomes a timestamp; without it a test decides at the current time.
- YAML gives dates and times for unquoted values such as ``2026-03-02``; anywhere
  else in a request they become RFC 3339 strings, as they would arrive in JSON.
  A YAML timestamp without a zone is UTC (as YAML says).

This module is pure: it reads no files it is not given, and needs from a policy
set nothing but ``decide(request)``.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from pdp.errors import PdpError

__all__ = [
    "TEST_SUFFIXES", "TestCase", "TestFileError", "TestResult", "discover", "is_test_file",
    "load_test_file", "prepare_request", "run_test", "run_tests",
]

TEST_SUFFIXES = (".test.yaml", ".test.yml", ".test.json")

_CASE_KEYS = ("name", "request", "expect", "policies", "errors")
_REQUEST_KEYS = ("subject", "action", "resource", "context")
_EXPECT = ("allow", "deny")


class TestFileError(PdpError):
    """A test file that cannot be read: not YAML/JSON, or not shaped like a test file.
    The message names the file, the test (position and name) and the field."""

    __test__ = False            # not a pytest test class
    code = "invalid_test_file"


@dataclass(frozen=True, slots=True)
class TestCase:
    """One test: a request and what the policy set must decide for it."""

    __test__ = False

    file: str
    index: int                          # 1-based position in its file
    name: str
    request: dict
    expect: str                         # "allow" | "deny"
    policies: tuple[str, ...] | None = None   # the exact set of determining policies, if given
    errors: int | None = None           # the number of evaluation errors, if given
    line: int | None = None             # where the test starts in a YAML file

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, slots=True)
class TestResult:
    """The outcome of one test. ``message`` says what went wrong ("" when passed)."""

    __test__ = False

    case: TestCase
    passed: bool
    decision: object | None = None      # the Decision, or None when deciding failed
    message: str = ""

    def describe(self) -> str:
        """One line: ``FAIL file: name: expected …, got …`` (or ``PASS file: name``)."""
        head = f"{'PASS' if self.passed else 'FAIL'} {self.case.where}: {self.case.name}"
        return head if self.passed else f"{head}: {self.message}"


# ----------------------------------------------------------------------------- discovery

def is_test_file(name: str | Path) -> bool:
    return str(name).endswith(TEST_SUFFIXES)


def discover(directory: str | Path) -> list[Path]:
    """Every test file under ``directory`` (sub-folders included, hidden ones and hidden
    files skipped), sorted by path."""
    root = Path(directory)
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if is_test_file(path.name) and path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


# ----------------------------------------------------------------------------- loading

def load_test_file(path_or_name: str | Path, text: str | None = None) -> list[TestCase]:
    """The tests of one file. ``path_or_name`` names the file in messages and chooses
    the format (by suffix); ``text`` is its content (read from the path when omitted).

    Raises :class:`TestFileError` when the file is not a valid test file.
    """
    name = str(path_or_name)
    if not is_test_file(name):
        raise TestFileError(f"{name}: not a test file (a test file ends in "
                            f"{', '.join(TEST_SUFFIXES[:-1])} or {TEST_SUFFIXES[-1]})")
    if text is None:
        try:
            text = Path(path_or_name).read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TestFileError(f"{name}: not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise TestFileError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if name.endswith(".json"):
        data, lines = _load_json(name, text), None
    else:
        data, lines = _load_yaml(name, text)
    return _cases(name, data, lines)


def _load_json(name: str, text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TestFileError(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None


def _load_yaml(name: str, text: str):
    """The document, and the line where each test of ``tests`` starts (when found)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise TestFileError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise TestFileError(f"{name}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines = None
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "tests" and isinstance(value, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value.value]
    return data, lines


def _cases(name: str, data, lines: list[int] | None) -> list[TestCase]:
    if not isinstance(data, dict):
        raise TestFileError(f"{name}: a test file holds a mapping with a 'tests' list "
                            f"(tests: [...]), not {_kind(data)}")
    unknown = [k for k in data if k != "tests"]
    if unknown:
        raise TestFileError(f"{name}: unknown key {_key(unknown[0])} at the top level; "
                            "a test file holds only 'tests'")
    tests = data.get("tests")
    if not isinstance(tests, list):
        raise TestFileError(f"{name}: 'tests' must be a list of tests, not {_kind(tests)}"
                            if "tests" in data else f"{name}: missing 'tests' (the list of tests)")
    cases = []
    names: dict[str, int] = {}
    for i, raw in enumerate(tests, start=1):
        line = lines[i - 1] if lines and i <= len(lines) else None
        case = _case(name, i, raw, line)
        if case.name in names:
            raise TestFileError(f"{_where(name, line)}: test #{i} ({case.name!r}): the name is "
                                f"already used by test #{names[case.name]}; test names are unique in a file")
        names[case.name] = i
        cases.append(case)
    return cases


def _case(file: str, index: int, raw, line: int | None) -> TestCase:
    label = f"test #{index}"

    def fail(message: str):
        raise TestFileError(f"{_where(file, line)}: {label}: {message}")

    if not isinstance(raw, dict):
        fail(f"a test is a mapping with 'request' and 'expect', not {_kind(raw)}")
    if "name" in raw:
        if not isinstance(raw["name"], str) or not raw["name"].strip():
            fail(f"'name' must be non-empty text, not {_kind(raw['name'])}")
        name = raw["name"]
        label = f"test #{index} ({name!r})"
    else:
        name = f"#{index}"
    for key in raw:
        if key not in _CASE_KEYS:
            fail(f"unknown key {_key(key)}; a test has {', '.join(_CASE_KEYS)}")
    if "request" not in raw:
        fail("missing 'request' (subject, action, resource and optional context)")
    request = _request(raw["request"], fail)

    if "expect" not in raw:
        fail("missing 'expect' (allow or deny)")
    expect = raw["expect"]
    if expect not in _EXPECT or not isinstance(expect, str):
        fail(f"'expect' must be allow or deny, not {_show(expect)}")

    policies = None
    if "policies" in raw:
        value = raw["policies"]
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            fail(f"'policies' must be a list of policy ids (strings), not {_show(value)}")
        policies = tuple(sorted(set(value)))

    errors = None
    if "errors" in raw:
        value = raw["errors"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            fail(f"'errors' must be a non-negative whole number, not {_show(value)}")
        errors = value

    return TestCase(file, index, name, request, expect, policies, errors, line)


def _request(raw, fail) -> dict:
    if not isinstance(raw, dict):
        fail(f"'request' must be a mapping (subject, action, resource, context), not {_kind(raw)}")
    for key in raw:
        if key not in _REQUEST_KEYS:
            fail(f"unknown key {_key(key)} in 'request'; a request has {', '.join(_REQUEST_KEYS)}")
    request = {}
    for key, value in raw.items():
        request[key] = _json_value(value, f"request.{key}", fail)
    context = request.get("context")
    if isinstance(context, dict) and "time" in context:
        time = context["time"]                  # a YAML timestamp is RFC 3339 text by now
        if not isinstance(time, str):
            fail(f"'request.context.time' must be RFC 3339 text such as \"2026-03-02T10:00:00Z\", "
                 f"not {_show(time)}")
        try:
            _parse_timestamp(context["time"])
        except ValueError as exc:
            fail(f"'request.context.time': {exc}")
    return request


def _json_value(value, where: str, fail):
    """``value`` as JSON data: YAML dates and times become RFC 3339 strings; keys must be
    strings; nothing but JSON types. Iterative, so deep documents cannot overflow."""
    root: list = [None]
    stack = [(value, root, 0, where)]
    while stack:
        v, parent, slot, at = stack.pop()
        if isinstance(v, _dt.datetime):
            out = _rfc3339(v)
        elif isinstance(v, _dt.date):
            out = v.isoformat()
        elif v is None or isinstance(v, (str, bool, int, float)):
            out = v
        elif isinstance(v, list):
            out = [None] * len(v)
            stack.extend((item, out, i, f"{at}[{i}]") for i, item in enumerate(v))
        elif isinstance(v, dict):
            out = {}
            for k, item in v.items():
                if not isinstance(k, str):
                    hint = " (YAML reads on/off/yes/no as booleans: quote the key)" if isinstance(k, bool) else ""
                    fail(f"'{at}': key {_show(k)} is not text{hint}")
                out[k] = None
                stack.append((item, out, k, f"{at}.{k}"))
        else:
            fail(f"'{at}': a {type(v).__name__} value is not JSON data")
        parent[slot] = out
    return root[0]


def _rfc3339(value: _dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)      # YAML: no zone means UTC
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _parse_timestamp(text: str):
    from pdp.lang.values import parse_timestamp
    return parse_timestamp(text)


def _where(file: str, line: int | None) -> str:
    return f"{file}:{line}" if line else file


def _key(key) -> str:
    return repr(key) if isinstance(key, str) else _show(key)


def _kind(value) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _show(value) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ----------------------------------------------------------------------------- running

def prepare_request(request: dict) -> dict:
    """A copy of a test or evaluation request with ``context.time`` (RFC 3339 text)
    turned into a timestamp. Raises ``ValueError`` for bad time text."""
    out = dict(request)
    context = out.get("context")
    if isinstance(context, dict) and isinstance(context.get("time"), str):
        out["context"] = {**context, "time": _parse_timestamp(context["time"])}
    return out


def run_test(policy_set, case: TestCase) -> TestResult:
    """Decide one test's request and compare with what it expects."""
    try:
        decision = policy_set.decide(prepare_request(case.request))
    except PdpError as exc:
        return TestResult(case, False, None, f"the request was refused: {exc}")
    except ValueError as exc:
        return TestResult(case, False, None, f"the request was refused: {exc}")
    got = decision.decision
    policies = tuple(sorted(set(decision.policies)))
    errors = list(decision.errors)
    refused = [e for e in errors if isinstance(e, dict) and e.get("code") == "invalid_request"]
    if refused:
        # A malformed request is a deny: never let it pass a test that expects one.
        return TestResult(case, False, decision,
                          "the request was refused: " + "; ".join(_error_text(e) for e in refused))
    problems = []
    if got != case.expect:
        problems.append("decision")
    if case.policies is not None and policies != case.policies:
        problems.append("policies")
    if case.errors is not None and len(errors) != case.errors:
        problems.append("errors")
    if not problems:
        return TestResult(case, True, decision)
    expected = [case.expect]
    if case.policies is not None:
        expected.append(f"policies {_list(case.policies)}")
    if case.errors is not None:
        expected.append(f"{case.errors} error{'s' if case.errors != 1 else ''}")
    message = (f"expected {', '.join(expected)}; got {got}, policies {_list(policies)}, "
               f"{len(errors)} error{'s' if len(errors) != 1 else ''}")
    if errors:
        message += ": " + "; ".join(_error_text(e) for e in errors)
    return TestResult(case, False, decision, message)


def run_tests(policy_set, cases: Iterable[TestCase]) -> list[TestResult]:
    """Run every test against the compiled policy set, in order."""
    return [run_test(policy_set, case) for case in cases]


def _list(items) -> str:
    return "[" + ", ".join(items) + "]"


def _error_text(error) -> str:
    if isinstance(error, dict):
        msg = error.get("message", "")
        policy = error.get("policy")
        return f"{policy}: {msg}" if policy and not str(msg).startswith(f"{policy}:") else str(msg)
    if hasattr(error, "to_dict"):
        return _error_text(error.to_dict())
    return str(error)
