"""Output helpers shared by every command: a stable JSON document with ``--json``, rich tables
otherwise, and one readable error line (never a traceback) with a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from typing import Any, NoReturn, ParamSpec, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from lockgate.errors import LockgateError, NotFoundError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")

#: exit codes
EXIT_ERROR = 1
EXIT_USAGE = 2


def print_json(doc: Any) -> None:
    sys.stdout.buffer.write(
        orjson.dumps(
            doc,
            option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
            default=str,
        )
        + b"\n"
    )
    sys.stdout.flush()


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(code)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    console.print(t)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn Lockgate errors (and bad files) into one readable line and exit code 1."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except NotFoundError as exc:
            fail(exc.message)
        except LockgateError as exc:
            fail(exc.message)
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            fail(f"{exc.strerror}: {exc.filename}")

    return wrapper
