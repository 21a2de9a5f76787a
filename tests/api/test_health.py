"""Liveness and readiness probes: no key needed."""

from __future__ import annotations

from pdp.api import ApiOptions, create_app, services
from pdp.config import Settings
from pdp.store.db import Database

from .conftest import DOCS


def test_healthz_answers_without_a_key(api):
    r = api.as_(None).get("/healthz")
    assert (r.status_code, r.get_json()) == (200, {"status": "ok"})


def test_readyz_waits_for_an_active_policy_version(api):
    r = api.as_(None).get("/readyz")
    assert r.status_code == 503
    assert r.get_json() == {"error": {"code": "not_ready",
                                      "message": "no active policy version is loaded"}}
    api.publish({"docs.policy": DOCS}, activate=True)
    r = api.as_(None).get("/readyz")
    assert (r.status_code, r.get_json()) == (200, {"status": "ready",
                                                   "policy_sets": {"default": 1}})


def test_readyz_is_503_when_the_database_does_not_answer():
    url = "postgresql+psycopg://pdp@127.0.0.1:1/nowhere?connect_timeout=1"
    db = Database(url)
    app = create_app(Settings(database_url=url), store=db, options=ApiOptions())
    try:
        r = app.test_client().get("/readyz")
        assert r.status_code == 503
        error = r.get_json()["error"]
        assert error["code"] == "not_ready"
        assert error["message"] == "the database does not answer (store_unavailable)"
        r = app.test_client().get("/healthz")
        assert r.status_code == 200
    finally:
        services(app).active.stop()
        db.dispose()


def test_an_admin_call_is_503_when_the_database_does_not_answer(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    app = create_app(Settings(database_url=str(db.url)), store=db)
    try:
        r = app.test_client().get("/v1/policy-sets",
                                  headers={"Authorization": "Bearer pdp_" + "k" * 43})
        assert r.status_code == 503
        assert r.get_json() == {"error": {
            "code": "store_not_migrated",
            "message": "the policy store is unavailable; try again later"}}
    finally:
        services(app).active.stop()
        db.dispose()

