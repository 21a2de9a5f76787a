"""Spec §5 — evaluation and the decision; §3 — the request a policy sees."""

import copy
from datetime import datetime, timedelta, timezone

import pytest

from engine_support import T0, errors_of, make_set, req
from pdp.engine.policyset import Decision
from pdp.lang.values import Timestamp, parse_timestamp

DOCS = '''
policy "doc-owner-edit" {
  permit read, update on document
  when resource.owner == subject.sub
  unless resource.archived
  reason "owners may edit their own documents"
}

policy "archived-readonly" {
  forbid update, delete on document
  when resource.archived
  reason "archived documents are read-only"
}

policy "admins" {
  permit * on *
  when "admin" in subject.roles
}

policy "folder-read" {
  permit read on folder, "billing.invoice"
}
'''


@pytest.fixture(scope="module")
def docs():
    return make_set(DOCS, file="docs.policy")


def owner_request(action="update", **attrs):
    return req(subject={"sub": "alice", "roles": []}, action=action,
               attributes={"owner": "alice", "archived": False, **attrs})


# --------------------------------------------------------------------------- 5.1 candidates

def test_candidates_match_action_and_resource_type_lists(docs):
    assert docs.candidates("document", "update") == ["admins", "archived-readonly", "doc-owner-edit"]
    assert docs.candidates("document", "read") == ["admins", "doc-owner-edit"]
    assert docs.candidates("folder", "read") == ["admins", "folder-read"]
    assert docs.candidates("billing.invoice", "read") == ["admins", "folder-read"]


def test_star_matches_any_action_and_any_type(docs):
    assert docs.candidates("unknown-type", "unknown-action") == ["admins"]
    assert docs.candidates("document", "unknown-action") == ["admins"]
    assert docs.candidates("unknown-type", "read") == ["admins"]


def test_only_candidates_are_evaluated(docs):
    # folder-read has no condition: it would allow anything it were asked about
    d = docs.decide(req(type="document", action="read", attributes={"owner": "bob", "archived": False}))
    assert d.decision == "deny" and d.policies == []


def test_unknown_types_and_actions_do_not_grow_the_index(docs):
    size = len(docs._table)
    for i in range(100):
        docs.decide(req(type=f"t{i}", action=f"a{i}"))
    assert len(docs._table) == size


def test_wildcard_action_with_listed_types_and_listed_action_with_wildcard_types():
    ps = make_set('''
        policy "a" { permit * on doc }
        policy "b" { permit read on * }
        policy "c" { permit read on doc }
        policy "d" { permit write on other }
    ''')
    assert ps.candidates("doc", "read") == ["a", "b", "c"]
    assert ps.candidates("doc", "write") == ["a"]
    assert ps.candidates("other", "read") == ["b"]
    assert ps.candidates("other", "write") == ["d"]
    assert ps.candidates("x", "read") == ["b"]
    assert ps.candidates("doc", "x") == ["a"]


def test_candidates_when_types_times_actions_is_too_large_to_precompute():
    text = "\n".join(f'policy "t{i}" {{ permit * on type{i} }}\npolicy "a{i}" {{ permit action{i} on * }}'
                     for i in range(150))
    text += '\npolicy "pair" { permit action3, action4 on type7 }\npolicy "any" { permit * on * }'
    ps = make_set(text)
    assert ps.candidates("type7", "action3") == ["a3", "any", "pair", "t7"]
    assert ps.candidates("type7", "action9") == ["a9", "any", "t7"]
    assert ps.candidates("type7", "nope") == ["any", "t7"]
    assert ps.candidates("nope", "action9") == ["a9", "any"]
    size = len(ps._table)
    ps.decide(req(type="type8", action="action9"))
    assert len(ps._table) == size


# --------------------------------------------------------------------------- 5.2 applies

def test_policy_applies_when_when_is_true_and_unless_false(docs):
    d = docs.decide(owner_request())
    assert (d.decision, d.policies) == ("allow", ["doc-owner-edit"])


def test_policy_without_conditions_always_applies(docs):
    assert docs.decide(req(type="folder")).decision == "allow"


def test_unless_true_means_the_policy_does_not_apply():
    ps = make_set('policy "p" { permit * on * unless context.blocked }')
    assert ps.decide(req(context={"blocked": True})).decision == "deny"
    assert ps.decide(req(context={"blocked": False})).decision == "allow"


def test_unless_is_evaluated_only_when_when_was_true():
    ps = make_set('policy "p" { permit * on * when has(context.x) unless context.x }')
    d = ps.decide(req())
    assert (d.decision, d.errors) == ("deny", [])


def test_non_boolean_condition_is_an_error_never_truthy():
    ps = make_set('policy "p" { permit * on * when resource.owner }')
    d = ps.decide(req(attributes={"owner": "alice"}))
    assert d.decision == "deny"
    assert [e["code"] for e in d.errors] == ["not_boolean"]
    ps = make_set('policy "p" { permit * on * unless resource.owner }')
    assert [e["code"] for e in ps.decide(req(attributes={"owner": 0})).errors] == ["not_boolean"]


# --------------------------------------------------------------------------- 5.3 decision

def test_deny_if_any_forbid_applies_determining_are_the_forbids(docs):
    d = docs.decide(req(subject={"sub": "alice", "roles": ["admin"]}, action="update",
                        attributes={"owner": "alice", "archived": True}))
    assert d == Decision("deny", ["archived-readonly"], ["archived documents are read-only"], [])


def test_else_allow_if_any_permit_applies_determining_are_the_permits(docs):
    d = docs.decide(req(subject={"sub": "alice", "roles": ["admin"]}, action="update",
                        attributes={"owner": "alice", "archived": False}))
    assert d == Decision("allow", ["admins", "doc-owner-edit"], ["owners may edit their own documents"], [])


def test_else_deny_by_default_without_determining_policy(docs):
    d = docs.decide(req(subject={"sub": "bob", "roles": []}, action="update",
                        attributes={"owner": "alice", "archived": False}))
    assert d == Decision("deny", [], [], [])


def test_reasons_only_of_determining_policies_that_have_one(docs):
    d = docs.decide(req(type="folder", subject={"sub": "x", "roles": ["admin"]}))
    assert (d.policies, d.reasons) == (["admins", "folder-read"], [])


def test_decision_to_dict(docs):
    d = docs.decide(owner_request())
    assert d.to_dict() == {"decision": "allow", "policies": ["doc-owner-edit"],
                           "reasons": ["owners may edit their own documents"], "errors": []}
    assert d.allowed


# --------------------------------------------------------------------------- 5.4 errors

def test_error_in_a_permit_means_it_does_not_apply(docs):
    d = docs.decide(req(subject={"sub": "alice", "roles": []}, action="read", attributes={"archived": False}))
    assert d.decision == "deny" and d.policies == []
    assert d.errors == [{"code": "missing_attribute",
                         "message": "doc-owner-edit: resource has no attribute 'owner'",
                         "policy": "doc-owner-edit", "location": "docs.policy:4:8"}]


def test_error_in_a_forbid_means_it_applies_fail_closed(docs):
    d = docs.decide(req(subject={"sub": "alice", "roles": ["admin"]}, action="delete", attributes={}))
    assert d.decision == "deny"
    assert d.policies == ["archived-readonly"]
    assert d.reasons == ["archived documents are read-only"]
    assert [(e["code"], e["policy"]) for e in d.errors] == [("missing_attribute", "archived-readonly")]


def test_errors_never_grant():
    ps = make_set('''
        policy "p1" { permit * on * when context.x > 1 }
        policy "p2" { permit * on * when not (context.x > 1) }
    ''')
    d = ps.decide(req(context={"x": "a"}))
    assert d.decision == "deny"
    assert [(e["policy"], e["code"]) for e in d.errors] == [("p1", "type_mismatch"), ("p2", "type_mismatch")]


def test_every_candidate_is_evaluated_and_every_error_reported():
    ps = make_set('''
        policy "c" { forbid * on * when context.a }
        policy "a" { permit * on * when true }
        policy "b" { forbid * on * when context.b == 1 }
    ''')
    d = ps.decide(req())
    assert d.policies == ["b", "c"]
    assert [e["policy"] for e in d.errors] == ["b", "c"]
    assert d.errors[0]["location"] == "test.policy:4:41"


def test_error_message_format_policy_id_then_what(docs):
    ps = make_set('policy "net" {\n  permit * on *\n  when cidr_contains("10.0.0.0/8", context.ip)\n}')
    assert errors_of(ps, req(context={"ip": "nope"})) == [(
        "invalid_argument",
        "net: cidr_contains(\"10.0.0.0/8\", context.ip): invalid ip address 'nope': expected an "
        "address such as \"10.1.2.3\" or \"2001:db8::1\"",
        "net", "test.policy:3:8")]


def test_unexpected_failure_is_internal_error_and_fails_closed():
    deep = []
    for _ in range(100_000):
        deep = [deep]
    ps = make_set('''
        policy "f" { forbid * on * when context.x == context.y }
        policy "p" { permit * on * when context.x == context.y }
    ''')
    d = ps.decide(req(context={"x": deep, "y": deep}))
    assert d.decision == "deny" and d.policies == ["f"]
    assert [(e["code"], e["policy"]) for e in d.errors] == [("internal_error", "f"), ("internal_error", "p")]
    assert "nested too deeply" in d.errors[0]["message"]


# --------------------------------------------------------------------------- 5.6 order

def test_order_of_policies_and_files_does_not_change_decisions():
    from pdp.engine.compiler import compile_policies
    blocks = [b for b in DOCS.split("\n\n") if b.strip()]
    a = compile_policies({"a.policy": "\n\n".join(blocks[:2]), "b.policy": "\n\n".join(blocks[2:])})
    b = compile_policies({"z.policy": "\n\n".join(reversed(blocks[:2])), "c/y.policy": "\n\n".join(reversed(blocks[2:]))})
    for request in (owner_request(), owner_request(archived=True), owner_request(action="read"),
                    req(type="folder"), req(subject={"sub": "x", "roles": ["admin"]}, action="delete")):
        da, db = a.decide(request), b.decide(request)
        assert (da.decision, da.policies, da.reasons) == (db.decision, db.policies, db.reasons)
        assert [(e["code"], e["message"]) for e in da.errors] == [(e["code"], e["message"]) for e in db.errors]


# --------------------------------------------------------------------------- §3 the request

def test_action_sees_name_plus_attributes_and_name_wins():
    ps = make_set('policy "p" { permit * on * when action.name == "read" and action.mfa == true }')
    assert ps.decide(req(action={"name": "read", "attributes": {"mfa": True, "name": "x"}})).decision == "allow"
    assert ps.decide(req(action="read")).errors[0]["code"] == "missing_attribute"


def test_resource_sees_type_id_plus_attributes_and_type_id_win():
    ps = make_set('policy "p" { permit * on * when resource.type == "document" and resource.id == "d1" '
                  'and resource.owner == "a" }')
    r = req(attributes={"owner": "a", "type": "folder", "id": "zzz"})
    assert ps.decide(r).decision == "allow"


def test_resource_id_is_optional():
    ps = make_set('policy "p" { permit * on * when not has(resource.id) }')
    r = req(attributes={"id": "from-attributes"})
    del r["resource"]["id"]
    assert ps.decide(r).decision == "allow"


def test_subject_is_the_claims():
    ps = make_set('policy "p" { permit * on * when subject["https://acme.example/roles"] == ["x"] }')
    assert ps.decide(req(subject={"https://acme.example/roles": ["x"]})).decision == "allow"


@pytest.mark.parametrize("time_value", [
    T0, parse_timestamp(T0), datetime(2026, 3, 2, 11, 0, tzinfo=timezone(timedelta(hours=1))),
])
def test_context_time_is_a_timestamp(time_value):
    ps = make_set('policy "p" { permit * on * when context.time == time("2026-03-02T10:00:00Z") }')
    r = req()
    r["context"]["time"] = time_value
    assert ps.decide(r).decision == "allow"


def test_context_time_absent_is_now():
    ps = make_set('policy "p" { permit * on * when context.time > time("2026-01-01T00:00:00Z") '
                  'and context.time - time(context.before) < duration("1m") }')
    r = req(context={})
    before = Timestamp.from_datetime(datetime.now(timezone.utc))
    del r["context"]["time"]
    r["context"]["before"] = before.isoformat()
    assert ps.decide(r).decision == "allow"
    del r["context"]
    assert ps.decide(r).errors[0]["code"] == "missing_attribute"     # context.before is gone


@pytest.mark.parametrize("request_, field", [
    ("nope", "the request"),
    ({"action": "read", "resource": {"type": "d", "id": "1"}}, "subject"),
    ({"subject": [], "action": "read", "resource": {"type": "d", "id": "1"}}, "subject"),
    ({"subject": {}, "resource": {"type": "d", "id": "1"}}, "action"),
    ({"subject": {}, "action": 5, "resource": {"type": "d", "id": "1"}}, "action"),
    ({"subject": {}, "action": "", "resource": {"type": "d", "id": "1"}}, "action"),
    ({"subject": {}, "action": {"attributes": {}}, "resource": {"type": "d", "id": "1"}}, "action.name"),
    ({"subject": {}, "action": {"name": "r", "attributes": []}, "resource": {"type": "d", "id": "1"}}, "action.attributes"),
    ({"subject": {}, "action": {"name": "r", "extra": 1}, "resource": {"type": "d", "id": "1"}}, "action"),
    ({"subject": {}, "action": "read"}, "resource"),
    ({"subject": {}, "action": "read", "resource": {"id": "1"}}, "resource.type"),
    ({"subject": {}, "action": "read", "resource": {"type": 3, "id": "1"}}, "resource.type"),
    ({"subject": {}, "action": "read", "resource": {"type": "d", "id": 1}}, "resource.id"),
    ({"subject": {}, "action": "read", "resource": {"type": "d", "attributes": 1}}, "resource.attributes"),
    ({"subject": {}, "action": "read", "resource": {"type": "d", "owner": 1}}, "resource"),
    ({"subject": {}, "action": "read", "resource": {"type": "d"}, "context": []}, "context"),
    ({"subject": {}, "action": "read", "resource": {"type": "d"}, "context": {"time": "yesterday"}}, "context.time"),
    ({"subject": {}, "action": "read", "resource": {"type": "d"}, "context": {"time": 5}}, "context.time"),
    ({"subject": {}, "action": "read", "resource": {"type": "d"}, "context": {"time": datetime(2026, 1, 1)}}, "context.time"),
    ({"subject": {}, "action": "read", "resource": {"type": "d"}, "extra": 1}, "extra"),
])
def test_request_of_the_wrong_shape_is_a_deny_with_invalid_request(request_, field):
    ps = make_set('policy "p" { permit * on * }')
    d = ps.decide(request_)
    assert (d.decision, d.policies, d.reasons) == ("deny", [], [])
    assert len(d.errors) == 1
    (e,) = d.errors
    assert e["code"] == "invalid_request" and e["policy"] is None and e["location"] is None
    assert field in e["message"]


def test_the_engine_never_modifies_the_request_or_the_data():
    data = {"users": {"alice": {"roles": ["admin"]}}, "nets": ["10.0.0.0/8"]}
    ps = make_set('''
        policy "p" { permit * on * when "admin" in data.users[subject.sub].roles
                     and cidr_contains(data.nets[0], context.ip) and lower(resource.x) == "a"
                     and contains_all(subject.l, [1]) }
    ''', data)
    r = req(subject={"sub": "alice", "l": [1, True]}, attributes={"x": "A"}, context={"ip": "10.1.1.1"})
    before_r, before_d = copy.deepcopy(r), copy.deepcopy(data)
    assert ps.decide(r).decision == "allow"
    assert r == before_r and data == before_d and ps.data == before_d
