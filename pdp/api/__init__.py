"""The HTTP API: :func:`create_app` is the one place where pdp is wired.

It builds, from one :class:`~pdp.config.Settings`, the store
(:class:`~pdp.store.db.Database`), the replica's view of the active policy versions
(:class:`~pdp.service.active.ActivePolicies`) and the caller authenticator, keeps
them in ``app.extensions["pdp"]`` (:class:`~pdp.api.context.Services`) and
registers one blueprint per concern:

* :mod:`pdp.api.health` — ``/healthz``, ``/readyz`` (no key);
* :mod:`pdp.api.metrics` — ``/metrics`` (no key), and HTTP request counts;
* :mod:`pdp.api.logging` — JSON logs, one line per request with its id;
* :mod:`pdp.api.policies` — ``/v1/policy-sets/…`` (role ``admin``);
* :mod:`pdp.api.decide` — ``/v1/decide``, ``/decide``, ``/v1/decide/batch`` (role ``decide``);
* :mod:`pdp.api.authzen` — ``/access/v1/evaluation(s)`` (role ``decide``, trusted claims)
  and ``/.well-known/authzen-configuration`` (no key);
* :mod:`pdp.api.gateway` — ``/v1/authz/http[/…]`` for nginx and Envoy (role ``decide``,
  key in ``X-PDP-Key``);
* :mod:`pdp.api.decisions` — ``/v1/decisions[/export|/stats|/{id}]``, reading the
  decision log (role ``auditor``);
* :mod:`pdp.api.console` — ``/console/…``: HTML pages for auditors and policy
  owners (sign-in with an ``auditor`` or ``admin`` key, session cookie, CSRF).

Errors of every kind are answered in one JSON shape (:mod:`pdp.api.errors`);
request bodies are read strictly (:mod:`pdp.api.json`) and validated by
marshmallow schemas (:mod:`pdp.api.schemas`). ``openapi.yaml`` at the project root
is the contract; ``tests/api/test_openapi.py`` keeps it and the routes in step.
"""

from __future__ import annotations

import functools
import threading

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from pdp.api import authzen, console, decide, gateway, health, policies
from pdp.api import decisions as decision_log
from pdp.api import logging as request_logging
from pdp.api import metrics
from pdp.api.auth import Authenticator
from pdp.api.context import EXTENSION, ApiOptions, Services, services
from pdp.api.errors import register_error_handlers
from pdp.api.tokens import TokenVerifier
from pdp.audit.writer import AuditWriter
from pdp.config import Settings
from pdp.service import keys
from pdp.service.active import ActivePolicies
from pdp.service.decisions import DecisionService, DecisionSink, NullSink, policy_set_exists
from pdp.store.db import Database

__all__ = ["AUDIT_EXTENSION", "ApiOptions", "Services", "audit_writer", "create_app",
           "services"]


def create_app(settings: Settings | None = None, *, store: Database | None = None,
               options: ApiOptions | None = None, verifier: TokenVerifier | None = None,
               sink: DecisionSink | None = None) -> Flask:
    """The WSGI application.

    ``settings`` default to :meth:`Settings.from_env`; ``store`` (a migrated
    :class:`Database`) defaults to one opened on ``settings.database_url`` and is
    then owned by the app; ``options`` (HTTP limits, key cache) default to
    :meth:`ApiOptions.from_settings`; ``verifier`` (end-user tokens; anything with
    ``verify(token) -> claims``) defaults to :meth:`TokenVerifier.from_env`, whose
    remote JWKS start loading in the background; ``sink`` (where each decision is
    recorded) defaults to the decision log's :class:`~pdp.audit.writer.AuditWriter`
    on the store (``PDP_AUDIT_MODE``; :class:`~pdp.service.decisions.NullSink` when
    ``off``), kept in ``app.extensions["pdp.audit"]`` (``None`` when a ``sink`` is
    given or the log is off) and started, like the watcher, with the first request;
    it is wrapped in :class:`~pdp.api.metrics.MeteredSink`, which counts each
    decision for ``/metrics``.

    The watcher that keeps the active policy versions current starts with the
    first request, in the process that serves it (so a server that forks workers
    after importing the app gets one watcher per worker); ``services(app).active``
    can be stopped, or refreshed by hand.
    """
    settings = settings if settings is not None else Settings.from_env()
    options = options if options is not None else ApiOptions.from_settings(settings)
    db = store if store is not None else Database(settings.database_url)
    active = ActivePolicies(db, poll_interval=settings.effective_poll_interval,
                            on_change=metrics.set_policy_version)
    authenticator = Authenticator(functools.partial(keys.authenticate, db),
                                  ttl=options.auth_cache_ttl)
    if verifier is None:
        verifier = TokenVerifier.from_env()
        verifier.warm(wait=False)
    writer = None
    if sink is None:
        writer = audit_writer(settings, db)
        sink = writer if writer is not None else NullSink()
    decisions = DecisionService(active, verifier, metrics.MeteredSink(sink),
                                set_exists=functools.partial(policy_set_exists, db))

    request_logging.configure_logging(settings.log_level)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = options.max_body_bytes
    app.json.sort_keys = False
    app.extensions[EXTENSION] = Services(settings=settings, options=options, db=db,
                                         active=active, authenticator=authenticator,
                                         decisions=decisions)
    app.extensions[AUDIT_EXTENSION] = writer
    register_error_handlers(app)
    request_logging.init_app(app)
    metrics.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(policies.bp)
    app.register_blueprint(decide.bp)
    app.register_blueprint(authzen.bp)
    app.register_blueprint(gateway.bp)
    app.register_blueprint(decision_log.bp)
    app.register_blueprint(console.bp)
    if settings.trusted_proxies:       # outermost: every layer sees the client's address
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)

    start_lock = threading.Lock()

    @app.before_request
    def _watch_active_policies() -> None:
        if not active.running:
            with start_lock:
                if not active.running:
                    active.start()
        if writer is not None:
            writer.start()                      # no-op once running in this process

    return app


#: ``app.extensions`` key of the decision log writer (``None`` if there is none).
AUDIT_EXTENSION = "pdp.audit"


def audit_writer(settings: Settings, db: Database) -> AuditWriter | None:
    """The decision log writer configured by ``settings`` (``None`` when ``off``)."""
    if settings.audit_mode == "off":
        return None
    return AuditWriter(db, mode=settings.audit_mode, spill_dir=settings.audit_spill_dir,
                       queue_size=settings.audit_queue_size,
                       flush_interval=settings.audit_flush_interval_ms / 1000,
                       batch_size=settings.audit_batch_size,
                       redact=settings.audit_redact_claims, metrics=metrics.AuditMetrics(),
                       spill_max_bytes=(settings.audit_spill_max_mb * 1024 * 1024
                                        if settings.audit_spill_max_mb else None))
