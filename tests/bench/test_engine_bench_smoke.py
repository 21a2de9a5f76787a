"""Smoke test of the engine benchmark (bench/engine.py): the generator renders
policies that pdp compiles, and a quick pdp-only run prints the table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "engine.py"


def test_engine_bench_quick_pdp_only():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--engines", "pdp", "--requests", "100",
         "--rounds", "1", "--budget", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "p50 µs" in out and "decisions/s" in out
    # One row per size for pdp.
    rows = [line for line in out.splitlines() if line.startswith("|") and "| pdp " in line]
    assert len(rows) == 2, out


def test_generator_is_deterministic_and_renders_every_language():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import policygen as gen
    finally:
        sys.path.remove(str(ROOT / "bench"))
    a = gen.generate(100, 50, seed=7)
    b = gen.generate(100, 50, seed=7)
    assert gen.render_pdp_files(a.policies) == gen.render_pdp_files(b.policies)
    assert [r.__dict__ for r in a.requests] == [r.__dict__ for r in b.requests]
    assert len(a.policies) == 100 and len(a.requests) == 50
    assert len({p.id for p in a.policies}) == 100
    assert sum(p.kind == "org" for p in a.policies) == 10
    cedar = gen.render_cedar(a.policies)
    assert cedar.count("@id(") == 100
    rows = gen.casbin_rows(a.policies)
    assert len(rows) >= 100 and all(len(r) == 5 for r in rows)
    c = gen.generate(100, 50, seed=8)
    assert gen.render_pdp_files(c.policies) != gen.render_pdp_files(a.policies)
