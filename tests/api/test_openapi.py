"""``openapi.yaml`` is the contract: it and the app's routes agree exactly, and what
the app answers matches the schemas it documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from .conftest import ADMINS, DOCS, OPTIONS, make_key
from .schema_check import problems, resolve

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
METHODS = {"get", "put", "post", "delete", "patch"}
AUTOMATIC = {"HEAD", "OPTIONS"}


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def _template(path: str) -> str:
    """``/a/<int:n>/b/{x}`` → ``/a/{}/b/{}``: compare routes by shape, not by names."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def _routes(app) -> dict[tuple[str, str], object]:
    """The JSON API's routes; the console's HTML pages (``/console/…``) are not
    part of the API contract (``docs/console.md`` describes them)."""
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue
        for method in rule.methods - AUTOMATIC:
            routes[(_template(rule.rule), method.lower())] = app.view_functions[rule.endpoint]
    return routes


def _documented(spec: dict) -> dict[tuple[str, str], dict]:
    return {(_template(path), method): op
            for path, item in spec["paths"].items()
            for method, op in item.items() if method in METHODS}


def test_the_spec_is_openapi_3_1(spec):
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        **spec["components"]["securitySchemes"]["apiKey"], "type": "http", "scheme": "bearer"}


def test_every_route_is_documented_and_every_documented_route_exists(app, spec):
    served, documented = set(_routes(app)), set(_documented(spec))
    assert served - documented == set(), "routes missing from openapi.yaml"
    assert documented - served == set(), "operations in openapi.yaml the app does not serve"


def test_path_parameters_are_declared(spec):
    """Every ``{name}`` of a path is an ``in: path`` parameter, and no other is."""
    for path, item in spec["paths"].items():
        declared = {resolve(spec, p)["name"] for p in item.get("parameters", [])
                    if resolve(spec, p)["in"] == "path"}
        for method, op in item.items():
            if method in METHODS:
                names = declared | {resolve(spec, p)["name"] for p in op.get("parameters", [])
                                    if resolve(spec, p)["in"] == "path"}
                assert set(re.findall(r"\{([^}]+)\}", path)) == names, (path, method)


def test_the_documented_role_is_the_one_the_route_requires(app, spec):
    documented = _documented(spec)
    for key, view in _routes(app).items():
        op = documented[key]
        role = getattr(view, "required_role", None)
        assert op.get("x-pdp-role") == role, key
        assert (op.get("security") == []) == (role is None), key
        if role is not None:
            assert {"401", "403"} <= set(op["responses"]), key


def test_every_error_response_uses_the_one_error_shape(spec):
    error = {"$ref": "#/components/schemas/Error"}
    for (path, method), op in _documented(spec).items():
        for status, response in op["responses"].items():
            if int(status) >= 400:
                schema = resolve(spec, response)["content"]["application/json"]["schema"]
                assert schema == error, (path, method, status)


# --------------------------------------------------------------------------- answers

def _check(spec: dict, path: str, method: str, response) -> dict:
    """``response`` matches what ``openapi.yaml`` documents for it; its JSON."""
    op = _documented(spec)[(_template(path), method)]
    status = str(response.status_code)
    assert status in op["responses"], f"{method.upper()} {path}: {status} not documented"
    documented = resolve(spec, op["responses"][status])
    schema = documented["content"]["application/json"]["schema"]
    body = response.get_json()
    assert problems(spec, schema, body) == [], (method, path, status, body)
    for header in documented.get("headers", {}):
        assert header in response.headers, (method, path, status, header)
    return body


def test_every_answer_matches_its_documented_schema(api, spec, store):
    P = "/v1/policy-sets/{set}"
    V = P + "/versions/{version}"
    calls = [
        ("/healthz", "get", lambda: api.as_(None).get("/healthz"), 200),
        ("/readyz", "get", lambda: api.as_(None).get("/readyz"), 503),
        ("/v1/policy-sets", "get", lambda: api.as_(None).get("/v1/policy-sets"), 401),
        ("/v1/policy-sets", "get",
         lambda: api.as_(make_key(store, "decider", "decide")).get("/v1/policy-sets"), 403),
        (P + "/check", "post", lambda: api.post("/v1/policy-sets/default/check",
                                                {"files": {"a.policy": DOCS}}), 200),
        (P + "/check", "post", lambda: api.post("/v1/policy-sets/default/check",
                                                {"files": {"a.policy": "policy"}}), 422),
        (P + "/check", "post", lambda: api.post("/v1/policy-sets/default/check",
                                                data="{}", content_type="text/plain"), 415),
        (P + "/versions", "post", lambda: api.publish({"a.policy": DOCS}), 201),
        (P + "/versions", "post", lambda: api.publish({"a.policy": DOCS}), 200),
        (P + "/versions", "post", lambda: api.publish({"a.policy": ADMINS}, base_version=0), 409),
        (P + "/versions", "post", lambda: api.publish({"../a.policy": DOCS}), 400),
        (P + "/versions", "post",
         lambda: api.publish({"a.policy": "#" * OPTIONS.max_publish_bytes}), 413),
        (P + "/versions", "get", lambda: api.get("/v1/policy-sets/default/versions"), 200),
        (P + "/versions", "get", lambda: api.get("/v1/policy-sets/none/versions"), 404),
        (V, "get", lambda: api.get("/v1/policy-sets/default/versions/1"), 200),
        (V + "/activate", "post",
         lambda: api.post("/v1/policy-sets/default/versions/1/activate"), 200),
        (V + "/activate", "post",
         lambda: api.post("/v1/policy-sets/default/versions/9/activate"), 404),
        ("/v1/policy-sets", "get", lambda: api.get("/v1/policy-sets"), 200),
        ("/readyz", "get", lambda: api.as_(None).get("/readyz"), 200),
    ]
    for path, method, call, status in calls:
        response = call()
        assert response.status_code == status, (path, method, response.get_json())
        _check(spec, path, method, response)
