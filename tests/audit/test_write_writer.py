"""The writer: batches, spills when the store fails, replays when it is back, and in
durable mode refuses to let a decision through unrecorded."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time

import pytest
import sqlalchemy as sa

from pdp.audit import chain, spill
from pdp.audit.writer import AuditUnavailable, AuditWriter, WriterMetrics
from pdp.store.db import StoreError
from tests.audit.test_write_chain import rec


class Metrics(WriterMetrics):
    def __init__(self):
        self.counts = {"written": 0, "spilled": 0, "replayed": 0, "write_failed": 0}
        self.depths = []

    def queue_depth(self, depth):
        self.depths.append(depth)

    def written(self, n):
        self.counts["written"] += n

    def spilled(self, n):
        self.counts["spilled"] += n

    def replayed(self, n):
        self.counts["replayed"] += n

    def write_failed(self, n):
        self.counts["write_failed"] += n


class FlakyDb:
    """The store, or a store that is down (every transaction fails), at will."""

    def __init__(self, db, delay: float = 0.0):
        self.db = db
        self.down = False
        self.delay = delay
        self.transactions = 0

    @property
    def is_postgresql(self):
        return self.db.is_postgresql

    @contextlib.contextmanager
    def write(self):
        if self.down:
            raise StoreError("database error: connection refused (test)")
        self.transactions += 1
        time.sleep(self.delay)
        with self.db.write() as session:
            yield session

    def read(self):
        return self.db.read()


def ids(store):
    with store.read() as session:
        return session.execute(sa.text("SELECT decision_id FROM decision_log ORDER BY seq")
                               ).scalars().all()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.fixture
def make_writer(tmp_path):
    writers = []

    def make(db, **kw):
        kw.setdefault("spill_dir", tmp_path / "spill")
        kw.setdefault("flush_interval", 0.05)
        kw.setdefault("retry_min", 0.05)
        kw.setdefault("retry_max", 0.2)
        writer = AuditWriter(db, **kw)
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.close(timeout=5)


def test_async_records_are_written_in_batches(store, make_writer):
    db = FlakyDb(store)
    metrics = Metrics()
    writer = make_writer(db, flush_interval=0.3, batch_size=1000, metrics=metrics)
    for i in range(200):
        writer.submit(rec(i))
    assert writer.flush(5)
    wait_for(lambda: len(ids(store)) == 200)
    assert db.transactions <= 20                 # a few batches, not 200 transactions
    assert metrics.counts["written"] == 200 and metrics.counts["spilled"] == 0
    assert max(metrics.depths) >= 100
    assert chain.verify(store).ok


def test_a_record_already_in_the_log_is_written_once(store, make_writer):
    """The writer appends its records without first looking their ids up (they are
    new decisions); one that reached the log already — a batch written again after
    a commit whose outcome was unknown — is skipped, and the rest of its batch is
    written in order."""
    metrics = Metrics()
    writer = make_writer(store, batch_size=100, metrics=metrics)
    for i in range(3):
        writer.submit(rec(i))
    assert writer.flush(5)
    for i in (1, 3, 2, 4):
        writer.submit(rec(i))
    assert writer.flush(5)
    assert ids(store) == [rec(i).decision_id for i in (0, 1, 2, 3, 4)]
    assert metrics.counts["written"] == 5 and metrics.counts["spilled"] == 0
    assert chain.verify(store).ok


def test_a_batch_never_exceeds_the_batch_size(store, make_writer):
    writer = make_writer(store, flush_interval=5.0, batch_size=10)
    for i in range(25):
        writer.submit(rec(i))
    # 10 and 20 trigger a write before the (long) flush interval.
    wait_for(lambda: len(ids(store)) >= 20, timeout=4)
    writer.close()
    assert len(ids(store)) == 25


def test_store_down_then_back_every_record_once_in_order(store, make_writer, tmp_path):
    db = FlakyDb(store)
    metrics = Metrics()
    writer = make_writer(db, metrics=metrics)
    for i in range(10):
        writer.submit(rec(i))
    wait_for(lambda: len(ids(store)) == 10)
    db.down = True
    for i in range(10, 40):
        writer.submit(rec(i))
        time.sleep(0.003)
    wait_for(lambda: metrics.counts["spilled"] == 30)
    assert list((tmp_path / "spill").glob("spill-*.log"))
    assert len(ids(store)) == 10
    db.down = False
    for i in range(40, 50):
        writer.submit(rec(i))
    wait_for(lambda: len(ids(store)) == 50)
    assert ids(store) == [f"dec-{i:05d}" for i in range(50)]
    assert metrics.counts["replayed"] >= 30
    assert metrics.counts["replayed"] + metrics.counts["written"] == 50
    assert chain.verify(store).ok
    writer.close()
    assert not list((tmp_path / "spill").glob("spill-*.log"))   # replayed and removed


def test_a_full_queue_spills_at_once(store, make_writer):
    db = FlakyDb(store)
    db.down = True
    metrics = Metrics()
    writer = make_writer(db, queue_size=5, flush_interval=10.0, metrics=metrics)
    for i in range(20):
        writer.submit(rec(i))
    assert metrics.counts["spilled"] >= 15
    db.down = False
    writer.close()
    assert sorted(ids(store)) == [f"dec-{i:05d}" for i in range(20)]
    assert chain.verify(store).ok


def test_spill_files_of_dead_processes_are_replayed_at_start(store, make_writer, tmp_path):
    orphan = spill.SpillFile(tmp_path / "spill")
    orphan.append([rec(i).to_json() for i in range(5)], fsync=True)
    orphan.close()
    writer = make_writer(store)
    writer.start()
    wait_for(lambda: len(ids(store)) == 5)
    assert not list((tmp_path / "spill").glob("spill-*.log"))


def test_close_writes_what_is_queued(store, make_writer):
    writer = make_writer(store, flush_interval=60.0)
    for i in range(7):
        writer.submit(rec(i))
    writer.close()
    assert len(ids(store)) == 7


def test_durable_waits_until_committed(store, make_writer):
    db = FlakyDb(store)
    writer = make_writer(db, mode="durable", flush_interval=60.0)
    writer.submit(rec(1))
    assert ids(store) == ["dec-00001"]          # committed before submit returned


def test_durable_group_commit(store, make_writer):
    db = FlakyDb(store, delay=0.05)              # a slow store: requests pile up
    writer = make_writer(db, mode="durable")
    threads = [threading.Thread(target=writer.submit, args=(rec(i),)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids(store)) == 64
    assert db.transactions < 32
    assert chain.verify(store).ok


def test_durable_with_the_store_down_spills_with_fsync(store, make_writer, tmp_path):
    db = FlakyDb(store)
    db.down = True
    writer = make_writer(db, mode="durable")
    writer.submit(rec(1))                        # returns: fsynced to the spill file
    files = list((tmp_path / "spill").glob("spill-*.log"))
    assert [len(spill.read_file(f).payloads) for f in files] == [1]
    db.down = False
    writer.close()
    assert ids(store) == ["dec-00001"]


def test_durable_with_the_store_down_and_no_spill_raises(store, make_writer, tmp_path):
    db = FlakyDb(store)
    db.down = True
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the spill directory should be")
    metrics = Metrics()
    writer = make_writer(db, mode="durable", spill_dir=blocked, metrics=metrics)
    with pytest.raises(AuditUnavailable):
        writer.submit(rec(1))
    assert metrics.counts["write_failed"] == 1
    db.down = False
    writer.submit(rec(2))                        # back: works again
    assert ids(store) == ["dec-00002"]


def test_async_with_a_full_queue_and_no_spill_raises(store, make_writer, tmp_path):
    db = FlakyDb(store)
    db.down = True
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("x")
    writer = make_writer(db, queue_size=3, flush_interval=60.0, spill_dir=blocked)
    for i in range(3):
        writer.submit(rec(i))
    with pytest.raises(AuditUnavailable):
        writer.submit(rec(3))
    db.down = False
    writer.close()
    assert len(ids(store)) == 3                 # the accepted ones were kept in memory


def test_a_full_spill_directory_refuses_decisions_and_loses_none(store, make_writer, tmp_path):
    """The store is down and the spill directory is at its limit: records are kept
    in memory while the queue has room, then refused (the decision is not
    answered); every record accepted reaches the log once the store is back."""
    db = FlakyDb(store)
    db.down = True
    frame = len(spill.frame(rec(0).to_json()))
    metrics = Metrics()
    writer = make_writer(db, queue_size=3, flush_interval=60.0, metrics=metrics,
                         spill_max_bytes=4 * frame + frame // 2)
    accepted, refused = [], 0
    for i in range(12):
        try:
            writer.submit(rec(i))
            accepted.append(f"dec-{i:05d}")
        except AuditUnavailable as exc:
            refused += 1
            assert "PDP_AUDIT_SPILL_MAX_MB" in str(exc)
    assert len(accepted) == 3 + 4 and refused == 5    # the queue, then 4 spilled
    assert spill.directory_bytes(tmp_path / "spill") <= 4 * frame + frame // 2
    db.down = False
    writer.close()
    assert sorted(ids(store)) == accepted
    assert chain.verify(store).ok
    assert not list((tmp_path / "spill").glob("spill-*.log"))


def test_flush_waits_for_the_batch_being_written(store, make_writer):
    """A flush that finds the queue empty because the thread has just taken the
    records must still wait until they are written (a caller that flushes and
    then reads the log sees them)."""
    db = FlakyDb(store, delay=0.5)                # every transaction takes 0.5 s
    writer = make_writer(db, flush_interval=0.01, batch_size=1000)
    for i in range(20):
        writer.submit(rec(i))
    wait_for(lambda: writer.queue_depth == 0)     # taken by the thread, not yet written
    assert writer.flush(5)
    assert len(ids(store)) == 20


def test_flush_writes_at_once_even_with_a_flush_interval_longer_than_the_clock_has_run(
        store, make_writer):
    """``time.monotonic()`` counts from boot on Linux: a flush must not wait for an
    interval that has not yet passed since then (a machine up for minutes, an
    interval of hours)."""
    writer = make_writer(store, flush_interval=time.monotonic() + 3600, batch_size=1000)
    for i in range(3):
        writer.submit(rec(i))
    assert writer.flush(5)
    assert len(ids(store)) == 3


def test_a_writer_used_before_a_fork_starts_afresh_in_the_child(store, make_writer):
    """The child of a fork (gunicorn with a preloaded app) gets its own queue and
    thread: the parent's queued records are the parent's to write."""
    import os

    writer = make_writer(store, flush_interval=3600, batch_size=100_000)
    writer.submit(rec(0))
    parent_thread = writer._thread
    pid = os.fork()
    if pid == 0:                                  # the child: report through the exit code
        try:
            fresh = writer.queue_depth == 0 or writer._pid != os.getpid()
            writer._ensure_started()
            ok = (fresh and writer._pid == os.getpid() and writer._thread is not parent_thread
                  and writer._thread.is_alive() and writer.queue_depth == 0)
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert writer._thread is parent_thread and writer.queue_depth == 1
    assert writer.flush(5) and len(ids(store)) == 1


def refusing(monkeypatch, refused):
    """``chain.append`` as a store that refuses (a data exception, as PostgreSQL
    raises for a value it cannot hold) any batch holding one of ``refused``."""
    from sqlalchemy.exc import DataError

    from pdp.audit import writer as writer_module
    from pdp.store.db import translate_errors

    real = chain.append

    def append(db, records, **options):
        if any(r.decision_id in refused for r in records):
            with translate_errors():
                raise DataError("INSERT", {}, Exception("value too long (test)"))
        return real(db, records, **options)
    monkeypatch.setattr(writer_module.chain, "append", append)


def test_a_record_the_store_refuses_is_quarantined_and_the_others_written(
        store, make_writer, tmp_path, monkeypatch):
    """A record the database refuses (not: the database is down) must not stall the
    log: the batch is split until it is alone, the others are written in order, and
    it is kept, whole, in the spill directory's quarantine file (and counted)."""
    import json

    from pdp.audit.record import EncodedRecord

    records = [EncodedRecord.from_record(rec(i)) for i in range(9)]
    bad = records[4].decision_id
    refusing(monkeypatch, {bad})
    metrics = Metrics()
    metrics.counts["quarantined"] = 0
    metrics.quarantined = lambda n: metrics.counts.__setitem__(
        "quarantined", metrics.counts["quarantined"] + n)
    writer = make_writer(store, metrics=metrics, batch_size=100)
    for r in records:
        writer.submit(r)
    assert writer.flush(10)
    assert ids(store) == [r.decision_id for r in records if r.decision_id != bad]
    assert chain.verify(store).ok
    (kept,) = (tmp_path / "spill").glob("quarantine-*.jsonl")
    (line,) = kept.read_text().splitlines()
    entry = json.loads(line)
    assert entry["record"]["decision_id"] == bad and "value too long" in entry["error"]
    assert metrics.counts["quarantined"] == 1 and metrics.counts["spilled"] == 0
    assert list((tmp_path / "spill").glob("*.log")) == []          # nothing left to replay


def test_a_refused_record_in_a_spill_file_does_not_stall_its_replay(store, make_writer,
                                                                    tmp_path, monkeypatch):
    """Spilled while the store was down, refused when it is back: the replay writes
    the others and quarantines it, instead of failing on it for ever."""
    from pdp.audit.record import EncodedRecord

    records = [EncodedRecord.from_record(rec(i)) for i in range(6)]
    db = FlakyDb(store)
    db.down = True
    writer = make_writer(db, batch_size=100)
    for r in records:
        writer.submit(r)
    wait_for(lambda: list((tmp_path / "spill").glob("*.log")))     # spilled
    refusing(monkeypatch, {records[2].decision_id})
    db.down = False
    assert writer.flush(10)
    wait_for(lambda: len(ids(store)) == 5)
    assert ids(store) == [r.decision_id for i, r in enumerate(records) if i != 2]
    assert len(list((tmp_path / "spill").glob("quarantine-*.jsonl"))) == 1


def test_a_value_postgresql_cannot_hold_is_recognised_as_refused(store, make_writer, tmp_path,
                                                                 monkeypatch):
    """For real: with the record layer's length limit lifted, a 2,000-character
    resource id reaches the database. PostgreSQL refuses it (varchar(1024)) and the
    writer quarantines it; SQLite stores it. Either way the others are written."""
    from pdp.audit import record as record_module
    from pdp.audit.record import EncodedRecord

    monkeypatch.setitem(record_module.TEXT_LIMITS, "resource_id", 100_000)
    records = [EncodedRecord.from_record(rec(i)) for i in range(3)]
    records[1] = EncodedRecord.from_record(dataclasses.replace(rec(1), resource_id="x" * 2000))
    writer = make_writer(store, batch_size=100)
    for r in records:
        writer.submit(r)
    assert writer.flush(10)
    quarantined = list((tmp_path / "spill").glob("quarantine-*.jsonl"))
    if store.is_postgresql:
        assert ids(store) == [records[0].decision_id, records[2].decision_id]
        assert len(quarantined) == 1
    else:
        assert len(ids(store)) == 3 and quarantined == []
    assert chain.verify(store).ok
