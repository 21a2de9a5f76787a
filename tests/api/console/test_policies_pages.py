"""The console's policy pages: sets, versions (who, when, hash, the active one), a
version's source with anchors and highlighting, the diff of any two versions, and
activation / rollback behind a confirmation step — on every storage backend."""

from __future__ import annotations

import re
from html import unescape

import pytest

from pdp.service import policies
from tests.api.conftest import ADMINS, DOCS, FORBID_ARCHIVED, make_key

DOCS_V2 = DOCS.replace("permit read, update on document", "permit read on document")
XSS = """\
# </pre><script>alert(1)</script>
policy "xss-reason" {
  permit read on document
  reason "<script>alert(1)</script>"
}
"""


@pytest.fixture
def versions(store):
    """Set ``default``: v1 (docs + admins, active) and v2 (docs changed, admins
    removed, no-archived-writes added)."""
    policies.publish(store, {"docs.policy": DOCS, "admins.policy": ADMINS},
                     published_by="alice", activate=True)
    policies.publish(store, {"docs.policy": DOCS_V2, "forbid.policy": FORBID_ARCHIVED},
                     published_by="bob")
    return store


def _rows(html: str, cls: str) -> dict[int, str]:
    """``{data-version: row html}`` for the rows of class ``cls``."""
    return {int(n): row for n, row in re.findall(
        r'<tr class="[^"]*\b' + cls + r'\b[^"]*" data-version="(\d+)">(.*?)</tr>', html, re.S)}


def _active(store, set_name="default"):
    return next(s.active_version for s in policies.list_policy_sets(store)
                if s.name == set_name)


def _error_code(response) -> str:
    return re.search(r'id="error-message" data-code="([^"]*)"', response.text).group(1)


# --------------------------------------------------------------------------- reading

def test_the_sets_are_listed_with_active_and_latest_version(client, versions, admin_key, signed_in):
    policies.publish(versions, {"other.policy": ADMINS}, published_by="carol",
                     policy_set="billing")
    signed_in(client, admin_key)
    page = client.get("/console/policies")
    assert page.status_code == 200
    assert 'id="policy-sets"' in page.text
    assert re.findall(r'class="set-link" href="([^"]*)"', page.text) == [
        "/console/policies/billing", "/console/policies/default"]
    default = re.search(r'data-set="default">(.*?)</tr>', page.text, re.S).group(1)
    assert re.search(r'class="active-version"><a [^>]*>1</a>', default)
    assert re.search(r'class="latest-version"><a [^>]*>2</a>', default)
    billing = re.search(r'data-set="billing">(.*?)</tr>', page.text, re.S).group(1)
    assert "none" in billing


def test_the_versions_table_shows_who_when_hash_and_the_active_one(
        client, versions, admin_key, signed_in):
    signed_in(client, admin_key)
    page = client.get("/console/policies/default")
    assert page.status_code == 200
    rows = _rows(page.text, "version-row")
    assert sorted(rows) == [1, 2]
    v1, v2 = (policies.get_version(versions, n) for n in (1, 2))
    assert "alice" in rows[1] and "bob" in rows[2]
    for info, row in ((v1, rows[1]), (v2, rows[2])):
        assert f'title="{info.content_hash}"' in row
        assert info.content_hash.split(":")[-1][:12] in row
        assert info.published_at.strftime("%Y-%m-%d %H:%M:%S") in row
    assert list(_rows(page.text, "active-version")) == [1]
    assert ">active<" in rows[1] and ">active<" not in rows[2]
    # an admin may activate the newer version; the active row has no link
    links = re.findall(r'class="activate-link[^"]*" href="([^"]*)">([^<]*)<', page.text)
    assert links == [("/console/policies/default/versions/2/activate", "Activate 2")]
    assert 'id="diff-form"' in page.text and 'name="from"' in page.text
    assert 'id="activations"' in page.text and "alice" in page.text


def test_a_version_shows_its_sources_with_anchors_and_a_highlighted_policy(
        client, versions, auditor_key, signed_in):
    signed_in(client, auditor_key)
    page = client.get("/console/policies/default/versions/1")
    assert page.status_code == 200
    assert re.findall(r'class="policy-file" data-path="([^"]*)"', page.text) == [
        "admins.policy", "docs.policy"]
    assert 'id="policy-doc-owner-edit"' in page.text
    assert 'id="policy-admins-anything"' in page.text
    assert "alice" in page.text
    assert "hl" not in re.findall(r'<span class="line ?([a-z]*)"', page.text)

    page = client.get("/console/policies/default/versions/1?highlight=doc-owner-edit")
    highlighted = re.findall(
        r'<span class="line hl"[^>]*><span class="ln">(\d+)</span>(.*?)</span>', page.text)
    # the policy, its annotations included: all of docs.policy, nothing of admins.policy
    assert [int(n) for n, _ in highlighted] == list(range(1, 8))
    assert unescape(highlighted[0][1]) == '@owner("team-docs")'
    assert unescape(highlighted[2][1]) == 'policy "doc-owner-edit" {'
    assert re.search(r'<span class="line hl" id="policy-doc-owner-edit">', page.text)

    page = client.get("/console/policies/default/versions/1?highlight=nope")
    assert page.status_code == 200 and 'id="highlight-missing"' in page.text


def test_the_diff_of_two_versions_shows_lines_and_policy_ids(
        client, versions, auditor_key, signed_in):
    signed_in(client, auditor_key)
    page = client.get("/console/policies/default/diff?from=1&to=2")
    assert page.status_code == 200
    diff = re.search(r'<pre id="diff" class="diff">(.*?)</pre>', page.text, re.S).group(1)
    lines = [(kind, unescape(text)) for kind, text in
             re.findall(r'<span class="([a-z]+)">(.*?)</span>', diff)]
    assert ("del", "-  permit read, update on document") in lines
    assert ("add", "+  permit read on document") in lines
    assert ("del", '-policy "admins-anything" {') in lines
    assert ("add", '+policy "no-archived-writes" {') in lines
    assert any(kind == "hunk" and text.startswith("@@") for kind, text in lines)
    assert ("file", "+++ b/docs.policy") in lines          # not counted as an added line

    def ids(name):
        block = re.search(f'<ul id="policies-{name}"[^>]*>(.*?)</ul>', page.text, re.S).group(1)
        return re.findall(r'data-policy-id="([^"]*)"', block)

    assert ids("added") == ["no-archived-writes"]
    assert ids("removed") == ["admins-anything"]
    assert ids("changed") == ["doc-owner-edit"]

    same = client.get("/console/policies/default/diff?from=2&to=2")
    assert same.status_code == 200 and 'id="no-differences"' in same.text


@pytest.mark.parametrize("query, status, code, named", [
    ("", 400, "missing_parameter", "from"),
    ("?from=1", 400, "missing_parameter", "to"),
    ("?from=x&to=2", 400, "invalid_parameter", "from"),
    ("?from=1&to=1.5", 400, "invalid_parameter", "to"),
    ("?from=1&to=99999999999999999999", 400, "invalid_parameter", "to"),
    ("?from=9&to=2", 404, "version_not_found", "from"),
    ("?from=1&to=0", 404, "version_not_found", "to"),
])
def test_a_diff_with_a_missing_or_unknown_version_names_the_parameter(
        client, versions, auditor_key, query, status, code, named, signed_in):
    signed_in(client, auditor_key)
    page = client.get("/console/policies/default/diff" + query)
    assert page.status_code == status
    assert _error_code(page) == code
    message = re.search(r'id="error-message"[^>]*>(.*?)</p>', page.text, re.S).group(1)
    assert message.startswith(named + ":")


@pytest.mark.parametrize("path, code", [
    ("/console/policies/nope", "policy_set_not_found"),
    ("/console/policies/nope/versions/1", "policy_set_not_found"),
    ("/console/policies/nope/diff?from=1&to=2", "policy_set_not_found"),
    ("/console/policies/default/versions/7", "version_not_found"),
    ("/console/policies/default/versions/99999999999", "version_not_found"),
    ("/console/policies/default/versions/abc", "version_not_found"),
    ("/console/policies/default/versions/-1", "version_not_found"),
    ("/console/policies/..%20bad/versions/1", "policy_set_not_found"),
    ("/console/policies/default/versions/7/activate", "version_not_found"),
])
def test_an_unknown_set_or_version_is_a_404_page(
        client, versions, admin_key, path, code, signed_in):
    signed_in(client, admin_key)
    page = client.get(path)
    assert page.status_code == 404
    assert page.mimetype == "text/html"
    assert _error_code(page) == code


# --------------------------------------------------------------------------- activation

def test_activation_and_rollback_go_through_a_confirmation_step(
        client, versions, admin_key, app, signed_in):
    csrf = signed_in(client, admin_key)

    confirm = client.get("/console/policies/default/versions/2/activate")
    assert confirm.status_code == 200
    active_now = re.search(r'<p id="active-now">(.*?)</p>', confirm.text, re.S).group(1)
    assert 'data-version="1"' in active_now
    assert 'data-version="2"' in re.search(r'<p id="target">(.*?)</p>', confirm.text,
                                           re.S).group(1)
    for name, expected in (("added", "no-archived-writes"), ("removed", "admins-anything"),
                           ("changed", "doc-owner-edit")):
        assert re.search(f'<ul id="policies-{name}"[^>]*>\\s*<li data-policy-id="{expected}">',
                         confirm.text)
    assert re.search(r'<form id="activate-form" method="post" '
                     r'action="/console/policies/default/versions/2/activate"', confirm.text)
    assert 'id="confirm-activate"' in confirm.text
    assert 'id="cancel" class="button secondary" href="/console/policies/default"' in confirm.text
    assert _active(versions) == 1                           # the GET changed nothing

    done = client.post("/console/policies/default/versions/2/activate",
                       data={"csrf_token": csrf})
    assert done.status_code == 303
    assert done.headers["Location"] == "/console/policies/default?activated=2"
    assert _active(versions) == 2
    api = app.test_client()
    listed = api.get("/v1/policy-sets", headers={"Authorization": f"Bearer {admin_key}"})
    assert [(s["name"], s["active_version"]) for s in listed.get_json()["policy_sets"]] == [
        ("default", 2)]
    history = policies.activation_history(versions)
    assert (history[-1].number, history[-1].activated_by) == (2, "console:ops-admin")

    page = client.get(done.headers["Location"])
    assert re.search(r'id="activated-message"[^>]*>Version 2 is now the active version', page.text)
    assert list(_rows(page.text, "active-version")) == [2]
    assert "console:ops-admin" in re.search(r'<table id="activations">(.*?)</table>',
                                            page.text, re.S).group(1)
    links = re.findall(r'class="activate-link[^"]*" href="([^"]*)">([^<]*)<', page.text)
    assert links == [("/console/policies/default/versions/1/activate", "Roll back to 1")]

    # roll back the same way
    confirm = client.get("/console/policies/default/versions/1/activate")
    assert "Roll back" in confirm.text
    assert re.search(r'<ul id="policies-added"[^>]*>\s*<li data-policy-id="admins-anything">',
                     confirm.text)
    done = client.post("/console/policies/default/versions/1/activate",
                       data={"csrf_token": csrf})
    assert done.status_code == 303
    assert done.headers["Location"] == "/console/policies/default?activated=1"
    assert _active(versions) == 1
    listed = api.get("/v1/policy-sets", headers={"Authorization": f"Bearer {admin_key}"})
    assert listed.get_json()["policy_sets"][0]["active_version"] == 1
    assert [a.number for a in policies.activation_history(versions)] == [1, 2, 1]


def test_activating_the_active_version_says_so_and_changes_nothing(
        client, versions, admin_key, signed_in):
    csrf = signed_in(client, admin_key)
    confirm = client.get("/console/policies/default/versions/1/activate")
    assert confirm.status_code == 200 and 'id="already-active"' in confirm.text
    done = client.post("/console/policies/default/versions/1/activate",
                       data={"csrf_token": csrf})
    assert done.status_code == 303
    page = client.get(done.headers["Location"])
    assert page.status_code == 200
    assert re.search(r'id="activated-message"[^>]*>Version 1 was already the active version',
                     page.text)
    assert [a.number for a in policies.activation_history(versions)] == [1]


def test_a_post_without_the_csrf_token_changes_nothing(client, versions, admin_key, signed_in):
    csrf = signed_in(client, admin_key)
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": csrf[:-1]}):
        response = client.post("/console/policies/default/versions/2/activate", data=data)
        assert response.status_code == 403
        assert _error_code(response) == "csrf_failed"
    assert _active(versions) == 1
    assert [a.number for a in policies.activation_history(versions)] == [1]


def test_an_unknown_version_cannot_be_activated(client, versions, admin_key, signed_in):
    csrf = signed_in(client, admin_key)
    response = client.post("/console/policies/default/versions/9/activate",
                           data={"csrf_token": csrf})
    assert response.status_code == 404 and _error_code(response) == "version_not_found"
    assert _active(versions) == 1


def test_an_auditor_reads_but_cannot_activate(client, versions, auditor_key, signed_in):
    csrf = signed_in(client, auditor_key)
    for path in ("/console/policies", "/console/policies/default",
                 "/console/policies/default/versions/2",
                 "/console/policies/default/diff?from=1&to=2"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "activate-link" not in page.text and "/activate" not in page.text, path
    confirm = client.get("/console/policies/default/versions/2/activate")
    assert confirm.status_code == 403 and _error_code(confirm) == "forbidden"
    post = client.post("/console/policies/default/versions/2/activate",
                       data={"csrf_token": csrf})
    assert post.status_code == 403 and _error_code(post) == "forbidden"
    assert _active(versions) == 1


def test_a_key_restricted_to_some_sets_sees_only_those(client, versions, store, signed_in):
    policies.publish(store, {"other.policy": ADMINS}, published_by="carol",
                     policy_set="billing")
    key = make_key(store, "billing-admin", "admin", policy_sets=["billing"])
    csrf = signed_in(client, key)
    page = client.get("/console/policies")
    assert re.findall(r'class="set-link" href="([^"]*)"', page.text) == [
        "/console/policies/billing"]
    for path in ("/console/policies/default", "/console/policies/default/versions/1",
                 "/console/policies/default/diff?from=1&to=2",
                 "/console/policies/default/versions/2/activate"):
        assert client.get(path).status_code == 403, path
    post = client.post("/console/policies/default/versions/2/activate",
                       data={"csrf_token": csrf})
    assert post.status_code == 403
    assert _active(store) == 1
    assert client.get("/console/policies/billing/versions/1").status_code == 200


def test_a_signed_out_visitor_is_sent_to_sign_in(client, versions):
    response = client.get("/console/policies/default/versions/1")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/console/sign-in?next=")


# --------------------------------------------------------------------------- escaping

def test_policy_source_is_escaped_on_the_version_and_diff_pages(
        client, versions, admin_key, signed_in):
    policies.publish(versions, {"docs.policy": DOCS_V2, "forbid.policy": FORBID_ARCHIVED,
                                "xss.policy": XSS}, published_by="mallory")
    signed_in(client, admin_key)
    pages = [client.get("/console/policies/default/versions/3"),
             client.get("/console/policies/default/versions/3?highlight=xss-reason"),
             client.get("/console/policies/default/diff?from=2&to=3"),
             client.get("/console/policies/default/diff?from=3&to=1")]
    for page in pages:
        assert page.status_code == 200
        assert "<script" not in page.text
        assert "</pre><script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "style=" not in page.text
    assert 'id="policy-xss-reason"' in pages[0].text
    assert "xss-reason" in re.search(r'<ul id="policies-added"[^>]*>(.*?)</ul>',
                                     pages[2].text, re.S).group(1)


def test_the_pages_carry_the_console_security_headers(client, versions, admin_key, signed_in):
    signed_in(client, admin_key)
    for path in ("/console/policies", "/console/policies/default",
                 "/console/policies/default/versions/1",
                 "/console/policies/default/diff?from=1&to=2",
                 "/console/policies/default/versions/2/activate"):
        response = client.get(path)
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert "<style" not in response.text and "style=" not in response.text
