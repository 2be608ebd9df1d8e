"""``lockgate validate``: run a version's gates from a terminal or CI, with an exit code.

Exit codes: 0 every gate passed, 1 a gate failed, 2 no gate failed but one was inconclusive,
3 the validation could not run (unknown model, version or alias, unreadable file, bad policy or
option). Typer's own usage errors (a missing argument, a non-integer VERSION) also exit 3 here,
not click's 2, which would read as "inconclusive".
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperCommand

from lockgate.cli.context import state
from lockgate.cli.output import console, err_console, print_json
from lockgate.errors import LockgateError
from lockgate.gates.base import GateResult
from lockgate.gates.report import EXIT_USAGE, ValidationReport

_STYLE = {"pass": "green", "fail": "red", "inconclusive": "yellow"}


#: the exit code click gives its usage errors
_CLICK_USAGE = 2


class ValidateCommand(TyperCommand):
    """Usage errors of ``validate`` exit 3 (click's default 2 means "inconclusive" here).

    Typer may vendor click, so the error is recognised by its exit code, not its class."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            result: list[str] = super().parse_args(ctx, args)
        except Exception as exc:
            if getattr(exc, "exit_code", None) == _CLICK_USAGE:
                exc.exit_code = EXIT_USAGE  # type: ignore[attr-defined]
            raise
        return result


def _usage_error(message: str, as_json: bool, code: str = "usage_error") -> typer.Exit:
    if as_json:
        print_json({"error": message, "code": code, "exit_code": EXIT_USAGE})
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    return typer.Exit(EXIT_USAGE)


def validate(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number to validate.")],
    against: Annotated[
        str | None,
        typer.Option(help="Baseline alias, e.g. champion (default: the policy's baseline)."),
    ] = None,
    eval_file: Annotated[
        Path | None,
        typer.Option("--eval", help="Evaluation data, parquet or csv (needs --target)."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="Label column of the --eval data.")] = None,
    sensitive: Annotated[
        list[str] | None,
        typer.Option(help="Sensitive column of the --eval data for the fairness gate; repeatable."),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="Gate policy file, .toml (or .yaml with PyYAML installed)."),
    ] = None,
    save_policy: Annotated[
        bool,
        typer.Option(
            "--save-policy",
            help="Also save --policy as the model's policy (deploys follow its 'required').",
        ),
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print a JSON document.")] = False,
    report: Annotated[
        Path | None, typer.Option(help="Also write the report to FILE.md or FILE.html.")
    ] = None,
) -> None:
    """Run the gates of MODEL/VERSION and exit 0 (pass), 1 (fail), 2 (inconclusive) or 3
    (usage error). Without --policy the model's saved policy runs, else the default: schema
    and smoke; quality against --against when --eval is given; fairness with --sensitive."""
    from lockgate.gates.render import check_report_path, write_report

    try:
        if (eval_file is None) != (target is None):
            missing = "--target" if target is None else "--eval"
            raise _usage_error(f"--eval and --target go together: {missing} is missing", json)
        if report is not None:
            check_report_path(report)
        if save_policy and policy is None:
            raise _usage_error("--save-policy needs --policy FILE", json)
        with state(ctx).client() as client:
            result = client.workspace.gates.validate(
                model,
                version,
                against=against,
                eval_data=eval_file,
                target=target,
                sensitive=tuple(sensitive or ()),
                policy=policy,
                save_policy=save_policy,
                progress=None if json else _progress,
            )
    except LockgateError as exc:
        raise _usage_error(exc.message, json, exc.code) from None
    except OSError as exc:
        raise _usage_error(f"{exc.strerror or exc}: {exc.filename or ''}".strip(), json) from None
    if report is not None:
        try:
            write_report(result, report)
        except OSError as exc:
            raise _usage_error(f"cannot write the report: {exc}", json) from None
    if json:
        print_json(_document(result, report))
    else:
        _print(result, report)
    raise typer.Exit(result.exit_code)


def _document(result: ValidationReport, report: Path | None) -> dict[str, Any]:
    doc = result.to_dict()
    doc["exit_code"] = result.exit_code
    doc["report_file"] = None if report is None else str(report)
    return doc


def _progress(name: str, result: GateResult | None) -> None:
    if result is None:
        err_console.print(f"[dim]… {escape(name)}[/]", markup=True)
        return
    style = _STYLE[result.status]
    err_console.print(
        f"[{style}]{result.status:>12}[/] {escape(name)} ({result.duration_s:.2f} s)",
        markup=True,
    )


def _print(result: ValidationReport, report: Path | None) -> None:
    from rich.table import Table

    base = (
        f" against {result.model}/{result.baseline_version} (@{result.baseline_alias})"
        if result.baseline_version is not None
        else ""
    )
    t = Table(title=f"validation of {result.ref}{base}", title_justify="left")
    for col in ("gate", "status", "reason"):
        t.add_column(col, overflow="fold")
    for g in result.gates:
        t.add_row(escape(g.name), f"[{_STYLE[g.status]}]{g.status}[/]", escape(g.reason))
    console.print(t)
    note = result.inputs.get("baseline_note")
    if note:
        console.print(f"[yellow]note:[/] {escape(note)}; comparisons with a baseline were skipped")
    console.print(
        f"[bold {_STYLE[result.status]}]{result.status.upper()}[/] "
        f"(report {result.id}, exit {result.exit_code})"
        + (f"; written to {report}" if report is not None else "")
    )
