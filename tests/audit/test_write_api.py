"""The decision log behind the HTTP API: every answered decision is in the log, and
in durable mode a decision that cannot be recorded is a 503, never an allow."""

from __future__ import annotations

import dataclasses
import json

import pytest
import sqlalchemy as sa

from pdp.api import AUDIT_EXTENSION, create_app, services
from pdp.audit import chain
from pdp.audit.writer import AuditWriter
from pdp.config import Settings
from pdp.service import keys
from pdp.store.models import DecisionLogRow
from tests.api.conftest import DOCS, OPTIONS, Api
from tests.audit.test_write_writer import FlakyDb


def _app(store, tmp_path, verifier=None, **settings):
    base = Settings(database_url=store.url.render_as_string(hide_password=False),
                    audit_spill_dir=str(tmp_path / "spill"))
    return create_app(dataclasses.replace(base, **settings), store=store, options=OPTIONS,
                      verifier=verifier)


def _keys(store):
    admin = keys.create_key(store, name="admin", roles=["admin"], created_by="t").secret
    decide = keys.create_key(store, name="gw", roles=["decide"], trusted_claims=True,
                             created_by="t").secret
    return admin, decide


def _request(i=0):
    return {"subject": {"claims": {"sub": "alice", "email": "a@x", "n": i}},
            "action": "read", "resource": {"type": "document", "id": f"d{i}",
                                           "attributes": {"owner": "alice"}},
            "context": {"ip": "10.0.0.1"}}


@pytest.fixture
def running(store, tmp_path):
    apps = []

    def make(**settings):
        app = _app(store, tmp_path, **settings)
        apps.append(app)
        admin, decide = _keys(store)
        client = app.test_client()
        assert Api(client, admin).publish({"docs.policy": DOCS},
                                          activate=True).status_code == 201
        return app, Api(client, decide)

    yield make
    for app in apps:
        services(app).active.stop()
        writer = app.extensions.get(AUDIT_EXTENSION)
        if writer is not None:
            writer.close()


@pytest.mark.parametrize("mode", ["async", "durable"])
def test_every_answered_decision_is_in_the_log(store, running, mode):
    app, api = running(audit_mode=mode, audit_redact_claims=("email",))
    answered = []
    for i in range(12):
        response = api.post("/v1/decide", _request(i))
        assert response.status_code == 200
        answered.append(response.get_json()["decision_id"])
    batch = api.post("/v1/decide/batch", {
        "subject": {"claims": {"sub": "bob"}},
        "checks": [{"action": "read", "resource": {"type": "document", "id": "x"}}] * 3})
    answered += [d["decision_id"] for d in batch.get_json()["decisions"]]
    writer = app.extensions[AUDIT_EXTENSION]
    assert isinstance(writer, AuditWriter) and writer.mode == mode
    if mode == "async":
        writer.flush()
    else:
        with store.read() as session:               # durable: there before the answer
            count = session.execute(sa.text("SELECT count(*) FROM decision_log")).scalar()
        assert count == 15
    writer.close()
    with store.read() as session:
        rows = session.execute(sa.text(
            "SELECT decision_id, subject, claims, decision, redacted FROM decision_log "
            "ORDER BY seq")).all()
    assert sorted(r[0] for r in rows) == sorted(answered)
    first = rows[0]
    assert first[1] == "alice" and first[3] == "allow"
    assert "a@x" not in str(first[2]) and "email" in str(first[4])
    assert chain.verify(store).ok


def test_off_records_nothing(store, running):
    app, api = running(audit_mode="off")
    assert app.extensions[AUDIT_EXTENSION] is None
    assert api.post("/v1/decide", _request()).status_code == 200
    with store.read() as session:
        assert session.execute(sa.text("SELECT count(*) FROM decision_log")).scalar() == 0


def test_the_spill_limit_reaches_the_writer(store, running):
    app, _ = running(audit_spill_max_mb=3)
    assert app.extensions[AUDIT_EXTENSION].spill_max_bytes == 3 * 1024 * 1024


@pytest.mark.parametrize("spill", ["not a directory", "at its size limit"])
def test_durable_with_the_store_down_and_no_spill_is_a_503(store, tmp_path, spill):
    if spill == "not a directory":
        blocked = tmp_path / "blocked"
        blocked.write_text("not a directory")
        where = {"spill_dir": blocked}
    else:                                   # PDP_AUDIT_SPILL_MAX_MB: not one record fits
        where = {"spill_dir": tmp_path / "spill", "spill_max_bytes": 64}
    db = FlakyDb(store)
    db.down = True
    writer = AuditWriter(db, mode="durable", retry_min=0.05, **where)
    app = create_app(Settings(database_url=store.url.render_as_string(hide_password=False)),
                     store=store, options=OPTIONS, sink=writer)
    try:
        admin, decide = _keys(store)
        client = app.test_client()
        assert Api(client, admin).publish({"docs.policy": DOCS},
                                          activate=True).status_code == 201
        api = Api(client, decide)
        response = api.post("/v1/decide", _request())
        assert response.status_code == 503
        body = response.get_json()
        assert body["error"]["code"] == "decision_not_recorded"
        assert "allow" not in response.get_data(as_text=True)
        response = api.as_(None).post("/v1/authz/http", headers={"X-PDP-Key": decide})
        assert response.status_code == 403              # the gateway's refusal: a deny
        db.down = False                                 # back: answered again
        assert api.post("/v1/decide", _request()).status_code == 200
    finally:
        services(app).active.stop()
        writer.close()


def test_the_writer_reports_to_metrics(store, running):
    from prometheus_client.parser import text_string_to_metric_families

    app, api = running(audit_mode="durable")
    assert api.post("/v1/decide", _request()).status_code == 200
    text = app.test_client().get("/metrics").get_data(as_text=True)
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    for name in ("pdp_audit_queue_depth", "pdp_audit_written_records_total",
                 "pdp_audit_spilled_records_total", "pdp_audit_replayed_records_total",
                 "pdp_audit_write_failures_total", "pdp_audit_quarantined_records_total"):
        assert name in values, name
    assert values["pdp_audit_written_records_total"] >= 1


@pytest.mark.parametrize("mode", ["async", "durable"])
def test_characters_a_store_cannot_hold_never_cost_a_record(store, running, mode):
    """A NUL in a text field (PostgreSQL text cannot hold it) is valid JSON that any
    caller can send; a lone surrogate (not a character, not UTF-8) is refused in a
    request body (400 ``invalid_string``) but can come in a signed token's claims.
    Both are recorded as U+FFFD; the decision is answered as usual; no record of
    the batch is lost, and the log keeps being written (before, such a request made
    every later batch fail on PostgreSQL, and lost its batch on both)."""
    import jwt

    from pdp.api.tokens import TokenVerifier

    secret = "a-test-hmac-secret-of-at-least-32-bytes"
    app, api = running(audit_mode=mode, verifier=TokenVerifier(hs_secret=secret))
    token = jwt.encode({"sub": "bob\ud800", "nick": "\udfff", "exp": 4102444800},
                       secret, algorithm="HS256")
    with_token = {**_request(3), "subject": {"token": token}}
    bodies = [json.dumps(_request(0)).replace('"d0"', '"a\\u0000b"'),
              json.dumps(_request(1)).replace('"alice"', '"al\\u0000ice"'),
              json.dumps(with_token),
              json.dumps(_request(4)).replace('"10.0.0.1"', '"\\ud83d\\ude00 ok"')]
    bodies += [json.dumps(_request(i)) for i in range(5, 8)]
    answered = []
    for raw in bodies:
        response = api.client.post("/v1/decide", data=raw,
                                   headers=api.headers({"Content-Type": "application/json"}))
        assert response.status_code == 200, response.get_data()
        answered.append(response.get_json()["decision_id"])
    refused = api.client.post("/v1/decide", data=json.dumps(_request(9)).replace(
        '"d9"', '"x\\ud800"'), headers=api.headers({"Content-Type": "application/json"}))
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "invalid_string"
    if mode == "async":
        app.extensions[AUDIT_EXTENSION].flush()
    with store.read() as session:
        rows = {r.decision_id: r for r in session.scalars(sa.select(DecisionLogRow))}
    assert sorted(rows) == sorted(answered)
    first, second, third, fourth = (rows[i] for i in answered[:4])
    assert first.resource_id == "a\ufffdb"
    assert second.subject == "al\ufffdice" and second.claims["sub"] == "al\x00ice"  # JSON: NUL
    assert third.subject == "bob\ufffd" and third.claims["nick"] == "\ufffd"
    assert fourth.context["ip"] == "\U0001f600 ok"                    # a pair is a character
    result = chain.verify(store)
    assert result.ok and result.checked == len(answered), result
