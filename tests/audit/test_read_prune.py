"""Retention (:func:`pdp.audit.prune.prune`): old records go, a checkpoint keeps
the chain verifiable from its new start, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from pdp.audit import chain, queries
from pdp.audit.prune import prune

from .log_samples import BASE, make_record, sample, write


@pytest.fixture
def records(store):
    found = sample(24)
    write(store, found)
    return found


def _policy_rows(store) -> set[int]:
    with store.read() as s:
        return set(s.execute(sa.text("SELECT seq FROM decision_log_policies")).scalars())


def test_prune_removes_old_records_and_the_chain_still_verifies(store, records):
    before = records[10].time                        # records 0…9 are older
    head_before = chain.head(store)
    result = prune(store, before)
    assert (result.removed, result.first_seq, result.last_seq) == (10, 1, 10)
    assert result.checkpoint_seq == head_before[0] + 1
    listed = queries.list_decisions(store, limit=1000).decisions
    assert [d["decision_id"] for d in listed] == [r.decision_id for r in records[10:]][::-1]
    assert min(_policy_rows(store)) == 11            # their policy rows went too
    verdict = chain.verify(store)
    assert verdict.ok, verdict
    assert verdict.first_seq == 11 and verdict.checked == 24 - 10 + 1
    # the log goes on after a prune, and a second prune works from the new start
    write(store, [make_record(100, decision_id="after")])
    again = prune(store, records[20].time)
    assert (again.first_seq, again.last_seq) == (11, 20)
    assert chain.verify(store).ok


def test_prune_keeps_a_record_that_is_older_but_after_a_newer_one(store, records):
    """Only a prefix of the chain can go: a late (replayed) old record stays until
    the records before it go too."""
    write(store, [make_record(200, decision_id="late", time=BASE - timedelta(days=10))])
    result = prune(store, records[5].time)
    assert result.removed == 5
    assert queries.get_decision(store, "late")["decision_id"] == "late"
    assert chain.verify(store).ok


def test_prune_with_nothing_old_writes_nothing(store, records):
    head = chain.head(store)
    result = prune(store, BASE)
    assert result.removed == 0 and result.checkpoint_seq is None
    assert chain.head(store) == head
    assert "nothing to prune" in result.describe()


def test_prune_everything_leaves_a_verifiable_checkpoint(store, records):
    result = prune(store, BASE + timedelta(days=365))
    assert result.removed == 24
    assert queries.list_decisions(store).decisions == []
    verdict = chain.verify(store)
    assert verdict.ok and verdict.first_seq == 25
    write(store, [make_record(300)])
    assert chain.verify(store).ok


def test_tampering_after_a_prune_is_still_found(store, records):
    prune(store, records[10].time)
    with store.write() as s:
        s.execute(sa.text("UPDATE decision_log SET decision = 'allow' WHERE seq = 13"))
    verdict = chain.verify(store)
    assert not verdict.ok and verdict.seq == 13 and verdict.problem == "altered"


def test_prune_on_an_empty_log(store):
    assert prune(store, BASE).removed == 0


def test_prune_needs_an_aware_time(store):
    from pdp.errors import RequestError

    with pytest.raises(RequestError):
        prune(store, BASE.replace(tzinfo=None))
