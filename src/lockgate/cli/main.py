"""Entry point of the ``lockgate`` command.

Commands live in one module per group and are imported only when they run or when a help
page lists them (:class:`LazyGroup`): ``lockgate server`` must not pay for the imports of
every other command before it starts serving.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import _click  # the Click that Typer bundles: the classes its commands are made of
from typer.core import TyperGroup

from lockgate import __version__, gcpause
from lockgate.cli.context import state
from lockgate.cli.output import console, handle_errors, print_json


@dataclass(frozen=True)
class LazyCommand:
    """A command (a function) or command group (a Typer app) of ``lockgate.cli.<module>``."""

    module: str
    attr: str
    group: bool = False
    #: the command's class, an attribute of the same module (default: Typer's)
    cls: str | None = None

    def load(self, name: str) -> _click.Command:
        mod = importlib.import_module(f"lockgate.cli.{self.module}")
        obj = getattr(mod, self.attr)
        if self.group:
            command: _click.Command = typer.main.get_group(obj)
        else:
            single = typer.Typer(add_completion=False)
            single.command(name, cls=getattr(mod, self.cls) if self.cls else None)(obj)
            command = typer.main.get_command(single)
        command.name = name
        return command


#: every command defined outside this module, in the order ``lockgate --help`` lists them;
#: like Typer, the help lists the commands (``init`` and ``quickstart`` of this module after
#: these), then the groups
LAZY_COMMANDS: dict[str, LazyCommand] = {
    "feedback": LazyCommand("feedback", "feedback"),
    "server": LazyCommand("serve", "server"),
    "deploy": LazyCommand("serve", "deploy"),
    "validate": LazyCommand("validate", "validate", cls="ValidateCommand"),
    "drift": LazyCommand("drift", "drift"),
    "quality": LazyCommand("drift", "quality"),
    "kpis": LazyCommand("audit", "kpis"),
    "card": LazyCommand("audit", "card"),
    "models": LazyCommand("models", "app", group=True),
    "db": LazyCommand("db", "app", group=True),
    "predictions": LazyCommand("predictions", "app", group=True),
    "endpoints": LazyCommand("serve", "endpoints_app", group=True),
    "rollout": LazyCommand("rollout", "app", group=True),
    "monitors": LazyCommand("monitors", "app", group=True),
    "events": LazyCommand("audit", "events_app", group=True),
    "audit": LazyCommand("audit", "audit_app", group=True),
    "pipeline": LazyCommand("pipeline", "app", group=True),
    "policies": LazyCommand("pipeline", "policies_app", group=True),
}


class LazyCommands(MutableMapping[str, _click.Command]):
    """A group's commands by name: the names are known up front, a lazy command is built
    on first lookup."""

    def __init__(
        self, eager: Mapping[str, _click.Command], lazy: Mapping[str, LazyCommand]
    ) -> None:
        self._loaded = dict(eager)
        self._lazy = {k: v for k, v in lazy.items() if k not in self._loaded}
        commands = [name for name, spec in self._lazy.items() if not spec.group]
        groups = [name for name, spec in self._lazy.items() if spec.group]
        self._order = [*commands, *self._loaded, *groups]

    def __getitem__(self, name: str) -> _click.Command:
        command = self._loaded.get(name)
        if command is None:
            spec = self._lazy.get(name)
            if spec is None:
                raise KeyError(name)
            command = self._loaded[name] = spec.load(name)
        return command

    def __setitem__(self, name: str, command: _click.Command) -> None:
        if name not in self._loaded and name not in self._lazy:
            self._order.append(name)
        self._loaded[name] = command
        self._lazy.pop(name, None)

    def __delitem__(self, name: str) -> None:
        if name not in self._loaded and name not in self._lazy:
            raise KeyError(name)
        self._loaded.pop(name, None)
        self._lazy.pop(name, None)
        self._order.remove(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._lazy


class LazyGroup(TyperGroup):
    """The root group: the commands of :data:`LAZY_COMMANDS` next to the ones Typer built."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.commands, LAZY_COMMANDS)

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(self.commands)  # the names only: loading waits for get_command


app = typer.Typer(
    name="lockgate",
    help="Lockgate: registry, gates, serving and monitoring for trained models.",
    cls=LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


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
    if ctx.invoked_subcommand != "server":
        gcpause.resume()
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
    from rich.console import Console

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
    gcpause.pause()  # start-up: `root` resumes it, or for `server`, the server once it is up
    app()
