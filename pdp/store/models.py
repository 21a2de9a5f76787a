"""The tables of the store, as SQLAlchemy 2 typed models.

``Base.metadata`` names every constraint by convention, so Alembic migrations
(``migrations/versions``) can refer to them by stable names on every backend.

* ``policy_sets`` — a named set and which of its versions is active;
* ``policy_versions`` — immutable, numbered 1, 2, 3 … per set (unique per set),
  with the compiled form, the content hash, who published it and when;
* ``policy_files`` — the sources and reference data of a version, by path;
* ``policy_activations`` — every activation (and rollback), in order;
* ``api_keys`` — callers: the SHA-256 of the key (never the key), roles, an
  optional policy-set restriction, ``trusted_claims``, created/revoked times;
* ``decision_log`` — the decision log (:mod:`pdp.audit`): one row per recorded
  decision (or prune checkpoint), ``seq`` its gapless position in the hash chain;
* ``decision_log_policies`` — (seq, policy id) of each record's determining
  policies, for the policy-id filter;
* ``audit_chain_head`` — one row (``id = 1``): the last chain position and hash;
* ``audit_verifications`` — the outcome of each full verification of the chain
  (``pdp audit verify``, the console), so the console can show its state;
* ``console_sessions`` — signed-in console users: the SHA-256 of the session
  cookie (never the cookie), the key they signed in with, its roles, the CSRF
  token of the session, when it expires.

Every timestamp is stored and returned in UTC (:class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
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


class JSONText(str):
    """JSON already encoded (by :func:`pdp.audit.record.plain_json_text`), to be stored
    as it is in a :class:`PreEncodedJSON` column: the column's bind processor does not
    serialise it again. Anything else given to such a column is serialised as by
    :class:`~sqlalchemy.types.JSON`."""

    __slots__ = ()


def _as_is(text: str) -> str:
    return text


class PreEncodedJSON(TypeDecorator):
    """:class:`~sqlalchemy.types.JSON` (same DDL, same values read back) that also
    takes :class:`JSONText`: the decision log's writer encodes each record's JSON
    once, for its hash, and stores those texts. A JSON value (``dict``, ``list``,
    ``None`` …) is bound exactly as ``JSON`` binds it."""

    impl = JSON
    cache_ok = True
    #: As ``JSON`` (``none_as_null=False``): the ORM binds ``None`` too (JSON ``null``).
    should_evaluate_none = True

    def bind_processor(self, dialect: Dialect):
        inner = super().bind_processor(dialect)      # JSON's, for this dialect
        if inner is None:                            # the driver serialises: decode
            import json

            def decode(value):
                return json.loads(value) if type(value) is JSONText else value

            return decode
        if dialect.name == "sqlite":
            def encoded(text: str):
                return str(text)
        elif dialect.name == "postgresql" and dialect.driver == "psycopg":
            from psycopg.types.json import Json

            def encoded(text: str):
                return Json(str(text), _as_is)
        else:                                        # another driver: decode, bind as JSON
            import json

            def encoded(text: str):
                return inner(json.loads(text))

        def process(value):
            if type(value) is JSONText:
                return encoded(value)
            return inner(value)

        return process


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


# --------------------------------------------------------------------------- decision log

#: ``prev_hash`` of the first record of the chain (and the head of an empty log).
GENESIS_HASH = "0" * 64


class DecisionLogRow(Base):
    """One record of the decision log (see :mod:`pdp.audit.record`).

    ``seq`` is the record's position in the hash chain: assigned by the writer
    under the ``audit_chain_head`` row lock, gapless from 1. ``kind`` is
    ``decision`` or ``checkpoint`` (written by prune; its ``details`` say which
    records were removed, and the decision columns are ``NULL``).
    """

    __tablename__ = "decision_log"
    __table_args__ = (
        CheckConstraint("kind IN ('decision', 'checkpoint')", name="kind"),
        Index("ix_decision_log_time", "time"),
        Index("ix_decision_log_subject_time", "subject", "time"),
        Index("ix_decision_log_caller_time", "caller", "time"),
        Index("ix_decision_log_action_time", "action", "time"),
        Index("ix_decision_log_resource_type_resource_id_time",
              "resource_type", "resource_id", "time"),
        Index("ix_decision_log_resource_id_time", "resource_id", "time"),
        Index("ix_decision_log_decision_time", "decision", "time"),
        Index("ix_decision_log_policy_set_policy_version_time",
              "policy_set", "policy_version", "time"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    #: ``NULL`` for a checkpoint.
    decision_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: UTC, millisecond precision.
    time: Mapped[datetime]
    caller: Mapped[str] = mapped_column(String(128))
    policy_set: Mapped[str | None] = mapped_column(String(128))
    policy_version: Mapped[int | None] = mapped_column(Integer)
    #: The subject's ``sub`` claim (``NULL`` when absent or anonymous).
    subject: Mapped[str | None] = mapped_column(String(512))
    action: Mapped[str | None] = mapped_column(String(256))
    resource_type: Mapped[str | None] = mapped_column(String(256))
    resource_id: Mapped[str | None] = mapped_column(String(1024))
    #: ``allow`` or ``deny``.
    decision: Mapped[str | None] = mapped_column(String(8))
    claims: Mapped[dict | None] = mapped_column(PreEncodedJSON)
    #: Names of the claims whose values were replaced by ``"[redacted]"``.
    redacted: Mapped[list | None] = mapped_column(PreEncodedJSON)
    action_attributes: Mapped[dict | None] = mapped_column(PreEncodedJSON)
    resource_attributes: Mapped[dict | None] = mapped_column(PreEncodedJSON)
    context: Mapped[dict | None] = mapped_column(PreEncodedJSON)
    policies: Mapped[list | None] = mapped_column(PreEncodedJSON)
    reasons: Mapped[list | None] = mapped_column(PreEncodedJSON)
    errors: Mapped[list | None] = mapped_column(PreEncodedJSON)
    evaluation_us: Mapped[int | None] = mapped_column(BigInteger)
    #: A checkpoint's facts (``pruned_through``, ``pruned_hash``, …); ``NULL`` otherwise.
    details: Mapped[dict | None] = mapped_column(PreEncodedJSON)
    #: Hex SHA-256 of the record before (``GENESIS_HASH`` for the first).
    prev_hash: Mapped[str] = mapped_column(String(64))
    #: Hex SHA-256 of ``prev_hash`` + the record's canonical JSON (see :mod:`pdp.audit.chain`).
    hash: Mapped[str] = mapped_column(String(64))


class DecisionLogPolicyRow(Base):
    """A determining policy of a record, for ``policy_id`` queries."""

    __tablename__ = "decision_log_policies"
    __table_args__ = (Index("ix_decision_log_policies_policy_id_seq", "policy_id", "seq"),)

    seq: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("decision_log.seq", ondelete="CASCADE", onupdate="CASCADE"),
        primary_key=True, autoincrement=False)
    policy_id: Mapped[str] = mapped_column(String(256), primary_key=True)


class AuditChainHeadRow(Base):
    """The one row (``id = 1``) that writers lock to append: the last position and hash."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditVerificationRow(Base):
    """One run of :func:`pdp.audit.chain.verify` over the whole chain, as recorded."""

    __tablename__ = "audit_verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    verified_at: Mapped[datetime] = mapped_column(index=True)
    verified_by: Mapped[str] = mapped_column(String(200))
    ok: Mapped[bool] = mapped_column(Boolean)
    #: Records checked, and the chain's last position and hash when verified.
    checked: Mapped[int] = mapped_column(BigInteger)
    head_seq: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    #: When not ``ok``: the kind of breakage, where, and the verifier's words.
    problem: Mapped[str | None] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str | None] = mapped_column(Text)


# --------------------------------------------------------------------------- console

class ConsoleSessionRow(Base):
    """A signed-in console user (see :mod:`pdp.service.sessions`)."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Hex SHA-256 of the session cookie's value.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The API key the user signed in with (by name: names are never reused).
    key_name: Mapped[str] = mapped_column(String(128), index=True)
    roles: Mapped[list[str]] = mapped_column(JSON)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
