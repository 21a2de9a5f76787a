"""The decision use case (:mod:`pdp.service.decisions`) without HTTP: the order of
the checks, what an outcome carries, what the sink sees, and that no failure ever
turns into an allow."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import pytest

from pdp.engine.compiler import compile_policies
from pdp.errors import Forbidden, NotFound, PdpError, RequestError, Unavailable
from pdp.service import policies as policy_service
from pdp.service.active import ActivePolicies
from pdp.service.decisions import (
    Check,
    DecisionInput,
    DecisionService,
    NullSink,
    Subject,
    new_decision_id,
    policy_set_exists,
)
from pdp.store.keys import Caller

POLICIES = """\
policy "doc-owner-edit" {
  permit read, update on document
  when resource.owner == subject.sub
  reason "owners may edit their own documents"
}
policy "billing-only" {
  permit pay on invoice
  when context.caller == "billing"
}
policy "before-2000" {
  permit view on archive
  when context.time < time("2000-01-01T00:00:00Z")
}
policy "level" {
  permit read on report
  when subject.level > 3
}
policy "with-action-attributes" {
  permit approve on expense
  when action.amount < 100 and resource.team == "docs"
}
"""

NOW = datetime(2026, 3, 2, 10, 15, tzinfo=timezone.utc)
DOCS = DecisionInput(Subject(claims={"sub": "alice"}), "read", "document", "d-1",
                     resource_attributes={"owner": "alice"})


class FakeActive:
    def __init__(self, sets):
        self.sets = sets

    def find(self, name):
        return self.sets.get(name)


class FakeVerifier:
    def __init__(self, claims=None, error: PdpError | None = None):
        self.claims = claims if claims is not None else {"sub": "alice"}
        self.error = error
        self.calls = 0

    def verify(self, token):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return dict(self.claims)


class RecordingSink:
    def __init__(self):
        self.records = []

    def record(self, outcome, input, caller):
        self.records.append((outcome, input, caller))


@pytest.fixture(scope="module")
def policy_set():
    return compile_policies({"p.policy": POLICIES})


def caller(name="svc", *, trusted=True, sets=None) -> Caller:
    return Caller(name, frozenset({"decide"}), None if sets is None else frozenset(sets),
                  trusted_claims=trusted)


def service(policy_set, **kw) -> DecisionService:
    kw.setdefault("clock", lambda: NOW)
    return DecisionService(FakeActive({"default": (4, policy_set)}), kw.pop("verifier", None),
                           kw.pop("sink", None), **kw)


# --------------------------------------------------------------------------- outcomes

def test_an_outcome_carries_everything_the_log_needs(policy_set):
    sink = RecordingSink()
    svc = service(policy_set, sink=sink, id_factory=iter(["id-1"]).__next__)
    out = svc.decide(caller("docs"), DOCS)
    assert out.decision == "allow" and out.allowed
    assert out.decision_id == "id-1"
    assert (out.policy_set, out.policy_version) == ("default", 4)
    assert out.policies == ("doc-owner-edit",)
    assert out.reasons == ("owners may edit their own documents",)
    assert out.errors == ()
    assert out.claims == {"sub": "alice"}
    assert out.context == {"time": "2026-03-02T10:15:00Z", "caller": "docs"}
    assert out.time == NOW and out.caller == "docs" and out.token_error is None
    assert out.subject_source == "claims"
    assert out.evaluation_us >= 0
    assert out.to_dict() == {"decision": "allow", "decision_id": "id-1", "policy_set": "default",
                             "policy_version": 4, "policies": ["doc-owner-edit"],
                             "reasons": ["owners may edit their own documents"], "errors": []}
    assert sink.records == [(out, DOCS, caller("docs"))]


def test_decision_ids_are_uuid7_unique_and_time_ordered():
    ids = [new_decision_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    stamps = [u.int >> 80 for u in parsed]
    assert stamps == sorted(stamps)


def test_the_null_sink_is_the_default(policy_set):
    assert isinstance(service(policy_set).sink, NullSink)


def test_action_and_resource_attributes_reach_the_policies(policy_set):
    svc = service(policy_set)
    request = DecisionInput(Subject(claims={}), "approve", "expense", "e-1",
                            action_attributes={"amount": 50},
                            resource_attributes={"team": "docs"})
    assert svc.decide(caller(), request).decision == "allow"
    request = DecisionInput(Subject(claims={}), "approve", "expense", "e-1",
                            action_attributes={"amount": 500},
                            resource_attributes={"team": "docs"})
    assert svc.decide(caller(), request).decision == "deny"


# --------------------------------------------------------------------------- pdp's context

def test_context_caller_is_the_callers_name_whatever_the_request_says(policy_set):
    svc = service(policy_set)
    pay = DecisionInput(Subject(claims={}), "pay", "invoice", "i", context={"caller": "billing"})
    assert svc.decide(caller("billing"), pay).decision == "allow"
    out = svc.decide(caller("shop"), pay)
    assert out.decision == "deny" and out.context["caller"] == "shop"


def test_context_time_is_the_decision_time_whatever_the_request_says(policy_set):
    view = DecisionInput(Subject(claims={}), "view", "archive", "a",
                         context={"time": "1990-01-01T00:00:00Z", "ip": "10.0.0.1"})
    out = service(policy_set).decide(caller(), view)
    assert out.decision == "deny"
    assert out.context == {"time": "2026-03-02T10:15:00Z", "ip": "10.0.0.1", "caller": "svc"}
    past = service(policy_set, clock=lambda: datetime(1999, 1, 1, tzinfo=timezone.utc))
    assert past.decide(caller(), view).decision == "allow"


# --------------------------------------------------------------------------- refusals

def test_a_set_the_caller_may_not_use_is_forbidden(policy_set):
    sink = RecordingSink()
    with pytest.raises(Forbidden):
        service(policy_set, sink=sink).decide(caller(sets=["other"]), DOCS)
    assert sink.records == []


def test_claims_need_a_trusted_caller(policy_set):
    with pytest.raises(Forbidden) as info:
        service(policy_set).decide(caller(trusted=False), DOCS)
    assert info.value.code == "forbidden"


def test_token_and_claims_together_are_refused(policy_set):
    both = DecisionInput(Subject(token="t", claims={}), "read", "document", "d")
    with pytest.raises(RequestError) as info:
        service(policy_set).decide(caller(), both)
    assert info.value.field == "subject"


def test_bad_set_names_are_request_errors(policy_set):
    with pytest.raises(RequestError) as info:
        service(policy_set).decide(caller(), DecisionInput(Subject(claims={}), "r", "t", "i",
                                                           policy_set="../etc"))
    assert info.value.field == "policy_set"


def test_unknown_sets_and_sets_without_an_active_version(policy_set):
    request = DecisionInput(Subject(claims={}), "read", "document", "d", policy_set="other")
    with pytest.raises(NotFound) as info:
        service(policy_set).decide(caller(), request)
    assert info.value.code == "policy_set_not_found"
    with pytest.raises(Unavailable) as info:
        service(policy_set, set_exists=lambda name: True).decide(caller(), request)
    assert info.value.code == "no_active_version"


def test_against_the_store_on_every_backend(store):
    """``policy_set_exists`` and a real :class:`ActivePolicies`."""
    active = ActivePolicies(store)
    svc = DecisionService(active, set_exists=lambda name: policy_set_exists(store, name))
    request = DecisionInput(Subject(claims={"sub": "alice"}), "read", "document", "d",
                            resource_attributes={"owner": "alice"})
    with pytest.raises(NotFound):
        svc.decide(caller(), request)
    policy_service.publish(store, {"p.policy": POLICIES}, published_by="tests")
    active.refresh()
    with pytest.raises(Unavailable):
        svc.decide(caller(), request)
    policy_service.activate(store, 1, activated_by="tests")
    active.refresh()
    out = svc.decide(caller(), request)
    assert (out.decision, out.policy_version) == ("allow", 1)
    assert policy_set_exists(store, "default") and not policy_set_exists(store, "nope")


def test_a_set_activated_elsewhere_is_served_at_once_not_after_the_next_poll(store):
    """Another replica (or the CLI) activates; this replica polls once a minute.
    Its first decision for the set must not be "no active version"."""
    active = ActivePolicies(store, poll_interval=60, listen=False)
    svc = DecisionService(active, set_exists=lambda name: policy_set_exists(store, name))
    request = DecisionInput(Subject(claims={"sub": "alice"}), "read", "document", "d",
                            resource_attributes={"owner": "alice"})
    active.refresh()
    policy_service.publish(store, {"p.policy": POLICIES}, published_by="tests")
    policy_service.activate(store, 1, activated_by="tests")
    out = svc.decide(caller(), request)
    assert (out.decision, out.policy_version) == ("allow", 1)


def test_a_watcher_that_just_polled_does_not_keep_a_miss_from_looking(store):
    """The watcher polls every 0.2 s (``PDP_POLL_INTERVAL``); a set activated since
    its last poll is served by the next request, not refused until the next poll
    (seen as a rare 503 ``no_active_version`` through a 2-worker gunicorn)."""
    active = ActivePolicies(store, poll_interval=0.2, listen=False)
    svc = DecisionService(active, set_exists=lambda name: policy_set_exists(store, name))
    request = DecisionInput(Subject(claims={"sub": "alice"}), "read", "document", "d",
                            resource_attributes={"owner": "alice"})
    policy_service.publish(store, {"p.policy": POLICIES}, published_by="tests")
    active.refresh()                                         # a poll: nothing active
    policy_service.activate(store, 1, activated_by="tests")
    assert time.monotonic() - active.last_refresh < 0.2      # younger than a poll
    out = svc.decide(caller(), request)
    assert (out.decision, out.policy_version) == ("allow", 1)


def test_misses_refresh_the_snapshot_at_most_five_times_a_second(store):
    active = ActivePolicies(store, poll_interval=60, listen=False)
    svc = DecisionService(active, set_exists=lambda name: policy_set_exists(store, name))
    refreshes = []
    real = active.refresh
    active.refresh = lambda: refreshes.append(1) or real()
    request = DecisionInput(Subject(claims={}), "read", "document", "d", policy_set="nope")
    for _ in range(50):                     # a burst naming a set that does not exist
        with pytest.raises(NotFound):
            svc.decide(caller(), request)
    assert len(refreshes) == 1


def test_a_miss_while_the_store_is_down_is_answered_from_the_snapshot(store):
    active = ActivePolicies(store, poll_interval=60, listen=False)
    svc = DecisionService(active, set_exists=lambda name: False)

    def down():
        raise RuntimeError("connection refused")
    active.refresh = down
    request = DecisionInput(Subject(claims={}), "read", "document", "d", policy_set="nope")
    with pytest.raises(NotFound):
        svc.decide(caller(), request)
    assert active.last_error == "connection refused"


# --------------------------------------------------------------------------- tokens

def test_a_verified_token_gives_the_claims(policy_set):
    verifier = FakeVerifier({"sub": "alice", "exp": 1})
    out = service(policy_set, verifier=verifier).decide(
        caller(trusted=False), DecisionInput(Subject(token="tok"), "read", "document", "d",
                                             resource_attributes={"owner": "alice"}))
    assert out.decision == "allow" and out.claims == {"sub": "alice", "exp": 1}


def test_a_refused_token_is_a_recorded_deny_that_evaluates_nothing(policy_set):
    sink = RecordingSink()
    verifier = FakeVerifier(error=PdpError("the token has expired", code="token_expired"))
    request = DecisionInput(Subject(token="tok"), "read", "document", "d",
                            resource_attributes={"owner": "alice"})
    out = service(policy_set, verifier=verifier, sink=sink).decide(caller(trusted=False),
                                                                   request)
    assert out.decision == "deny" and out.policies == ()
    assert out.errors == ({"code": "token_expired", "message": "the token has expired"},)
    assert out.token_error == "token_expired" and out.claims == {}
    assert out.subject_source == "token"
    assert len(sink.records) == 1
    recorded = sink.records[0][1]
    assert recorded.subject.token is None and "tok" not in repr(recorded)
    assert (recorded.action, recorded.resource_id) == ("read", "d")


def test_without_a_verifier_every_token_is_refused(policy_set):
    out = service(policy_set).decide(caller(), DecisionInput(Subject(token="t"), "read",
                                                             "document", "d"))
    assert out.decision == "deny" and out.token_error == "unknown_key"


def test_a_crashing_verifier_is_a_deny(policy_set):
    verifier = FakeVerifier(error=None)
    verifier.verify = lambda token: 1 / 0
    out = service(policy_set, verifier=verifier).decide(
        caller(), DecisionInput(Subject(token="t"), "read", "document", "d"))
    assert out.decision == "deny" and out.errors[0]["code"] == "token_invalid"


def test_an_anonymous_subject_has_no_claims(policy_set):
    out = service(policy_set).decide(caller(trusted=False),
                                     DecisionInput(Subject(), "read", "document", "d",
                                                   resource_attributes={"owner": "alice"}))
    assert out.decision == "deny" and out.claims == {} and out.token_error is None
    assert [e["code"] for e in out.errors] == ["missing_attribute"]


# --------------------------------------------------------------------------- failures

def test_evaluation_errors_name_the_policy_and_never_allow(policy_set):
    out = service(policy_set).decide(caller(), DecisionInput(
        Subject(claims={"level": "high"}), "read", "report", "r"))
    assert out.decision == "deny"
    assert [e["policy"] for e in out.errors] == ["level"]
    assert set(out.errors[0]) == {"code", "message", "policy"}


def test_an_engine_that_raises_is_a_deny(policy_set):
    class Exploding:
        def decide(self, request):
            raise RuntimeError("boom")

    svc = DecisionService(FakeActive({"default": (1, Exploding())}))
    out = svc.decide(caller(), DOCS)
    assert out.decision == "deny" and out.errors[0]["code"] == "internal_error"


def test_a_decision_that_cannot_be_recorded_is_not_answered(policy_set):
    class Failing:
        def record(self, outcome, input, caller):
            raise OSError("disk full")

    with pytest.raises(Unavailable) as info:
        service(policy_set, sink=Failing()).decide(caller(), DOCS)
    assert info.value.code == "decision_not_recorded"


# --------------------------------------------------------------------------- batches

def test_a_batch_verifies_once_and_answers_in_order(policy_set):
    sink = RecordingSink()
    verifier = FakeVerifier({"sub": "alice"})
    checks = [Check("read", "document", f"d-{i}", resource_attributes={"owner": owner})
              for i, owner in enumerate(["alice", "bob", "alice"])]
    outs = service(policy_set, verifier=verifier, sink=sink).decide_batch(
        caller(), Subject(token="t"), {"ip": "1.2.3.4"}, checks)
    assert [o.decision for o in outs] == ["allow", "deny", "allow"]
    assert len({o.decision_id for o in outs}) == 3
    assert verifier.calls == 1
    assert [r[1].resource_id for r in sink.records] == ["d-0", "d-1", "d-2"]
    assert all(r[1].subject.token is None for r in sink.records)
    assert all(r[1].context == {"ip": "1.2.3.4"} for r in sink.records)


def test_a_batch_is_refused_whole_before_anything_is_decided(policy_set):
    sink = RecordingSink()
    verifier = FakeVerifier()
    with pytest.raises(Forbidden):
        service(policy_set, sink=sink, verifier=verifier).decide_batch(
            caller(trusted=False), Subject(claims={}), None, [Check("read", "document", "d")])
    assert sink.records == [] and verifier.calls == 0


def test_the_sink_sees_the_request_without_its_token_and_nothing_else_changed():
    import dataclasses

    from pdp.service.decisions import DecisionInput, Subject, _without_token

    request = DecisionInput(Subject(token="secret.jwt.here"), "read", "document", "d-1",
                            {"a": 1}, {"owner": "x"}, {"ip": "1.2.3.4"}, "other")
    assert _without_token(request) == dataclasses.replace(request, subject=Subject())
    plain = DecisionInput(Subject(claims={"sub": "a"}), "read", "document", "d-1")
    assert _without_token(plain) is plain
