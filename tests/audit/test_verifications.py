"""Recorded verifications of the hash chain (:mod:`pdp.audit.verifications`), on
every backend."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from pdp.audit import chain, verifications
from pdp.store.models import GENESIS_HASH, AuditVerificationRow, DecisionLogRow, utcnow
from tests.audit.log_samples import sample, write


def _rows(store) -> int:
    with store.read() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(AuditVerificationRow))


def test_an_intact_chain_is_recorded_as_verified(store):
    write(store, sample(12))
    before = utcnow()
    result, recorded = verifications.verify_and_record(store, by="tests", page_size=5)
    assert result.ok and result.checked == 12
    assert recorded.ok and recorded.checked == 12 and recorded.verified_by == "tests"
    assert (recorded.head_seq, recorded.head_hash) == chain.head(store)
    assert recorded.problem is None and recorded.seq is None
    assert recorded.message == "the chain is intact"
    assert before <= recorded.verified_at <= utcnow()
    assert verifications.last_verification(store) == recorded


def test_an_empty_log_verifies_and_nothing_recorded_means_unverified(store):
    assert verifications.last_verification(store) is None
    _, recorded = verifications.verify_and_record(store, by="tests")
    assert recorded.ok and recorded.checked == 0
    assert (recorded.head_seq, recorded.head_hash) == (0, GENESIS_HASH)


def test_a_tampered_record_is_recorded_as_broken_with_its_position(store):
    write(store, sample(10))
    with store.write() as s:
        s.execute(sa.update(DecisionLogRow).where(DecisionLogRow.decision_id == "d-0004")
                  .values(subject="mallory"))
    result, recorded = verifications.verify_and_record(store, by="console:auditor")
    assert not result.ok
    assert not recorded.ok and recorded.problem == "altered" and recorded.seq == 5
    assert recorded.checked == 4 and recorded.head_seq == 10
    assert "record 5" in recorded.message
    assert verifications.last_verification(store) == recorded


def test_last_verification_is_the_newest(store):
    write(store, sample(3))
    _, first = verifications.verify_and_record(store, by="first")
    write(store, sample(2, start=3))
    _, second = verifications.verify_and_record(store, by="second")
    assert second.id > first.id and second.head_seq == 5
    # a row stamped earlier (another replica's clock) does not hide the newest
    with store.write() as s:
        s.add(AuditVerificationRow(verified_at=first.verified_at - timedelta(hours=1),
                                   verified_by="late", ok=False, checked=0, head_seq=1,
                                   head_hash="x", problem="altered", seq=1, message="m"))
    assert verifications.last_verification(store) == second


def test_only_the_newest_rows_are_kept(store):
    write(store, sample(2))
    result = chain.verify(store)
    kept = [verifications.record(store, result, by=f"run-{i}", keep=3) for i in range(5)]
    assert _rows(store) == 3
    with store.read() as s:
        left = s.scalars(sa.select(AuditVerificationRow.verified_by)
                         .order_by(AuditVerificationRow.id)).all()
    assert left == ["run-2", "run-3", "run-4"]
    assert verifications.last_verification(store) == kept[-1]


def test_a_long_name_is_cut(store):
    _, recorded = verifications.verify_and_record(store, by="console:" + "k" * 300)
    assert len(recorded.verified_by) == verifications.BY_MAX
