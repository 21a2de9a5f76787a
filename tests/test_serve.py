"""``pdp serve``: real gunicorn, two workers, on SQLite and on PostgreSQL.

Each test starts the service in a subprocess (``tests/live.py``) on the test's
migrated database, talks to it over HTTP, and stops it with SIGTERM.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pdp.api.tokens import mint_dev_token
from pdp.service import keys
from pdp.store.db import Database
from tests.live import free_port, get, live_server, post_json

DOCS = """\
policy "doc-owner-read" {
  permit read on document
  when resource.owner == subject.sub
  reason "owners read their documents"
}
"""


def make_key(database_url: str, name: str, *roles: str) -> str:
    database = Database(database_url)
    try:
        return keys.create_key(database, name=name, roles=roles, created_by="tests").secret
    finally:
        database.dispose()


def samples(base_url: str) -> dict[tuple[str, tuple], float]:
    status, body = get(f"{base_url}/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


def healthz_count(base_url: str) -> float:
    return samples(base_url).get(
        ("pdp_http_requests_total", (("method", "GET"), ("route", "/healthz"),
                                     ("status", "200"))), 0.0)


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(interval)


def pids_alive(pids) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.append(pid)
    return alive


def test_two_workers_probe_publish_decide_and_stop_gracefully(live_server, database_url,
                                                              tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    admin = make_key(database_url, "serve-admin", "admin")
    decider = make_key(database_url, "serve-decider", "decide")
    token = mint_dev_token(sub="alice", var_dir=tmp_path / "var", dev=True)
    url = live_server({"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PDP_POLL_INTERVAL": "0.2",
                       "PDP_JWKS": str(tmp_path / "var" / "dev-jwks.json")}, workers=2)

    # Liveness, and readiness once a version is active (every worker polls for it).
    assert get(f"{url}/healthz") == (200, b'{"status":"ok"}\n')
    assert get(f"{url}/readyz")[0] == 503
    status, body = post_json(f"{url}/v1/policy-sets/default/versions",
                             {"files": {"docs.policy": DOCS}, "activate": True},
                             headers={"Authorization": f"Bearer {admin}"})
    assert status == 201, body
    ready = [wait_for(lambda: get(f"{url}/readyz")[0] == 200) for _ in range(10)]
    assert all(ready)

    # Metrics are aggregated over the workers: every scrape, whichever worker
    # answers, sees every request, and both workers wrote values.
    before = healthz_count(url)
    for _ in range(40):
        assert get(f"{url}/healthz")[0] == 200
    counts = {healthz_count(url) for _ in range(10)}
    assert counts == {before + 40}
    writers = {p.name.rsplit("_", 1)[1].removesuffix(".db")
               for p in metrics_dir.glob("counter_*.db")}
    assert len(writers) >= 2, sorted(p.name for p in metrics_dir.iterdir())
    seen = samples(url)
    assert seen[("pdp_policy_version", (("policy_set", "default"),))] == 1

    # Decisions, answered by both workers, counted once each.
    allowed = seen.get(("pdp_decisions_total", (("result", "allow"),)), 0.0)
    body = {"subject": {"token": token}, "action": "read",
            "resource": {"type": "document", "id": "d1", "attributes": {"owner": "alice"}}}
    for _ in range(20):
        status, answer = post_json(f"{url}/v1/decide", body,
                                   headers={"Authorization": f"Bearer {decider}"})
        assert (status, answer["decision"]) == (200, "allow"), answer
    for _ in range(5):
        seen = samples(url)
        assert seen[("pdp_decisions_total", (("result", "allow"),))] == allowed + 20
        assert seen[("pdp_decision_duration_seconds_count", ())] >= 20

    # The logs are JSON lines, with no secret in them.
    records = url.log_records()
    text = url.logs()
    assert records and len(records) == len([ln for ln in text.splitlines() if ln.strip()])
    assert admin not in text and decider not in text and token not in text
    workers = {int(r["message"].rsplit(" ", 1)[1]) for r in records
               if r["message"].startswith("Booting worker with pid")}
    assert len(workers) == 2

    # SIGTERM: a graceful stop, exit status 0, no worker left behind.
    from tests.live import stop
    assert stop(url.process, timeout=25) == 0
    assert "Shutting down: Master" in url.logs()
    assert wait_for(lambda: not pids_alive(workers), timeout=5)


def test_serve_applies_the_migrations_and_cleans_its_metrics_dir(empty_database_url, backend):
    with live_server({}, database_url=empty_database_url, workers=1) as url:
        assert get(f"{url}/healthz")[0] == 200
        assert get(f"{url}/readyz")[0] == 503          # migrated (the database answers)
        records = url.log_records()
        metrics_dir = next(r["message"].split(": ", 1)[1] for r in records
                           if r["message"].startswith("metrics directory: "))
        assert Path(metrics_dir).is_dir()
    assert url.exit_code == 0
    assert not Path(metrics_dir).exists()
    database = Database(empty_database_url)
    try:
        assert database.current_revision() is not None
    finally:
        database.dispose()


def test_a_given_metrics_dir_is_emptied_at_start(live_server, tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    stale = metrics_dir / "counter_999999.db"
    stale.write_bytes(b"\0" * 16)
    url = live_server({"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, workers=1)
    assert not stale.exists()
    assert get(f"{url}/metrics")[0] == 200
    assert metrics_dir.is_dir()


def test_an_unreachable_database_stops_the_start(tmp_path):
    port = free_port()
    url = f"postgresql+psycopg://nobody@127.0.0.1:{port}/nothing"
    with pytest.raises(RuntimeError, match="exited with status 1"):
        with live_server({}, database_url=url, workers=1, start_timeout=20):
            pass


def test_the_serving_settings_come_from_the_environment():
    from pdp.config import ConfigError, Settings

    default = Settings.from_env({})
    assert (default.bind, default.workers, default.threads, default.log_level) == \
        ("127.0.0.1:8080", 2, 4, "INFO")
    given = Settings.from_env({"PDP_BIND": "0.0.0.0:9000", "PDP_WORKERS": "3",
                               "PDP_THREADS": "8", "PDP_LOG_LEVEL": "debug"})
    assert (given.bind, given.workers, given.threads, given.log_level) == \
        ("0.0.0.0:9000", 3, 8, "DEBUG")
    for name, bad in [("PDP_WORKERS", "0"), ("PDP_THREADS", "many"), ("PDP_LOG_LEVEL", "loud")]:
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: bad})


def test_the_metrics_dir_is_private_when_not_given(tmp_path):
    from pdp.cli.serve import MULTIPROC_ENV, prepare_metrics_dir

    environ: dict[str, str] = {}
    path, owned = prepare_metrics_dir(environ)
    try:
        assert owned and environ[MULTIPROC_ENV] == path and Path(path).is_dir()
        assert os.stat(path).st_mode & 0o077 == 0          # mkdtemp: private
    finally:
        os.rmdir(path)
    given = tmp_path / "m"
    (given).mkdir()
    (given / "gauge_livemax_1.db").write_bytes(b"x")
    (given / "keep.txt").write_text("not ours")
    environ = {MULTIPROC_ENV: str(given)}
    assert prepare_metrics_dir(environ) == (str(given), False)
    assert sorted(p.name for p in given.iterdir()) == ["keep.txt"]


def test_gunicorn_gets_the_project_configuration():
    from pdp.api.server import PdpApplication
    from pdp.config import Settings

    app = PdpApplication(Settings(), {"bind": ["127.0.0.1:1234"], "workers": 3, "threads": 2})
    cfg = app.cfg
    assert cfg.bind == ["127.0.0.1:1234"] and cfg.workers == 3 and cfg.threads == 2
    assert cfg.worker_class_str == "gthread"
    assert cfg.accesslog is None and not cfg.preload_app
    assert cfg.child_exit.__module__ == "pdp.api.gunicorn_conf"
    if "control_socket_disable" in cfg.settings:
        assert cfg.control_socket_disable


def test_a_request_in_flight_at_sigterm_is_answered(live_server, database_url):
    """The request's headers arrive, SIGTERM, then its body: it is still answered
    in full, and the server then exits with status 0."""
    import json
    import signal
    import socket

    admin = make_key(database_url, "graceful-admin", "admin")
    url = live_server({}, workers=1)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    body = json.dumps({"files": {"docs.policy": DOCS}}).encode()
    with socket.create_connection((host, int(port)), timeout=20) as conn:
        conn.sendall((f"POST /v1/policy-sets/default/check HTTP/1.1\r\nHost: {host}\r\n"
                      f"Authorization: Bearer {admin}\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode())
        time.sleep(0.5)
        url.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert url.process.poll() is None, "gave up on the request in flight"
        conn.sendall(body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(payload)["ok"] is True
    assert url.process.wait(25) == 0


def test_serve_config_reaches_the_gunicorn_workers(live_server, database_url, tmp_path,
                                                   monkeypatch):
    """``pdp --config pdp.toml serve`` (a path relative to the working directory):
    the workers verify tokens with the file's HMAC secret and check the file's
    issuer; the secret is never logged."""
    import jwt

    from tests import live

    secret = "config-file-hmac-secret-of-32-bytes-or-more"
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "pdp.toml").write_text(
        f'jwt_hs_secret = "{secret}"\njwt_issuer = ["https://idp.test"]\n'
        'audit_mode = "off"\n', encoding="utf-8")
    monkeypatch.setattr(live, "PDP", [*live.PDP, "--config", "pdp.toml"])
    admin = make_key(database_url, "config-admin", "admin")
    decider = make_key(database_url, "config-decider", "decide")
    url = live_server({"PDP_POLL_INTERVAL": "0.2"}, workers=2, workdir=workdir)
    status, body = post_json(f"{url}/v1/policy-sets/default/versions",
                             {"files": {"docs.policy": DOCS}, "activate": True},
                             headers={"Authorization": f"Bearer {admin}"})
    assert status == 201, body
    wait_for(lambda: all(get(f"{url}/readyz")[0] == 200 for _ in range(20)))

    token = jwt.encode({"sub": "alice", "iss": "https://idp.test",
                        "exp": int(time.time()) + 600}, secret, algorithm="HS256")
    wrong_issuer = jwt.encode({"sub": "alice", "iss": "https://other.test",
                               "exp": int(time.time()) + 600}, secret, algorithm="HS256")
    request = {"subject": {"token": token}, "action": "read",
               "resource": {"type": "document", "id": "d1", "attributes": {"owner": "alice"}}}
    for _ in range(8):                                 # both workers answer
        status, answer = post_json(f"{url}/v1/decide", request,
                                   headers={"Authorization": f"Bearer {decider}"})
        assert (status, answer.get("decision")) == (200, "allow"), (answer, url.logs())
    request["subject"]["token"] = wrong_issuer
    status, answer = post_json(f"{url}/v1/decide", request,
                               headers={"Authorization": f"Bearer {decider}"})
    assert (status, answer.get("decision")) == (200, "deny"), (answer, url.logs())
    assert secret not in url.logs()


def test_serve_refuses_to_start_with_a_bad_config_file(tmp_path):
    import subprocess

    from tests.live import PDP

    (tmp_path / "pdp.toml").write_text('workers = 2\nthraeds = 4\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDP_")}
    done = subprocess.run([*PDP, "--config", "pdp.toml", "serve", "--no-migrate"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert "unknown key thraeds" in done.stderr and "did you mean threads?" in done.stderr
    assert str(tmp_path / "pdp.toml") in done.stderr and "line 2" in done.stderr
