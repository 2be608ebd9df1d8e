"""``lockgate db``: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from lockgate.cli.context import state
from lockgate.cli.output import console, handle_errors, print_json

app = typer.Typer(help="Metadata database maintenance.", no_args_is_help=True)


@app.command("upgrade")
@handle_errors
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    json: Annotated[bool, typer.Option("--json", help="Print a JSON document.")] = False,
) -> None:
    """Migrate the metadata database to the latest schema (SQLite or PostgreSQL)."""
    from lockgate.store.db import Database
    from lockgate.store.migrate import upgrade as run_upgrade

    settings = state(ctx).settings()
    db = Database(settings.resolved_database_url)
    try:
        rev = run_upgrade(db, revision)
    finally:
        db.dispose()
    if json:
        print_json(
            {"database": db.engine.url.render_as_string(hide_password=True), "revision": rev}
        )
    else:
        console.print(f"database at revision {rev}")
