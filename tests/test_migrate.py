"""Schema migrations: the head constant stays in step with the scripts, and opening a
workspace already at head checks the revision with plain SQL, without loading Alembic."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import text

from lockgate.store.db import Database
from lockgate.store.migrate import (
    HEAD_REVISION,
    current_revision,
    ensure_schema,
    head_revision,
    stored_revisions,
    upgrade,
)


def test_head_constant_equals_alembic_head() -> None:
    assert head_revision() == HEAD_REVISION, (
        "update HEAD_REVISION in lockgate/store/migrate.py to the newest migration"
    )


def test_ensure_schema_migrates_a_new_database_to_head(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        assert stored_revisions(db) == []
        ensure_schema(db)
        assert stored_revisions(db) == [HEAD_REVISION]
        assert current_revision(db) == HEAD_REVISION
        ensure_schema(db)  # at head: nothing to do
        assert stored_revisions(db) == [HEAD_REVISION]
    finally:
        db.dispose()


def test_ensure_schema_upgrades_an_old_database(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        upgrade(db, "0003")
        assert stored_revisions(db) == ["0003"]
        ensure_schema(db)
        assert stored_revisions(db) == [HEAD_REVISION]
        with db.engine.connect() as conn:  # the head migration's table exists
            assert conn.execute(text("SELECT count(*) FROM monitors")).scalar_one() == 0
    finally:
        db.dispose()


def test_opening_a_database_at_head_does_not_import_alembic(database_url: str) -> None:
    db = Database(database_url)
    try:
        ensure_schema(db)
    finally:
        db.dispose()
    code = (
        "import sys\n"
        "from lockgate.store.db import Database\n"
        "from lockgate.store.migrate import ensure_schema\n"
        f"db = Database({database_url!r})\n"
        "ensure_schema(db)\n"
        "db.dispose()\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
