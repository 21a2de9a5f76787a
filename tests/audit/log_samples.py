"""A small, varied decision log for the read-side tests, written through the
write side's chain API (:func:`pdp.audit.chain.append`) so that the chain holds,
and a plain-Python oracle of what each filter must return."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from pdp.audit import chain
from pdp.audit.record import AuditRecord
from pdp.store.db import Database

BASE = datetime(2026, 11, 1, 10, 0, tzinfo=timezone.utc)
SUBJECTS = ["alice", "bob", "carol", None]
CALLERS = ["svc-a", "svc-b", "svc-c"]


def make_record(i: int, **changes) -> AuditRecord:
    deny = i % 3 == 0
    errors = []
    if deny and i % 4 == 0:
        errors = [{"code": "token_expired", "message": "the token has expired"}]
    if i == 9:
        errors = [{"code": "eval_error", "message": "x", "policy": "p"},
                  {"code": "token_expired", "message": "again"}]
    policies = (["no-archived-writes"] if i % 2 else []) if deny else ["doc-owner-edit"]
    if i % 5 == 1:
        policies = [*policies, "admins-anything"]
    record = AuditRecord(
        decision_id=f"d-{i:04d}", time=BASE + timedelta(minutes=17 * i),
        caller=CALLERS[i % 3 if i % 2 else (i // 2) % 3], policy_set="other" if i % 7 == 0 else "default",
        policy_version=1 if i < 12 else 2, subject=SUBJECTS[i % 4],
        claims={"sub": SUBJECTS[i % 4], "roles": ["x"]} if SUBJECTS[i % 4] else {},
        action=["read", "update"][(i // 2) % 2],
        resource_type="folder" if i % 5 == 0 else "document", resource_id=f"r-{i % 6}",
        decision="deny" if deny else "allow",
        action_attributes={"n": i} if i % 2 else None,
        resource_attributes={"owner": "alice", "text": 'a "quoted", text\nwith newline'},
        context={"ip": "10.0.0.1", "i": i}, policies=policies,
        reasons=["because"] if not deny else [], errors=errors, evaluation_us=100 + i,
        redacted=["email"] if i % 8 == 0 else [])
    return replace(record, **changes)


def sample(n: int = 24, start: int = 0) -> list[AuditRecord]:
    return [make_record(i) for i in range(start, start + n)]


def write(db: Database, records: list[AuditRecord]) -> None:
    result = chain.append(db, records)
    assert result.inserted == len(records)


FIELDS = ("subject", "caller", "action", "resource_type", "resource_id", "decision",
          "policy_set", "policy_version")


def expected(records: list[AuditRecord], **filters) -> list[str]:
    """Decision ids, newest first, of the records matching ``filters`` (the
    keyword arguments of :class:`pdp.audit.queries.DecisionFilter`)."""
    out = []
    for r in records:
        if any(name in filters and getattr(r, name) != filters[name] for name in FIELDS):
            continue
        if "time_from" in filters and r.time < filters["time_from"]:
            continue
        if "time_to" in filters and r.time >= filters["time_to"]:
            continue
        if "policy_id" in filters and filters["policy_id"] not in r.policies:
            continue
        out.append(r.decision_id)
    return out[::-1]
