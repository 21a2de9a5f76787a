"""Recorded verifications of the hash chain (table ``audit_verifications``).

Every full run of :func:`pdp.audit.chain.verify` made by ``pdp audit verify`` or
the console's "verify now" is kept as one row: when, by whom, whether the chain
held, how many records were checked, the head (position and hash) the run saw,
and — when broken — the kind of problem, its position and the verifier's words.
The console shows the newest row as the chain's state: a verification that
succeeded vouches for the records up to its ``head_seq``; records appended since
are not yet verified.

Only the newest :data:`KEEP` rows are kept (older ones are deleted when a new
one is recorded). Verifications from a given position (``verify --from``) vouch
for part of the chain only and are not recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from pdp.audit import chain
from pdp.audit.chain import VerifyResult
from pdp.store.db import Database
from pdp.store.models import AuditVerificationRow, utcnow

__all__ = ["KEEP", "Verification", "last_verification", "record", "verify_and_record"]

#: Rows kept in ``audit_verifications``.
KEEP = 1000
#: Longest ``verified_by`` stored.
BY_MAX = 200


@dataclass(frozen=True, slots=True)
class Verification:
    """One recorded verification (a row of ``audit_verifications``)."""

    id: int
    verified_at: datetime
    verified_by: str
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    problem: str | None
    seq: int | None
    message: str | None

    @classmethod
    def of(cls, row: AuditVerificationRow) -> Verification:
        return cls(id=row.id, verified_at=row.verified_at, verified_by=row.verified_by,
                   ok=bool(row.ok), checked=int(row.checked), head_seq=int(row.head_seq),
                   head_hash=row.head_hash, problem=row.problem,
                   seq=int(row.seq) if row.seq is not None else None, message=row.message)


def record(db: Database, result: VerifyResult, *, by: str,
           keep: int = KEEP) -> Verification:
    """Store ``result`` (a verification of the whole chain) as done by ``by`` now,
    and delete all but the newest ``keep`` rows."""
    row = AuditVerificationRow(
        verified_at=utcnow(), verified_by=(by or "unknown")[:BY_MAX], ok=result.ok,
        checked=result.checked, head_seq=result.head_seq, head_hash=result.head_hash or "",
        problem=None if result.ok else result.problem,
        seq=None if result.ok else result.seq, message=result.message)
    with db.write() as session:
        session.add(row)
        session.flush()
        recorded = Verification.of(row)
        oldest_kept = session.scalars(
            select(AuditVerificationRow.id).order_by(AuditVerificationRow.id.desc())
            .offset(max(keep, 1) - 1).limit(1)).one_or_none()
        if oldest_kept is not None:
            session.execute(delete(AuditVerificationRow)
                            .where(AuditVerificationRow.id < oldest_kept))
    return recorded


def verify_and_record(db: Database, *, by: str,
                      page_size: int = 1000) -> tuple[VerifyResult, Verification]:
    """Verify the whole chain (:func:`pdp.audit.chain.verify`) and record the outcome."""
    result = chain.verify(db, page_size=page_size)
    return result, record(db, result, by=by)


def last_verification(db: Database) -> Verification | None:
    """The newest recorded verification, or ``None`` when the chain was never verified."""
    with db.read() as session:
        row = session.scalars(
            select(AuditVerificationRow)
            .order_by(AuditVerificationRow.verified_at.desc(), AuditVerificationRow.id.desc())
            .limit(1)).one_or_none()
        return Verification.of(row) if row is not None else None
