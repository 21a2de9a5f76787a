"""Who is looking at the console, and the rules every console page obeys.

Signing in
    ``GET /console/sign-in`` shows a form for an API key; ``POST`` checks it
    (:func:`pdp.service.sessions.sign_in`: only ``auditor`` and ``admin`` keys) and
    sets the session cookie ``pdp_console``: 256 random bits, ``HttpOnly``,
    ``SameSite=Strict``, ``Path=/console``, ``Secure`` when the request came over
    TLS (behind a TLS-terminating proxy: set ``PDP_TRUSTED_PROXIES``), with the
    session's absolute expiry (``PDP_CONSOLE_SESSION_TTL``) as ``Max-Age``. The
    store keeps only its SHA-256. ``POST /console/sign-out`` ends the session.

CSRF
    Every ``POST`` carries a ``csrf_token`` form field: the session's token once
    signed in; on the sign-in form, the value of a short-lived ``pdp_console_signin``
    cookie (double submit, against login CSRF). A POST without a matching token,
    or with an ``Origin`` header of another site, is refused with 403 before any
    view runs. The cookies are ``SameSite=Strict`` as a second line.

Headers
    Every console response has a Content-Security-Policy with no inline script or
    style and nothing from another origin, ``X-Frame-Options: DENY``,
    ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` (not
    ``no-referrer``: with it, browsers send ``Origin: null`` on the console's own forms) and
    ``Cache-Control: no-store``.

Pages use :func:`page` (``@page("auditor")``, ``@page("admin")`` or ``@page()``
for any signed-in user): without a session the browser is sent to the sign-in form
(and back afterwards); with a session lacking the role it gets a 403 page.
Errors inside the console are HTML pages, never JSON.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from datetime import timedelta
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import (Blueprint, Response, abort, g, make_response, redirect, render_template,
                   request, url_for)
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException

from pdp.api.console.render import pretty_json
from pdp.api.context import services
from pdp.api.errors import status_of
from pdp.errors import PdpError
from pdp.service import sessions
from pdp.service.sessions import ConsoleSession
from pdp.store import StoreError
from pdp.store.models import utcnow

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")

SESSION_COOKIE = "pdp_console"
SIGNIN_COOKIE = "pdp_console_signin"
SIGNIN_COOKIE_AGE = 600
COOKIE_PATH = "/console"

CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                           "base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


# --------------------------------------------------------------------------- guards

def current_session() -> ConsoleSession | None:
    return g.get("console_session")


def page(role: str | None = None) -> Callable:
    """Guard a console view: signed in, and holding ``role`` when one is given."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            session = current_session()
            if session is None:
                target = request.full_path if request.query_string else request.path
                return redirect(url_for("console.sign_in_form", next=target), 303)
            if role is not None and not session.has_role(role):
                return error_page(403, "forbidden",
                                  f"This page needs the {role!r} role; you signed in "
                                  f"with the key {session.key_name!r}.")
            return view(*args, **kwargs)

        guarded.console_role = role
        return guarded

    return decorate


@bp.before_request
def _load_session() -> Response | None:
    if request.endpoint == "console.static":     # a stylesheet needs no session read
        return None
    g.console_session = sessions.current(services().db, request.cookies.get(SESSION_COOKIE))
    if request.method == "POST":
        return _check_csrf()
    return None


def _check_csrf() -> Response | None:
    origin = request.headers.get("Origin")
    # Host and port must be this service's (the scheme may differ behind a TLS proxy).
    if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
        log.warning("console: refused a POST from origin %r", origin[:200])
        return error_page(403, "csrf_failed", "This form was sent from another site.")
    sent = request.form.get("csrf_token", "")
    if request.endpoint == "console.sign_in":
        expected = request.cookies.get(SIGNIN_COOKIE, "")
    else:
        session = current_session()
        expected = session.csrf_token if session is not None else ""
    if not expected or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        return error_page(403, "csrf_failed",
                          "This form has expired or was not sent by the console. "
                          "Reload the page and try again.")
    return None


@bp.after_request
def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.app_template_global()
def csrf_field() -> Markup:
    """The hidden CSRF field of a form on a signed-in page."""
    session = current_session()
    token = session.csrf_token if session is not None else ""
    return Markup('<input type="hidden" name="csrf_token" value="%s">') % escape(token)


@bp.app_template_filter("console_json")
def _console_json(value) -> str:
    return pretty_json(value)


@bp.context_processor
def _template_context() -> dict:
    return {"console_session": current_session()}


# --------------------------------------------------------------------------- errors

def error_page(status: int, code: str, message: str) -> Response:
    response = make_response(render_template("console/error.html", status=status,
                                             code=code, message=message), status)
    return response


@bp.errorhandler(PdpError)
def _pdp_error(exc: PdpError) -> Response:
    status = status_of(exc)
    message = exc.message
    if isinstance(exc, StoreError):
        log.error("console: store unavailable: %s", exc)
        message = "The store is unavailable; try again shortly."
    return error_page(status, exc.code, message)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    return error_page(status, exc.name.lower().replace(" ", "_"),
                      exc.description or exc.name)


# --------------------------------------------------------------------------- sign-in

def _secure() -> bool:
    return request.is_secure


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path inside the console."""
    default = url_for("console.overview")
    if not target or len(target) > 2000:
        return default
    parts = urlsplit(target)
    inside = parts.path == COOKIE_PATH or parts.path.startswith(COOKIE_PATH + "/")
    if parts.scheme or parts.netloc or not inside or "\\" in target \
            or any(ord(c) < 0x20 for c in target):
        return default
    return target


@bp.get("/sign-in")
def sign_in_form():
    if current_session() is not None:
        return redirect(_safe_next(request.args.get("next")), 303)
    return _sign_in_page(200)


def _sign_in_page(status: int, message: str | None = None) -> Response:
    token = secrets.token_urlsafe(32)
    response = make_response(render_template(
        "console/sign_in.html", signin_token=token, message=message,
        next=_safe_next(request.values.get("next"))), status)
    response.set_cookie(SIGNIN_COOKIE, token, max_age=SIGNIN_COOKIE_AGE, path=COOKIE_PATH,
                        secure=_secure(), httponly=True, samesite="Strict")
    return response


@bp.post("/sign-in")
def sign_in():
    raw_key = (request.form.get("key") or "").strip()
    app = services()
    result = sessions.sign_in(app.db, raw_key,
                              ttl=timedelta(seconds=app.settings.console_session_ttl))
    if result is None:
        log.info("console: sign-in refused")
        return _sign_in_page(401, "This key cannot sign in to the console. Use an API key "
                                  "with the auditor or admin role.")
    session, token = result
    log.info("console: %s signed in", session.key_name)
    response = redirect(_safe_next(request.form.get("next")), 303)
    max_age = max(1, int((session.expires_at - utcnow()).total_seconds()))
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path=COOKIE_PATH,
                        secure=_secure(), httponly=True, samesite="Strict")
    response.delete_cookie(SIGNIN_COOKIE, path=COOKIE_PATH, secure=_secure(), httponly=True,
                           samesite="Strict")
    return response


@bp.post("/sign-out")
def sign_out():
    session = current_session()
    if session is None:
        abort(401)
    sessions.sign_out(services().db, request.cookies.get(SESSION_COOKIE))
    log.info("console: %s signed out", session.key_name)
    response = redirect(url_for("console.sign_in_form"), 303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, secure=_secure(), httponly=True,
                           samesite="Strict")
    return response


@bp.get("/<path:unknown>")
def not_found(unknown: str):
    """Any other console address: an HTML 404 page (not the API's JSON)."""
    return error_page(404, "not_found", "There is no such page in the console.")
