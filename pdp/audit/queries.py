"""Reading the decision log: filtered pages, one record, export, statistics.

Everything here is SQLAlchemy Core over the write side's tables
(``decision_log``, ``decision_log_policies``: :class:`~pdp.store.models.DecisionLogRow`), with
bound parameters only, and runs unchanged on SQLite and PostgreSQL.

* :func:`list_decisions` — one page of decision records matching a
  :class:`DecisionFilter`, newest first (``seq`` descending), with keyset
  pagination: the opaque cursor encodes the ``seq`` of the last record of the
  page, and the next page is ``seq < cursor``. Records appended while a client
  pages get higher ``seq`` numbers, so they never shift, duplicate or hide a
  record of a later page.
* :func:`get_decision` — one record by decision id (:class:`DecisionNotFound`).
* :func:`iter_decisions` — every matching record, page by page (each page its
  own short read transaction), for streaming exports.
* :func:`stats` — allow/deny counts per time bucket (minute, hour, day; UTC),
  the most denied subjects, resources and callers, and error counts by code.

Checkpoint records (``kind = 'checkpoint'``, written by retention) are part of
the hash chain, not decisions: queries never return them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from pdp.errors import NotFound, RequestError
from pdp.store.db import Database
from pdp.store.models import DecisionLogPolicyRow, DecisionLogRow

#: Largest page a caller may ask for.
MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
#: Records per page read by :func:`iter_decisions` (exports).
EXPORT_PAGE = 500
DECISIONS = ("allow", "deny")
BUCKETS = ("minute", "hour", "day")
#: Entries in each "top" list of :func:`stats`.
TOP = 10

#: The columns of a record, in export (CSV) order.
COLUMNS = ("seq", "decision_id", "time", "caller", "policy_set", "policy_version", "subject",
           "action", "resource_type", "resource_id", "decision", "policies", "reasons",
           "errors", "claims", "action_attributes", "resource_attributes", "context",
           "redacted", "evaluation_us", "prev_hash", "hash")
#: Columns holding JSON documents (exported as JSON text in CSV).
JSON_COLUMNS = frozenset({"policies", "reasons", "errors", "claims", "action_attributes",
                          "resource_attributes", "context", "redacted"})

_CURSOR_PREFIX = "s1:"


class DecisionNotFound(NotFound):
    code = "decision_not_found"


# --------------------------------------------------------------------------- tables

def _tables() -> tuple[sa.Table, sa.Table]:
    """``decision_log`` and ``decision_log_policies`` as the write side defines them."""
    return DecisionLogRow.__table__, DecisionLogPolicyRow.__table__


# --------------------------------------------------------------------------- filters

@dataclass(frozen=True, slots=True)
class DecisionFilter:
    """What to look for; ``None`` means "any". Times are aware datetimes;
    ``time_from`` is inclusive, ``time_to`` exclusive."""

    time_from: datetime | None = None
    time_to: datetime | None = None
    subject: str | None = None
    caller: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    decision: str | None = None
    policy_id: str | None = None
    policy_set: str | None = None
    policy_version: int | None = None

    def __post_init__(self) -> None:
        if self.decision is not None and self.decision not in DECISIONS:
            raise RequestError(f"decision must be one of {', '.join(DECISIONS)}",
                               field="decision", code="invalid_field")
        for name in ("time_from", "time_to"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise RequestError(f"{name}: a time needs a UTC offset",
                                   field=name.removeprefix("time_"), code="invalid_field")
        for name in ("subject", "caller", "action", "resource_type", "resource_id",
                     "policy_id", "policy_set"):
            value = getattr(self, name)
            if isinstance(value, str) and "\x00" in value:
                # the log never holds one (recorded as U+FFFD), and PostgreSQL
                # refuses it as a parameter
                raise RequestError(f"{name}: a NUL character is never in the log",
                                   field=name, code="invalid_field")

    def where(self) -> list[sa.ColumnElement[bool]]:
        log, policies = _tables()
        c = log.c
        clauses: list[sa.ColumnElement[bool]] = [c.kind == "decision"]
        if self.time_from is not None:
            clauses.append(c.time >= self.time_from)
        if self.time_to is not None:
            clauses.append(c.time < self.time_to)
        for name in ("subject", "caller", "action", "resource_type", "resource_id",
                     "decision", "policy_set", "policy_version"):
            value = getattr(self, name)
            if value is not None:
                clauses.append(c[name] == value)
        if self.policy_id is not None:
            clauses.append(sa.exists().where(policies.c.seq == c.seq,
                                             policies.c.policy_id == self.policy_id))
        return clauses


# --------------------------------------------------------------------------- cursors

def encode_cursor(seq: int) -> str:
    raw = f"{_CURSOR_PREFIX}{seq}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The ``seq`` a cursor encodes; :class:`RequestError` (field ``cursor``) if it
    is not one of ours."""
    bad = RequestError("cursor: not a cursor this service handed out", field="cursor",
                       code="invalid_cursor")
    if not cursor or len(cursor) > 64:
        raise bad
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise bad from None
    if not text.startswith(_CURSOR_PREFIX) or not text[len(_CURSOR_PREFIX):].isdigit():
        raise bad
    return int(text[len(_CURSOR_PREFIX):])


# --------------------------------------------------------------------------- rows

def _json(value: Any) -> Any:
    """A JSON column as a Python value (some drivers hand back text)."""
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(
        timezone.utc)


def rfc3339(value: datetime) -> str:
    """``2026-11-29T11:54:12.123456Z``."""
    return _utc(value).isoformat().replace("+00:00", "Z")


def row_to_dict(row: sa.Row) -> dict[str, Any]:
    """A ``decision_log`` row as the API, NDJSON export and ``--json`` show it."""
    m = row._mapping
    out: dict[str, Any] = {}
    for name in COLUMNS:
        value = m[name]
        if name in JSON_COLUMNS:
            value = _json(value)
        elif name == "time":
            value = rfc3339(value)
        out[name] = value
    return out


def _select() -> sa.Select:
    log, _ = _tables()
    return sa.select(*(log.c[name] for name in COLUMNS))


# --------------------------------------------------------------------------- pages

@dataclass(frozen=True, slots=True)
class Page:
    decisions: list[dict[str, Any]]
    #: Pass back as ``cursor`` for the next (older) page; ``None`` on the last page.
    next_cursor: str | None


def check_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise RequestError(f"limit: must be from 1 to {MAX_LIMIT}", field="limit",
                           code="invalid_field")
    return limit


def _page_rows(session, where: list, limit: int, before: int | None) -> list[sa.Row]:
    log, _ = _tables()
    query = _select().where(*where)
    if before is not None:
        query = query.where(log.c.seq < before)
    return list(session.execute(query.order_by(log.c.seq.desc()).limit(limit)))


def list_decisions(db: Database, filter: DecisionFilter | None = None, *,
                   limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Page:
    """One page of matching decisions, newest first (see the module docstring)."""
    check_limit(limit)
    before = decode_cursor(cursor) if cursor is not None else None
    where = (filter or DecisionFilter()).where()
    with db.read() as session:
        rows = _page_rows(session, where, limit + 1, before)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([row_to_dict(r) for r in rows],
                encode_cursor(rows[-1].seq) if more and rows else None)


def iter_decisions(db: Database, filter: DecisionFilter | None = None, *,
                   page_size: int | None = None, cursor: str | None = None
                   ) -> Iterator[dict[str, Any]]:
    """Every matching decision, newest first, read ``page_size`` (default
    :data:`EXPORT_PAGE`) at a time by keyset (never all at once; each page in its
    own read transaction)."""
    page_size = page_size or EXPORT_PAGE
    before = decode_cursor(cursor) if cursor is not None else None
    where = (filter or DecisionFilter()).where()
    while True:
        with db.read() as session:
            rows = _page_rows(session, where, page_size, before)
        for row in rows:
            yield row_to_dict(row)
        if len(rows) < page_size:
            return
        before = rows[-1].seq


def get_decision(db: Database, decision_id: str) -> dict[str, Any]:
    if "\x00" in decision_id:          # never a decision id (and refused by PostgreSQL)
        raise DecisionNotFound(f"no decision {decision_id!r} in the decision log")
    log, _ = _tables()
    with db.read() as session:
        row = session.execute(_select().where(log.c.decision_id == decision_id,
                                              log.c.kind == "decision")).first()
    if row is None:
        raise DecisionNotFound(f"no decision {decision_id!r} in the decision log")
    return row_to_dict(row)


def count_decisions(db: Database, filter: DecisionFilter | None = None) -> int:
    log, _ = _tables()
    with db.read() as session:
        return session.execute(sa.select(sa.func.count()).select_from(log)
                               .where(*(filter or DecisionFilter()).where())).scalar_one()


# --------------------------------------------------------------------------- stats

#: SQLite ``strftime`` formats that truncate a stored UTC time to a bucket.
_SQLITE_BUCKET = {"minute": "%Y-%m-%d %H:%M:00", "hour": "%Y-%m-%d %H:00:00",
                  "day": "%Y-%m-%d 00:00:00"}
#: Longest period a bucket size may cover, so that an answer stays small.
MAX_BUCKETS = 10_000
_BUCKET_SPAN = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1),
                "day": timedelta(days=1)}


def _bucket_expr(db: Database, column: sa.ColumnElement, bucket: str) -> sa.ColumnElement:
    """``column`` truncated to ``bucket`` (whitelisted, rendered as a literal so that
    GROUP BY repeats the very same expression)."""
    if bucket not in BUCKETS:
        raise RequestError(f"bucket must be one of {', '.join(BUCKETS)}", field="bucket",
                           code="invalid_field")
    if db.is_postgresql:
        return sa.func.date_trunc(sa.literal_column(f"'{bucket}'"),
                                  sa.func.timezone(sa.literal_column("'UTC'"), column))
    return sa.func.strftime(sa.literal_column(f"'{_SQLITE_BUCKET[bucket]}'"), column)


def _bucket_start(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return _utc(value)


@dataclass(frozen=True, slots=True)
class Stats:
    time_from: datetime
    time_to: datetime
    bucket: str
    totals: dict[str, int]
    buckets: list[dict[str, Any]]
    top_denied_subjects: list[dict[str, Any]]
    top_denied_resources: list[dict[str, Any]]
    top_denied_callers: list[dict[str, Any]]
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"from": rfc3339(self.time_from), "to": rfc3339(self.time_to),
                "bucket": self.bucket, "totals": self.totals, "buckets": self.buckets,
                "top_denied_subjects": self.top_denied_subjects,
                "top_denied_resources": self.top_denied_resources,
                "top_denied_callers": self.top_denied_callers, "errors": self.errors}


def stats(db: Database, time_from: datetime | None = None, time_to: datetime | None = None,
          bucket: str = "hour", filter: DecisionFilter | None = None, *,
          top: int = TOP, now: datetime | None = None) -> Stats:
    """Counts over ``[time_from, time_to)`` (default: the 24 hours before ``now``),
    for the decisions that also match ``filter``. Buckets hold only periods with
    decisions, oldest first; their ``start`` is UTC."""
    if bucket not in BUCKETS:
        raise RequestError(f"bucket: must be one of {', '.join(BUCKETS)}", field="bucket",
                           code="invalid_field")
    time_to = _utc(time_to) if time_to is not None else (now or datetime.now(timezone.utc))
    time_from = _utc(time_from) if time_from is not None else time_to - timedelta(days=1)
    if time_from >= time_to:
        raise RequestError("from: must be before to", field="from", code="invalid_field")
    if (time_to - time_from) / _BUCKET_SPAN[bucket] > MAX_BUCKETS:
        raise RequestError(f"bucket: more than {MAX_BUCKETS} {bucket}s from 'from' to 'to'; "
                           "use a larger bucket or a shorter period", field="bucket",
                           code="invalid_field")
    base = filter or DecisionFilter()
    where = DecisionFilter(**{**{f: getattr(base, f) for f in base.__dataclass_fields__},
                              "time_from": time_from, "time_to": time_to}).where()
    log, _ = _tables()
    c = log.c
    start = _bucket_expr(db, c.time, bucket).label("start")
    n = sa.func.count().label("n")
    denied = [*where, c.decision == "deny"]

    def top_of(*columns):
        return (sa.select(*columns, n).where(*denied).group_by(*columns)
                .order_by(n.desc(), *columns).limit(top))

    with db.read() as session:
        per_bucket = session.execute(
            sa.select(start, c.decision, n).where(*where).group_by(start, c.decision)
            .order_by(start)).all()
        subjects = session.execute(top_of(c.subject)).all()
        resources = session.execute(top_of(c.resource_type, c.resource_id)).all()
        callers = session.execute(top_of(c.caller)).all()
        errors = session.execute(_errors_query(db, log, where)).all()

    buckets: dict[datetime, dict[str, Any]] = {}
    totals = dict.fromkeys(DECISIONS, 0)
    for row in per_bucket:
        at = _bucket_start(row.start)
        entry = buckets.setdefault(at, {"start": rfc3339(at), **dict.fromkeys(DECISIONS, 0)})
        if row.decision in totals:
            entry[row.decision] += row.n
            totals[row.decision] += row.n
    return Stats(
        time_from=time_from, time_to=time_to, bucket=bucket, totals=totals,
        buckets=[buckets[k] for k in sorted(buckets)],
        top_denied_subjects=[{"subject": r.subject, "count": r.n} for r in subjects],
        top_denied_resources=[{"resource_type": r.resource_type,
                               "resource_id": r.resource_id, "count": r.n} for r in resources],
        top_denied_callers=[{"caller": r.caller, "count": r.n} for r in callers],
        errors=[{"code": r.code, "count": r.n} for r in errors])


def _errors_query(db: Database, log: sa.Table, where: list) -> sa.Select:
    """Error counts by code: one row per element of each record's ``errors`` array
    (``json_array_elements`` on PostgreSQL, ``json_each`` on SQLite)."""
    n = sa.func.count().label("n")
    if db.is_postgresql:
        jsonb = isinstance(log.c.errors.type, postgresql.JSONB)
        typeof, elements_of = ((sa.func.jsonb_typeof, sa.func.jsonb_array_elements) if jsonb
                               else (sa.func.json_typeof, sa.func.json_array_elements))
        empty = sa.literal_column("'[]'::jsonb" if jsonb else "'[]'::json")
        arrays = sa.case((typeof(log.c.errors) == sa.literal_column("'array'"), log.c.errors),
                         else_=empty)
        elements = elements_of(arrays).table_valued("value").lateral("e")
        code = elements.c.value.op("->>")(sa.literal_column("'code'"))
    else:
        arrays = sa.case((sa.func.json_type(log.c.errors) == sa.literal_column("'array'"),
                          log.c.errors), else_=sa.literal_column("'[]'"))
        # SQLite has no LATERAL; a table-valued function in FROM sees the tables before it
        elements = sa.func.json_each(arrays).table_valued("value").alias("e")
        code = sa.func.json_extract(elements.c.value, sa.literal_column("'$.code'"))
    code = sa.func.coalesce(code, sa.literal_column("'unknown'")).label("code")
    return (sa.select(code, n).select_from(log.join(elements, sa.true())).where(*where)
            .group_by(code).order_by(n.desc(), code))
