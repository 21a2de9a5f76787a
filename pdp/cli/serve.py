"""``pdp serve``: the decision service under gunicorn.

1. prepares the metrics directory: ``PROMETHEUS_MULTIPROC_DIR`` when set (emptied
   of a previous run's files), else a private temporary directory removed at exit —
   before ``prometheus_client`` is imported, which reads the variable once;
2. with ``--dev``: development mode (``PDP_DEV_MODE=1``), one worker unless told
   otherwise, code reloading, and, unless keys are configured, the development
   signing key's JWKS (``var/dev-jwks.json``, created on first use) as
   ``PDP_JWKS`` so that ``pdp token mint`` tokens verify;
3. applies the migrations the database lacks (``--no-migrate`` to skip);
4. replays the decision records left in ``PDP_AUDIT_SPILL_DIR`` by processes that
   died (the workers' audit writers replay them too, and retry when the database
   is down; see ``docs/audit.md``);
5. runs gunicorn with :mod:`pdp.api.gunicorn_conf` and the options given.

SIGTERM or SIGINT stop it gracefully: workers finish the requests in flight.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from pdp.cli._common import get_settings
from pdp.config import load_environment

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger("pdp.serve")


def prepare_metrics_dir(environ=os.environ) -> tuple[str, bool]:
    """The multiprocess metrics directory, and whether this process owns it.

    A given directory is created if needed and emptied of ``*.db`` files (values
    of a previous run would otherwise be added to this run's); without one, a
    private temporary directory is created and named in ``environ``.
    """
    given = environ.get(MULTIPROC_ENV, "").strip()
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        return str(path), False
    path = tempfile.mkdtemp(prefix="pdp-metrics-")
    environ[MULTIPROC_ENV] = path
    return path, True


@click.command()
@click.option("--bind", metavar="HOST:PORT",
              help="Where to listen (default: PDP_BIND, else 127.0.0.1:8080). Repeatable "
                   "in gunicorn's own syntax: unix:/path works too.")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Worker processes (default: PDP_WORKERS, else 2; 1 with --dev).")
@click.option("--threads", type=click.IntRange(min=1), metavar="N",
              help="Threads per worker (default: PDP_THREADS, else 4).")
@click.option("--dev", is_flag=True,
              help="Development mode: PDP_DEV_MODE=1, one worker, code reloading, "
                   "development tokens verify.")
@click.option("--migrate/--no-migrate", default=True, show_default=True,
              help="Apply the database migrations before serving.")
@click.option("--var-dir", default="var", show_default=True, type=click.Path(file_okay=False),
              help="With --dev: where the development signing key and JWKS are kept.")
def serve(bind: str | None, workers: int | None, threads: int | None, dev: bool,
          migrate: bool, var_dir: str) -> None:
    """Run the decision service under gunicorn (configured by pdp/api/gunicorn_conf.py)."""
    if "prometheus_client" in sys.modules:          # pragma: no cover - a wiring bug
        raise click.ClickException(
            "prometheus_client was imported before the metrics directory was set")
    metrics_dir, owned = prepare_metrics_dir()
    try:
        _serve(bind, workers, threads, dev, migrate, var_dir, metrics_dir)
    finally:
        if owned:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve(bind, workers, threads, dev, migrate, var_dir, metrics_dir) -> None:
    from pdp.api.logging import configure_logging

    if dev:
        os.environ["PDP_DEV_MODE"] = "1"
        configured = load_environment(os.environ)        # the config file counts too
        if not (configured.get("PDP_JWKS", "").strip()
                or configured.get("PDP_JWT_HS_SECRET", "").strip()):
            from pdp.api.tokens import dev_signing_key

            os.environ["PDP_JWKS"] = str(dev_signing_key(var_dir).jwks_path)
    settings = get_settings()
    configure_logging(settings.log_level)
    log.info("metrics directory: %s", metrics_dir)
    if dev:
        log.warning("development mode: development tokens (pdp token mint) are accepted")
    if migrate:
        migrate_on_start(settings.database_url)
    if settings.audit_mode != "off":
        replay_spill_on_start(settings)

    from pdp.api import server

    server.run(settings, bind=[bind or settings.bind],
               workers=workers or (1 if dev else settings.workers),
               threads=threads or settings.threads,
               reload=True if dev else None)


def replay_spill_on_start(settings) -> None:
    """Replay the spill files no live process holds; a failure is only logged (the
    workers' writers retry)."""
    from pdp.audit.writer import replay_spill_dir
    from pdp.store.db import Database

    database = Database(settings.database_url)
    try:
        count = replay_spill_dir(database, settings.audit_spill_dir,
                                 batch_size=settings.audit_batch_size)
        if count:
            log.info("replayed %d decision record(s) from %s", count,
                     settings.audit_spill_dir)
    except Exception as exc:
        log.warning("could not replay the decision log spill files in %s yet: %s",
                    settings.audit_spill_dir, exc)
    finally:
        database.dispose()


#: The PostgreSQL advisory lock that serialises replicas migrating at once.
MIGRATION_LOCK = 0x706470          # "pdp"


def migrate_on_start(database_url: str) -> None:
    """Apply the migrations the database lacks. On PostgreSQL, replicas starting
    together take turns (an advisory lock), so only the first one migrates."""
    from pdp.store.db import Database, translate_errors

    database = Database(database_url)
    try:
        if database.is_postgresql:
            with translate_errors(), database.engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
                try:
                    _upgrade(database)
                finally:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
                    conn.commit()
        else:
            _upgrade(database)
    finally:
        database.dispose()


def _upgrade(database) -> None:
    before = database.current_revision()
    database.upgrade()
    after = database.current_revision()
    if before != after:
        log.info("database migrated from %s to revision %s", before or "empty", after)
    else:
        log.info("database at revision %s", after)
