"""``lockgate monitors``: declarative rules over an endpoint's traffic and feedback.

Monitors live in the metadata store; a running ``lockgate server`` evaluates them on its
controller's schedule and posts alerts to their webhooks. ``lockgate monitors check``
evaluates them here and now (the same rules, the same alerts), e.g. from cron.
"""

from __future__ import annotations

import os
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from lockgate.cli.context import state
from lockgate.cli.output import console, err_console, handle_errors, print_json, table
from lockgate.errors import InvalidInputError

if TYPE_CHECKING:
    from lockgate.monitoring.monitors import Alert
    from lockgate.monitoring.records import MonitorInfo
    from lockgate.monitoring.service import MonitorService

app = typer.Typer(
    help="Monitors: drift, quality, error-rate and latency rules that raise alerts.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document.")]
ReasonOpt = Annotated[str, typer.Option(help="Why; kept in the event log.")]


class Kind(StrEnum):
    drift = "drift"
    quality = "quality"
    error_rate = "error_rate"
    latency = "latency"


def _service(ctx: typer.Context) -> MonitorService:
    from lockgate.monitoring.service import MonitorService
    from lockgate.workspace import Workspace

    return MonitorService(Workspace(state(ctx).settings()), background=False)


def _secret_from_env(name: str | None, field: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise InvalidInputError.for_field(field, f"a non-empty environment variable {name}", None)
    return value


def _print_monitors(infos: list[MonitorInfo]) -> None:
    def val(v: float | None) -> str:
        return "" if v is None else f"{v:.4g}"

    table(
        None,
        [
            "name",
            "endpoint",
            "kind",
            "rule",
            "every",
            "state",
            "value",
            "last evaluated",
            "webhooks",
        ],
        [
            (
                i.name,
                i.spec.endpoint,
                i.spec.kind,
                i.spec.describe(),
                f"{i.spec.interval:g}s",
                i.state if i.spec.enabled else f"{i.state} (disabled)",
                val(i.value),
                "" if i.last_evaluated_at is None else f"{i.last_evaluated_at:%Y-%m-%d %H:%M:%S}",
                len(i.spec.webhooks),
            )
            for i in infos
        ],
    )


def _print_alerts(alerts: list[Alert]) -> None:
    table(
        None,
        ["id", "time (UTC)", "monitor", "endpoint", "status", "value", "delivery", "message"],
        [
            (
                a.id,
                f"{a.at:%Y-%m-%d %H:%M:%S}",
                a.monitor,
                a.endpoint,
                a.status,
                "" if a.value is None else f"{a.value:.4g}",
                a.deliveries.get("delivery", ""),
                a.message,
            )
            for a in alerts
        ],
    )


@app.command("add")
@handle_errors
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Monitor name (unique).")],
    endpoint: Annotated[str, typer.Option(help="Endpoint watched.")],
    kind: Annotated[Kind, typer.Option(help="What is watched.")],
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Fires at: drift share >= T (default 0.5); quality metric < T (> T for "
            "losses); error rate > T (default 0.05); latency ms > T."
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="quality: accuracy, precision, recall, f1, roc_auc, log_loss, mae, rmse, r2."
        ),
    ] = None,
    window: Annotated[str, typer.Option(help="Window of each evaluation: 30m, 1h, 1d.")] = "1h",
    interval: Annotated[str, typer.Option(help="Time between evaluations: 30s, 5m.")] = "1m",
    quantile: Annotated[float, typer.Option(help="latency: the quantile compared.")] = 0.99,
    min_samples: Annotated[
        int | None,
        typer.Option(help="Rows/labels/requests a window needs (default 100/30/20/20)."),
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="Watch this version (default: the primary).")
    ] = None,
    column: Annotated[
        list[str] | None, typer.Option("--column", help="drift: only this column (repeatable).")
    ] = None,
    positive: Annotated[
        str | None, typer.Option(help="quality: the positive class of a binary classifier.")
    ] = None,
    include_4xx: Annotated[
        bool, typer.Option("--include-4xx", help="error_rate: count 4xx answers too.")
    ] = False,
    webhook: Annotated[
        list[str] | None, typer.Option("--webhook", help="http(s) URL alerts are posted to.")
    ] = None,
    webhook_secret_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the webhooks' signing secret (default: the "
            "server's LOCKGATE_WEBHOOK_SECRET). The secret is never taken on the command line."
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    disabled: Annotated[bool, typer.Option("--disabled", help="Store it switched off.")] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite a monitor of that name.")
    ] = False,
    reason: ReasonOpt = "",
    json: JsonOpt = False,
) -> None:
    """Add a monitor NAME on an endpoint; a running server evaluates it every --interval over
    the last --window and alerts when it starts firing and when it resolves."""
    secret = _secret_from_env(webhook_secret_env, "--webhook-secret-env")
    spec: dict[str, Any] = {
        "name": name,
        "endpoint": endpoint,
        "kind": kind.value,
        "threshold": threshold,
        "metric": metric,
        "window": window,
        "interval": interval,
        "quantile": quantile,
        "min_samples": min_samples,
        "version": version,
        "columns": column or [],
        "positive": positive,
        "include_4xx": include_4xx,
        "webhooks": [{"url": u, "secret": secret} for u in webhook or []],
        "description": description,
        "enabled": not disabled,
    }
    info = _service(ctx).add(spec, replace=replace, reason=reason)
    if json:
        print_json(info.to_dict())
    else:
        console.print(
            f"monitor {info.name} on {info.spec.endpoint}: fires when "
            f"{info.spec.describe()}, evaluated every {info.spec.interval:g}s"
        )


@app.command("apply")
@handle_errors
def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A .toml or .json file of monitors.")],
    reason: ReasonOpt = "",
    json: JsonOpt = False,
) -> None:
    """Create or replace every monitor of FILE: ``[[monitor]]`` tables (TOML) or a list
    (JSON) with the fields of ``monitors add``; a webhook is a URL or ``{url, secret_env}``."""
    if file.suffix.lower() == ".toml":
        raw: Any = tomllib.loads(file.read_text()).get("monitor", [])
    elif file.suffix.lower() == ".json":
        raw = orjson.loads(file.read_bytes())
    else:
        raise InvalidInputError.for_field("FILE", "a .toml or .json file", file.name)
    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        raise InvalidInputError.for_field("FILE", "a list of monitor tables", type(raw).__name__)
    svc = _service(ctx)
    infos = []
    for i, m in enumerate(raw):
        hooks = []
        for h in m.get("webhooks") or []:
            if isinstance(h, dict) and "secret_env" in h:
                field = f"monitor[{i}].webhooks.secret_env"
                h = {"url": h.get("url"), "secret": _secret_from_env(h["secret_env"], field)}
            elif isinstance(h, dict) and "secret" in h:
                raise InvalidInputError.for_field(
                    f"monitor[{i}].webhooks", "secret_env (no secret in files)", "secret"
                )
            hooks.append(h)
        infos.append(svc.add({**m, "webhooks": hooks}, replace=True, reason=reason))
    if json:
        print_json({"monitors": [i.to_dict() for i in infos]})
    else:
        console.print(f"{len(infos)} monitor(s) applied from {file}")


@app.command("list")
@handle_errors
def list_monitors(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's.")] = None,
    json: JsonOpt = False,
) -> None:
    """Monitors with their rule, state and last value."""
    infos = _service(ctx).list_monitors(endpoint)
    if json:
        print_json({"monitors": [i.to_dict() for i in infos]})
    elif not infos:
        console.print("no monitors")
    else:
        _print_monitors(infos)


@app.command("show")
@handle_errors
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Monitor name.")],
    json: JsonOpt = False,
) -> None:
    """A monitor's definition, state and last measurement."""
    info = _service(ctx).get(name)
    if json:
        print_json(info.to_dict())
    else:
        _print_monitors([info])
        console.print_json(data=info.measurement or {})


@app.command("remove")
@handle_errors
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Monitor name.")],
    reason: ReasonOpt = "",
    json: JsonOpt = False,
) -> None:
    """Delete a monitor (its alerts are kept)."""
    info = _service(ctx).remove(name, reason=reason)
    if json:
        print_json({"removed": info.name, "endpoint": info.spec.endpoint})
    else:
        console.print(f"monitor {info.name} removed")


@app.command("check")
@handle_errors
def check(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this monitor.")] = None,
    json: JsonOpt = False,
) -> None:
    """Evaluate monitors now (every enabled one, or NAME): alerts are raised and posted to
    webhooks exactly as the server would."""
    svc = _service(ctx)
    alerts = svc.evaluate(name)
    infos = [svc.get(name)] if name else svc.list_monitors()
    if json:
        print_json(
            {"alerts": [a.to_dict() for a in alerts], "monitors": [i.to_dict() for i in infos]}
        )
        return
    _print_monitors(infos)
    for a in alerts:
        err_console.print(a.message)


@app.command("alerts")
@handle_errors
def alerts(
    ctx: typer.Context,
    monitor: Annotated[str | None, typer.Option(help="Only this monitor's.")] = None,
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's.")] = None,
    n: Annotated[int, typer.Option("-n", "--limit", min=1, help="How many, newest first.")] = 20,
    json: JsonOpt = False,
) -> None:
    """Alerts raised, newest first, with their webhook delivery."""
    found = _service(ctx).alerts(monitor=monitor, endpoint=endpoint, limit=n)
    if json:
        print_json({"alerts": [{**a.to_dict(), "delivery": a.deliveries} for a in found]})
    elif not found:
        console.print("no alerts")
    else:
        _print_alerts(found)
