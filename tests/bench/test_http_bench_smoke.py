"""Smoke test of the HTTP benchmark (bench/http.py): a quick run starts gunicorn for
the ceiling app and for pdp, drives each with wrk for a second, and prints the table.
Needs wrk; skipped without it (it is a benchmark: CI may skip it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "http.py"

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None,
    reason="wrk is not installed (apt-get install wrk): the HTTP benchmark drives it")


def test_http_bench_quick(tmp_path):
    out = tmp_path / "http.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--duration", "1", "--warmup", "1",
         "--tokens", "200", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = proc.stdout
    assert "requests/s" in table and "p99 ms" in table and "vs ceiling" in table
    assert "| ceiling (Flask) | 2×8 gthread |" in table
    # audit: the decision log's default mode, or "none yet" for a pdp without one.
    assert ("| pdp | 2×8 gthread | distinct | async (SQLite) |" in table
            or "| pdp | 2×8 gthread | distinct | none yet |" in table), table
    result = json.loads(out.read_text())
    rows = {row["server"]: row for row in result["rows"]}
    assert set(rows) == {"ceiling (Flask)", "pdp"}
    for row in rows.values():
        assert row["requests"] > 0 and row["errors"] == 0, row
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert rows["pdp"]["ratio"] is not None and rows["pdp"]["ratio"] > 0
    assert result["machine"]["nproc"] >= 1
    # 200 tokens for a second of load: some were sent twice, and the table says so
    # (a "distinct" line must never be answered from a cache unannounced).
    assert any("bodies reused" in note and "distinct" in note for note in result["notes"]), \
        result["notes"]
