"""Smoke test of bench/profile_decide.py: CPU per /v1/decide in process, for the
ceiling and pdp, in a few seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "profile_decide.py"


def test_profile_decide_quick():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--requests", "50", "--repeat", "1", "--tokens", "120",
         "--jwt", "claims,distinct", "--audit", "off,async"],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[:3]) for line in lines}
    assert ("ceiling", "-", "-") in rows
    for mode in ("claims", "distinct"):
        for audit in ("off", "async"):
            assert ("pdp", mode, audit) in rows, proc.stdout
