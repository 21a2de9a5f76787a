"""Policy tests (spec §9): reading test files, running them, reporting failures.

Loading is checked on its own (every malformed file gives a message naming the
file, the test and the field); running is checked against a stand-in policy set
(only ``decide`` is needed) and, when the engine is there, against real policies.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field

import pytest

from pdp.engine.testing import (
    TestCase,
    TestFileError,
    discover,
    load_test_file,
    prepare_request,
    run_test,
    run_tests,
)
from pdp.lang.values import Timestamp, parse_timestamp


def yaml_tests(text: str, name: str = "a.test.yaml") -> list[TestCase]:
    return load_test_file(name, textwrap.dedent(text).lstrip("\n"))


def load_error(text: str, name: str = "a.test.yaml") -> str:
    with pytest.raises(TestFileError) as info:
        load_test_file(name, textwrap.dedent(text))
    return info.value.message


SPEC_EXAMPLE = """
tests:
  - name: owner can edit
    request:
      subject: {sub: alice, roles: [user]}         # claims
      action: update                               # or {name: update, attributes: {...}}
      resource: {type: document, id: d1, attributes: {owner: alice}}
      context: {time: "2026-03-02T10:00:00Z", ip: 10.1.2.3}   # optional
    expect: allow                                  # or deny
    policies: [doc-owner-edit]                     # optional: exact set of determining policies
    errors: 0                                      # optional: number of evaluation errors
"""


# ============================================================================ loading

def test_the_example_of_the_spec():
    (case,) = yaml_tests(SPEC_EXAMPLE)
    assert case == TestCase(
        file="a.test.yaml", index=1, name="owner can edit",
        request={"subject": {"sub": "alice", "roles": ["user"]}, "action": "update",
                 "resource": {"type": "document", "id": "d1", "attributes": {"owner": "alice"}},
                 "context": {"time": "2026-03-02T10:00:00Z", "ip": "10.1.2.3"}},
        expect="allow", policies=("doc-owner-edit",), errors=0, line=2)
    assert case.where == "a.test.yaml:2"


def test_json_test_files():
    text = json.dumps({"tests": [
        {"name": "t1", "request": {"subject": {}, "action": "read",
                                   "resource": {"type": "doc"}}, "expect": "deny"},
        {"request": {"subject": {}, "action": "read", "resource": {"type": "doc"}},
         "expect": "allow", "policies": []},
    ]})
    first, second = load_test_file("x.test.json", text)
    assert (first.name, first.expect, first.policies, first.errors, first.line) == ("t1", "deny", None, None, None)
    assert (second.name, second.index, second.policies) == ("#2", 2, ())


def test_yml_suffix_and_an_empty_list():
    assert load_test_file("a.test.yml", "tests: []\n") == []


def test_a_test_without_a_name_is_called_by_its_position():
    cases = yaml_tests("""
        tests:
          - request: {subject: {}, action: a, resource: {type: t}}
            expect: deny
          - request: {subject: {}, action: a, resource: {type: t}}
            expect: deny
    """)
    assert [c.name for c in cases] == ["#1", "#2"]
    assert [c.line for c in cases] == [2, 4]


def test_policies_are_a_set():
    (case,) = yaml_tests("""
        tests:
          - request: {subject: {}, action: a, resource: {type: t}}
            expect: allow
            policies: [b, a, b]
    """)
    assert case.policies == ("a", "b")


def test_yaml_times_become_rfc3339_text():
    (case,) = yaml_tests("""
        tests:
          - request:
              subject: {sub: a, since: 2026-01-31, seen: 2026-01-31 10:00:00}
              action: a
              resource: {type: t, attributes: {at: 2026-03-02T10:00:00+01:00}}
              context: {time: 2026-03-02T10:00:00Z}
            expect: deny
    """)
    assert case.request["context"]["time"] == "2026-03-02T10:00:00Z"
    assert case.request["subject"] == {"sub": "a", "since": "2026-01-31", "seen": "2026-01-31T10:00:00Z"}
    assert case.request["resource"]["attributes"]["at"] == "2026-03-02T10:00:00+01:00"


def test_context_time_becomes_a_timestamp_when_run():
    (case,) = yaml_tests("""
        tests:
          - request: {subject: {}, action: a, resource: {type: t}, context: {time: "2026-03-02T11:00:00+01:00"}}
            expect: deny
    """)
    prepared = prepare_request(case.request)
    assert prepared["context"]["time"] == parse_timestamp("2026-03-02T10:00:00Z")
    assert isinstance(prepared["context"]["time"], Timestamp)
    assert case.request["context"]["time"] == "2026-03-02T11:00:00+01:00"     # the case is not changed


BAD_FILES = [
    # (file text, message)
    ("tests: [\n", "a.test.yaml:2:1: invalid YAML: expected the node content, but found '<stream end>'"),
    ("[]", "a.test.yaml: a test file holds a mapping with a 'tests' list (tests: [...]), not a list"),
    ("", "a.test.yaml: a test file holds a mapping with a 'tests' list (tests: [...]), not nothing"),
    ("name: x\n", "a.test.yaml: unknown key 'name' at the top level; a test file holds only 'tests'"),
    ("tests: 3\n", "a.test.yaml: 'tests' must be a list of tests, not a number"),
    ("tests:\n  - 3\n", "a.test.yaml:2: test #1: a test is a mapping with 'request' and 'expect', not a number"),
    ("tests:\n  - name: t\n    expect: allow\n",
     "a.test.yaml:2: test #1 ('t'): missing 'request' (subject, action, resource and optional context)"),
    ("tests:\n  - name: t\n    request: {subject: {}, action: a, resource: {type: t}}\n",
     "a.test.yaml:2: test #1 ('t'): missing 'expect' (allow or deny)"),
    ("tests:\n  - name: t\n    request: {subject: {}, action: a, resource: {type: t}}\n    expect: permit\n",
     "a.test.yaml:2: test #1 ('t'): 'expect' must be allow or deny, not \"permit\""),
    ("tests:\n  - name: t\n    request: {subject: {}, action: a, resource: {type: t}}\n    expect: yes\n",
     "a.test.yaml:2: test #1 ('t'): 'expect' must be allow or deny, not true"),
    ("tests:\n  - name: t\n    request: {subject: {}, action: a, resource: {type: t}}\n"
     "    expect: allow\n    polices: [a]\n",
     "a.test.yaml:2: test #1 ('t'): unknown key 'polices'; a test has name, request, expect, policies, errors"),
    ("tests:\n  - name: t\n    request: {subject: {}, action: a, resource: {type: t}}\n"
     "    expect: allow\n    policies: a\n",
     "a.test.yaml:2: test #1 ('t'): 'policies' must be a list of policy ids (strings), not \"a\""),
    ("tests:\n  - name: t\n    request: {subject: {}, action: a, resource: {type: t}}\n"
     "    expect: allow\n    policies: [a, 1]\n",
     "a.test.yaml:2: test #1 ('t'): 'policies' must be a list of policy ids (strings), not [\"a\", 1]"),
    ("tests:\n  - name: t\n    request: {subject: {}, action: a, resource: {type: t}}\n"
     "    expect: allow\n    errors: -1\n",
     "a.test.yaml:2: test #1 ('t'): 'errors' must be a non-negative whole number, not -1"),
    ("tests:\n  - name: t\n    request: {subject: {}, action: a, resource: {type: t}}\n"
     "    expect: allow\n    errors: true\n",
     "a.test.yaml:2: test #1 ('t'): 'errors' must be a non-negative whole number, not true"),
    ("tests:\n  - name: t\n    request: {subject: {}, action: a, resource: {type: t}}\n"
     "    expect: allow\n    errors: 1.5\n",
     "a.test.yaml:2: test #1 ('t'): 'errors' must be a non-negative whole number, not 1.5"),
    ("tests:\n  - name: t\n    request: [1]\n    expect: allow\n",
     "a.test.yaml:2: test #1 ('t'): 'request' must be a mapping (subject, action, resource, context), not a list"),
    ("tests:\n  - name: t\n    request: {subject: {}, action: a, resouce: {type: t}}\n    expect: allow\n",
     "a.test.yaml:2: test #1 ('t'): unknown key 'resouce' in 'request'; a request has subject, action, "
     "resource, context"),
    ("tests:\n  - name: t\n    request: {subject: {on: 1}, action: a, resource: {type: t}}\n    expect: allow\n",
     "a.test.yaml:2: test #1 ('t'): 'request.subject': key true is not text "
     "(YAML reads on/off/yes/no as booleans: quote the key)"),
    ("tests:\n  - name: t\n    request: {subject: {b: !!binary aGk=}, action: a, resource: {type: t}}\n"
     "    expect: allow\n",
     "a.test.yaml:2: test #1 ('t'): 'request.subject.b': a bytes value is not JSON data"),
    ("tests:\n  - name: t\n    request: {subject: {}, action: a, resource: {type: t}, context: {time: 5}}\n"
     "    expect: allow\n",
     "a.test.yaml:2: test #1 ('t'): 'request.context.time' must be RFC 3339 text such as "
     "\"2026-03-02T10:00:00Z\", not 5"),
    ("tests:\n  - name: t\n    request: {subject: {}, action: a, resource: {type: t}, "
     "context: {time: 'yesterday'}}\n    expect: allow\n",
     "a.test.yaml:2: test #1 ('t'): 'request.context.time': invalid timestamp 'yesterday': expected "
     "RFC 3339 text such as \"2026-01-31T09:00:00Z\" or \"2026-01-31T10:00:00+01:00\""),
    ("tests:\n  - name: ''\n    request: {}\n    expect: allow\n",
     "a.test.yaml:2: test #1: 'name' must be non-empty text, not text"),
    ("tests:\n  - name: t\n    request: {subject: {}, action: a, resource: {type: t}}\n    expect: allow\n"
     "  - name: t\n    request: {subject: {}, action: a, resource: {type: t}}\n    expect: deny\n",
     "a.test.yaml:5: test #2 ('t'): the name is already used by test #1; test names are unique in a file"),
]


@pytest.mark.parametrize("text, message", BAD_FILES, ids=[m[1][:60] for m in BAD_FILES])
def test_a_malformed_test_file_is_explained(text, message):
    assert load_error(text) == message


def test_invalid_json_is_located():
    with pytest.raises(TestFileError) as info:
        load_test_file("b.test.json", '{"tests": [\n  {"name": }\n]}')
    assert info.value.message == "b.test.json:2:12: invalid JSON: Expecting value"


def test_a_file_with_another_suffix_is_not_a_test_file():
    with pytest.raises(TestFileError, match="not a test file"):
        load_test_file("a.yaml", "tests: []")


def test_a_test_file_is_read_from_its_path_when_no_text_is_given(tmp_path):
    path = tmp_path / "p.test.yaml"
    path.write_text(SPEC_EXAMPLE, encoding="utf-8")
    (case,) = load_test_file(path)
    assert (case.file, case.line) == (str(path), 3)
    path.write_bytes(b"tests: [\xff]")
    with pytest.raises(TestFileError, match="not UTF-8"):
        load_test_file(path)


def test_discover_finds_test_files_in_sub_folders_but_not_hidden_ones(tmp_path):
    for rel in ["a.test.yaml", "sub/b.test.yml", "sub/deeper/c.test.json", ".hidden/d.test.yaml",
                "sub/.e.test.yaml", "x.yaml", "y.test.yaml.bak", "z.policy"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("tests: []\n")
    found = [p.relative_to(tmp_path).as_posix() for p in discover(tmp_path)]
    assert found == ["a.test.yaml", "sub/b.test.yml", "sub/deeper/c.test.json"]


# ============================================================================ running

@dataclass
class FakeDecision:
    decision: str
    policies: list = field(default_factory=list)
    reasons: list = field(default_factory=list)
    errors: list = field(default_factory=list)


class FakeSet:
    """Decides by a table keyed on the action name; remembers what it was asked."""

    def __init__(self, table):
        self.table = table
        self.requests = []

    def decide(self, request):
        self.requests.append(request)
        return self.table[request["action"]]


def case(expect="allow", policies=None, errors=None, action="read", name="t", context=None):
    request = {"subject": {}, "action": action, "resource": {"type": "doc"}}
    if context is not None:
        request["context"] = context
    return TestCase("f.test.yaml", 1, name, request, expect,
                    None if policies is None else tuple(sorted(policies)), errors, 7)


ALLOW_A = FakeDecision("allow", ["a"], ["r"])
DENY_F = FakeDecision("deny", ["f"], [], [{"code": "eval_error", "message": "f: resource has no attribute 'x'",
                                           "policy": "f", "location": "p.policy:3:8"}])
DENY = FakeDecision("deny")
FAKE = FakeSet({"read": ALLOW_A, "delete": DENY_F, "list": DENY})


@pytest.mark.parametrize("test, passed", [
    (case("allow"), True),
    (case("deny"), False),
    (case("allow", policies=["a"]), True),
    (case("allow", policies=[]), False),
    (case("allow", policies=["a", "b"]), False),
    (case("allow", errors=0), True),
    (case("allow", errors=1), False),
    (case("deny", action="delete"), True),
    (case("deny", action="delete", policies=["f"], errors=1), True),
    (case("deny", action="delete", errors=0), False),
    (case("deny", action="list", policies=[]), True),
])
def test_a_test_passes_when_decision_policies_and_errors_match(test, passed):
    (result,) = run_tests(FAKE, [test])
    assert result.passed is passed
    assert result.case is test
    assert (result.message == "") is passed


def test_a_failure_names_expected_and_got_policies_and_errors():
    result = run_test(FAKE, case("allow", policies=["g"], errors=0, action="delete", name="owner can edit"))
    assert result.message == (
        "expected allow, policies [g], 0 errors; got deny, policies [f], 1 error: "
        "f: resource has no attribute 'x'")
    assert result.describe() == f"FAIL f.test.yaml:7: owner can edit: {result.message}"
    assert run_test(FAKE, case("deny")).message == "expected deny; got allow, policies [a], 0 errors"


def test_a_refused_request_fails_even_a_test_that_expects_deny():
    refused = FakeDecision("deny", [], [], [{"code": "invalid_request", "message": "resource.type: must be a "
                                             "non-empty string", "policy": None, "location": None}])
    result = run_test(FakeSet({"read": refused}), case("deny"))
    assert not result.passed
    assert result.message == "the request was refused: resource.type: must be a non-empty string"


def test_the_runner_passes_context_time_as_a_timestamp():
    fake = FakeSet({"read": ALLOW_A})
    run_tests(fake, [case(context={"time": "2026-03-02T10:00:00Z", "ip": "10.0.0.1"}), case()])
    with_time, without = fake.requests
    assert with_time["context"] == {"time": parse_timestamp("2026-03-02T10:00:00Z"), "ip": "10.0.0.1"}
    assert "context" not in without                   # the policy set decides at "now"


# ============================================================================ with the engine

pdp = pytest.importorskip("pdp")
needs_engine = pytest.mark.skipif(not hasattr(pdp, "compile_policies"), reason="the engine is not there yet")

POLICIES = {
    "docs.policy": textwrap.dedent("""
        policy "doc-owner-edit" {
          permit read, update on document
          when resource.owner == subject.sub
          unless resource.archived
          reason "owners may edit their own documents"
        }

        policy "office-hours" {
          forbid update on document
          when hour(context.time, "Europe/Berlin") < 8
        }
    """),
}

RUN = """
tests:
  - name: owner can edit
    request:
      subject: {sub: alice}
      action: update
      resource: {type: document, id: d1, attributes: {owner: alice, archived: false}}
      context: {time: "2026-03-02T10:00:00Z"}
    expect: allow
    policies: [doc-owner-edit]
    errors: 0
  - name: not before eight in Berlin
    request:
      subject: {sub: alice}
      action: update
      resource: {type: document, id: d1, attributes: {owner: alice, archived: false}}
      context: {time: 2026-03-02T06:30:00Z}
    expect: deny
    policies: [office-hours]
  - name: a missing attribute is an error, and no grant
    request:
      subject: {sub: alice}
      action: read
      resource: {type: document, id: d1, attributes: {owner: alice}}
    expect: deny
    errors: 1
  - name: this one is wrong
    request:
      subject: {sub: bob}
      action: read
      resource: {type: document, id: d1, attributes: {owner: alice, archived: false}}
    expect: allow
"""


@needs_engine
def test_running_tests_against_compiled_policies():
    policy_set = pdp.compile_policies(POLICIES)
    results = run_tests(policy_set, load_test_file("docs.test.yaml", RUN))
    assert [r.passed for r in results] == [True, True, True, False]
    assert results[3].message == "expected allow; got deny, policies [], 0 errors"
    assert results[2].decision.errors[0]["policy"] == "doc-owner-edit"
