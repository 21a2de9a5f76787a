"""A WSGI middleware for any framework: every request is decided by pdp as the
gateway endpoint (``/v1/authz/http``) decides it.

::

    app = PdpMiddleware(app, client, public=("/healthz",))

Each request becomes ``action.name = <method>`` on ``resource = {"type": "http",
"id": <path>, "attributes": {"path", "method", "host", "query"}}``, where the path
is percent-decoded (``SCRIPT_NAME`` + ``PATH_INFO``, as UTF-8), ``host`` is the
``Host`` header in lower case and ``query`` the raw query string. The end user's
token comes from ``Authorization: Bearer …``.

Answers: allow → the application runs, and its response carries
``X-PDP-Decision-Id`` (the decision is also in ``environ["pdp.decision"]``); no
token → 401 without asking pdp; a refused token → 401; a deny → 403 with the
reasons; pdp unavailable → 503 — JSON bodies ``{"error": {…}}``. Paths in
``public`` (exact, or a prefix ending in ``/``) pass without a decision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pdp_client._client import bearer_token
from pdp_client._enforce import DECISION_ID_HEADER, Refusal, missing_token, refusal

__all__ = ["PdpMiddleware", "http_check"]


def http_check(environ: dict) -> tuple[str, dict]:
    """``(action, resource)`` of a WSGI request, as the gateway endpoint builds them."""
    method = environ.get("REQUEST_METHOD", "GET").upper()
    raw = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    try:                       # PEP 3333: the decoded path's bytes, as latin-1 text
        path = raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        path = raw
    path = path or "/"
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    if not environ.get("HTTP_HOST") and environ.get("SERVER_PORT") not in (None, "80", "443"):
        host = f"{host}:{environ['SERVER_PORT']}"
    query = environ.get("QUERY_STRING", "")
    return method, {"type": "http", "id": path,
                    "attributes": {"path": path, "method": method, "host": host.lower(),
                                   "query": query}}


class PdpMiddleware:
    """See the module docstring. ``client`` is a :class:`~pdp_client.PdpClient` (or
    anything with its ``decide``); ``context(environ) -> dict`` adds to the context
    (default: ``{"ip": REMOTE_ADDR}``)."""

    def __init__(self, app: Callable, client: Any, *, public: Iterable[str] = (),
                 policy_set: str | None = None,
                 context: Callable[[dict], dict] | None = None):
        self.app = app
        self.client = client
        self.public = tuple(public)
        self.policy_set = policy_set
        self.context = context if context is not None else _default_context

    def _is_public(self, path: str) -> bool:
        return any(path == p or (p.endswith("/") and path.startswith(p)) for p in self.public)

    def __call__(self, environ: dict, start_response: Callable):
        action, resource = http_check(environ)
        if self._is_public(resource["id"]):
            return self.app(environ, start_response)
        token = bearer_token(environ.get("HTTP_AUTHORIZATION"))
        if token is None:
            return _refuse(missing_token(), start_response)
        decision = self.client.decide(action, resource, token=token,
                                      context=self.context(environ) or None,
                                      policy_set=self.policy_set)
        environ["pdp.decision"] = decision
        refused = refusal(decision)
        if refused is not None:
            return _refuse(refused, start_response)

        def start(status, headers, exc_info=None):
            headers = [(k, v) for k, v in headers if k.lower() != DECISION_ID_HEADER.lower()]
            headers.append((DECISION_ID_HEADER, decision.decision_id))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def _default_context(environ: dict) -> dict:
    ip = environ.get("REMOTE_ADDR")
    return {"ip": ip} if ip else {}


def _refuse(refused: Refusal, start_response: Callable) -> list[bytes]:
    body = refused.json_bytes()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
               *refused.headers.items()]
    start_response(f"{refused.status} {refused.reason_phrase}", headers)
    return [body]
