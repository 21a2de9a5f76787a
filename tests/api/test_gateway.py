"""The gateway endpoint ``/v1/authz/http`` through the Flask test client, on every
backend: how the request is read (Envoy and nginx styles), every answer, and that
no failure is ever a 5xx or an allow. The real nginx in front of a real server is
``test_nginx.py``."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
import yaml

from pdp.api import create_app, services
from pdp.api.tokens import TokenVerifier
from pdp.config import ConfigError, Settings
from pdp.errors import PdpError
from pdp.service import keys
from pdp.store import StoreError

from .conftest import OPTIONS, Api
from .schema_check import problems

ROOT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
GATEWAY_POLICY = (ROOT / "policies" / "gateway.policy").read_text(encoding="utf-8")
SECRET = "gateway-tests-hmac-secret-of-32-bytes-or-more"

#: A set that allows exactly one request, so that every attribute is checked.
PROBE = """\
policy "probe" {
  permit PATCH on http
  when resource.path == "/a b/ü" and resource.id == resource.path
    and resource.method == "PATCH" and resource.host == "app.example.com"
    and resource.query == "x=1&y=%20" and context.caller == "gateway"
  reason "the probe matched"
}
"""


class RecordingSink:
    def __init__(self):
        self.records = []

    def record(self, outcome, input, caller):
        self.records.append((outcome, input, caller))


def token(sub="alice", roles=("user",), **claims) -> str:
    payload = {"sub": sub, "roles": list(roles), "exp": time.time() + 300, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


def make_app(store, sink, **settings):
    return create_app(Settings(database_url=store.url.render_as_string(hide_password=False),
                               **settings),
                      store=store, options=OPTIONS, sink=sink,
                      verifier=TokenVerifier(hs_secret=SECRET))


@pytest.fixture
def app(store, sink):
    app = make_app(store, sink)
    try:
        yield app
    finally:
        services(app).active.stop()


def publish(app, admin_key):
    api = Api(app.test_client(), admin_key)
    assert api.publish({"gateway.policy": GATEWAY_POLICY}, activate=True).status_code == 201
    assert api.publish({"probe.policy": PROBE}, "probe", activate=True).status_code == 201
    services(app).active.refresh()


@pytest.fixture
def gateway_key(store) -> str:
    return keys.create_key(store, name="gateway", roles=("decide",), created_by="tests").secret


class Gateway:
    """Sends requests as a gateway would, with its key in ``X-PDP-Key``."""

    def __init__(self, client, key):
        self.client, self.key = client, key

    def ask(self, path="/v1/authz/http/health", method="GET", *, user=None, headers=None,
            key=True):
        sent = {} if not key else {"X-PDP-Key": self.key if key is True else key}
        if user is not None:
            sent["Authorization"] = f"Bearer {user}"
        sent.update(headers or {})
        return self.client.open(path, method=method, headers=sent)


@pytest.fixture
def gw(app, admin_key, gateway_key) -> Gateway:
    publish(app, admin_key)
    return Gateway(app.test_client(), gateway_key)


def documented(response, method="get") -> None:
    """The answer is one ``openapi.yaml`` documents, headers included."""
    op = SPEC["paths"]["/v1/authz/http/{path}"][method]
    ref = op["responses"][str(response.status_code)]["$ref"].rsplit("/", 1)[1]
    spec = SPEC["components"]["responses"][ref]
    for header in spec.get("headers", {}):
        if header != "X-PDP-Subject":
            assert header in response.headers, header
    if "content" in spec:
        schema = spec["content"]["application/json"]["schema"]
        assert problems(SPEC, schema, response.get_json()) == []


# --------------------------------------------------------------------------- answers

def test_allow_is_200_without_a_body_with_the_decision_id(gw, sink):
    response = gw.ask("/v1/authz/http/health")
    assert response.status_code == 200 and response.data == b""
    documented(response)
    assert response.headers["X-PDP-Decision-Id"] == sink.records[-1][0].decision_id
    assert "X-PDP-Subject" not in response.headers                  # off by default
    assert gw.ask("/v1/authz/http/api/x", "POST", user=token()).status_code == 200
    assert gw.ask("/v1/authz/http/health", "HEAD").status_code == 200


def test_deny_without_a_token_is_401_with_a_challenge(gw, sink):
    response = gw.ask("/v1/authz/http/api/x")
    assert response.status_code == 401
    documented(response)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="pdp"'
    assert response.headers["X-PDP-Decision-Id"] == sink.records[-1][0].decision_id
    assert sink.records[-1][0].decision == "deny"


def test_an_invalid_token_is_401_invalid_token(gw, sink):
    for bad in ("garbage", token(exp=time.time() - 3600),
                jwt.encode({"sub": "a", "exp": time.time() + 60}, "x" * 40, algorithm="HS256")):
        response = gw.ask("/v1/authz/http/api/x", user=bad)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="pdp", error="invalid_token"'
        assert sink.records[-1][0].token_error is not None
    # A refused token is refused even where anyone may go: the client should sign in again.
    assert gw.ask("/v1/authz/http/health", user="garbage").status_code == 401


def test_deny_with_a_valid_token_is_403(gw, sink):
    response = gw.ask("/v1/authz/http/admin/users", user=token())
    assert response.status_code == 403
    documented(response)
    assert response.get_json()["error"]["code"] == "forbidden"
    assert response.headers["X-PDP-Decision-Id"] == sink.records[-1][0].decision_id
    forbid = gw.ask("/v1/authz/http/api/x", "DELETE", user=token())
    assert forbid.status_code == 403
    assert sink.records[-1][0].policies == ("gw-api-delete-admin",)
    assert gw.ask("/v1/authz/http/api/x", "DELETE", user=token(roles=["user", "admin"])
                  ).status_code == 200


def test_a_non_bearer_authorization_is_no_token(gw, sink):
    response = gw.ask("/v1/authz/http/api/x", headers={"Authorization": "Basic YTpi"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="pdp"'
    assert dict(sink.records[-1][0].claims) == {}


def test_subject_headers_when_configured(store, sink, admin_key, gateway_key):
    app = make_app(store, sink, gateway_subject_headers=True)
    try:
        publish(app, admin_key)
        gw = Gateway(app.test_client(), gateway_key)
        response = gw.ask("/v1/authz/http/api/x", user=token("alice@example.com"))
        assert response.headers["X-PDP-Subject"] == "alice@example.com"
        documented(response)
        assert gw.ask("/v1/authz/http/health").headers["X-PDP-Subject"] == ""   # anonymous
        odd = gw.ask("/v1/authz/http/api/x", user=token("ünïcode"))
        assert odd.status_code == 200 and odd.headers["X-PDP-Subject"] == ""
        assert "X-PDP-Subject" not in gw.ask("/v1/authz/http/admin/x", user=token()).headers
    finally:
        services(app).active.stop()


# --------------------------------------------------------------------------- the request

def test_envoy_style_every_attribute(gw, sink):
    response = gw.ask("/v1/authz/http/a%20b/%C3%BC?x=1&y=%20", "PATCH",
                      headers={"X-PDP-Policy-Set": "probe", "Host": "App.Example.com"})
    assert response.status_code == 200, response.get_json()
    outcome, decision_input, caller = sink.records[-1]
    assert (outcome.policy_set, outcome.policies) == ("probe", ("probe",))
    assert caller.name == "gateway"
    assert (decision_input.action, decision_input.resource_type, decision_input.resource_id
            ) == ("PATCH", "http", "/a b/ü")
    assert dict(decision_input.resource_attributes) == {
        "path": "/a b/ü", "method": "PATCH", "host": "app.example.com", "query": "x=1&y=%20"}


def test_nginx_style_the_original_method_and_uri_win(gw, sink):
    response = gw.ask("/v1/authz/http", "GET", headers={
        "X-Original-URI": "/a%20b/%C3%BC?x=1&y=%20", "X-Original-Method": "PATCH",
        "X-PDP-Policy-Set": "probe", "Host": "app.example.com"})
    assert response.status_code == 200, response.get_json()
    assert sink.records[-1][0].policies == ("probe",)
    # The same under any path of the endpoint: the headers win.
    other = gw.ask("/v1/authz/http/health", "GET", headers={
        "X-Original-URI": "/admin/x", "X-Original-Method": "GET"})
    assert other.status_code == 401
    assert sink.records[-1][1].resource_id == "/admin/x"


def test_nginx_absolute_form_uri(gw, sink):
    response = gw.ask("/v1/authz/http", headers={
        "X-Original-URI": "http://app.example.com/health", "X-Original-Method": "GET"})
    assert response.status_code == 200
    assert sink.records[-1][1].resource_attributes["path"] == "/health"


@pytest.mark.parametrize("path, expected", [
    ("/v1/authz/http", "/"),
    ("/v1/authz/http/", "/"),
    ("/v1/authz/http//health", "//health"),                    # not merged, not redirected
    ("/v1/authz/http/he%61lth", "/health"),                    # decoded: what upstreams see
    ("/v1/authz/http/public/a%2Fb", "/public/a/b"),
])
def test_paths_are_decoded_not_normalised(gw, sink, path, expected):
    response = gw.ask(path)
    assert response.status_code in (200, 401), response.get_json()
    assert sink.records[-1][1].resource_id == expected


@pytest.mark.parametrize("headers, path", [
    ({"X-Original-URI": "/health"}, "/v1/authz/http"),                       # no method
    ({"X-Original-URI": "*", "X-Original-Method": "OPTIONS"}, "/v1/authz/http"),
    ({"X-Original-URI": "ftp://x/health", "X-Original-Method": "GET"}, "/v1/authz/http"),
    ({"X-Original-URI": "/health", "X-Original-Method": "G E T"}, "/v1/authz/http"),
    ({"X-Original-URI": "/public/../admin", "X-Original-Method": "GET"}, "/v1/authz/http"),
    ({"X-Original-URI": "/public/%2e%2e/admin", "X-Original-Method": "GET"}, "/v1/authz/http"),
    ({"X-Original-URI": "/public/x%00", "X-Original-Method": "GET"}, "/v1/authz/http"),
    ({"X-Original-URI": "/public/%ff", "X-Original-Method": "GET"}, "/v1/authz/http"),
    ({"X-Original-URI": "/public/x#frag", "X-Original-Method": "GET"}, "/v1/authz/http"),
    ({"X-Original-URI": "/" + "a" * 9000, "X-Original-Method": "GET"}, "/v1/authz/http"),
    ({"X-Original-URI": "/" + "a" * 1024, "X-Original-Method": "GET"}, "/v1/authz/http"),
    ({}, "/v1/authz/http/public/%2e%2e/admin"),
    ({}, "/v1/authz/http/public/./x"),
    ({}, "/v1/authz/http/public/%C0%AF"),
    ({"X-PDP-Policy-Set": "../x"}, "/v1/authz/http/health"),
])
def test_malformed_requests_are_403_and_not_decided(gw, sink, headers, path):
    response = gw.ask(path, headers=headers)
    assert response.status_code == 403, (headers, path, response.get_json())
    documented(response)
    assert response.get_json()["error"]["code"] in ("invalid_request", "forbidden")
    assert sink.records == []


def test_a_method_outside_the_list_is_403_not_405(gw, app):
    response = gw.ask("/v1/authz/http/health", "PROPFIND")
    assert response.status_code == 403
    documented(response)
    assert app.test_client().put("/healthz").status_code == 405            # elsewhere: 405


# --------------------------------------------------------------------------- the gateway's key

def test_a_missing_or_unknown_gateway_key_is_401(gw, sink, admin_key):
    for key in (False, "pdp_" + "x" * 43, ""):
        response = gw.ask("/v1/authz/http/health", key=key)
        assert response.status_code == 401
        documented(response)
        assert response.get_json()["error"]["code"] == "unauthenticated"
        assert "X-PDP-Key" in response.get_json()["error"]["message"]
    # The key in Authorization is not the gateway's key (that is the end user's token).
    as_bearer = gw.ask("/v1/authz/http/health", key=False, user=gw.key)
    assert as_bearer.status_code == 401
    assert sink.records == []


def test_a_key_without_decide_or_restricted_to_other_sets_is_403(gw, store, sink, admin_key):
    assert gw.ask(key=admin_key).status_code == 403
    probe_only = keys.create_key(store, name="probe-gw", roles=("decide",),
                                 policy_sets=["probe"], created_by="tests").secret
    assert gw.ask(key=probe_only).status_code == 403
    assert gw.ask(key=probe_only, headers={"X-PDP-Policy-Set": "probe"}).status_code == 401
    assert len(sink.records) == 1


# --------------------------------------------------------------------------- never a 5xx

def test_sets_that_cannot_decide_are_403_not_404_or_503(gw, app, admin_key, sink):
    unknown = gw.ask(headers={"X-PDP-Policy-Set": "nope"})
    assert unknown.status_code == 403
    assert unknown.get_json()["error"]["code"] == "policy_set_not_found"
    api = Api(app.test_client(), admin_key)
    assert api.publish({"a.policy": PROBE}, "inactive").status_code == 201
    inactive = gw.ask(headers={"X-PDP-Policy-Set": "inactive"})
    assert inactive.status_code == 403
    assert inactive.get_json()["error"]["code"] == "no_active_version"
    assert sink.records == []


@pytest.mark.parametrize("failure", [
    RuntimeError("boom"), StoreError("database gone"),
    PdpError("not recorded", code="decision_not_recorded"),
])
def test_failures_while_deciding_are_403(gw, app, monkeypatch, failure):
    def fail(*args, **kwargs):
        raise failure
    monkeypatch.setattr(services(app).decisions, "decide", fail)
    response = gw.ask()
    assert response.status_code == 403
    documented(response)
    assert "X-PDP-Decision-Id" not in response.headers


def test_a_failing_sink_is_403_never_an_allow(store, admin_key, gateway_key):
    class FailingSink:
        def record(self, *args):
            raise OSError("disk full")

    app = make_app(store, FailingSink())
    try:
        publish(app, admin_key)
        response = Gateway(app.test_client(), gateway_key).ask("/v1/authz/http/health")
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "decision_not_recorded"
    finally:
        services(app).active.stop()


def test_the_store_down_while_authenticating_is_403(gw, app, monkeypatch):
    def down(raw_key):
        raise StoreError("database gone")
    monkeypatch.setattr(services(app).authenticator, "_lookup", down)
    services(app).authenticator.clear()
    response = gw.ask()
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "store_unavailable"


def test_the_subject_headers_setting():
    assert Settings.from_env({}).gateway_subject_headers is False
    for on in ("1", "true", "YES", "on"):
        assert Settings.from_env({"PDP_GATEWAY_SUBJECT_HEADERS": on}).gateway_subject_headers
    for off in ("0", "false", "no", "off", ""):
        assert not Settings.from_env({"PDP_GATEWAY_SUBJECT_HEADERS": off}).gateway_subject_headers
    with pytest.raises(ConfigError, match="PDP_GATEWAY_SUBJECT_HEADERS"):
        Settings.from_env({"PDP_GATEWAY_SUBJECT_HEADERS": "maybe"})
