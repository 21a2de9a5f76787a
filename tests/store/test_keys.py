"""The key repository, on every backend: keys are random and prefixed, stored only
as a SHA-256, carry validated roles, and authenticate until revoked."""

from __future__ import annotations

import hashlib
from datetime import timezone

import pytest
import sqlalchemy as sa

from pdp.errors import Conflict, NotFound
from pdp.store import keys as repo
from pdp.store.keys import Caller, KeySpecError
from pdp.store.models import utcnow


def _create(store, name="svc", roles=("decide",), **kw):
    with store.write() as session:
        return repo.create_key(session, name=name, roles=roles, created_by="cli:test",
                               now=utcnow(), **kw)


def _authenticate(store, raw):
    with store.read() as session:
        return repo.authenticate(session, raw)


def test_a_new_key_is_random_prefixed_and_urlsafe(store):
    _, first = _create(store, "a")
    _, second = _create(store, "b")
    assert first != second
    assert first.startswith("pdp_") and len(first) >= 4 + 43
    assert set(first[4:]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_only_the_hash_of_a_key_is_stored(store):
    _, raw = _create(store)
    with store.engine.connect() as conn:
        dumped = " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM api_keys"))
                          for v in row)
    assert raw not in dumped
    assert hashlib.sha256(raw.encode()).hexdigest() in dumped


def test_a_key_authenticates_as_its_caller(store):
    info, raw = _create(store, "billing", roles=("decide", "auditor"),
                        policy_sets=["billing", "default"], trusted_claims=True)
    assert info.roles == ("decide", "auditor")
    assert _authenticate(store, raw) == Caller(
        name="billing", roles=frozenset({"decide", "auditor"}),
        policy_sets=frozenset({"billing", "default"}), trusted_claims=True)


def test_a_caller_without_restriction_may_use_every_set(store):
    _, raw = _create(store)
    caller = _authenticate(store, raw)
    assert caller.policy_sets is None and caller.may_use("anything")
    assert caller.has_role("decide") and not caller.has_role("admin")
    assert not caller.trusted_claims


@pytest.mark.parametrize("raw", [None, "", "pdp_", "nope", "pdp_" + "x" * 43, "Bearer x"])
def test_unknown_or_malformed_keys_do_not_authenticate(store, raw):
    _create(store)
    assert _authenticate(store, raw) is None


def test_a_revoked_key_no_longer_authenticates(store):
    _, raw = _create(store)
    with store.write() as session:
        info, changed = repo.revoke_key(session, "svc", now=utcnow())
    assert changed and info.revoked_at is not None
    assert info.revoked_at.tzinfo is not None
    assert _authenticate(store, raw) is None


def test_revoking_twice_reports_it_was_already_revoked(store):
    _create(store)
    with store.write() as session:
        repo.revoke_key(session, "svc", now=utcnow())
    with store.write() as session:
        _, changed = repo.revoke_key(session, "svc", now=utcnow())
    assert not changed


def test_revoking_an_unknown_key_is_not_found(store):
    with pytest.raises(NotFound), store.write() as session:
        repo.revoke_key(session, "ghost", now=utcnow())


def test_key_names_are_unique_even_after_revocation(store):
    _create(store)
    with pytest.raises(Conflict):
        _create(store)
    with store.write() as session:
        repo.revoke_key(session, "svc", now=utcnow())
    with pytest.raises(Conflict):
        _create(store)


@pytest.mark.parametrize("roles", [(), ("root",), ("decide", "superuser")])
def test_only_known_roles_are_accepted(store, roles):
    with pytest.raises(KeySpecError):
        _create(store, roles=roles)


@pytest.mark.parametrize("name", ["", " x", "a b", "x" * 129, "-x"])
def test_key_names_are_validated(store, name):
    with pytest.raises(KeySpecError):
        _create(store, name=name)


def test_an_empty_policy_set_restriction_is_refused(store):
    with pytest.raises(KeySpecError):
        _create(store, policy_sets=[])


def test_listing_shows_no_secret_and_no_hash(store):
    _, raw = _create(store, "a", roles=("admin",))
    _create(store, "b")
    with store.write() as session:
        repo.revoke_key(session, "b", now=utcnow())
    with store.read() as session:
        every = repo.list_keys(session)
        active = repo.list_keys(session, include_revoked=False)
    assert [k.name for k in every] == ["a", "b"]
    assert [k.name for k in active] == ["a"]
    text = repr(every) + repr([k.to_dict() for k in every])
    assert raw not in text and hashlib.sha256(raw.encode()).hexdigest() not in text
    assert every[0].created_at.tzinfo == timezone.utc
    assert every[0].created_by == "cli:test"
