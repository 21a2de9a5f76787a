"""Repository of policy sets, their versions and activations.

Plain functions over a :class:`~sqlalchemy.orm.Session` that the caller (a use case
in :mod:`pdp.service.policies`) opens and commits; SQL only through SQLAlchemy
with bound parameters. They return frozen records (:class:`VersionInfo` …), never
ORM rows, so nothing lazy escapes a session.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, undefer

from pdp.errors import PdpError
from pdp.store.models import (
    PolicyActivationRow,
    PolicyFileRow,
    PolicySetRow,
    PolicyVersionRow,
)

#: A policy-set name: it appears in URLs (``/v1/policy-sets/{set}``).
SET_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

#: PostgreSQL channel on which activations are announced (payload: JSON
#: ``{"policy_set": name, "version": n}``).
ACTIVATION_CHANNEL = "pdp_policy_activated"


# --------------------------------------------------------------------------- records

@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One version of a policy set, without its sources or compiled form."""

    policy_set: str
    number: int
    content_hash: str
    policy_ids: tuple[str, ...]
    published_by: str
    published_at: datetime
    active: bool = False

    def to_dict(self) -> dict:
        return {"policy_set": self.policy_set, "version": self.number,
                "content_hash": self.content_hash, "policies": list(self.policy_ids),
                "published_by": self.published_by,
                "published_at": self.published_at.isoformat(), "active": self.active}


@dataclass(frozen=True, slots=True)
class PolicySetInfo:
    name: str
    active_version: int | None
    latest_version: int | None
    created_at: datetime

    def to_dict(self) -> dict:
        return {"name": self.name, "active_version": self.active_version,
                "latest_version": self.latest_version,
                "created_at": self.created_at.isoformat()}


@dataclass(frozen=True, slots=True)
class ActivationInfo:
    policy_set: str
    number: int
    activated_by: str
    activated_at: datetime

    def to_dict(self) -> dict:
        return {"policy_set": self.policy_set, "version": self.number,
                "activated_by": self.activated_by,
                "activated_at": self.activated_at.isoformat()}


@dataclass(frozen=True, slots=True)
class ActiveCompiled:
    """What a replica needs to serve a set: the active number and its compiled form."""

    policy_set: str
    number: int
    compiled: bytes
    files: Mapping[str, str] | None = field(default=None, repr=False)


def validate_set_name(name: str) -> str:
    if not isinstance(name, str) or not SET_NAME_RE.fullmatch(name):
        raise PdpError(f"invalid policy set name {name!r}: 1-128 letters, digits and _ . -, "
                       "starting with a letter or digit", code="invalid_policy_set_name")
    return name


# --------------------------------------------------------------------------- hashing

def content_hash(files: Mapping[str, str]) -> str:
    """``sha256:<hex>`` over the (path, content) pairs sorted by path.

    Canonical: each path and each content is UTF-8, prefixed by its byte length
    and a colon, so no two different file sets hash alike and order never matters.
    """
    h = hashlib.sha256()
    for path in sorted(files):
        for part in (path, files[path]):
            data = part.encode("utf-8")
            h.update(b"%d:" % len(data))
            h.update(data)
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------- sets

def find_set(session: Session, name: str, *, for_update: bool = False) -> PolicySetRow | None:
    stmt = select(PolicySetRow).where(PolicySetRow.name == name)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def lock_set(session: Session, name: str, *, now: datetime) -> PolicySetRow:
    """The set named ``name`` (created if new), locked for this transaction.

    The row lock (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite write transactions
    already hold the database lock) serialises publishers and activators of one set.
    Two transactions creating the same new set race on the unique name: the loser
    rolls back its savepoint and locks the winner's row.
    """
    stmt = select(PolicySetRow).where(PolicySetRow.name == name).with_for_update()
    row = session.scalars(stmt).one_or_none()
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(PolicySetRow(name=name, active_version=None, created_at=now))
    except IntegrityError:
        pass
    return session.scalars(stmt.execution_options(populate_existing=True)).one()


def list_sets(session: Session) -> list[PolicySetInfo]:
    latest = (select(PolicyVersionRow.policy_set_id,
                     func.max(PolicyVersionRow.number).label("latest"))
              .group_by(PolicyVersionRow.policy_set_id).subquery())
    rows = session.execute(
        select(PolicySetRow, latest.c.latest)
        .outerjoin(latest, latest.c.policy_set_id == PolicySetRow.id)
        .order_by(PolicySetRow.name)).all()
    return [PolicySetInfo(s.name, s.active_version, n, s.created_at) for s, n in rows]


# --------------------------------------------------------------------------- versions

def latest_version(session: Session, policy_set: PolicySetRow) -> PolicyVersionRow | None:
    return session.scalars(
        select(PolicyVersionRow).where(PolicyVersionRow.policy_set_id == policy_set.id)
        .order_by(PolicyVersionRow.number.desc()).limit(1)).one_or_none()


def find_version(session: Session, set_name: str, number: int, *,
                 with_compiled: bool = False) -> PolicyVersionRow | None:
    stmt = (select(PolicyVersionRow).join(PolicySetRow)
            .where(PolicySetRow.name == set_name, PolicyVersionRow.number == number))
    if with_compiled:
        stmt = stmt.options(undefer(PolicyVersionRow.compiled))
    return session.scalars(stmt).one_or_none()


def add_version(session: Session, policy_set: PolicySetRow, *, number: int,
                files: Mapping[str, str], compiled: bytes, content_hash: str,
                policy_ids: list[str], published_by: str,
                published_at: datetime) -> PolicyVersionRow:
    row = PolicyVersionRow(
        policy_set_id=policy_set.id, number=number, content_hash=content_hash,
        compiled=compiled, policy_ids=sorted(policy_ids), published_by=published_by,
        published_at=published_at,
        files=[PolicyFileRow(path=p, content=files[p]) for p in sorted(files)])
    session.add(row)
    session.flush()
    return row


def list_versions(session: Session, policy_set: PolicySetRow) -> list[PolicyVersionRow]:
    return list(session.scalars(
        select(PolicyVersionRow).where(PolicyVersionRow.policy_set_id == policy_set.id)
        .order_by(PolicyVersionRow.number)))


def files_of(session: Session, version: PolicyVersionRow) -> dict[str, str]:
    rows = session.execute(
        select(PolicyFileRow.path, PolicyFileRow.content)
        .where(PolicyFileRow.version_id == version.id).order_by(PolicyFileRow.path))
    return {path: content for path, content in rows}


def version_info(policy_set: PolicySetRow, version: PolicyVersionRow) -> VersionInfo:
    return VersionInfo(
        policy_set=policy_set.name, number=version.number,
        content_hash=version.content_hash, policy_ids=tuple(version.policy_ids),
        published_by=version.published_by, published_at=version.published_at,
        active=policy_set.active_version == version.number)


# --------------------------------------------------------------------------- activation

def set_active(session: Session, policy_set: PolicySetRow, version: PolicyVersionRow, *,
               activated_by: str, now: datetime) -> None:
    """Make ``version`` the active one of ``policy_set`` (locked by the caller),
    record the activation and, on PostgreSQL, announce it on commit."""
    policy_set.active_version = version.number
    session.add(PolicyActivationRow(policy_set_id=policy_set.id, version_id=version.id,
                                    activated_by=activated_by, activated_at=now))
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        payload = json.dumps({"policy_set": policy_set.name, "version": version.number})
        session.execute(select(func.pg_notify(ACTIVATION_CHANNEL, payload)))


def list_activations(session: Session, policy_set: PolicySetRow) -> list[ActivationInfo]:
    rows = session.execute(
        select(PolicyVersionRow.number, PolicyActivationRow.activated_by,
               PolicyActivationRow.activated_at)
        .join(PolicyVersionRow, PolicyVersionRow.id == PolicyActivationRow.version_id)
        .where(PolicyActivationRow.policy_set_id == policy_set.id)
        .order_by(PolicyActivationRow.id))
    return [ActivationInfo(policy_set.name, n, by, at) for n, by, at in rows]


def active_numbers(session: Session) -> dict[str, int]:
    """``{set name: active version number}`` for every set with an active version:
    the cheap query a replica polls."""
    rows = session.execute(select(PolicySetRow.name, PolicySetRow.active_version)
                           .where(PolicySetRow.active_version.is_not(None)))
    return {name: number for name, number in rows}


def active_compiled(session: Session, names: list[str]) -> list[ActiveCompiled]:
    """The active version of each named set with its compiled form, read in one
    statement so the number and the bytes always belong together."""
    if not names:
        return []
    rows = session.execute(
        select(PolicySetRow.name, PolicyVersionRow.number, PolicyVersionRow.compiled)
        .join(PolicyVersionRow, (PolicyVersionRow.policy_set_id == PolicySetRow.id)
              & (PolicyVersionRow.number == PolicySetRow.active_version))
        .where(PolicySetRow.name.in_(names)))
    return [ActiveCompiled(name, number, bytes(compiled)) for name, number, compiled in rows]
