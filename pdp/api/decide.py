"""Deciding over HTTP (role ``decide``).

=============================  ===============================================
``POST /v1/decide``            one decision
``POST /decide``               the same (the name services already use)
``POST /v1/decide/batch``      one subject and context, many ``checks``, in order
=============================  ===============================================

The views only translate: the body is read strictly (:mod:`pdp.api.json`),
validated by the schemas below (400 naming the field), and handed to
:class:`~pdp.service.decisions.DecisionService`, whose answer is returned as is.
A well-formed ``/v1/decide`` body is validated by hand (:func:`decide_input`, which
accepts a subset of what the schema accepts and builds the same input); any other
goes through the schema, whose error is the answer. The plain case of
``POST /v1/decide`` is answered in front of Flask by :class:`FastDecide` (same
answer, log line and metrics; everything else is left to the Flask route).
Refusals of the service map to statuses in :mod:`pdp.api.errors`: a set the key
may not use or claims from a key without ``trusted_claims`` → 403, an unknown
set → 404, a set without an active version → 503. A refused subject token is not
an HTTP error: it is a 200 ``deny`` naming the token error.
"""

from __future__ import annotations

import io
import json
import time

from flask import Blueprint, Flask, signals
from flask.json.provider import DefaultJSONProvider
from marshmallow import ValidationError, fields, validate, validates_schema
from werkzeug.exceptions import HTTPException

from pdp.api import errors as api_errors
from pdp.api import logging as request_logging
from pdp.api import metrics
from pdp.api.auth import current_caller, require_role
from pdp.api.context import EXTENSION, services
from pdp.api.json import parse_object, read_object
from pdp.api.schemas import Strict, load
from pdp.errors import PdpError, RequestError
from pdp.service.decisions import DEFAULT_SET, Check, DecisionInput, Subject

bp = Blueprint("decide", __name__)

NO_STORE = {"Cache-Control": "no-store"}

_NON_EMPTY = validate.Length(min=1)


# --------------------------------------------------------------------------- schemas

class SubjectIn(Strict):
    """``{"token": "<JWT>"}`` or ``{"claims": {...}}``, exactly one."""

    token = fields.String()
    claims = fields.Dict(keys=fields.String())

    @validates_schema
    def _one_of(self, data, **kwargs):
        if ("token" in data) == ("claims" in data):
            raise ValidationError("give exactly one of token and claims")


class ActionIn(Strict):
    name = fields.String(required=True, validate=_NON_EMPTY)
    attributes = fields.Dict(keys=fields.String())


class ActionField(fields.Field):
    """An action name, or ``{"name", "attributes"}``."""

    default_error_messages = {
        "invalid": "Must be an action name or an object with name and attributes.",
        "empty": "Must be a non-empty string.",
    }

    def _deserialize(self, value, attr, data, **kwargs) -> dict:
        if isinstance(value, str):
            if not value:
                raise self.make_error("empty")
            return {"name": value}
        if isinstance(value, dict):
            return ActionIn().load(value)
        raise self.make_error("invalid")


class ResourceIn(Strict):
    type = fields.String(required=True, validate=_NON_EMPTY)
    id = fields.String(required=True, validate=_NON_EMPTY)
    attributes = fields.Dict(keys=fields.String())


class CheckIn(Strict):
    action = ActionField(required=True)
    resource = fields.Nested(ResourceIn, required=True)


class DecideRequest(CheckIn):
    subject = fields.Nested(SubjectIn, required=True)
    context = fields.Dict(keys=fields.String())
    policy_set = fields.String(load_default=DEFAULT_SET)


class BatchRequest(Strict):
    subject = fields.Nested(SubjectIn, required=True)
    context = fields.Dict(keys=fields.String())
    policy_set = fields.String(load_default=DEFAULT_SET)
    checks = fields.List(fields.Nested(CheckIn), required=True, validate=_NON_EMPTY)


# --------------------------------------------------------------------------- views

@bp.post("/v1/decide")
@bp.post("/decide")
@require_role("decide")
def decide():
    raw = _body()
    request = decide_input(raw)
    if request is None:
        body = load(_DECIDEREQUEST, raw)
        request = DecisionInput.of(_subject(body["subject"]), _check(body),
                                   body.get("context"), body["policy_set"])
    outcome = _service().decide(current_caller(), request)
    return outcome.to_dict(), 200, NO_STORE


@bp.post("/v1/decide/batch")
@require_role("decide")
def decide_batch():
    raw = _body()
    checks, limit = raw.get("checks"), services().options.max_batch_checks
    if isinstance(checks, list) and len(checks) > limit:
        raise RequestError(f"checks: {len(checks)} checks; at most {limit} may be sent at once",
                           field="checks", code="too_many_checks")
    body = load(_BATCHREQUEST, raw)
    outcomes = _service().decide_batch(
        current_caller(), _subject(body["subject"]), body.get("context"),
        [_check(c) for c in body["checks"]], body["policy_set"])
    return {"decisions": [o.to_dict() for o in outcomes]}, 200, NO_STORE


# --------------------------------------------------------------------------- helpers

def _service():
    decisions = services().decisions
    if decisions is None:                       # pragma: no cover - create_app sets it
        raise RuntimeError("the decision service is not wired")
    return decisions


def _body() -> dict:
    options = services().options
    return read_object(max_bytes=options.max_body_bytes, max_depth=options.max_json_depth)


def _subject(subject: dict) -> Subject:
    return Subject(token=subject.get("token"), claims=subject.get("claims"))


def _check(body: dict) -> Check:
    action, resource = body["action"], body["resource"]
    return Check(action=action["name"], resource_type=resource["type"],
                 resource_id=resource["id"], action_attributes=action.get("attributes"),
                 resource_attributes=resource.get("attributes"))


# Schemas are built once: building one costs more than the validation itself.
_DECIDEREQUEST = DecideRequest()
_BATCHREQUEST = BatchRequest()


# --------------------------------------------------------------------------- by hand

_DECIDE_KEYS = frozenset({"subject", "action", "resource", "context", "policy_set"})
_ACTION_KEYS = frozenset({"name", "attributes"})
_RESOURCE_KEYS = frozenset({"type", "id", "attributes"})


#: What :func:`_optional_object` gives for a field that is there but not an object.
_INVALID = object()


def _optional_object(container: dict, key: str):
    """``container[key]`` when it is an object, ``None`` when the field is absent,
    else :data:`_INVALID` (``null`` included: the schema decides about it)."""
    if key not in container:
        return None
    value = container[key]
    return value if type(value) is dict else _INVALID


def decide_input(body: dict) -> DecisionInput | None:
    """The :class:`DecisionInput` of a ``/v1/decide`` body that :class:`DecideRequest`
    accepts, or ``None`` when the body is not one this check recognises as valid
    (then the schema decides, and names the field at fault). Marshmallow costs
    ~80 µs a request; this, a few. It accepts a subset of what the schema accepts
    and builds the same input: strings are ``str``, objects ``dict`` (as parsed from
    JSON), no unknown field, no ``null``."""
    if not (body.keys() <= _DECIDE_KEYS and "subject" in body and "action" in body
            and "resource" in body):
        return None
    subject = body["subject"]
    if type(subject) is not dict or len(subject) != 1:
        return None
    token = subject.get("token")
    claims = subject.get("claims")
    if token is not None:
        if type(token) is not str:
            return None
    elif type(claims) is not dict:
        return None
    action = body["action"]
    action_attributes = None
    if type(action) is dict:
        if not action.keys() <= _ACTION_KEYS:
            return None
        action_attributes = _optional_object(action, "attributes")
        action = action.get("name")
    if type(action) is not str or not action:
        return None
    resource = body["resource"]
    if type(resource) is not dict or not resource.keys() <= _RESOURCE_KEYS:
        return None
    rtype, rid = resource.get("type"), resource.get("id")
    if type(rtype) is not str or not rtype or type(rid) is not str or not rid:
        return None
    resource_attributes = _optional_object(resource, "attributes")
    context = _optional_object(body, "context")
    if _INVALID in (action_attributes, resource_attributes, context):
        return None
    policy_set = DEFAULT_SET
    if "policy_set" in body:
        policy_set = body["policy_set"]
        if type(policy_set) is not str:
            return None
    return DecisionInput(
        subject=Subject(token=token) if token is not None else Subject(claims=dict(claims)),
        action=action, resource_type=rtype, resource_id=rid,
        action_attributes=None if action_attributes is None else dict(action_attributes),
        resource_attributes=None if resource_attributes is None else dict(resource_attributes),
        context=None if context is None else dict(context), policy_set=policy_set)


# --------------------------------------------------------------------------- fast path

#: The paths of ``decide`` (the rule is the path).
_FAST_ROUTES = {"/v1/decide": "/v1/decide", "/decide": "/decide"}
_SIGNALS = (signals.request_started, signals.request_finished,
            signals.request_tearing_down, signals.got_request_exception,
            signals.appcontext_pushed, signals.appcontext_popped,
            signals.appcontext_tearing_down)


class FastDecide:
    """WSGI middleware in front of the Flask app: answers ``POST /v1/decide`` and
    ``POST /decide`` without Flask's request machinery (request context, routing,
    hooks, response object: about half of a decision's CPU), with the same effects
    as the Flask route — the same answer bytes and headers, the same request log
    line (:func:`pdp.api.logging.log_request`, with the request id on every record
    logged meanwhile), the same HTTP metrics, the same error answers
    (:mod:`pdp.api.errors`). It takes only the plain case: a JSON body of a size
    within the limit, a known key with the ``decide`` role, a body that
    :func:`parse_object` and :func:`decide_input` accept, the app's hooks being
    exactly pdp's own (request log, metrics, the watcher start of ``create_app``),
    no Flask signal receivers, no debug mode. Anything else — an unknown key, a bad
    body, a missing ``Content-Length`` — goes to the Flask app unchanged (the body
    already read is handed on), which answers it; nothing has happened yet then.

    Installed by the ``decide`` blueprint when it is registered (``create_app``);
    ``enabled = False`` sends everything to Flask (tests compare the two).
    """

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        self.enabled = True
        self._hooks_seen: tuple | None = None
        self._hooks_ok = False
        self._encode = None

    # -- is the plain path usable?

    def _usable(self) -> bool:
        app = self.app
        if not self.enabled or app.debug:
            return False
        hooks = (tuple(app.before_request_funcs.get(None, ())),
                 tuple(app.after_request_funcs.get(None, ())),
                 tuple(app.teardown_request_funcs.get(None, ())),
                 tuple(app.url_value_preprocessors.get(None, ())),
                 tuple(app.before_request_funcs.get(bp.name, ())),
                 tuple(app.after_request_funcs.get(bp.name, ())),
                 tuple(app.teardown_request_funcs.get(bp.name, ())),
                 tuple(app.url_value_preprocessors.get(bp.name, ())), app.json,
                 tuple((code, tuple(handlers.items())) for code, handlers
                       in app.error_handler_spec.get(None, {}).items()),
                 bool(app.error_handler_spec.get(bp.name)))
        if hooks != self._hooks_seen:
            self._hooks_ok = self._known(hooks)
            self._hooks_seen = hooks
        if not self._hooks_ok:
            return False
        for signal in _SIGNALS:
            if signal.receivers:
                return False
        return services(app).active.running

    def _known(self, hooks: tuple) -> bool:
        before, after, teardown, preprocessors, *blueprint, provider, handlers, bp_handlers = hooks
        if teardown or preprocessors or any(blueprint) or bp_handlers:
            return False
        # the handlers _error_response stands for (handlers of one HTTP status, such
        # as 405, concern HTTP errors that this path does not raise)
        if dict(handlers).get(None) != ((PdpError, api_errors.pdp_error_response),
                                        (HTTPException, api_errors.http_error_response),
                                        (Exception, api_errors.internal_error_response)):
            return False
        own_before = {request_logging._begin, metrics._start_timer}
        if not all(f in own_before or (f.__name__ == "_watch_active_policies"
                                       and f.__module__ == "pdp.api") for f in before):
            return False
        if not set(after) <= {request_logging._end, metrics._count_request}:
            return False
        if type(provider) is not DefaultJSONProvider or provider.compact is False:
            return False
        # what provider.response() writes: compact JSON, the provider's settings
        self._encode = json.JSONEncoder(
            ensure_ascii=provider.ensure_ascii, sort_keys=provider.sort_keys,
            separators=(",", ":"), default=provider.default).encode
        return True

    # -- WSGI

    def __call__(self, environ: dict, start_response):
        route = _FAST_ROUTES.get(environ.get("PATH_INFO"))
        if route is None or environ.get("REQUEST_METHOD") != "POST" or not self._usable():
            return self.wsgi_app(environ, start_response)
        return self._decide(environ, start_response, route)

    def _decide(self, environ: dict, start_response, route: str):
        started = time.perf_counter()
        svc = self.app.extensions[EXTENSION]
        length = environ.get("CONTENT_LENGTH")
        if (environ.get("CONTENT_TYPE") != "application/json" or not length
                or not length.isdigit() or environ.get("HTTP_TRANSFER_ENCODING")):
            return self.wsgi_app(environ, start_response)
        size = int(length)
        if not 0 < size <= svc.options.max_body_bytes:
            return self.wsgi_app(environ, start_response)
        request_id = request_logging.request_id_of(environ.get("HTTP_X_REQUEST_ID"))
        token = request_logging.current_request_id.set(request_id)
        try:
            caller = svc.authenticator.authenticate(_bearer(environ))
        except Exception:                       # e.g. the store is down: Flask answers
            caller = None
        finally:
            request_logging.current_request_id.reset(token)
        if caller is None or not caller.has_role("decide"):
            return self.wsgi_app(environ, start_response)
        try:
            raw = environ["wsgi.input"].read(size)
        except Exception:                       # the client went away: Flask answers
            raw = b""
        try:
            decision_input = (decide_input(parse_object(raw, max_depth=svc.options.max_json_depth))
                              if len(raw) == size else None)
        except PdpError:
            decision_input = None
        if decision_input is None:
            environ["wsgi.input"] = io.BytesIO(raw)
            return self.wsgi_app(environ, start_response)

        token = request_logging.current_request_id.set(request_id)
        try:
            writer = self.app.extensions.get("pdp.audit")
            try:
                if writer is not None:
                    writer.start()              # no-op once running in this process
                outcome = svc.decisions.decide(caller, decision_input)
                status, reason = 200, "200 OK"
                payload = (self._encode(outcome.to_dict()) + "\n").encode()
                headers = [("Content-Type", "application/json"),
                           ("Content-Length", str(len(payload))),
                           ("Cache-Control", "no-store")]
            except Exception as exc:
                with self.app.app_context():
                    response = _error_response(exc)
                status, reason = response.status_code, response.status
                payload = response.get_data()
                headers = list(response.headers.items())
            headers.append(("X-Request-Id", request_id))
            seconds = time.perf_counter() - started
            metrics.observe_request("POST", route, status, seconds)
            request_logging.log_request(
                request_id=request_id, method="POST", path=route, route=route,
                status=status, duration_ms=round(seconds * 1000, 3), caller=caller.name,
                remote_addr=environ.get("REMOTE_ADDR"))
        finally:
            request_logging.current_request_id.reset(token)
        start_response(reason, headers)
        return [payload]


def _bearer(environ: dict) -> str | None:
    """:func:`pdp.api.auth.bearer_key` on a WSGI environ."""
    scheme, _, key = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key.strip() or None


def _error_response(exc: Exception):
    """What the app's error handlers (:func:`pdp.api.errors.register_error_handlers`)
    answer for ``exc``."""
    if isinstance(exc, PdpError):
        return api_errors.pdp_error_response(exc)
    if isinstance(exc, HTTPException):
        return api_errors.http_error_response(exc)
    return api_errors.internal_error_response(exc)


@bp.record_once
def _install_fast_path(state) -> None:
    state.app.wsgi_app = FastDecide(state.app, state.app.wsgi_app)
