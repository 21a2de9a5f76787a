"""The client side of pdp, for services that ask it for decisions.

Everything of :mod:`pdp_client` (standard library only; also distributed alone
as ``pdp-client`` from ``clients/python``), plus :class:`EmbeddedDecider`, which
decides in-process with pdp's engine (imported only when it is used)::

    from pdp.client import PdpClient, EmbeddedDecider
    from pdp.client.flask import PdpFlask, require        # = pdp_client.flask
    from pdp.client.wsgi import PdpMiddleware             # = pdp_client.wsgi

Importing :mod:`pdp.client` imports neither Flask, SQLAlchemy nor the engine.
See docs/client.md.
"""

from __future__ import annotations

from pdp_client import (
    DECISION_ID_HEADER,
    TOKEN_ERROR_CODES,
    Decision,
    PdpClient,
    PdpUnavailable,
    bearer_token,
    resource,
)

__all__ = ["DECISION_ID_HEADER", "TOKEN_ERROR_CODES", "Decision", "EmbeddedDecider",
           "PdpClient", "PdpUnavailable", "bearer_token", "resource"]


def __getattr__(name: str):
    if name == "EmbeddedDecider":
        from pdp.client.embedded import EmbeddedDecider
        return EmbeddedDecider
    raise AttributeError(f"module 'pdp.client' has no attribute {name!r}")
