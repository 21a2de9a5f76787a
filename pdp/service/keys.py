"""Use cases for API keys: create (the key is returned once), list, revoke, and
authenticate a presented key (for the HTTP layer)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pdp.store import keys as repo
from pdp.store.db import Database
from pdp.store.keys import KEY_PREFIX, ROLES, Caller, KeyInfo, KeySpecError
from pdp.store.models import utcnow

__all__ = ["KEY_PREFIX", "ROLES", "Caller", "KeyInfo", "KeySpecError", "NewKey",
           "authenticate", "create_key", "list_keys", "revoke_key"]


@dataclass(frozen=True, slots=True)
class NewKey:
    info: KeyInfo
    #: The key itself: shown to the operator once, never stored.
    secret: str

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"NewKey(info={self.info!r}, secret='{KEY_PREFIX}…')"


def create_key(db: Database, *, name: str, roles: Iterable[str],
               policy_sets: Iterable[str] | None = None, trusted_claims: bool = False,
               created_by: str) -> NewKey:
    with db.write() as session:
        info, secret = repo.create_key(session, name=name, roles=roles,
                                       policy_sets=policy_sets, trusted_claims=trusted_claims,
                                       created_by=created_by, now=utcnow())
    return NewKey(info, secret)


def list_keys(db: Database, *, include_revoked: bool = True) -> list[KeyInfo]:
    with db.read() as session:
        return repo.list_keys(session, include_revoked=include_revoked)


def revoke_key(db: Database, name: str) -> tuple[KeyInfo, bool]:
    """Revoke the key ``name``: ``(info, True)``, or ``(info, False)`` when it
    already was; :class:`~pdp.errors.NotFound` when there is no such key."""
    with db.write() as session:
        return repo.revoke_key(session, name, now=utcnow())


def authenticate(db: Database, raw_key: str | None) -> Caller | None:
    """The caller presenting ``raw_key``; ``None`` for a missing, malformed,
    unknown or revoked key."""
    if not raw_key:
        return None
    with db.read() as session:
        return repo.authenticate(session, raw_key)
