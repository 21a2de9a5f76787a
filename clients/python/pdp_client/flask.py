"""Flask integration: :class:`PdpFlask` and the :func:`require` decorator.

::

    pdp = PdpFlask(app, client=PdpClient("http://pdp:8080", key))

    @app.get("/documents/<doc_id>")
    @require("read", resource=lambda doc_id: {"type": "document", "id": doc_id,
                                               "attributes": load(doc_id)})
    def show(doc_id): ...

For each call of the view, :func:`require` takes the end user's bearer token from
the incoming request (``Authorization: Bearer …``), builds the resource by calling
``resource`` with the view's keyword arguments, and asks the extension's decider
(a :class:`~pdp_client.PdpClient`, or an in-process
:class:`~pdp.client.EmbeddedDecider` — anything with the same ``decide``):

* allow → the view runs; its response carries ``X-PDP-Decision-Id`` and the
  decision is in ``flask.g.pdp_decision``;
* no token → 401 (pdp is not asked), pdp refused the token → 401, a deny → 403
  with the reasons, pdp could not be asked → 503; all with the one JSON error
  shape ``{"error": {"code", "message", …}}`` (see :mod:`pdp_client._enforce`).

Needs Flask (``pip install pdp-client[flask]``); the rest of :mod:`pdp_client` does not.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, after_this_request, current_app, g, request

from pdp_client._client import bearer_token
from pdp_client._enforce import DECISION_ID_HEADER, Refusal, missing_token, refusal

__all__ = ["PdpFlask", "require", "EXTENSION"]

EXTENSION = "pdp_client"


class PdpFlask:
    """The extension: holds the decider used by :func:`require`.

    ``client``   anything with ``decide(action, resource, *, token=, claims=,
                 context=, policy_set=)`` returning a :class:`~pdp_client.Decision`
    ``claims``   optional ``claims() -> dict | None``: the end user's claims when the
                 application authenticates users itself (sessions); then no bearer
                 token is read, and ``None`` means "not signed in" (401). The
                 decider must accept claims (a key with ``trusted_claims``, or the
                 embedded decider).
    ``context``  optional ``context() -> dict`` added to every decision (default:
                 ``{"ip": request.remote_addr}``)
    """

    def __init__(self, app: Flask | None = None, client: Any = None, *,
                 claims: Callable[[], Mapping[str, Any] | None] | None = None,
                 context: Callable[[], Mapping[str, Any]] | None = None):
        self.client = client
        self.claims = claims
        self.context = context if context is not None else _default_context
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, client: Any = None) -> None:
        if client is not None:
            self.client = client
        app.extensions[EXTENSION] = self


def _default_context() -> dict:
    return {"ip": request.remote_addr} if request.remote_addr else {}


def _extension() -> PdpFlask:
    ext = current_app.extensions.get(EXTENSION)
    if ext is None or ext.client is None:
        raise RuntimeError("pdp_client.flask: PdpFlask(app, client=…) is not set up")
    return ext


def _respond(refused: Refusal) -> Response:
    response = Response(refused.json_bytes(), status=refused.status,
                        mimetype="application/json")
    for name, value in refused.headers.items():
        response.headers[name] = value
    return response


def require(action: str | Mapping[str, Any] | Callable[..., Any], resource: Any = None, *,
            policy_set: str | None = None,
            context: Callable[..., Mapping[str, Any]] | None = None):
    """Decorate a view so that it runs only when pdp allows ``action`` on ``resource``.

    ``resource`` is a callable receiving the view's keyword arguments and returning
    ``{"type", "id", "attributes"}`` (it may ``abort(404)``), or a fixed mapping.
    ``action`` may also be such a callable. ``context`` (a callable receiving the
    view's keyword arguments) adds to the extension's context.
    """
    if resource is None:
        raise TypeError("require(): resource= is needed (a callable or a mapping)")

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            ext = _extension()
            subject: dict[str, Any]
            if ext.claims is not None:
                claims = ext.claims()
                if claims is None:
                    return _respond(missing_token())
                subject = {"claims": claims}
            else:
                token = bearer_token(request.headers.get("Authorization"))
                if token is None:
                    return _respond(missing_token())
                subject = {"token": token}
            the_action = action(**kwargs) if callable(action) else action
            the_resource = resource(**kwargs) if callable(resource) else resource
            ctx = dict(ext.context() or {})
            if context is not None:
                ctx.update(context(**kwargs) or {})
            decision = ext.client.decide(the_action, the_resource, context=ctx or None,
                                         policy_set=policy_set, **subject)
            g.pdp_decision = decision
            refused = refusal(decision)
            if refused is not None:
                return _respond(refused)

            @after_this_request
            def _decision_id(response):
                response.headers[DECISION_ID_HEADER] = decision.decision_id
                return response

            return view(*args, **kwargs)

        return wrapper

    return decorator
