"""Alembic, driven from code: no ``alembic.ini`` needed by users.

The migration scripts live in the project's top-level ``migrations/`` folder
(``env.py``, ``script.py.mako``, ``versions/``). ``pdp db upgrade`` calls
:func:`upgrade`; tests use :func:`downgrade` for the round trip.

To write a new migration during development, with ``PDP_DATABASE_URL`` pointing at
a scratch database upgraded to head::

    python -m pdp.store.migrate revision --autogenerate --rev-id 0002 -m "what changed"

then read and edit the generated file by hand (``batch_alter_table`` for SQLite).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

if TYPE_CHECKING:
    from pdp.store.db import Database

#: ``<project>/migrations``: next to the ``pdp`` package.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"


def alembic_config(database: Database | None = None) -> Config:
    if not (MIGRATIONS_DIR / "env.py").is_file():
        from pdp.store.db import StoreError

        raise StoreError(f"migrations not found in {MIGRATIONS_DIR}", code="config_error")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database is not None:
        url = database.url.render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    _check_encoding(database)
    _run(database, command.upgrade, revision)


def _check_encoding(database: Database) -> None:
    """A PostgreSQL database must be UTF8: in another encoding (``LATIN1``, say) the
    database refuses characters that requests carry, and a decision record it
    refuses would stall the decision log."""
    if not database.is_postgresql:
        return
    from pdp.store.db import StoreError, translate_errors

    with translate_errors(), database.engine.connect() as conn:
        encoding = conn.execute(text("SHOW server_encoding")).scalar_one()
    if str(encoding).upper() not in ("UTF8", "UTF-8"):
        raise StoreError(f"the database {database.url.database!r} is encoded {encoding}; pdp "
                         "needs UTF8 (CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0)",
                         code="store_encoding")


def downgrade(database: Database, revision: str) -> None:
    _run(database, command.downgrade, revision)


def current_revision(database: Database) -> str | None:
    from pdp.store.db import translate_errors

    with translate_errors(), database.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _run(database: Database, fn, revision: str) -> None:
    from pdp.store.db import translate_errors

    config = alembic_config(database)
    with translate_errors(), database.engine.connect() as conn:
        if database.is_sqlite:
            # Batch migrations copy and drop tables: with foreign keys enforced a
            # drop would cascade. The pragma only takes effect outside a transaction.
            _pragma(conn, "PRAGMA foreign_keys=OFF")
        try:
            config.attributes["connection"] = conn
            with conn.begin():
                fn(config, revision)
                if database.is_sqlite:
                    broken = conn.execute(text("PRAGMA foreign_key_check")).fetchall()
                    if broken:
                        raise RuntimeError(f"foreign key check failed after migration: {broken}")
        finally:
            if database.is_sqlite:
                _pragma(conn, "PRAGMA foreign_keys=ON")


def _pragma(conn, sql: str) -> None:
    """Run a pragma outside any transaction (on the DBAPI connection itself)."""
    conn.connection.driver_connection.execute(sql)


def main(argv: list[str] | None = None) -> None:
    """``python -m pdp.store.migrate <alembic command> …`` against ``PDP_DATABASE_URL``."""
    from alembic.config import CommandLine

    from pdp.config import Settings

    cli = CommandLine(prog="python -m pdp.store.migrate")
    options = cli.parser.parse_args(argv)
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    config = alembic_config()
    config.set_main_option("sqlalchemy.url",
                           Settings.from_env().database_url.replace("%", "%%"))
    cli.run_cmd(config, options)


if __name__ == "__main__":
    main()
