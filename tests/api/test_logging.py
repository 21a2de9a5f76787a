"""Structured logs: one JSON object per line, one line per request with its id,
and never a secret (API key, end-user token, Authorization header)."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from pdp.api import create_app, services
from pdp.api import logging as pdp_logging
from pdp.api.tokens import TokenVerifier, mint_dev_token
from pdp.config import Settings

from .conftest import DOCS, OPTIONS, Api, make_key


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def request_lines(text: str) -> list[dict]:
    return [r for r in json_lines(text) if r["logger"] == "pdp.http"]


@pytest.fixture
def debug_logging():
    pdp_logging.configure_logging("DEBUG")
    try:
        yield
    finally:
        pdp_logging.configure_logging("INFO")


def test_the_formatter_writes_one_json_object_per_record():
    record = logging.LogRecord("pdp.test", logging.WARNING, __file__, 1,
                               "policy %s: %d\nerrors", ("a", 3), None)
    record.request_id = "r-1"
    record.extra_thing = {"x": 1}
    line = pdp_logging.JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "pdp.test"
    assert entry["message"] == "policy a: 3\nerrors"
    assert entry["request_id"] == "r-1"
    assert entry["time"].endswith("Z") and "T" in entry["time"]
    assert entry["extra_thing"] == "{'x': 1}"


def test_exceptions_are_logged_in_the_same_line():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("pdp.test", logging.ERROR, __file__, 1, "failed", (),
                                   sys.exc_info())
    entry = json.loads(pdp_logging.JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]


def test_configure_logging_is_idempotent():
    pdp_logging.configure_logging("INFO")
    pdp_logging.configure_logging("INFO")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_pdp", False)]
    assert len(ours) == 1


def test_each_request_is_logged_once_with_its_id_and_caller(api, capsys):
    capsys.readouterr()
    response = api.get("/v1/policy-sets")
    assert response.status_code == 200
    lines = request_lines(capsys.readouterr().out)
    assert len(lines) == 1
    line = lines[0]
    assert line["message"] == "GET /v1/policy-sets 200"
    assert line["method"] == "GET" and line["path"] == "/v1/policy-sets"
    assert line["route"] == "/v1/policy-sets" and line["status"] == 200
    assert line["caller"] == "ops-admin"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["request_id"] == response.headers["X-Request-Id"]
    assert line["level"] == "INFO"


def test_a_sane_request_id_is_kept_and_an_odd_one_replaced(api, capsys):
    kept = api.get("/v1/policy-sets", headers={"X-Request-Id": "edge-42.a:b"})
    assert kept.headers["X-Request-Id"] == "edge-42.a:b"
    odd = api.get("/v1/policy-sets", headers={"X-Request-Id": "x" * 300})
    assert odd.headers["X-Request-Id"] != "x" * 300
    assert len(odd.headers["X-Request-Id"]) == 32
    ids = [r["request_id"] for r in request_lines(capsys.readouterr().out)]
    assert "edge-42.a:b" in ids and odd.headers["X-Request-Id"] in ids


def test_refused_callers_are_logged_without_a_caller_and_probes_quietly(api, capsys):
    capsys.readouterr()
    api.as_("not-a-key").get("/v1/policy-sets")
    api.as_(None).get("/healthz")
    lines = request_lines(capsys.readouterr().out)
    assert [(r["status"], "caller" in r) for r in lines] == [(401, False)]


def test_no_key_token_or_authorization_header_is_ever_logged(store, tmp_path, capsys, caplog,
                                                             debug_logging):
    caplog.set_level(logging.DEBUG)
    var = tmp_path / "var"
    token = mint_dev_token(sub="alice", roles=["user"], var_dir=var, dev=True)
    expired = mint_dev_token(sub="alice", claims={"exp": 1}, var_dir=var, dev=True)
    app = create_app(Settings(database_url=store.url.render_as_string(hide_password=False)),
                     store=store, options=OPTIONS,
                     verifier=TokenVerifier(jwks=str(var / "dev-jwks.json")))
    try:
        admin = make_key(store, "log-admin", "admin")
        decider = make_key(store, "log-decider", "decide")
        api = Api(app.test_client(), admin)
        assert api.publish({"a.policy": DOCS}, activate=True).status_code == 201
        services(app).active.refresh()
        body = {"subject": {"token": token}, "action": "read",
                "resource": {"type": "document", "id": "d1", "attributes": {"owner": "alice"}}}
        allowed = api.as_(decider).post("/v1/decide", body)
        assert allowed.status_code == 200, allowed.get_json()
        assert allowed.get_json()["decision"] == "allow"
        denied = api.as_(decider).post("/v1/decide", {**body, "subject": {"token": expired}})
        assert denied.get_json()["decision"] == "deny"
        # A token where a key belongs, a key where a token belongs, secrets in the
        # query string, in odd headers, in a malformed body.
        api.as_(token).get("/v1/policy-sets")
        api.as_(decider).post("/v1/decide", {**body, "subject": {"token": admin}})
        api.as_(decider).get(f"/v1/policy-sets?key={admin}&token={token}")
        api.as_(decider).post("/v1/decide", data=f'{{"subject": "{token}"',
                              content_type="application/json",
                              headers={"X-PDP-Key": admin, "Cookie": f"t={token}"})
        api.as_(None).get(f"/nowhere/{token}")
    finally:
        services(app).active.stop()
    captured = capsys.readouterr()
    formatter = pdp_logging.JsonFormatter()
    logged = "\n".join([captured.out, captured.err, caplog.text,
                        *(formatter.format(r) for r in caplog.records)])
    assert request_lines(captured.out), "nothing was logged"
    signature = token.rsplit(".", 1)[1]
    for secret in (admin, decider, token, signature, expired.rsplit(".", 1)[1]):
        assert secret not in logged
    assert "Bearer" not in logged and "Authorization" not in logged
    assert any(r["path"] == "/nowhere/[redacted]" for r in request_lines(captured.out))


def test_paths_are_cleaned_of_secret_like_parts_and_bounded():
    assert pdp_logging.safe_path("/a/pdp_" + "x" * 40 + "/b") == "/a/[redacted]/b"
    assert pdp_logging.safe_path("/v1/authz/http/eyJhbGc.eyJzdWIi.c2ln/x") == \
        "/v1/authz/http/[redacted]/x"
    assert pdp_logging.safe_path("/v1/policy-sets/default") == "/v1/policy-sets/default"
    assert len(pdp_logging.safe_path("/" + "a" * 5000)) == pdp_logging.MAX_PATH_CHARS + 1


@pytest.mark.parametrize("proxies, logged", [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_behind_trusted_proxies_every_request_logs_the_clients_address(
        store, tmp_path, capsys, proxies, logged):
    app = create_app(Settings(database_url=store.url.render_as_string(hide_password=False),
                              audit_mode="off", trusted_proxies=proxies),
                     store=store, options=OPTIONS)
    try:
        admin = make_key(store, "proxy-admin", "admin")
        decider = make_key(store, "proxy-decider", "decide", )
        api = Api(app.test_client(), admin)
        assert api.publish({"a.policy": DOCS}, activate=True).status_code == 201
        services(app).active.refresh()
        capsys.readouterr()
        forwarded = {"X-Forwarded-For": "203.0.113.9"}
        api.get("/v1/policy-sets", headers=forwarded)
        api.as_(decider).post("/v1/decide", {      # the fast path in front of Flask too
            "subject": {"claims": {"sub": "alice"}}, "action": "read",
            "resource": {"type": "document", "id": "d1"}}, headers=forwarded)
        lines = request_lines(capsys.readouterr().out)
        assert [line["remote_addr"] for line in lines] == [logged, logged]
    finally:
        services(app).active.stop()


def test_the_request_line_is_the_same_whether_or_not_a_log_record_is_made(monkeypatch, capsys):
    """When pdp's stdout handler is the only one a request line would reach (as
    under ``pdp serve``), the line is written without building a ``LogRecord``;
    it is byte for byte the line the logging module writes, at every level, with
    absent fields left out and any text in the path."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if type(h) is pdp_logging._StdoutHandler]
    assert len(ours) == 1
    assert pdp_logging._sole_handler(logging.INFO) is None     # pytest's capture is there too
    monkeypatch.setattr(root, "handlers", ours)
    assert pdp_logging._sole_handler(logging.INFO) is ours[0]
    monkeypatch.setattr(pdp_logging.time, "time", lambda: 1764417600.1235)
    cases = [
        dict(request_id="r-1", method="POST", path="/v1/decide", route="/v1/decide",
             status=200, duration_ms=1.25, caller="svc", remote_addr="127.0.0.1"),
        dict(request_id="r-2", method="GET", path="/v1/é/\u2028\"x\"", route=None, status=503,
             duration_ms=None, caller=None, remote_addr=None),
        dict(request_id="r-3", method="DELETE", path="/v1/keys/k", route="/v1/keys/<name>",
             status=404, duration_ms=0.0, caller="admin", remote_addr="::1"),
    ]
    for case in cases:
        pdp_logging.log_request(**case)
        fast = capsys.readouterr().out
        with monkeypatch.context() as m:
            m.setattr(pdp_logging, "_sole_handler", lambda level: None)
            pdp_logging.log_request(**case)
        slow = capsys.readouterr().out
        assert fast == slow and fast.count("\n") == 1, case
        assert json.loads(fast)["request_id"] == case["request_id"]
    ours[0].addFilter(logging.Filter("other"))          # anything added: the logging module
    try:
        assert pdp_logging._sole_handler(logging.INFO) is None
    finally:
        ours[0].filters.pop()
