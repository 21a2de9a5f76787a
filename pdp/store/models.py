"""The tables of the store, as SQLAlchemy 2 typed models.

``Base.metadata`` names every constraint by convention, so Alembic migrations
(``migrations/versions``) can refer to them by stable names on every backend.

* ``policy_sets`` — a named set and which of its versions is active;
* ``policy_versions`` — immutable, numbered 1, 2, 3 … per set (unique per set),
  with the compiled form, the content hash, who published it and when;
* ``policy_files`` — the sources and reference data of a version, by path;
* ``policy_activations`` — every activation (and rollback), in order;
* ``api_keys`` — callers: the SHA-256 of the key (never the key), roles, an
  optional policy-set restriction, ``trusted_claims``, created/revoked times.

Every timestamp is stored and returned in UTC (:class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC ``datetime`` in, an aware UTC ``datetime`` out, on every backend.

    SQLite keeps no offset, so values are stored there as naive UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


# --------------------------------------------------------------------------- policies

class PolicySetRow(Base):
    __tablename__ = "policy_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    #: Number of the active version, or ``None`` before the first activation.
    active_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]

    versions: Mapped[list[PolicyVersionRow]] = relationship(
        back_populates="policy_set", order_by="PolicyVersionRow.number",
        passive_deletes=True, lazy="raise")


class PolicyVersionRow(Base):
    __tablename__ = "policy_versions"
    __table_args__ = (
        UniqueConstraint("policy_set_id", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy_set_id: Mapped[int] = mapped_column(
        ForeignKey("policy_sets.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    #: ``sha256:<hex>`` over the sorted (path, content) pairs; see
    #: :func:`pdp.store.policies.content_hash`.
    content_hash: Mapped[str] = mapped_column(String(80))
    #: ``PolicySet.to_bytes()``: what replicas load, without re-parsing.
    compiled: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    #: Sorted ids of the policies in this version.
    policy_ids: Mapped[list[str]] = mapped_column(JSON)
    published_by: Mapped[str] = mapped_column(String(200))
    published_at: Mapped[datetime]

    policy_set: Mapped[PolicySetRow] = relationship(back_populates="versions", lazy="raise")
    files: Mapped[list[PolicyFileRow]] = relationship(
        back_populates="version", order_by="PolicyFileRow.path",
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise")


class PolicyFileRow(Base):
    __tablename__ = "policy_files"
    __table_args__ = (UniqueConstraint("version_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("policy_versions.id", ondelete="CASCADE"))
    #: Relative POSIX path: ``docs.policy``, ``sub/x.policy``, ``data/users.json``.
    path: Mapped[str] = mapped_column(String(1024))
    content: Mapped[str] = mapped_column(Text)

    version: Mapped[PolicyVersionRow] = relationship(back_populates="files", lazy="raise")


class PolicyActivationRow(Base):
    __tablename__ = "policy_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy_set_id: Mapped[int] = mapped_column(
        ForeignKey("policy_sets.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("policy_versions.id", ondelete="CASCADE"))
    activated_by: Mapped[str] = mapped_column(String(200))
    activated_at: Mapped[datetime]


# --------------------------------------------------------------------------- callers

class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Unique for ever: a revoked key's name is not reused, so that the decision
    #: log's caller names stay unambiguous.
    name: Mapped[str] = mapped_column(String(128), unique=True)
    #: Hex SHA-256 of the whole key.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    roles: Mapped[list[str]] = mapped_column(JSON)
    #: Policy sets this key may use; ``None`` means every set.
    policy_sets: Mapped[list[str] | None] = mapped_column(JSON)
    trusted_claims: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
