"""Docs stay in step with the code: every setting and every CLI command is documented."""

from __future__ import annotations

from pathlib import Path

import typer

from lockgate.cli.main import app
from lockgate.settings import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "settings.md").read_text()
    missing = [n for n in Settings.model_fields if f"LOCKGATE_{n.upper()}" not in text]
    assert not missing, f"settings missing from docs/settings.md: {missing}"


def _commands(t: typer.Typer, prefix: str = "") -> list[str]:
    out = []
    for c in t.registered_commands:
        name = c.name or (c.callback.__name__ if c.callback else "")
        out.append(f"{prefix}{name}".strip())
    for g in t.registered_groups:
        assert g.typer_instance is not None
        out.extend(_commands(g.typer_instance, f"{prefix}{g.name} "))
    return out


def test_every_cli_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    missing = [c for c in _commands(app) if f"lockgate {c}" not in text]
    assert not missing, f"commands missing from docs/cli.md: {missing}"
