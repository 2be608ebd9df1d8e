"""A fresh metadata database for a test, a module or a session: a SQLite file, or a new
database on the PostgreSQL server of ``LOCKGATE_TEST_DATABASE_URL`` (dropped afterwards).

By default the database is already at the newest schema: each test process migrates one
template database once (Alembic, the same ``upgrade`` that ``lockgate db upgrade`` runs) and
copies it for every test, a SQLite file with SQLite's backup API, a PostgreSQL database with
``CREATE DATABASE ... TEMPLATE``. Migrating a new database costs 0.3-0.5 s, and the suite
opens hundreds. The tests of the migrations themselves ask for an empty database
(``at_head=False``)."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url

from lockgate.store.db import Database
from lockgate.store.migrate import upgrade

_templates: dict[str, str] = {}
_templates_lock = threading.Lock()


def _migrated(url: str) -> None:
    db = Database(url)
    try:
        upgrade(db)
    finally:
        db.dispose()  # no connection may stay open on a PostgreSQL template


def _sqlite_template() -> str:
    with _templates_lock:
        if "sqlite" not in _templates:
            folder = tempfile.mkdtemp(prefix="lockgate-test-template-")
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            path = os.path.join(folder, "lockgate.db")
            _migrated(f"sqlite:///{path}")
            _templates["sqlite"] = path
        return _templates["sqlite"]


def _postgres_template(base: URL) -> str:
    with _templates_lock:
        if "postgresql" not in _templates:
            name = f"lgtest_template_{uuid.uuid4().hex[:12]}"
            admin = create_engine(base, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            atexit.register(_drop, admin, name)
            _migrated(base.set(database=name).render_as_string(hide_password=False))
            _templates["postgresql"] = name
        return _templates["postgresql"]


def _drop(admin: Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def fresh_database(directory: Path, *, at_head: bool = True) -> Iterator[str]:
    """The URL of a new database: ``lockgate.db`` in ``directory``, or a new PostgreSQL
    database when ``LOCKGATE_TEST_DATABASE_URL`` names a server. At the newest schema, or
    empty with ``at_head=False``."""
    pg_url = os.environ.get("LOCKGATE_TEST_DATABASE_URL", "")
    if not pg_url:
        path = directory / "lockgate.db"
        if at_head:
            with (
                contextlib.closing(sqlite3.connect(_sqlite_template())) as src,
                contextlib.closing(sqlite3.connect(path)) as dst,
            ):
                src.backup(dst)
        yield f"sqlite:///{path}"
        return
    base = make_url(pg_url).set(drivername="postgresql+psycopg")
    name = f"lgtest_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{_postgres_template(base)}"' if at_head else ""
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{template}'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        _drop(admin, name)
        admin.dispose()
