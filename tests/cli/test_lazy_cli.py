"""The command line loads a command's module only when the command runs or a help page lists
it; every command is still listed, runs, and is documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer
from typer.main import get_command
from typer.testing import CliRunner

from lockgate.cli.main import LAZY_COMMANDS, app

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _tree(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path below ``command``, as the real (Click) command tree has it."""
    out = [path] if path else []
    if isinstance(command, typer.core.TyperGroup):
        ctx = typer.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"lockgate {' '.join((*path, name))} does not load"
            assert sub.name == name
            out.extend(_tree(sub, (*path, name)))
    return out


def test_every_command_loads_and_is_documented() -> None:
    """Covers the lazily loaded commands, which a walk of the Typer objects cannot see."""
    paths = _tree(get_command(app))
    top = {p[0] for p in paths}
    assert set(LAZY_COMMANDS) <= top
    assert {"init", "quickstart"} <= top
    assert len(paths) > 40
    text = (DOCS / "cli.md").read_text()
    missing = [" ".join(p) for p in paths if f"lockgate {' '.join(p)}" not in text]
    assert not missing, f"commands missing from docs/cli.md: {missing}"


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in [*LAZY_COMMANDS, "init", "quickstart"]:
        assert f" {name} " in result.output, name


def test_group_help_and_a_typo() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["endpoints", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "List, show and delete endpoints." in result.output
    for sub in ("list", "show", "delete"):
        assert f" {sub} " in result.output
    result = runner.invoke(app, ["modls"])
    assert result.exit_code == 2
    assert "models" in result.output


def test_running_a_command_imports_only_its_module() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from lockgate.cli.main import app\n"
        "r = CliRunner().invoke(app, ['server', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = ['fastapi', 'alembic', 'pandas', 'sklearn', 'lockgate.client',\n"
        "         'lockgate.cli.models', 'lockgate.cli.monitors', 'lockgate.cli.validate']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"loaded for `lockgate server --help`: {out.stdout}"


def test_server_module_defers_the_control_plane() -> None:
    """``lockgate.server`` imports FastAPI only when it wires the control plane."""
    code = (
        "import sys\n"
        "import lockgate.server\n"
        "print(','.join(m for m in ('fastapi', 'starlette', 'alembic') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
