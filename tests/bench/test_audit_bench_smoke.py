"""Smoke test of the decision-log query benchmark (bench/audit_query.py): a tiny run
loads a scratch PostgreSQL database, checks its chain and prints the table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_BASE_URL

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "audit_query.py"


@pytest.mark.postgres
def test_audit_query_bench_tiny(postgres_server):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--url", POSTGRES_BASE_URL, "--records", "3000",
         "--runs", "3"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "chain check of the last 3000 records: ok" in proc.stderr
    assert "scenario" in proc.stdout and "p99" in proc.stdout
    for label in ("subject (frequent)", "policy id", "time range (1 hour)", "stats: 1 day"):
        assert label in proc.stdout
