"""What an enforcement point answers for a decision (shared by the Flask
extension and the WSGI middleware)."""

from __future__ import annotations

import json
from typing import Any

from pdp_client._client import Decision

DECISION_ID_HEADER = "X-PDP-Decision-Id"

__all__ = ["DECISION_ID_HEADER", "Refusal", "refusal", "missing_token"]


class Refusal:
    """An HTTP refusal: ``status``, the JSON ``body`` and ``headers``."""

    __slots__ = ("status", "body", "headers")

    def __init__(self, status: int, body: dict, headers: dict[str, str]):
        self.status, self.body, self.headers = status, body, headers

    @property
    def reason_phrase(self) -> str:
        return {401: "Unauthorized", 403: "Forbidden",
                503: "Service Unavailable"}.get(self.status, "Error")

    def json_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


def _error(code: str, message: str, **more: Any) -> dict:
    return {"error": {"code": code, "message": message, **more}}


def missing_token() -> Refusal:
    """401: the request carries no ``Authorization: Bearer`` token."""
    return Refusal(401, _error("unauthenticated", "sign-in required: a bearer token is needed"),
                   {"WWW-Authenticate": 'Bearer realm="pdp"', "Cache-Control": "no-store"})


def refusal(decision: Decision) -> Refusal | None:
    """``None`` for an allow; otherwise the refusal:

    * 401 when pdp refused the end user's token (``WWW-Authenticate`` with
      ``error="invalid_token"``);
    * 503 when pdp could not be asked (the client denied on its own; the request
      is not served either way);
    * 403 with the decision's reasons otherwise.

    Every answer made from a decision of pdp carries ``X-PDP-Decision-Id``.
    """
    if decision.allowed:
        return None
    headers = {"Cache-Control": "no-store"}
    if decision.decision_id is not None:
        headers[DECISION_ID_HEADER] = decision.decision_id
    if decision.token_error is not None:
        headers["WWW-Authenticate"] = 'Bearer realm="pdp", error="invalid_token"'
        return Refusal(401, _error("unauthenticated", "the bearer token was refused",
                                   token_error=decision.token_error,
                                   decision_id=decision.decision_id), headers)
    if decision.unavailable:
        headers["Retry-After"] = "1"
        return Refusal(503, _error("authorization_unavailable",
                                   "access denied: the authorization service could not be asked"),
                       headers)
    return Refusal(403, _error("forbidden", "access denied", reasons=list(decision.reasons),
                               decision_id=decision.decision_id), headers)
