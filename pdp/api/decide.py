"""Deciding over HTTP (role ``decide``).

=============================  ===============================================
``POST /v1/decide``            one decision
``POST /decide``               the same (the name services already use)
``POST /v1/decide/batch``      one subject and context, many ``checks``, in order
=============================  ===============================================

The views only translate: the body is read strictly (:mod:`pdp.api.json`),
validated by the schemas below (400 naming the field), and handed to
:class:`~pdp.service.decisions.DecisionService`, whose answer is returned as is.
Refusals of the service map to statuses in :mod:`pdp.api.errors`: a set the key
may not use or claims from a key without ``trusted_claims`` → 403, an unknown
set → 404, a set without an active version → 503. A refused subject token is not
an HTTP error: it is a 200 ``deny`` naming the token error.
"""

from __future__ import annotations

from flask import Blueprint
from marshmallow import ValidationError, fields, validate, validates_schema

from pdp.api.auth import current_caller, require_role
from pdp.api.context import services
from pdp.api.json import read_object
from pdp.api.schemas import Strict, load
from pdp.errors import RequestError
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
    body = load(_DECIDEREQUEST, _body())
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
