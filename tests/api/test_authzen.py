"""The AuthZEN Authorization API 1.0 front door, through the Flask test client, on
every backend: the mapping onto pdp's request, the answers, the evaluations
semantics, every status code, and that every evaluation is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pdp.api import create_app, services
from pdp.config import ConfigError, Settings
from pdp.service import keys

from .conftest import OPTIONS, Api, make_key
from .schema_check import problems

ROOT = Path(__file__).resolve().parents[2]
TODO = ROOT / "examples" / "authzen-todo"
SPEC = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))

RICK = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
MORTY = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
BETH = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

#: A set whose one policy sees every part of the mapped request.
MAPPING = """\
policy "mapping" {
  permit read on doc
  when subject.sub == "alice" and subject.type == "user" and subject.dept == "eng"
    and action.via == "web" and resource.id == "d1" and resource.owner == "alice"
    and context.ip == "10.0.0.1" and context.caller == "pep"
  reason "every part arrived"
}
"""

EVAL = "/access/v1/evaluation"
EVALS = "/access/v1/evaluations"


class RecordingSink:
    def __init__(self):
        self.records = []

    def record(self, outcome, input, caller):
        self.records.append((outcome, input, caller))

    @property
    def ids(self) -> list[str]:
        return [outcome.decision_id for outcome, _, _ in self.records]


def todo_files() -> dict[str, str]:
    return {str(p.relative_to(TODO)): p.read_text(encoding="utf-8")
            for p in sorted(TODO.rglob("*")) if p.suffix in (".policy", ".json")}


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def app(store, sink):
    app = create_app(Settings(database_url=store.url.render_as_string(hide_password=False)),
                     store=store, options=OPTIONS, sink=sink)
    try:
        yield app
    finally:
        services(app).active.stop()


@pytest.fixture
def pdp(app, store, admin_key) -> Api:
    """The admin, with the Todo scenario as ``default`` and ``mapping`` published."""
    api = Api(app.test_client(), admin_key)
    assert api.publish(todo_files(), activate=True).status_code == 201
    assert api.publish({"mapping.policy": MAPPING}, "mapping", activate=True).status_code == 201
    services(app).active.refresh()
    return api


@pytest.fixture
def pep(pdp, store) -> Api:
    """A PEP's key: ``decide`` with ``trusted_claims``."""
    secret = keys.create_key(store, name="pep", roles=("decide",), trusted_claims=True,
                             created_by="tests").secret
    return pdp.as_(secret)


@pytest.fixture
def admin_pep(pdp, store) -> Api:
    secret = keys.create_key(store, name="admin-pep", roles=("decide", "admin"),
                             trusted_claims=True, created_by="tests").secret
    return pdp.as_(secret)


def evaluation(user=MORTY, action="can_update_todo", owner="morty@the-citadel.com", **extra):
    resource = {"type": "todo", "id": "t1"}
    if owner is not None:
        resource["properties"] = {"ownerID": owner}
    return {"subject": {"type": "user", "id": user}, "action": {"name": action},
            "resource": resource, **extra}


def check(path: str, response) -> dict:
    """The answer matches ``openapi.yaml``; its JSON."""
    op = SPEC["paths"][path]["post" if path.startswith("/access") else "get"]
    documented = op["responses"][str(response.status_code)]
    while "$ref" in documented:
        documented = SPEC["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
    schema = documented["content"]["application/json"]["schema"]
    body = response.get_json()
    options = schema.get("oneOf", [schema])
    assert any(problems(SPEC, s, body) == [] for s in options), (path, body)
    return body


# --------------------------------------------------------------------------- one evaluation

def test_an_allow_and_a_deny_are_booleans_with_a_decision_id(pep, sink):
    allow = pep.post(EVAL, evaluation())
    deny = pep.post(EVAL, evaluation(owner="summer@the-smiths.com"))
    assert allow.status_code == deny.status_code == 200
    assert check(EVAL, allow)["decision"] is True
    assert check(EVAL, deny)["decision"] is False
    assert set(allow.get_json()["context"]) == {"decision_id"}      # not an admin
    assert allow.headers["Cache-Control"] == "no-store"
    assert sink.ids == [allow.get_json()["context"]["decision_id"],
                        deny.get_json()["context"]["decision_id"]]


def test_every_part_of_the_request_is_mapped(pep, sink):
    body = {"subject": {"type": "user", "id": "alice", "properties": {"dept": "eng"}},
            "action": {"name": "read", "properties": {"via": "web"}},
            "resource": {"type": "doc", "id": "d1", "properties": {"owner": "alice"}},
            "context": {"ip": "10.0.0.1", "caller": "forged"}}
    response = pep.post(EVAL, body, headers={"X-PDP-Policy-Set": "mapping"})
    assert response.get_json()["decision"] is True
    outcome, decision_input, caller = sink.records[-1]
    assert caller.name == "pep"
    assert dict(outcome.claims) == {"dept": "eng", "sub": "alice", "type": "user"}
    assert outcome.policy_set == "mapping" and outcome.policies == ("mapping",)
    assert outcome.context["caller"] == "pep"                      # not the forged one
    assert decision_input.action == "read"
    assert dict(decision_input.action_attributes) == {"via": "web"}
    assert (decision_input.resource_type, decision_input.resource_id) == ("doc", "d1")
    assert dict(decision_input.resource_attributes) == {"owner": "alice"}


def test_properties_cannot_override_the_subject_id_or_type(pep, sink):
    body = {"subject": {"type": "user", "id": "alice",
                        "properties": {"dept": "eng", "sub": "mallory", "type": "admin"}},
            "action": {"name": "read", "properties": {"via": "web"}},
            "resource": {"type": "doc", "id": "d1", "properties": {"owner": "alice"}},
            "context": {"ip": "10.0.0.1"}}
    response = pep.post(EVAL, body, headers={"X-PDP-Policy-Set": "mapping"})
    assert response.get_json()["decision"] is True
    assert sink.records[-1][0].claims["sub"] == "alice"
    assert sink.records[-1][0].claims["type"] == "user"


def test_administrators_also_get_policies_reasons_and_errors(admin_pep):
    body = admin_pep.post(EVAL, evaluation(user=RICK)).get_json()
    assert body["decision"] is True
    assert body["context"]["policies"] == ["todo-admin-change-any"]
    assert body["context"]["reasons"] == ["admins may change any todo"]
    assert body["context"]["errors"] == []
    denied = check(EVAL, admin_pep.post(EVAL, evaluation(user=BETH)))
    assert denied["decision"] is False and denied["context"]["policies"] == []


def test_the_request_id_is_echoed_as_sent(pep):
    for request_id in ("8d2e1a66-5e2f-4bd0-a5c6-3c4b0b3f9e11", "req 42/a:b"):
        response = pep.post(EVAL, evaluation(), headers={"X-Request-ID": request_id})
        assert response.headers["X-Request-ID"] == request_id
    error = pep.post(EVAL, {"subject": {}}, headers={"X-Request-ID": "bad-1"})
    assert error.status_code == 400 and error.headers["X-Request-ID"] == "bad-1"
    assert pep.post(EVAL, evaluation()).headers.get("X-Request-ID")      # one is made


# --------------------------------------------------------------------------- who may call

def test_no_key_is_401(pep):
    response = pep.as_(None).post(EVAL, evaluation())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="pdp"'
    check(EVAL, response)
    assert pep.as_("pdp_" + "x" * 43).post(EVALS, evaluation()).status_code == 401


def test_a_key_without_the_decide_role_is_403(pep, store):
    auditor = keys.create_key(store, name="aud", roles=("auditor",), trusted_claims=True,
                              created_by="tests").secret
    response = pep.as_(auditor).post(EVAL, evaluation())
    assert response.status_code == 403 and check(EVAL, response)["error"]["code"] == "forbidden"


def test_a_key_without_trusted_claims_is_403_whatever_the_body(pep, store, sink):
    plain = make_key(store, "plain-decider", "decide")
    for path, body in ((EVAL, evaluation()), (EVALS, evaluation()), (EVAL, {"nonsense": 1})):
        response = pep.as_(plain).post(path, body)
        assert response.status_code == 403, path
        assert "trusted_claims" in response.get_json()["error"]["message"]
    assert sink.records == []


def test_a_key_restricted_to_other_sets_is_403(pep, store):
    other = keys.create_key(store, name="other-sets", roles=("decide",), trusted_claims=True,
                            policy_sets=["mapping"], created_by="tests").secret
    assert pep.as_(other).post(EVAL, evaluation()).status_code == 403
    allowed = pep.as_(other).post(EVAL, evaluation(), headers={"X-PDP-Policy-Set": "mapping"})
    assert allowed.status_code == 200 and allowed.get_json()["decision"] is False


# --------------------------------------------------------------------------- policy sets

def test_an_unknown_set_is_404_and_a_set_without_an_active_version_503(pep, pdp, sink):
    missing = pep.post(EVAL, evaluation(), headers={"X-PDP-Policy-Set": "nope"})
    assert missing.status_code == 404
    assert check(EVAL, missing)["error"]["code"] == "policy_set_not_found"
    assert pdp.publish({"a.policy": MAPPING}, "inactive").status_code == 201
    inactive = pep.post(EVALS, evaluation(), headers={"X-PDP-Policy-Set": "inactive"})
    assert inactive.status_code == 503
    assert check(EVALS, inactive)["error"]["code"] == "no_active_version"
    assert sink.records == []


def test_a_bad_set_name_is_400_naming_the_header(pep):
    response = pep.post(EVAL, evaluation(), headers={"X-PDP-Policy-Set": "../etc"})
    assert response.status_code == 400
    assert check(EVAL, response)["error"]["field"] == "X-PDP-Policy-Set"


# --------------------------------------------------------------------------- strict bodies

@pytest.mark.parametrize("body, field, code", [
    ({"action": {"name": "a"}, "resource": {"type": "t", "id": "1"}}, "subject", "missing_field"),
    ({**evaluation(), "subject": {"type": "user"}}, "subject.id", "missing_field"),
    ({**evaluation(), "subject": {"type": "user", "id": 7}}, "subject.id", "invalid_field"),
    ({**evaluation(), "subject": {"type": "", "id": "a"}}, "subject.type", "invalid_field"),
    ({**evaluation(), "subject": {"type": "u", "id": "a", "email": "x"}}, "subject.email",
     "unknown_field"),
    ({**evaluation(), "subject": {"type": "u", "id": "a", "properties": []}},
     "subject.properties", "invalid_field"),
    ({**evaluation(), "subject": None}, "subject", "invalid_field"),
    ({**evaluation(), "action": "can_read_todos"}, "action", "invalid_field"),
    ({**evaluation(), "action": {"name": "a", "verb": "x"}}, "action.verb", "unknown_field"),
    ({**evaluation(), "resource": {"type": "todo"}}, "resource.id", "missing_field"),
    ({**evaluation(), "resource": {"type": "todo", "id": "1", "properties": "x"}},
     "resource.properties", "invalid_field"),
    ({**evaluation(), "context": []}, "context", "invalid_field"),
    ({**evaluation(), "policy_set": "default"}, "policy_set", "unknown_field"),
])
def test_a_malformed_evaluation_is_400_naming_the_field(pep, sink, body, field, code):
    response = pep.post(EVAL, body)
    assert response.status_code == 400, response.get_json()
    error = check(EVAL, response)["error"]
    assert (error["field"], error["code"]) == (field, code)
    assert sink.records == []


def test_bodies_that_are_not_json_objects(pep):
    assert pep.post(EVAL, data="{", content_type="application/json").status_code == 400
    assert pep.post(EVAL, data="[]", content_type="application/json"
                    ).get_json()["error"]["code"] == "not_an_object"
    assert pep.post(EVAL, data="{}", content_type="text/plain").status_code == 415
    assert pep.post(EVAL, data='{"subject": 1, "subject": 2}', content_type="application/json"
                    ).get_json()["error"]["code"] == "duplicate_key"
    big = pep.post(EVAL, {**evaluation(), "context": {"x": "y" * OPTIONS.max_body_bytes}})
    assert big.status_code == 413 and check(EVAL, big)["error"]["code"] == "payload_too_large"


# --------------------------------------------------------------------------- evaluations

def test_evaluations_are_answered_in_order_with_defaults_replaced_whole(pep, sink):
    body = {"subject": {"type": "user", "id": MORTY},
            "action": {"name": "can_update_todo"},
            "resource": {"type": "todo", "id": "t1",
                         "properties": {"ownerID": "morty@the-citadel.com"}},
            "context": {"ip": "10.0.0.9"},
            "evaluations": [
                {},                                                        # all defaults: allow
                {"resource": {"type": "todo", "id": "t2"}},                # no owner: deny
                {"subject": {"type": "user", "id": BETH}},                 # a viewer: deny
                {"action": {"name": "can_read_todos"}, "context": {"n": 1}},   # allow
            ]}
    response = pep.post(EVALS, body)
    assert response.status_code == 200
    answers = check(EVALS, response)["evaluations"]
    assert [a["decision"] for a in answers] == [True, False, False, True]
    assert [a["context"]["decision_id"] for a in answers] == sink.ids
    inputs = [record[1] for record in sink.records]
    assert inputs[1].resource_attributes is None                # replaced whole, not merged
    assert dict(inputs[2].subject.claims) == {"sub": BETH, "type": "user"}
    assert dict(inputs[0].context) == {"ip": "10.0.0.9"}
    assert dict(inputs[3].context) == {"n": 1}
    assert len({a["context"]["decision_id"] for a in answers}) == 4


SEMANTIC_ITEMS = [
    {"subject": {"type": "user", "id": MORTY}},     # allow (own todo)
    {"subject": {"type": "user", "id": BETH}},      # deny
    {"subject": {"type": "user", "id": RICK}},      # allow
    {"subject": {"type": "user", "id": BETH}},      # deny
]


@pytest.mark.parametrize("semantic, expected", [
    (None, [True, False, True, False]),
    ("execute_all", [True, False, True, False]),
    ("deny_on_first_deny", [True, False]),
    ("permit_on_first_permit", [True]),
])
def test_evaluations_semantics(pep, sink, semantic, expected):
    body = {**evaluation(), "evaluations": SEMANTIC_ITEMS}
    if semantic is not None:
        body["options"] = {"evaluations_semantic": semantic}
    answers = pep.post(EVALS, body).get_json()["evaluations"]
    assert [a["decision"] for a in answers] == expected
    assert len(sink.records) == len(expected)               # only what was decided


def test_stopping_semantics_decide_everything_when_nothing_stops_them(pep, sink):
    allows = [{"subject": {"type": "user", "id": RICK}}] * 3
    denies = [{"subject": {"type": "user", "id": BETH}}] * 3
    for semantic, items in (("deny_on_first_deny", allows), ("permit_on_first_permit", denies)):
        body = {**evaluation(), "evaluations": items,
                "options": {"evaluations_semantic": semantic}}
        assert len(pep.post(EVALS, body).get_json()["evaluations"]) == 3
    assert len(sink.records) == 6


def test_permit_on_first_permit_after_denies(pep):
    items = [SEMANTIC_ITEMS[1], SEMANTIC_ITEMS[3], SEMANTIC_ITEMS[2], SEMANTIC_ITEMS[0]]
    body = {**evaluation(), "evaluations": items,
            "options": {"evaluations_semantic": "permit_on_first_permit"}}
    answers = pep.post(EVALS, body).get_json()["evaluations"]
    assert [a["decision"] for a in answers] == [False, False, True]


def test_without_items_the_request_is_one_evaluation(pep, sink):
    for body in (evaluation(), {**evaluation(), "evaluations": []}):
        response = pep.post(EVALS, body)
        assert response.status_code == 200
        assert check(EVALS, response)["decision"] is True
    assert len(sink.records) == 2
    missing = pep.post(EVALS, {"subject": {"type": "user", "id": MORTY}, "evaluations": []})
    assert missing.status_code == 400 and missing.get_json()["error"]["field"] == "action"


@pytest.mark.parametrize("body, field, code", [
    ({"subject": {"type": "user", "id": MORTY}, "action": {"name": "can_read_todos"},
      "evaluations": [{"resource": {"type": "todo", "id": "1"}}, {}]},
     "evaluations[1].resource", "missing_field"),
    ({**evaluation(), "evaluations": [{}, {}, {"resource": {"type": 5, "id": "1"}}]},
     "evaluations[2].resource.type", "invalid_field"),
    ({**evaluation(), "evaluations": [{"decision": True}]}, "evaluations[0].decision",
     "unknown_field"),
    ({**evaluation(), "evaluations": {}}, "evaluations", "invalid_field"),
    ({**evaluation(), "evaluations": [{}], "options": {"evaluations_semantic": "first"}},
     "options.evaluations_semantic", "invalid_field"),
    ({**evaluation(), "evaluations": [{}], "options": {"stop": True}}, "options.stop",
     "unknown_field"),
    ({**evaluation(), "evaluations": [{}] * (OPTIONS.max_batch_checks + 1)}, "evaluations",
     "too_many_evaluations"),
])
def test_malformed_evaluations_are_400_and_nothing_is_decided(pep, sink, body, field, code):
    response = pep.post(EVALS, body)
    assert response.status_code == 400, response.get_json()
    error = check(EVALS, response)["error"]
    assert (error["field"], error["code"]) == (field, code)
    assert sink.records == []


def test_the_limit_itself_is_accepted(pep, sink):
    body = {**evaluation(), "evaluations": [{}] * OPTIONS.max_batch_checks}
    assert len(pep.post(EVALS, body).get_json()["evaluations"]) == OPTIONS.max_batch_checks
    assert len(sink.records) == OPTIONS.max_batch_checks


# --------------------------------------------------------------------------- metadata

def test_the_metadata_needs_no_key_and_names_the_request_host(pep):
    response = pep.as_(None).get("/.well-known/authzen-configuration",
                                 base_url="https://pdp.internal:8443")
    assert response.status_code == 200
    assert check("/.well-known/authzen-configuration", response) == {
        "policy_decision_point": "https://pdp.internal:8443",
        "access_evaluation_endpoint": "https://pdp.internal:8443/access/v1/evaluation",
        "access_evaluations_endpoint": "https://pdp.internal:8443/access/v1/evaluations",
    }
    assert response.headers["Cache-Control"] == "no-store"


def test_the_metadata_uses_the_configured_public_url(store):
    settings = Settings.from_env({
        "PDP_DATABASE_URL": store.url.render_as_string(hide_password=False),
        "PDP_PUBLIC_URL": "https://authz.example.com/pdp/"})
    app = create_app(settings, store=store, options=OPTIONS)
    try:
        body = app.test_client().get("/.well-known/authzen-configuration").get_json()
    finally:
        services(app).active.stop()
    assert body == {
        "policy_decision_point": "https://authz.example.com/pdp",
        "access_evaluation_endpoint": "https://authz.example.com/pdp/access/v1/evaluation",
        "access_evaluations_endpoint": "https://authz.example.com/pdp/access/v1/evaluations",
    }


@pytest.mark.parametrize("value", ["ftp://pdp.example.com", "pdp.example.com",
                                   "https://pdp.example.com/?x=1", "https://pdp.example.com#a",
                                   "https://:8443", "https://pdp.example.com:99999"])
def test_a_public_url_pdp_cannot_use_is_refused_at_start(value):
    with pytest.raises(ConfigError, match="PDP_PUBLIC_URL"):
        Settings.from_env({"PDP_PUBLIC_URL": value})
    assert Settings.from_env({}).public_url is None


def test_a_resource_id_longer_than_the_log_holds_is_a_400_never_a_500(pep, sink):
    """The decision log indexes the resource id (PostgreSQL refuses a longer one):
    refused with 400, and in ``evaluations`` before any item is decided."""
    long_id = {"type": "todo", "id": "t" * 1025}
    one = pep.post(EVAL, {**evaluation(), "resource": long_id})
    assert one.status_code == 400, one.get_json()
    assert check(EVAL, one)["error"]["code"] == "invalid_field"
    many = pep.post(EVALS, {**evaluation(), "evaluations": [{}, {"resource": long_id}]})
    assert many.status_code == 400, many.get_json()
    assert many.get_json()["error"]["field"] == "evaluations[1].resource.id"
    assert sink.ids == []
