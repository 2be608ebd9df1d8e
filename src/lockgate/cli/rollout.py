"""``lockgate rollout``: start, watch and steer shadow, canary and A/B rollouts.

The commands change the rollout's state in the metadata store; a running ``lockgate server``
applies the traffic policy within a poll interval and its controller runs the analyses.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from lockgate.cli.context import state
from lockgate.cli.output import console, handle_errors, print_json, table
from lockgate.errors import InvalidInputError
from lockgate.rollout.service import RolloutInfo, RolloutService

app = typer.Typer(
    help="Shadow, canary and A/B rollouts with automatic promotion and rollback.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document.")]
EndpointArg = Annotated[str, typer.Argument(help="Endpoint name.")]
ReasonOpt = Annotated[str, typer.Option(help="Why; kept in the history and the event log.")]


class Strategy(StrEnum):
    shadow = "shadow"
    canary = "canary"
    ab = "ab"
    shadow_then_canary = "shadow-then-canary"


def _numbers(text: str | None, field: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise InvalidInputError.for_field(
            field, "comma-separated numbers, e.g. 5,25,50,100", text
        ) from None


@app.command("start")
@handle_errors
def start(
    ctx: typer.Context,
    endpoint: EndpointArg,
    candidate: Annotated[int, typer.Option(help="Version to roll out.")],
    strategy: Annotated[Strategy, typer.Option(help="How the candidate takes traffic.")] = (
        Strategy.canary
    ),
    steps: Annotated[
        str | None, typer.Option(help="Canary weights in percent, e.g. 5,25,50,100.")
    ] = None,
    interval: Annotated[str, typer.Option(help="Analysis interval: 60s, 5m, 1h.")] = "60s",
    max_failures: Annotated[
        int, typer.Option(help="Failed analyses in a step before the rollback.")
    ] = 2,
    weights: Annotated[
        str | None, typer.Option(help="A/B weights baseline,candidate (default 50,50).")
    ] = None,
    shadow_percent: Annotated[float, typer.Option(help="Share of requests shadowed.")] = 100.0,
    key_column: Annotated[
        str | None, typer.Option(help="Input column that makes assignment sticky.")
    ] = None,
    max_error_rate: Annotated[float | None, typer.Option(help="Candidate 5xx share.")] = None,
    latency_ratio: Annotated[
        float | None, typer.Option(help="Candidate p99 over the baseline p99, at most.")
    ] = None,
    slo_p99_ms: Annotated[float | None, typer.Option(help="Absolute p99 SLO in ms.")] = None,
    min_agreement: Annotated[
        float | None, typer.Option(help="Shadow label agreement, at least.")
    ] = None,
    min_requests: Annotated[
        int | None, typer.Option(help="Candidate rows per window before judging.")
    ] = None,
    min_labels: Annotated[int | None, typer.Option(help="Labels before judging quality.")] = None,
    metric: Annotated[
        str | None, typer.Option(help="A/B decision metric (a feedback business metric).")
    ] = None,
    goal: Annotated[str | None, typer.Option(help="A/B: maximize or minimize the metric.")] = None,
    min_samples: Annotated[
        int | None, typer.Option(help="A/B: labelled samples per arm before a winner.")
    ] = None,
    reason: ReasonOpt = "",
    force: Annotated[
        bool, typer.Option("--force", help="Start even if the gates' required policy failed.")
    ] = False,
    force_reason: Annotated[
        str, typer.Option(help="Why the gates are overridden; recorded (needs --force).")
    ] = "",
    json: JsonOpt = False,
) -> None:
    """Start rolling version CANDIDATE out on ENDPOINT against its current primary. A model
    whose saved gate policy is required rolls out only versions that passed it, unless
    --force --force-reason."""
    analysis = {
        k: v
        for k, v in {
            "max_error_rate": max_error_rate,
            "max_latency_ratio": latency_ratio,
            "slo_p99_ms": slo_p99_ms,
            "min_agreement": min_agreement,
            "min_requests": min_requests,
            "min_labels": min_labels,
            "metric": metric,
            "goal": goal,
            "min_samples": min_samples,
        }.items()
        if v is not None
    }
    with state(ctx).client() as client:
        info = RolloutService(client.workspace).start(
            endpoint,
            candidate,
            strategy=strategy.value,
            steps=_numbers(steps, "steps"),
            interval=interval,
            max_failures=max_failures,
            ab_weights=_numbers(weights, "weights"),
            shadow_percent=shadow_percent,
            key_column=key_column,
            analysis=analysis,
            reason=reason,
            force=force,
            force_reason=force_reason,
        )
    _show(info, json, brief=True)


@app.command("status")
@handle_errors
def status(ctx: typer.Context, endpoint: EndpointArg, json: JsonOpt = False) -> None:
    """State, step, weights, the latest analysis and the history of ENDPOINT's rollout."""
    with state(ctx).client() as client:
        info = RolloutService(client.workspace).status(endpoint)
    _show(info, json)


@app.command("list")
@handle_errors
def list_rollouts(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint.")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only active rollouts.")] = False,
    json: JsonOpt = False,
) -> None:
    """Rollouts, newest first."""
    with state(ctx).client() as client:
        infos = RolloutService(client.workspace).list_rollouts(endpoint=endpoint, active=active)
    if json:
        print_json({"rollouts": [i.to_dict() for i in infos]})
        return
    table(
        "rollouts",
        ["id", "endpoint", "versions", "strategy", "state", "candidate %", "updated"],
        [
            (
                i.id,
                i.endpoint,
                f"{i.baseline} -> {i.candidate}",
                i.plan.strategy,
                i.state.phase + (" (paused)" if i.state.paused else ""),
                f"{i.to_dict()['weights']['candidate']:g}",
                i.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for i in infos
        ],
    )


def _command(ctx: typer.Context, endpoint: str, action: str, reason: str, json: bool) -> None:
    with state(ctx).client() as client:
        svc = RolloutService(client.workspace)
        info = getattr(svc, action)(endpoint, reason=reason)
    _show(info, json, brief=True)


@app.command("pause")
@handle_errors
def pause(
    ctx: typer.Context, endpoint: EndpointArg, reason: ReasonOpt = "", json: JsonOpt = False
) -> None:
    """Stop analysing and advancing; traffic stays where it is."""
    _command(ctx, endpoint, "pause", reason, json)


@app.command("resume")
@handle_errors
def resume(
    ctx: typer.Context, endpoint: EndpointArg, reason: ReasonOpt = "", json: JsonOpt = False
) -> None:
    """Analyse and advance again, from a fresh window."""
    _command(ctx, endpoint, "resume", reason, json)


@app.command("promote")
@handle_errors
def promote(
    ctx: typer.Context, endpoint: EndpointArg, reason: ReasonOpt = "", json: JsonOpt = False
) -> None:
    """Send all traffic to the candidate now and make it the champion."""
    _command(ctx, endpoint, "promote", reason, json)


@app.command("abort")
@handle_errors
def abort(
    ctx: typer.Context, endpoint: EndpointArg, reason: ReasonOpt = "", json: JsonOpt = False
) -> None:
    """Send all traffic back to the baseline at once and end the rollout."""
    _command(ctx, endpoint, "abort", reason, json)


def _show(info: RolloutInfo, json: bool, *, brief: bool = False) -> None:
    doc = info.to_dict()
    if json:
        print_json(doc)
        return
    paused = " (paused)" if info.state.paused else ""
    step = (
        f", step {info.state.step + 1} of {len(info.plan.steps)}"
        if info.state.phase == "canary"
        else ""
    )
    console.print(
        f"rollout {info.id} on [bold]{info.endpoint}[/]: {info.model}/{info.baseline} -> "
        f"{info.candidate} ({info.plan.strategy}) [bold]{info.state.phase}[/]{paused}{step}"
    )
    w = doc["weights"]
    console.print(
        f"traffic: baseline {w['baseline']:g}%, candidate {w['candidate']:g}%"
        + (" + shadow copy" if doc["shadow"] else "")
        + f"; failures {info.state.failures}/{info.plan.max_failures}"
        + (f"; next analysis {doc['next_analysis_at']}" if doc["next_analysis_at"] else "")
    )
    if brief:
        return
    analysis: dict[str, Any] | None = info.analysis
    if analysis:
        console.print(f"latest analysis: [bold]{analysis['outcome']}[/] - {analysis['reason']}")
        table(
            None,
            ["check", "verdict", "value", "threshold", "detail"],
            [
                (c["name"], c["verdict"], _fmt(c["value"]), _fmt(c["threshold"]), c["detail"])
                for c in analysis["checks"]
            ],
        )
        ab = (analysis.get("figures") or {}).get("ab")
        if ab:
            lo, hi = ab["ci"]
            console.print(
                f"A/B {ab['metric']}: baseline {_fmt(ab['baseline']['mean'])} "
                f"(n={ab['baseline']['n']}), candidate {_fmt(ab['candidate']['mean'])} "
                f"(n={ab['candidate']['n']}), difference {_fmt(ab['difference'])} "
                f"[{_fmt(lo)}, {_fmt(hi)}] at {ab['confidence']:.0%}, p={_fmt(ab['p_value'])}; "
                f"winner: {ab['winner'] or 'none yet'} ({ab['reason']})"
            )
    table(
        "history",
        ["at", "actor", "action", "phase", "reason"],
        [
            (h.at.strftime("%Y-%m-%d %H:%M:%S"), h.actor, h.action, h.to_phase, h.reason)
            for h in info.history
        ],
    )


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
