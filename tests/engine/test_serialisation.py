"""The compiled form: PolicySet.to_bytes / from_bytes, and why a stored tree is safe."""

import json

import pytest

from engine_support import make_set, req
from pdp.engine.policyset import FORMAT_VERSION, PolicySet
from pdp.errors import PdpError
from pdp.lang import ast

TEXT = '''
@owner("team-docs")
@description("owners edit")
policy "doc-owner-edit" {
  permit read, update on document
  when resource.owner == subject.sub and hour(context.time, "Europe/Paris") < 20
  unless resource.archived
  reason "owners may edit their own documents"
}
policy "team" {
  permit read on document, folder
  when resource.team in data.teams[subject.sub] and cidr_contains("10.0.0.0/8", context.ip)
}
policy "deny-weekend" {
  forbid * on *
  when weekday(context.time) in [6, 7] and context.time - time(subject.iat) > duration("1h")
}
'''
DATA = {"teams": {"alice": ["red", "blue"]}, "n": 1.5}

REQUESTS = [
    req(subject={"sub": "alice", "iat": 1_772_400_000}, action="update",
        attributes={"owner": "alice", "archived": False}, context={"ip": "10.0.0.1"}),
    req(subject={"sub": "alice", "iat": 1_772_400_000}, action="read",
        attributes={"team": "red"}, context={"ip": "10.0.0.1", "time": "2026-03-07T10:00:00Z"}),
    req(subject={"sub": "bob"}, action="read", attributes={"team": "red"}, context={"ip": "x"}),
    req(subject={"sub": "alice"}, type="folder", attributes={"team": "blue"}, context={"ip": "10.9.9.9"}),
]


@pytest.fixture(scope="module")
def policy_set():
    return make_set(TEXT, DATA, file="docs.policy")


def test_round_trip_decides_identically(policy_set):
    loaded = PolicySet.from_bytes(policy_set.to_bytes())
    for r in REQUESTS:
        assert loaded.decide(r) == policy_set.decide(r)
    assert loaded.policies == policy_set.policies
    assert loaded.data == DATA
    assert loaded.source() == policy_set.source()


def test_to_bytes_is_deterministic_json_with_a_format_version(policy_set):
    blob = policy_set.to_bytes()
    assert blob == PolicySet.from_bytes(blob).to_bytes()
    doc = json.loads(blob)
    assert doc["format"] == "pdp-policy-set" and doc["version"] == FORMAT_VERSION
    assert doc["data"] == DATA
    meta = {k: v for k, v in doc["policies"][0].items() if k != "ir"}
    assert meta == {"id": "deny-weekend", "effect": "forbid", "actions": None, "resource_types": None,
                    "reason": None, "annotations": {}, "file": "docs.policy", "line": 14}


def test_metadata_of_policies(policy_set):
    (edit,) = [p for p in policy_set.policies if p["id"] == "doc-owner-edit"]
    assert edit == {"id": "doc-owner-edit", "effect": "permit", "actions": ["read", "update"],
                    "resource_types": ["document"], "reason": "owners may edit their own documents",
                    "annotations": {"owner": "team-docs", "description": "owners edit"},
                    "file": "docs.policy", "line": 2}
    edit["actions"].append("delete")                    # a copy: the set is not changed
    assert "delete" not in policy_set.policies[1]["actions"]


def _tampered(policy_set, change) -> bytes:
    doc = json.loads(policy_set.to_bytes())
    change(doc)
    return json.dumps(doc).encode()


def _when_of(doc, pid="team"):
    (entry,) = [e for e in doc["policies"] if e["id"] == pid]
    return next(c for c in entry["ir"]["clauses"] if c["kind"] == "when")


@pytest.mark.parametrize("change", [
    lambda d: d.update(version=99),
    lambda d: d.update(format="other"),
    lambda d: d.update(policies={}),
    lambda d: d.update(data=[1]),
    lambda d: d["policies"][0].pop("ir"),
    lambda d: d["policies"][0].update(id="renamed"),                        # metadata ≠ tree
    lambda d: d["policies"][0]["ir"].update({"@": "Exec"}),
    lambda d: d["policies"][0]["ir"].update(effect="allow"),
    lambda d: d["policies"][0]["ir"].update(id=""),
    lambda d: d["policies"][0]["ir"].update(extra=1),
    lambda d: d["policies"].append(d["policies"][0]),                       # duplicate id
    lambda d: _when_of(d).update(value={"@": "Literal", "value": {"__import__": "os"}, "line": 1, "column": 1}),
    lambda d: _when_of(d).update(value={"@": "Path", "root": "__import__('os')", "steps": [], "line": 1, "column": 1}),
    lambda d: _when_of(d).update(value={"@": "Call", "name": "eval", "args": [], "line": 1, "column": 1}),
    lambda d: _when_of(d).update(value={"@": "Call", "name": "len", "args": [], "line": 1, "column": 1}),
    lambda d: _when_of(d).update(value={"@": "Compare", "op": "is", "line": 1, "column": 1,
                                        "left": {"@": "Literal", "value": 1, "line": 1, "column": 1},
                                        "right": {"@": "Literal", "value": 1, "line": 1, "column": 1}}),
    lambda d: _when_of(d).update(value={"@": "Compare", "op": "like", "line": 1, "column": 1,
                                        "left": {"@": "Literal", "value": "a", "line": 1, "column": 1},
                                        "right": {"@": "Literal", "value": 1, "line": 1, "column": 1}}),
    lambda d: _when_of(d).update(value={"@": "Literal", "value": True, "line": "1", "column": 1}),
    lambda d: _when_of(d).update(value=True),
])
def test_a_tampered_or_foreign_compiled_form_is_refused(policy_set, change):
    with pytest.raises(PdpError) as info:
        PolicySet.from_bytes(_tampered(policy_set, change))
    assert info.value.code == "invalid_policy_set"


@pytest.mark.parametrize("blob", [b"", b"not json", b"[1]", b'{"format": "pdp-policy-set", "version": 1, '
                                  b'"policies": [], "data": {"x": NaN}}', b"[" * 100_000])
def test_garbage_is_refused(blob):
    with pytest.raises(PdpError):
        PolicySet.from_bytes(blob)


def test_strings_in_a_stored_tree_cannot_inject_code(policy_set):
    evil = "'); import os; os.system('echo pwned') #\n\"\"\"\\"

    def change(d):
        (entry,) = [e for e in d["policies"] if e["id"] == "team"]
        entry["ir"]["id"] = entry["id"] = evil
        entry["ir"]["file"] = entry["file"] = evil
        _when_of(d, evil).update(value={
            "@": "Compare", "op": "==", "line": 1, "column": 1,
            "left": {"@": "Path", "root": "context", "steps": [evil], "line": 1, "column": 1},
            "right": {"@": "Literal", "value": evil, "line": 1, "column": 1}})
    loaded = PolicySet.from_bytes(_tampered(policy_set, change))
    r = req(type="folder", action="read", context={evil: evil})
    assert loaded.decide(r).policies == [evil]
    compile(loaded.source(), "<check>", "exec")         # still one valid module


def test_deep_nesting_in_a_stored_tree_is_refused(policy_set):
    def change(d):
        node = {"@": "Literal", "value": True, "line": 1, "column": 1}
        for _ in range(500):
            node = {"@": "Unary", "op": "not", "operand": node, "line": 1, "column": 1}
        _when_of(d).update(value=node)
    with pytest.raises(PdpError):
        PolicySet.from_bytes(_tampered(policy_set, change))


def test_a_20000_term_chain_round_trips():
    terms = [ast.Compare("!=", ast.Path("context", [f"k{i % 7}"]), ast.Literal(i)) for i in range(20_000)]
    p = ast.Policy("chain", "permit", None, None, [ast.Clause("when", ast.BoolOp("and", terms))])
    loaded = PolicySet.from_bytes(PolicySet([p]).to_bytes())
    assert loaded.decide(req(context={f"k{i}": -1 for i in range(7)})).decision == "allow"
