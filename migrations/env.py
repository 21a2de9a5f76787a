"""Alembic environment for pdp.

pdp drives Alembic from code (:mod:`pdp.store.migrations`, ``pdp db upgrade``): it
passes an open connection in ``config.attributes["connection"]`` so that the
migrations run on the same engine (SQLite pragmas included) as the service. When
Alembic is run by hand (``alembic -c …``), the URL comes from ``sqlalchemy.url``
or ``PDP_DATABASE_URL``.

``render_as_batch=True``: ``op.batch_alter_table`` lets every migration run on
SQLite, which cannot ALTER most things in place.
"""

from __future__ import annotations

from alembic import context

from pdp.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )


def run_migrations_offline() -> None:
    from pdp.config import Settings

    url = config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url
    context.configure(url=url, target_metadata=target_metadata, render_as_batch=True,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    from pdp.config import Settings
    from pdp.store.db import Database

    url = config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url
    database = Database(url)
    try:
        with database.engine.begin() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        database.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
