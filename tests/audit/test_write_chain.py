"""The hash chain on every backend: appending, verifying, and naming the record
that was altered, deleted or moved."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from pdp.audit import chain
from pdp.audit.record import AuditRecord
from pdp.store.db import Database
from pdp.store.models import GENESIS_HASH

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def rec(i: int, **kw) -> AuditRecord:
    return AuditRecord(
        decision_id=kw.pop("decision_id", f"dec-{i:05d}"), time=T0 + timedelta(seconds=i),
        caller="svc", policy_set="default", policy_version=1, subject=f"u{i % 3}",
        claims={"sub": f"u{i % 3}", "n": i, "f": 1.5}, action="read",
        resource_type="document", resource_id=f"d{i}", decision="allow" if i % 2 else "deny",
        context={"ip": "10.0.0.1", "time": "2026-11-29T12:00:00Z"},
        policies=["p-a", "p-b"] if i % 2 else [], reasons=["r"], evaluation_us=i, **kw)


def sql(db: Database, statement: str, **params) -> None:
    with db.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def test_an_empty_log_verifies(store):
    result = chain.verify(store)
    assert result.ok and result.checked == 0
    assert chain.head(store) == (0, GENESIS_HASH)


def test_append_assigns_gapless_positions_and_verifies(store):
    first = chain.append(store, [rec(i) for i in range(1, 6)])
    second = chain.append(store, [rec(i) for i in range(6, 9)])
    assert (first.inserted, second.inserted, second.head_seq) == (5, 3, 8)
    with store.read() as session:
        seqs = session.execute(sa.text("SELECT seq, decision_id FROM decision_log "
                                       "ORDER BY seq")).all()
        policies = session.execute(sa.text(
            "SELECT seq, policy_id FROM decision_log_policies ORDER BY seq, policy_id")).all()
    assert [s for s, _ in seqs] == list(range(1, 9))
    assert [d for _, d in seqs] == [f"dec-{i:05d}" for i in range(1, 9)]
    assert (1, "p-a") in policies and (1, "p-b") in policies and all(s % 2 for s, _ in policies)
    result = chain.verify(store, page_size=3)
    assert result.ok and result.checked == 8 and result.head_seq == 8
    assert chain.head(store) == (8, second.head_hash)


def test_a_decision_id_is_written_once(store):
    chain.append(store, [rec(1), rec(2)])
    again = chain.append(store, [rec(2), rec(3), rec(3)])
    assert (again.inserted, again.skipped) == (1, 2)
    assert chain.verify(store).checked == 3


def test_fresh_records_skip_the_lookup_and_still_write_a_decision_id_once(store):
    """The writer's own records are appended without first asking which ids the log
    holds; one that is there after all (a batch retried after a commit whose outcome
    was unknown) is skipped all the same, and the chain stays whole."""
    first = chain.append(store, [rec(1), rec(2)], fresh=True)
    again = chain.append(store, [rec(2), rec(3), rec(3), rec(1), rec(4)], fresh=True)
    assert (first.inserted, again.inserted, again.skipped) == (2, 2, 3)
    with store.read() as session:
        ids = session.execute(sa.text("SELECT decision_id FROM decision_log ORDER BY seq")
                              ).scalars().all()
    assert ids == ["dec-00001", "dec-00002", "dec-00003", "dec-00004"]
    result = chain.verify(store)
    assert result.ok and result.checked == 4 and result.head_seq == again.head_seq == 4


def test_a_fresh_append_makes_no_lookup_query(store):
    statements = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        chain.append(store, [rec(i) for i in range(1, 4)], fresh=True)
        fresh = list(statements)
        statements.clear()
        chain.append(store, [rec(i) for i in range(4, 7)])
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)
    lookup = [s for s in statements if s.lstrip().upper().startswith("SELECT decision_log.decision_id".upper())]
    assert lookup, statements                      # the checked append asks
    assert not [s for s in fresh if s.lstrip().upper().startswith(
        "SELECT decision_log.decision_id".upper())], fresh
    assert chain.verify(store).checked == 6


def test_concurrent_writers_leave_no_gap(store):
    errors = []

    def write(k):
        try:
            for j in range(5):
                chain.append(store, [rec(1000 + k * 100 + j * 10 + n) for n in range(3)])
        except Exception as exc:               # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = chain.verify(store)
    assert result.ok and result.checked == 60 and result.head_seq == 60


def test_an_update_is_named(store):
    chain.append(store, [rec(i) for i in range(1, 8)])
    sql(store, "UPDATE decision_log SET decision = 'allow' WHERE seq = 4")
    result = chain.verify(store, page_size=2)
    assert not result.ok
    assert (result.problem, result.seq, result.decision_id) == ("altered", 4, "dec-00004")


def test_an_update_of_a_json_field_is_named(store):
    chain.append(store, [rec(i) for i in range(1, 5)])
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE decision_log SET claims = :c WHERE seq = 2"),
                     {"c": '{"sub": "mallory"}'})
    result = chain.verify(store)
    assert (result.problem, result.seq) == ("altered", 2)


def test_a_delete_is_named(store):
    chain.append(store, [rec(i) for i in range(1, 8)])
    sql(store, "DELETE FROM decision_log WHERE seq = 5")
    result = chain.verify(store)
    assert (result.ok, result.problem, result.seq) == (False, "deleted", 5)


def test_deleting_the_last_records_is_named(store):
    chain.append(store, [rec(i) for i in range(1, 8)])
    sql(store, "DELETE FROM decision_log WHERE seq >= 6")
    result = chain.verify(store)
    assert (result.problem, result.seq) == ("deleted", 6)


def test_deleting_the_first_records_is_named(store):
    chain.append(store, [rec(i) for i in range(1, 8)])
    sql(store, "DELETE FROM decision_log WHERE seq <= 2")
    result = chain.verify(store)
    assert (result.problem, result.seq) == ("deleted", 1)


def test_a_swapped_pair_is_named(store):
    chain.append(store, [rec(i) for i in range(1, 8)])
    # Swap the positions of records 3 and 4 (through a free position).
    sql(store, "UPDATE decision_log SET seq = 1000 WHERE seq = 3")
    sql(store, "UPDATE decision_log SET seq = 3 WHERE seq = 4")
    sql(store, "UPDATE decision_log SET seq = 4 WHERE seq = 1000")
    result = chain.verify(store)
    assert (result.ok, result.problem, result.seq) == (False, "reordered", 3)
    assert result.decision_id == "dec-00004"


def test_a_rehashed_edit_is_still_caught(store):
    chain.append(store, [rec(i) for i in range(1, 6)])
    with store.read() as session:
        prev = session.execute(sa.text("SELECT prev_hash FROM decision_log WHERE seq = 3")
                               ).scalar_one()
    # The attacker edits record 3 and recomputes its hash: record 4's link breaks.
    from pdp.store.models import DecisionLogRow
    with store.write() as session:
        row = session.get(DecisionLogRow, 3)
        row.decision = "allow" if row.decision == "deny" else "deny"
        session.flush()
        row.hash = chain.record_hash(prev, chain.row_body(row))
    result = chain.verify(store)
    assert (result.ok, result.seq) == (False, 4)


def test_a_checkpoint_lets_verification_start_after_pruned_records(store):
    chain.append(store, [rec(i) for i in range(1, 8)])
    with store.write() as session:
        seq = chain.append_checkpoint(store, 4, session=session, details={"pruned": 4})
        session.execute(sa.text("DELETE FROM decision_log WHERE seq <= 4"))
    assert seq == 8
    result = chain.verify(store)
    assert result.ok and result.first_seq == 5 and result.checked == 4
    chain.append(store, [rec(9)])
    assert chain.verify(store).ok
    # Without the checkpoint, the same gap is a deletion.
    sql(store, "DELETE FROM decision_log WHERE kind = 'checkpoint'")
    assert chain.verify(store).problem == "deleted"


def test_verify_from_a_position(store):
    chain.append(store, [rec(i) for i in range(1, 8)])
    sql(store, "UPDATE decision_log SET decision = 'x' WHERE seq = 2")
    assert chain.verify(store).seq == 2
    result = chain.verify(store, from_seq=3)
    assert result.ok and result.checked == 5


@pytest.mark.parametrize("n", [1200])
def test_a_large_batch(store, n):
    result = chain.append(store, [rec(i) for i in range(n)])
    assert result.inserted == n
    assert chain.verify(store, page_size=500).checked == n
