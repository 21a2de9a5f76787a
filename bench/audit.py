#!/usr/bin/env python3
"""Decision-log write benchmark: what the audit writer sustains, and what it adds to
a decision.

Three parts, one table (scenario, backend, mode, threads, records/s, p50/p99 µs,
ratio to audit ``off``):

1. **Throughput into the store.**
   ``writer``: one :class:`~pdp.audit.writer.AuditWriter` fed as fast as possible for
   ``--seconds`` through ``writer.record(outcome, input, caller)`` — the sink call
   the service makes, so building (and redacting) each record is included — with
   realistic records (claims, attributes, context, a determining policy). In
   ``async`` mode one thread feeds it, and pauses while the writer's queue is 90 %
   full so that records reach the database instead of the spill file (the number
   spilled is checked: 0); records/s counts what is committed, up to the final
   ``flush``. In ``durable`` mode ``--threads`` threads call it (group commit).
   p50/p99 are those of the ``record`` call, i.e. the time a request thread spends
   in the sink. ``chain.append``: :func:`pdp.audit.chain.append` called directly
   in a loop with batches of 1, 100 and 500 records (``--batch-sizes``); p50/p99
   per call.
2. **Cost per decision.** A full ``POST /v1/decide`` through Flask's test client
   (``create_app`` with a migrated store, a ``decide`` key with trusted claims, an
   active policy set), audit ``off``, ``async`` and ``durable``, with 1 and more
   threads (``--threads``; each thread its own client), for ``--seconds`` each;
   p50/p99 of each request, decisions/s of all threads together, and the ratio of
   p50 (and p99) to audit ``off`` at the same backend and thread count. After each
   run the log is counted: every answered decision must be in it.
3. **Queries** (``--with-queries``): then runs ``bench/audit_query.py`` (filtered
   pages of ``GET /v1/decisions`` on 1,000,000 records, ~4 minutes to load; 50,000
   with ``--quick``) and prints its table below this one.

Backends: PostgreSQL (a scratch database ``pdp_bench_auditw_<random>`` on
``--url``, dropped at the end unless ``--keep``) and SQLite (a file in a
temporary directory) for reference.

    .venv/bin/python bench/audit.py                        # both backends, 5 s a run, ~3 min
    .venv/bin/python bench/audit.py --quick                # 0.5 s a run, fewer threads and batches
    .venv/bin/python bench/audit.py --backends sqlite --quick
    .venv/bin/python bench/audit.py --seconds 10 --threads 1,4,16 --with-queries
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

# bench/http.py would shadow the standard library's http package (Flask needs it):
# run as a script, drop this directory from sys.path; the project root instead.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))
sys.path.append(str(HERE))          # last: for benchhost, never before the stdlib

import sqlalchemy as sa  # noqa: E402
from benchhost import host  # noqa: E402

from pdp.api import AUDIT_EXTENSION, ApiOptions, create_app, services  # noqa: E402
from pdp.audit import chain  # noqa: E402
from pdp.audit.record import build_record  # noqa: E402
from pdp.audit.writer import AuditWriter, WriterMetrics  # noqa: E402
from pdp.config import Settings  # noqa: E402
from pdp.service import keys  # noqa: E402
from pdp.service.decisions import (  # noqa: E402
    Check,
    DecisionInput,
    DecisionOutcome,
    Subject,
    new_decision_id,
)
from pdp.store.db import Database  # noqa: E402

POLICIES = """\
policy "doc-owner-edit" {
  permit read, update on document
  when resource.owner == subject.sub
  reason "owners may edit their own documents"
}
policy "admins-anything" {
  permit * on *
  when "admin" in subject.roles
}
policy "no-archived-writes" {
  forbid update on document
  when resource.archived == true
}
"""
REDACT = ("email",)


def decide_body(i: int) -> dict:
    """A realistic decision request (an allow by ``doc-owner-edit``, 1 in 8 a deny)."""
    user = f"user-{i % 5000:05d}"
    return {
        "subject": {"claims": {"sub": user, "roles": ["user", "editor"],
                               "email": f"{user}@example.com", "department": "sales",
                               "tenant": "acme"}},
        "action": "read" if i % 4 else "update",
        "resource": {"type": "document", "id": f"doc-{i % 100_000:06d}",
                     "attributes": {"owner": user if i % 8 else "someone-else",
                                    "archived": False, "classification": "internal",
                                    "project": f"prj-{i % 40}"}},
        "context": {"ip": "10.1.2.3", "user_agent": "bench/1.0", "request_id": f"r-{i}"},
    }


def sample_decision(i: int = 1) -> tuple[DecisionOutcome, DecisionInput]:
    """An outcome and input as the service hands them to the sink."""
    body = decide_body(i)
    claims = body["subject"]["claims"]
    now = datetime.now(timezone.utc)
    check = Check(body["action"], body["resource"]["type"], body["resource"]["id"],
                  None, body["resource"]["attributes"])
    request = DecisionInput.of(Subject(claims=claims), check,
                               {**body["context"]}, "default")
    outcome = DecisionOutcome(
        decision_id=new_decision_id(), decision="allow", policy_set="default",
        policy_version=1, policies=("doc-owner-edit",),
        reasons=("owners may edit their own documents",), errors=(), claims=claims,
        context={**body["context"], "time": now.isoformat(), "caller": "bench-gw"},
        evaluation_us=23, time=now, caller="bench-gw", subject_source="claims")
    return outcome, request


# --------------------------------------------------------------------------- helpers

class CountingMetrics(WriterMetrics):
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {"written": 0, "spilled": 0, "replayed": 0, "failed": 0}

    def _add(self, key, n):
        with self.lock:
            self.counts[key] += n

    def written(self, count): self._add("written", count)
    def spilled(self, count): self._add("spilled", count)
    def replayed(self, count): self._add("replayed", count)
    def write_failed(self, count): self._add("failed", count)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def log_count(db: Database) -> int:
    with db.read() as s:
        return s.execute(sa.text("SELECT count(*) FROM decision_log")).scalar_one()


def machine() -> dict:
    return {**host(), "sqlalchemy": sa.__version__,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


@dataclasses.dataclass
class Row:
    scenario: str
    backend: str
    mode: str
    threads: int
    rate: float                 # records/s (or decisions/s)
    p50: float                  # µs
    p99: float                  # µs
    ratio: str = ""
    note: str = ""


# --------------------------------------------------------------------------- backends

class Backend:
    """A migrated scratch database (PostgreSQL) or file (SQLite)."""

    def __init__(self, kind: str, args, tmp: Path):
        self.kind = kind
        self.args = args
        self.admin = None
        self.name = None
        if kind == "postgresql":
            base = sa.engine.make_url(args.url)
            self.admin = sa.create_engine(base.set(database="postgres"),
                                          isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
            self.name = f"pdp_bench_auditw_{secrets.token_hex(4)}"
            with self.admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
            self.url = base.set(database=self.name)
        else:
            self.url = sa.engine.make_url(f"sqlite:///{tmp / 'bench-audit.db'}")
        self.db = Database(self.url)
        self.db.upgrade()
        self.tmp = tmp

    @property
    def label(self) -> str:
        return "PostgreSQL" if self.kind == "postgresql" else "SQLite"

    def server_info(self) -> str:
        if self.kind != "postgresql":
            import sqlite3
            return f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL default)"
        with self.db.read() as s:
            version = s.execute(sa.text("SHOW server_version")).scalar_one()
            sync = s.execute(sa.text("SHOW synchronous_commit")).scalar_one()
            fsync = s.execute(sa.text("SHOW fsync")).scalar_one()
        return f"PostgreSQL {version} (fsync={fsync}, synchronous_commit={sync})"

    def close(self) -> None:
        self.db.dispose()
        if self.admin is not None:
            if self.args.keep:
                print(f"kept database {self.name}", file=sys.stderr)
            else:
                with self.admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.admin.dispose()


# --------------------------------------------------------------------------- 1. throughput

def bench_writer_async(be: Backend, seconds: float) -> Row:
    outcome, request = sample_decision()
    metrics = CountingMetrics()
    writer = AuditWriter(be.db, mode="async", spill_dir=be.tmp / f"spill-{secrets.token_hex(3)}",
                         redact=REDACT, metrics=metrics)
    writer.start()
    high = int(writer.queue_size * 0.9)
    before = log_count(be.db)
    times, fed, paused = [], 0, 0
    new_id, replace, record = new_decision_id, dataclasses.replace, writer.record
    perf = time.perf_counter
    started = perf()
    deadline = started + seconds
    while perf() < deadline:
        if writer.queue_depth >= high:
            paused += 1
            time.sleep(0.001)
            continue
        o = replace(outcome, decision_id=new_id())
        t0 = perf()
        record(o, request, None)
        times.append(perf() - t0)
        fed += 1
    writer.flush(timeout=120)
    elapsed = perf() - started
    writer.close()
    stored = log_count(be.db) - before
    c = metrics.counts
    note = f"{fed:,} fed, {c['written']:,} written, {c['spilled']} spilled"
    if paused:
        note += f", feeder paused {paused}× on a full queue"
    if stored != fed:
        note += f" — LOG HAS {stored:,}"
    return Row("writer (record → commit)", be.label, "async", 1, c["written"] / elapsed,
               pct(times, 50) * 1e6, pct(times, 99) * 1e6, note=note)


def bench_writer_durable(be: Backend, seconds: float, threads: int) -> Row:
    outcome, request = sample_decision()
    metrics = CountingMetrics()
    writer = AuditWriter(be.db, mode="durable",
                         spill_dir=be.tmp / f"spill-{secrets.token_hex(3)}", redact=REDACT,
                         metrics=metrics)
    writer.start()
    before = log_count(be.db)
    all_times: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def work(times):
        barrier.wait()
        perf, replace, record = time.perf_counter, dataclasses.replace, writer.record
        while perf() < stop_at[0]:
            o = replace(outcome, decision_id=new_decision_id())
            t0 = perf()
            record(o, request, None)
            times.append(perf() - t0)

    pool = [threading.Thread(target=work, args=(t,)) for t in all_times]
    for t in pool:
        t.start()
    started = time.perf_counter()
    stop_at[0] = started + seconds
    barrier.wait()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    writer.close()
    times = [x for t in all_times for x in t]
    stored = log_count(be.db) - before
    c = metrics.counts
    note = f"{len(times):,} records, {c['spilled']} spilled"
    if stored != len(times):
        note += f" — LOG HAS {stored:,}"
    return Row("writer (record → commit)", be.label, "durable", threads, len(times) / elapsed,
               pct(times, 50) * 1e6, pct(times, 99) * 1e6, note=note)


def bench_append(be: Backend, seconds: float, batch: int) -> Row:
    outcome, request = sample_decision()
    template = build_record(outcome, request, redact=REDACT)
    replace = dataclasses.replace
    times, count = [], 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        records = [replace(template, decision_id=new_decision_id()) for _ in range(batch)]
        t0 = time.perf_counter()
        chain.append(be.db, records)
        times.append(time.perf_counter() - t0)
        count += batch
    total = sum(times)
    return Row(f"chain.append, batch {batch}", be.label, "direct", 1, count / total,
               pct(times, 50) * 1e6, pct(times, 99) * 1e6,
               note=f"{len(times):,} transactions; µs per transaction")


# --------------------------------------------------------------------------- 2. latency

class DecideRun:
    """``create_app`` on the backend's store with one audit mode."""

    def __init__(self, be: Backend, mode: str, secrets_: tuple[str, str]):
        settings = Settings(database_url=be.url.render_as_string(hide_password=False),
                            audit_mode=mode, audit_redact_claims=REDACT, log_level="ERROR",
                            audit_spill_dir=str(be.tmp / f"spill-{mode}-{secrets.token_hex(3)}"))
        self.app = create_app(settings, store=be.db,
                              options=ApiOptions(auth_cache_ttl=300.0),
                              verifier=_NoTokens())
        self.decide_key = secrets_[1]

    def close(self) -> None:
        services(self.app).active.stop()
        writer = self.app.extensions.get(AUDIT_EXTENSION)
        if writer is not None:
            writer.close()

    def writer(self):
        return self.app.extensions.get(AUDIT_EXTENSION)


class _NoTokens:
    """No end-user tokens in this benchmark (claims are asserted by a trusted key)."""

    def verify(self, token):
        raise AssertionError("no tokens here")

    def warm(self, wait=False):
        return None


def setup_store(be: Backend) -> tuple[str, str]:
    admin = keys.create_key(be.db, name="bench-admin", roles=["admin"],
                            created_by="bench").secret
    decide = keys.create_key(be.db, name="bench-gw", roles=["decide"], trusted_claims=True,
                             created_by="bench").secret
    app = create_app(Settings(database_url=be.url.render_as_string(hide_password=False),
                              audit_mode="off", log_level="ERROR"),
                     store=be.db, verifier=_NoTokens())
    client = app.test_client()
    response = client.post("/v1/policy-sets/default/versions",
                           json={"files": {"docs.policy": POLICIES}, "activate": True},
                           headers={"Authorization": f"Bearer {admin}"})
    services(app).active.stop()
    if response.status_code != 201:
        raise SystemExit(f"could not publish the policies: {response.status_code} "
                         f"{response.get_data(as_text=True)}")
    return admin, decide


def bench_decide(be: Backend, mode: str, threads: int, seconds: float,
                 keys_: tuple[str, str], warmup: int = 200) -> Row:
    run = DecideRun(be, mode, keys_)
    headers = {"Authorization": f"Bearer {run.decide_key}", "Content-Type": "application/json"}
    bodies = [json.dumps(decide_body(i)).encode() for i in range(1000)]
    try:
        client = run.app.test_client()
        for i in range(warmup):
            r = client.post("/v1/decide", data=bodies[i % len(bodies)], headers=headers)
            if r.status_code != 200:
                raise SystemExit(f"/v1/decide answered {r.status_code}: "
                                 f"{r.get_data(as_text=True)}")
        if run.writer() is not None:
            run.writer().flush(timeout=60)
        before = log_count(be.db)
        all_times: list[list[float]] = [[] for _ in range(threads)]
        failures = [0]
        barrier = threading.Barrier(threads + 1)
        stop_at = [0.0]

        def work(n, times):
            c = run.app.test_client()
            perf = time.perf_counter
            i = n * 7919
            barrier.wait()
            while perf() < stop_at[0]:
                body = bodies[i % 1000]
                i += 1
                t0 = perf()
                r = c.post("/v1/decide", data=body, headers=headers)
                times.append(perf() - t0)
                if r.status_code != 200:
                    failures[0] += 1

        pool = [threading.Thread(target=work, args=(n, t)) for n, t in enumerate(all_times)]
        for t in pool:
            t.start()
        started = time.perf_counter()
        stop_at[0] = started + seconds
        barrier.wait()
        for t in pool:
            t.join()
        elapsed = time.perf_counter() - started
        times = [x for t in all_times for x in t]
        note = f"{len(times):,} decisions"
        if failures[0]:
            note += f", {failures[0]} NOT 200"
        if run.writer() is not None:
            run.writer().flush(timeout=60)
            stored = log_count(be.db) - before
            if stored != len(times):
                note += f" — LOG HAS {stored:,}"
            else:
                note += ", all in the log"
        return Row("POST /v1/decide", be.label, mode, threads, len(times) / elapsed,
                   pct(times, 50) * 1e6, pct(times, 99) * 1e6, note=note)
    finally:
        run.close()


# --------------------------------------------------------------------------- main

def fmt_rate(v: float) -> str:
    return f"{v:,.0f}"


def fmt_us(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def print_table(rows: list[Row], out=sys.stdout) -> None:
    header = ("| scenario | backend | mode | threads | records/s | p50 µs | p99 µs "
              "| vs off (p50 / p99) | notes |")
    print(header, file=out)
    print("|---|---|---|--:|--:|--:|--:|--:|---|", file=out)
    for r in rows:
        print(f"| {r.scenario} | {r.backend} | {r.mode} | {r.threads} | {fmt_rate(r.rate)} "
              f"| {fmt_us(r.p50)} | {fmt_us(r.p99)} | {r.ratio} | {r.note} |", file=out)


def add_ratios(rows: list[Row]) -> None:
    off = {(r.backend, r.threads): r for r in rows
           if r.scenario == "POST /v1/decide" and r.mode == "off"}
    for r in rows:
        base = off.get((r.backend, r.threads))
        if r.scenario == "POST /v1/decide" and base is not None:
            r.ratio = f"{r.p50 / base.p50:.2f}× / {r.p99 / base.p99:.2f}×"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432",
                        help="PostgreSQL server (a scratch database is created on it)")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--threads", default="1,8",
                        help="thread counts for durable writers and /v1/decide (1 always runs)")
    parser.add_argument("--batch-sizes", default="1,100,500")
    parser.add_argument("--parts", default="throughput,latency",
                        help="throughput (writer, chain.append), latency (/v1/decide)")
    parser.add_argument("--with-queries", action="store_true",
                        help="then run bench/audit_query.py (1M records; 50k with --quick)")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--quick", action="store_true",
                        help="0.5 s runs, threads 1,4, batches 1,100")
    args = parser.parse_args(argv)
    given = set(a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:]))
    if args.quick:
        if "--seconds" not in given:
            args.seconds = 0.5
        if "--threads" not in given:
            args.threads = "1,4"
        if "--batch-sizes" not in given:
            args.batch_sizes = "1,100"
    threads = sorted({1, *(int(t) for t in args.threads.split(",") if t)})
    batches = [int(b) for b in args.batch_sizes.split(",") if b]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    parts = {p.strip() for p in args.parts.split(",")}
    for b in backends:
        if b not in ("postgresql", "sqlite"):
            parser.error(f"unknown backend {b!r}")

    info = machine()
    print(f"machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}, "
          f"SQLAlchemy {info['sqlalchemy']}, load {info['load_1min_at_start']}, "
          f"{info['date']}", file=sys.stderr)
    rows: list[Row] = []
    servers = []
    with tempfile.TemporaryDirectory(prefix="pdp-bench-audit-") as tmp:
        for kind in backends:
            sub = Path(tmp) / kind
            sub.mkdir()
            be = Backend(kind, args, sub)
            try:
                servers.append(be.server_info())
                print(f"{be.label}: {servers[-1]}", file=sys.stderr)
                if "throughput" in parts:
                    rows.append(bench_writer_async(be, args.seconds))
                    print(f"  {rows[-1]}", file=sys.stderr)
                    for n in threads:
                        rows.append(bench_writer_durable(be, args.seconds, n))
                        print(f"  {rows[-1]}", file=sys.stderr)
                    for b in batches:
                        rows.append(bench_append(be, args.seconds, b))
                        print(f"  {rows[-1]}", file=sys.stderr)
                if "latency" in parts:
                    keys_ = setup_store(be)
                    for n in threads:
                        for mode in ("off", "async", "durable"):
                            rows.append(bench_decide(be, mode, n, args.seconds, keys_))
                            print(f"  {rows[-1]}", file=sys.stderr)
            finally:
                be.close()
    add_ratios(rows)
    print(f"\nDecision log writes: {args.seconds:g} s per run; {info['nproc']} cores, "
          f"{info['cpu']}, Python {info['python']}; " + "; ".join(servers) + "\n")
    print_table(rows)
    print("\nrecords/s: committed records per second (writer, chain.append) or answered "
          "decisions per second of all threads (/v1/decide). p50/p99: per record call "
          "(writer), per transaction (chain.append), per request (/v1/decide).")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": info, "servers": servers, "options": vars(args),
             "rows": [dataclasses.asdict(r) for r in rows]}, indent=2))
    if args.with_queries:
        import importlib.util
        spec = importlib.util.spec_from_file_location("audit_query", HERE / "audit_query.py")
        audit_query = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(audit_query)
        print("\nDecision log queries (bench/audit_query.py):", flush=True)
        qargs = ["--url", args.url] + (["--quick"] if args.quick else [])
        return audit_query.main(qargs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
