"""Fixtures shared by the whole test suite.

The store's contract tests run on every backend: the ``store`` fixture is
parametrised over SQLite (a fresh file in ``tmp_path``) and PostgreSQL (a throwaway
database ``pdp_test_<random>``, migrated once per session and emptied after
each test; tests that need a database of their own, such as the
migration tests, create and drop one). PostgreSQL comes from ``PDP_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432``). When it cannot be reached the
PostgreSQL cases are skipped with a loud reason locally, and fail when ``CI=true``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from pdp.store.db import Database

POSTGRES_BASE_URL = os.environ.get(
    "PDP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

_postgres_skipped: list[str] = []


# --------------------------------------------------------------------------- PostgreSQL

class PostgresServer:
    """Creates and drops throwaway databases on one PostgreSQL server."""

    def __init__(self, base_url: str):
        self.base = make_url(base_url)
        self.admin = sa.create_engine(self.base.set(database="postgres"),
                                      isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        self.template: str | None = None
        self.shared: str | None = None

    def url(self, name: str) -> URL:
        return self.base.set(database=name)

    def create(self, *, template: str | None = None) -> str:
        name = f"pdp_test_{secrets.token_hex(6)}"
        with self.admin.connect() as conn:
            if template:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            else:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return name

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def migrated_template(self) -> str:
        """A database at the head revision, created once, cloned by each test."""
        if self.template is None:
            name = self.create()
            database = Database(self.url(name))
            try:
                database.upgrade()
            finally:
                database.dispose()
            self.template = name
        return self.template

    def shared_database(self) -> str:
        """The migrated database that ``store`` tests share, one at a time."""
        if self.shared is None:
            self.shared = self.create(template=self.migrated_template())
        return self.shared

    def empty_shared_database(self) -> None:
        """Remove every row a test left; if a stray connection blocks that, start
        over with a new database."""
        if self.shared is None:
            return
        engine = sa.create_engine(self.url(self.shared), poolclass=sa.NullPool)
        try:
            with engine.begin() as conn:
                # DELETE is much faster than TRUNCATE on tiny tables; foreign-key
                # triggers are off for this transaction so the order does not matter.
                conn.exec_driver_sql("SET LOCAL lock_timeout = '3s'")
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                tables = conn.execute(sa.text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'")).scalars().all()
                for table in tables:
                    conn.exec_driver_sql(f'DELETE FROM "{table}"')
        except Exception:
            self.drop(self.shared)
            self.shared = None
        finally:
            engine.dispose()

    def close(self) -> None:
        for name in (self.shared, self.template):
            if name is not None:
                self.drop(name)
        self.admin.dispose()


@pytest.fixture(scope="session")
def _postgres_server() -> Iterator[PostgresServer | str]:
    server = PostgresServer(POSTGRES_BASE_URL)
    try:
        with server.admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:
        server.admin.dispose()
        reason = (f"PostgreSQL unreachable at {server.base.render_as_string()} "
                  f"(set PDP_TEST_POSTGRES_URL): {str(exc).splitlines()[0]}")
        yield reason
        return
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_server(_postgres_server) -> PostgresServer:
    """The PostgreSQL test server: skipped loudly when unreachable, failed in CI."""
    if isinstance(_postgres_server, str):
        if IN_CI:
            pytest.fail(f"CI=true and {_postgres_server}", pytrace=False)
        _postgres_skipped.append(_postgres_server)
        pytest.skip(f"!!! {_postgres_server} — PostgreSQL tests NOT run !!!")
    return _postgres_server


# --------------------------------------------------------------------------- backends

@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def empty_database_url(request, backend, tmp_path) -> Iterator[str]:
    """The URL of an empty database (no schema) on the backend under test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'pdp.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = server.create()
    try:
        yield server.url(name).render_as_string(hide_password=False)
    finally:
        server.drop(name)


def migrated_sqlite_url(path) -> str:
    """The URL of a new SQLite store at ``path``, migrated to the head revision."""
    url = f"sqlite:///{path}"
    database = Database(url)
    try:
        database.upgrade()
    finally:
        database.dispose()
    return url


@pytest.fixture
def database_url(request, backend, tmp_path) -> Iterator[str]:
    """The URL of a migrated database without data on the backend under test."""
    if backend == "sqlite":
        yield migrated_sqlite_url(tmp_path / "pdp.db")
        return
    server = request.getfixturevalue("postgres_server")
    name = server.shared_database()
    try:
        yield server.url(name).render_as_string(hide_password=False)
    finally:
        server.empty_shared_database()


@pytest.fixture
def store(database_url) -> Iterator[Database]:
    """A migrated store on each backend (SQLite, PostgreSQL), disposed after the test."""
    database = Database(database_url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def live_server(database_url) -> Iterator:
    """Start real servers (``pdp serve``, gunicorn) on the test's database:
    ``base_url = live_server({"PDP_…": "…"}, workers=2, args=["--dev"])``; each
    is stopped (SIGTERM) after the test. See ``tests/live.py``."""
    from contextlib import ExitStack

    from tests.live import live_server as start

    with ExitStack() as stack:
        def run(env=None, **options):
            return stack.enter_context(start(env, database_url=database_url, **options))

        yield run


def pytest_terminal_summary(terminalreporter):
    if _postgres_skipped:
        terminalreporter.write_sep(
            "!", f"{len(_postgres_skipped)} PostgreSQL test(s) SKIPPED: {_postgres_skipped[0]}",
            red=True, bold=True)


@pytest.fixture(autouse=True)
def _private_working_directory(request, tmp_path, monkeypatch):
    """Apps built in tests keep their relative paths (``var/audit-spill`` …) in a
    directory of the test's own, so no test replays another's spill files or
    leaves files in the checkout. Tests that read project files use absolute
    paths (``ROOT / …``)."""
    parts = request.node.path.parts
    if "api" in parts or "audit" in parts:
        monkeypatch.chdir(tmp_path)
