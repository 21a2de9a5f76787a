"""``GET /metrics`` and the recording helpers, in single-process mode (no
``PROMETHEUS_MULTIPROC_DIR``); the multiprocess mode under gunicorn is tested in
``tests/test_serve.py``.

Metrics are process-wide, so tests compare values before and after."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from pdp.api import metrics, services

from .conftest import DOCS


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(api) -> dict[tuple[str, tuple], float]:
    response = api.as_(None).get("/metrics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(autouse=True)
def _single_process(monkeypatch):
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)


def test_metrics_need_no_key_and_are_prometheus_text(api):
    response = api.as_(None).get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert "version=" in response.content_type
    names = {f.name for f in text_string_to_metric_families(response.get_data(as_text=True))}
    assert {"pdp_decisions", "pdp_decision_duration_seconds", "pdp_token_errors",
            "pdp_policy_version", "pdp_http_requests", "pdp_http_request_duration_seconds",
            "pdp_audit_queue_depth", "pdp_audit_spilled_records"} <= names


def test_observe_decision_counts_by_result_and_times(api):
    before_allow = value("pdp_decisions_total", result="allow")
    before_deny = value("pdp_decisions_total", result="deny")
    before_count = value("pdp_decision_duration_seconds_count")
    before_fast = value("pdp_decision_duration_seconds_bucket", le="0.001")
    metrics.observe_decision("allow", 0.0002)
    metrics.observe_decision("allow", 0.3)
    metrics.observe_decision("deny", 0.0004)
    seen = scrape(api)
    assert seen[("pdp_decisions_total", (("result", "allow"),))] == before_allow + 2
    assert seen[("pdp_decisions_total", (("result", "deny"),))] == before_deny + 1
    assert seen[("pdp_decision_duration_seconds_count", ())] == before_count + 3
    assert seen[("pdp_decision_duration_seconds_bucket", (("le", "0.001"),))] == before_fast + 2


def test_token_errors_by_code(api):
    before = value("pdp_token_errors_total", code="token_expired")
    metrics.count_token_error("token_expired")
    assert scrape(api)[("pdp_token_errors_total", (("code", "token_expired"),))] == before + 1


def test_audit_queue_helpers(api):
    before = value("pdp_audit_spilled_records_total")
    metrics.set_audit_queue_depth(7)
    metrics.count_spilled_records(3)
    seen = scrape(api)
    assert seen[("pdp_audit_queue_depth", ())] == 7
    assert seen[("pdp_audit_spilled_records_total", ())] == before + 3
    metrics.set_audit_queue_depth(0)


def test_the_active_version_of_each_set_is_a_gauge(api, app):
    assert api.publish({"a.policy": DOCS}, "metrics-set", activate=True).status_code == 201
    assert api.publish({"b.policy": DOCS.replace("doc-owner-edit", "other")}, "metrics-set",
                       activate=True).status_code == 201
    services(app).active.refresh()
    assert value("pdp_policy_version", policy_set="metrics-set") == 2
    metrics.set_policy_version("elsewhere", 5)
    assert scrape(api)[("pdp_policy_version", (("policy_set", "elsewhere"),))] == 5


def test_http_requests_by_method_route_and_status(api):
    route = "/v1/policy-sets/<set_name>/versions"
    before_ok = value("pdp_http_requests_total", method="GET", route=route, status="404")
    before_401 = value("pdp_http_requests_total", method="GET", route=route, status="401")
    before_unmatched = value("pdp_http_requests_total", method="GET", route="unmatched",
                             status="404")
    api.get("/v1/policy-sets/nothing-here/versions")
    api.as_(None).get("/v1/policy-sets/nothing-here/versions")
    api.get("/no/such/path/42")
    api.get("/no/such/path/43")
    assert value("pdp_http_requests_total", method="GET", route=route,
                 status="404") == before_ok + 1
    assert value("pdp_http_requests_total", method="GET", route=route,
                 status="401") == before_401 + 1
    # Raw paths never become labels: unknown paths share one.
    assert value("pdp_http_requests_total", method="GET", route="unmatched",
                 status="404") == before_unmatched + 2
    assert value("pdp_http_request_duration_seconds_count", method="GET", route=route) > 0
    text = api.as_(None).get("/metrics").get_data(as_text=True)
    assert "nothing-here" not in text and "/no/such/path" not in text


def test_odd_methods_share_one_label(api):
    before = value("pdp_http_requests_total", method="other", route="unmatched", status="405") \
        + value("pdp_http_requests_total", method="other", route="unmatched", status="404")
    api.client.open("/healthz", method="BREW")
    after = value("pdp_http_requests_total", method="other", route="unmatched", status="405") \
        + value("pdp_http_requests_total", method="other", route="unmatched", status="404")
    assert after == before + 1


def test_each_answered_decision_is_counted_once_with_its_token_error(store, tmp_path):
    from pdp.api import create_app
    from pdp.api.tokens import TokenVerifier, mint_dev_token
    from pdp.config import Settings

    from .conftest import OPTIONS, Api, make_key

    var = tmp_path / "var"
    token = mint_dev_token(sub="alice", var_dir=var, dev=True)
    expired = mint_dev_token(sub="alice", claims={"exp": 1}, var_dir=var, dev=True)
    recorded = []

    class Sink:
        def record(self, outcome, input, caller):
            recorded.append(outcome.decision)

    app = create_app(Settings(database_url=store.url.render_as_string(hide_password=False)),
                     store=store, options=OPTIONS, sink=Sink(),
                     verifier=TokenVerifier(jwks=str(var / "dev-jwks.json")))
    try:
        api = Api(app.test_client(), make_key(store, "m-admin", "admin"))
        assert api.publish({"a.policy": DOCS}, activate=True).status_code == 201
        services(app).active.refresh()
        decider = api.as_(make_key(store, "m-decider", "decide"))
        body = {"subject": {"token": token}, "action": "read",
                "resource": {"type": "document", "id": "d1", "attributes": {"owner": "alice"}}}
        allow = value("pdp_decisions_total", result="allow")
        deny = value("pdp_decisions_total", result="deny")
        count = value("pdp_decision_duration_seconds_count")
        expired_count = value("pdp_token_errors_total", code="token_expired")
        assert decider.post("/v1/decide", body).get_json()["decision"] == "allow"
        assert decider.post("/v1/decide", {**body, "subject": {"token": expired}}) \
            .get_json()["decision"] == "deny"
        assert decider.post("/v1/decide", {**body, "policy_set": "nope"}).status_code == 404
        assert recorded == ["allow", "deny"]                  # the app's sink still records
        assert value("pdp_decisions_total", result="allow") == allow + 1
        assert value("pdp_decisions_total", result="deny") == deny + 1
        assert value("pdp_decision_duration_seconds_count") == count + 2
        assert value("pdp_token_errors_total", code="token_expired") == expired_count + 1
    finally:
        services(app).active.stop()
