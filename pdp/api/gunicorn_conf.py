"""gunicorn's configuration for pdp (a gunicorn config module).

``pdp serve`` loads it, then applies its own options (``--bind``, ``--workers``,
``--threads``, ``--dev``). Running gunicorn directly works too: the project root's
``gunicorn.conf.py`` re-exports this module, and from anywhere else
``gunicorn -c python:pdp.api.gunicorn_conf pdp.api.wsgi:app`` (then apply the
migrations first: ``pdp db upgrade``; ``pdp serve`` does it for you).

Settings come from :class:`pdp.config.Settings` (``PDP_BIND``, ``PDP_WORKERS``,
``PDP_THREADS``, ``PDP_LOG_LEVEL``); anything else of gunicorn's can be given in
``GUNICORN_CMD_ARGS`` when gunicorn is run directly.

* ``gthread`` workers: decisions are short and mostly CPU, the store is I/O; a few
  threads per process hide the I/O.
* Workers are forked without the app (no ``preload_app``): each worker builds its
  own app, database pool and policy watcher.
* Logs: gunicorn's own messages go through pdp's JSON handler; there is no access
  log, pdp logs one JSON line per request itself (``pdp.http``).
* The decision log: ``worker_exit`` closes the worker's audit writer, which
  writes (or spills) the records still queued.
* Metrics: ``child_exit`` tells ``prometheus_client`` that a worker died, so its
  live gauges stop counting (``PROMETHEUS_MULTIPROC_DIR``, set by ``pdp serve``).
* The gunicorn control socket (gunicorn ≥ 25) is off: replicas and tests must not
  share ``~/.gunicorn/gunicorn.ctl``.
* ``post_worker_init`` freezes the objects of the loaded app (``gc.freeze()``): the
  modules, compiled policies and pools built at start-up are never garbage, and the
  collector no longer walks them again and again while requests are served.
"""

from __future__ import annotations

import gc
import os

from pdp.config import Settings

_settings = Settings.from_env()

bind = [_settings.bind]
workers = _settings.workers
threads = _settings.threads
worker_class = "gthread"
#: A worker silent for this long is killed and replaced.
timeout = 30
#: On SIGTERM, requests in flight get this long to finish.
graceful_timeout = 20
keepalive = 5
#: Recycle workers now and then (with jitter) so that leaks cannot grow unbounded.
max_requests = 100_000
max_requests_jitter = 10_000
#: Worker heartbeat files in memory, not on a possibly slow disk (Docker: /dev/shm).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = None
#: pdp logs each request itself (pdp.api.logging); gunicorn would otherwise build an
#: access-log entry for every request (logconfig_dict enables it) only to drop it.
logger_class = "pdp.api.logging.GunicornLogger"
loglevel = _settings.log_level.lower()
proc_name = "pdp"
control_socket_disable = True

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stdout": {"()": "pdp.api.logging.handler"}},
    "root": {"level": _settings.log_level, "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": _settings.log_level, "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
    },
}


def post_fork(server, worker) -> None:
    server.log.info("worker %d started", worker.pid)


def post_worker_init(worker) -> None:
    """The app is loaded: what exists now lives as long as the worker; keep it out
    of the garbage collector's generations (objects made later are collected as
    usual)."""
    gc.collect()
    gc.freeze()


def child_exit(server, worker) -> None:
    from pdp.api.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def worker_exit(server, worker) -> None:
    """Write the exiting worker's queued decision records (or spill them), stop its
    policy watcher (its app, if it built one)."""
    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", None) or {}
    writer = extensions.get("pdp.audit")
    if writer is not None:
        writer.close(timeout=10.0)
    services = extensions.get("pdp")
    if services is not None:
        services.active.stop(timeout=2.0)
        services.db.dispose()
