"""``lockgate server``, ``lockgate deploy`` and ``lockgate endpoints``."""

from __future__ import annotations

from typing import Annotated

import typer

from lockgate.cli.context import state
from lockgate.cli.output import console, handle_errors, print_json, table
from lockgate.errors import InvalidInputError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document.")]

endpoints_app = typer.Typer(help="List, show and delete endpoints.", no_args_is_help=True)


@handle_errors
def server(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (LOCKGATE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (LOCKGATE_PORT).")] = None,
    log_durability: Annotated[
        str | None, typer.Option(help="Prediction log durability: async or sync.")
    ] = None,
) -> None:
    """Serve every endpoint: control plane /api/v1, data plane /v2 and /v1/endpoints,
    /metrics. SIGTERM stops accepting, finishes in-flight requests, flushes the log."""
    import logging

    from lockgate.server import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = state(ctx).settings(log_durability=log_durability)
    h = host or settings.host
    p = port if port is not None else settings.port
    console.print(
        f"lockgate serving on http://{h}:{p}  (OIP /v2, MLflow /v1/endpoints, "
        f"API /api/v1/docs, /metrics)"
    )
    run(settings, host=h, port=p)


@handle_errors
def deploy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int | None, typer.Option(help="Version to serve.")] = None,
    alias: Annotated[str | None, typer.Option(help="Alias to resolve, e.g. champion.")] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Endpoint name (default: the model name).")
    ] = None,
    batching: Annotated[
        bool | None, typer.Option("--batching/--no-batching", help="Adaptive batching.")
    ] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Rows per model call.")] = None,
    max_wait_ms: Annotated[float | None, typer.Option(help="Longest wait for a batch.")] = None,
    max_queue: Annotated[int | None, typer.Option(help="Rows queued before 503.")] = None,
    timeout_ms: Annotated[float | None, typer.Option(help="Per-request deadline.")] = None,
    reason: Annotated[str, typer.Option(help="Why; kept in the event log.")] = "",
    force: Annotated[
        bool, typer.Option("--force", help="Deploy although the required gates did not pass.")
    ] = False,
    force_reason: Annotated[
        str, typer.Option(help="Why --force is needed; required with it, kept in the event log.")
    ] = "",
    json: JsonOpt = False,
) -> None:
    """Point an endpoint at a version of MODEL (--version N or --alias A). A running server
    switches within 2 s, loading the new version before the switch. A model whose saved gate
    policy is required deploys only versions that passed it, unless --force --force-reason."""
    if (version is None) == (alias is None):
        raise InvalidInputError.for_field(
            "--version/--alias", "exactly one of them", "both" if version is not None else "neither"
        )
    opts = {
        "enabled": batching,
        "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms,
        "max_queue": max_queue,
        "timeout_ms": timeout_ms,
    }
    given = {k: v for k, v in opts.items() if v is not None}
    with state(ctx).client() as client:
        ws = client.workspace
        cfg = None
        if given:
            name = endpoint or model
            try:
                current = ws.endpoints.get(name).batching.to_dict()
            except LookupError:
                current = {}
            cfg = {**current, **given}
        info = ws.endpoints.deploy(
            model,
            version=version,
            alias=alias,
            endpoint=endpoint,
            batching=cfg,
            reason=reason,
            force=force,
            force_reason=force_reason,
        )
    if json:
        print_json(info.to_dict())
    else:
        console.print(
            f"endpoint [bold]{info.name}[/] -> {info.model}/{info.policy.primary} "
            f"(generation {info.generation}, batching "
            f"{'on' if info.batching.enabled else 'off'})"
        )


@endpoints_app.command("list")
@handle_errors
def list_endpoints(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List endpoints and the versions they serve."""
    with state(ctx).client() as client:
        infos = client.workspace.endpoints.list()
    if json:
        print_json({"endpoints": [i.to_dict() for i in infos]})
        return
    table(
        "endpoints",
        ["name", "model", "version", "batching", "generation", "updated"],
        [
            (
                i.name,
                i.model,
                i.policy.primary,
                "on" if i.batching.enabled else "off",
                i.generation,
                i.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for i in infos
        ],
    )


@endpoints_app.command("show")
@handle_errors
def show_endpoint(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    json: JsonOpt = False,
) -> None:
    """Show an endpoint's traffic policy and batching."""
    with state(ctx).client() as client:
        info = client.workspace.endpoints.get(name)
    if json:
        print_json(info.to_dict())
        return
    console.print(
        f"[bold]{info.name}[/] serves {info.model}/{info.policy.primary}"
        f" (generation {info.generation})"
    )
    table("batching", ["setting", "value"], sorted(info.batching.to_dict().items()))


@endpoints_app.command("delete")
@handle_errors
def delete_endpoint(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the event log.")] = "",
    json: JsonOpt = False,
) -> None:
    """Stop serving an endpoint (running servers drop it within 2 s)."""
    with state(ctx).client() as client:
        client.workspace.endpoints.delete(name, reason=reason)
    if json:
        print_json({"deleted": name})
    else:
        console.print(f"endpoint {name} deleted")
