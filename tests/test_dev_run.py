"""The newcomer's path, ``make run`` = ``scripts/dev-run.sh``: run it in a temporary
directory, paste the curl call it prints, and expect an allow; run it again and it
reuses its key; give it a key the store does not know and it replaces it."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pdp.service import sessions
from pdp.store.db import Database
from tests.live import free_port, post_json

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "dev-run.sh"
PDP = Path(sys.executable).parent / "pdp"

pytestmark = pytest.mark.skipif(not PDP.exists(), reason=f"no pdp command at {PDP}")


def run_until_ready(workdir: Path, timeout: float = 60.0) -> tuple[str, int]:
    """Run the script until it says it is ready, then stop it (SIGTERM); its output."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PDP_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(PDP=str(PDP), PY=sys.executable, PORT=str(free_port()))
    process = subprocess.Popen([str(SCRIPT)], cwd=workdir, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    output = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no 'pdp dev: ready' in time:\n" + "".join(output))
            if line is None:
                raise AssertionError("the script ended early:\n" + "".join(output))
            output.append(line)
            if line.strip() == "pdp dev: ready":
                break
        curl = _paste(output)
        return "".join(output), curl
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError("the script did not stop on SIGTERM") from None
        assert status in (0, 143), status


def _paste(output: list[str]):
    """Run the printed curl call, as a user pasting it would; ``(status, body)``."""
    text = "".join(output)
    match = re.search(r"^curl -s .*?-d '.*?'$", text, re.M | re.S)
    assert match, text
    command = match.group(0)
    if shutil.which("curl"):
        result = subprocess.run(["bash", "-c", command + " -w '\\n%{http_code}'"],
                                capture_output=True, text=True, timeout=20)
        body, _, status = result.stdout.rpartition("\n")
        return int(status), json.loads(body)
    # No curl here: do what it would, from its arguments.
    url = re.search(r"curl -s (\S+)", command).group(1)
    key_file = re.search(r"\$\(cat (\S+)\)", command).group(1)
    data = shlex.split(command.replace("\\\n", " "))[-1]
    return post_json(url, json.loads(data), headers={
        "Authorization": f"Bearer {Path(key_file).read_text().strip()}"})


def test_make_run_serves_and_prints_a_call_that_is_allowed(tmp_path):
    output, (status, body) = run_until_ready(tmp_path)
    assert status == 200, (body, output)
    assert body["decision"] == "allow", body
    assert "doc-owner-read" in body["policies"]
    key_file = tmp_path / "var" / "dev-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "var" / "dev-signing-key.json").stat().st_mode & 0o777 == 0o600
    assert "created a development API key" in output
    key = key_file.read_text()
    assert key.strip() not in output                       # shown by path, not by value
    console_key = tmp_path / "var" / "dev-console-key"
    assert console_key.stat().st_mode & 0o777 == 0o600
    base = re.search(r"pdp is serving at (\S+) ", output).group(1)
    assert f"Console: {base}/console (sign in with the key in {console_key})" in output
    assert console_key.read_text().strip() not in output
    store = Database(f"sqlite:///{tmp_path / 'var' / 'pdp.db'}")
    try:                                                   # it opens the console
        assert sessions.sign_in(store, console_key.read_text().strip()) is not None
    finally:
        store.dispose()

    # Again: the same key, still allowed.
    output, (status, body) = run_until_ready(tmp_path)
    assert (status, body["decision"]) == (200, "allow")
    assert "created a development API key" not in output
    assert key_file.read_text() == key

    # A key this store does not know (another database): replaced, still allowed.
    key_file.write_text("pdp_" + "x" * 43 + "\n")
    output, (status, body) = run_until_ready(tmp_path)
    assert (status, body["decision"]) == (200, "allow"), output
    assert "replacing it" in output
    assert key_file.read_text() not in (key, "pdp_" + "x" * 43 + "\n")
