"""Migrations: from an empty database to head, down and up again, on every backend;
and the migrated schema is exactly what the models describe."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pdp.store.db import Database
from pdp.store.migrate import MIGRATIONS_DIR, head_revision
from pdp.store.models import Base

TABLES = {"policy_sets", "policy_versions", "policy_files", "policy_activations", "api_keys",
          "decision_log", "decision_log_policies", "audit_chain_head", "audit_verifications",
          "console_sessions"}


def _tables(database: Database) -> set[str]:
    return set(sa.inspect(database.engine).get_table_names()) - {"alembic_version"}


def test_the_migrations_folder_is_found_from_the_package():
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert MIGRATIONS_DIR.parent.joinpath("pdp", "store", "migrate.py").is_file()
    assert head_revision() is not None


def test_upgrade_from_empty_reaches_head(empty_database_url):
    database = Database(empty_database_url)
    try:
        assert database.current_revision() is None
        database.upgrade()
        assert database.current_revision() == head_revision()
        assert TABLES <= _tables(database)
    finally:
        database.dispose()


def test_upgrade_twice_changes_nothing(empty_database_url):
    database = Database(empty_database_url)
    try:
        database.upgrade()
        database.upgrade()
        assert database.current_revision() == head_revision()
    finally:
        database.dispose()


def test_downgrade_to_base_and_upgrade_again(empty_database_url):
    database = Database(empty_database_url)
    try:
        database.upgrade()
        database.downgrade("base")
        assert database.current_revision() is None
        assert not (TABLES & _tables(database))
        database.upgrade()
        assert database.current_revision() == head_revision()
        assert TABLES <= _tables(database)
    finally:
        database.dispose()


def test_migrated_schema_matches_the_models(store):
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_a_postgresql_database_that_is_not_utf8_is_refused_before_migrating(postgres_server):
    """In LATIN1 PostgreSQL refuses characters that requests carry (an emoji in a
    resource id): a decision record it refused would stall the decision log."""
    import secrets

    import pytest

    from pdp.store.db import StoreError

    name = f"pdp_test_latin1_{secrets.token_hex(4)}"
    with postgres_server.admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE \"{name}\" ENCODING 'LATIN1' TEMPLATE template0 "
                             "LC_COLLATE 'C' LC_CTYPE 'C'")
    db = Database(postgres_server.url(name).render_as_string(hide_password=False))
    try:
        with pytest.raises(StoreError) as refused:
            db.upgrade()
        assert refused.value.code == "store_encoding" and "LATIN1" in refused.value.message
        assert db.current_revision() is None                       # nothing was created
    finally:
        db.dispose()
        postgres_server.drop(name)
