"""The ``POST /v1/decide`` fast path (:class:`pdp.api.decide.FastDecide`): it answers
exactly what the Flask route answers — status, body bytes, headers, the request log
line, the metrics — and hands everything that is not the plain case to Flask; its
hand validation (:func:`pdp.api.decide.decide_input`) accepts nothing the schema
refuses and builds the same input."""

from __future__ import annotations

import copy
import itertools
import json
import random

import pytest
from prometheus_client import REGISTRY

from pdp.api import services
from pdp.api.decide import _DECIDEREQUEST, FastDecide, _check, _subject, decide_input
from pdp.api.schemas import load
from pdp.errors import RequestError
from pdp.service import keys as key_service
from pdp.service.decisions import DecisionInput

from .conftest import DOCS, make_key
from .test_logging import request_lines

FIXED_ID = "0190a8f0-0000-7000-8000-000000000001"


@pytest.fixture
def setup(api, store):
    response = api.publish({"docs.policy": DOCS}, activate=True)
    assert response.status_code == 201, response.get_json()
    keys = {"admin": api.key, "plain": make_key(store, "docs-service", "decide"),
            "trusted": key_service.create_key(store, name="gateway", roles=("decide",),
                                              trusted_claims=True, created_by="tests").secret}
    app = api.client.application
    services(app).decisions._new_id = lambda: FIXED_ID
    return app, keys


def fast_of(app) -> FastDecide:
    assert isinstance(app.wsgi_app, FastDecide)
    return app.wsgi_app


CLAIMS = {"sub": "alice", "roles": ["viewer"]}
ALLOW = {"subject": {"claims": CLAIMS}, "action": "read",
         "resource": {"type": "document", "id": "d-1", "attributes": {"owner": "alice"}},
         "context": {"ip": "10.0.0.1"}}

#: (name, key, path, raw body, content type)
CASES = [
    ("allow", "trusted", "/v1/decide", json.dumps(ALLOW), "application/json"),
    ("allow, old path", "trusted", "/decide", json.dumps(ALLOW), "application/json"),
    ("deny", "trusted", "/v1/decide",
     json.dumps({**ALLOW, "resource": {"type": "document", "id": "d-2",
                                       "attributes": {"owner": "bob"}}}), "application/json"),
    ("action object", "trusted", "/v1/decide",
     json.dumps({**ALLOW, "action": {"name": "read", "attributes": {"x": 1}}}),
     "application/json"),
    ("a refused token is a deny", "plain", "/v1/decide",
     json.dumps({**ALLOW, "subject": {"token": "not-a-jwt"}}), "application/json"),
    ("claims without trusted_claims: 403", "plain", "/v1/decide", json.dumps(ALLOW),
     "application/json"),
    ("unknown set: 404", "trusted", "/v1/decide",
     json.dumps({**ALLOW, "policy_set": "nope"}), "application/json"),
    ("bad set name: 400", "trusted", "/v1/decide",
     json.dumps({**ALLOW, "policy_set": "../x"}), "application/json"),
    ("schema error: 400", "trusted", "/v1/decide",
     json.dumps({**ALLOW, "action": ""}), "application/json"),
    ("unknown field: 400", "trusted", "/v1/decide",
     json.dumps({**ALLOW, "extra": 1}), "application/json"),
    ("duplicate key: 400", "trusted", "/v1/decide",
     '{"action": "read", "action": "write"}', "application/json"),
    ("not JSON: 400", "trusted", "/v1/decide", "{nope", "application/json"),
    ("not an object: 400", "trusted", "/v1/decide", "[1]", "application/json"),
    ("media type: 415", "trusted", "/v1/decide", json.dumps(ALLOW), "text/plain"),
    ("charset in the media type", "trusted", "/v1/decide", json.dumps(ALLOW),
     "application/json; charset=utf-8"),
    ("no key: 401", None, "/v1/decide", json.dumps(ALLOW), "application/json"),
    ("wrong role: 403", "admin", "/v1/decide", json.dumps(ALLOW), "application/json"),
    ("empty body: 400", "trusted", "/v1/decide", "", "application/json"),
]

#: The cases the fast path answers itself (the others go to Flask).
FAST = {"allow", "allow, old path", "deny", "action object", "a refused token is a deny",
        "claims without trusted_claims: 403", "unknown set: 404", "bad set name: 400"}


def _send(client, key, path, raw, content_type, request_id="req-1"):
    headers = {"X-Request-Id": request_id}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return client.post(path, data=raw.encode(), content_type=content_type, headers=headers)


def _answer(response) -> tuple:
    return response.status, response.get_data(), list(response.headers.items())


@pytest.mark.parametrize("name,key,path,raw,content_type", CASES, ids=[c[0] for c in CASES])
def test_the_fast_path_answers_what_flask_answers(setup, capsys, name, key, path, raw,
                                                  content_type):
    app, keys = setup
    fast = fast_of(app)
    inner, to_flask = fast.wsgi_app, []
    fast.wsgi_app = lambda environ, start: to_flask.append(1) or inner(environ, start)
    client = app.test_client()
    answers, lines, counts = [], [], []
    try:
        for enabled in (True, False):
            fast.enabled = enabled
            capsys.readouterr()
            before = _http_count(path)
            answers.append(_answer(_send(client, keys.get(key), path, raw, content_type)))
            counts.append(_http_count(path) - before)
            line = request_lines(capsys.readouterr().out)
            assert len(line) == 1
            lines.append({k: v for k, v in line[0].items() if k not in ("time", "duration_ms")})
            if enabled:
                assert bool(to_flask) == (name not in FAST), "fast path taken or not"
    finally:
        fast.wsgi_app = inner
    assert answers[0] == answers[1]
    assert lines[0] == lines[1]
    assert counts == [1, 1]


def _http_count(route) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "pdp_http_requests":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels.get("route") == route:
                    total += sample.value
    return total


def test_the_plain_case_does_not_reach_flask_and_the_rest_does(setup):
    app, keys = setup
    fast = fast_of(app)
    calls = []
    inner = fast.wsgi_app

    def counting(environ, start_response):
        calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    fast.wsgi_app = counting
    try:
        client = app.test_client()
        assert _send(client, keys["trusted"], "/v1/decide", json.dumps(ALLOW),
                     "application/json").status_code == 200
        assert calls == []
        body = {**ALLOW, "action": 7}
        response = _send(client, keys["trusted"], "/v1/decide", json.dumps(body),
                         "application/json")
        assert response.status_code == 400
        assert response.get_json()["error"]["field"] == "action"
        assert calls == ["/v1/decide"]         # the body read by the fast path reached Flask
    finally:
        fast.wsgi_app = inner


def test_another_hook_of_the_app_sends_everything_to_flask(api, store):
    app = api.client.application
    seen = []
    app.before_request(lambda: seen.append(1))
    api.publish({"docs.policy": DOCS}, activate=True)
    key = key_service.create_key(store, name="t", roles=("decide",), trusted_claims=True,
                                 created_by="tests").secret
    before = len(seen)
    response = _send(app.test_client(), key, "/v1/decide", json.dumps(ALLOW), "application/json")
    assert response.status_code == 200
    assert len(seen) == before + 1


class FailingSink:
    def record(self, outcome, input, caller):
        raise OSError("disk on fire")


def test_a_decision_that_cannot_be_recorded_is_the_same_503(setup):
    app, keys = setup
    decisions = services(app).decisions
    original = decisions.sink
    decisions.sink = FailingSink()
    try:
        client = app.test_client()
        answers = []
        for enabled in (True, False):
            fast_of(app).enabled = enabled
            answers.append(_answer(_send(client, keys["trusted"], "/v1/decide",
                                         json.dumps(ALLOW), "application/json")))
        assert answers[0][0] == "503 SERVICE UNAVAILABLE"
        assert answers[0] == answers[1]
    finally:
        decisions.sink = original


def test_records_logged_while_deciding_carry_the_request_id(setup, capsys):
    app, keys = setup
    decisions = services(app).decisions
    original = decisions.sink
    decisions.sink = FailingSink()
    try:
        capsys.readouterr()
        _send(app.test_client(), keys["trusted"], "/v1/decide", json.dumps(ALLOW),
              "application/json", request_id="rid-fast")
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
                 if line.startswith("{")]
        failed = [line for line in lines if line["logger"] == "pdp.service.decisions"]
        assert failed and all(line.get("request_id") == "rid-fast" for line in failed)
    finally:
        decisions.sink = original


# --------------------------------------------------------------------------- validation

def _schema_input(body):
    try:
        loaded = load(_DECIDEREQUEST, body)
    except RequestError:
        return None
    return DecisionInput.of(_subject(loaded["subject"]), _check(loaded),
                            loaded.get("context"), loaded["policy_set"])


ODD_VALUES = [None, "", "x", 0, 1.5, True, [], ["a"], {}, {"a": 1}]


def _variants():
    base = {"subject": {"claims": {"sub": "a"}}, "action": "read",
            "resource": {"type": "document", "id": "d", "attributes": {"k": "v"}},
            "context": {"ip": "1.2.3.4"}, "policy_set": "default"}
    yield base
    yield {**base, "subject": {"token": "t"}}
    yield {**base, "subject": {"token": ""}}
    yield {**base, "subject": {"token": "t", "claims": {}}}
    yield {**base, "subject": {}}
    yield {**base, "action": {"name": "read"}}
    yield {**base, "action": {"name": "read", "attributes": {}}}
    yield {**base, "action": {"name": "read", "attributes": {"a": [1]}}}
    yield {**base, "action": {"attributes": {}}}
    yield {**base, "action": {"name": "read", "other": 1}}
    yield {**base, "resource": {"type": "document", "id": "d"}}
    for key in base:
        yield {k: v for k, v in base.items() if k != key}
    yield {**base, "unknown": 1}
    paths = [("subject",), ("subject", "claims"), ("subject", "token"), ("action",),
             ("action", "name"), ("action", "attributes"), ("resource",),
             ("resource", "type"), ("resource", "id"), ("resource", "attributes"),
             ("context",), ("policy_set",)]
    for path, value in itertools.product(paths, ODD_VALUES):
        body = copy.deepcopy(base)
        if path[0] == "action" and len(path) > 1:
            body["action"] = {"name": "read"}
        if path[0] == "subject" and len(path) > 1:
            body["subject"] = {}
        node = body
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        yield body
    rng = random.Random(7)
    for _ in range(300):
        body = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(paths)
            node = body
            for part in path[:-1]:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            node[path[-1]] = rng.choice(ODD_VALUES + ["read", "document"])
        yield body


def test_hand_validation_accepts_only_what_the_schema_accepts_and_builds_the_same_input():
    accepted = refused = 0
    for body in _variants():
        fast = decide_input(copy.deepcopy(body))
        slow = _schema_input(copy.deepcopy(body))
        if fast is None:
            refused += 1
        else:
            accepted += 1
            assert slow is not None, body
            assert fast == slow, body
    assert accepted >= 10 and refused >= 50


def test_another_error_handler_of_the_app_sends_everything_to_flask(api, store):
    from pdp.errors import NotFound

    app = api.client.application
    app.register_error_handler(NotFound, lambda exc: ({"custom": True}, 418))
    api.publish({"docs.policy": DOCS}, activate=True)
    key = key_service.create_key(store, name="t", roles=("decide",), trusted_claims=True,
                                 created_by="tests").secret
    response = _send(app.test_client(), key, "/v1/decide",
                     json.dumps({**ALLOW, "policy_set": "nope"}), "application/json")
    assert response.status_code == 418 and response.get_json() == {"custom": True}
