"""Callers and their credentials: who may call the admin API."""

from __future__ import annotations

import time

from pdp.api.auth import Authenticator
from pdp.service import keys
from pdp.store.keys import Caller, hash_key

from .conftest import AUTH_CACHE_TTL, DOCS, make_key

UNAUTHENTICATED = {"error": {"code": "unauthenticated",
                             "message": "a valid API key is required: Authorization: Bearer <key>"}}


def test_missing_malformed_unknown_and_revoked_keys_get_the_same_401(api, store):
    revoked = make_key(store, "gone", "admin")
    keys.revoke_key(store, "gone")
    answers = [
        api.as_(None).get("/v1/policy-sets"),
        api.as_(None).get("/v1/policy-sets", headers={"Authorization": f"Basic {api.key}"}),
        api.as_(None).get("/v1/policy-sets", headers={"Authorization": "Bearer"}),
        api.as_("pdp_" + "x" * 43).get("/v1/policy-sets"),            # well-formed, unknown
        api.as_("not-a-key").get("/v1/policy-sets"),
        api.as_("k" * 5000).get("/v1/policy-sets"),
        api.as_(revoked).get("/v1/policy-sets"),
    ]
    for r in answers:
        assert r.status_code == 401
        assert r.get_json() == UNAUTHENTICATED
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="pdp"'
        assert r.headers["Content-Type"] == "application/json"


def test_every_admin_route_refuses_a_missing_key_before_reading_the_body(api):
    for method, path in [("get", "/v1/policy-sets"),
                         ("get", "/v1/policy-sets/default/versions"),
                         ("get", "/v1/policy-sets/default/versions/1"),
                         ("post", "/v1/policy-sets/default/versions"),
                         ("post", "/v1/policy-sets/default/versions/1/activate"),
                         ("post", "/v1/policy-sets/default/check")]:
        r = getattr(api.as_(None), method)(path, data="not json", content_type="text/plain")
        assert (method, path, r.status_code, r.get_json()) == (method, path, 401, UNAUTHENTICATED)


def test_the_bearer_scheme_is_case_insensitive(api):
    r = api.as_(None).get("/v1/policy-sets", headers={"Authorization": f"bearer {api.key}"})
    assert r.status_code == 200


def test_a_key_without_the_admin_role_gets_403(api, store):
    decider = make_key(store, "svc-orders", "decide")
    auditor = make_key(store, "audit-team", "auditor")
    for key in (decider, auditor):
        r = api.as_(key).get("/v1/policy-sets")
        assert r.status_code == 403
        assert r.get_json()["error"]["code"] == "forbidden"
        r = api.as_(key).publish({"docs.policy": DOCS})
        assert r.status_code == 403


def test_a_key_restricted_to_some_sets_sees_and_touches_only_those(api, store):
    api.publish({"docs.policy": DOCS}, "docs")
    api.publish({"docs.policy": DOCS}, "billing")
    docs_admin = api.as_(make_key(store, "docs-admin", "admin", policy_sets=["docs"]))

    listed = docs_admin.get("/v1/policy-sets").get_json()["policy_sets"]
    assert [s["name"] for s in listed] == ["docs"]
    assert docs_admin.get("/v1/policy-sets/docs/versions").status_code == 200
    assert docs_admin.get("/v1/policy-sets/docs/versions/1").status_code == 200

    for r in (docs_admin.get("/v1/policy-sets/billing/versions"),
              docs_admin.get("/v1/policy-sets/billing/versions/1"),
              docs_admin.post("/v1/policy-sets/billing/versions/1/activate"),
              docs_admin.publish({"docs.policy": DOCS}, "billing"),
              docs_admin.publish({"docs.policy": DOCS}, "new-set"),
              docs_admin.post("/v1/policy-sets/billing/check", {"files": {"a.policy": DOCS}})):
        assert r.status_code == 403
        assert r.get_json()["error"]["code"] == "forbidden"


def test_a_revoked_key_stops_working_within_the_cache_ttl(api, store):
    key = make_key(store, "short-lived", "admin")
    caller = api.as_(key)
    assert caller.get("/v1/policy-sets").status_code == 200
    keys.revoke_key(store, "short-lived")
    deadline = time.monotonic() + AUTH_CACHE_TTL + 1.0
    while caller.get("/v1/policy-sets").status_code == 200:
        assert time.monotonic() < deadline, "a revoked key kept working past the cache TTL"
        time.sleep(0.05)
    assert caller.get("/v1/policy-sets").status_code == 401


# --------------------------------------------------------------------------- the cache

class CountingLookup:
    def __init__(self, known: dict[str, Caller]):
        self.known = known
        self.calls = 0

    def __call__(self, raw_key: str) -> Caller | None:
        self.calls += 1
        return self.known.get(raw_key)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


ADMIN = Caller(name="ops", roles=frozenset({"admin"}))


def test_the_cache_answers_within_the_ttl_and_asks_the_store_after_it():
    lookup, clock = CountingLookup({"pdp_secret": ADMIN}), Clock()
    auth = Authenticator(lookup, ttl=5, clock=clock)
    assert auth.authenticate("pdp_secret") is ADMIN
    clock.now += 4.9
    assert auth.authenticate("pdp_secret") is ADMIN
    assert lookup.calls == 1
    del lookup.known["pdp_secret"]                       # revoked
    clock.now += 0.2
    assert auth.authenticate("pdp_secret") is None
    assert lookup.calls == 2


def test_unknown_keys_are_remembered_too_so_they_cost_one_lookup_per_ttl():
    lookup, clock = CountingLookup({}), Clock()
    auth = Authenticator(lookup, ttl=5, clock=clock)
    for _ in range(3):
        assert auth.authenticate("pdp_guess") is None
    assert lookup.calls == 1


def test_the_cache_never_holds_the_key_and_is_bounded():
    lookup = CountingLookup({"pdp_secret": ADMIN})
    auth = Authenticator(lookup, ttl=5, max_entries=3)
    auth.authenticate("pdp_secret")
    assert all(b"pdp_secret" not in slot for slot in auth._cache)
    assert hash_key("pdp_secret") not in {slot.hex() for slot in auth._cache}
    for i in range(10):
        auth.authenticate(f"pdp_other_{i}")
    assert len(auth._cache) == 3


def test_a_ttl_of_zero_disables_the_cache():
    lookup = CountingLookup({"pdp_secret": ADMIN})
    auth = Authenticator(lookup, ttl=0)
    auth.authenticate("pdp_secret")
    auth.authenticate("pdp_secret")
    assert lookup.calls == 2
