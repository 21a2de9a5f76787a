"""Connecting: SQLite gets WAL, foreign keys and a busy timeout; a relative SQLite
path lives under the working directory with its folder created; store failures
are StoreErrors that say what to do."""

from __future__ import annotations

import pytest

from pdp.config import DEFAULT_DATABASE_URL
from pdp.store import policies as repo
from pdp.store.db import Database, StoreError


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with database.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        database.dispose()


def test_the_default_store_is_var_pdp_db_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    database = Database(DEFAULT_DATABASE_URL)
    try:
        database.upgrade()
    finally:
        database.dispose()
    assert (tmp_path / "var" / "pdp.db").is_file()


def test_an_unsupported_url_is_refused():
    with pytest.raises(StoreError, match="unsupported database"):
        Database("mysql://localhost/x")
    with pytest.raises(StoreError):
        Database("not a url")


def test_a_store_without_schema_says_to_run_db_upgrade(empty_database_url):
    database = Database(empty_database_url)
    try:
        with pytest.raises(StoreError, match="pdp db upgrade") as caught:
            with database.read() as session:
                repo.active_numbers(session)
        assert caught.value.code == "store_not_migrated"
    finally:
        database.dispose()


def test_an_unreachable_server_is_a_store_error():
    database = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        with pytest.raises(StoreError):
            database.check()
    finally:
        database.dispose()


def test_check_succeeds_on_a_reachable_store(store):
    store.check()
