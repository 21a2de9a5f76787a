"""The standard API: OpenID AuthZEN Authorization API 1.0 (role ``decide``).

==========================================  =========================================
``POST /access/v1/evaluation``              one access evaluation
``POST /access/v1/evaluations``             many, in order, with top-level defaults
``GET  /.well-known/authzen-configuration`` the PDP metadata document (no key)
==========================================  =========================================

An AuthZEN request maps onto pdp's request (``docs/authzen.md``):

* ``subject {type, id, properties}`` → the claims ``{**properties, sub: id, type}``
  (``sub`` and ``type`` always come from ``id`` and ``type``);
* ``resource {type, id, properties}`` → ``resource.type``, ``resource.id`` and the
  ``properties`` as the resource's attributes;
* ``action {name, properties}`` → ``action.name`` and the ``properties`` as the
  action's attributes;
* ``context`` → ``context`` (pdp sets ``context.time`` and ``context.caller``).

The PEP asserts the subject, so only keys allowed to pass claims
(``trusted_claims``) may call these routes (403 otherwise). The policy set is the
``X-PDP-Policy-Set`` header's, else ``default``. Every evaluation is decided by
:class:`~pdp.service.decisions.DecisionService` like any decision, and recorded.

The answer is ``{"decision": true|false, "context": {"decision_id": …}}``; a caller
that also has the ``admin`` role gets ``policies``, ``reasons`` and ``errors`` in the
context too. The ``X-Request-ID`` a PEP sends is echoed (AuthZEN §10.1).

Evaluations: ``evaluations`` items override the top-level ``subject``, ``action``,
``resource`` and ``context`` (each one whole, never merged); without items the
request is a single evaluation and is answered like one. ``options.evaluations_semantic``:
``execute_all`` (default) decides every item; ``deny_on_first_deny`` stops after the
first deny and ``permit_on_first_permit`` after the first permit, the answer holding
the items decided so far (the last one being the deny or permit). Every item is
validated before any is decided; at most ``PDP_MAX_BATCH_CHECKS`` items.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, g, request
from marshmallow import fields, validate

from pdp.api.auth import current_caller, require_role
from pdp.api.context import services
from pdp.api.errors import Forbidden
from pdp.api.json import read_object
from pdp.api.schemas import Strict, load
from pdp.errors import PdpError, RequestError
from pdp.service.decisions import (
    DEFAULT_SET,
    DecisionInput,
    DecisionOutcome,
    Subject,
    check_lengths,
)
from pdp.store.policies import validate_set_name

bp = Blueprint("authzen", __name__)

EVALUATION_PATH = "/access/v1/evaluation"
EVALUATIONS_PATH = "/access/v1/evaluations"
METADATA_PATH = "/.well-known/authzen-configuration"

#: The header that names the policy set (AuthZEN has no field for it).
POLICY_SET_HEADER = "X-PDP-Policy-Set"

EXECUTE_ALL = "execute_all"
DENY_ON_FIRST_DENY = "deny_on_first_deny"
PERMIT_ON_FIRST_PERMIT = "permit_on_first_permit"
SEMANTICS = (EXECUTE_ALL, DENY_ON_FIRST_DENY, PERMIT_ON_FIRST_PERMIT)

NO_STORE = {"Cache-Control": "no-store"}

#: An ``X-Request-ID`` echoed as sent: printable ASCII, not too long.
_ECHOABLE = re.compile(r"[\x20-\x7e]{1,512}")

_NON_EMPTY = validate.Length(min=1)


# --------------------------------------------------------------------------- schemas

class SubjectIn(Strict):
    type = fields.String(required=True, validate=_NON_EMPTY)
    id = fields.String(required=True, validate=_NON_EMPTY)
    properties = fields.Dict(keys=fields.String())


class ResourceIn(Strict):
    type = fields.String(required=True, validate=_NON_EMPTY)
    id = fields.String(required=True, validate=_NON_EMPTY)
    properties = fields.Dict(keys=fields.String())


class ActionIn(Strict):
    name = fields.String(required=True, validate=_NON_EMPTY)
    properties = fields.Dict(keys=fields.String())


class EvaluationRequest(Strict):
    subject = fields.Nested(SubjectIn, required=True)
    action = fields.Nested(ActionIn, required=True)
    resource = fields.Nested(ResourceIn, required=True)
    context = fields.Dict(keys=fields.String())


class EvaluationItem(Strict):
    """One item of ``evaluations``: each field, when present, replaces the default."""

    subject = fields.Nested(SubjectIn)
    action = fields.Nested(ActionIn)
    resource = fields.Nested(ResourceIn)
    context = fields.Dict(keys=fields.String())


class OptionsIn(Strict):
    evaluations_semantic = fields.String(load_default=EXECUTE_ALL,
                                         validate=validate.OneOf(SEMANTICS))


class EvaluationsRequest(EvaluationItem):
    evaluations = fields.List(fields.Nested(EvaluationItem))
    options = fields.Nested(OptionsIn)


# --------------------------------------------------------------------------- hooks

@bp.before_request
def _echo_request_id() -> None:
    """AuthZEN: the PDP echoes the PEP's ``X-Request-ID``; :mod:`pdp.api.logging`
    answers with ``g.request_id``, so it is set to the PEP's value as sent."""
    given = request.headers.get("X-Request-ID")
    if given is not None and _ECHOABLE.fullmatch(given):
        g.request_id = given


# --------------------------------------------------------------------------- views

@bp.post(EVALUATION_PATH)
@require_role("decide")
def evaluation():
    _require_trusted_claims()
    policy_set = _policy_set()
    body = load(_EVALUATIONREQUEST, _body())
    outcome = _decide(_input(body, policy_set))
    return answer(outcome), 200, NO_STORE


@bp.post(EVALUATIONS_PATH)
@require_role("decide")
def evaluations():
    _require_trusted_claims()
    policy_set = _policy_set()
    raw = _body()
    items, limit = raw.get("evaluations"), services().options.max_batch_checks
    if isinstance(items, list) and len(items) > limit:
        raise RequestError(f"evaluations: {len(items)} evaluations; at most {limit} may be "
                           "sent at once", field="evaluations", code="too_many_evaluations")
    body = load(_EVALUATIONSREQUEST, raw)
    items = body.get("evaluations") or []
    if not items:                               # AuthZEN: behaves as a single evaluation
        single = {name: body.get(name) for name in ("subject", "action", "resource")}
        for name, value in single.items():
            if value is None:
                raise RequestError(f"{name}: required field is missing (there are no "
                                   "evaluations)", field=name, code="missing_field")
        return answer(_decide(_input(body, policy_set))), 200, NO_STORE
    inputs = [_input(_merge(body, item, i), policy_set) for i, item in enumerate(items)]
    for i, decision_input in enumerate(inputs):     # every item, before deciding any
        check_lengths(decision_input.action, decision_input.resource_type,
                      decision_input.resource_id, f"evaluations[{i}].")
    semantic = (body.get("options") or {}).get("evaluations_semantic", EXECUTE_ALL)
    answers = []
    for decision_input in inputs:
        outcome = _decide(decision_input)
        answers.append(answer(outcome))
        if semantic == DENY_ON_FIRST_DENY and not outcome.allowed:
            break
        if semantic == PERMIT_ON_FIRST_PERMIT and outcome.allowed:
            break
    return {"evaluations": answers}, 200, NO_STORE


@bp.get(METADATA_PATH)
def metadata():
    """The PDP metadata (AuthZEN §9): absolute endpoint URLs, from ``PDP_PUBLIC_URL``
    or else from the request's scheme and host."""
    public_url = services().settings.public_url
    base = public_url or request.root_url.rstrip("/")
    headers = ({"Cache-Control": "public, max-age=300"} if public_url
               else {"Cache-Control": "no-store"})
    return {"policy_decision_point": base,
            "access_evaluation_endpoint": base + EVALUATION_PATH,
            "access_evaluations_endpoint": base + EVALUATIONS_PATH}, 200, headers


# --------------------------------------------------------------------------- helpers

def answer(outcome: DecisionOutcome) -> dict:
    """An AuthZEN decision: the boolean and, in ``context``, the decision id (and the
    determining policies, reasons and errors for administrators)."""
    context: dict[str, Any] = {"decision_id": outcome.decision_id}
    if current_caller().has_role("admin"):
        context["policies"] = list(outcome.policies)
        context["reasons"] = list(outcome.reasons)
        context["errors"] = [dict(e) for e in outcome.errors]
    return {"decision": outcome.allowed, "context": context}


def _require_trusted_claims() -> None:
    if not current_caller().trusted_claims:
        raise Forbidden("the AuthZEN API takes the subject as asserted by the caller: "
                        "only API keys allowed to pass claims (trusted_claims) may call it")


def _policy_set() -> str:
    name = request.headers.get(POLICY_SET_HEADER)
    if name is None:
        return DEFAULT_SET
    try:
        return validate_set_name(name)
    except PdpError as exc:
        raise RequestError(exc.message, field=POLICY_SET_HEADER,
                           code="invalid_policy_set_name") from None


def _body() -> dict:
    options = services().options
    return read_object(max_bytes=options.max_body_bytes, max_depth=options.max_json_depth)


def _merge(defaults: Mapping[str, Any], item: Mapping[str, Any], index: int) -> dict:
    """An item with the top-level defaults for what it leaves out."""
    merged = {}
    for name in ("subject", "action", "resource", "context"):
        value = item.get(name, defaults.get(name))
        if value is None and name != "context":
            raise RequestError(f"evaluations[{index}].{name}: required field is missing "
                               "(in the item and at the top level)",
                               field=f"evaluations[{index}].{name}", code="missing_field")
        merged[name] = value
    return merged


def _input(body: Mapping[str, Any], policy_set: str) -> DecisionInput:
    """An AuthZEN evaluation as pdp's :class:`DecisionInput` (see the module doc)."""
    subject, action, resource = body["subject"], body["action"], body["resource"]
    claims = {**(subject.get("properties") or {}), "sub": subject["id"],
              "type": subject["type"]}
    return DecisionInput(subject=Subject(claims=claims), action=action["name"],
                         resource_type=resource["type"], resource_id=resource["id"],
                         action_attributes=action.get("properties"),
                         resource_attributes=resource.get("properties"),
                         context=body.get("context"), policy_set=policy_set)


def _decide(decision_input: DecisionInput) -> DecisionOutcome:
    return services().decisions.decide(current_caller(), decision_input)


# Schemas are built once: building one costs more than the validation itself.
_EVALUATIONREQUEST = EvaluationRequest()
_EVALUATIONSREQUEST = EvaluationsRequest()
