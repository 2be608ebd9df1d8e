"""The metadata database: engine creation, dialect specifics and transactions.

Dialect differences live here and nowhere else, chosen from the URL:

* SQLite: WAL journal, foreign keys on, a busy timeout, and write transactions that start
  with ``BEGIN IMMEDIATE`` so two processes writing at once queue instead of failing with
  "database is locked" half way through (one writer, many readers).
* PostgreSQL (psycopg 3): row locks (``SELECT ... FOR UPDATE``) and transaction-scoped
  advisory locks serialise the few places that allocate numbers or extend the event chain.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from lockgate.errors import StoreError

SQLITE_BUSY_TIMEOUT_MS = 30_000
_ALLOWED_DIALECTS = ("sqlite", "postgresql")


def normalize_url(url: str) -> str:
    """Check the URL's dialect and pick psycopg 3 for PostgreSQL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"database URL is not a valid SQLAlchemy URL: {url!r}") from None
    backend = parsed.get_backend_name()
    if backend not in _ALLOWED_DIALECTS:
        raise StoreError(
            f"database URL: expected a sqlite:// or postgresql:// URL, got {backend}://"
        )
    if backend == "postgresql" and parsed.get_driver_name() in ("psycopg2", "psycopg2cffi"):
        raise StoreError("database URL: use postgresql+psycopg:// (psycopg 3)")
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        db_path = make_url(url).database
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        )
        _setup_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """An engine plus the two kinds of transaction Lockgate uses."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = create_db_engine(self.url)
        self.dialect = self.engine.dialect.name
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
        )
        self._migrated = False
        self._lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (never blocks writers on SQLite/WAL)."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction; committed on success, rolled back on error. On SQLite it
        takes the write lock at BEGIN, so concurrent writers queue (busy timeout)."""
        try:
            with self._write_sessions() as session, session.begin():
                yield session
        except OperationalError as exc:
            raise StoreError(f"metadata store write failed: {exc.orig}") from exc

    def lock(self, session: Session, key: int) -> None:
        """Serialise a critical section across processes until the transaction ends.
        SQLite already holds the database write lock (BEGIN IMMEDIATE)."""
        if self.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def dispose(self) -> None:
        self.engine.dispose()


#: advisory lock keys (PostgreSQL); arbitrary but fixed
LOCK_EVENT_CHAIN = 0x4C4B4701
LOCK_VERSIONS = 0x4C4B4702
