"""Deciding in-process: :class:`EmbeddedDecider`, with the same ``decide`` as
:class:`~pdp_client.PdpClient`, so that ``@require`` and the WSGI middleware take
either.

It is a :class:`~pdp.service.decisions.DecisionService` — the very use case
behind ``POST /v1/decide`` — over policies held in this process:

* ``policies=`` a compiled :class:`~pdp.engine.policyset.PolicySet` (or a mapping
  ``{set name: PolicySet}``), or ``policy_dir=`` a directory of policies (compiled
  once; their version number is ``0``);
* otherwise ``store=``: the active versions of the store, kept current by the
  same watcher the server uses (:class:`~pdp.service.active.ActivePolicies`).

When ``store`` is given, every decision is written to that store's decision log
through the server's own :class:`~pdp.audit.writer.AuditWriter` (``audit_mode``
``async`` or ``durable``; ``off`` records nothing), with the same hash chain,
spill file and redaction. Without a store nothing is recorded.

End users: ``token=`` is verified with ``verifier`` (a
:class:`~pdp.api.tokens.TokenVerifier`); without one every token is refused
(``unknown_key``), as in the server. ``claims=`` are taken as given: the embedding
service is trusted to assert them (its caller has ``trusted_claims``).

Like the client it fails closed: any failure (unknown set, no active version, the
decision not recorded in ``durable`` mode) is a ``deny`` without decision id, or
:class:`~pdp_client.PdpUnavailable` with ``raise_on_error``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from pdp_client import Decision, PdpUnavailable
from pdp.engine.policyset import PolicySet
from pdp.errors import PdpError
from pdp.service.active import ActivePolicies, ActiveVersion
from pdp.service.decisions import (
    DEFAULT_SET,
    Check,
    DecisionInput,
    DecisionOutcome,
    DecisionService,
    DecisionSink,
    NullSink,
    Subject,
    TokenVerifierLike,
    policy_set_exists,
)
from pdp.store.db import Database
from pdp.store.keys import Caller

log = logging.getLogger(__name__)

__all__ = ["EmbeddedDecider"]


class _Static:
    """Fixed policy sets, as :class:`ActivePolicies` offers them (``find``)."""

    def __init__(self, sets: Mapping[str, PolicySet]):
        self._sets = {name: ActiveVersion(0, policies) for name, policies in sets.items()}

    def find(self, policy_set: str = DEFAULT_SET) -> ActiveVersion | None:
        return self._sets.get(policy_set)


class EmbeddedDecider:
    """See the module docstring. ``caller`` names this service in the decision log."""

    def __init__(self, policies: PolicySet | Mapping[str, PolicySet] | None = None, *,
                 policy_dir: str | os.PathLike | None = None, store: Database | None = None,
                 verifier: TokenVerifierLike | None = None, policy_set: str = DEFAULT_SET,
                 caller: str = "embedded", audit_mode: str = "async",
                 spill_dir: str | os.PathLike = "var/audit-spill",
                 redact: Iterable[str] = (), sink: DecisionSink | None = None,
                 poll_interval: float | None = None, raise_on_error: bool = False):
        if policies is not None and policy_dir is not None:
            raise TypeError("give policies= or policy_dir=, not both")
        if policy_dir is not None:
            from pdp.engine.compiler import load_policy_dir
            policies = load_policy_dir(policy_dir)
        self._active_policies: ActivePolicies | None = None
        if policies is not None:
            sets = policies if isinstance(policies, Mapping) else {policy_set: policies}
            active: Any = _Static(sets)
            set_exists = None
        elif store is not None:
            self._active_policies = ActivePolicies(store, poll_interval=poll_interval).start()
            active = self._active_policies
            set_exists = lambda name: policy_set_exists(store, name)   # noqa: E731
        else:
            raise TypeError("EmbeddedDecider needs policies=, policy_dir= or store=")
        self.writer = None
        if sink is None and store is not None and audit_mode != "off":
            from pdp.audit.writer import AuditWriter
            self.writer = AuditWriter(store, mode=audit_mode, spill_dir=spill_dir,
                                      redact=redact)
            sink = self.writer
        self.service = DecisionService(active, verifier, sink if sink is not None else NullSink(),
                                       set_exists=set_exists)
        self.caller = Caller(name=caller, roles=frozenset({"decide"}), trusted_claims=True)
        self.policy_set = policy_set
        self.raise_on_error = raise_on_error

    # ------------------------------------------------------------------ deciding

    def decide(self, action: str | Mapping[str, Any], resource: Mapping[str, Any], *,
               token: str | None = None, claims: Mapping[str, Any] | None = None,
               context: Mapping[str, Any] | None = None, policy_set: str | None = None,
               raise_on_error: bool | None = None) -> Decision:
        """As :meth:`pdp_client.PdpClient.decide`, in this process."""
        request = DecisionInput.of(_subject(token, claims), _check(action, resource), context,
                                   policy_set or self.policy_set)
        try:
            outcome = self.service.decide(self.caller, request)
        except Exception as exc:
            return self._fail(exc, raise_on_error)
        return _decision(outcome)

    def decide_batch(self, checks: Iterable[Any], *, token: str | None = None,
                     claims: Mapping[str, Any] | None = None,
                     context: Mapping[str, Any] | None = None, policy_set: str | None = None,
                     raise_on_error: bool | None = None) -> list[Decision]:
        """As :meth:`pdp_client.PdpClient.decide_batch`, in this process."""
        subject = _subject(token, claims)
        items = [_check(c["action"], c["resource"]) if isinstance(c, Mapping) else _check(*c)
                 for c in checks]
        if not items:
            return []
        try:
            outcomes = self.service.decide_batch(self.caller, subject, context, items,
                                                 policy_set or self.policy_set)
        except Exception as exc:
            return [self._fail(exc, raise_on_error)] * len(items)
        return [_decision(o) for o in outcomes]

    def allowed(self, action: str | Mapping[str, Any], resource: Mapping[str, Any],
                **kwargs: Any) -> bool:
        return self.decide(action, resource, **kwargs).allowed

    # ------------------------------------------------------------------ lifecycle

    def flush(self, timeout: float = 10.0) -> bool:
        """Write the queued decision-log records now (``True`` when all were)."""
        return self.writer.flush(timeout) if self.writer is not None else True

    def close(self) -> None:
        """Write what is queued and stop the writer and the policy watcher."""
        if self.writer is not None:
            self.writer.close()
        if self._active_policies is not None:
            self._active_policies.stop()

    def __enter__(self) -> EmbeddedDecider:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fail(self, exc: Exception, raise_on_error: bool | None) -> Decision:
        if isinstance(exc, PdpError):
            code, message = exc.code, exc.message
        else:
            log.exception("unexpected %s while deciding in-process; denying",
                          type(exc).__name__)
            code, message = "internal_error", "internal error while deciding"
        if self.raise_on_error if raise_on_error is None else raise_on_error:
            raise PdpUnavailable(message, code=code) from exc
        return Decision.failed(code, message)


def _subject(token: str | None, claims: Mapping[str, Any] | None) -> Subject:
    if (token is None) == (claims is None):
        raise TypeError("give exactly one of token= and claims=")
    return Subject(token=token) if token is not None else Subject(claims=dict(claims))


def _check(action: str | Mapping[str, Any], resource: Mapping[str, Any]) -> Check:
    if isinstance(action, str):
        name, action_attributes = action, None
    elif isinstance(action, Mapping) and isinstance(action.get("name"), str):
        name, action_attributes = action["name"], action.get("attributes")
    else:
        raise TypeError("action: a name, or {'name', 'attributes'}")
    if not isinstance(resource, Mapping) or not isinstance(resource.get("type"), str):
        raise TypeError("resource: {'type', 'id', 'attributes'}")
    return Check(action=name, resource_type=resource["type"], resource_id=str(resource.get("id")),
                 action_attributes=action_attributes,
                 resource_attributes=resource.get("attributes"))


def _decision(outcome: DecisionOutcome) -> Decision:
    return Decision(decision=outcome.decision, decision_id=outcome.decision_id,
                    policies=tuple(outcome.policies), reasons=tuple(outcome.reasons),
                    errors=tuple(dict(e) for e in outcome.errors),
                    policy_set=outcome.policy_set, policy_version=outcome.policy_version)
