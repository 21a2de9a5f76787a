"""``canonical_json`` encodes values that are already plain JSON without copying
them first; the bytes (and so every hash of the chain) are exactly those of the
general path, for plain and non-plain values alike."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from datetime import datetime, timezone

from pdp.audit.record import _is_plain, _plain, canonical_json
from pdp.lang.values import Timestamp


def reference(value) -> bytes:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


class Text(str):
    pass


class Number(int):
    pass


ODD = [
    {1: "a", 2: "b", 10: "c"},                 # int keys sort as text
    {True: 1, None: 2},                        # keys json would spell true / null
    {"a": (1, 2)},                             # tuples
    {"a": math.nan}, {"a": [math.inf]}, -math.inf,
    {"t": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)},
    {"t": datetime(2026, 1, 2)},
    {"ts": Timestamp(1_700_000_000_000_000)},
    {"s": Text("x")}, {"n": Number(3)}, {Text("k"): 1},
    {"set": {1, 2}}, {"b": b"bytes"},
    {"nested": {"a": [{"b": {1: 2}}]}},
]
PLAIN = [
    None, True, 0, -1, 2 ** 70, 1.5, "é ☃ \u2028", [], {}, [1, "a", None, [2.5]],
    {"b": 1, "a": {"d": [1, {"z": None}], "c": "x"}},
    {"sub": "alice", "roles": ["viewer"], "department": "engineering", "exp": 1.7e9},
]


def test_plain_values_are_recognised():
    for value in PLAIN:
        assert _is_plain(value), value
    for value in ODD:
        assert not _is_plain(value), value


def test_the_bytes_are_those_of_the_general_path():
    for value in PLAIN + ODD:
        assert canonical_json(value) == reference(value), value


def test_random_values_give_the_same_bytes():
    rng = random.Random(11)
    leaves = [None, True, False, 0, 7, -3, 1.25, 1e300, "x", "ü", "", math.nan, (1,),
              Number(2), Text("t"), datetime(2020, 1, 1, tzinfo=timezone.utc)]

    def make(depth):
        kind = rng.random()
        if depth > 3 or kind < 0.4:
            return rng.choice(leaves)
        if kind < 0.7:
            return [make(depth + 1) for _ in range(rng.randint(0, 4))]
        keys = ["a", "b", "c", "10", "2"] + ([1, 2] if rng.random() < 0.1 else [])
        out = {}
        for _ in range(rng.randint(0, 4)):
            out[rng.choice(keys)] = make(depth + 1)
        return out

    for _ in range(3000):
        value = make(0)
        try:
            expected = reference(value)
        except (TypeError, ValueError) as exc:   # mixed key types: both refuse
            expected = type(exc)
        try:
            got = canonical_json(value)
        except (TypeError, ValueError) as exc:
            got = type(exc)
        assert got == expected, value


def _outcome_and_input(**changes):
    from pdp.service.decisions import DecisionInput, DecisionOutcome, Subject

    now = datetime(2026, 11, 29, 13, 0, 0, 123456, tzinfo=timezone.utc)
    outcome = DecisionOutcome(
        decision_id="0190a8f0-0000-7000-8000-000000000001", decision="allow",
        policy_set="default", policy_version=3, policies=("p-1", "p-2"), reasons=("r",),
        errors=({"code": "e", "message": "m", "policy": "p-3"},),
        claims={"sub": "alice", "roles": ["viewer"], "email": "a@x", "n": {"b": 1, "a": 2}},
        context={"ip": "10.0.0.1", "time": "2026-11-29T13:00:00.123456Z", "caller": "svc"},
        evaluation_us=17, time=now, caller="svc")
    input = DecisionInput(Subject(), "read", "document", "d-1", {"z": 1, "a": [1, 2]},
                          {"owner": "bob", "tags": ["x"]}, {"ip": "10.0.0.1"})
    for name, value in changes.items():
        if hasattr(outcome, name):
            outcome = dataclasses.replace(outcome, **{name: value})
        else:
            input = dataclasses.replace(input, **{name: value})
    return outcome, input


def test_a_built_record_gives_the_same_dict_without_the_round_trip():
    from pdp.audit.record import build_record

    cases = [{}, {"context": {"t": datetime(2020, 1, 1, tzinfo=timezone.utc), "x": (1, 2)}},
             {"claims": {"sub": 7, "f": math.nan}}, {"action": Text("read")},
             {"policies": (Text("p"),)}, {"resource_attributes": None}]
    for changes in cases:
        outcome, input = _outcome_and_input(**changes)
        record = build_record(outcome, input, redact=["email"])
        slow = dataclasses.replace(record)               # the flag is not carried over
        assert not slow.plain_json
        fast_dict, slow_dict = record.to_dict(), slow.to_dict()
        assert fast_dict == slow_dict
        assert json.dumps(fast_dict) == json.dumps(slow_dict)      # key order too
        assert record.to_json() == slow.to_json()
        assert record == slow
    assert build_record(*_outcome_and_input()).plain_json
    assert not build_record(*_outcome_and_input(action=Text("read"))).plain_json


def test_an_encoded_record_is_the_built_record_encoded():
    """What the writer queues (:func:`encode_record`, no :class:`AuditRecord` built
    first) has the bytes, values and policies of :func:`build_record`'s record, for
    plain values and for those that must be converted first."""
    from types import MappingProxyType

    from pdp.audit.record import EncodedRecord, build_record, encode_record

    cases = [{}, {"context": {"t": datetime(2020, 1, 1, tzinfo=timezone.utc), "x": (1, 2)}},
             {"claims": {"sub": 7, "f": math.nan}}, {"claims": {1: "a", 10: "b", 2: "c"}},
             {"claims": {}}, {"claims": {"sub": True}}, {"claims": {"sub": "x" * 600}},
             {"action": Text("read")}, {"policies": (Text("p"), "p", "q")},
             {"resource_attributes": None}, {"resource_attributes": {}},
             {"action_attributes": MappingProxyType({"b": 1, "a": Number(2)})},
             {"errors": (MappingProxyType({"code": "e"}),)},
             {"claims": {"sub": "a", "email": "x", "address": {"email": "y", "city": "z"}}},
             {"reasons": ()}, {"evaluation_us": 0}]
    for changes in cases:
        for redact in ([], ["email", "address.email", "sub"]):
            outcome, input = _outcome_and_input(**changes)
            built = build_record(outcome, input, redact=redact)
            encoded = encode_record(outcome, input, redact=redact)
            assert encoded.to_json() == built.to_json(), changes
            assert encoded == EncodedRecord.from_record(built), changes
            assert encoded.to_record() == built, changes
            assert encoded.policies == tuple(built.policies)


def test_text_limits_are_the_columns_lengths_and_longer_text_is_cut():
    """What reaches a record longer than its column holds (PostgreSQL refuses it;
    the service refuses such requests, a library caller might not) is cut to the
    column's length, ending in "…", and hashed as stored."""
    from pdp.audit.record import TEXT_LIMITS, encode_record
    from pdp.store.models import DecisionLogRow

    columns = DecisionLogRow.__table__.c
    assert TEXT_LIMITS == {name: columns[name].type.length for name in TEXT_LIMITS}
    outcome, input = _outcome_and_input(resource_id="x" * 5000, action="a" * 300)
    stored = encode_record(outcome, input).columns()
    assert stored["resource_id"] == "x" * 1023 + "…" and stored["action"] == "a" * 255 + "…"


def test_a_record_with_over_long_text_is_stored_and_verifies_on_every_store(store):
    from pdp.audit import chain
    from pdp.audit.record import encode_record

    outcome, input = _outcome_and_input(resource_id="x" * 5000, resource_type="t" * 300,
                                        claims={"sub": "s" * 900})
    assert chain.append(store, [encode_record(outcome, input)]).inserted == 1
    assert chain.verify(store).ok
