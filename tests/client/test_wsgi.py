"""PdpMiddleware (any WSGI framework) against a real pdp: requests decided as
the gateway endpoint decides them (resource type ``http``)."""

from __future__ import annotations

import pytest
from werkzeug.test import Client

from pdp.client import PdpClient
from pdp.client.wsgi import PdpMiddleware, http_check
from tests.client.support import token


def hello_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("X-PDP-Decision-Id", "forged-by-the-app")])
    return [b"hello " + environ["PATH_INFO"].encode("latin-1")]


@pytest.fixture(scope="module")
def http(pdp_server):
    with PdpClient(pdp_server.url, pdp_server.key, timeout=5) as client:
        yield Client(PdpMiddleware(hello_app, client, public=("/healthz", "/static/")))


def bearer(sub="alice", **kwargs) -> dict:
    return {"Authorization": f"Bearer {token(sub, **kwargs)}"}


def test_allow_reaches_the_app_with_the_decision_id(http):
    r = http.get("/hello", headers=bearer())
    assert r.status_code == 200 and r.data == b"hello /hello"
    assert r.headers.getlist("X-PDP-Decision-Id") != ["forged-by-the-app"]
    assert len(r.headers.getlist("X-PDP-Decision-Id")) == 1


def test_deny_is_403_with_reasons(http):
    r = http.post("/admin/users", headers=bearer("alice"))
    assert r.status_code == 403
    assert r.json["error"]["reasons"] == ["the admin area is for admins"]
    assert r.headers["X-PDP-Decision-Id"] == r.json["error"]["decision_id"]
    assert http.post("/admin/users", headers=bearer("root", roles=["admin"])).status_code == 200
    assert http.delete("/hello", headers=bearer()).status_code == 403     # no policy: deny


def test_no_token_or_a_refused_one_is_401(http):
    r = http.get("/hello")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="pdp"'
    r = http.get("/hello", headers=bearer(expires_in=-600))
    assert r.status_code == 401 and r.json["error"]["token_error"] == "token_expired"


def test_public_paths_pass_without_a_decision(http):
    assert http.get("/healthz").status_code == 200
    assert http.get("/static/app.css").status_code == 200
    assert http.get("/healthz2").status_code == 401


def test_the_request_maps_like_the_gateway():
    environ = {"REQUEST_METHOD": "get", "SCRIPT_NAME": "/app",
               "PATH_INFO": "/d/caf\xc3\xa9", "QUERY_STRING": "a=1&b=%20",
               "HTTP_HOST": "Example.COM:8443"}
    action, resource = http_check(environ)
    assert action == "GET"
    assert resource == {"type": "http", "id": "/app/d/café",
                        "attributes": {"path": "/app/d/café", "method": "GET",
                                       "host": "example.com:8443", "query": "a=1&b=%20"}}
