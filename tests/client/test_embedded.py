"""EmbeddedDecider: deciding in-process, from a directory or from the store,
with and without the decision log."""

from __future__ import annotations

import pytest

from pdp import load_policy_dir
from pdp.api.tokens import TokenVerifier
from pdp.audit.queries import get_decision
from pdp.client import Decision, EmbeddedDecider, PdpUnavailable
from pdp.service import policies
from pdp.store.db import Database
from tests.client.support import EXAMPLE, SECRET, document, policy_files, token


def test_from_a_directory_without_a_store():
    with EmbeddedDecider(policy_dir=EXAMPLE / "policies") as decider:
        d = decider.decide("read", document(owner="alice"), claims={"sub": "alice"})
        assert isinstance(d, Decision) and d.allowed and d.decision_id
        assert d.policies == ("doc-owner-read",) and d.policy_version == 0
        d = decider.decide("update", document(owner="alice", archived=True),
                           claims={"sub": "alice"})
        assert d.decision == "deny" and d.reasons == ("archived documents are read-only",)
        assert decider.allowed("read", document(owner="bob"), claims={"sub": "alice"}) is False
        got = decider.decide_batch([("read", document()), ("delete", document(owner="bob"))],
                                   claims={"sub": "alice"})
        assert [x.decision for x in got] == ["allow", "deny"]
        # No verifier: a token is refused, never trusted.
        d = decider.decide("read", document(), token=token("alice"))
        assert d.decision == "deny" and d.token_error == "unknown_key"


def test_tokens_are_verified_when_a_verifier_is_configured():
    policy_set = load_policy_dir(EXAMPLE / "policies")
    decider = EmbeddedDecider(policy_set, verifier=TokenVerifier(hs_secret=SECRET))
    assert decider.decide("read", document(owner="alice"), token=token("alice")).allowed
    expired = decider.decide("read", document(owner="alice"),
                             token=token("alice", expires_in=-600))
    assert expired.decision == "deny" and expired.token_error == "token_expired"


def test_an_unknown_set_fails_closed_or_raises():
    decider = EmbeddedDecider(policy_dir=EXAMPLE / "policies")
    d = decider.decide("read", document(), claims={"sub": "alice"}, policy_set="other")
    assert d.decision == "deny" and d.decision_id is None
    assert d.errors[0]["code"] == "policy_set_not_found"
    with pytest.raises(PdpUnavailable):
        decider.decide("read", document(), claims={"sub": "alice"}, policy_set="other",
                       raise_on_error=True)
    with pytest.raises(TypeError):
        decider.decide("read", document())
    with pytest.raises(TypeError):
        EmbeddedDecider()


def test_from_the_store_every_decision_is_in_the_decision_log(store: Database, tmp_path):
    policies.publish(store, policy_files(), published_by="tests", activate=True)
    with EmbeddedDecider(store=store, caller="documents-service",
                         spill_dir=tmp_path / "spill") as decider:
        allow = decider.decide("read", document("d-7", owner="alice"), claims={"sub": "alice"},
                               context={"ip": "10.0.0.1"})
        deny = decider.decide("update", document("d-8", owner="alice", archived=True),
                              claims={"sub": "alice"})
        assert allow.allowed and allow.policy_version == 1 and not deny.allowed
        assert decider.flush()
    record = get_decision(store, allow.decision_id)
    assert record["decision"] == "allow" and record["caller"] == "documents-service"
    assert record["resource_id"] == "d-7" and record["subject"] == "alice"
    assert record["policies"] == ["doc-owner-read"]
    denied = get_decision(store, deny.decision_id)
    assert denied["decision"] == "deny"
    assert denied["reasons"] == ["archived documents are read-only"]


def test_a_directory_with_a_store_records_too(store: Database, tmp_path):
    with EmbeddedDecider(policy_dir=EXAMPLE / "policies", store=store,
                         audit_mode="durable", spill_dir=tmp_path / "spill") as decider:
        d = decider.decide("read", document(owner="alice"), claims={"sub": "alice"})
        # durable: recorded before it was answered
        assert get_decision(store, d.decision_id)["policy_version"] == 0


def test_audit_off_records_nothing(store: Database):
    from pdp.errors import NotFound
    with EmbeddedDecider(policy_dir=EXAMPLE / "policies", store=store,
                         audit_mode="off") as decider:
        d = decider.decide("read", document(owner="alice"), claims={"sub": "alice"})
    with pytest.raises(NotFound):
        get_decision(store, d.decision_id)
