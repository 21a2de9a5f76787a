#!/usr/bin/env python3
"""Decision-log query benchmark: filtered pages of ``GET /v1/decisions`` on PostgreSQL.

Creates a scratch database on a PostgreSQL server (``--url``, default
``postgresql+psycopg://postgres@127.0.0.1:5432``; the database is
``pdp_bench_audit_<random>``, dropped at the end unless ``--keep``), migrates it,
bulk-loads ``--records`` synthetic decisions (default 1,000,000) with ``COPY``,
computing the hash chain as the writer does (:func:`pdp.audit.chain.record_hash`),
runs ``ANALYZE``, checks the chain's last records with ``verify(from_seq=…)``, then
times each query scenario ``--runs`` times (each run with other filter values)
through :func:`pdp.audit.queries.list_decisions` — the code behind the HTTP
endpoint, without HTTP — and prints p50/p99/max per scenario.

    .venv/bin/python bench/audit_query.py                 # 1,000,000 records, ~2-4 minutes
    .venv/bin/python bench/audit_query.py --quick         # 50,000 records, seconds
    .venv/bin/python bench/audit_query.py --records 200000 --runs 200 --keep
    .venv/bin/python bench/audit_query.py --try-indexes  # then with the suggested indexes

The target (the issue): a filtered page in under 50 ms with 1,000,000 records.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import secrets
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from pdp.audit import chain, queries  # noqa: E402
from pdp.audit.queries import DecisionFilter  # noqa: E402
from pdp.store.db import Database  # noqa: E402

START = datetime(2026, 10, 1, tzinfo=timezone.utc)
SPAN = timedelta(days=30)
SUBJECTS = 10_000
CALLERS = [f"svc-{i:02d}" for i in range(20)]
ACTIONS = ["read", "create", "update", "delete", "share"]
TYPES = [f"type-{i:02d}" for i in range(20)]
RESOURCES = 100_000
POLICIES = [f"policy-{i:03d}" for i in range(50)]
SETS = ["default", "billing", "admin"]
COLUMNS = ("seq", "kind", "decision_id", "time", "caller", "policy_set", "policy_version",
           "subject", "action", "resource_type", "resource_id", "decision", "claims",
           "redacted", "action_attributes", "resource_attributes", "context", "policies",
           "reasons", "errors", "evaluation_us", "details", "prev_hash", "hash")
JSON_COLUMNS = {"claims", "redacted", "action_attributes", "resource_attributes", "context",
                "policies", "reasons", "errors", "details"}


def synthetic(rng: random.Random, seq: int, n: int) -> dict:
    t = START + SPAN * (seq / n)
    t = t.replace(microsecond=t.microsecond // 1000 * 1000)
    subject = f"u-{int(rng.paretovariate(1.2)) % SUBJECTS:05d}"
    deny = rng.random() < 0.2
    resource = rng.randrange(RESOURCES)
    policies = rng.sample(POLICIES, rng.choice((1, 1, 1, 2))) if (not deny or rng.random() < .5) else []
    errors = ([{"code": rng.choice(["token_expired", "eval_error", "token_invalid"]),
                "message": "synthetic"}] if deny and rng.random() < 0.1 else [])
    return {
        "seq": seq, "kind": "decision", "decision_id": f"b-{seq:09d}", "time": t,
        "caller": rng.choice(CALLERS), "policy_set": rng.choice(SETS),
        "policy_version": rng.randint(1, 10), "subject": subject,
        "action": rng.choice(ACTIONS), "resource_type": TYPES[resource % len(TYPES)],
        "resource_id": f"r-{resource:06d}", "decision": "deny" if deny else "allow",
        "claims": {"sub": subject, "roles": ["user"]}, "redacted": [],
        "action_attributes": None, "resource_attributes": {"owner": subject},
        "context": {"ip": "10.0.0.1"}, "policies": policies,
        "reasons": ["synthetic"] if not deny else [], "errors": errors,
        "evaluation_us": rng.randint(20, 400), "details": None,
    }


def _copy_value(name: str, value) -> str:
    if value is None and name not in JSON_COLUMNS:
        return "\\N"
    if name in JSON_COLUMNS:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def load(db: Database, n: int, seed: int, chunk: int = 50_000) -> float:
    rng = random.Random(seed)
    prev = chain.GENESIS_HASH
    started = time.perf_counter()
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        seq = 0
        while seq < n:
            log_buf, pol_buf = io.StringIO(), io.StringIO()
            for _ in range(min(chunk, n - seq)):
                seq += 1
                row = synthetic(rng, seq, n)
                row["prev_hash"] = prev
                row["hash"] = prev = chain.record_hash(prev, chain.row_body(row))
                log_buf.write("\t".join(_copy_value(c, row[c]) for c in COLUMNS) + "\n")
                for policy_id in row["policies"]:
                    pol_buf.write(f"{seq}\t{policy_id}\n")
            with cur.copy(f"COPY decision_log ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                copy.write(log_buf.getvalue())
            with cur.copy("COPY decision_log_policies (seq, policy_id) FROM STDIN") as copy:
                copy.write(pol_buf.getvalue())
            cur.execute("UPDATE audit_chain_head SET seq = %s, hash = %s WHERE id = 1",
                        (seq, prev))
            raw.commit()
            print(f"\r  loaded {seq:,} / {n:,} ({time.perf_counter() - started:.0f}s)",
                  end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        cur.execute("ANALYZE decision_log")
        cur.execute("ANALYZE decision_log_policies")
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - started


def scenarios(n: int):
    """(name, function(rng) -> (filter, cursor)) of the timed queries."""
    def subject(rng):
        return f"u-{int(rng.paretovariate(1.2)) % SUBJECTS:05d}"

    def rare_subject(rng):
        return f"u-{rng.randrange(100, 1000):05d}"

    def hour(rng):
        at = START + timedelta(hours=rng.randrange(24 * 30 - 1))
        return at, at + timedelta(hours=1)

    def resource(rng):
        n = rng.randrange(RESOURCES)
        return {"resource_type": TYPES[n % len(TYPES)], "resource_id": f"r-{n:06d}"}

    def mid_cursor(rng):
        return queries.encode_cursor(rng.randrange(n // 4, n // 2))

    return [
        ("no filter (newest page)", lambda r: (DecisionFilter(), None)),
        ("no filter, deep cursor", lambda r: (DecisionFilter(), mid_cursor(r))),
        ("subject (frequent)", lambda r: (DecisionFilter(subject=subject(r)), None)),
        ("subject (rare)", lambda r: (DecisionFilter(subject=rare_subject(r)), None)),
        ("subject + deny", lambda r: (DecisionFilter(subject=subject(r), decision="deny"), None)),
        ("caller", lambda r: (DecisionFilter(caller=r.choice(CALLERS)), None)),
        ("caller, deep cursor", lambda r: (DecisionFilter(caller=r.choice(CALLERS)),
                                           mid_cursor(r))),
        ("action + deny", lambda r: (DecisionFilter(action=r.choice(ACTIONS), decision="deny"),
                                     None)),
        ("decision=deny", lambda r: (DecisionFilter(decision="deny"), None)),
        ("resource type + id", lambda r: (DecisionFilter(**resource(r)), None)),
        ("resource id only", lambda r: (DecisionFilter(
            resource_id=f"r-{r.randrange(RESOURCES):06d}"), None)),
        ("policy id", lambda r: (DecisionFilter(policy_id=r.choice(POLICIES)), None)),
        ("policy id + deny", lambda r: (DecisionFilter(policy_id=r.choice(POLICIES),
                                                       decision="deny"), None)),
        ("policy set + version", lambda r: (DecisionFilter(policy_set=r.choice(SETS),
                                                           policy_version=r.randint(1, 10)), None)),
        ("time range (1 hour)", lambda r: (DecisionFilter(*hour(r)), None)),
        ("time range + subject", lambda r: (DecisionFilter(*hour(r), subject=subject(r)), None)),
        ("time range + caller + deny", lambda r: (DecisionFilter(
            *hour(r), caller=r.choice(CALLERS), decision="deny"), None)),
    ]


#: Indexes ``--try-indexes`` adds (the read side's suggestion to the migration).
TRY_INDEXES = ["CREATE INDEX ix_try_decision_log_resource_id_time "
               "ON decision_log (resource_id, time)"]


def time_scenarios(db: Database, args) -> list[tuple]:
    rng = random.Random(args.seed + 1)
    rows = []
    for label, make in scenarios(args.records):
        for _ in range(3):                          # warm up
            f, c = make(rng)
            queries.list_decisions(db, f, limit=args.limit, cursor=c)
        times, counts = [], []
        for _ in range(args.runs):
            f, c = make(rng)
            t0 = time.perf_counter()
            page = queries.list_decisions(db, f, limit=args.limit, cursor=c)
            times.append((time.perf_counter() - t0) * 1000)
            counts.append(len(page.decisions))
        rows.append((label, statistics.median(counts), _pct(times, 50), _pct(times, 99),
                     max(times)))
    return rows


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(args) -> int:
    base = sa.engine.make_url(args.url)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT",
                             poolclass=sa.NullPool)
    name = f"pdp_bench_audit_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    db = Database(base.set(database=name))
    try:
        db.upgrade()
        print(f"database {name}: loading {args.records:,} records", file=sys.stderr)
        took = load(db, args.records, args.seed)
        size = None
        with db.read() as s:
            size = s.execute(sa.text("SELECT pg_size_pretty(pg_total_relation_size("
                                     "'decision_log'))")).scalar_one()
        print(f"loaded in {took:.0f}s; decision_log with indexes: {size}", file=sys.stderr)
        check = chain.verify(db, from_seq=max(1, args.records - 5000))
        print(f"chain check of the last {check.checked} records: "
              f"{'ok' if check.ok else check.message}", file=sys.stderr)

        rows = time_scenarios(db, args)
        rng = random.Random(args.seed + 2)
        stats_times = []
        for _ in range(max(5, args.runs // 10)):
            at = START + timedelta(days=rng.randrange(29))
            t0 = time.perf_counter()
            queries.stats(db, at, at + timedelta(days=1), "hour")
            stats_times.append((time.perf_counter() - t0) * 1000)

        print(f"\n{args.records:,} records, limit {args.limit}, {args.runs} runs per "
              "scenario (ms, through pdp.audit.queries.list_decisions)\n")
        header = f"{'scenario':32} {'rows':>5} {'p50':>8} {'p99':>8} {'max':>8}"
        print(header)
        print("-" * len(header))
        slow = 0
        for label, count, p50, p99, worst in rows:
            mark = " *" if p99 >= args.target else ""
            slow += bool(mark)
            print(f"{label:32} {count:5.0f} {p50:8.2f} {p99:8.2f} {worst:8.2f}{mark}")
        print(f"{'stats: 1 day by hour':32} {'':5} {_pct(stats_times, 50):8.2f} "
              f"{_pct(stats_times, 99):8.2f} {max(stats_times):8.2f}")
        print(f"\n* p99 at or over the {args.target:.0f} ms target" if slow else
              f"\nevery scenario's p99 is under {args.target:.0f} ms")
        if args.try_indexes:
            with db.write() as s:
                for ddl in TRY_INDEXES:
                    s.execute(sa.text(ddl))
                s.execute(sa.text("ANALYZE decision_log"))
            print("\nwith the indexes the migration lacks:")
            for ddl in TRY_INDEXES:
                print(f"  {ddl}")
            print()
            print(header)
            print("-" * len(header))
            for label, count, p50, p99, worst in time_scenarios(db, args):
                mark = " *" if p99 >= args.target else ""
                print(f"{label:32} {count:5.0f} {p50:8.2f} {p99:8.2f} {worst:8.2f}{mark}")
        return 0
    finally:
        db.dispose()
        if args.keep:
            print(f"kept database {name}", file=sys.stderr)
        else:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--target", type=float, default=50.0, help="ms; p99 marked at or over")
    parser.add_argument("--try-indexes", action="store_true",
                        help="then add the indexes the migration lacks and time again")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--quick", action="store_true", help="50,000 records, 20 runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.runs = min(args.records, 50_000), min(args.runs, 20)
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
