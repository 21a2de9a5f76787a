"""The console end to end, in a real browser: headless Chromium driven by Playwright,
against a real server (``pdp serve``, gunicorn) on each storage backend.

One server per backend for the whole module (starting gunicorn and seeding for
every test would multiply the run time); each test gets a fresh browser context,
i.e. no cookies. The server's store is seeded before it starts: an auditor, an
admin and a decide-only key (the last also passes trusted claims), three versions
of the ``default`` policy set (the newest active), and decisions made through
``POST /v1/decide`` (``PDP_AUDIT_MODE=durable``: in the log when answered) for
alice and bob — one of them carrying an XSS payload in the resource.

Every test also checks, on teardown, that no JavaScript dialog opened and that the
browser reported no Content-Security-Policy violation.

Chromium is ``/usr/bin/chromium`` (Debian packages ``chromium`` and
``chromium-driver``; ``PDP_TEST_CHROMIUM`` names another binary), driven through
the ``playwright`` Python package (the ``dev`` extra; ``playwright install`` is
never needed). Without either the tests are skipped with a loud reason — and fail
when ``CI=true``.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler

import pytest

from pdp.audit.queries import COLUMNS
from pdp.service import keys, policies
from pdp.store.db import Database
from tests.conftest import BACKENDS, IN_CI, _postgres_skipped, migrated_sqlite_url
from tests.live import BackgroundHTTPServer, get, live_server, post_json

CHROMIUM = os.environ.get("PDP_TEST_CHROMIUM", "/usr/bin/chromium")
#: Headless, no sandbox (root in a container), and nothing that talks to the network
#: on its own.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: Playwright's waits (ms): a page that never shows up fails in seconds, not 30.
TIMEOUT_MS = 10_000

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(1)>"

DOCS_V1 = """\
@description("owners read their own documents")
policy "doc-owner-read" {
  permit read on document
  when resource.owner == subject.sub
  reason "owners read their own documents"
}
"""
DOCS_V2 = DOCS_V1 + """
policy "doc-editors-update" {
  permit update on document
  when "editor" in subject.roles
  reason "editors update documents"
}
"""
ARCHIVED = """\
policy "no-archived-updates" {
  forbid update on document
  when resource.archived == true
  reason "archived documents are read-only"
}
"""
VERSIONS = [{"docs.policy": DOCS_V1},
            {"docs.policy": DOCS_V2},
            {"docs.policy": DOCS_V2, "archived.policy": ARCHIVED}]

#: (subject, roles, action, resource id, resource attributes, expected decision)
DECISIONS = [
    ("alice", [], "read", "d1", {"owner": "alice"}, "allow"),
    ("alice", [], "read", "d2", {"owner": "bob"}, "deny"),
    ("bob", [], "read", "d2", {"owner": "bob"}, "allow"),
    ("bob", ["editor"], "update", "d3", {"owner": "bob", "archived": True}, "deny"),
    ("alice", ["editor"], "update", "d4", {"owner": "carol", "archived": False}, "allow"),
    ("bob", [], "read", "x1", {"owner": XSS_SCRIPT, "title": XSS_IMG}, "deny"),
]


# --------------------------------------------------------------------------- the browser

def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(f"!!! {reason} — the console browser tests were NOT run !!!")


def find_chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        _unavailable(f"Chromium is not installed at {CHROMIUM} "
                     "(apt-get install -y chromium chromium-driver)")
    return path


@pytest.fixture(scope="session")
def browser():
    path = find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# --------------------------------------------------------------------------- the server

@dataclass
class Seeded:
    """A running, seeded server and what it was seeded with."""

    base: str
    url: str
    auditor: str
    admin: str
    decider: str
    decisions: list[dict] = field(default_factory=list)

    def ids(self, **match) -> set[str]:
        return {d["decision_id"] for d in self.decisions
                if all(d[k] == v for k, v in match.items())}

    def api_get(self, path: str, key: str) -> tuple[int, bytes]:
        return get(self.base + path, headers={"Authorization": f"Bearer {key}"})

    def decide(self, subject: str, roles, action: str, resource_id: str, attributes) -> dict:
        status, out = post_json(f"{self.base}/v1/decide", {
            "subject": {"claims": {"sub": subject, "roles": list(roles)}},
            "action": action,
            "resource": {"type": "document", "id": resource_id, "attributes": attributes}},
            headers={"Authorization": f"Bearer {self.decider}"})
        assert status == 200, out
        return out


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(request, tmp_path_factory) -> Iterator[str]:
    """A migrated database of this module's own on the backend (cf. ``database_url``,
    which is per test)."""
    if request.param == "sqlite":
        yield migrated_sqlite_url(tmp_path_factory.mktemp("console-browser") / "pdp.db")
        return
    server = request.getfixturevalue("_postgres_server")
    if isinstance(server, str):                      # unreachable: as tests/conftest.py
        if IN_CI:
            pytest.fail(f"CI=true and {server}", pytrace=False)
        _postgres_skipped.append(server)
        pytest.skip(f"!!! {server} — PostgreSQL tests NOT run !!!")
    name = server.create(template=server.migrated_template())
    try:
        yield server.url(name).render_as_string(hide_password=False)
    finally:
        server.drop(name)


@pytest.fixture(scope="module")
def seeded(module_database_url) -> Iterator[Seeded]:
    url = module_database_url
    store = Database(url)
    try:
        auditor = keys.create_key(store, name="auditor-ann", roles=("auditor",),
                                  created_by="tests").secret
        admin = keys.create_key(store, name="admin-ada", roles=("admin",),
                                created_by="tests").secret
        decider = keys.create_key(store, name="gateway", roles=("decide",),
                                  trusted_claims=True, created_by="tests").secret
        for files in VERSIONS:
            policies.publish(store, files, published_by="tests", activate=True)
    finally:
        store.dispose()
    with live_server({"PDP_AUDIT_MODE": "durable", "PDP_POLL_INTERVAL": "0.5"},
                     database_url=url) as base:
        server = Seeded(base=str(base), url=url, auditor=auditor, admin=admin, decider=decider)
        for subject, roles, action, resource_id, attributes, expected in DECISIONS:
            out = server.decide(subject, roles, action, resource_id, attributes)
            assert out["decision"] == expected, (subject, action, resource_id, out)
            server.decisions.append({**out, "subject": subject, "resource_id": resource_id})
        yield server


# --------------------------------------------------------------------------- a page

class Console:
    """One browser context (its own cookies) and page, recording dialogs and
    Content-Security-Policy reports."""

    def __init__(self, browser, server: Seeded):
        self.server = server
        self.base = server.base
        self.context = browser.new_context(accept_downloads=True,
                                           viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.csp: list[str] = []
        self.page_errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.csp.append(message.text)

    def goto(self, path: str):
        return self.page.goto(self.base + path)

    def sign_in(self, key: str, *, expect: str | None = None):
        """Fill the sign-in form and send it; the final response."""
        self.goto("/console/sign-in")
        self.page.fill("#key", key)
        with self.page.expect_navigation() as navigation:
            self.page.click("#sign-in")
        response = navigation.value
        if expect is not None:
            self.page.wait_for_url(re.compile(re.escape(self.base + expect) + r"(\?.*)?$"))
        return response

    def path(self) -> str:
        parts = urllib.parse.urlsplit(self.page.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console(browser, seeded) -> Iterator[Console]:
    console = Console(browser, seeded)
    try:
        yield console
        assert console.dialogs == [], f"a JavaScript dialog opened: {console.dialogs}"
        assert console.csp == [], f"Content-Security-Policy violations: {console.csp}"
        assert console.page_errors == [], f"script errors: {console.page_errors}"
    finally:
        console.close()


def expect(*args, **kwargs):
    from playwright.sync_api import expect as playwright_expect
    return playwright_expect(*args, **kwargs)


def number_in(text: str) -> int:
    match = re.search(r"\d[\d,]*", text)
    assert match, text
    return int(match.group(0).replace(",", ""))


# --------------------------------------------------------------------------- sign-in

def test_an_auditor_signs_in_and_sees_who_is_signed_in(console):
    response = console.sign_in(console.server.auditor, expect="/console/")
    assert response.status == 200
    expect(console.page.locator("#signed-in-as")).to_have_text("auditor-ann (auditor)")
    expect(console.page.locator("button#sign-out")).to_be_visible()
    cookies = {c["name"]: c for c in console.context.cookies()}
    assert cookies["pdp_console"]["httpOnly"] and cookies["pdp_console"]["sameSite"] == "Strict"


def test_a_signed_out_visitor_is_sent_to_sign_in_and_back_afterwards(console):
    console.goto("/console/decisions?subject=alice")
    assert console.path().startswith("/console/sign-in?next=")
    expect(console.page.locator("form#sign-in-form")).to_be_visible()
    console.page.fill("#key", console.server.auditor)
    with console.page.expect_navigation():
        console.page.click("#sign-in")
    assert console.path() == "/console/decisions?subject=alice"


def test_a_decide_only_key_cannot_sign_in(console):
    response = console.sign_in(console.server.decider)
    assert response.status == 401
    assert console.path().startswith("/console/sign-in")
    expect(console.page.locator("p#sign-in-error")).to_be_visible()
    assert "pdp_console" not in {c["name"] for c in console.context.cookies()}
    console.goto("/console/decisions")
    assert console.path().startswith("/console/sign-in")


def test_an_unknown_key_cannot_sign_in(console):
    response = console.sign_in("pdp_" + "A" * 43)
    assert response.status == 401
    expect(console.page.locator("p#sign-in-error")).to_be_visible()


def test_sign_out_ends_the_session(console):
    console.sign_in(console.server.auditor, expect="/console/")
    with console.page.expect_navigation():
        console.page.click("button#sign-out")
    assert console.path() == "/console/sign-in"
    expect(console.page.locator("form#sign-in-form")).to_be_visible()
    expect(console.page.locator("#signed-in-as")).to_have_count(0)
    console.goto("/console/decisions")
    assert console.path().startswith("/console/sign-in?next=")
    expect(console.page.locator("table#decision-table")).to_have_count(0)



def test_revoking_the_key_ends_its_console_session(console):
    server = console.server
    store = Database(server.url)
    try:
        key = keys.create_key(store, name="auditor-temp", roles=("auditor",),
                              created_by="tests").secret
        console.sign_in(key, expect="/console/")
        assert console.goto("/console/decisions").status == 200
        keys.revoke_key(store, "auditor-temp")
    finally:
        store.dispose()
    console.goto("/console/decisions")
    assert console.path().startswith("/console/sign-in?next=")

# --------------------------------------------------------------------------- CSRF

def test_a_post_without_the_csrf_token_is_refused_and_the_session_survives(console):
    console.sign_in(console.server.auditor, expect="/console/")
    # The browser's own cookies (page.request shares them), but no csrf_token field.
    response = console.page.request.post(f"{console.base}/console/sign-out",
                                         form={"next": "/console/"}, max_redirects=0)
    assert response.status == 403
    assert 'data-code="csrf_failed"' in response.text()
    assert console.goto("/console/decisions").status == 200
    expect(console.page.locator("#signed-in-as")).to_have_text("auditor-ann (auditor)")


class _Attacker(BackgroundHTTPServer):
    """A page on another origin (another port) holding a form that posts to the console."""

    def __init__(self, html: str):
        body = html.encode("utf-8")

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(Handler)


def test_a_form_posted_from_another_origin_is_refused_even_with_the_token(console):
    console.sign_in(console.server.auditor, expect="/console/")
    # The worst case: the attacker somehow knows the session's CSRF token.
    token = console.page.locator("form.sign-out input[name=csrf_token]").get_attribute("value")
    assert token
    forged = (f'<!doctype html><form id="forged" method="post" '
              f'action="{console.base}/console/sign-out">'
              f'<input type="hidden" name="csrf_token" value="{token}">'
              f'<button id="go" type="submit">win a prize</button></form>')
    with _Attacker(forged) as attacker:
        console.page.goto(attacker.url)
        with console.page.expect_navigation() as navigation:
            console.page.click("#go")
    assert navigation.value.status == 403
    expect(console.page.locator("#error-message")).to_have_attribute("data-code", "csrf_failed")
    assert console.goto("/console/decisions").status == 200
    expect(console.page.locator("#signed-in-as")).to_be_visible()


# --------------------------------------------------------------------------- decision log

def _row_cells(row) -> list[str]:
    return [c.strip() for c in row.locator(":scope > td, :scope > th").all_inner_texts()]


def test_the_log_filtered_to_one_subject_shows_only_that_subject(console):
    server = console.server
    console.sign_in(server.auditor, expect="/console/")
    console.goto("/console/decisions")
    rows = console.page.locator("table#decision-table tr.decision-row")
    expect(rows).to_have_count(len(server.decisions))
    console.page.fill("form#filters input[name=subject]", "alice")
    with console.page.expect_navigation():
        console.page.click("button#apply-filters")
    assert "subject=alice" in console.page.url
    expect(rows).to_have_count(len(server.ids(subject="alice")))
    shown = {rows.nth(i).get_attribute("data-decision-id") for i in range(rows.count())}
    assert shown == server.ids(subject="alice")
    for i in range(rows.count()):
        assert _row_cells(rows.nth(i))[2] == "alice", _row_cells(rows.nth(i))
    expect(console.page.locator("#result-count")).to_contain_text(str(len(shown)))
    # A filter that matches nothing says so.
    console.goto("/console/decisions?subject=nobody")
    expect(console.page.locator("p#no-decisions")).to_be_visible()
    expect(rows).to_have_count(0)


def test_keyset_paging_keeps_the_filters(console):
    server = console.server
    alice = server.ids(subject="alice")
    console.sign_in(server.auditor, expect="/console/")
    console.goto("/console/decisions?subject=alice&limit=2")
    rows = console.page.locator("table#decision-table tr.decision-row")
    expect(rows).to_have_count(2)
    first = {rows.nth(i).get_attribute("data-decision-id") for i in range(2)}
    expect(console.page.locator("a#first-page")).to_have_count(0)
    href = console.page.locator("a#next-page").get_attribute("href")
    assert "cursor=" in href and "subject=alice" in href, href
    with console.page.expect_navigation():
        console.page.click("a#next-page")
    expect(rows).to_have_count(len(alice) - 2)
    rest = {rows.nth(i).get_attribute("data-decision-id") for i in range(rows.count())}
    assert first | rest == alice and not first & rest
    expect(console.page.locator("a#first-page")).to_be_visible()

def test_a_time_range_filter_takes_a_datetime_local_value(console):
    server = console.server
    console.sign_in(server.auditor, expect="/console/")
    now = datetime.now(timezone.utc)
    rows = console.page.locator("table#decision-table tr.decision-row")
    for start, count in [(now - timedelta(hours=1), len(server.decisions)),
                         (now + timedelta(minutes=2), 0)]:
        console.goto("/console/decisions")
        console.page.fill("form#filters input[name=from]", start.strftime("%Y-%m-%dT%H:%M"))
        with console.page.expect_navigation() as navigation:
            console.page.click("button#apply-filters")
        assert navigation.value.status == 200
        expect(rows).to_have_count(count)

def test_a_bad_filter_is_a_400_page_naming_the_field(console):
    console.sign_in(console.server.auditor, expect="/console/")
    response = console.goto("/console/decisions?from=yesterday-ish")
    assert response.status == 400
    expect(console.page.locator("p#filter-error")).to_contain_text("from")


def test_a_decision_shows_the_source_of_the_policy_that_decided_it(console):
    server = console.server
    console.sign_in(server.auditor, expect="/console/")
    (decision_id,) = server.ids(subject="alice", resource_id="d1")
    console.goto("/console/decisions?subject=alice")
    row = console.page.locator(f'tr.decision-row[data-decision-id="{decision_id}"]')
    with console.page.expect_navigation():
        row.locator("a.decision-link").first.click()
    assert console.path() == f"/console/decisions/{decision_id}"
    expect(console.page.locator("#decision-value")).to_have_text("allow")
    expect(console.page.locator("section#decision-summary")).to_contain_text(decision_id)
    expect(console.page.locator("pre#resource")).to_contain_text('"owner"')
    expect(console.page.locator("pre#claims")).to_contain_text('"alice"')
    expect(console.page.locator("ul#reasons")).to_contain_text("owners read their own documents")
    source = console.page.locator('section.policy-source[data-policy-id="doc-owner-read"]')
    expect(source).to_be_visible()
    expect(source).to_contain_text('policy "doc-owner-read"')
    highlighted = "\n".join(source.locator(".line.hl").all_inner_texts())
    assert 'policy "doc-owner-read"' in highlighted
    assert "permit read on document" in highlighted
    assert "doc-editors-update" not in highlighted          # the same file's other policy
    link = source.locator("a.version-link").first.get_attribute("href")
    version = next(d for d in server.decisions if d["decision_id"] == decision_id)[
        "policy_version"]
    assert link.endswith(f"/console/policies/default/versions/{version}#policy-doc-owner-read")


def test_an_unknown_decision_is_a_404_page(console):
    console.sign_in(console.server.auditor, expect="/console/")
    response = console.goto("/console/decisions/00000000-0000-4000-8000-000000000000")
    assert response.status == 404
    expect(console.page.locator("#error-message")).to_have_attribute("data-code",
                                                                     "decision_not_found")


def test_the_csv_export_is_what_the_api_exports(console):
    server = console.server
    console.sign_in(server.auditor, expect="/console/")
    console.goto("/console/decisions?subject=alice")
    with console.page.expect_download() as download:
        console.page.click("a#export-csv")
    downloaded = open(download.value.path(), "rb").read()
    assert download.value.suggested_filename.endswith(".csv")
    status, api = server.api_get("/v1/decisions/export?format=csv&subject=alice",
                                 server.auditor)
    assert status == 200
    assert downloaded == api
    rows = list(csv.DictReader(io.StringIO(downloaded.decode("utf-8"))))
    assert {r["decision_id"] for r in rows} == server.ids(subject="alice")
    assert {r["subject"] for r in rows} == {"alice"}
    assert list(rows[0]) == list(COLUMNS)


def test_an_xss_payload_in_a_decision_is_shown_as_text(console):
    server = console.server
    console.sign_in(server.auditor, expect="/console/")
    (decision_id,) = server.ids(resource_id="x1")
    for path in ("/console/decisions", f"/console/decisions/{decision_id}"):
        assert console.goto(path).status == 200
        console.page.wait_for_load_state("load")
        text = console.page.locator("body").inner_text()
        if path != "/console/decisions":          # the log need not show attributes
            assert XSS_SCRIPT in text and XSS_IMG in text, path
        assert console.page.locator("img").count() == 0, path
        scripts = console.page.evaluate(
            "() => [...document.scripts].map(s => s.src || s.textContent)")
        assert not any("alert" in s for s in scripts), scripts
    expect(console.page.locator("pre#resource")).to_contain_text(XSS_SCRIPT)
    expect(console.page.locator("pre#resource")).to_contain_text(XSS_IMG)
    console.page.wait_for_timeout(300)              # time for an onerror to have fired
    assert console.dialogs == []


# --------------------------------------------------------------------------- overview

def test_the_overview_shows_the_chart_and_the_totals(console):
    server = console.server
    console.sign_in(server.auditor, expect="/console/")
    chart = console.page.locator("figure#decision-chart svg")
    expect(chart).to_be_visible()
    assert chart.locator(".allow").count() > 0 and chart.locator(".deny").count() > 0
    allows = sum(d["decision"] == "allow" for d in server.decisions)
    assert number_in(console.page.locator("#total-allow").inner_text()) == allows
    assert number_in(console.page.locator("#total-deny").inner_text()) == \
        len(server.decisions) - allows
    expect(console.page.locator('a.range[aria-current="page"]')).to_have_attribute(
        "data-range", "day")
    with console.page.expect_navigation():
        console.page.click('a.range[data-range="hour"]')
    assert "range=hour" in console.page.url
    expect(console.page.locator("figure#decision-chart svg")).to_be_visible()
    expect(console.page.locator("#chain-state")).to_have_attribute(
        "data-state", re.compile("verified|broken|unverified"))
    with console.page.expect_navigation():
        console.page.click("form#verify-chain button")
    assert console.path() == "/console/"
    expect(console.page.locator("#chain-state")).to_have_attribute("data-state", "verified")


# --------------------------------------------------------------------------- policies

def test_an_auditor_reads_versions_and_diffs_but_cannot_activate(console):
    console.sign_in(console.server.auditor, expect="/console/")
    console.goto("/console/policies")
    with console.page.expect_navigation():
        console.page.locator("table#policy-sets a.set-link", has_text="default").click()
    assert console.path() == "/console/policies/default"
    expect(console.page.locator("tr.version-row")).to_have_count(len(VERSIONS))
    expect(console.page.locator("a.activate-link")).to_have_count(0)
    console.goto("/console/policies/default/versions/3")
    expect(console.page.locator('section.policy-file[data-path="archived.policy"]')).to_be_visible()
    expect(console.page.locator("#policy-no-archived-updates")).to_have_count(1)
    console.goto("/console/policies/default/diff?from=1&to=3")
    expect(console.page.locator("pre#diff .add").first).to_be_visible()
    expect(console.page.locator("ul#policies-added")).to_contain_text("doc-editors-update")
    expect(console.page.locator("ul#policies-added")).to_contain_text("no-archived-updates")
    response = console.goto("/console/policies/default/versions/1/activate")
    assert response.status == 403


# Last in the module: it changes the active version on the module's server.
def test_an_admin_rolls_back_through_the_confirmation_page(console):
    server = console.server
    console.sign_in(server.admin, expect="/console/policies")
    console.goto("/console/policies/default")
    expect(console.page.locator("tr.active-version")).to_have_attribute("data-version", "3")
    link = console.page.locator('tr.version-row[data-version="2"] a.activate-link')
    expect(link).to_contain_text("Roll back")
    with console.page.expect_navigation():
        link.click()
    assert console.path() == "/console/policies/default/versions/2/activate"
    expect(console.page.locator("a#cancel")).to_be_visible()
    expect(console.page.locator("main")).to_contain_text("no-archived-updates")   # removed
    with console.page.expect_navigation():
        console.page.click("button#confirm-activate")
    assert console.path() == "/console/policies/default?activated=2"
    expect(console.page.locator("p#activated-message")).to_be_visible()
    expect(console.page.locator("tr.active-version")).to_have_attribute("data-version", "2")
    expect(console.page.locator("table#activations")).to_contain_text("console:admin-ada")
    store = Database(server.url)
    try:
        (info,) = [s for s in policies.list_policy_sets(store) if s.name == "default"]
        assert info.active_version == 2
    finally:
        store.dispose()
    # The server decides with version 2 now (each worker follows within its poll).
    deadline = time.monotonic() + 10
    while True:
        out = server.decide("carol", ["editor"], "update", "d9", {"archived": True})
        if out["policy_version"] == 2:
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.2)
    assert out["decision"] == "allow"           # no-archived-updates is not in version 2


def test_a_get_of_the_activation_url_changes_nothing(console):
    """The confirmation page is only a page: following a link to it activates nothing."""
    server = console.server
    console.sign_in(server.admin, expect="/console/policies")
    store = Database(server.url)
    try:
        before = {s.name: s.active_version for s in policies.list_policy_sets(store)}
        console.goto("/console/policies/default/versions/1/activate")
        expect(console.page.locator("form#activate-form")).to_be_visible()
        after = {s.name: s.active_version for s in policies.list_policy_sets(store)}
    finally:
        store.dispose()
    assert after == before
