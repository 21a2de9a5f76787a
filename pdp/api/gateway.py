"""Gateways: ``/v1/authz/http`` for nginx ``auth_request`` and Envoy ``ext_authz``.

A gateway asks, for each request it is about to pass to an upstream, whether to
pass it. ``docs/gateways.md`` has the tested nginx configuration and an Envoy one.

=========================================  ===============================================
the request to pdp                         what pdp takes from it
=========================================  ===============================================
``X-PDP-Key``                              the gateway's own API key (role ``decide``)
``Authorization: Bearer <token>``          the end user's token (absent: anonymous)
``X-Original-URI``, ``X-Original-Method``  nginx: the client's request target and method
                                           (nginx's subrequest is always a GET)
otherwise: its own method and the path     Envoy (HTTP mode, ``path_prefix:
after ``/v1/authz/http``, query kept       /v1/authz/http``)
``Host``                                   the client's host (nginx: ``proxy_set_header
                                           Host $host``)
``X-PDP-Policy-Set``                       the policy set (default ``default``)
=========================================  ===============================================

The decision is made by :class:`~pdp.service.decisions.DecisionService` (so it is
recorded) with ``resource.type = "http"``, ``resource.id`` = the path,
``resource.attributes = {path, method, host, query}`` and ``action.name`` = the
method. The path is percent-decoded (it is what the upstream will see); a path with
``.`` or ``..`` segments, control characters or bytes that are not UTF-8, or longer
than 1,024 characters once decoded, is refused without a decision, as is a target
that is not a path.

Answers (no body is needed; errors still carry the one JSON error shape):

======  ==============================================================================
200     allow; ``X-PDP-Decision-Id``, and with ``PDP_GATEWAY_SUBJECT_HEADERS=1``
        ``X-PDP-Subject``: the subject's ``sub`` (empty when anonymous, or when the
        ``sub`` is not printable ASCII)
401     deny, and the end-user token was missing or refused (``WWW-Authenticate:
        Bearer realm="pdp"``, with ``error="invalid_token"`` when refused) — or the
        gateway's own key is missing or unknown (``X-PDP-Key``)
403     deny; and every other failure: a key without ``decide``, a malformed request,
        an unknown policy set, a set without an active version, the store down, an
        internal error. Never a 5xx, because behind Envoy's ``failure_mode_allow`` a
        5xx from the authorization service lets the request through.
======  ==============================================================================
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_to_bytes, urlsplit

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import PathConverter

from pdp.api import errors
from pdp.api.context import services
from pdp.api.errors import Forbidden, Unauthenticated
from pdp.audit.record import TEXT_LIMITS
from pdp.errors import PdpError
from pdp.service.decisions import DEFAULT_SET, DecisionInput, DecisionOutcome, Subject
from pdp.store.policies import validate_set_name

log = logging.getLogger(__name__)

bp = Blueprint("gateway", __name__)

PREFIX = "/v1/authz/http"
KEY_HEADER = "X-PDP-Key"
POLICY_SET_HEADER = "X-PDP-Policy-Set"
DECISION_ID_HEADER = "X-PDP-Decision-Id"
SUBJECT_HEADER = "X-PDP-Subject"
RESOURCE_TYPE = "http"

#: Methods a gateway may ask about (OPTIONS and HEAD are decided like the others).
#: Another method is refused with 403 (never Flask's 405).
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: An HTTP method: an RFC 9110 token.
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}")
#: Longest request target (path and query) pdp decides on.
MAX_TARGET = 8192
#: Longest percent-decoded path: it is the decision's resource id, which the decision
#: log indexes (longer ones could not be recorded).
MAX_PATH = TEXT_LIMITS["resource_id"]
#: A ``sub`` that may be passed on in a header: printable ASCII.
_HEADER_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,1022}[\x21-\x7e])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

NO_STORE = {"Cache-Control": "no-store"}


class AnyPathConverter(PathConverter):
    """A path that may be empty (``/v1/authz/http/`` is a request for ``/``)."""

    regex = ".*"
    part_isolating = False


class Malformed(PdpError):
    """A gateway request pdp cannot decide on (answered 403)."""

    code = "invalid_request"


@bp.record_once
def _register_converter(state) -> None:
    state.app.url_map.converters["anypath"] = AnyPathConverter


# --------------------------------------------------------------------------- views

def _authorize() -> Response:
    caller = services().authenticator.authenticate(request.headers.get(KEY_HEADER))
    if caller is None:
        raise Unauthenticated(f"a valid gateway API key is required: {KEY_HEADER}: <key>")
    if not caller.has_role("decide"):
        raise Forbidden("this API key does not have the 'decide' role")
    g.caller = caller
    method, path, query = _target()
    token = _bearer_token()
    decision_input = DecisionInput(
        subject=Subject(token=token), action=method, resource_type=RESOURCE_TYPE,
        resource_id=path, resource_attributes={"path": path, "method": method,
                                               "host": request.host.lower(), "query": query},
        policy_set=_policy_set())
    outcome = services().decisions.decide(caller, decision_input)
    return _answer(outcome, token)


@bp.route(PREFIX, methods=METHODS, merge_slashes=False)
def authorize_root():
    return _authorize()


@bp.route(PREFIX + "/<anypath:rest>", methods=METHODS, merge_slashes=False)
def authorize(rest: str):
    return _authorize()


# The key comes from X-PDP-Key, not Authorization, so ``require_role`` is not used;
# the role is declared for the OpenAPI contract test all the same.
authorize_root.required_role = authorize.required_role = "decide"


# --------------------------------------------------------------------------- the request

def _target() -> tuple[str, str, str]:
    """``(method, path, query)`` of the client's request."""
    original_uri = request.headers.get("X-Original-URI")
    if original_uri is not None:                                 # nginx
        method = request.headers.get("X-Original-Method")
        if method is None:
            raise Malformed("X-Original-Method is required with X-Original-URI")
        target = original_uri
        if not target.startswith("/"):
            try:
                parts = urlsplit(target)
            except ValueError:
                parts = None
            if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
                raise Malformed("X-Original-URI must be a path (or an absolute http URL)")
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    else:                                                        # Envoy: after the prefix
        method = request.method
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
        if raw is None:
            raw = request.full_path if request.query_string else request.path
        raw_path, sep, raw_query = raw.partition("?")
        root = request.root_path + PREFIX
        if not raw_path.startswith(root):
            raise Malformed("the request path is not under " + PREFIX)
        target = (raw_path[len(root):] or "/") + (sep + raw_query)
    if not _METHOD.fullmatch(method):
        raise Malformed("the request method is not an HTTP method")
    return method, *_split_target(target)


def _split_target(target: str) -> tuple[str, str]:
    """``(decoded path, raw query)``; :class:`Malformed` for what cannot be decided."""
    if len(target) > MAX_TARGET:
        raise Malformed(f"the request target is longer than {MAX_TARGET} characters")
    if not target.startswith("/") or "#" in target or _CONTROL.search(target):
        raise Malformed("the request target must be a path without fragment or "
                        "control characters")
    raw_path, _, query = target.partition("?")
    try:
        path = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("the request path is not UTF-8 once percent-decoded") from None
    if _CONTROL.search(path):
        raise Malformed("the request path has control characters once percent-decoded")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise Malformed("the request path has '.' or '..' segments")
    if len(path) > MAX_PATH:
        raise Malformed(f"the request path is longer than {MAX_PATH} characters once "
                        "percent-decoded (the decision log's longest resource id)")
    if not query.isascii():
        raise Malformed("the query string is not ASCII")
    return path, query


def _bearer_token() -> str | None:
    """The end user's token, or ``None`` (no ``Authorization``, or not a bearer one)."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _policy_set() -> str:
    name = request.headers.get(POLICY_SET_HEADER)
    if name is None:
        return DEFAULT_SET
    try:
        return validate_set_name(name)
    except PdpError as exc:
        raise Malformed(exc.message) from None


# --------------------------------------------------------------------------- answers

def _answer(outcome: DecisionOutcome, token: str | None) -> Response:
    headers = {DECISION_ID_HEADER: outcome.decision_id, **NO_STORE}
    if outcome.allowed:
        response = Response(status=200, headers=headers, mimetype="text/plain")
        if services().settings.gateway_subject_headers:
            # Always sent, empty when there is no usable ``sub`` (anonymous), so that a
            # gateway that copies it to the upstream overwrites a client's own copy.
            sub = outcome.claims.get("sub")
            usable = isinstance(sub, str) and _HEADER_VALUE.fullmatch(sub)
            response.headers[SUBJECT_HEADER] = sub if usable else ""
        return response
    if token is None or outcome.token_error is not None:
        challenge = 'Bearer realm="pdp"'
        if outcome.token_error is not None:
            challenge += ', error="invalid_token"'
        return errors.error_response(
            401, "unauthenticated", "sign-in required: the request needs a valid token",
            headers={**headers, "WWW-Authenticate": challenge})
    return errors.error_response(403, "forbidden", "access denied", headers=headers)


@bp.errorhandler(PdpError)
@bp.errorhandler(HTTPException)
@bp.errorhandler(Exception)
def _refuse(exc: Exception) -> Response:
    """Every failure of the gateway endpoint is a 401 (no usable gateway key) or a
    403, never a 5xx (see the module docstring)."""
    if isinstance(exc, Unauthenticated):
        return errors.pdp_error_response(exc)
    if isinstance(exc, PdpError):
        status = errors.status_of(exc)
        if status >= 500:
            log.warning("gateway request refused (%s): %s", exc.code, exc)
        code = exc.code
    elif isinstance(exc, HTTPException):
        status, code = exc.code or 500, errors.HTTP_CODES.get(exc.code or 500, "http_error")
    else:
        log.exception("unexpected error on the gateway endpoint; denying", exc_info=exc)
        status, code = 500, "internal_error"
    if status >= 500:
        message = "access denied: the decision could not be made"
    elif isinstance(exc, PdpError):
        message = exc.message
    else:
        message = "access denied"
    return errors.error_response(403, code, message)


@bp.app_errorhandler(MethodNotAllowed)
def _method_not_allowed(exc: MethodNotAllowed) -> Response:
    """A method outside :data:`METHODS` on the gateway endpoint is a 403; elsewhere
    the usual 405."""
    if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
        return errors.error_response(403, "forbidden",
                                     "access denied: this HTTP method is not supported")
    return errors.http_error_response(exc)
