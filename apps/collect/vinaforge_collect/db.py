"""Engine, sessions and migrations for SQLite (the zero-set-up default) and PostgreSQL.

SQLite: WAL journal, a busy timeout, foreign keys on, and write transactions opened with
``BEGIN IMMEDIATE``. A deferred transaction that reads and then writes can fail with
"database is locked" when another writer got there first; taking the write lock up front makes
concurrent writers queue instead, so no submission is lost (``tests/collect/test_load.py``).
PostgreSQL: psycopg 3 with a connection pool; uniqueness is enforced by constraints.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from importlib import resources

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from vinaforge_collect.models import AppSecret


def make_engine(url: str) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class Database:
    """One engine, a read session factory and a write session factory."""

    def __init__(self, url: str):
        from vinaforge_collect.config import sqlite_path

        self.url = url
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        write_bind = self.engine.execution_options(sqlite_immediate=True) if self.is_sqlite else self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(write_bind, expire_on_commit=False)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as s, s.begin():
            yield s

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any exception."""
        with self._write() as s, s.begin():
            yield s

    def migrate(self) -> None:
        upgrade(self.engine)

    def secret(self, name: str = "hmac") -> str:
        """A random per-deployment key kept in the database (used when no env secret is set)."""
        with self.read() as s:
            row = s.get(AppSecret, name)
            if row is not None:
                return row.value
        with contextlib.suppress(Exception), self.write() as s:
            if s.get(AppSecret, name) is None:
                s.add(AppSecret(name=name, value=secrets.token_hex(32)))
        with self.read() as s:
            return s.scalars(select(AppSecret.value).where(AppSecret.name == name)).one()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("vinaforge_collect") / "migrations"))
    cfg.attributes["connection_engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (idempotent; serialised by the database)."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
