"""Smoke test of the decision-log write benchmark (bench/audit.py): a quick run on
SQLite only measures the writer, chain.append and /v1/decide with audit off, async
and durable, checks that every answered decision reached the log, and prints the
table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "audit.py"


def test_audit_writer_bench_quick_sqlite():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--backends", "sqlite", "--seconds", "0.3",
         "--threads", "1,2"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "| scenario | backend | mode | threads | records/s | p50 µs | p99 µs" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "SQLite" in line]
    scenarios = {(cells[1], cells[3], cells[4]) for cells in
                 ([c.strip() for c in line.split("|")] for line in rows)}
    assert ("writer (record → commit)", "async", "1") in scenarios
    assert ("writer (record → commit)", "durable", "2") in scenarios
    assert ("chain.append, batch 1", "direct", "1") in scenarios
    assert ("chain.append, batch 100", "direct", "1") in scenarios
    for mode in ("off", "async", "durable"):
        for threads in ("1", "2"):
            assert ("POST /v1/decide", mode, threads) in scenarios, out
    # Nothing lost, nothing spilled, every request answered.
    assert "LOG HAS" not in out and "NOT 200" not in out, out
    assert " 0 spilled" in out
    assert out.count("all in the log") == 4, out
    assert "PostgreSQL" not in out
