"""Request bodies are read strictly: every malformed body is a 400 (413, 415) with
the one error shape, naming the field at fault — never a 500, never accepted."""

from __future__ import annotations

import json

import pytest

from pdp.api import ApiOptions
from pdp.api.json import parse_object
from pdp.config import Settings
from pdp.errors import RequestError

from .conftest import DOCS

CHECK = "/v1/policy-sets/default/check"
PUBLISH = "/v1/policy-sets/default/versions"
JSON = "application/json"

#: (what, path, raw body, status, error code, field)
BAD_BODIES = [
    ("not JSON", CHECK, b"files: x", 400, "invalid_json", None),
    ("empty body", CHECK, b"", 400, "invalid_json", None),
    ("not UTF-8", CHECK, b'{"files": "\xff"}', 400, "invalid_json", None),
    ("an array", CHECK, b"[]", 400, "not_an_object", None),
    ("a string", CHECK, b'"files"', 400, "not_an_object", None),
    ("unknown field", CHECK, b'{"files": {"a.policy": ""}, "fils": 1}', 400,
     "unknown_field", "fils"),
    ("missing field", PUBLISH, b'{"activate": true}', 400, "missing_field", "files"),
    ("files not an object", PUBLISH, b'{"files": ["a.policy"]}', 400, "invalid_field", "files"),
    ("no files", PUBLISH, b'{"files": {}}', 400, "invalid_field", "files"),
    ("file content not a string", PUBLISH, b'{"files": {"a.policy": 3}}', 400,
     "invalid_field", "files.a.policy"),
    ("activate as a string", PUBLISH, b'{"files": {"a.policy": ""}, "activate": "true"}', 400,
     "invalid_field", "activate"),
    ("activate as a number", PUBLISH, b'{"files": {"a.policy": ""}, "activate": 1}', 400,
     "invalid_field", "activate"),
    ("base_version as a float", PUBLISH, b'{"files": {"a.policy": ""}, "base_version": 1.5}',
     400, "invalid_field", "base_version"),
    ("base_version as a boolean", PUBLISH, b'{"files": {"a.policy": ""}, "base_version": true}',
     400, "invalid_field", "base_version"),
    ("base_version negative", PUBLISH, b'{"files": {"a.policy": ""}, "base_version": -1}',
     400, "invalid_field", "base_version"),
    ("duplicate key", PUBLISH, b'{"files": {"a.policy": "x", "a.policy": "y"}}', 400,
     "duplicate_key", "files.a.policy"),
    ("duplicate top-level key", PUBLISH, b'{"files": {}, "files": {"a.policy": ""}}', 400,
     "duplicate_key", "files"),
    ("NaN", PUBLISH, b'{"files": {"a.policy": ""}, "base_version": NaN}', 400,
     "invalid_number", "base_version"),
    ("Infinity", PUBLISH, b'{"files": {"a.policy": ""}, "x": [1, -Infinity]}', 400,
     "invalid_number", "x[1]"),
    ("overflowing number", PUBLISH, b'{"files": {"a.policy": ""}, "base_version": 1e999}', 400,
     "invalid_number", "base_version"),
    ("lone surrogate escape", PUBLISH, b'{"files": {"a.policy": "x \\ud800"}}', 400,
     "invalid_string", "files.a.policy"),
    ("lone low surrogate escape", CHECK, b'{"files": {"a.policy": ["\\uDC01"]}}', 400,
     "invalid_string", "files.a.policy[0]"),
    ("too deep", PUBLISH, b'{"files": {"a.policy": ""}, "x": ' + b"[" * 40 + b"]" * 40 + b"}",
     400, "too_deep", "x" + "[0]" * 31),
    ("far too deep for a recursive parser", PUBLISH, b"[" * 100_000 + b"]" * 100_000, 400,
     "too_deep", None),
    ("path traversal", PUBLISH, b'{"files": {"../../etc/passwd.policy": ""}}', 400,
     "invalid_field", "files.../../etc/passwd.policy"),
    ("inner traversal", PUBLISH, b'{"files": {"data/../x.policy": ""}}', 400,
     "invalid_field", "files.data/../x.policy"),
    ("absolute path", PUBLISH, b'{"files": {"/etc/a.policy": ""}}', 400,
     "invalid_field", "files./etc/a.policy"),
    ("backslashes", PUBLISH, b'{"files": {"..\\\\a.policy": ""}}', 400,
     "invalid_field", "files...\\a.policy"),
    ("hidden file", PUBLISH, b'{"files": {".secret.policy": ""}}', 400,
     "invalid_field", "files..secret.policy"),
    ("neither policy nor data", PUBLISH, b'{"files": {"run.sh": ""}}', 400,
     "invalid_field", "files.run.sh"),
    ("json outside data/", PUBLISH, b'{"files": {"users.json": "{}"}}', 400,
     "invalid_field", "files.users.json"),
    ("only reference data", PUBLISH, b'{"files": {"data/x.json": "{}"}}', 400,
     "empty_policy_set", None),
    ("control character", PUBLISH, b'{"files": {"a\\u0000.policy": ""}}', 400,
     "invalid_field", "files.a\x00.policy"),
]


def test_every_malformed_body_is_a_400_naming_the_field(api, subtests):
    for what, path, raw, status, code, field in BAD_BODIES:
        with subtests.test(what):
            r = api.post(path, data=raw, content_type=JSON)
            error = r.get_json()["error"]
            assert (r.status_code, error["code"], error.get("field")) == (status, code, field)
            assert error["message"]


def test_a_body_must_be_declared_as_json(api):
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        kw = {"content_type": content_type} if content_type else {}
        r = api.post(CHECK, data=json.dumps({"files": {"a.policy": DOCS}}), **kw)
        assert r.status_code == 415
        assert r.get_json()["error"]["code"] == "unsupported_media_type"
    ok = api.post(CHECK, data=json.dumps({"files": {"a.policy": DOCS}}),
                  content_type="application/json; charset=utf-8")
    assert ok.status_code == 200


def test_a_body_over_the_limit_is_a_413(api, app):
    from pdp.api import services

    limit = services(app).options.max_publish_bytes
    big = json.dumps({"files": {"a.policy": "#" * limit}})
    r = api.post(PUBLISH, data=big, content_type=JSON)
    assert r.status_code == 413
    assert r.get_json() == {"error": {"code": "payload_too_large",
                                      "message": "the request body is too large"}}
    small_limit = services(app).options.max_body_bytes
    r = api.post("/v1/policy-sets/default/versions/1/activate",
                 data=json.dumps({"x": "y" * small_limit}), content_type=JSON)
    assert r.status_code == 413


def test_a_policy_set_may_be_larger_than_other_bodies(api, app):
    from pdp.api import services

    options = services(app).options
    assert options.max_body_bytes < 1_200_000 < options.max_publish_bytes
    rows = json.dumps({f"user-{i:06d}": {"team": "docs"} for i in range(24_000)})
    files = {"docs.policy": DOCS, "data/a.json": rows, "data/b.json": rows}
    assert len(json.dumps({"files": files})) > 1_200_000
    assert api.publish(files).status_code == 201


def test_too_many_files_is_a_400(api, app):
    from pdp.api import services

    limit = services(app).options.max_policy_files
    files = {f"p{i}.policy": "" for i in range(limit + 1)}
    r = api.publish(files)
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "too_many_files"
    assert r.get_json()["error"]["field"] == "files"


def test_an_activation_takes_no_body_or_an_empty_object(api):
    api.publish({"docs.policy": DOCS})
    assert api.post("/v1/policy-sets/default/versions/1/activate").status_code == 200
    assert api.post("/v1/policy-sets/default/versions/1/activate", {}).status_code == 200
    r = api.post("/v1/policy-sets/default/versions/1/activate", {"force": True})
    assert r.status_code == 400
    assert r.get_json()["error"]["field"] == "force"


def test_the_http_limits_follow_the_settings():
    options = ApiOptions.from_settings(Settings(max_data_bytes=32 * 1024 * 1024))
    assert options.max_publish_bytes == 68 * 1024 * 1024
    assert ApiOptions.from_settings(Settings(max_data_bytes=1024)).max_publish_bytes == (
        16 * 1024 * 1024)
    assert options.max_body_bytes == 1024 * 1024 and options.auth_cache_ttl == 5.0



def test_the_http_limits_come_from_the_environment():
    options = ApiOptions.from_settings(Settings.from_env({
        "PDP_MAX_BODY_BYTES": "2048", "PDP_MAX_PUBLISH_BYTES": "4096",
        "PDP_MAX_JSON_DEPTH": "8", "PDP_MAX_POLICY_FILES": "10", "PDP_AUTH_CACHE_TTL": "0"}))
    assert options == ApiOptions(max_body_bytes=2048, max_publish_bytes=4096, max_json_depth=8,
                                 max_policy_files=10, auth_cache_ttl=0)


# --------------------------------------------------------------------------- the parser

def test_the_parser_accepts_ordinary_json():
    assert parse_object(b'{"a": [1, 2.5, "x", null, true, {"b": {}}]}') == {
        "a": [1, 2.5, "x", None, True, {"b": {}}]}


@pytest.mark.parametrize("depth, ok", [(32, True), (33, False)])
def test_the_depth_limit_counts_the_top_level_object(depth, ok):
    raw = b'{"a":' * depth + b"1" + b"}" * depth
    if ok:
        parse_object(raw)
    else:
        with pytest.raises(RequestError) as err:
            parse_object(raw)
        assert err.value.code == "too_deep"


def test_a_repeated_key_deep_inside_is_named_by_its_path():
    with pytest.raises(RequestError) as err:
        parse_object(b'{"a": [{"b": 1}, {"c": {"d": 1, "d": 2}}]}')
    assert err.value.field == "a[1].c.d"
