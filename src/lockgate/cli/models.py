"""``lockgate models``: register, list, show, alias, history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lockgate.cli.context import state
from lockgate.cli.output import console, handle_errors, print_json, table
from lockgate.errors import InvalidInputError
from lockgate.registry.models import VersionRef

app = typer.Typer(
    help="Register models, list and show versions, move aliases.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document.")]


def _pairs(values: list[str] | None, field: str, numeric: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidInputError.for_field(field, "KEY=VALUE", item)
        if numeric:
            try:
                out[key] = float(raw)
            except ValueError:
                raise InvalidInputError.for_field(f"{field} {key}", "a number", raw) from None
        else:
            out[key] = raw
    return out


@app.command("register")
@handle_errors
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name (lowercase letters, digits, - and _).")],
    path: Annotated[str, typer.Argument(help="Model file or folder (skops, onnx, ...).")],
    flavor: Annotated[
        str | None, typer.Option(help="Flavor; detected from the file if omitted.")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option(help="Reference (training) data, parquet or csv.")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Label column in the reference data (not an input).")
    ] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Allow a pickle/joblib artifact you produced.")
    ] = False,
    metric: Annotated[list[str] | None, typer.Option(help="KEY=NUMBER, repeatable.")] = None,
    param: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    json: JsonOpt = False,
) -> None:
    """Register a model file or folder as the next version of NAME."""
    metrics = _pairs(metric, "metric", numeric=True)
    params = _pairs(param, "param")
    tags = _pairs(tag, "tag")
    with state(ctx).client() as client:
        v = client.register_model(
            name,
            path,
            flavor=flavor,
            reference=reference,
            target=target,
            trust_pickle=trust_pickle,
            metrics=metrics,
            params=params,
            tags=tags,
            description=description,
        )
    if json:
        print_json(v.to_dict())
    else:
        console.print(f"registered [bold]{v.ref}[/] ({v.flavor}, sha256 {v.artifact_sha256[:12]})")


@app.command("list")
@handle_errors
def list_models(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List models with their latest version and aliases."""
    with state(ctx).client() as client:
        models = client.list_models()
    if json:
        print_json({"models": [m.to_dict() for m in models]})
        return
    table(
        "models",
        ["name", "latest", "aliases", "created"],
        [
            (
                m.name,
                m.latest_version,
                ", ".join(f"{a}->{v}" for a, v in sorted(m.aliases.items())),
                m.created_at.strftime("%Y-%m-%d %H:%M"),
            )
            for m in models
        ],
    )


@app.command("show")
@handle_errors
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME/VERSION or NAME@ALIAS.")],
    json: JsonOpt = False,
) -> None:
    """Show a model's versions, or one version in full."""
    parsed = VersionRef.parse(ref)
    with state(ctx).client() as client:
        if parsed.version is None and parsed.alias is None:
            model = client.get_model(parsed.name)
            versions = client.list_versions(parsed.name)
            if json:
                print_json({**model.to_dict(), "versions": [v.to_dict() for v in versions]})
                return
            table(
                f"{model.name}",
                ["version", "flavor", "aliases", "sha256", "created", "by"],
                [
                    (
                        v.version,
                        v.flavor,
                        ", ".join(v.aliases),
                        v.artifact_sha256[:12],
                        v.created_at.strftime("%Y-%m-%d %H:%M"),
                        v.created_by,
                    )
                    for v in versions
                ],
            )
            return
        v = client.get_version(ref)
    if json:
        print_json(v.to_dict())
        return
    console.print(f"[bold]{v.ref}[/]  flavor={v.flavor}  aliases={', '.join(v.aliases) or '-'}")
    console.print(
        f"artifact  sha256={v.artifact_sha256} size={v.artifact_size} ({v.artifact_kind})"
    )
    code = v.lineage.get("code") or {}
    if code:
        console.print(f"code      commit={code.get('commit')} dirty={code.get('dirty')}")
    table(
        "inputs",
        ["column", "dtype", "shape"],
        [(c.name, c.dtype, list(c.shape) or "") for c in v.signature.inputs],
    )
    if v.signature.outputs:
        table(
            "outputs",
            ["name", "dtype", "shape"],
            [(c.name, c.dtype, list(c.shape) or "") for c in v.signature.outputs],
        )
    if v.metrics:
        table("metrics", ["name", "value"], sorted(v.metrics.items()))


@app.command("alias")
@handle_errors
def alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias, e.g. champion.")],
    version: Annotated[int | None, typer.Argument(help="Version to point at.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    reason: Annotated[str, typer.Option(help="Why; kept in the alias history.")] = "",
    json: JsonOpt = False,
) -> None:
    """Point ALIAS at VERSION (or remove it with --delete); every move is kept."""
    if delete == (version is not None):
        raise InvalidInputError.for_field("VERSION", "a version, or --delete without one", version)
    with state(ctx).client() as client:
        if delete:
            move = client.delete_alias(name, alias_name, reason=reason)
        else:
            assert version is not None
            move = client.set_alias(name, alias_name, version, reason=reason)
    if json:
        print_json(move.to_dict())
    elif move.action == "delete":
        console.print(f"{name}@{alias_name} removed (was {move.from_version})")
    else:
        console.print(
            f"{name}@{alias_name} -> {move.to_version}"
            + (f" (was {move.from_version})" if move.from_version else "")
        )


@app.command("history")
@handle_errors
def history(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias_name: Annotated[str | None, typer.Option("--alias", help="Only this alias.")] = None,
    json: JsonOpt = False,
) -> None:
    """Every alias set, move and delete of a model, oldest first."""
    with state(ctx).client() as client:
        moves = client.alias_history(name, alias_name)
    if json:
        print_json({"model": name, "history": [m.to_dict() for m in moves]})
        return
    table(
        f"alias history of {name}",
        ["at", "alias", "action", "from", "to", "actor", "reason"],
        [
            (
                m.at.strftime("%Y-%m-%d %H:%M:%S"),
                m.alias,
                m.action,
                m.from_version,
                m.to_version,
                m.actor,
                m.reason,
            )
            for m in moves
        ],
    )
