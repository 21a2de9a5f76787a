"""Retention: removing old records while the chain stays verifiable.

:func:`prune` runs in one write transaction that holds the chain's head lock
(``SELECT … FOR UPDATE`` on ``audit_chain_head`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite), so no writer appends meanwhile:

1. it finds the longest *prefix* of the chain whose records are all older than
   ``before``: positions ``first … pruned_through``. The chain can only lose a
   prefix and stay verifiable, so a record older than ``before`` that comes after a
   newer one (a record replayed late from a spill file) is kept until the records
   before it go too;
2. it appends a checkpoint record through the write side's
   :func:`pdp.audit.chain.append_checkpoint`, which records ``pruned_through`` and
   the hash of that last pruned record (plus ``before``, the first pruned position
   and the count, in its ``details``);
3. it deletes those records (their ``decision_log_policies`` rows first).

:func:`pdp.audit.chain.verify` then starts at the first remaining record and checks
that it links to the checkpoint's ``pruned_hash``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, func, select

from pdp.audit import chain
from pdp.audit.record import format_time
from pdp.errors import RequestError
from pdp.store.db import Database
from pdp.store.models import AuditChainHeadRow, DecisionLogPolicyRow, DecisionLogRow


@dataclass(frozen=True, slots=True)
class PruneResult:
    before: datetime
    #: Records removed (decisions and older checkpoints), and their positions.
    removed: int
    first_seq: int | None
    last_seq: int | None
    #: The position of the checkpoint written (``None`` when nothing was removed).
    checkpoint_seq: int | None

    def describe(self) -> str:
        if not self.removed:
            return f"nothing to prune before {format_time(self.before)}"
        return (f"pruned {self.removed} record(s) before {format_time(self.before)} "
                f"(positions {self.first_seq} to {self.last_seq}); checkpoint at "
                f"{self.checkpoint_seq}")


def plan(db: Database, before: datetime) -> tuple[int, int | None, int | None]:
    """What :func:`prune` would remove now: ``(count, first seq, last seq)``."""
    before = _aware(before)
    with db.read() as session:
        return _prefix(session, before)


def prune(db: Database, before: datetime, *, by: str = "pdp audit prune") -> PruneResult:
    """Remove the records older than ``before`` (see the module docstring)."""
    before = _aware(before)
    with db.write() as session:
        lock = select(AuditChainHeadRow).where(AuditChainHeadRow.id == 1)
        if db.is_postgresql:
            lock = lock.with_for_update()
        session.execute(lock)
        removed, first, last = _prefix(session, before)
        if not removed:
            return PruneResult(before, 0, None, None, None)
        checkpoint = chain.append_checkpoint(
            db, last, by=by, session=session,
            details={"before": format_time(before), "pruned_from": first,
                     "pruned": removed})
        for table in (DecisionLogPolicyRow, DecisionLogRow):
            session.execute(delete(table).where(table.seq <= last)
                            .execution_options(synchronize_session=False))
    return PruneResult(before, removed, first, last, checkpoint)


def _aware(before: datetime) -> datetime:
    if before.tzinfo is None:
        raise RequestError("before: a time needs a UTC offset", field="before")
    return before.astimezone(timezone.utc)


def _prefix(session, before: datetime) -> tuple[int, int | None, int | None]:
    """The longest prefix of the chain older than ``before``: (count, first, last)."""
    first = session.scalar(select(func.min(DecisionLogRow.seq)))
    if first is None:
        return 0, None, None
    kept = session.scalar(select(func.min(DecisionLogRow.seq))
                          .where(DecisionLogRow.time >= before))
    last = session.scalar(select(func.max(DecisionLogRow.seq))) if kept is None else kept - 1
    if last < first:
        return 0, None, None
    removed = session.scalar(select(func.count()).select_from(DecisionLogRow)
                             .where(DecisionLogRow.seq <= last))
    return removed, first, last
