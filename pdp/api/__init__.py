"""The HTTP API: :func:`create_app` is the one place where pdp is wired.

It builds, from one :class:`~pdp.config.Settings`, the store
(:class:`~pdp.store.db.Database`), the replica's view of the active policy versions
(:class:`~pdp.service.active.ActivePolicies`) and the caller authenticator, keeps
them in ``app.extensions["pdp"]`` (:class:`~pdp.api.context.Services`) and
registers one blueprint per concern:

* :mod:`pdp.api.health` — ``/healthz``, ``/readyz`` (no key);
* :mod:`pdp.api.policies` — ``/v1/policy-sets/…`` (role ``admin``).

Errors of every kind are answered in one JSON shape (:mod:`pdp.api.errors`);
request bodies are read strictly (:mod:`pdp.api.json`) and validated by
marshmallow schemas (:mod:`pdp.api.schemas`). ``openapi.yaml`` at the project root
is the contract; ``tests/api/test_openapi.py`` keeps it and the routes in step.
"""

from __future__ import annotations

import functools
import threading

from flask import Flask

from pdp.api import health, policies
from pdp.api.auth import Authenticator
from pdp.api.context import EXTENSION, ApiOptions, Services, services
from pdp.api.errors import register_error_handlers
from pdp.config import Settings
from pdp.service import keys
from pdp.service.active import ActivePolicies
from pdp.store.db import Database

__all__ = ["ApiOptions", "Services", "create_app", "services"]


def create_app(settings: Settings | None = None, *, store: Database | None = None,
               options: ApiOptions | None = None) -> Flask:
    """The WSGI application.

    ``settings`` default to :meth:`Settings.from_env`; ``store`` (a migrated
    :class:`Database`) defaults to one opened on ``settings.database_url`` and is
    then owned by the app; ``options`` (HTTP limits, key cache) default to
    :meth:`ApiOptions.from_settings`.

    The watcher that keeps the active policy versions current starts with the
    first request, in the process that serves it (so a server that forks workers
    after importing the app gets one watcher per worker); ``services(app).active``
    can be stopped, or refreshed by hand.
    """
    settings = settings if settings is not None else Settings.from_env()
    options = options if options is not None else ApiOptions.from_settings(settings)
    db = store if store is not None else Database(settings.database_url)
    active = ActivePolicies(db, poll_interval=settings.effective_poll_interval)
    authenticator = Authenticator(functools.partial(keys.authenticate, db),
                                  ttl=options.auth_cache_ttl)

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = options.max_body_bytes
    app.json.sort_keys = False
    app.extensions[EXTENSION] = Services(settings=settings, options=options, db=db,
                                         active=active, authenticator=authenticator)
    register_error_handlers(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(policies.bp)

    start_lock = threading.Lock()

    @app.before_request
    def _watch_active_policies() -> None:
        if not active.running:
            with start_lock:
                if not active.running:
                    active.start()

    return app
