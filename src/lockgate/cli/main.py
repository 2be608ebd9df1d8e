"""Entry point of the ``lockgate`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lockgate import __version__
from lockgate.cli import (
    audit,
    db,
    drift,
    feedback,
    models,
    monitors,
    predictions,
    rollout,
    serve,
    validate,
)
from lockgate.cli import pipeline as pipeline_cli
from lockgate.cli.context import state
from lockgate.cli.output import console, handle_errors, print_json

app = typer.Typer(
    name="lockgate",
    help="Lockgate: registry, gates, serving and monitoring for trained models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(models.app, name="models")
app.add_typer(db.app, name="db")
app.add_typer(predictions.app, name="predictions")
app.add_typer(serve.endpoints_app, name="endpoints")
app.add_typer(rollout.app, name="rollout")
app.command("feedback")(feedback.feedback)
app.command("server")(serve.server)
app.command("deploy")(serve.deploy)
app.command("validate", cls=validate.ValidateCommand)(validate.validate)
app.add_typer(monitors.app, name="monitors")
app.command("drift")(drift.drift)
app.command("quality")(drift.quality)
app.add_typer(audit.events_app, name="events")
app.command("kpis")(audit.kpis)
app.command("card")(audit.card)
app.add_typer(audit.audit_app, name="audit")
app.add_typer(pipeline_cli.app, name="pipeline")
app.add_typer(pipeline_cli.policies_app, name="policies")


def _version(value: bool) -> None:
    if value:
        console.print(f"lockgate {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option(help="Workspace folder (LOCKGATE_HOME).", show_default=False)
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Metadata database URL (LOCKGATE_DATABASE_URL).")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    st = state(ctx)
    st.home = home
    st.database_url = database_url


@app.command("init")
@handle_errors
def init(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json", help="Print a JSON document.")] = False,
) -> None:
    """Create the workspace (database migrated, artifact folder ready)."""
    from lockgate.store.migrate import current_revision

    with state(ctx).client() as client:
        ws = client.workspace
        doc = {
            "home": str(ws.settings.home.resolve()),
            "database": ws.db.engine.url.render_as_string(hide_password=True),
            "artifacts": ws.artifacts.url,
            "revision": current_revision(ws.db),
        }
    if json:
        print_json(doc)
    else:
        console.print(f"workspace ready at {doc['home']} (schema {doc['revision']})")


@app.command("quickstart")
@handle_errors
def quickstart(
    ctx: typer.Context,
    requests: Annotated[int, typer.Option(min=1, max=100_000, help="Requests to send.")] = 300,
    port: Annotated[int, typer.Option(help="Port (a free one if taken).")] = 8470,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Leave the server up afterwards.")
    ] = False,
    loop: Annotated[
        bool,
        typer.Option(
            "--loop/--no-loop",
            help="Then show the closed loop: drift, alert, retrain, gates, rollout (~1 min).",
        ),
    ] = True,
    json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Train, register, deploy and serve a model end to end on the embedded workspace."""
    from lockgate.quickstart import run

    settings = state(ctx).settings()
    summary = run(
        home=settings.home,
        host=settings.host,
        port=port,
        requests=requests,
        keep_running=keep_running,
        console=Console(stderr=True) if json else None,
        loop=loop,
    )
    if json:
        print_json(summary)


def main() -> None:
    app()
