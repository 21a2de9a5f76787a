"""Publishing, inspecting, activating and rolling back policy-set versions over HTTP."""

from __future__ import annotations

from pdp.api import services
from pdp.store.policies import content_hash

from .conftest import ADMINS, DOCS, FORBID_ARCHIVED

BROKEN_SYNTAX = """\
policy "broken" {
  permit read document
}
"""
BROKEN_TOO = """\
policy "also-broken" {
  permit read on document
  when resource.owner ==
}
"""


def test_publishing_creates_version_1_published_by_the_calling_key(api):
    r = api.publish({"docs.policy": DOCS, "data/users.json": '{"alice": {}}'})
    assert r.status_code == 201
    body = r.get_json()
    assert body["policy_set"] == "default"
    assert body["version"] == 1
    assert body["policy_ids"] == ["doc-owner-edit"]
    assert body["published_by"] == "ops-admin"
    assert body["content_hash"] == content_hash({"docs.policy": DOCS,
                                                 "data/users.json": '{"alice": {}}'})
    assert (body["created"], body["unchanged"], body["activated"], body["active"]) == (
        True, False, False, False)
    assert r.headers["Location"].endswith("/v1/policy-sets/default/versions/1")


def test_publishing_the_latest_content_again_creates_nothing(api):
    api.publish({"docs.policy": DOCS})
    r = api.publish({"docs.policy": DOCS})
    assert r.status_code == 200
    assert r.get_json()["unchanged"] is True
    assert r.get_json()["version"] == 1
    assert len(api.get("/v1/policy-sets/default/versions").get_json()["versions"]) == 1


def test_a_set_that_does_not_compile_is_refused_whole_with_every_located_error(api):
    r = api.publish({"a.policy": BROKEN_SYNTAX, "b.policy": BROKEN_TOO, "ok.policy": DOCS})
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert error["code"] == "policy_error"
    located = [(d["file"], d["line"]) for d in error["diagnostics"]]
    assert located == [("a.policy", 2), ("b.policy", 4)]
    for d in error["diagnostics"]:
        assert d["column"] >= 1 and d["message"] and d["code"]
    assert api.get("/v1/policy-sets/default/versions").status_code == 404   # nothing stored


def test_a_nul_character_is_a_located_error_on_every_store(api):
    """PostgreSQL text cannot hold NUL: such a file was a 503 there and stored on
    SQLite. It is a syntax error of the file, everywhere, before the store."""
    r = api.publish({"docs.policy": DOCS + "\n# a comment \x00 with a NUL\n"})
    assert r.status_code == 422
    (diag,) = r.get_json()["error"]["diagnostics"]
    line = len(DOCS.split("\n")) + 1
    assert (diag["file"], diag["line"], diag["column"], diag["code"]) == (
        "docs.policy", line, 13, "syntax_error")
    assert "NUL" in diag["message"]
    assert api.get("/v1/policy-sets/default/versions").status_code == 404   # nothing stored


def test_bad_reference_data_is_a_located_publish_error(api):
    r = api.publish({"docs.policy": DOCS, "data/users.json": "{not json"})
    assert r.status_code == 422
    assert [d["file"] for d in r.get_json()["error"]["diagnostics"]] == ["data/users.json"]


def test_a_stale_base_version_is_a_409_conflict(api):
    assert api.publish({"docs.policy": DOCS}, base_version=0).status_code == 201
    assert api.publish({"docs.policy": ADMINS}, base_version=1).status_code == 201
    r = api.publish({"docs.policy": FORBID_ARCHIVED}, base_version=1)
    assert r.status_code == 409
    assert r.get_json()["error"]["code"] == "version_conflict"


def test_the_dry_run_compiles_and_stores_nothing(api):
    r = api.post("/v1/policy-sets/default/check",
                 {"files": {"docs.policy": DOCS, "admins.policy": ADMINS}})
    assert r.status_code == 200
    assert r.get_json() == {
        "ok": True, "policies": 2, "policy_ids": ["admins-anything", "doc-owner-edit"],
        "content_hash": content_hash({"docs.policy": DOCS, "admins.policy": ADMINS}),
        "files": ["admins.policy", "docs.policy"]}
    bad = api.post("/v1/policy-sets/default/check", {"files": {"a.policy": BROKEN_SYNTAX}})
    assert bad.status_code == 422
    assert bad.get_json()["error"]["diagnostics"][0]["file"] == "a.policy"
    assert api.get("/v1/policy-sets").get_json() == {"policy_sets": []}


def test_the_sets_are_listed_with_their_active_and_latest_version(api):
    api.publish({"docs.policy": DOCS}, "docs", activate=True)
    api.publish({"docs.policy": ADMINS}, "docs")
    api.publish({"a.policy": ADMINS}, "billing")
    sets = api.get("/v1/policy-sets").get_json()["policy_sets"]
    assert [(s["name"], s["active_version"], s["latest_version"]) for s in sets] == [
        ("billing", None, 1), ("docs", 1, 2)]
    assert all(s["created_at"].endswith("+00:00") for s in sets)


def test_a_version_is_shown_with_its_sources_and_its_policies(api):
    files = {"docs.policy": DOCS, "more/admins.policy": ADMINS, "data/users.json": "{}"}
    api.publish(files)
    r = api.get("/v1/policy-sets/default/versions/1")
    assert r.status_code == 200
    body = r.get_json()
    assert body["files"] == files
    assert body["policies"] == [
        {"id": "admins-anything", "effect": "permit", "actions": None, "resource_types": None,
         "reason": None, "annotations": {}, "file": "more/admins.policy", "line": 1},
        {"id": "doc-owner-edit", "effect": "permit", "actions": ["read", "update"],
         "resource_types": ["document"], "reason": "owners may edit their own documents",
         "annotations": {"owner": "team-docs", "description": "document owners"},
         "file": "docs.policy", "line": 1},
    ]


def test_versions_are_listed_oldest_first_with_the_active_one_marked(api):
    api.publish({"docs.policy": DOCS})
    api.publish({"docs.policy": ADMINS}, activate=True)
    versions = api.get("/v1/policy-sets/default/versions").get_json()["versions"]
    assert [(v["version"], v["active"], v["published_by"]) for v in versions] == [
        (1, False, "ops-admin"), (2, True, "ops-admin")]
    assert all(v["content_hash"].startswith("sha256:") for v in versions)


def test_activation_and_rollback_change_the_version_this_replica_serves(app, api):
    active = services(app).active
    api.publish({"docs.policy": DOCS})
    r = api.publish({"docs.policy": DOCS, "admins.policy": ADMINS}, activate=True)
    assert r.get_json()["activated"] is True
    assert active.versions() == {"default": 2}

    r = api.post("/v1/policy-sets/default/versions/1/activate")       # rollback
    assert r.status_code == 200
    assert (r.get_json()["version"], r.get_json()["changed"],
            r.get_json()["previous_version"], r.get_json()["active"]) == (1, True, 2, True)
    assert active.versions() == {"default": 1}
    assert api.get("/v1/policy-sets").get_json()["policy_sets"][0]["active_version"] == 1

    again = api.post("/v1/policy-sets/default/versions/1/activate")
    assert again.status_code == 200 and again.get_json()["changed"] is False


def test_missing_sets_and_versions_are_404(api):
    r = api.get("/v1/policy-sets/nope/versions")
    assert r.status_code == 404
    assert r.get_json()["error"]["code"] == "policy_set_not_found"
    api.publish({"docs.policy": DOCS})
    for r in (api.get("/v1/policy-sets/default/versions/7"),
              api.post("/v1/policy-sets/default/versions/7/activate"),
              api.get("/v1/policy-sets/default/versions/99999999999999")):
        assert r.status_code == 404
    assert api.get("/v1/policy-sets/default/versions/7").get_json()["error"]["code"] == (
        "version_not_found")
    assert api.get("/v1/policy-sets/default/versions/x").status_code == 404


def test_a_bad_set_name_is_a_400_naming_the_set(api):
    for name in ("-starts-with-dash", "a" * 129, "sp%20ace", "semi;colon", "%2E%2E"):
        r = api.publish({"docs.policy": DOCS}, name)
        assert r.status_code == 400, name
        assert r.get_json()["error"]["code"] == "invalid_policy_set_name"
        assert r.get_json()["error"]["field"] == "set"


def test_wrong_methods_and_unknown_paths_answer_json(api):
    r = api.client.delete("/v1/policy-sets/default/versions/1", headers=api.headers())
    assert r.status_code == 405
    assert "GET" in r.headers["Allow"]
    assert r.get_json()["error"]["code"] == "method_not_allowed"
    r = api.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.get_json()["error"]["code"] == "not_found"


def test_an_unexpected_failure_is_a_500_without_details(api, monkeypatch):
    from pdp.service import policies

    def explode(*a, **kw):
        raise RuntimeError("secret internals /var/lib/pdp password=hunter2")

    monkeypatch.setattr(policies, "list_policy_sets", explode)
    r = api.get("/v1/policy-sets")
    assert r.status_code == 500
    assert r.get_json() == {"error": {
        "code": "internal_error",
        "message": "internal error; the details are in the service log"}}
