"""A fresh metadata database for a test, a module or a session: a SQLite file, or a new
database on the PostgreSQL server of ``LOCKGATE_TEST_DATABASE_URL`` (dropped afterwards)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextlib.contextmanager
def fresh_database(directory: Path) -> Iterator[str]:
    """The URL of an empty database: ``lockgate.db`` in ``directory``, or a new PostgreSQL
    database when ``LOCKGATE_TEST_DATABASE_URL`` names a server."""
    pg_url = os.environ.get("LOCKGATE_TEST_DATABASE_URL", "")
    if not pg_url:
        yield f"sqlite:///{directory / 'lockgate.db'}"
        return
    base = make_url(pg_url).set(drivername="postgresql+psycopg")
    name = f"lgtest_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
