"""The console's decision log pages, on every backend: ``/console/decisions`` (filters,
keyset paging, export) and ``/console/decisions/<id>`` (the record beside the source
of the policies that decided it). Decisions are made through ``POST /v1/decide``
with the audit writer in durable mode, so the log holds real records."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from markupsafe import escape

from pdp.api import AUDIT_EXTENSION, create_app, services
from pdp.api.console import decisions as console_decisions
from pdp.api.console import render
from pdp.config import Settings
from pdp.errors import NotFound
from pdp.service import keys

from ..conftest import DOCS, FORBID_ARCHIVED, OPTIONS, make_key
from .conftest import parse_html

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'

REPORTS = """\
policy "report-admins" {
  permit delete on report
  when "admin" in subject.roles
}

@owner("team-reports")
policy "report-locked" {
  forbid delete on report
  when resource.locked
  reason "locked reports stay"
}
"""
#: Lines 6 to 11 of reports.policy: the annotation is part of the policy.
LOCKED_LINES = REPORTS.splitlines()[5:11]
NOTES = f"""\
# {SCRIPT} {IMG}
policy "notes-owner" {{
  permit read on note
  when resource.owner == subject.sub
  reason "{SCRIPT}"
}}
"""
FILES = {"docs.policy": DOCS, "archive.policy": FORBID_ARCHIVED, "reports.policy": REPORTS,
         "notes.policy": NOTES}


@pytest.fixture
def app(store, tmp_path):
    """The API's app, with every decision written before it is answered and the
    ``email`` claim redacted in the log."""
    settings = Settings(database_url=store.url.render_as_string(hide_password=False),
                        audit_spill_dir=str(tmp_path / "audit-spill"), audit_mode="durable",
                        audit_redact_claims=("email",))
    app = create_app(settings, store=store, options=OPTIONS)
    try:
        yield app
    finally:
        services(app).active.stop()
        writer = app.extensions.get(AUDIT_EXTENSION)
        if writer is not None:
            writer.close()


@pytest.fixture
def version(api):
    response = api.publish(FILES, activate=True)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["version"]


@pytest.fixture
def decide(api, store, version):
    """``decide(sub, action, type, id, attributes, **claims)`` through the real
    ``POST /v1/decide`` (trusted claims); the answer."""
    decider = api.as_(keys.create_key(store, name="gateway", roles=["decide"],
                                      trusted_claims=True, created_by="tests").secret)

    def run(sub, action="read", rtype="document", rid="d-1", attributes=None, *,
            context=None, **claims):
        body = {"subject": {"claims": {"sub": sub, **claims}}, "action": action,
                "resource": {"type": rtype, "id": rid, "attributes": attributes or {}}}
        if context is not None:
            body["context"] = context
        response = decider.post("/v1/decide", body)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    return run


@pytest.fixture
def made(decide):
    """A small varied log: allow, deny by default, forbid, an evaluation error."""
    return [
        decide("alice", attributes={"owner": "alice"}, email="alice@example.com"),
        decide("bob", attributes={"owner": "alice"}),
        decide("alice", "update", rid="d-2", attributes={"owner": "alice", "archived": True}),
        decide("carol", "delete", "report", "r-1", {"locked": "yes"}, roles=["admin"],
               context={"ip": "10.1.2.3"}),
        decide("dave", rid="d-3", attributes={"owner": "dave"}),
        decide("alice", "update", rid="d-4", attributes={"owner": "alice", "archived": False}),
    ]


@pytest.fixture
def auditor(api, auditor_key):
    """The JSON API as the auditor: the oracle of the pages."""
    return api.as_(auditor_key)


@pytest.fixture
def console(app, auditor_key, signed_in):
    client = app.test_client()
    signed_in(client, auditor_key)
    return client


def _page(response):
    return parse_html(response.get_data(as_text=True))


def _row_ids(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return [row.get("data-decision-id") for row in _page(response).select("tr", cls="decision-row")]


def _api_ids(auditor, query: dict) -> list[str]:
    response = auditor.get("/v1/decisions", query_string={**query, "limit": 1000})
    assert response.status_code == 200, response.get_json()
    return [d["decision_id"] for d in response.get_json()["decisions"]]


def _local(moment: datetime) -> str:
    """``moment`` as an ``<input type=datetime-local>`` gives it (no offset)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M")


# --------------------------------------------------------------------------- who may look

PATHS = ["/console/decisions?subject=alice", "/console/decisions/some-id",
         "/console/decisions/export?format=csv"]


@pytest.mark.parametrize("path", PATHS)
def test_signed_out_is_sent_to_sign_in_and_an_admin_only_key_is_refused(app, store, path,
                                                                        signed_in):
    client = app.test_client()
    response = client.get(path)
    assert response.status_code == 303
    target = urlsplit(response.headers["Location"])
    assert target.path == "/console/sign-in"
    assert parse_qs(target.query)["next"] == [path]

    signed_in(client, make_key(store, "only-admin", "admin"))
    response = client.get(path)
    assert response.status_code == 403
    assert _page(response).one(id="error-message").get("data-code") == "forbidden"
    assert "text/html" in response.headers["Content-Type"]


# --------------------------------------------------------------------------- the log

def test_the_log_lists_every_decision_with_its_cells(console, auditor, made, version):
    response = console.get("/console/decisions")
    ids = _row_ids(response)
    assert ids == _api_ids(auditor, {}) and sorted(ids) == sorted(d["decision_id"] for d in made)
    page = _page(response)
    assert page.one(id="result-count").text().strip() == f"showing {len(made)}"
    assert page.find(id="no-decisions") is None and page.find(id="next-page") is None
    assert page.find(id="first-page") is None
    form = page.one("form", id="filters")
    assert form.get("method") == "get"
    names = {n.get("name") for n in form.select("input") + form.select("select")}
    assert names == {"from", "to", "subject", "caller", "action", "resource_type",
                     "resource_id", "decision", "policy_id", "policy_set", "policy_version",
                     "limit"}
    assert form.find(id="apply-filters") is not None and page.find(id="clear-filters")
    assert "taken as UTC" in form.text()

    carol = made[3]
    row = page.one("tr", data_decision_id=carol["decision_id"])
    cells = [td.text().strip() for td in row.select("td")]
    assert cells[1:] == ["deny", "carol", "gateway", "delete", "report", "r-1",
                         "report-locked", f"default@{version}"]
    assert row.one("span", cls="deny")
    link = row.one("a", cls="decision-link")
    assert link.get("href") == f"/console/decisions/{carol['decision_id']}"
    assert made[0]["decision"] == "allow"
    assert page.one("tr", data_decision_id=made[0]["decision_id"]).one("span", cls="allow")


def test_filters_narrow_the_table_like_the_api(console, auditor, made):
    times = sorted(d["time"] for d in auditor.get("/v1/decisions").get_json()["decisions"])
    earliest = datetime.fromisoformat(times[0].replace("Z", "+00:00"))
    plus_one = (datetime.fromisoformat(times[2].replace("Z", "+00:00"))
                .astimezone(timezone(timedelta(hours=1))).isoformat())
    cases = [
        ({"subject": "alice"}, {"subject": "alice"}, 3),
        ({"decision": "deny"}, {"decision": "deny"}, 3),
        ({"decision": "allow", "subject": "alice"}, {"decision": "allow", "subject": "alice"}, 2),
        ({"policy_id": "no-archived-writes"}, {"policy_id": "no-archived-writes"}, 1),
        ({"resource_type": "report", "resource_id": "r-1"},
         {"resource_type": "report", "resource_id": "r-1"}, 1),
        ({"from": times[2]}, {"from": times[2]}, 4),
        ({"to": times[2]}, {"to": times[2]}, 2),
        ({"from": times[1], "to": times[4]}, {"from": times[1], "to": times[4]}, 3),
        ({"from": plus_one}, {"from": plus_one}, 4),
        # datetime-local values (no offset) mean UTC
        ({"from": _local(earliest - timedelta(minutes=1))},
         {"from": _local(earliest - timedelta(minutes=1)) + "Z"}, 6),
        ({"to": _local(earliest - timedelta(minutes=1))},
         {"to": _local(earliest - timedelta(minutes=1)) + "Z"}, 0),
        # empty fields are no filter
        ({"subject": "", "decision": "", "from": "", "policy_version": "", "limit": ""}, {}, 6),
    ]
    for form, query, count in cases:
        ids = _row_ids(console.get("/console/decisions", query_string=form))
        assert ids == _api_ids(auditor, query), form
        assert len(ids) == count, (form, ids)
    response = console.get("/console/decisions", query_string={"subject": "nobody"})
    page = _page(response)
    assert page.find(id="decision-table") is None and page.one(id="no-decisions")
    assert page.one(id="result-count").text().strip() == "showing 0"
    # the form shows the filters in force
    page = _page(console.get("/console/decisions?decision=deny&subject=alice"))
    assert page.one("input", name="subject").get("value") == "alice"
    assert "selected" in page.one("select", name="decision").one("option", value="deny").attrs


@pytest.mark.parametrize("query,field", [
    ("from=yesterday", "from"),
    ("to=2026-11-29", "to"),
    ("decision=maybe", "decision"),
    ("limit=0", "limit"),
    ("limit=ten", "limit"),
    ("policy_version=x", "policy_version"),
    ("cursor=bogus", "cursor"),
    ("colour=blue", "colour"),
    ("subject=a&subject=b", "subject"),
    ("_scheme=javascript", "_scheme"),          # names url_for would take for its own
    ("endpoint=x&_method=POST", "_method"),
])
def test_a_bad_filter_is_a_400_naming_the_field(console, query, field):
    for path in (f"/console/decisions?{query}", f"/console/decisions/export?format=csv&{query}"):
        response = console.get(path)
        assert response.status_code == 400, path
        page = _page(response)
        error = page.one("p", id="filter-error")
        assert error.get("data-field") == field and field in error.text(), path
        assert page.find(id="decision-table") is None and page.one("form", id="filters")
    response = console.get("/console/decisions/export?format=xml")
    assert response.status_code == 400
    assert _page(response).one(id="filter-error").get("data-field") == "format"


def test_pages_follow_by_cursor_without_duplicates_or_gaps(console, auditor, decide, made):
    for i in range(5):
        decide("alice", rid=f"more-{i}", attributes={"owner": "alice"})
    want = _api_ids(auditor, {"subject": "alice"})
    assert len(want) == 8
    seen, pages = [], 0
    response = console.get("/console/decisions?subject=alice&limit=3&decision=")
    while True:
        pages += 1
        page = _page(response)
        ids = _row_ids(response)
        assert len(ids) <= 3 and ids
        seen += ids
        if pages == 1:
            assert page.find(id="first-page") is None
        else:
            first = page.one("a", id="first-page").get("href")
            assert parse_qs(urlsplit(first).query) == {"subject": ["alice"], "limit": ["3"]}
        if len(seen) == 3:
            decide("alice", rid="late", attributes={"owner": "alice"})   # between pages
        link = page.find("a", id="next-page")
        if link is None:
            break
        query = parse_qs(urlsplit(link.get("href")).query)
        assert query["subject"] == ["alice"] and query["limit"] == ["3"]
        assert len(query["cursor"]) == 1
        response = console.get(link.get("href"))
    assert pages == 3
    assert seen == want and len(set(seen)) == len(seen)


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_the_export_is_byte_for_byte_the_apis(console, auditor, made, fmt):
    times = sorted(d["time"] for d in auditor.get("/v1/decisions").get_json()["decisions"])
    earliest = datetime.fromisoformat(times[0].replace("Z", "+00:00"))
    local = _local(earliest - timedelta(minutes=1))
    for form, query, count in [
        ({}, {}, 6),
        ({"decision": "deny"}, {"decision": "deny"}, 3),
        ({"subject": "alice", "to": times[3]}, {"subject": "alice", "to": times[3]}, 2),
        ({"from": local, "subject": ""}, {"from": local + "Z"}, 6),
    ]:
        ours = console.get("/console/decisions/export", query_string={"format": fmt, **form})
        theirs = auditor.get("/v1/decisions/export", query_string={"format": fmt, **query})
        assert ours.status_code == theirs.status_code == 200
        assert ours.get_data() == theirs.get_data(), form
        lines = ours.get_data(as_text=True).splitlines()
        assert len(lines) == count + (fmt == "csv"), form
        assert ours.headers["Content-Type"] == theirs.headers["Content-Type"]
        disposition = ours.headers["Content-Disposition"]
        assert disposition.startswith('attachment; filename="decisions-')
        assert disposition.endswith(f'.{fmt}"')
    # the page's export links carry the filters in force
    page = _page(console.get("/console/decisions?decision=deny&limit=2&subject="))
    href = page.one("a", id=f"export-{fmt}").get("href")
    assert urlsplit(href).path == "/console/decisions/export"
    assert parse_qs(urlsplit(href).query) == {"format": [fmt], "decision": ["deny"]}
    assert console.get(href).get_data() == auditor.get(
        f"/v1/decisions/export?format={fmt}&decision=deny").get_data()


# --------------------------------------------------------------------------- one decision

def test_one_decision_beside_the_policy_that_decided_it(console, auditor, made, version):
    carol = made[3]
    record = auditor.get(f"/v1/decisions/{carol['decision_id']}").get_json()
    response = console.get(f"/console/decisions/{carol['decision_id']}")
    assert response.status_code == 200
    page = _page(response)
    assert page.one(id="decision-value").text() == "deny"
    summary = page.one("section", id="decision-summary").text()
    for value in (carol["decision_id"], record["time"], "gateway", "carol", "delete", "report",
                  "r-1", f"default version {version}", f"{record['evaluation_us']} µs"):
        assert value in summary, value
    assert json.loads(page.one("pre", id="claims").text()) == record["claims"]
    assert record["claims"]["roles"] == ["admin"]
    assert json.loads(page.one("pre", id="resource").text()) == {"locked": "yes"}
    assert json.loads(page.one("pre", id="context").text()) == record["context"]
    assert json.loads(page.one("pre", id="context").text())["ip"] == "10.1.2.3"
    assert json.loads(page.one("pre", id="action").text()) == record["action_attributes"]
    assert page.one("ul", id="reasons").text().strip() == "locked reports stay"
    errors = page.one("ul", id="errors").select("li", cls="decision-error")
    assert len(errors) == len(record["errors"]) == 1
    assert record["errors"][0]["code"] in errors[0].text()
    assert errors[0].one(cls="error-policy").text() == "report-locked"

    section = page.one("section", cls="policy-source", data_policy_id="report-locked")
    highlighted = [line for line in section.select("span", cls="line") if "hl" in line.classes]
    assert [line.one(cls="ln").text() for line in highlighted] == ["6", "7", "8", "9", "10", "11"]
    assert [line.text()[len(line.one(cls="ln").text()):] for line in highlighted] == \
        LOCKED_LINES
    every = section.select("span", cls="line")
    assert len(every) == len(REPORTS.splitlines())       # the whole file, one policy marked
    assert section.one(id="policy-report-locked") is highlighted[0]
    link = section.one("a", cls="version-link")
    assert link.get("href") == f"/console/policies/default/versions/{version}" \
                               "#policy-report-locked"
    assert section.find(cls="policy-missing") is None
    target = console.get(link.get("href"))               # the policy pages' contract
    assert target.status_code == 200 and 'id="policy-report-locked"' in target.text


def test_redacted_claims_allow_and_no_policy(console, auditor, made):
    alice = _page(console.get(f"/console/decisions/{made[0]['decision_id']}"))
    assert [li.text() for li in alice.one("ul", id="redacted").select("li")] == ["email"]
    assert "alice@example.com" not in json.dumps(
        json.loads(alice.one("pre", id="claims").text()))
    assert alice.one(id="decision-value").text() == "allow"
    assert alice.one("ul", id="reasons").text().strip() == "owners may edit their own documents"
    assert alice.one("section", cls="policy-source", data_policy_id="doc-owner-edit")
    bob = _page(console.get(f"/console/decisions/{made[1]['decision_id']}"))
    assert bob.find("section", cls="policy-source") is None
    assert bob.one(id="redacted").text().strip() == "none"
    assert bob.one("ul", id="errors").text().strip() == "none"


def test_a_version_that_no_longer_exists_is_said_so(console, made, monkeypatch):
    def gone(db, number, policy_set="default"):
        raise NotFound(f"policy set {policy_set!r} has no version {number}",
                       code="version_not_found")

    monkeypatch.setattr(console_decisions.policy_service, "get_version", gone)
    response = console.get(f"/console/decisions/{made[2]['decision_id']}")
    assert response.status_code == 200
    section = _page(response).one("section", cls="policy-source",
                                  data_policy_id="no-archived-writes")
    assert "no longer exists" in section.one("p", cls="policy-missing").text()


def test_the_parsed_version_is_cached(console, made, monkeypatch):
    calls = []
    show = console_decisions.policy_service.show_version

    def counting(*args, **kwargs):
        calls.append(args)
        return show(*args, **kwargs)

    monkeypatch.setattr(render, "versions", render.VersionCache())
    monkeypatch.setattr(console_decisions.policy_service, "show_version", counting)
    for decision in (made[0], made[2], made[0]):
        assert console.get(f"/console/decisions/{decision['decision_id']}").status_code == 200
    assert len(calls) == 1


def test_an_unknown_decision_is_a_404_page(console):
    response = console.get("/console/decisions/no-such-decision")
    assert response.status_code == 404
    assert "text/html" in response.headers["Content-Type"]
    assert _page(response).one(id="error-message").get("data-code") == "decision_not_found"


# --------------------------------------------------------------------------- escaping

def test_hostile_values_are_escaped_everywhere(console, decide):
    payload = SCRIPT + IMG
    out = decide(payload, "read", "note", "n-1",
                 {"owner": payload, "title": IMG, "body": SCRIPT},
                 nick=IMG, bio=SCRIPT, context={"note": SCRIPT})
    assert out["decision"] == "allow" and out["policies"] == ["notes-owner"]
    pages = {
        "list": console.get("/console/decisions"),
        "filtered": console.get("/console/decisions", query_string={"subject": payload}),
        "detail": console.get(f"/console/decisions/{out['decision_id']}"),
        "bad filter": console.get("/console/decisions",
                                  query_string={"subject": payload, "limit": payload}),
    }
    for name, response in pages.items():
        html = response.get_data(as_text=True)
        assert response.status_code == (400 if name == "bad filter" else 200), name
        for raw in (SCRIPT, IMG, "<img", "<script"):
            assert raw not in html, (name, raw)
        assert str(escape(SCRIPT)) in html, name
        assert str(escape(IMG)) in html, name
    list_page = _page(pages["filtered"])
    assert _row_ids(pages["filtered"]) == [out["decision_id"]]
    row = list_page.one("tr", data_decision_id=out["decision_id"])
    assert row.select("td")[2].text() == payload              # shown as text
    assert list_page.one("input", name="subject").get("value") == payload
    detail = _page(pages["detail"])
    claims = json.loads(detail.one("pre", id="claims").text())
    assert claims["nick"] == IMG and claims["bio"] == SCRIPT and claims["sub"] == payload
    assert json.loads(detail.one("pre", id="resource").text())["title"] == IMG
    assert detail.one("ul", id="reasons").text().strip() == SCRIPT
    section = detail.one("section", cls="policy-source", data_policy_id="notes-owner")
    lines = section.select("span", cls="line")
    assert lines[0].text() == "1" + f"# {SCRIPT} {IMG}"
    assert [n.text()[1:] for n in lines if "hl" in n.classes] == NOTES.splitlines()[1:]
    assert all(node.tag not in ("script", "img") for node in detail.iter())


def test_the_detail_page_sets_the_console_headers(console, made):
    response = console.get(f"/console/decisions/{made[0]['decision_id']}")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "style=" not in html and "<style" not in html and "<script" not in html
