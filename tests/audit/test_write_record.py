"""The record: what a decision leaves in the log, and what it must never hold."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import jwt

from pdp.audit.record import REDACTED, AuditRecord, build_record, canonical_json, redact_claims
from pdp.service.decisions import DecisionInput, DecisionService, Subject
from pdp.store.keys import Caller

SECRET = "s" * 40


class _Active:
    def find(self, name):
        return 3, _Policies()


class _Policies:
    def decide(self, request):
        class D:
            decision = "allow"
            policies = ["p-1"]
            reasons = ["because"]
            errors = []
        return D()


class _Verifier:
    def verify(self, token):
        return jwt.decode(token, SECRET, algorithms=["HS256"])


class _Capture:
    def __init__(self):
        self.seen = []

    def record(self, outcome, input, caller):
        self.seen.append((outcome, input, caller))


def _caller():
    return Caller(name="svc-a", roles=frozenset({"decide"}), policy_sets=None,
                  trusted_claims=True)


def _decide(subject, **kw):
    sink = _Capture()
    service = DecisionService(_Active(), _Verifier(), sink,
                              clock=lambda: datetime(2026, 11, 29, 12, 0, 0, 123456,
                                                     tzinfo=timezone.utc))
    service.decide(_caller(), DecisionInput(subject=subject, action="read",
                                            resource_type="document", resource_id="d-1",
                                            action_attributes={"mode": "fast"},
                                            resource_attributes={"owner": "alice"},
                                            context={"ip": "10.0.0.1"}, **kw))
    return sink.seen[0]


def test_a_record_holds_the_decision_and_never_the_token_or_its_signature():
    token = jwt.encode({"sub": "alice", "email": "a@example.com", "exp": 4102444800},
                       SECRET, algorithm="HS256")
    outcome, input, _ = _decide(Subject(token=token))
    record = build_record(outcome, input)
    raw = record.to_json().decode()
    assert token not in raw
    for part in token.split("."):
        assert part not in raw                 # neither header, payload nor signature
    data = json.loads(raw)
    assert data["subject"] == "alice"
    assert data["claims"] == {"sub": "alice", "email": "a@example.com", "exp": 4102444800}
    assert data["time"] == "2026-11-29T12:00:00.123Z"
    assert data["caller"] == "svc-a"
    assert (data["policy_set"], data["policy_version"]) == ("default", 3)
    assert (data["action"], data["action_attributes"]) == ("read", {"mode": "fast"})
    assert (data["resource_type"], data["resource_id"]) == ("document", "d-1")
    assert data["resource_attributes"] == {"owner": "alice"}
    assert data["context"]["ip"] == "10.0.0.1"
    assert data["context"]["caller"] == "svc-a"
    assert data["context"]["time"].startswith("2026-11-29T12:00:00")
    assert (data["decision"], data["policies"], data["reasons"]) == ("allow", ["p-1"],
                                                                      ["because"])
    assert data["errors"] == [] and data["redacted"] == []
    assert isinstance(data["evaluation_us"], int)
    assert record.time == datetime(2026, 11, 29, 12, 0, 0, 123000, tzinfo=timezone.utc)


def test_named_claims_are_redacted_and_listed():
    outcome, input, _ = _decide(Subject(claims={"sub": "bob", "email": "b@x", "phone": "1",
                                                "address": {"email": "c@x", "city": "P"}}))
    record = build_record(outcome, input, redact=["email", "phone", "address.email", "nope"])
    assert record.claims == {"sub": "bob", "email": REDACTED, "phone": REDACTED,
                             "address": {"email": REDACTED, "city": "P"}}
    assert record.redacted == ["address.email", "email", "phone"]
    raw = record.to_json().decode()
    assert "b@x" not in raw and "c@x" not in raw
    assert outcome.claims["email"] == "b@x"          # the outcome itself is untouched


def test_redacting_sub_hides_the_subject_too():
    claims, done = redact_claims({"sub": "carol"}, ["sub"])
    assert claims == {"sub": REDACTED} and done == ["sub"]


def test_a_refused_token_is_recorded_without_claims():
    outcome, input, _ = _decide(Subject(token="not.a.token"))
    record = build_record(outcome, input)
    assert record.decision == "deny" and record.claims == {} and record.subject is None
    assert record.errors and "not.a.token" not in record.to_json().decode()


def test_canonical_json_is_sorted_compact_utf8_and_refuses_nan():
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
    assert canonical_json({"x": math.nan}) == b'{"x":"nan"}'


def test_a_record_round_trips_through_json():
    outcome, input, _ = _decide(Subject(claims={"sub": "dave"}))
    record = build_record(outcome, input)
    again = AuditRecord.from_json(record.to_json())
    assert again == record


def test_record_times_are_rfc3339_utc_milliseconds_for_any_instant():
    """format_time formats a second's date and time once and reuses it: the text is
    still exactly isoformat's, before and after 1970, in any zone, second after
    second, and _ms truncates (never rounds) to the millisecond."""
    import random
    from datetime import timedelta

    from pdp.audit.record import _ms, format_time

    def reference(value):
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds")[:23] + "Z"

    rng = random.Random(5)
    start = datetime(1, 1, 1, tzinfo=timezone.utc)
    values = [start + timedelta(microseconds=rng.randrange(315537897599999999))
              for _ in range(20000)]
    t = datetime(2026, 11, 29, 23, 59, 58, 999999, tzinfo=timezone.utc)
    values += [t + timedelta(microseconds=250 * i) for i in range(20000)]
    values += [datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=timezone.utc),
               datetime(1970, 1, 1, tzinfo=timezone.utc),
               datetime(2026, 3, 29, 3, 0, 0, 1000, tzinfo=timezone(timedelta(hours=2)))]
    for value in values:
        assert format_time(value) == reference(value), value
        truncated = _ms(value)
        assert truncated.tzinfo is timezone.utc
        assert truncated == value.replace(microsecond=value.microsecond // 1000 * 1000)
