"""Repository of API keys: the credentials of calling services.

A key is ``pdp_`` followed by 43 URL-safe characters (256 random bits). Only its
SHA-256 is stored: for a key of that entropy a fast hash is right (nothing to
brute-force), and it lets :func:`authenticate` find the key by an indexed lookup.
The digest is still compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pdp.errors import Conflict, NotFound, PdpError
from pdp.store.models import ApiKeyRow
from pdp.store.policies import validate_set_name

#: Every key starts with this, so a leaked key is recognisable (secret scanners).
KEY_PREFIX = "pdp_"
ROLES = ("decide", "admin", "auditor")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")
_KEY_RE = re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]{16,200}")


class KeySpecError(PdpError):
    """A key asked for with a bad name, role or policy-set list."""

    code = "invalid_key_spec"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated calling service, as the HTTP layer sees it."""

    name: str
    roles: frozenset[str]
    #: Sets this caller may use; ``None``: every set.
    policy_sets: frozenset[str] | None = None
    trusted_claims: bool = False

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def may_use(self, policy_set: str) -> bool:
        return self.policy_sets is None or policy_set in self.policy_sets


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about a key: never the key, never its hash."""

    name: str
    roles: tuple[str, ...]
    policy_sets: tuple[str, ...] | None
    trusted_claims: bool
    created_by: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict:
        return {"name": self.name, "roles": list(self.roles),
                "policy_sets": None if self.policy_sets is None else list(self.policy_sets),
                "trusted_claims": self.trusted_claims, "created_by": self.created_by,
                "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise KeySpecError(
            f"invalid key name {name!r}: 1-128 characters, letters, digits and _ . : @ -, "
            "starting with a letter or digit")
    return name


def validate_roles(roles: Iterable[str]) -> tuple[str, ...]:
    roles = tuple(dict.fromkeys(roles))
    if not roles:
        raise KeySpecError(f"a key needs at least one role ({', '.join(ROLES)})")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise KeySpecError(f"unknown role {unknown[0]!r}: roles are {', '.join(ROLES)}",
                        code="invalid_role")
    return tuple(r for r in ROLES if r in roles)


def create_key(session: Session, *, name: str, roles: Iterable[str],
               policy_sets: Iterable[str] | None = None, trusted_claims: bool = False,
               created_by: str, now: datetime) -> tuple[KeyInfo, str]:
    """A new key: its public record and the raw key (to be shown once)."""
    name = validate_name(name)
    roles = validate_roles(roles)
    sets = None
    if policy_sets is not None:
        sets = tuple(sorted({validate_set_name(s) for s in policy_sets}))
        if not sets:
            raise KeySpecError("a policy-set restriction must name at least one set")
    if session.scalars(select(ApiKeyRow.id).where(ApiKeyRow.name == name)).first():
        raise Conflict(f"a key named {name!r} exists (names are never reused, "
                       "even after revocation)", code="key_exists")
    raw = generate_key()
    row = ApiKeyRow(name=name, key_hash=hash_key(raw), roles=list(roles),
                    policy_sets=None if sets is None else list(sets),
                    trusted_claims=bool(trusted_claims), created_by=created_by,
                    created_at=now, revoked_at=None)
    session.add(row)
    session.flush()
    return _info(row), raw


def list_keys(session: Session, *, include_revoked: bool = True) -> list[KeyInfo]:
    stmt = select(ApiKeyRow).order_by(ApiKeyRow.name)
    if not include_revoked:
        stmt = stmt.where(ApiKeyRow.revoked_at.is_(None))
    return [_info(row) for row in session.scalars(stmt)]


def revoke_key(session: Session, name: str, *, now: datetime) -> tuple[KeyInfo, bool]:
    """Revoke the key named ``name``; ``(info, False)`` if it already was."""
    row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.name == name)
                          .with_for_update()).one_or_none()
    if row is None:
        raise NotFound(f"no key named {name!r}", code="key_not_found")
    if row.revoked_at is not None:
        return _info(row), False
    row.revoked_at = now
    session.flush()
    return _info(row), True


def authenticate(session: Session, raw_key: str | None) -> Caller | None:
    """The caller holding ``raw_key``, or ``None`` when it is malformed, unknown or
    revoked (the three are indistinguishable to the caller)."""
    if not raw_key or not isinstance(raw_key, str) or not _KEY_RE.fullmatch(raw_key):
        return None
    digest = hash_key(raw_key)
    row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.key_hash == digest)).one_or_none()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    if row.revoked_at is not None:
        return None
    return Caller(name=row.name, roles=frozenset(row.roles),
                  policy_sets=None if row.policy_sets is None else frozenset(row.policy_sets),
                  trusted_claims=row.trusted_claims)


def _info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(name=row.name, roles=tuple(row.roles),
                   policy_sets=None if row.policy_sets is None else tuple(row.policy_sets),
                   trusted_claims=row.trusted_claims, created_by=row.created_by,
                   created_at=row.created_at, revoked_at=row.revoked_at)
