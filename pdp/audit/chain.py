"""The hash chain of the decision log: appending records, and proving the chain.

Every row of ``decision_log`` has a position ``seq`` (gapless from 1), the hash of
the row before it (``prev_hash``; 64 zeros for the first) and its own hash::

    hash = sha256(prev_hash + canonical_json(body))

where ``body`` is the row without ``hash`` and ``prev_hash``, with ``seq`` and
``kind`` included and ``time`` as RFC 3339 text (:func:`row_body`). Changing any
field of a record, deleting one, or swapping two changes a hash or breaks a link.

Appending (:func:`append`, :func:`append_checkpoint`) is one transaction that
locks the one-row ``audit_chain_head`` (``SELECT … FOR UPDATE`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), assigns positions after the head, inserts the rows
and their policy ids (multi-row ``INSERT`` statements), moves the head and
commits: writers in many processes and replicas take turns, and positions have no
gaps. A record whose decision id is already in the log is skipped, so replaying a
spill file twice writes each record once.

A *checkpoint* (``kind = 'checkpoint'``, written by ``pdp audit prune`` through
:func:`append_checkpoint`) says that the records up to ``pruned_through`` were
removed and that the hash of the last of them was ``pruned_hash``: :func:`verify`
then starts at the first remaining record and checks that it links to that hash.

:func:`verify` walks the chain in pages of ``page_size`` rows and reports the
first problem: ``altered`` (a record's hash does not match its content),
``deleted`` (a position is missing, a record links to a hash no record has, or
the head names a later position than the last record) or ``reordered`` (a record
links to a record that is not the one before it).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Dialect, String, Table, any_, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pdp.audit.record import (
    JSON_KEYS,
    MEMBER_RUNS,
    ROW_KEYS,
    AuditRecord,
    EncodedRecord,
    canonical_json,
    format_time,
)
from pdp.store.db import Database
from pdp.store.models import (
    GENESIS_HASH,
    AuditChainHeadRow,
    DecisionLogPolicyRow,
    DecisionLogRow,
    JSONText,
)

__all__ = ["GENESIS_HASH", "AppendResult", "VerifyResult", "append", "append_checkpoint",
           "head", "record_hash", "row_body", "verify"]

#: The columns of ``decision_log`` that are hashed (all but ``hash`` and ``prev_hash``).
BODY_COLUMNS = ("seq", "kind", "decision_id", "time", "caller", "policy_set",
                "policy_version", "subject", "action", "resource_type", "resource_id",
                "decision", "claims", "redacted", "action_attributes",
                "resource_attributes", "context", "policies", "reasons", "errors",
                "evaluation_us", "details")

_NULL = JSONText("null")

#: The JSON columns of ``decision_log`` (:class:`~pdp.store.models.PreEncodedJSON`).
JSON_COLUMNS = ("claims", "redacted", "action_attributes", "resource_attributes",
                "context", "policies", "reasons", "errors", "details")


def row_body(row: Any) -> dict:
    """The hashed part of a row (a :class:`DecisionLogRow` or a mapping of its columns)."""
    get = row.get if isinstance(row, Mapping) else lambda name: getattr(row, name)
    body = {name: get(name) for name in BODY_COLUMNS}
    if isinstance(body["time"], datetime):
        body["time"] = format_time(body["time"])
    return body


def record_hash(prev_hash: str, body: Mapping[str, Any]) -> str:
    """``sha256(prev_hash + canonical_json(body))`` in hex."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(body))
    return digest.hexdigest()


# --------------------------------------------------------------------------- appending

@dataclass(frozen=True, slots=True)
class AppendResult:
    #: Records inserted, and records skipped because their decision id was in the log.
    inserted: int
    skipped: int
    #: The head after the append.
    head_seq: int
    head_hash: str


def _lock_head(session: Session, db: Database) -> AuditChainHeadRow:
    """The head row, locked for this transaction (recreated if it is missing)."""
    stmt = select(AuditChainHeadRow).where(AuditChainHeadRow.id == 1)
    if db.is_postgresql:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).one_or_none()
    if row is not None:
        return row
    last = session.scalars(select(DecisionLogRow).order_by(DecisionLogRow.seq.desc())
                           .limit(1)).one_or_none()
    seq, hash_ = (last.seq, last.hash) if last is not None else (0, GENESIS_HASH)
    if db.is_postgresql:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(AuditChainHeadRow).values(id=1, seq=seq, hash=hash_)
                        .on_conflict_do_nothing())
    else:
        session.execute(insert(AuditChainHeadRow).values(id=1, seq=seq, hash=hash_)
                        .prefix_with("OR IGNORE"))
    return session.scalars(stmt).one()


def _decision_row(record: EncodedRecord, seq: int, prev_hash: str, hash_: str) -> dict:
    """The row of ``record`` at ``seq``, for the Core ``INSERT`` (JSON columns as
    :class:`~pdp.store.models.JSONText`: stored as they are)."""
    row = record.columns()
    for name in JSON_KEYS:
        row[name] = JSONText(row[name])
    row.update(seq=seq, kind="decision", decision_id=record.decision_id, time=record.time,
               details=_NULL, prev_hash=prev_hash, hash=hash_)
    return row


def _check_body_layout() -> None:
    """:meth:`EncodedRecord.body` puts the row's own members (``details``, ``kind``,
    ``seq``) between the record's runs of members: in sorted order, that is
    :data:`BODY_COLUMNS` (a column added to one list and not the other fails here;
    the bytes are tested)."""
    runs = MEMBER_RUNS
    names = [*runs[0], "details", *runs[1], "kind", *runs[2], "seq", *runs[3]]
    if names != sorted(BODY_COLUMNS):
        raise AssertionError(f"EncodedRecord.body does not match BODY_COLUMNS: {names}")


_check_body_layout()


def _as_encoded(record: AuditRecord | EncodedRecord) -> EncodedRecord:
    return record if type(record) is EncodedRecord else EncodedRecord.from_record(record)


def _append_records(session: Session, db: Database, records: list[EncodedRecord],
                    head_row: AuditChainHeadRow) -> AppendResult:
    """Give ``records`` positions after the locked head, hash them, insert them and
    their policy ids, move the head. Each record's JSON was encoded once, in its
    canonical form (:class:`EncodedRecord`): the hashed body is put together from
    those texts and they are stored as they are (they read back as the same values)."""
    seq, prev = head_row.seq, head_row.hash
    chained = []
    policy_rows = []
    sha256 = hashlib.sha256
    for record in records:
        seq += 1
        hash_ = sha256(prev.encode("ascii") + record.body(seq)).hexdigest()
        chained.append((record, seq, prev, hash_))
        prev = hash_
        for policy_id in dict.fromkeys(record.policies):
            policy_rows.append((seq, str(policy_id)[:256]))
    if chained:
        if session.connection().dialect.name == "sqlite":
            _insert_sqlite(session, chained, policy_rows)
        else:
            session.execute(insert(DecisionLogRow.__table__),
                            [_decision_row(*item) for item in chained])
            if policy_rows:
                session.execute(insert(DecisionLogPolicyRow.__table__),
                                [{"seq": s, "policy_id": p} for s, p in policy_rows])
        session.execute(update(AuditChainHeadRow).where(AuditChainHeadRow.id == 1)
                        .values(seq=seq, hash=prev))
    return AppendResult(inserted=len(chained), skipped=0, head_seq=seq, head_hash=prev)


_LOG_TABLE = DecisionLogRow.__table__
_POLICY_TABLE = DecisionLogPolicyRow.__table__
_LOG_COLUMNS = tuple(column.name for column in _LOG_TABLE.columns)
#: Rows per multi-row ``INSERT``: powers of two up to this, so that a handful of
#: statements, compiled once, serve every batch size.
_MAX_ROWS_PER_INSERT = 256


@functools.lru_cache(maxsize=64)
def _multirow_insert(table: Table, rows: int, dialect: Dialect) -> str:
    """SQLAlchemy's ``INSERT INTO table (...) VALUES (...), (...) …`` for ``rows``
    rows, compiled for ``dialect`` (positional parameters, row after row, columns
    in the table's order)."""
    columns = list(table.columns)
    stmt = insert(table).values([{c.name: bindparam(f"r{i}c{j}", type_=c.type)
                                  for j, c in enumerate(columns)} for i in range(rows)])
    compiled = stmt.compile(dialect=dialect)
    expected = [f"r{i}c{j}" for i in range(rows) for j in range(len(columns))]
    if list(compiled.positiontup or ()) != expected:
        raise AssertionError("unexpected parameter order in a multi-row INSERT")
    return compiled.string


def _insert_chunks(connection: Connection, table: Table, flat: list, width: int) -> None:
    """Insert the rows of ``flat`` (``width`` values each) in multi-row statements."""
    dialect = connection.dialect
    count = len(flat) // width
    done = 0
    while done < count:
        rows = min(_MAX_ROWS_PER_INSERT, 1 << ((count - done).bit_length() - 1))
        connection.exec_driver_sql(_multirow_insert(table, rows, dialect),
                                   tuple(flat[done * width:(done + rows) * width]))
        done += rows


def _insert_sqlite(session: Session, chained: list, policy_rows: list) -> None:
    """SQLite: the rows in a few multi-row ``INSERT`` statements that SQLAlchemy
    compiles once per size (:func:`_multirow_insert`), with the values bound as the
    columns' types bind them (``time`` through its processor; text, numbers and the
    JSON texts as they are). An ``executemany`` would step (and release the GIL)
    once per row, and run SQLAlchemy's parameter processing per row."""
    connection = session.connection()
    bind_time = _time_processor(connection.dialect)
    flat: list = []
    extend = flat.extend
    for record, seq, prev_hash, hash_ in chained:
        extend((seq, "decision", record.decision_id, bind_time(record)))
        extend(record.row)
        extend(("null", prev_hash, hash_))
    _insert_chunks(connection, _LOG_TABLE, flat, len(_LOG_COLUMNS))
    if policy_rows:
        flat = []
        for item in policy_rows:
            flat.extend(item)
        _insert_chunks(connection, _POLICY_TABLE, flat, 2)


def _check_row_layout() -> None:
    """:func:`_insert_sqlite` binds a record's values in the table's column order."""
    expected = ("seq", "kind", "decision_id", "time", *ROW_KEYS, "details", "prev_hash", "hash")
    if _LOG_COLUMNS != expected:
        raise AssertionError(f"decision_log's columns are not {expected}: {_LOG_COLUMNS}")


_check_row_layout()


def _sqlite_time_text(time_text: str) -> str:
    """The text SQLAlchemy's SQLite ``DATETIME`` stores for a record's time, from
    its RFC 3339 text (``2026-11-29T11:53:37.123Z`` → ``2026-11-29 11:53:37.123000``;
    milliseconds, so the last three digits are zeros)."""
    return f"{time_text[:10]} {time_text[11:23]}000"


@functools.lru_cache(maxsize=8)
def _time_processor(dialect: Dialect):
    """How a record's ``decision_log.time`` is bound on ``dialect``: the column
    type's own processor (the UTC decorator's, then ``DATETIME``'s) applied to
    ``record.time``, or on SQLite the same text made from the record's time text
    (:func:`_sqlite_time_text`) when it agrees with that processor."""
    type_ = _LOG_TABLE.c.time.type
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return lambda record: record.time
    samples = [datetime(2026, 11, 29, 11, 53, 37, 123000, tzinfo=timezone.utc),
               datetime(1999, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
               datetime(2026, 6, 30, 23, 59, 59, 999000, tzinfo=timezone.utc),
               datetime(12, 3, 4, 5, 6, 7, 8000, tzinfo=timezone.utc)]
    if dialect.name == "sqlite" and all(process(v) == _sqlite_time_text(format_time(v))
                                        for v in samples):
        return lambda record: _sqlite_time_text(record.time_text)
    return lambda record: process(record.time)


def _chain(session: Session, db: Database, rows: list[dict],
           head_row: AuditChainHeadRow | None = None) -> AppendResult:
    """Give ``rows`` (full rows of ``decision_log``, ``time`` a ``datetime``; a
    checkpoint's) positions after the locked head, hash, insert, move the head."""
    if head_row is None:
        head_row = _lock_head(session, db)
    seq, prev = head_row.seq, head_row.hash
    for row in rows:
        seq += 1
        row["seq"] = seq
        row["prev_hash"] = prev
        body = {name: row[name] for name in BODY_COLUMNS}
        if isinstance(body["time"], datetime):
            body["time"] = format_time(body["time"])
        for name in JSON_COLUMNS:
            value = row[name]
            row[name] = (_NULL if value is None
                         else JSONText(canonical_json(value).decode("utf-8")))
        row["hash"] = prev = record_hash(prev, body)
    if rows:
        session.execute(insert(DecisionLogRow.__table__), rows)
        session.execute(update(AuditChainHeadRow).where(AuditChainHeadRow.id == 1)
                        .values(seq=seq, hash=prev))
    return AppendResult(inserted=len(rows), skipped=0, head_seq=seq, head_hash=prev)


def append(db: Database, records: Sequence[AuditRecord | EncodedRecord], *,
           fresh: bool = False) -> AppendResult:
    """Append ``records`` in order, in one transaction; records whose decision id is
    already in the log (or earlier in ``records``) are skipped. Raises
    :class:`~pdp.store.db.StoreError` when the database cannot be used.

    ``fresh``: the records are new decisions, most likely never appended (the
    writer's queue): the query for ids already in the log is not made, and the
    log's unique ``decision_id`` refuses a duplicate instead — the transaction then
    rolls back and the append is made again with that query, so the result is
    the same either way (a batch retried after a commit whose outcome was unknown
    skips what did reach the log)."""
    unique: dict[str, AuditRecord | EncodedRecord] = {}
    for record in records:
        unique.setdefault(record.decision_id, record)
    if fresh:
        try:
            return _append_unique(db, unique, len(records), check=False)
        except IntegrityError:
            pass                                # one was there already: check each
    return _append_unique(db, unique, len(records), check=True)


def _append_unique(db: Database, unique: dict[str, AuditRecord | EncodedRecord],
                   given: int, *, check: bool) -> AppendResult:
    with db.write() as session:
        head_row = _lock_head(session, db)      # first: concurrent appends serialize here
        present = _present(session, db, list(unique)) if check else set()
        todo = [_as_encoded(r) for i, r in unique.items() if i not in present]
        result = _append_records(session, db, todo, head_row)
    return AppendResult(inserted=result.inserted, skipped=given - result.inserted,
                        head_seq=result.head_seq, head_hash=result.head_hash)


def _present(session: Session, db: Database, ids: list[str]) -> set[str]:
    """Which of ``ids`` are already in the log (a replay must not write them twice).

    On PostgreSQL one array parameter (``= ANY(:ids)``): the same statement for every
    batch size, so a server-side prepared plan stays an index scan; an ``IN`` list
    of 500 parameters got a plan fixed while the table was small (a sequential scan
    that grew with the log)."""
    if not ids:
        return set()
    if db.is_postgresql:
        from sqlalchemy.dialects.postgresql import ARRAY

        param = bindparam("ids", value=ids, type_=ARRAY(String))
        return set(session.scalars(select(DecisionLogRow.decision_id)
                                   .where(DecisionLogRow.decision_id == any_(param))))
    present: set[str] = set()
    for i in range(0, len(ids), 500):
        present.update(session.scalars(select(DecisionLogRow.decision_id).where(
            DecisionLogRow.decision_id.in_(ids[i:i + 500]))))
    return present


def append_checkpoint(db: Database, pruned_through: int, *, by: str = "pdp audit prune",
                      pruned_hash: str | None = None, details: Mapping[str, Any] | None = None,
                      session: Session | None = None) -> int:
    """Append a checkpoint saying that the records up to ``pruned_through`` are (to
    be) removed; returns its position.

    ``pruned_hash`` is the hash of the record at ``pruned_through``; when omitted it
    is read from that record, which must then still exist: call this *before*
    deleting, best in the same transaction (pass the ``session`` of a
    ``db.write()`` block that then deletes ``seq <= pruned_through``). ``by`` is
    recorded as the checkpoint's caller; ``details`` (JSON) are kept with it
    (``{"before": "2026-01-01T00:00:00Z", "pruned": 1234}``).
    """
    def run(s: Session) -> int:
        hash_ = pruned_hash
        if hash_ is None:
            hash_ = s.scalars(select(DecisionLogRow.hash)
                              .where(DecisionLogRow.seq == pruned_through)).one_or_none()
            if hash_ is None:
                raise ValueError(f"no record at position {pruned_through} to checkpoint")
        now = datetime.now(timezone.utc)
        row = {name: None for name in BODY_COLUMNS}
        row.update(kind="checkpoint", caller=by,
                   time=now.replace(microsecond=now.microsecond // 1000 * 1000),
                   details={**dict(details or {}), "pruned_through": int(pruned_through),
                            "pruned_hash": hash_})
        row["details"] = _json(row["details"])
        return _chain(s, db, [row]).head_seq

    if session is not None:
        return run(session)
    with db.write() as s:
        return run(s)


def _json(value: Any) -> Any:
    import json

    return json.loads(canonical_json(value))


def head(db: Database) -> tuple[int, str]:
    """``(seq, hash)`` of the last record (``(0, GENESIS_HASH)`` for an empty log)."""
    with db.read() as session:
        row = session.get(AuditChainHeadRow, 1)
        if row is not None:
            return row.seq, row.hash
        last = session.scalars(select(DecisionLogRow).order_by(DecisionLogRow.seq.desc())
                               .limit(1)).one_or_none()
        return (last.seq, last.hash) if last is not None else (0, GENESIS_HASH)


# --------------------------------------------------------------------------- verifying

@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of :func:`verify`. ``problem`` is ``None`` when the chain holds,
    else ``altered``, ``deleted`` or ``reordered``, at position ``seq`` (the
    record's ``decision_id`` when there is one), explained by ``message``."""

    ok: bool
    checked: int
    first_seq: int | None
    last_seq: int | None
    head_seq: int
    head_hash: str
    problem: str | None = None
    seq: int | None = None
    decision_id: str | None = None
    message: str = "the chain is intact"

    def to_dict(self) -> dict:
        return asdict(self)


def _find_by_hash(session: Session, hash_: str) -> int | None:
    return session.scalars(select(DecisionLogRow.seq).where(DecisionLogRow.hash == hash_)
                           .limit(1)).one_or_none()


def _start(session: Session, from_seq: int | None) -> tuple[int | None, str | None, str]:
    """``(first position, the hash it must link to or None to trust it, why)``."""
    if from_seq is not None:
        first = session.scalars(select(func.min(DecisionLogRow.seq))
                                .where(DecisionLogRow.seq >= from_seq)).one()
        return first, None, "from"
    first = session.scalars(select(func.min(DecisionLogRow.seq))).one()
    if first is None or first == 1:
        return first, GENESIS_HASH, "genesis"
    for details in session.scalars(select(DecisionLogRow.details)
                                   .where(DecisionLogRow.kind == "checkpoint")
                                   .order_by(DecisionLogRow.seq.desc())):
        if isinstance(details, Mapping) and details.get("pruned_through") == first - 1:
            return first, str(details.get("pruned_hash")), "checkpoint"
    return first, "", "missing"


def verify(db: Database, from_seq: int | None = None, *, page_size: int = 1000) -> VerifyResult:
    """Walk the chain from the first record (or from position ``from_seq``, trusting
    that record's link) to the head; see the module docstring."""
    with db.read() as session:
        head_row = session.get(AuditChainHeadRow, 1)
        first, expected_prev, why = _start(session, from_seq)
        last_seq = session.scalars(select(func.max(DecisionLogRow.seq))).one()
        head_seq = head_row.seq if head_row is not None else (last_seq or 0)
        head_hash = head_row.hash if head_row is not None else None

        def bad(problem: str, seq: int, message: str, decision_id=None, checked=0):
            return VerifyResult(False, checked, first, last_seq, head_seq,
                                head_hash or "", problem, seq, decision_id, message)

        if first is None:
            if from_seq is None and head_seq > 0:
                return bad("deleted", 1, f"the log is empty but its head is at {head_seq}")
            return VerifyResult(True, 0, None, None, head_seq, head_hash or GENESIS_HASH)
        if why == "missing":
            return bad("deleted", 1, f"records 1 to {first - 1} are missing and no "
                                     "checkpoint says they were pruned")
        expected_seq, prev_hash, checked = first, expected_prev, 0
        last_hash = None
        while True:
            rows = session.scalars(select(DecisionLogRow)
                                   .where(DecisionLogRow.seq >= expected_seq)
                                   .order_by(DecisionLogRow.seq).limit(page_size)).all()
            if not rows:
                break
            for row in rows:
                if row.seq != expected_seq:
                    return bad("deleted", expected_seq,
                               f"record {expected_seq} is missing (the next is {row.seq})",
                               checked=checked)
                if prev_hash is not None and row.prev_hash != prev_hash:
                    other = _find_by_hash(session, row.prev_hash)
                    if other is not None and other != row.seq - 1:
                        return bad("reordered", row.seq,
                                   f"record {row.seq} follows record {other}, not the "
                                   f"record before it", row.decision_id, checked)
                    return bad("deleted", row.seq,
                               f"record {row.seq} links to a record that is not in the log "
                               "(deleted, or altered and rehashed)", row.decision_id, checked)
                if record_hash(row.prev_hash, row_body(row)) != row.hash:
                    return bad("altered", row.seq,
                               f"record {row.seq} does not match its hash",
                               row.decision_id, checked)
                checked += 1
                prev_hash = last_hash = row.hash
                expected_seq += 1
            session.expunge_all()
        last = expected_seq - 1
        if head_row is not None and from_seq is None:
            if head_row.seq > last:
                return bad("deleted", last + 1,
                           f"records {last + 1} to {head_row.seq} are missing (the head "
                           f"is at {head_row.seq})", checked=checked)
            if head_row.seq == last and head_row.hash != last_hash:
                return bad("altered", last, f"record {last} does not match the head's hash",
                           checked=checked)
        return VerifyResult(True, checked, first, last_seq, head_seq,
                            head_hash or last_hash or GENESIS_HASH)


def iter_rows(db: Database, after_seq: int = 0, page_size: int = 1000) -> Iterable[DecisionLogRow]:
    """Every row after ``after_seq``, in order, a page at a time."""
    while True:
        with db.read() as session:
            rows = session.scalars(select(DecisionLogRow).where(DecisionLogRow.seq > after_seq)
                                   .order_by(DecisionLogRow.seq).limit(page_size)).all()
        if not rows:
            return
        yield from rows
        after_seq = rows[-1].seq
