"""Schema migrations (Alembic), run the same way on SQLite and PostgreSQL.

Opening a workspace whose schema is already at :data:`HEAD_REVISION` costs one plain query
of Alembic's version table; Alembic itself (a fifth of a second to import) is loaded only to
migrate or to read the script directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

from lockgate.store.db import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: the newest migration, which a new migration's ``down_revision`` names; a test checks it
#: equals the head Alembic computes from ``migrations/versions``
HEAD_REVISION = "0007"
VERSION_TABLE = "alembic_version"


def alembic_config(db: Database) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The head of the migration scripts, as Alembic computes it."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def stored_revisions(db: Database) -> list[str]:
    """The revisions in Alembic's version table read with plain SQL (none for a new
    database)."""
    with db.engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return []
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        return [str(r) for r in rows]


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; safe to run concurrently from several processes."""
    from alembic import command

    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(1280002560)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return current_revision(db)


def ensure_schema(db: Database) -> None:
    """Migrate a new or old database to head on first use."""
    if stored_revisions(db) != [HEAD_REVISION]:
        upgrade(db)
