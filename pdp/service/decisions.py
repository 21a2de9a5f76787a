"""Deciding: the use case behind ``POST /v1/decide``, its batch form, AuthZEN and
the gateway endpoint. No HTTP here: errors are :class:`~pdp.errors.PdpError`
subclasses that the API maps to status codes.

:class:`DecisionService` takes a caller (an authenticated
:class:`~pdp.store.keys.Caller`) and a :class:`DecisionInput`, and answers a
:class:`DecisionOutcome`, in this order:

1. the policy set name is checked (``RequestError`` ``invalid_policy_set_name``,
   field ``policy_set``), then whether the caller may use it
   (:class:`~pdp.errors.Forbidden`);
2. claims given directly (without a token) are refused unless the caller is
   allowed to assert them (``trusted_claims``; :class:`~pdp.errors.Forbidden`);
3. the active version of the set is taken from
   :class:`~pdp.service.active.ActivePolicies` (no database round trip). When
   there is none, and only then, the store is asked whether the set exists:
   :class:`~pdp.errors.NotFound` ``policy_set_not_found`` if it does not,
   :class:`~pdp.errors.Unavailable` ``no_active_version`` if it does. Neither is
   a decision (nothing is recorded) and neither is ever an allow;
4. the subject token is verified; an invalid, expired or unverifiable token is a
   ``deny`` that names the :class:`~pdp.api.tokens.TokenError` code in
   ``errors`` without evaluating any policy. It is a decision: it is recorded;
5. ``context.time`` (the decision time, a :class:`~pdp.lang.values.Timestamp`)
   and ``context.caller`` (the caller's name) are set by pdp and replace whatever
   the request said, so a caller can neither forge its identity nor choose the
   clock policies see;
6. the policy set decides (:meth:`PolicySet.decide` never raises; its errors are
   reported with the policy id, and errors never grant); any unexpected failure
   is a ``deny`` with an ``internal_error``, never an allow;
7. the outcome is handed to the :class:`DecisionSink` (the decision log), which
   the service does not otherwise know. If recording fails the decision is not
   answered: :class:`~pdp.errors.Unavailable` ``decision_not_recorded`` (503),
   because an answered decision must never be missing from the log (in a batch,
   the checks recorded before the failure stay recorded; none is answered). The
   raw subject token is never handed to the sink.

A subject with neither token nor claims is anonymous: the claims are ``{}``
(the gateway endpoint uses this when a request carries no end-user token; the
JSON API requires one of the two).

:meth:`DecisionService.decide_batch` verifies the token once and decides every
check in order, each with its own decision id and record.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from pdp.audit.record import TEXT_LIMITS
from pdp.errors import Forbidden, NotFound, PdpError, RequestError, Unavailable
from pdp.lang.values import Timestamp
from pdp.store import policies as repo
from pdp.store.db import Database
from pdp.store.keys import Caller
from pdp.store.policies import validate_set_name

log = logging.getLogger(__name__)

DEFAULT_SET = "default"

__all__ = [
    "Check", "DecisionInput", "DecisionOutcome", "DecisionService", "DecisionSink",
    "NullSink", "Subject", "TokenVerifierLike", "new_decision_id", "policy_set_exists",
]


# --------------------------------------------------------------------------- ids

def new_decision_id() -> str:
    """A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random
    bits. Time-ordered, so decision-log keys sort by time; unique by randomness."""
    ms = time.time_ns() // 1_000_000
    # Decision ids are keys, not secrets: the process's PRNG (seeded from the OS and
    # reseeded after fork) gives unique bits without a system call that would hand
    # the interpreter to another thread on the hot path.
    rand = random.getrandbits(80)                           # 80 bits, 74 used
    rand_a = rand >> 68 & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"                                     # = str(uuid.UUID(int=value))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def policy_set_exists(db: Database, name: str) -> bool:
    """Whether a policy set named ``name`` was ever published (for ``set_exists``)."""
    with db.read() as session:
        return repo.find_set(session, name) is not None


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------- input

@dataclass(frozen=True, slots=True)
class Subject:
    """The end user: a token to verify, or claims asserted by a trusted caller.

    Neither: an anonymous subject (claims ``{}``). Both: refused.
    """

    token: str | None = field(default=None, repr=False)
    claims: Mapping[str, Any] | None = None

    @property
    def anonymous(self) -> bool:
        return self.token is None and self.claims is None


@dataclass(frozen=True, slots=True)
class Check:
    """One action on one resource (an entry of a batch)."""

    action: str
    resource_type: str
    resource_id: str
    action_attributes: Mapping[str, Any] | None = None
    resource_attributes: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """One decision request, as the service takes it (the API builds it from JSON).

    ``context`` is what the caller sent; ``time`` and ``caller`` in it are replaced.
    """

    subject: Subject
    action: str
    resource_type: str
    resource_id: str
    action_attributes: Mapping[str, Any] | None = None
    resource_attributes: Mapping[str, Any] | None = None
    context: Mapping[str, Any] | None = None
    policy_set: str = DEFAULT_SET

    @classmethod
    def of(cls, subject: Subject, check: Check, context: Mapping[str, Any] | None = None,
           policy_set: str = DEFAULT_SET) -> DecisionInput:
        return cls(subject=subject, action=check.action, resource_type=check.resource_type,
                   resource_id=check.resource_id, action_attributes=check.action_attributes,
                   resource_attributes=check.resource_attributes, context=context,
                   policy_set=policy_set)

    @property
    def check(self) -> Check:
        return Check(self.action, self.resource_type, self.resource_id,
                     self.action_attributes, self.resource_attributes)


# --------------------------------------------------------------------------- outcome

@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    """A decision as answered and recorded.

    ``errors`` are evaluation errors (``{code, message, policy}``) and token errors
    (``{code, message}``, ``policy`` absent). ``claims`` are the claims the
    policies saw (verified from the token, or as asserted; ``{}`` when the token
    was refused). ``context`` is the context the policies saw (with pdp's
    ``time`` as RFC 3339 text and ``caller``). ``evaluation_us`` is the time spent
    verifying and evaluating, in microseconds; ``time`` the decision time.
    """

    decision_id: str
    decision: str
    policy_set: str
    policy_version: int
    policies: tuple[str, ...]
    reasons: tuple[str, ...]
    errors: tuple[Mapping[str, Any], ...]
    claims: Mapping[str, Any]
    context: Mapping[str, Any]
    evaluation_us: int
    time: datetime
    caller: str
    #: The code of the token error when the subject token was refused, else ``None``.
    token_error: str | None = None
    #: Where the subject came from: ``token``, ``claims`` or ``anonymous``.
    subject_source: str = "claims"

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    def to_dict(self) -> dict:
        """The answer of ``POST /v1/decide``."""
        return {"decision": self.decision, "decision_id": self.decision_id,
                "policy_set": self.policy_set, "policy_version": self.policy_version,
                "policies": list(self.policies), "reasons": list(self.reasons),
                "errors": [dict(e) for e in self.errors]}


# --------------------------------------------------------------------------- collaborators

class TokenVerifierLike(Protocol):
    def verify(self, token: str) -> dict: ...


class DecisionSink(Protocol):
    """Where decisions go once made (the decision log). ``record`` is called once
    per answered decision, before it is answered. The raw token never reaches it:
    ``input.subject`` carries no token (``outcome.subject_source`` says whether
    there was one, ``outcome.claims`` are the claims it yielded)."""

    def record(self, outcome: DecisionOutcome, input: DecisionInput, caller: Caller) -> None: ...


class NullSink:
    """Records nothing (the default; tests and embedding)."""

    def record(self, outcome: DecisionOutcome, input: DecisionInput, caller: Caller) -> None:
        return None


class _NoVerifier:
    def verify(self, token: str) -> dict:
        raise PdpError("no token verification keys are configured", code="unknown_key")


# --------------------------------------------------------------------------- the service

class DecisionService:
    """Decides requests with the active policy versions; see the module docstring.

    ``active``      :class:`~pdp.service.active.ActivePolicies` (or anything with
                    ``find(set) -> (version, PolicySet) | None``)
    ``verifier``    ``verify(token) -> claims``, raising a :class:`PdpError` with a
                    token error code; ``None``: every token is refused (``unknown_key``)
    ``sink``        a :class:`DecisionSink`; :class:`NullSink` by default
    ``set_exists``  ``set_exists(name) -> bool``, asked only when a set has no
                    active version (404 vs 503); ``None``: such a set is unknown (404)
    ``clock``       the decision time, an aware ``datetime``
    ``id_factory``  decision ids (:func:`new_decision_id`)
    """

    def __init__(self, active: Any, verifier: TokenVerifierLike | None = None,
                 sink: DecisionSink | None = None, *,
                 set_exists: Callable[[str], bool] | None = None,
                 clock: Callable[[], datetime] = _now,
                 id_factory: Callable[[], str] = new_decision_id):
        self.active = active
        self.verifier = verifier if verifier is not None else _NoVerifier()
        self.sink = sink if sink is not None else NullSink()
        self._set_exists = set_exists
        self._clock = clock
        self._new_id = id_factory

    # ------------------------------------------------------------------ public

    def decide(self, caller: Caller, request: DecisionInput) -> DecisionOutcome:
        """One decision (see the module docstring for the order of the checks)."""
        version, policies = self._admit(caller, request.subject, request.policy_set)
        check_lengths(request.action, request.resource_type, request.resource_id)
        claims, token_error, verify_us = self._verify(request.subject)
        return self._decide_one(caller, request, version, policies, claims, token_error,
                                verify_us)

    def decide_batch(self, caller: Caller, subject: Subject,
                     context: Mapping[str, Any] | None, checks: Sequence[Check],
                     policy_set: str = DEFAULT_SET) -> list[DecisionOutcome]:
        """One decision per check, in order; the subject's token is verified once.

        All checks are decided with the same policy-set version. The limit on the
        number of checks is the caller's (the API's) to enforce.
        """
        version, policies = self._admit(caller, subject, policy_set)
        for i, check in enumerate(checks):      # the whole batch, before deciding any
            check_lengths(check.action, check.resource_type, check.resource_id,
                           f"checks[{i}].")
        claims, token_error, verify_us = self._verify(subject)
        outcomes = []
        for i, check in enumerate(checks):
            request = DecisionInput.of(subject, check, context, policy_set)
            outcomes.append(self._decide_one(caller, request, version, policies, claims,
                                             token_error, verify_us if i == 0 else 0))
        return outcomes

    def verify_subject(self, subject: Subject) -> tuple[dict, dict | None]:
        """``(claims, token error or None)`` for ``subject``, without deciding."""
        claims, error, _ = self._verify(subject)
        return claims, error

    # ------------------------------------------------------------------ steps

    def _admit(self, caller: Caller, subject: Subject, policy_set: str):
        """Steps 1-3: the set, the caller's rights, the active version."""
        try:
            validate_set_name(policy_set)
        except PdpError as exc:
            raise RequestError(exc.message, field="policy_set",
                               code="invalid_policy_set_name") from None
        if not caller.may_use(policy_set):
            raise Forbidden(f"this API key may not use the policy set {policy_set!r}")
        if subject.token is not None and subject.claims is not None:
            raise RequestError("subject: give a token or claims, not both", field="subject",
                               code="invalid_subject")
        if subject.claims is not None and not caller.trusted_claims:
            raise Forbidden("this API key may not pass claims directly; pass the end "
                            "user's token (subject.token)")
        active = self.active.find(policy_set)
        if active is None:
            catch_up = getattr(self.active, "catch_up", None)
            if catch_up is not None:          # activated a moment ago elsewhere?
                catch_up()
                active = self.active.find(policy_set)
        if active is None:
            if self._set_exists is not None and self._set_exists(policy_set):
                raise Unavailable(f"policy set {policy_set!r} has no active version",
                                  code="no_active_version")
            raise NotFound(f"no policy set named {policy_set!r}", code="policy_set_not_found")
        return active

    def _verify(self, subject: Subject) -> tuple[dict, dict | None, int]:
        """``(claims, token error, µs spent)``; the claims are ``{}`` on an error."""
        if subject.token is None:
            return dict(subject.claims or {}), None, 0
        started = time.perf_counter_ns()
        try:
            claims = self.verifier.verify(subject.token)
            if not isinstance(claims, dict):
                raise PdpError("the token's claims are not an object", code="token_invalid")
            error = None
        except PdpError as exc:
            claims, error = {}, {"code": exc.code, "message": exc.message}
        except Exception as exc:              # a verifier bug: a deny, never a 500 or allow
            log.exception("unexpected %s while verifying a subject token", type(exc).__name__)
            claims, error = {}, {"code": "token_invalid",
                                 "message": "the token could not be verified"}
        return claims, error, (time.perf_counter_ns() - started) // 1000

    def _decide_one(self, caller: Caller, request: DecisionInput, version: int, policies,
                    claims: dict, token_error: dict | None, verify_us: int) -> DecisionOutcome:
        now = self._clock()
        context = dict(request.context or {})
        context["time"] = Timestamp.from_datetime(now)
        context["caller"] = caller.name
        started = time.perf_counter_ns()
        if token_error is not None:
            decision, determining, reasons = "deny", [], []
            errors = [token_error]
        else:
            decision, determining, reasons, errors = self._evaluate(
                policies, claims, request, context)
        elapsed = verify_us + (time.perf_counter_ns() - started) // 1000
        outcome = DecisionOutcome(
            decision_id=self._new_id(), decision=decision, policy_set=request.policy_set,
            policy_version=version, policies=tuple(determining), reasons=tuple(reasons),
            errors=tuple(errors), claims=claims,
            context={**context, "time": context["time"].isoformat()},
            evaluation_us=elapsed, time=now, caller=caller.name,
            token_error=None if token_error is None else token_error["code"],
            subject_source=_source(request.subject))
        try:
            self.sink.record(outcome, _without_token(request), caller)
        except Exception as exc:
            log.exception("decision %s could not be recorded; not answering it",
                          outcome.decision_id)
            raise Unavailable("the decision could not be recorded; try again later",
                              code="decision_not_recorded") from exc
        return outcome

    @staticmethod
    def _evaluate(policies, claims: dict, request: DecisionInput, context: dict):
        """``(decision, policies, reasons, errors)``; never raises, never allows on error."""
        action: Any = request.action
        if request.action_attributes:
            action = {"name": request.action, "attributes": dict(request.action_attributes)}
        resource = {"type": request.resource_type, "id": request.resource_id}
        if request.resource_attributes:
            resource["attributes"] = dict(request.resource_attributes)
        engine_request = {"subject": claims, "action": action, "resource": resource,
                          "context": context}
        try:
            result = policies.decide(engine_request)
            decision = "allow" if result.decision == "allow" else "deny"
            errors = [_error(e) for e in result.errors]
            return decision, list(result.policies), list(result.reasons), errors
        except Exception as exc:             # the engine never raises; if it did: deny
            log.exception("unexpected %s while deciding", type(exc).__name__)
            return "deny", [], [], [{"code": "internal_error",
                                     "message": "internal error while deciding"}]


def _source(subject: Subject) -> str:
    if subject.token is not None:
        return "token"
    return "anonymous" if subject.claims is None else "claims"


def check_lengths(action: str, resource_type: str, resource_id: str, prefix: str = "") -> None:
    """The decision log indexes these (:data:`~pdp.audit.record.TEXT_LIMITS`): a
    longer one is refused (400 naming it), never answered and then unrecordable."""
    for name, key, value in (("action", "action", action),
                             ("resource.type", "resource_type", resource_type),
                             ("resource.id", "resource_id", resource_id)):
        limit = TEXT_LIMITS[key]
        if len(value) > limit:
            raise RequestError(f"{name}: at most {limit} characters ({len(value)} given)",
                               field=prefix + name, code="invalid_field")


def _without_token(request: DecisionInput) -> DecisionInput:
    """``request`` as the sink sees it: the raw token is never recorded."""
    if request.subject.token is None:
        return request
    return DecisionInput(Subject(), request.action, request.resource_type, request.resource_id,
                         request.action_attributes, request.resource_attributes,
                         request.context, request.policy_set)


def _error(e: Mapping[str, Any]) -> dict:
    """An engine error as answered: code, message and (when known) the policy."""
    out = {"code": str(e.get("code", "error")), "message": str(e.get("message", ""))}
    if e.get("policy") is not None:
        out["policy"] = e["policy"]
    return out
