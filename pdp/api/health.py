"""Probes for orchestrators; no key needed.

* ``GET /healthz`` — 200 while the process answers (liveness);
* ``GET /readyz`` — 200 when the database answers and at least one policy set has
  an active version loaded in this replica, else 503 with the reason (readiness:
  a replica that cannot decide gets no traffic).
"""

from __future__ import annotations

import logging

from flask import Blueprint

from pdp.api.context import services
from pdp.api.errors import error_response
from pdp.store import StoreError

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    app = services()
    try:
        app.db.check()
    except StoreError as exc:
        log.warning("readiness: the database does not answer: %s", exc)
        return error_response(503, "not_ready", f"the database does not answer ({exc.code})")
    versions = app.active.versions()
    if not versions:
        return error_response(503, "not_ready", "no active policy version is loaded")
    return {"status": "ready", "policy_sets": versions}
