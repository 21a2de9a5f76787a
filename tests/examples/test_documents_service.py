"""examples/documents-service against a real pdp (gunicorn): allow, deny with
reasons, 401 — over HTTP through PdpClient, and in-process with EmbeddedDecider."""

from __future__ import annotations

import importlib.util

from pdp.api.tokens import TokenVerifier
from pdp.client import EmbeddedDecider, PdpClient
from tests.client.support import ENV, EXAMPLE, SECRET, prepare, refused_url, token


def load_example():
    spec = importlib.util.spec_from_file_location("documents_service_app", EXAMPLE / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()


def auth(sub="alice", **kwargs) -> dict:
    return {"Authorization": f"Bearer {token(sub, **kwargs)}"}


def check_service(http) -> None:
    """The example's endpoints, as its README promises."""
    r = http.get("/documents/d-1", headers=auth("alice"))
    assert r.status_code == 200 and r.json["owner"] == "alice"
    assert r.headers["X-PDP-Decision-Id"]

    r = http.put("/documents/d-1", json={"title": "new"}, headers=auth("alice"))
    assert r.status_code == 200 and r.json["title"] == "new"

    r = http.put("/documents/d-3", json={"title": "x"}, headers=auth("alice"))   # archived
    assert r.status_code == 403
    assert r.json["error"]["code"] == "forbidden"
    assert r.json["error"]["reasons"] == ["archived documents are read-only"]
    assert r.headers["X-PDP-Decision-Id"] == r.json["error"]["decision_id"]

    r = http.get("/documents/d-2", headers=auth("alice"))          # bob's: deny by default
    assert r.status_code == 403 and r.json["error"]["reasons"] == []

    r = http.get("/documents/d-2", headers=auth("eve", roles=["editor"]))
    assert r.status_code == 200

    r = http.get("/documents/d-1")                                  # no token
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthenticated"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "X-PDP-Decision-Id" not in r.headers

    r = http.get("/documents/d-1", headers=auth("alice", expires_in=-600))   # refused token
    assert r.status_code == 401 and r.json["error"]["token_error"] == "token_expired"
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert r.headers["X-PDP-Decision-Id"]

    assert http.get("/documents/nope", headers=auth()).status_code == 404
    assert http.delete("/documents/d-1", headers=auth("bob")).status_code == 403
    assert http.delete("/documents/d-1", headers=auth("alice")).status_code == 204


def test_the_example_service_against_a_real_pdp(pdp_server):
    with PdpClient(pdp_server.url, pdp_server.key, timeout=5) as client:
        check_service(example.create_app(client).test_client())


def test_the_example_service_with_both_stores(store, database_url, live_server):
    """The same, with pdp on each backend (SQLite, PostgreSQL)."""
    key, _ = prepare(store)
    url = live_server(ENV, workers=1)
    with PdpClient(url, key, timeout=5) as client:
        check_service(example.create_app(client).test_client())


def test_the_example_service_denies_when_pdp_is_down():
    with PdpClient(refused_url(), "pdp_k", timeout=1, retries=0) as client:
        http = example.create_app(client).test_client()
        r = http.get("/documents/d-1", headers=auth())
    assert r.status_code == 503 and r.json["error"]["code"] == "authorization_unavailable"


def test_the_example_service_in_process():
    verifier = TokenVerifier(hs_secret=SECRET)
    with EmbeddedDecider(policy_dir=EXAMPLE / "policies", verifier=verifier) as decider:
        check_service(example.create_app(decider).test_client())
