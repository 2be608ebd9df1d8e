"""How a command finds its workspace: global options, else ``LOCKGATE_*`` settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from lockgate.settings import Settings

if TYPE_CHECKING:
    from lockgate.client import Client


@dataclass
class CLIState:
    home: Path | None = None
    database_url: str | None = None

    def settings(self, **extra: Any) -> Settings:
        overrides: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
        if self.home is not None:
            overrides["home"] = self.home
        if self.database_url is not None:
            overrides["database_url"] = self.database_url
        return Settings(**overrides)

    def client(self, **extra: Any) -> Client:
        from lockgate.client import Client
        from lockgate.workspace import Workspace

        return Client(Workspace(self.settings(**extra)))


def state(ctx: typer.Context) -> CLIState:
    root = ctx.find_root()
    if not isinstance(root.obj, CLIState):
        root.obj = CLIState()
    return root.obj
