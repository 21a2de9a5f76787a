"""The console's overview (``/console/``): the chart and totals against
``/v1/decisions/stats``, the "top denied" tables and their links, error counts,
escaping, and the audit chain's recorded verification (``POST
/console/chain/verify``). Decisions are made through ``POST /v1/decide``; on
every backend."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from pdp.api.console.chart import Bucket, decision_chart, fill_buckets, nice_ticks
from pdp.audit import verifications
from pdp.service import keys
from pdp.store.models import DecisionLogRow
from tests.api.conftest import DOCS

from .conftest import parse_html

SCRIPT = "<script>alert(1)</script>"
REPORTS = """\
policy "report-level" {
  permit read on report
  when subject.level > 3
}
"""
BUCKETS = {"hour": 60, "day": 24, "week": 168}
SVG = "{http://www.w3.org/2000/svg}"


def _pep(store, name: str) -> str:
    return keys.create_key(store, name=name, roles=("decide",), trusted_claims=True,
                           created_by="tests").secret


class World:
    """A published policy set, two trusted callers, and a way to decide."""

    def __init__(self, app, api, store):
        self.app, self.api, self.store = app, api, store
        self.gateway = api.as_(_pep(store, "gateway"))
        self.edge = api.as_(_pep(store, "edge"))

    def decide(self, caller, sub, *, type_="document", id_="d-1", owner="alice",
               **claims) -> dict:
        response = caller.post("/v1/decide", {
            "subject": {"claims": {"sub": sub, "roles": [], **claims}}, "action": "read",
            "resource": {"type": type_, "id": id_, "attributes": {"owner": owner}}})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def flush(self) -> None:
        assert self.app.extensions["pdp.audit"].flush()


@pytest.fixture
def world(app, api, store) -> World:
    published = api.publish({"docs.policy": DOCS, "reports.policy": REPORTS}, activate=True)
    assert published.status_code == 201, published.get_json()
    w = World(app, api, store)
    for _ in range(3):
        assert w.decide(w.gateway, "alice")["decision"] == "allow"
    for caller in (w.gateway, w.edge):
        assert w.decide(caller, "bob")["decision"] == "deny"
    assert w.decide(w.edge, SCRIPT, id_="d-2")["decision"] == "deny"
    out = w.decide(w.gateway, "carol", type_="report", id_="r-1", level="high")
    assert out["decision"] == "deny" and out["errors"]
    w.flush()
    return w


@pytest.fixture
def auditor(client, auditor_key, signed_in):
    """A client signed in as an auditor; ``.csrf`` its session's token."""
    client.csrf = signed_in(client, auditor_key)
    return client


def _page(client, path="/console/"):
    response = client.get(path)
    assert response.status_code == 200, (response.status_code, response.text[:500])
    html = response.get_data(as_text=True)
    assert " style=" not in html and "<script" not in html and "<style" not in html
    return html, parse_html(html)


def _svg(html: str) -> ET.Element:
    start, end = html.index("<svg"), html.index("</svg>") + len("</svg>")
    return ET.fromstring(html[start:end])          # well-formed XML, or this fails


def _links(table) -> list[tuple[str, dict]]:
    return [(a.text(), {k: v[0] for k, v in parse_qs(urlsplit(a.get("href")).query).items()})
            for a in table.select("a")]


# --------------------------------------------------------------------------- chart, totals

@pytest.mark.parametrize("range_", ["hour", "day", "week"])
def test_the_chart_has_every_bucket_and_the_totals_of_the_api(world, auditor, auditor_key,
                                                             range_):
    html, doc = _page(auditor, f"/console/?range={range_}")
    current = doc.select("a", cls="range", aria_current="page")
    assert [a.get("data-range") for a in current] == [range_]
    assert {a.get("data-range") for a in doc.select("a", cls="range")} == set(BUCKETS)
    figure = doc.one("figure", id="decision-chart")
    svg = _svg(html)
    groups = svg.findall(f".//{SVG}g[@class='bucket']")
    assert len(groups) == BUCKETS[range_] == int(svg.get("data-buckets"))
    assert all(g.find(f"{SVG}title") is not None for g in groups)
    assert len(svg.findall(f".//{SVG}rect[@class='allow']")) == BUCKETS[range_]
    assert len(svg.findall(f".//{SVG}rect[@class='deny']")) == BUCKETS[range_]
    stats = world.api.as_(auditor_key).get(
        f"/v1/decisions/stats?from={figure.get('data-from')}&to={figure.get('data-to')}"
        f"&bucket={figure.get('data-bucket')}").get_json()
    assert stats["totals"] == {"allow": 3, "deny": 4}
    assert int(doc.one(id="total-allow").text()) == stats["totals"]["allow"]
    assert int(doc.one(id="total-deny").text()) == stats["totals"]["deny"]
    drawn = {g.get("data-start"): (int(g.get("data-allow")), int(g.get("data-deny")))
             for g in groups if g.get("data-allow") != "0" or g.get("data-deny") != "0"}
    assert drawn == {b["start"]: (b["allow"], b["deny"]) for b in stats["buckets"]}
    title = next(g.find(f"{SVG}title").text for g in groups if g.get("data-allow") == "3")
    assert "3 allow, 4 deny" in title and "UTC" in title


def test_an_unknown_range_is_a_400_page(auditor):
    response = auditor.get("/console/?range=year")
    assert response.status_code == 400
    assert parse_html(response.text).one(id="error-message").get("data-code") == \
        "invalid_field"


def test_an_empty_log_draws_an_empty_chart(auditor):
    html, doc = _page(auditor)
    assert len(_svg(html).findall(f".//{SVG}g[@class='bucket']")) == 24
    assert doc.one(id="total-allow").text() == "0" and doc.one(id="total-deny").text() == "0"
    assert doc.one("table", id="top-subjects").select("tr", cls="empty")
    assert doc.one(id="chain-state").get("data-state") == "unverified"


# --------------------------------------------------------------------------- tops

def test_top_denied_tables_link_to_the_filtered_log(world, auditor):
    _, doc = _page(auditor, "/console/?range=hour")
    window = {k: doc.one("figure", id="decision-chart").get(f"data-{k}")
              for k in ("from", "to")}
    subjects = _links(doc.one("table", id="top-subjects"))
    assert subjects[0] == ("bob", {**window, "subject": "bob", "decision": "deny"})
    assert (SCRIPT, {**window, "subject": SCRIPT, "decision": "deny"}) in subjects
    callers = dict(_links(doc.one("table", id="top-callers")))
    assert callers == {"gateway": {**window, "caller": "gateway", "decision": "deny"},
                       "edge": {**window, "caller": "edge", "decision": "deny"}}
    counts = {tr.select("td")[0].text().strip(): tr.select("td")[-1].text()
              for tr in doc.one("table", id="top-callers").select("tr")[1:]}
    assert counts == {"edge": "2", "gateway": "2"}
    resources = _links(doc.one("table", id="top-resources"))
    assert ("d-1", {**window, "resource_type": "document", "resource_id": "d-1",
                    "decision": "deny"}) in resources
    for table in ("top-subjects", "top-callers", "top-resources", "error-counts"):
        for a in doc.one("table", id=table).select("a"):
            assert a.get("href").startswith("/console/decisions?")
            assert auditor.get(a.get("href")).status_code == 200


def test_error_counts(world, auditor, auditor_key):
    _, doc = _page(auditor, "/console/?range=hour")
    figure = doc.one("figure", id="decision-chart")
    stats = world.api.as_(auditor_key).get(
        f"/v1/decisions/stats?from={figure.get('data-from')}&to={figure.get('data-to')}"
        "&bucket=minute").get_json()
    assert stats["errors"] and sum(e["count"] for e in stats["errors"]) == 1
    rows = doc.one("table", id="error-counts").select("tr")[1:]
    assert [(tr.select("td")[0].text().strip(), int(tr.select("td")[1].text()))
            for tr in rows] == [(e["code"], e["count"]) for e in stats["errors"]]


def test_a_hostile_subject_is_escaped(world, auditor):
    html, doc = _page(auditor)
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SCRIPT in doc.one("table", id="top-subjects").text()


def test_the_svg_escapes_every_text():
    buckets = [Bucket(datetime(2026, 11, 29, 10, tzinfo=timezone.utc), 2, 7)]
    svg = str(decision_chart(buckets, "hour", title=f'{SCRIPT} & "q"'))
    assert SCRIPT not in svg and "&lt;script&gt;" in svg and "&#34;q&#34;" in svg
    parsed = ET.fromstring(svg)
    assert parsed.find(f"{SVG}title").text == f'{SCRIPT} & "q"'
    assert " style=" not in svg


def test_nice_ticks_and_zero_filled_buckets():
    assert nice_ticks(0) == [0, 1]
    assert nice_ticks(1) == [0, 1]
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(1234) == [0, 500, 1000, 1500]
    assert nice_ticks(100) == [0, 50, 100]
    start = datetime(2026, 11, 29, 10, 0, tzinfo=timezone.utc)
    filled = fill_buckets([{"start": "2026-11-29T10:02:00Z", "allow": 1, "deny": 2}],
                          start, start.replace(minute=5), "minute")
    assert [(b.start.minute, b.allow, b.deny) for b in filled] == [
        (0, 0, 0), (1, 0, 0), (2, 1, 2), (3, 0, 0), (4, 0, 0)]


# --------------------------------------------------------------------------- the chain

def test_verify_now_records_a_verified_chain(world, auditor, store):
    _, doc = _page(auditor)
    assert doc.one(id="chain-state").get("data-state") == "unverified"
    form = doc.one("form", id="verify-chain")
    assert form.get("method") == "post" and form.get("action") == "/console/chain/verify"
    token = form.one("input", name="csrf_token").get("value")
    response = auditor.post("/console/chain/verify", data={"csrf_token": token})
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == "/console/"
    last = verifications.last_verification(store)
    assert last.ok and last.verified_by == "console:auditor-1" and last.checked == 7
    _, doc = _page(auditor)
    state = doc.one(id="chain-state")
    assert state.get("data-state") == "verified"
    assert "console:auditor-1" in state.text() and "7 record(s) checked" in state.text()
    assert doc.one(id="chain-head-seq").text() == "7"
    assert doc.find(id="chain-appended") is None
    world.decide(world.gateway, "alice")
    world.decide(world.gateway, "alice")
    world.flush()
    _, doc = _page(auditor)
    assert doc.one(id="chain-state").get("data-state") == "verified"
    assert "2 record(s) appended since" in doc.one(id="chain-appended").text()
    assert doc.one(id="chain-head-seq").text() == "9"


def test_the_cli_verification_shows(world, auditor, store):
    verifications.verify_and_record(store, by="pdp audit verify")
    _, doc = _page(auditor)
    assert "pdp audit verify" in doc.one(id="chain-state").text()


def test_verify_without_the_csrf_token_is_refused(world, auditor, store):
    for data in ({}, {"csrf_token": "forged"}):
        response = auditor.post("/console/chain/verify", data=data)
        assert response.status_code == 403
        assert parse_html(response.text).one(id="error-message").get("data-code") == \
            "csrf_failed"
    assert verifications.last_verification(store) is None


def test_a_tampered_record_shows_a_broken_chain(world, auditor, store):
    with store.write() as s:
        s.execute(sa.update(DecisionLogRow).where(DecisionLogRow.seq == 3)
                  .values(subject="mallory"))
    response = auditor.post("/console/chain/verify", data={"csrf_token": auditor.csrf})
    assert response.status_code == 303
    _, doc = _page(auditor)
    state = doc.one(id="chain-state")
    assert state.get("data-state") == "broken"
    assert doc.one(id="chain-broken-seq").text() == "3"
    assert "altered" in state.text() and "record 3" in state.text()


# --------------------------------------------------------------------------- who may look

def test_an_admin_only_session_goes_to_the_policies(client, admin_key, signed_in, store):
    csrf = signed_in(client, admin_key)
    response = client.get("/console/")
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == "/console/policies"
    refused = client.post("/console/chain/verify", data={"csrf_token": csrf})
    assert refused.status_code == 403
    assert verifications.last_verification(store) is None


def test_signed_out_goes_to_sign_in(client, store):
    response = client.get("/console/?range=week")
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/console/sign-in"
    assert parse_qs(location.query)["next"] == ["/console/?range=week"]
    assert client.post("/console/chain/verify").status_code == 403
    assert verifications.last_verification(store) is None
