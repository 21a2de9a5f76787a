"""Connecting to the store: one :class:`Database` per URL.

A :class:`Database` owns the SQLAlchemy engine and hands out sessions through two
context managers that own their transaction:

* :meth:`Database.read` — a read-only unit of work;
* :meth:`Database.write` — a unit of work that commits at the end (rolls back on
  any exception). On SQLite it starts with ``BEGIN IMMEDIATE``, so writers queue
  on the busy timeout instead of failing when two of them upgrade a read lock at
  once; on PostgreSQL repositories take row locks where they need them.

SQLite gets WAL (readers never block the writer), foreign keys and a busy
timeout on every connection. A relative SQLite path is relative to the working
directory, and its folder is created (``var/`` for the default ``var/pdp.db``).

Database failures that are not the caller's doing (unreachable server, missing
schema) surface as :class:`StoreError`; integrity errors pass through untouched so
that use cases can retry on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from pdp.errors import PdpError

#: Milliseconds a SQLite writer waits for the write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 15_000

_WRITE = "pdp_write"


class StoreError(PdpError):
    """The store cannot be used: unreachable, misconfigured or not migrated."""

    code = "store_unavailable"


class Database:
    """The engine and session factory for one database URL."""

    def __init__(self, url: str | URL, *, echo: bool = False, pool_size: int = 10):
        try:
            self.url = make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"not a database URL: {url!s}: {exc}", code="config_error") from None
        self.backend = self.url.get_backend_name()
        if self.backend not in ("sqlite", "postgresql"):
            raise StoreError(
                f"unsupported database {self.backend!r}: use a sqlite:/// file or "
                "postgresql+psycopg://", code="config_error")
        try:
            if self.backend == "sqlite":
                self.engine = _sqlite_engine(self.url, echo=echo)
            else:
                self.engine = create_engine(
                    self.url, echo=echo, pool_pre_ping=True, pool_size=pool_size,
                    max_overflow=pool_size)
        except NoSuchModuleError as exc:
            raise StoreError(f"no driver for {self.url.drivername!r}: {exc}",
                             code="config_error") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            self.engine, expire_on_commit=False, execution_options={_WRITE: True})

    # ------------------------------------------------------------------ facts

    @property
    def is_postgresql(self) -> bool:
        return self.backend == "postgresql"

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    # ------------------------------------------------------------------ units of work

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; rolled back (nothing to keep) at the end."""
        with translate_errors(), self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits when the block ends without error."""
        with translate_errors(), self._write_sessions() as session, session.begin():
            yield session

    def check(self) -> None:
        """Raise :class:`StoreError` unless the database answers (for ``/readyz``)."""
        from sqlalchemy import text

        with translate_errors(), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ migrations

    def upgrade(self, revision: str = "head") -> None:
        """Apply the Alembic migrations up to ``revision``."""
        from pdp.store.migrate import upgrade

        upgrade(self, revision)

    def downgrade(self, revision: str) -> None:
        from pdp.store.migrate import downgrade

        downgrade(self, revision)

    def current_revision(self) -> str | None:
        from pdp.store.migrate import current_revision

        return current_revision(self)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver failures into :class:`StoreError`; let integrity errors through."""
    try:
        yield
    except IntegrityError:
        raise
    except DBAPIError as exc:
        raise _store_error(exc) from exc


def _store_error(exc: DBAPIError) -> StoreError:
    orig = exc.orig
    text = str(orig).strip().splitlines()[0] if orig is not None else str(exc)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in ("42P01", "42703") or "no such table" in text or "no such column" in text:
        return StoreError(
            f"the database has no pdp schema, or an old one ({text}): run `pdp db upgrade`",
            code="store_not_migrated")
    return StoreError(f"database error: {text}")


# --------------------------------------------------------------------------- SQLite

def _sqlite_engine(url: URL, *, echo: bool) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={
        "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy (not the sqlite3 module) emit BEGIN, so that writes can
        # BEGIN IMMEDIATE; see the "Serializable isolation" recipe in the SQLAlchemy
        # SQLite dialect documentation.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if conn.get_execution_options().get(_WRITE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine
