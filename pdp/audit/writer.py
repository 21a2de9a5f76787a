"""The decision log's writer: a :class:`~pdp.service.decisions.DecisionSink` that
buffers records and writes them to the store in batches, spilling them to a local
file when the store is slow or down, and replaying that file when it is back.

One :class:`AuditWriter` per process. It starts its background thread on first
use, in the process that uses it (a writer built before a fork starts afresh in
the child: new queue, new spill file, new thread).

``record`` builds the record, encoded once (:func:`~pdp.audit.record.encode_record`:
the configured claims redacted, the JSON in its canonical form, which the chain
hashes and stores as it is) and then, by mode:

``async`` (the default)
    puts it in a bounded queue (``queue_size``) and returns. The thread writes the
    queue every ``flush_interval`` seconds (or as soon as ``batch_size`` records
    wait) in one transaction (:func:`pdp.audit.chain.append`). A full queue sends
    the record straight to the spill file (written, not fsynced, before
    ``record`` returns).
``durable``
    puts it in the queue and waits until the batch it joined is committed to the
    database or fsynced to the spill file (group commit: one transaction or one
    ``fsync`` for every record that arrived while the previous one ran). A full
    queue: the record is written and fsynced to the spill file by the request
    thread itself. When neither the database nor the spill file takes the record
    (or nothing happens within ``durable_timeout``), ``record`` raises
    :class:`AuditUnavailable`, and the service answers 503 ``decision_not_recorded``
    instead of the decision.

When a batch cannot be written to the database, it goes to the spill file
(fsynced) and the writer stops trying the database for a while (backoff from
``retry_min`` to ``retry_max`` seconds); meanwhile every batch goes to the spill
file. Once the database answers again the spill files are replayed, in order,
before any newer batch: this process's own file (rotated first, removed after the
commit of its last record), then files left by dead processes (any file whose
``flock`` can be taken; see :mod:`pdp.audit.spill`). Replaying is idempotent: a
record whose decision id is already in the log is skipped.

:meth:`AuditWriter.close` (gunicorn's ``worker_exit``, and ``atexit``) writes what
is queued, replays what it can, and stops the thread.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdp.audit import chain, spill
from pdp.audit.record import AuditRecord, EncodedRecord, encode_record
from pdp.errors import PdpError
from pdp.store.db import Database

log = logging.getLogger(__name__)

MODES = ("async", "durable", "off")

__all__ = ["MODES", "AuditUnavailable", "AuditWriter", "WriterMetrics", "append_isolating",
           "quarantine_record", "replay_spill_dir"]


class AuditUnavailable(PdpError):
    """A record could be neither written to the store nor spilled to disk."""

    code = "decision_not_recorded"


class WriterMetrics:
    """Where the writer reports what it does (no-ops; ``create_app`` passes
    Prometheus-backed ones)."""

    def queue_depth(self, depth: int) -> None: ...
    def written(self, count: int) -> None: ...
    def spilled(self, count: int) -> None: ...
    def replayed(self, count: int) -> None: ...
    def write_failed(self, count: int) -> None: ...
    def quarantined(self, count: int) -> None: ...


@dataclass(eq=False, slots=True)
class _Batch:
    """The records queued between two drains: what durable requests wait on."""

    event: threading.Event = field(default_factory=threading.Event)
    ok: bool = False


class AuditWriter:
    """See the module docstring."""

    def __init__(self, db: Database, *, mode: str = "async",
                 spill_dir: str | os.PathLike = "var/audit-spill", queue_size: int = 10_000,
                 flush_interval: float = 0.2, batch_size: int = 500,
                 redact: Iterable[str] = (), metrics: WriterMetrics | None = None,
                 durable_timeout: float = 10.0, retry_min: float = 0.5,
                 retry_max: float = 15.0, orphan_interval: float = 30.0,
                 spill_max_bytes: int | None = None):
        if mode not in ("async", "durable"):
            raise ValueError(f"mode must be async or durable, not {mode!r}")
        self.db = db
        self.mode = mode
        self.spill_dir = Path(spill_dir)
        self.spill_max_bytes = spill_max_bytes
        self.queue_size = queue_size
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.redact = tuple(redact)
        self.metrics = metrics or WriterMetrics()
        self.durable_timeout = durable_timeout
        self.retry_min, self.retry_max = retry_min, retry_max
        self.orphan_interval = orphan_interval
        self._start_lock = threading.Lock()
        self._pid: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._queue: collections.deque[AuditRecord | EncodedRecord] = collections.deque()
        self._batch = _Batch()
        #: The batch the thread has taken and is writing (``flush`` waits for it too).
        self._in_flight: _Batch | None = None
        self._first_at: float | None = None
        self._closing = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._spill = spill.SpillFile(self.spill_dir, self.spill_max_bytes)
        self._pending: list[tuple[Path, int]] = []     # rotated own files, held
        self._down_until = 0.0
        self._backoff = self.retry_min
        self._orphans_at = 0.0

    # ------------------------------------------------------------------ the sink

    @property
    def durable(self) -> bool:
        return self.mode == "durable"

    def record(self, outcome: Any, input: Any, caller: Any) -> None:
        """``DecisionSink.record``: see the module docstring."""
        self.submit(encode_record(outcome, input, redact=self.redact))

    def submit(self, record: AuditRecord | EncodedRecord) -> None:
        """Queue (or spill) one record; in durable mode, wait until it is kept."""
        self._ensure_started()
        batch = None
        with self._cond:
            if self._closed:
                raise AuditUnavailable("the decision log writer is closed")
            queued = len(self._queue) < self.queue_size
            if queued:
                if not self._queue:
                    self._first_at = time.monotonic()
                self._queue.append(record)
                batch = self._batch
                depth = len(self._queue)
                if self.durable or depth == 1 or depth >= self.batch_size:
                    self._cond.notify()
        if not queued:
            self._spill_records([record], fsync=self.durable)
            return
        self.metrics.queue_depth(depth)
        if self.durable:
            if not batch.event.wait(self.durable_timeout):
                raise AuditUnavailable(
                    f"the decision record was not kept within {self.durable_timeout} s")
            if not batch.ok:
                raise AuditUnavailable("the decision record could be neither written to "
                                       "the database nor spilled to disk")

    def _spill_records(self, records: Sequence[AuditRecord], *, fsync: bool) -> None:
        try:
            self._spill.append([r.to_json() for r in records], fsync=fsync)
        except OSError as exc:
            self.metrics.write_failed(len(records))
            raise AuditUnavailable(f"the decision log buffer is full and the spill file "
                                   f"cannot be written: {exc}") from exc
        self.metrics.spilled(len(records))

    # ------------------------------------------------------------------ lifecycle

    def _ensure_started(self) -> None:
        if self._pid == os.getpid() and self._thread is not None:
            return
        with self._start_lock:
            if self._pid == os.getpid() and self._thread is not None:
                return
            if self._pid is not None:          # forked: the parent's state is not ours
                self._reset()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="pdp-audit-writer",
                                            daemon=True)
            self._thread.start()
            _register(self)

    def start(self) -> None:
        """Start the thread now (it starts on first ``record`` otherwise)."""
        self._ensure_started()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (or spill it), replay what can be, stop the thread."""
        if self._pid != os.getpid() or self._thread is None:
            return
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the decision log writer did not finish within %s s", timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far has been written or spilled."""
        self._ensure_started()
        with self._cond:
            if self._queue:
                batch = self._batch
                self._first_at = float("-inf")    # due now, whatever the clock reads
                self._cond.notify()
            else:                         # nothing queued: wait for what is being written
                batch = self._in_flight
                if batch is None:
                    return True
        return batch.event.wait(timeout)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while True:
            items, batch, closing = self._take()
            try:
                if items:
                    self._write(items, batch)
                elif self._due():
                    self._replay_pending()
            except Exception:                        # never let the thread die
                log.exception("unexpected error in the decision log writer")
                if batch is not None and not batch.event.is_set():
                    batch.event.set()
            if batch is not None:
                with self._cond:
                    if self._in_flight is batch:
                        self._in_flight = None
            if closing:
                with self._cond:
                    if self._queue:
                        continue
                    self._closed = True
                break
        if self._pending or self._spill.size():    # last chance, backoff or not
            self._down_until = 0.0
            try:
                self._replay_pending()
            except Exception:
                log.exception("could not replay the spill files at shutdown")
        self._spill.close()
        for path, fd in self._pending:
            os.close(fd)
        self._pending.clear()

    def _take(self) -> tuple[list[AuditRecord], _Batch | None, bool]:
        """Wait for work; return the queued records and the batch they form."""
        with self._cond:
            while True:
                if self._closing:
                    break
                if self._queue:
                    if self.durable or len(self._queue) >= self.batch_size:
                        break
                    left = (self._first_at or 0.0) + self.flush_interval - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                    continue
                if self._due():
                    return [], None, False
                self._cond.wait(self._idle_wait())
            items = list(self._queue)
            self._queue.clear()
            batch, self._batch = self._batch, _Batch()
            self._in_flight = batch
            self._first_at = None
            closing = self._closing
        self.metrics.queue_depth(0)
        return items, batch, closing

    def _idle_wait(self) -> float:
        now = time.monotonic()
        waits = [self.orphan_interval]
        if self._pending or self._spill.size():
            waits.append(max(0.05, self._down_until - now))
        return max(0.05, min(waits))

    def _due(self) -> bool:
        """Whether a replay should be tried now: something to replay, and the
        database not in backoff."""
        now = time.monotonic()
        if now < self._down_until:
            return False
        return bool(self._pending or self._spill.size() or now >= self._orphans_at)

    def _write(self, items: list[AuditRecord], batch: _Batch | None) -> None:
        """Write ``items`` to the database (after any spilled records), else to the
        spill file; in backoff, the database is tried only if the spill file fails."""
        tried = time.monotonic() >= self._down_until
        ok = tried and self._to_db(items)
        if not ok:
            ok = self._to_spill(items)
        if not ok and not tried:
            ok = self._to_db(items)
        if batch is not None:
            batch.ok = ok
            batch.event.set()
        if not ok and not self.durable:
            # Answered already: keep them in memory and try again.
            with self._cond:
                self._queue.extendleft(reversed(items))
                if self._first_at is None:
                    self._first_at = time.monotonic()
            time.sleep(min(self._backoff, 1.0))

    def _to_db(self, items: list[AuditRecord]) -> bool:
        if not self._replay_pending():
            return False
        try:
            for i in range(0, len(items), self.batch_size):
                inserted = append_isolating(self.db, items[i:i + self.batch_size],
                                            self._quarantine, fresh=True)
                self.metrics.written(inserted)
        except Exception as exc:
            self._down(exc)
            return False
        self._up()
        return True

    def _quarantine(self, record: AuditRecord | EncodedRecord, exc: BaseException) -> None:
        quarantine_record(self.spill_dir, record, exc)
        self.metrics.quarantined(1)

    def _to_spill(self, items: list[AuditRecord]) -> bool:
        try:
            self._spill.append([r.to_json() for r in items], fsync=True)
        except OSError as exc:
            log.error("%d decision records could be neither written to the database nor "
                      "spilled: %s", len(items), exc)
            self.metrics.write_failed(len(items))
            return False
        self.metrics.spilled(len(items))
        return True

    def _up(self) -> None:
        self._down_until = 0.0
        self._backoff = self.retry_min

    def _down(self, exc: BaseException) -> None:
        log.warning("the decision log cannot be written to the database (%s); spilling "
                    "to %s, retrying in %.1f s", str(exc).splitlines()[0] if str(exc) else
                    type(exc).__name__, self.spill_dir, self._backoff)
        self._down_until = time.monotonic() + self._backoff
        self._backoff = min(self.retry_max, self._backoff * 2)

    # ------------------------------------------------------------------ replay

    def _replay_pending(self) -> bool:
        """Replay this process's spill file, then orphaned ones; ``True`` when none
        is left waiting (so newer records may go to the database)."""
        handle = self._spill.rotate()
        if handle is not None:
            self._pending.append(handle)
        while self._pending:
            path, fd = self._pending[0]
            if not self._replay_file(path, fd):
                return False
            self._pending.pop(0)
        if time.monotonic() >= self._orphans_at:
            self._orphans_at = time.monotonic() + self.orphan_interval
            for path, fd in spill.claim_orphans(self.spill_dir):
                if not self._replay_file(path, fd):
                    os.close(fd)
                    self._orphans_at = 0.0
                    return False
        return True

    def _replay_file(self, path: Path, fd: int) -> bool:
        """Append the records of one spill file (ours or an orphan, locked by ``fd``),
        then remove it. ``False`` (file kept, fd kept open) when the database fails."""
        try:
            inserted = replay_fd(self.db, fd, path, batch_size=self.batch_size,
                                 quarantine=self._quarantine)
        except Exception as exc:
            self._down(exc)
            return False
        self._up()
        self.metrics.replayed(inserted)
        return True


def replay_fd(db: Database, fd: int, path: Path, *, batch_size: int = 500,
              quarantine: Callable[[AuditRecord | EncodedRecord, BaseException], None]
              | None = None) -> int:
    """Append every record of the spill file ``path`` (open and locked as ``fd``),
    in order, skipping those already in the log; then remove the file (renamed
    ``*.corrupt`` if a damaged frame was found) and close ``fd``. Returns the
    records inserted. On a database error the file stays, ``fd`` stays open, and
    the error is raised."""
    result = spill.read_fd(fd)
    records = []
    corrupt = result.corrupt_at is not None
    for payload in result.payloads:
        try:
            records.append(AuditRecord.from_json(payload))
        except (ValueError, KeyError, TypeError):
            corrupt = True
            break
    if quarantine is None:
        def quarantine(record, exc):
            quarantine_record(path.parent, record, exc)
    inserted = 0
    for i in range(0, len(records), batch_size):
        inserted += append_isolating(db, records[i:i + batch_size], quarantine)
    if corrupt:
        log.error("spill file %s is damaged at byte %s: the %d records before were "
                  "replayed, it is kept as %s%s", path, result.corrupt_at, len(records),
                  path.name, spill.CORRUPT_SUFFIX)
    if result.torn_bytes:
        log.warning("spill file %s ends with %d bytes of an unfinished record (ignored)",
                    path, result.torn_bytes)
    spill.release(path, fd, done=True, corrupt=corrupt)
    return inserted


# --------------------------------------------------------------------------- refused records

#: Records the database refused (see :func:`append_isolating`), one JSON line each:
#: ``{"error": "...", "record": {...}}``, in the spill directory.
QUARANTINE_PREFIX = "quarantine-"
QUARANTINE_SUFFIX = ".jsonl"


def append_isolating(db: Database, records: Sequence[AuditRecord | EncodedRecord],
                     quarantine: Callable[[AuditRecord | EncodedRecord, BaseException], None],
                     *, fresh: bool = False) -> int:
    """:func:`chain.append` ``records`` (``fresh`` as there); the number inserted.
    When the database refuses a value of a record (SQLSTATE class 22, a data
    exception: not the database being down), the batch is split until the refused
    records are alone: the others are appended, in order, and each refused one is
    handed to ``quarantine`` — so that one record the database cannot hold never
    stalls the log (retried and spilled for ever). Any other error propagates."""
    try:
        return chain.append(db, records, fresh=fresh).inserted
    except Exception as exc:
        if not _refused_by_database(exc):
            raise
        if len(records) == 1:
            quarantine(records[0], exc)
            return 0
        middle = len(records) // 2
        return (append_isolating(db, records[:middle], quarantine, fresh=fresh)
                + append_isolating(db, records[middle:], quarantine, fresh=fresh))


def _refused_by_database(exc: BaseException) -> bool:
    from sqlalchemy.exc import DataError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DataError):
            return True
        seen = seen.__cause__
    return False


def quarantine_record(directory: str | os.PathLike, record: AuditRecord | EncodedRecord,
                      exc: BaseException) -> Path:
    """Keep a record the database refused: appended (fsynced) to this process's
    quarantine file in ``directory``, logged as an error with its decision id.
    ``OSError`` when it cannot be written (the caller then keeps the batch)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{QUARANTINE_PREFIX}{os.getpid()}{QUARANTINE_SUFFIX}"
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    line = (b'{"error":' + json.dumps(reason).encode("utf-8") + b',"record":'
            + record.to_json() + b"}\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    log.error("the database refused decision record %s (%s); it is kept in %s, not in "
              "the decision log", record.decision_id, reason, path)
    return path


def replay_spill_dir(db: Database, directory: str | os.PathLike, *,
                     batch_size: int = 500) -> int:
    """Replay every spill file in ``directory`` that no live process holds (for
    tools and tests); returns the records inserted."""
    total = 0
    for path, fd in spill.claim_orphans(directory):
        try:
            total += replay_fd(db, fd, path, batch_size=batch_size)
        except Exception:
            os.close(fd)
            raise
    return total


# --------------------------------------------------------------------------- atexit

_writers: weakref.WeakSet[AuditWriter] = weakref.WeakSet()
_atexit_lock = threading.Lock()
_atexit_registered = False


def _register(writer: AuditWriter) -> None:
    global _atexit_registered
    with _atexit_lock:
        _writers.add(writer)
        if not _atexit_registered:
            atexit.register(_close_all)
            _atexit_registered = True


def _close_all() -> None:
    for writer in list(_writers):
        try:
            writer.close(timeout=5.0)
        except Exception:
            log.exception("could not close the decision log writer")
