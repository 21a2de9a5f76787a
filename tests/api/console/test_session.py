"""Signing in to the console, staying signed in, signing out — and the rules that
guard every console page: cookie flags, CSRF, Origin, security headers, safe
redirects. On every storage backend."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from pdp.api.console.session import (CONTENT_SECURITY_POLICY, SESSION_COOKIE, SIGNIN_COOKIE)
from pdp.service import keys, sessions
from pdp.store.models import ConsoleSessionRow, utcnow
from tests.api.conftest import make_key

_TOKEN = re.compile(r'name="csrf_token" value="([^"]*)"')


def _signin_token(client) -> str:
    return _TOKEN.search(client.get("/console/sign-in").text).group(1)


def _sign_in(client, key, next_="/console/decisions"):
    return client.post("/console/sign-in", data={"csrf_token": _signin_token(client),
                                                 "key": key, "next": next_})


def _cookie_header(response, name) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(name + "="))


def _page_token(client, path="/console/policies") -> str:
    return _TOKEN.search(client.get(path).text).group(1)


# --------------------------------------------------------------------------- sign-in

def test_a_signed_out_visitor_is_sent_to_sign_in_and_back_afterwards(client, auditor_key):
    response = client.get("/console/decisions?subject=alice")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/console/sign-in?next=")
    response = _sign_in(client, auditor_key, "/console/decisions?subject=alice")
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/decisions?subject=alice"
    page = client.get("/console/decisions")
    assert page.status_code == 200
    assert "auditor-1 (auditor)" in page.text


@pytest.mark.parametrize("roles", [("auditor",), ("admin",), ("admin", "auditor")])
def test_auditor_and_admin_keys_may_sign_in(client, store, roles):
    key = make_key(store, "console-user", *roles)
    assert _sign_in(client, key).status_code == 303


@pytest.mark.parametrize("key", ["", "pdp_not-a-real-key-aaaaaaaaaaaaaaaaaaaaaaaa", "x" * 5000])
def test_an_unknown_or_malformed_key_is_refused(client, key):
    response = _sign_in(client, key)
    assert response.status_code == 401
    assert 'id="sign-in-error"' in response.text
    assert SESSION_COOKIE + "=" not in " ".join(response.headers.getlist("Set-Cookie"))


def test_a_decide_only_key_cannot_sign_in_and_hears_the_same_as_an_unknown_key(
        client, store):
    decide = make_key(store, "svc", "decide")
    refused = _sign_in(client, decide)
    unknown = _sign_in(client, "pdp_" + "A" * 43)
    assert refused.status_code == unknown.status_code == 401
    message = re.compile(r'id="sign-in-error"[^>]*>([^<]*)<')
    assert message.search(refused.text).group(1) == message.search(unknown.text).group(1)


def test_a_revoked_key_cannot_sign_in(client, store, auditor_key):
    keys.revoke_key(store, "auditor-1")
    assert _sign_in(client, auditor_key).status_code == 401


# --------------------------------------------------------------------------- the cookie

def test_the_session_cookie_is_httponly_samesite_strict_and_scoped_to_the_console(
        client, auditor_key):
    cookie = _cookie_header(_sign_in(client, auditor_key), SESSION_COOKIE)
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/console" in cookie
    assert re.search(r"Max-Age=(\d+)", cookie) and int(
        re.search(r"Max-Age=(\d+)", cookie).group(1)) <= 8 * 3600
    assert "Secure" not in cookie          # plain HTTP: a Secure cookie would never return


def test_over_tls_the_cookies_are_secure(app, auditor_key):
    client = app.test_client()
    page = client.get("/console/sign-in", base_url="https://pdp.example")
    assert "Secure" in _cookie_header(page, SIGNIN_COOKIE)
    token = _TOKEN.search(page.text).group(1)
    response = client.post("/console/sign-in", base_url="https://pdp.example",
                           data={"csrf_token": token, "key": auditor_key})
    assert response.status_code == 303
    assert "Secure" in _cookie_header(response, SESSION_COOKIE)


def test_the_store_keeps_only_a_hash_of_the_session_cookie(client, store, auditor_key):
    cookie = _cookie_header(_sign_in(client, auditor_key), SESSION_COOKIE)
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    with store.read() as session:
        rows = session.scalars(sa.select(ConsoleSessionRow)).all()
    assert len(rows) == 1
    assert rows[0].token_hash != value and value not in rows[0].token_hash
    assert len(value) >= 43                                   # 256 random bits


def test_a_forged_session_cookie_is_not_a_session(client):
    client.set_cookie(SESSION_COOKIE, "forged", path="/console")
    assert client.get("/console/decisions").status_code == 303


# --------------------------------------------------------------------------- ending

def test_sign_out_ends_the_session_for_good(client, auditor_key):
    _sign_in(client, auditor_key)
    cookie = client.get_cookie(SESSION_COOKIE, path="/console").value
    response = client.post("/console/sign-out", data={"csrf_token": _page_token(client)})
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/sign-in"
    assert client.get("/console/decisions").status_code == 303
    client.set_cookie(SESSION_COOKIE, cookie, path="/console")   # replaying the old cookie
    assert client.get("/console/decisions").status_code == 303


def test_revoking_the_key_ends_its_sessions_at_once(client, store, auditor_key):
    _sign_in(client, auditor_key)
    assert client.get("/console/decisions").status_code == 200
    keys.revoke_key(store, "auditor-1")
    assert client.get("/console/decisions").status_code == 303


def test_an_expired_session_is_over(client, store, auditor_key):
    _sign_in(client, auditor_key)
    with store.write() as session:
        session.execute(sa.update(ConsoleSessionRow).values(
            expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/console/decisions").status_code == 303


def test_signing_in_sweeps_expired_sessions(store, auditor_key):
    sessions.sign_in(store, auditor_key, ttl=timedelta(seconds=-1))
    sessions.sign_in(store, auditor_key)
    with store.read() as session:
        assert len(session.scalars(sa.select(ConsoleSessionRow)).all()) == 1


# --------------------------------------------------------------------------- CSRF

def test_a_post_without_the_csrf_token_is_refused(client, auditor_key):
    _sign_in(client, auditor_key)
    response = client.post("/console/sign-out", data={})
    assert response.status_code == 403
    assert 'data-code="csrf_failed"' in response.text
    assert client.get("/console/decisions").status_code == 200     # still signed in


def test_a_post_with_another_sessions_token_is_refused(app, store, auditor_key):
    first, second = app.test_client(), app.test_client()
    _sign_in(first, auditor_key)
    _sign_in(second, auditor_key)
    response = second.post("/console/sign-out", data={"csrf_token": _page_token(first)})
    assert response.status_code == 403


def test_a_post_from_another_origin_is_refused_even_with_the_token(client, auditor_key):
    _sign_in(client, auditor_key)
    response = client.post("/console/sign-out", data={"csrf_token": _page_token(client)},
                           headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert client.get("/console/decisions").status_code == 200


def test_sign_in_needs_the_token_of_its_own_form(client, auditor_key):
    # login CSRF: a site that posts its own key into the victim's browser
    response = client.post("/console/sign-in", data={"key": auditor_key})
    assert response.status_code == 403
    client.get("/console/sign-in")                                 # has a cookie now …
    response = client.post("/console/sign-in",                     # … but not its value
                           data={"key": auditor_key, "csrf_token": "guessed"})
    assert response.status_code == 403


# --------------------------------------------------------------------------- headers, redirects

@pytest.mark.parametrize("path", ["/console/sign-in", "/console/decisions"])
def test_every_console_page_has_the_security_headers(client, auditor_key, path):
    _sign_in(client, auditor_key)
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"


def test_console_pages_carry_no_inline_script_or_style(client, auditor_key):
    page = client.get("/console/sign-in").text
    assert "<script" not in page.lower()
    assert "style=" not in page.lower() and "<style" not in page.lower()


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/console",
                                    "/\\evil.example", "/v1/decisions", "javascript:alert(1)",
                                    "/console\r\nSet-Cookie: x=y"])
def test_sign_in_never_redirects_outside_the_console(client, auditor_key, target):
    response = _sign_in(client, auditor_key, target)
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/"


def test_the_stylesheet_is_served_by_pdp_itself(client):
    response = client.get("/console/static/console.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"


def test_an_unknown_console_address_is_an_html_404(client):
    response = client.get("/console/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert 'data-code="not_found"' in response.text


@pytest.mark.parametrize("origin", ["null", "http://localhost.evil.example", "http://localhost:81"])
def test_an_opaque_or_foreign_origin_is_refused(client, auditor_key, origin):
    _sign_in(client, auditor_key)
    response = client.post("/console/sign-out", data={"csrf_token": _page_token(client)},
                           headers={"Origin": origin})
    assert response.status_code == 403


def test_the_consoles_own_origin_is_accepted_also_behind_a_tls_proxy(client, auditor_key):
    _sign_in(client, auditor_key)
    for origin in ("http://localhost", "https://localhost"):
        token = _page_token(client)
        response = client.post("/console/sign-out", data={"csrf_token": token},
                               headers={"Origin": origin})
        assert response.status_code == 303
        _sign_in(client, auditor_key)


def test_the_session_lasts_as_long_as_the_operator_says(store, tmp_path):
    from pdp.api import create_app, services
    from pdp.config import Settings
    key = make_key(store, "short-lived", "auditor")
    app = create_app(Settings(database_url=store.url.render_as_string(hide_password=False),
                              audit_mode="off", console_session_ttl=60), store=store)
    try:
        cookie = _cookie_header(_sign_in(app.test_client(), key), SESSION_COOKIE)
        assert 55 <= int(re.search(r"Max-Age=(\d+)", cookie).group(1)) <= 60
    finally:
        services(app).active.stop()


@pytest.mark.parametrize("proxies, secure", [(0, False), (1, True)])
def test_behind_a_trusted_tls_proxy_the_cookie_is_secure(store, proxies, secure):
    from pdp.api import create_app, services
    from pdp.config import Settings
    key = make_key(store, "behind-proxy", "auditor")
    app = create_app(Settings(database_url=store.url.render_as_string(hide_password=False),
                              audit_mode="off", trusted_proxies=proxies), store=store)
    try:
        client = app.test_client()
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
        page = client.get("/console/sign-in", headers=forwarded)
        token = _TOKEN.search(page.text).group(1)
        response = client.post("/console/sign-in", headers=forwarded,
                               data={"csrf_token": token, "key": key})
        assert response.status_code == 303
        assert ("Secure" in _cookie_header(response, SESSION_COOKIE)) is secure
    finally:
        services(app).active.stop()
