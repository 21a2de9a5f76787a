"""``POST /v1/decide``, ``POST /decide`` and ``POST /v1/decide/batch``, end to end, on
every backend: the decision rules, every status code, batches, caller forgery and
the subject-token attack list. Whatever goes wrong, the answer is never a 500 and
never an allow."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pdp.api import create_app, services
from pdp.api.tokens import TokenVerifier
from pdp.config import Settings
from pdp.service import keys

from .conftest import ADMINS, DOCS, FORBID_ARCHIVED, OPTIONS, Api, make_key

SECRET = "correct horse battery staple, long enough"
ISSUER = "https://idp.example"
AUDIENCE = "pdp"
MAX_CHECKS = 5
MAX_BODY = 64 * 1024

BILLING = """\
policy "billing-only" {
  permit pay on invoice
  when context.caller == "billing"
}
"""
OLD_TIMES = """\
policy "before-2000" {
  permit view on archive
  when context.time < time("2000-01-01T00:00:00Z")
}
"""
REPORTS = """\
policy "report-level" {
  permit read on report
  when subject.level > 3
  reason "senior readers"
}
policy "report-admins" {
  permit delete on report
  when "admin" in subject.roles
}
policy "report-locked" {
  forbid delete on report
  when resource.locked
  reason "locked reports stay"
}
"""
FILES = {"docs.policy": DOCS, "admins.policy": ADMINS, "archived.policy": FORBID_ARCHIVED,
         "billing.policy": BILLING, "times.policy": OLD_TIMES, "reports.policy": REPORTS}


# --------------------------------------------------------------------------- tokens

@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_jwk(private, kid):
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return {**jwk, "kid": kid}


def _b64(data: bytes | str) -> str:
    data = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, payload, secret: bytes | str | None = SECRET) -> str:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    signing_input = f"{_b64(json.dumps(header))}.{_b64(body)}"
    if secret is None:
        return signing_input + "."
    key = secret.encode() if isinstance(secret, str) else secret
    return f"{signing_input}.{_b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {"sub": "alice", "exp": now + 600, "iat": now - 10, "iss": ISSUER,
            "aud": AUDIENCE, "roles": ["editor"]}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs_token(**overrides) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


class CountingVerifier:
    """The real verifier, counting its calls."""

    def __init__(self, inner: TokenVerifier):
        self.inner = inner
        self.calls = 0

    def verify(self, token):
        self.calls += 1
        return self.inner.verify(token)


@pytest.fixture
def verifier(rsa_key) -> CountingVerifier:
    return CountingVerifier(TokenVerifier(hs_secret=SECRET, keys=[_public_jwk(rsa_key, "rsa-1")],
                                          issuer=ISSUER, audience=AUDIENCE))


# --------------------------------------------------------------------------- app and keys

@pytest.fixture
def app(store, verifier):
    options = dataclasses.replace(OPTIONS, max_body_bytes=MAX_BODY, max_batch_checks=MAX_CHECKS)
    app = create_app(Settings(database_url=store.url.render_as_string(hide_password=False)),
                     store=store, options=options, verifier=verifier)
    try:
        yield app
    finally:
        services(app).active.stop()


def _key(store, name, *roles, policy_sets=None, trusted=False) -> str:
    return keys.create_key(store, name=name, roles=roles, policy_sets=policy_sets,
                           trusted_claims=trusted, created_by="tests").secret


@pytest.fixture
def published(api):
    response = api.publish(FILES, activate=True)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["version"]


@pytest.fixture
def decider(api, store, published) -> Api:
    """A key with ``decide`` only (tokens, no claims)."""
    return api.as_(_key(store, "docs-service", "decide"))


@pytest.fixture
def trusted(api, store, published) -> Api:
    """A key that may pass claims."""
    return api.as_(_key(store, "gateway", "decide", trusted=True))


def body(subject=None, action="read", resource=None, **extra) -> dict:
    out = {"subject": subject if subject is not None else {"token": hs_token()},
           "action": action,
           "resource": resource if resource is not None else
           {"type": "document", "id": "d-42", "attributes": {"owner": "alice"}}}
    out.update(extra)
    return out


def decided(response, decision: str | None = None) -> dict:
    assert response.status_code == 200, response.get_json()
    out = response.get_json()
    assert set(out) == {"decision", "decision_id", "policy_set", "policy_version",
                        "policies", "reasons", "errors"}
    assert response.headers["Cache-Control"] == "no-store"
    uuid.UUID(out["decision_id"])
    if decision is not None:
        assert out["decision"] == decision, out
    return out


def refused(response, status: int, code: str | None = None, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert error.get("field") == field, error
    return error


# --------------------------------------------------------------------------- decision rules

def test_allow_names_the_determining_policies_and_reasons(decider, published):
    out = decided(decider.post("/v1/decide", body()), "allow")
    assert out["policies"] == ["doc-owner-edit"]
    assert out["reasons"] == ["owners may edit their own documents"]
    assert out["errors"] == []
    assert out["policy_set"] == "default"
    assert out["policy_version"] == published


def test_the_unversioned_path_answers_the_same(decider):
    assert decided(decider.post("/decide", body()), "allow")["policies"] == ["doc-owner-edit"]


def test_default_deny(decider):
    out = decided(decider.post("/v1/decide", body(
        resource={"type": "document", "id": "d-1", "attributes": {"owner": "bob"}})), "deny")
    assert out == {**out, "policies": [], "reasons": [], "errors": []}
    decided(decider.post("/v1/decide", body(action="launch", resource={"type": "rocket",
                                                                       "id": "r"})), "deny")


def test_forbid_wins_over_permit(decider):
    resource = {"type": "document", "id": "d-2",
                "attributes": {"owner": "alice", "archived": True}}
    out = decided(decider.post("/v1/decide", body(action="update", resource=resource)), "deny")
    assert out["policies"] == ["no-archived-writes"]
    resource["attributes"]["archived"] = False
    decided(decider.post("/v1/decide", body(action="update", resource=resource)), "allow")


def test_action_as_an_object_and_the_policy_set_by_name(decider):
    out = decided(decider.post("/v1/decide", body(
        action={"name": "read", "attributes": {"via": "ui"}}, policy_set="default")), "allow")
    assert out["policies"] == ["doc-owner-edit"]


def test_evaluation_errors_are_reported_with_the_policy_and_never_allow(trusted):
    out = decided(trusted.post("/v1/decide", body(
        subject={"claims": {"sub": "carol", "level": "high", "roles": []}},
        resource={"type": "report", "id": "r-1"})), "deny")
    assert [e["policy"] for e in out["errors"]] == ["report-level"]
    assert out["errors"][0]["code"] and out["errors"][0]["message"]
    assert out["policies"] == []
    senior = {"claims": {"sub": "c", "level": 5, "roles": []}}
    decided(trusted.post("/v1/decide", body(subject=senior,
                                            resource={"type": "report", "id": "r-1"})), "allow")


def test_a_forbid_that_errors_applies(trusted):
    subject = {"claims": {"sub": "root", "roles": ["admin"]}}
    ok = decided(trusted.post("/v1/decide", body(
        subject=subject, action="delete",
        resource={"type": "report", "id": "r", "attributes": {"locked": False}})), "allow")
    assert "report-admins" in ok["policies"]
    out = decided(trusted.post("/v1/decide", body(
        subject=subject, action="delete",
        resource={"type": "report", "id": "r", "attributes": {"locked": "yes"}})), "deny")
    assert out["policies"] == ["report-locked"]
    assert out["reasons"] == ["locked reports stay"]
    assert [e["policy"] for e in out["errors"]] == ["report-locked"]


def test_every_decision_id_is_new(decider):
    ids = {decided(decider.post("/v1/decide", body()))["decision_id"] for _ in range(5)}
    assert len(ids) == 5


# --------------------------------------------------------------------------- callers

def test_no_key_or_an_unknown_key_is_401(decider):
    for client in (decider.as_(None), decider.as_("pdp_" + "x" * 43)):
        for path in ("/v1/decide", "/decide", "/v1/decide/batch"):
            response = client.post(path, body())
            refused(response, 401, "unauthenticated")
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="pdp"'


def test_a_key_without_the_decide_role_is_403(api, store, published):
    for client in (api, api.as_(_key(store, "auditor", "auditor"))):
        refused(client.post("/v1/decide", body()), 403, "forbidden")
        refused(client.post("/v1/decide/batch", {"subject": {"token": hs_token()},
                                                 "checks": [{"action": "read", "resource": {
                                                     "type": "document", "id": "d"}}]}), 403)


def test_claims_from_a_key_not_trusted_with_them_are_403(decider, trusted):
    subject = {"claims": {"sub": "alice", "roles": []}}
    refused(decider.post("/v1/decide", body(subject=subject)), 403, "forbidden")
    decided(trusted.post("/v1/decide", body(subject=subject)), "allow")


def test_a_key_restricted_to_other_sets_is_403(api, store, published):
    restricted = api.as_(_key(store, "other-team", "decide", policy_sets=["other"]))
    refused(restricted.post("/v1/decide", body()), 403, "forbidden")
    refused(restricted.post("/v1/decide", body(policy_set="default")), 403, "forbidden")
    allowed = api.as_(_key(store, "docs-team", "decide", policy_sets=["default"]))
    decided(allowed.post("/v1/decide", body()), "allow")


def test_unknown_set_is_404_and_a_set_without_an_active_version_503(api, decider):
    refused(decider.post("/v1/decide", body(policy_set="nope")), 404, "policy_set_not_found")
    assert api.publish({"a.policy": DOCS}, "staged").status_code == 201
    error = refused(decider.post("/v1/decide", body(policy_set="staged")), 503,
                    "no_active_version")
    assert "staged" in error["message"]
    refused(decider.post("/v1/decide", body(policy_set="../x")), 400,
            "invalid_policy_set_name", "policy_set")


def test_caller_and_time_in_the_body_are_overridden(api, store, published):
    billing = api.as_(_key(store, "billing", "decide", trusted=True))
    other = api.as_(_key(store, "shop", "decide", trusted=True))
    invoice = {"type": "invoice", "id": "i-1"}
    forged = {"caller": "billing", "time": "1990-01-01T00:00:00Z"}
    subject = {"claims": {"sub": "alice", "roles": []}}
    decided(billing.post("/v1/decide", body(subject=subject, action="pay", resource=invoice)),
            "allow")
    decided(other.post("/v1/decide", body(subject=subject, action="pay", resource=invoice,
                                          context=forged)), "deny")
    batch = other.post("/v1/decide/batch", {"subject": subject, "context": forged, "checks": [
        {"action": "pay", "resource": invoice}]})
    assert batch.get_json()["decisions"][0]["decision"] == "deny"
    # a policy that would allow only in the past: the body cannot move the clock
    decided(billing.post("/v1/decide", body(subject=subject, action="view",
                                            resource={"type": "archive", "id": "a"},
                                            context=forged)), "deny")


# --------------------------------------------------------------------------- bad bodies

BAD_BODIES = [
    ({"action": "read", "resource": {"type": "document", "id": "d"}}, "subject"),
    ({**body(), "subject": {"token": "t", "claims": {}}}, "subject"),
    ({**body(), "subject": {}}, "subject"),
    ({**body(), "subject": {"token": 5}}, "subject.token"),
    ({**body(), "subject": {"claims": "alice"}}, "subject.claims"),
    ({**body(), "subject": {"token": "t", "extra": 1}}, "subject.extra"),
    ({**body(), "subject": "alice"}, "subject"),
    ({**body(), "action": 5}, "action"),
    ({**body(), "action": ""}, "action"),
    ({**body(), "action": {"attributes": {}}}, "action.name"),
    ({**body(), "action": {"name": "read", "attributes": []}}, "action.attributes"),
    ({**body(), "action": {"name": "read", "verb": "x"}}, "action.verb"),
    ({k: v for k, v in body().items() if k != "action"}, "action"),
    ({**body(), "resource": {"id": "d"}}, "resource.type"),
    ({**body(), "resource": {"type": "document"}}, "resource.id"),
    ({**body(), "resource": {"type": "", "id": "d"}}, "resource.type"),
    ({**body(), "resource": {"type": "document", "id": 42}}, "resource.id"),
    ({**body(), "resource": {"type": "document", "id": "d", "attributes": [1]}},
     "resource.attributes"),
    ({**body(), "resource": {"type": "document", "id": "d", "owner": "alice"}},
     "resource.owner"),
    ({**body(), "resource": "document:d"}, "resource"),
    ({**body(), "context": []}, "context"),
    ({**body(), "context": "x"}, "context"),
    ({**body(), "policy_set": 7}, "policy_set"),
    ({**body(), "user": "alice"}, "user"),
]


@pytest.mark.parametrize("payload, field", BAD_BODIES, ids=[f for _, f in BAD_BODIES])
def test_bad_bodies_are_400_naming_the_field(decider, payload, field):
    refused(decider.post("/v1/decide", payload), 400, field=field)


@pytest.mark.parametrize("raw, code, field", [
    (b"not json", "invalid_json", None),
    (b"", "invalid_json", None),
    (b"[1, 2]", "not_an_object", None),
    (b'{"subject": {"token": "t"}, "action": "read", "action": "write"}', "duplicate_key",
     "action"),
    (b'{"subject": {"claims": {"n": NaN}}, "action": "read"}', "invalid_number",
     "subject.claims.n"),
    (b'{"context": {"n": 1e999}}', "invalid_number", "context.n"),
    (b'{"context": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}", "too_deep", None),
    (b"\xff\xfe", "invalid_json", None),
    (b'{"subject": {"claims": {"sub": "alice"}}, "action": "read", '
     b'"resource": {"type": "document", "id": "x\\ud800"}}', "invalid_string", "resource.id"),
    (b'{"subject": {"claims": {"sub": "alice"}}, "action": "read", "resource": '
     b'{"type": "document", "id": "1", "attributes": {"tags": ["a", "\\uDFFF"]}}}',
     "invalid_string", "resource.attributes.tags[1]"),
    (b'{"context": {"\\ud83d": 1}}', "invalid_string", "context"),
])
def test_unreadable_bodies_are_400(decider, raw, code, field):
    error = refused(decider.post("/v1/decide", data=raw, content_type="application/json"),
                    400, code)
    if field is not None:
        assert error["field"] == field


def test_a_surrogate_pair_is_one_character_and_is_decided_on(decider):
    raw = json.dumps(body(resource={"type": "document", "id": "\U0001f600",
                                    "attributes": {"owner": "alice"}}))
    assert "\\ud83d\\ude00" in raw
    response = decider.post("/v1/decide", data=raw, content_type="application/json")
    assert response.status_code == 200, response.get_json()


def test_a_body_that_is_not_json_typed_is_415_and_a_big_one_413(decider):
    refused(decider.post("/v1/decide", data=json.dumps(body()), content_type="text/plain"),
            415, "unsupported_media_type")
    big = body(context={"pad": "x" * MAX_BODY})
    refused(decider.post("/v1/decide", big), 413, "payload_too_large")
    refused(decider.post("/v1/decide/batch", {"subject": {"token": "t"}, "checks": [],
                                              "pad": "x" * MAX_BODY}), 413)


# --------------------------------------------------------------------------- batch

def _checks(n: int) -> list[dict]:
    owners = ["alice", "bob"]
    return [{"action": "read", "resource": {"type": "document", "id": f"d-{i}",
                                            "attributes": {"owner": owners[i % 2]}}}
            for i in range(n)]


def test_batch_keeps_the_order_and_gives_each_decision_its_own_id(decider, verifier, published):
    verifier.calls = 0
    response = decider.post("/v1/decide/batch", {"subject": {"token": hs_token()},
                                                 "checks": _checks(MAX_CHECKS)})
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    decisions = response.get_json()["decisions"]
    assert [d["decision"] for d in decisions] == ["allow", "deny", "allow", "deny", "allow"]
    assert len({d["decision_id"] for d in decisions}) == MAX_CHECKS
    assert all(d["policy_version"] == published for d in decisions)
    assert verifier.calls == 1


def test_batch_with_a_bad_token_denies_every_check_and_verifies_once(decider, verifier):
    verifier.calls = 0
    response = decider.post("/v1/decide/batch", {"subject": {"token": hs_token(exp=1)},
                                                 "checks": _checks(3)})
    decisions = response.get_json()["decisions"]
    assert [d["decision"] for d in decisions] == ["deny"] * 3
    assert all(d["errors"][0]["code"] == "token_expired" for d in decisions)
    assert verifier.calls == 1


@pytest.mark.parametrize("change, field", [
    ({"resource": {"type": "document", "id": "x" * 1025}}, "resource.id"),
    ({"resource": {"type": "t" * 257, "id": "d"}}, "resource.type"),
    ({"action": "a" * 257}, "action"),
])
def test_names_longer_than_the_decision_log_holds_are_400(decider, change, field):
    """The log indexes the action, resource type and id (PostgreSQL refuses longer
    values): a decision it could not record is never answered."""
    error = refused(decider.post("/v1/decide", {**body(), **change}), 400, "invalid_field")
    assert error["field"] == field and "at most" in error["message"]


def test_the_longest_names_the_log_holds_are_decided(decider):
    decided(decider.post("/v1/decide", body(action="r" * 256, resource={
        "type": "document", "id": "x" * 1024, "attributes": {"owner": "alice"}})))


def test_a_batch_with_one_name_too_long_decides_none(decider, app, store):
    import sqlalchemy as sa

    checks = _checks(3)
    checks[1]["resource"]["id"] = "x" * 1025
    refused(decider.post("/v1/decide/batch", {"subject": {"token": hs_token()}, "checks": checks}),
            400, "invalid_field", "checks[1].resource.id")
    writer = app.extensions.get("pdp.audit")
    if writer is not None:
        writer.flush()
    with store.read() as session:
        assert session.execute(sa.text("SELECT count(*) FROM decision_log")).scalar() == 0


def test_batch_limits_and_fields(decider, trusted):
    refused(decider.post("/v1/decide/batch", {"subject": {"token": hs_token()},
                                              "checks": _checks(MAX_CHECKS + 1)}),
            400, "too_many_checks", "checks")
    refused(decider.post("/v1/decide/batch", {"subject": {"token": hs_token()}, "checks": []}),
            400, field="checks")
    refused(decider.post("/v1/decide/batch", {"subject": {"token": hs_token()}}),
            400, "missing_field", "checks")
    bad = _checks(3)
    del bad[2]["resource"]["type"]
    refused(decider.post("/v1/decide/batch", {"subject": {"token": hs_token()}, "checks": bad}),
            400, field="checks[2].resource.type")
    refused(decider.post("/v1/decide/batch", {"subject": {"claims": {"sub": "alice"}},
                                              "checks": _checks(1)}), 403, "forbidden")
    refused(decider.post("/v1/decide/batch", {"subject": {"token": hs_token()},
                                              "checks": _checks(1), "policy_set": "nope"}),
            404)
    out = trusted.post("/v1/decide/batch", {"subject": {"claims": {"sub": "alice", "roles": []}},
                                            "checks": _checks(2), "context": {"ip": "1.2.3.4"}})
    assert [d["decision"] for d in out.get_json()["decisions"]] == ["allow", "deny"]


# --------------------------------------------------------------------------- token attacks

def _attacks(rsa_key) -> list[tuple[str, str, str]]:
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    good = hs_token()
    head, payload, sig = good.split(".")
    tampered_payload = _b64(json.dumps(claims(sub="root", roles=["admin"])))
    return [
        ("alg none", forge({"alg": "none"}, claims(), None), "token_invalid"),
        ("alg None", forge({"alg": "None", "typ": "JWT"}, claims(), None), "token_invalid"),
        ("HS/RS confusion with kid", forge({"alg": "HS256", "kid": "rsa-1"}, claims(), pem),
         "token_invalid"),
        ("HS/RS confusion without kid", forge({"alg": "HS256"}, claims(), pem),
         "token_signature"),
        ("tampered payload", f"{head}.{tampered_payload}.{sig}", "token_signature"),
        ("other secret", jwt.encode(claims(), "x" * 40, algorithm="HS256"), "token_signature"),
        ("expired", hs_token(exp=int(time.time()) - 3600), "token_expired"),
        ("nbf in the future", hs_token(nbf=int(time.time()) + 3600), "token_not_yet_valid"),
        ("wrong issuer", hs_token(iss="https://evil.example"), "token_issuer"),
        ("wrong audience", hs_token(aud="someone-else"), "token_audience"),
        ("unknown kid", jwt.encode(claims(), rsa_key, algorithm="RS256",
                                   headers={"kid": "rsa-9"}), "unknown_key"),
        ("oversized", hs_token(pad="x" * 9000), "token_invalid"),
        ("garbage", "not-a-token", "token_invalid"),
        ("empty", "", "token_invalid"),
        ("two parts", "eyJhbGciOiJIUzI1NiJ9.e30", "token_invalid"),
        ("exp as text", forge({"alg": "HS256"}, {**claims(), "exp": "9999999999"}),
         "token_invalid"),
        ("sub as number", forge({"alg": "HS256"}, {**claims(), "sub": 5}), "token_invalid"),
        ("aud as number", forge({"alg": "HS256"}, {**claims(), "aud": 5}), "token_invalid"),
        ("payload not an object", forge({"alg": "HS256"}, "[]"), "token_invalid"),
        ("no sub", hs_token(sub=None), "token_invalid"),
    ]


def test_token_attacks_are_denied_with_the_right_code(decider, rsa_key):
    for name, token, code in _attacks(rsa_key):
        response = decider.post("/v1/decide", body(subject={"token": token}))
        out = decided(response, "deny")
        assert [e["code"] for e in out["errors"]] == [code], (name, out)
        assert "policy" not in out["errors"][0]
        assert out["policies"] == []
        assert token not in json.dumps(out) or not token, name


def test_good_tokens_of_every_configured_key_decide(decider, rsa_key):
    rs = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    decided(decider.post("/v1/decide", body(subject={"token": rs})), "allow")
    admin = hs_token(sub="root", roles=["admin"])
    out = decided(decider.post("/v1/decide", body(
        subject={"token": admin}, resource={"type": "vault", "id": "v"})), "allow")
    assert out["policies"] == ["admins-anything"]


def test_a_verifier_that_crashes_is_a_deny_not_a_500(store, rsa_key, published, api):
    class Broken:
        def verify(self, token):
            raise RuntimeError("boom")

    app = create_app(Settings(database_url=store.url.render_as_string(hide_password=False)),
                     store=store, options=OPTIONS, verifier=Broken())
    try:
        client = Api(app.test_client(), make_key(store, "svc", "decide"))
        out = decided(client.post("/v1/decide", body()), "deny")
        assert out["errors"][0]["code"] == "token_invalid"
    finally:
        services(app).active.stop()


# --------------------------------------------------------------------------- the contract

def test_every_answer_matches_openapi(api, decider, trusted, store):
    from pathlib import Path

    import yaml

    from .schema_check import problems, resolve

    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text())
    assert api.publish({"a.policy": DOCS}, "staged").status_code == 201
    batch = {"subject": {"token": hs_token()}, "checks": _checks(2)}
    calls = [
        ("/v1/decide", lambda: decider.post("/v1/decide", body()), 200),
        ("/decide", lambda: decider.post("/decide", body(subject={"token": "x"})), 200),
        ("/v1/decide", lambda: trusted.post("/v1/decide", body(
            subject={"claims": {"level": "x", "roles": []}},
            resource={"type": "report", "id": "r"})), 200),
        ("/v1/decide/batch", lambda: decider.post("/v1/decide/batch", batch), 200),
        ("/v1/decide", lambda: decider.post("/v1/decide", {"action": 1}), 400),
        ("/v1/decide", lambda: decider.as_(None).post("/v1/decide", body()), 401),
        ("/v1/decide", lambda: decider.post("/v1/decide", body(subject={"claims": {}})), 403),
        ("/v1/decide", lambda: decider.post("/v1/decide", body(policy_set="nope")), 404),
        ("/v1/decide", lambda: decider.post("/v1/decide", body(pad="x" * MAX_BODY)), 413),
        ("/v1/decide", lambda: decider.post("/v1/decide", data="{}",
                                            content_type="text/plain"), 415),
        ("/v1/decide", lambda: decider.post("/v1/decide", body(policy_set="staged")), 503),
        ("/v1/decide/batch", lambda: decider.post("/v1/decide/batch",
                                                  {**batch, "checks": _checks(9)}), 400),
    ]
    for path, call, status in calls:
        response = call()
        assert response.status_code == status, (path, response.get_json())
        op = spec["paths"][path]["post"]
        documented = resolve(spec, op["responses"][str(status)])
        schema = documented["content"]["application/json"]["schema"]
        assert problems(spec, schema, response.get_json()) == [], (path, status)


def test_the_batch_limit_is_configured_by_the_environment():
    from pdp.api import ApiOptions
    from pdp.config import ConfigError

    assert ApiOptions.from_settings(Settings.from_env({})).max_batch_checks == 100
    configured = Settings.from_env({"PDP_MAX_BATCH_CHECKS": "7"})
    assert ApiOptions.from_settings(configured).max_batch_checks == 7
    for bad in ("0", "-1", "many"):
        with pytest.raises(ConfigError):
            Settings.from_env({"PDP_MAX_BATCH_CHECKS": bad})


def test_a_version_activated_by_the_cli_is_served_by_the_next_request(store, tmp_path):
    """The CLI (or another replica) activates; this worker polls once a minute. The
    next decision is served by the new version, not refused until the poll."""
    from pdp.service import policies as policy_service

    app = create_app(Settings(database_url=store.url.render_as_string(hide_password=False),
                              audit_spill_dir=str(tmp_path / "spill"), poll_interval=60),
                     store=store, options=OPTIONS)
    try:
        client = Api(app.test_client(), _key(store, "docs-service", "decide", trusted=True))
        request = body(subject={"claims": {"sub": "alice", "roles": ["viewer"]}},
                       policy_set="fresh")
        refused(client.post("/v1/decide", request), 404, "policy_set_not_found")
        policy_service.publish(store, FILES, policy_set="fresh", published_by="cli")
        policy_service.activate(store, 1, policy_set="fresh", activated_by="cli")
        time.sleep(0.25)                    # past the catch-up rate limit (0.2 s)
        out = decided(client.post("/v1/decide", request))
        assert (out["policy_set"], out["policy_version"]) == ("fresh", 1)
    finally:
        services(app).active.stop()
        writer = app.extensions.get("pdp.audit")
        if writer is not None:
            writer.close()
