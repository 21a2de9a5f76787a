"""The decision log over HTTP (role ``auditor`` only): ``GET /v1/decisions``,
``/v1/decisions/{id}``, ``/v1/decisions/export`` (streamed CSV and NDJSON) and
``/v1/decisions/stats``, on every backend."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest

from pdp.audit import queries
from tests.audit.log_samples import BASE, expected, make_record, sample, write

from .conftest import make_key
from .test_openapi import _check


@pytest.fixture
def records(store):
    found = sample(24)
    write(store, found)
    return found


@pytest.fixture
def auditor(api, store):
    return api.as_(make_key(store, "the-auditor", "auditor"))


def _ids(body) -> list[str]:
    return [d["decision_id"] for d in body["decisions"]]


@pytest.fixture(scope="module")
def spec():
    import yaml

    from .test_openapi import SPEC_PATH

    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- who may read

@pytest.mark.parametrize("path", ["/v1/decisions", "/v1/decisions/d-0001",
                                  "/v1/decisions/export?format=csv", "/v1/decisions/stats"])
def test_only_auditors_may_read_the_log(api, store, records, path, spec):
    decider = api.as_(make_key(store, "decider", "decide"))
    for client, status in ((api.as_(None), 401), (api.as_("pdp_unknown"), 401),
                           (api, 403), (decider, 403)):
        response = client.get(path)
        assert response.status_code == status, (path, status)
        route = path.split("?")[0]
        _check(spec, route if route.count("/") < 3 or route.endswith(("export", "stats"))
               else "/v1/decisions/{decision_id}", "get", response)
    assert api.as_(None).get(path).headers["WWW-Authenticate"] == 'Bearer realm="pdp"'
    both = api.as_(make_key(store, "admin-and-auditor", "admin", "auditor"))
    assert both.get(path).status_code == 200


# --------------------------------------------------------------------------- listing

@pytest.mark.parametrize("query,filters", [
    ("", {}),
    ("subject=alice", {"subject": "alice"}),
    ("caller=svc-b", {"caller": "svc-b"}),
    ("action=update", {"action": "update"}),
    ("resource_type=document&resource_id=r-2", {"resource_type": "document",
                                                "resource_id": "r-2"}),
    ("decision=deny", {"decision": "deny"}),
    ("policy_id=admins-anything", {"policy_id": "admins-anything"}),
    ("policy_set=default&policy_version=2", {"policy_set": "default", "policy_version": 2}),
    ("from=2026-11-01T11:25:00Z&to=2026-11-01T14:00:00%2B01:00",
     {"time_from": BASE + timedelta(minutes=85), "time_to": BASE + timedelta(hours=3)}),
])
def test_filters_as_query_parameters(auditor, records, query, filters, spec):
    response = auditor.get(f"/v1/decisions?limit=1000&{query}")
    body = _check(spec, "/v1/decisions", "get", response)
    assert response.status_code == 200
    assert _ids(body) == expected(records, **filters) and body["next_cursor"] is None


def test_default_limit_is_50_and_pages_follow_by_cursor(auditor, store, spec):
    many = sample(60)
    write(store, many)
    first = auditor.get("/v1/decisions").get_json()
    assert len(first["decisions"]) == 50 and first["next_cursor"]
    write(store, [make_record(500, decision_id="late")])       # arrives between pages
    second = _check(spec, "/v1/decisions", "get",
                    auditor.get(f"/v1/decisions?cursor={first['next_cursor']}"))
    assert _ids(first) + _ids(second) == expected(many)
    assert second["next_cursor"] is None
    assert _ids(auditor.get("/v1/decisions?limit=1").get_json()) == ["late"]


def test_one_decision_and_404(auditor, records, spec):
    response = auditor.get("/v1/decisions/d-0009")
    body = _check(spec, "/v1/decisions/{decision_id}", "get", response)
    assert body["decision_id"] == "d-0009" and body["seq"] == 10
    assert body["errors"][0]["code"] == "eval_error"
    missing = auditor.get("/v1/decisions/nope")
    assert missing.status_code == 404
    assert _check(spec, "/v1/decisions/{decision_id}", "get", missing)["error"]["code"] == \
        "decision_not_found"


@pytest.mark.parametrize("path,field", [
    ("/v1/decisions?from=yesterday", "from"),
    ("/v1/decisions?from=2026-11-01", "from"),
    ("/v1/decisions?to=2026-11-01T10:00:00", "to"),          # no offset
    ("/v1/decisions?decision=maybe", "decision"),
    ("/v1/decisions?limit=0", "limit"),
    ("/v1/decisions?limit=1001", "limit"),
    ("/v1/decisions?limit=ten", "limit"),
    ("/v1/decisions?cursor=bogus", "cursor"),
    ("/v1/decisions?policy_version=x", "policy_version"),
    ("/v1/decisions?colour=blue", "colour"),
    ("/v1/decisions?subject=a&subject=b", "subject"),
    ("/v1/decisions?subject=", "subject"),
    ("/v1/decisions/export", "format"),
    ("/v1/decisions/export?format=xml", "format"),
    ("/v1/decisions/export?format=csv&limit=5", "limit"),
    ("/v1/decisions/export?format=csv&decision=no", "decision"),
    ("/v1/decisions/stats?bucket=week", "bucket"),
    ("/v1/decisions/stats?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "from"),
    ("/v1/decisions/stats?from=2026-01-01T00:00:00Z&to=2026-11-01T00:00:00Z&bucket=minute",
     "bucket"),
    ("/v1/decisions/stats?from=bad", "from"),
])
def test_bad_parameters_are_400_naming_the_parameter(auditor, path, field, spec):
    response = auditor.get(path)
    assert response.status_code == 400, response.get_json()
    error = _check(spec, path.split("?")[0], "get", response)["error"]
    assert error["field"] == field, error
    assert field in error["message"]


# --------------------------------------------------------------------------- export

def test_ndjson_export_matches_the_query_and_streams(auditor, records, monkeypatch):
    monkeypatch.setattr(queries, "EXPORT_PAGE", 4)
    response = auditor.client.get("/v1/decisions/export?format=ndjson&decision=deny",
                                  headers=auditor.headers(), buffered=False)
    assert response.status_code == 200
    assert response.is_streamed
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="decisions-')
    assert response.headers["Content-Disposition"].endswith('.ndjson"')
    lines = b"".join(response.response).decode().splitlines()
    listed = auditor.get("/v1/decisions?decision=deny&limit=1000").get_json()["decisions"]
    assert [json.loads(line) for line in lines] == listed and len(listed) == 8


def test_csv_export_matches_the_query(auditor, records):
    response = auditor.get("/v1/decisions/export?format=csv&action=read")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].endswith('.csv"')
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == list(queries.COLUMNS)
    listed = auditor.get("/v1/decisions?action=read&limit=1000").get_json()["decisions"]
    assert len(rows) - 1 == len(listed) == 12
    for row, record in zip(rows[1:], listed):
        cells = dict(zip(rows[0], row))
        for name in queries.COLUMNS:
            value = record[name]
            if name in queries.JSON_COLUMNS:
                assert (json.loads(cells[name]) if cells[name] else None) == value, name
            else:
                assert cells[name] == ("" if value is None else str(value)), name


def test_an_export_with_no_match_is_a_header_only_csv_or_empty_ndjson(auditor, records):
    csv_body = auditor.get("/v1/decisions/export?format=csv&subject=nobody").get_data(
        as_text=True)
    assert csv_body == ",".join(queries.COLUMNS) + "\r\n"
    assert auditor.get("/v1/decisions/export?format=ndjson&subject=nobody").get_data() == b""


def test_the_export_reads_the_log_page_by_page_while_it_streams(auditor, store, monkeypatch):
    write(store, sample(30))
    reads = []
    original = queries._page_rows

    def counting(session, where, limit, before):
        rows = original(session, where, limit, before)
        reads.append(len(rows))
        return rows

    monkeypatch.setattr(queries, "_page_rows", counting)
    monkeypatch.setattr(queries, "EXPORT_PAGE", 7)
    response = auditor.client.get("/v1/decisions/export?format=ndjson",
                                  headers=auditor.headers(), buffered=False)
    chunks = iter(response.response)
    next(chunks)
    assert reads == [7]                       # the first page only, so far
    rest = list(chunks)
    assert len(rest) == 29 and reads == [7, 7, 7, 7, 2]
    response.close()


# --------------------------------------------------------------------------- stats

def test_stats_over_http(auditor, records, spec):
    response = auditor.get("/v1/decisions/stats?from=2026-11-01T10:00:00Z"
                           "&to=2026-11-01T12:00:00Z&bucket=hour")
    body = _check(spec, "/v1/decisions/stats", "get", response)
    inside = [r for r in records if r.time < BASE + timedelta(hours=2)]
    assert body["buckets"] == [
        {"start": "2026-11-01T10:00:00Z",
         "allow": sum(r.decision == "allow" and r.time.hour == 10 for r in inside),
         "deny": sum(r.decision == "deny" and r.time.hour == 10 for r in inside)},
        {"start": "2026-11-01T11:00:00Z",
         "allow": sum(r.decision == "allow" and r.time.hour == 11 for r in inside),
         "deny": sum(r.decision == "deny" and r.time.hour == 11 for r in inside)}]
    assert body["bucket"] == "hour" and body["from"] == "2026-11-01T10:00:00Z"
    assert body["top_denied_subjects"][0]["count"] >= 1
    day = auditor.get("/v1/decisions/stats?from=2026-11-01T00:00:00Z"
                      "&to=2026-11-02T00:00:00Z&bucket=day&caller=svc-a").get_json()
    assert sum(day["totals"].values()) == sum(r.caller == "svc-a" for r in records)
    assert _check(spec, "/v1/decisions/stats", "get", auditor.get("/v1/decisions/stats"))


def test_a_store_failure_before_the_export_starts_is_a_503(auditor, records, monkeypatch, spec):
    from pdp.store.db import StoreError

    def down(*args, **kwargs):
        raise StoreError("database error: connection refused")

    monkeypatch.setattr(queries, "_page_rows", down)
    for path in ("/v1/decisions/export?format=csv", "/v1/decisions"):
        response = auditor.get(path)
        assert response.status_code == 503, path
        body = _check(spec, path.split("?")[0], "get", response)
        assert body["error"]["code"] == "store_unavailable"
        assert "connection refused" not in body["error"]["message"]


@pytest.mark.parametrize("path, field", [
    ("/v1/decisions?subject=a%00b", "subject"), ("/v1/decisions?resource_id=%00", "resource_id"),
    ("/v1/decisions?policy_id=p%00", "policy_id"),
    ("/v1/decisions/export?format=csv&caller=x%00", "caller"),
    ("/v1/decisions/stats?subject=%00", "subject")])
def test_a_nul_in_a_filter_is_a_400_on_every_store(auditor, records, path, field):
    """The log never holds NUL (it records U+FFFD), and PostgreSQL refuses it as a
    parameter: it was a 503 ``store_unavailable`` there, an empty page on SQLite."""
    r = auditor.get(path)
    assert r.status_code == 400
    assert (r.get_json()["error"]["code"], r.get_json()["error"]["field"]) == (
        "invalid_field", field)


def test_a_decision_id_with_a_nul_is_not_found(auditor, records):
    r = auditor.get("/v1/decisions/d%00x")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "decision_not_found"
