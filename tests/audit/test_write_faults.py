"""Faults with a real PostgreSQL: the connection cut mid-load (through a TCP proxy
the test controls), and a worker killed with SIGKILL in durable mode. Every
decision a client received is in the log exactly once, and the chain verifies."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time

import pytest
import sqlalchemy as sa

from pdp.api import create_app, services
from pdp.audit import chain
from pdp.audit.writer import AuditWriter
from pdp.config import Settings
from pdp.store.db import Database
from tests.api.conftest import DOCS, OPTIONS, Api
from tests.audit.tcp_proxy import TcpProxy
from tests.audit.test_write_api import _keys, _request
from tests.audit.test_write_writer import wait_for

POSTGRES_ONLY = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])


def _logged(store) -> list[str]:
    with store.read() as session:
        return session.execute(sa.text(
            "SELECT decision_id FROM decision_log WHERE kind = 'decision' ORDER BY seq")
        ).scalars().all()


def _load(api, answered, stop, errors):
    i = 0
    while not stop.is_set():
        i += 1
        response = api.post("/v1/decide", _request(i))
        if response.status_code == 200:
            answered.append(response.get_json()["decision_id"])
        else:
            errors.append(response.status_code)


@POSTGRES_ONLY
@pytest.mark.parametrize("mode", ["async", "durable"])
def test_the_database_cut_off_mid_load(store, tmp_path, mode):
    proxy = TcpProxy(store.url.host or "127.0.0.1", store.url.port or 5432)
    through_proxy = Database(store.url.set(host="127.0.0.1", port=proxy.port), pool_size=2)
    writer = AuditWriter(through_proxy, mode=mode, spill_dir=tmp_path / "spill",
                         flush_interval=0.05, retry_min=0.1, retry_max=0.5)
    app = create_app(Settings(database_url=store.url.render_as_string(hide_password=False)),
                     store=store, options=OPTIONS, sink=writer)
    try:
        admin, decide = _keys(store)
        client = app.test_client()
        assert Api(client, admin).publish({"docs.policy": DOCS},
                                          activate=True).status_code == 201
        answered: list[str] = []
        errors: list[int] = []
        stop = threading.Event()
        threads = [threading.Thread(target=_load, args=(Api(app.test_client(), decide),
                                                        answered, stop, errors))
                   for _ in range(4)]
        for t in threads:
            t.start()
        wait_for(lambda: len(answered) > 100)
        proxy.sever()
        cut_at = len(answered)
        time.sleep(1.5)
        assert len(answered) > cut_at + 50          # still answering: spilled
        assert list((tmp_path / "spill").glob("spill-*.log"))
        proxy.restore()
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join()
        writer.close()
        logged = _logged(store)
        assert errors == []
        assert len(logged) == len(set(logged))                   # none twice
        assert set(answered) <= set(logged)                      # none missing
        assert len(logged) == len(answered)
        assert chain.verify(store).ok
        assert not list((tmp_path / "spill").glob("spill-*.log"))
    finally:
        services(app).active.stop()
        writer.close()
        proxy.sever()
        through_proxy.dispose()


@POSTGRES_ONLY
def test_a_worker_killed_in_durable_mode_loses_no_answered_decision(store, live_server,
                                                                     tmp_path):
    from tests.live import post_json

    admin, decide = _keys(store)
    server = live_server({"PDP_AUDIT_MODE": "durable", "PDP_AUTH_CACHE_TTL": "60"},
                         workers=2, threads=4)
    status, _ = post_json(f"{server}/v1/policy-sets/default/versions",
                          {"files": {"docs.policy": DOCS}, "activate": True},
                          headers={"Authorization": f"Bearer {admin}"})
    assert status == 201
    answered: list[str] = []
    failures: list[int] = []
    stop = threading.Event()

    def load():
        i = 0
        while not stop.is_set():
            i += 1
            try:
                status, body = post_json(f"{server}/v1/decide", _request(i),
                                         headers={"Authorization": f"Bearer {decide}"},
                                         timeout=10)
            except (OSError, http.client.HTTPException):
                failures.append(-1)                 # connection cut by the kill
                continue
            if status == 200:
                answered.append(body["decision_id"])
            else:
                failures.append(status)

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    wait_for(lambda: len(answered) > 200, timeout=30)
    workers = _worker_pids(server.process.pid)
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    killed_at = len(answered)
    wait_for(lambda: workers[0] not in _worker_pids(server.process.pid), timeout=10)
    wait_for(lambda: len(answered) > killed_at + 200, timeout=30)
    stop.set()
    for t in threads:
        t.join()
    assert server.process.poll() is None                   # the master replaced it
    assert len(failures) < 50                               # only requests in flight
    logged = _logged(store)
    assert len(logged) == len(set(logged))
    missing = set(answered) - set(logged)
    assert not missing, f"{len(missing)} answered decisions are not in the log"
    assert chain.verify(store).ok


def _worker_pids(master: int) -> list[int]:
    """The gunicorn workers: children of the master (``pdp serve`` runs gunicorn in
    its own process)."""
    import subprocess

    out = subprocess.run(["ps", "-o", "pid=,ppid=", "-A"], capture_output=True, text=True)
    children: dict[int, list[int]] = {}
    for line in out.stdout.splitlines():
        pid, ppid = (int(x) for x in line.split())
        children.setdefault(ppid, []).append(pid)
    # pdp serve -> (gunicorn master, maybe the same process) -> workers
    level = children.get(master, [])
    workers = [c for p in level for c in children.get(p, [])]
    return workers or level


def test_a_graceful_stop_writes_what_is_queued(store, live_server):
    """``worker_exit`` closes the writer: with a flush interval far longer than the
    test, the records reach the log only because of the graceful stop."""
    from tests.live import post_json, stop

    admin, decide = _keys(store)
    server = live_server({"PDP_AUDIT_MODE": "async", "PDP_AUDIT_FLUSH_INTERVAL": "600000",
                          "PDP_AUDIT_BATCH_SIZE": "100000", "PDP_POLL_INTERVAL": "0.1"},
                         workers=2)
    status, _ = post_json(f"{server}/v1/policy-sets/default/versions",
                          {"files": {"docs.policy": DOCS}, "activate": True},
                          headers={"Authorization": f"Bearer {admin}"})
    assert status == 201
    time.sleep(1.0)       # the other worker follows the activation within its poll interval
    answered = []
    for i in range(30):
        status, body = post_json(f"{server}/v1/decide", _request(i),
                                 headers={"Authorization": f"Bearer {decide}"})
        assert status == 200
        answered.append(body["decision_id"])
    time.sleep(0.5)
    assert _logged(store) == []                              # still queued
    assert stop(server.process) == 0
    assert sorted(_logged(store)) == sorted(answered)
    assert chain.verify(store).ok


@POSTGRES_ONLY
def test_a_worker_killed_in_async_mode_loses_at_most_its_last_flush_interval(store,
                                                                            live_server):
    """The documented bound of ``async``: a SIGKILL loses only records answered in
    the last flush interval (200 ms) and the batch being written — here checked
    with two seconds of slack for scheduling on a busy test machine."""
    from tests.live import post_json

    admin, decide = _keys(store)
    server = live_server({"PDP_AUDIT_MODE": "async", "PDP_AUTH_CACHE_TTL": "60"},
                         workers=2, threads=4)
    status, _ = post_json(f"{server}/v1/policy-sets/default/versions",
                          {"files": {"docs.policy": DOCS}, "activate": True},
                          headers={"Authorization": f"Bearer {admin}"})
    assert status == 201
    answered: dict[str, float] = {}
    stop = threading.Event()

    def load():
        i = 0
        while not stop.is_set():
            i += 1
            try:
                status, body = post_json(f"{server}/v1/decide", _request(i),
                                         headers={"Authorization": f"Bearer {decide}"},
                                         timeout=10)
            except (OSError, http.client.HTTPException):
                continue                            # cut by the kill: not answered
            if status == 200:
                answered[body["decision_id"]] = time.monotonic()

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    wait_for(lambda: len(answered) > 300, timeout=30)
    victim = _worker_pids(server.process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join()
    time.sleep(1.0)                                  # the survivor's last flush
    logged = set(_logged(store))
    lost = [at for d, at in answered.items() if d not in logged]
    assert all(at > killed_at - 2.0 for at in lost), "lost records older than the bound"
    assert chain.verify(store).ok


def test_pdp_serve_replays_spill_files_left_by_dead_processes(store, live_server, tmp_path):
    from pdp.audit import spill
    from tests.audit.test_write_chain import rec

    workdir = tmp_path / "work"
    left = spill.SpillFile(workdir / "var" / "audit-spill")
    left.append([rec(i).to_json() for i in range(6)], fsync=True)
    path = left.path
    left.close()
    assert path.exists()
    live_server({}, workdir=workdir, workers=1)
    wait_for(lambda: len(_logged(store)) == 6, timeout=10)
    assert _logged(store) == [f"dec-{i:05d}" for i in range(6)]
    assert not path.exists()
    assert chain.verify(store).ok
