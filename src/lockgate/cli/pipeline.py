"""``lockgate pipeline`` and ``lockgate policies``: training pipelines per model and the
automation policies per endpoint that retrain or roll back on alerts and schedules."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer

from lockgate.cli.context import state
from lockgate.cli.output import console, handle_errors, print_json, table
from lockgate.errors import InvalidInputError

app = typer.Typer(
    help="Training pipelines: a model's entry point, run in a subprocess, gated and rolled out.",
    no_args_is_help=True,
)
policies_app = typer.Typer(
    help="Automation policies: alerts and schedules -> retrain or roll back.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document.")]
ModelArg = Annotated[str, typer.Argument(help="Model name.")]
EndpointArg = Annotated[str, typer.Argument(help="Endpoint name.")]
ReasonOpt = Annotated[str, typer.Option(help="Why; kept in the event log.")]
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
#: how a schedule is written, in the help of every schedule option
_WHEN = "a cron expression in UTC ('0 3 * * *', '@daily') or '@every DURATION' (30s, 15m, 2h, 1d)"


def seconds(text: str | None, field: str) -> float | None:
    """``90``, ``2s``, ``5m``, ``1h`` or ``7d`` as seconds."""
    if text is None:
        return None
    t = text.strip().lower()
    scale = _UNITS.get(t[-1:])
    try:
        value = float(t[:-1] if scale else t) * (scale or 1.0)
    except ValueError:
        raise InvalidInputError.for_field(
            field, "a duration such as 90, 2s, 5m, 1h, 7d", text
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError.for_field(field, "a positive duration", text)
    return value


def _steps(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise InvalidInputError.for_field("steps", "comma-separated percentages", text) from None


def _show_spec(doc: dict[str, Any]) -> None:
    table(
        f"pipeline of {doc['model']}",
        ["setting", "value"],
        [(k, "" if v is None else str(v)) for k, v in doc.items() if k != "model"],
    )


@app.command("set")
@handle_errors
def set_pipeline(
    ctx: typer.Context,
    model: ModelArg,
    entry: Annotated[
        str, typer.Option(help="pkg.module:function, or a script path[.py][:function].")
    ],
    schedule: Annotated[
        str | None,
        typer.Option(
            help=f"Retrain on its own: {_WHEN}. A running server fires it, held back like "
            "any retrain of the endpoint (its policy's cool-down and concurrency limit, an "
            "active rollout)."
        ),
    ] = None,
    endpoint: Annotated[str | None, typer.Option(help="Endpoint (default: MODEL).")] = None,
    strategy: Annotated[
        str, typer.Option(help="shadow, canary, shadow-then-canary or none.")
    ] = "shadow-then-canary",
    steps: Annotated[str | None, typer.Option(help="Canary weights, e.g. 10,50,100.")] = None,
    interval: Annotated[str, typer.Option(help="Rollout analysis interval: 60s, 5m.")] = "60s",
    timeout: Annotated[str, typer.Option(help="Training timeout: 600, 10m.")] = "600",
    window: Annotated[str, typer.Option(help="Training window of traffic: 7d, 12h.")] = "7d",
    min_rows: Annotated[int, typer.Option(help="Labelled rows needed to train.")] = 100,
    holdout: Annotated[float, typer.Option(help="Share held out for the gates.")] = 0.3,
    target: Annotated[
        str | None, typer.Option(help="Label column name (default: the parent's).")
    ] = None,
    reason: ReasonOpt = "",
    json: JsonOpt = False,
) -> None:
    """Define (or replace) MODEL's training pipeline."""
    from lockgate.automation.pipelines import PipelineSpec, PipelineStore

    doc: dict[str, Any] = {
        "model": model,
        "entry": entry,
        "schedule": schedule,
        "endpoint": endpoint,
        "strategy": strategy,
        "interval": seconds(interval, "interval"),
        "timeout": seconds(timeout, "timeout"),
        "window": seconds(window, "window"),
        "min_rows": min_rows,
        "holdout": holdout,
        "target": target,
    }
    if steps is not None:
        doc["steps"] = _steps(steps)
    with state(ctx).client() as client:
        spec = PipelineStore(client.workspace).set(PipelineSpec.from_dict(doc), reason=reason)
    if json:
        print_json(spec.to_dict())
    else:
        console.print(f"[green]✓[/] pipeline of {model}: {spec.entry}")


@app.command("show")
@handle_errors
def show(ctx: typer.Context, model: ModelArg, json: JsonOpt = False) -> None:
    """MODEL's pipeline definition."""
    from lockgate.automation.pipelines import PipelineStore

    with state(ctx).client() as client:
        doc = PipelineStore(client.workspace).get(model).to_dict()
    print_json(doc) if json else _show_spec(doc)


@app.command("list")
@handle_errors
def list_pipelines(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Every pipeline."""
    from lockgate.automation.pipelines import PipelineStore

    with state(ctx).client() as client:
        docs = [p.to_dict() for p in PipelineStore(client.workspace).list()]
    if json:
        print_json({"pipelines": docs})
        return
    table(
        "pipelines",
        ["model", "entry", "schedule", "endpoint", "strategy"],
        [
            (
                d["model"],
                d["entry"],
                d["schedule"] or "",
                d["endpoint"] or d["model"],
                d["strategy"],
            )
            for d in docs
        ],
    )


@app.command("remove")
@handle_errors
def remove(
    ctx: typer.Context, model: ModelArg, reason: ReasonOpt = "", json: JsonOpt = False
) -> None:
    """Delete MODEL's pipeline (its runs stay)."""
    from lockgate.automation.pipelines import PipelineStore

    with state(ctx).client() as client:
        spec = PipelineStore(client.workspace).remove(model, reason=reason)
    print_json(spec.to_dict()) if json else console.print(f"[green]✓[/] removed {model}'s pipeline")


@app.command("run")
@handle_errors
def run(
    ctx: typer.Context,
    model: ModelArg,
    data: Annotated[
        str | None,
        typer.Option(help="Train on this .parquet/.csv instead of the logged, labelled traffic."),
    ] = None,
    timeout: Annotated[
        str | None, typer.Option(help="Training timeout (default: the pipeline's).")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Run MODEL's pipeline now: train in a subprocess, register, gate, start the rollout.
    Exit 0 when the candidate passed the gates, 1 when it did not, 2 when training failed."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from lockgate.automation.runner import PipelineRunner

    with state(ctx).client() as client:
        runner = PipelineRunner(client.workspace)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=json,
        ) as progress:
            task = progress.add_task(f"pipeline of {model}", total=1.0)

            def say(stage: str, fraction: float) -> None:
                progress.update(task, completed=fraction, description=f"{model}: {stage}")

            outcome = runner.run(
                model, data=data, timeout=seconds(timeout, "timeout"), progress=say
            )
    doc = outcome.to_dict()
    if json:
        print_json(doc)
    else:
        colour = "green" if outcome.ok else "red"
        console.print(
            f"[{colour}]{outcome.status}[/] run {outcome.run_id} of {model} in "
            f"{outcome.seconds:.1f} s: candidate v{outcome.candidate_version or '-'}, "
            f"gates {outcome.gates or '-'}, rollout {outcome.rollout or '-'}"
            + (f"\n  {outcome.error}" if outcome.error else "")
        )
    code = 0 if outcome.ok else (1 if outcome.status == "gates_failed" else 2)
    raise typer.Exit(code)


@app.command("runs")
@handle_errors
def runs(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    limit: Annotated[int, typer.Option(help="Newest runs shown.")] = 20,
    json: JsonOpt = False,
) -> None:
    """Pipeline runs, newest first."""
    from lockgate.automation.runner import PipelineRunner

    with state(ctx).client() as client:
        docs = PipelineRunner(client.workspace).runs(model, limit)
    if json:
        print_json({"runs": docs})
        return
    table(
        "pipeline runs",
        ["run", "model", "status", "trigger", "started", "candidate", "gates", "error"],
        [
            (
                d["run"], d["model"], d["status"], (d["trigger"] or {}).get("type", ""),
                d["started_at"][:19], d["candidate_version"] or "", d["gates"] or "",
                (d["error"] or "")[:60],
            )
            for d in docs
        ],
    )  # fmt: skip


# -- policies ---------------------------------------------------------------------------------


@policies_app.command("set")
@handle_errors
def set_policy(
    ctx: typer.Context,
    endpoint: EndpointArg,
    on_drift: Annotated[str, typer.Option(help="retrain or none.")] = "retrain",
    on_quality: Annotated[str, typer.Option(help="retrain or none.")] = "retrain",
    on_slo: Annotated[str, typer.Option(help="rollback or none.")] = "rollback",
    schedule: Annotated[
        str | None, typer.Option(help=f"Scheduled retrains of the endpoint's model: {_WHEN}.")
    ] = None,
    online: Annotated[
        str | None, typer.Option(help=f"partial_fit updates from feedback: {_WHEN}.")
    ] = None,
    cooldown: Annotated[str, typer.Option(help="Between retrains of the endpoint: 1h.")] = "1h",
    max_concurrent: Annotated[int, typer.Option(help="Retrains running at once, at most.")] = 1,
    disabled: Annotated[bool, typer.Option("--disabled", help="Store it switched off.")] = False,
    reason: ReasonOpt = "",
    json: JsonOpt = False,
) -> None:
    """Define (or replace) ENDPOINT's automation policy."""
    from lockgate.automation.policies import AutomationPolicy
    from lockgate.automation.service import AutomationService

    policy = AutomationPolicy.from_dict(
        {
            "endpoint": endpoint,
            "on_drift": on_drift,
            "on_quality": on_quality,
            "on_slo": on_slo,
            "schedule": schedule,
            "online": online,
            "cooldown": 0.0 if cooldown.strip() in ("0", "0s") else seconds(cooldown, "cooldown"),
            "max_concurrent": max_concurrent,
            "enabled": not disabled,
        }
    )
    with state(ctx).client() as client:
        AutomationService(client.workspace).set_policy(policy, reason=reason)
    print_json(policy.to_dict()) if json else console.print(
        f"[green]✓[/] automation policy of {endpoint} saved"
    )


@policies_app.command("show")
@handle_errors
def show_policy(ctx: typer.Context, endpoint: EndpointArg, json: JsonOpt = False) -> None:
    """ENDPOINT's automation policy."""
    from lockgate.automation.service import AutomationService

    with state(ctx).client() as client:
        doc = AutomationService(client.workspace).get_policy(endpoint).to_dict()
    if json:
        print_json(doc)
    else:
        table(f"automation policy of {endpoint}", ["setting", "value"],
              [(k, "" if v is None else str(v)) for k, v in doc.items()])  # fmt: skip


@policies_app.command("list")
@handle_errors
def list_policies(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Every automation policy."""
    from lockgate.automation.service import AutomationService

    with state(ctx).client() as client:
        docs = [p.to_dict() for p in AutomationService(client.workspace).list_policies()]
    if json:
        print_json({"policies": docs})
        return
    table(
        "automation policies",
        ["endpoint", "drift", "quality", "slo", "schedule", "online", "cooldown s", "enabled"],
        [
            (d["endpoint"], d["on_drift"], d["on_quality"], d["on_slo"], d["schedule"] or "",
             d["online"] or "", f"{d['cooldown']:g}", d["enabled"])
            for d in docs
        ],
    )  # fmt: skip


@policies_app.command("remove")
@handle_errors
def remove_policy(
    ctx: typer.Context, endpoint: EndpointArg, reason: ReasonOpt = "", json: JsonOpt = False
) -> None:
    """Delete ENDPOINT's automation policy."""
    from lockgate.automation.service import AutomationService

    with state(ctx).client() as client:
        policy = AutomationService(client.workspace).remove_policy(endpoint, reason=reason)
    print_json(policy.to_dict()) if json else console.print(
        f"[green]✓[/] removed {endpoint}'s automation policy"
    )


@policies_app.command("decisions")
@handle_errors
def decisions(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Argument(help="Only this endpoint.")] = None,
    limit: Annotated[int, typer.Option(help="Newest decisions shown.")] = 20,
    json: JsonOpt = False,
) -> None:
    """The policy engine's decisions, taken or skipped, with their reasons, newest first."""
    from lockgate.automation.service import AutomationService

    with state(ctx).client() as client:
        docs = AutomationService(client.workspace).decisions(endpoint, limit)
    if json:
        print_json({"decisions": docs})
        return
    table(
        "automation decisions",
        ["at", "endpoint", "trigger", "action", "taken", "reason"],
        [(d["at"][:19], d["endpoint"], d["trigger"], d["action"], d["taken"], d["reason"])
         for d in docs],
    )  # fmt: skip
