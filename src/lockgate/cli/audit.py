"""``lockgate events``, ``lockgate kpis``, ``lockgate card`` and ``lockgate audit``: the audit
trail, delivery and operations KPIs, model cards and record-keeping exports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lockgate.cli.context import state
from lockgate.cli.output import EXIT_ERROR, console, fail, handle_errors, print_json, table
from lockgate.cli.predictions import parse_time
from lockgate.errors import InvalidInputError

if TYPE_CHECKING:
    from lockgate.audit.service import AuditService
    from lockgate.client import Client

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document.")]
_TIME_HELP = "ISO 8601 time (no zone means UTC) or a duration back from now: 30m, 1h, 7d."

events_app = typer.Typer(
    help="The audit trail: list, verify, checkpoint and prune events.",
    invoke_without_command=True,
)
audit_app = typer.Typer(help="Record-keeping exports and their verification.", no_args_is_help=True)


def _service(client: Client) -> AuditService:
    from lockgate.audit.service import AuditService

    return AuditService(client.workspace)


def _brief(payload: dict[str, Any], width: int = 80) -> str:
    text = ", ".join(f"{k}={v}" for k, v in payload.items() if v not in (None, "", [], {}))
    return text if len(text) <= width else text[: width - 1] + "…"


@events_app.callback()
@handle_errors
def events(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help=_TIME_HELP)] = None,
    until: Annotated[str | None, typer.Option(help=_TIME_HELP)] = None,
    kind: Annotated[
        str | None, typer.Option(help="Event kind, or a prefix ending in .* (rollout.*).")
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Subject: model/3, model@alias, endpoint.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000, help="Newest events shown.")] = 100,
    json: JsonOpt = False,
) -> None:
    """List events, oldest first (the newest --limit of those matching)."""
    if ctx.invoked_subcommand is not None:
        return
    from lockgate.audit.events import iter_events

    start, stop = parse_time(since, "since"), parse_time(until, "until")
    with state(ctx).client() as client:
        found = list(
            iter_events(
                client.workspace.db,
                since=start,
                until=stop,
                kind=kind,
                subject=subject,
                limit=limit,
                newest=True,
            )
        )
    if json:
        print_json({"events": [e.to_dict() for e in found]})
        return
    table(
        None,
        ["id", "time (UTC)", "actor", "kind", "subject", "details"],
        [
            (
                e.id,
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                e.actor,
                e.kind,
                e.subject,
                _brief(e.payload),
            )
            for e in found
        ],
    )


@events_app.command("verify")
@handle_errors
def verify(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Check the hash chain and its signed checkpoints; name the first broken event."""
    with state(ctx).client() as client:
        report = _service(client).verify()
    if json:
        print_json(report.to_dict())
    elif report.ok:
        console.print(report.summary())
    if not report.ok:
        if json:
            raise typer.Exit(EXIT_ERROR)
        fail(report.summary())


@events_app.command("checkpoint")
@handle_errors
def checkpoint(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Sign the current head of the chain with the audit key (nothing is deleted)."""
    with state(ctx).client() as client:
        cp = _service(client).checkpoint()
    if json:
        print_json(cp.to_dict())
    else:
        console.print(
            f"checkpoint {cp.id} signed event {cp.last_event_id} "
            f"(hash {cp.last_event_hash[:16]}, key {cp.key_id})"
        )


@events_app.command("prune")
@handle_errors
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age of the events to delete: 365d, 52w...")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; change nothing.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Delete events older than --older-than behind a signed checkpoint."""
    with state(ctx).client() as client:
        result = _service(client).prune(older_than, dry_run=dry_run)
    if json:
        print_json(result.to_dict())
        return
    cutoff = result.cutoff.strftime("%Y-%m-%d %H:%M:%S")
    if dry_run:
        console.print(f"would delete {result.pruned} event(s) before {cutoff} UTC")
    elif result.checkpoint is None:
        console.print(f"no events before {cutoff} UTC; nothing deleted")
    else:
        cp = result.checkpoint
        console.print(
            f"deleted {result.pruned} event(s) before {cutoff} UTC; checkpoint {cp.id} keeps "
            f"event {cp.last_event_id}'s hash; {result.remaining} event(s) remain"
        )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = abs(seconds)
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


@handle_errors
def kpis(
    ctx: typer.Context,
    period: Annotated[str, typer.Option(help="Period ending now: 7d, 30d, 12w...")] = "30d",
    model: Annotated[str | None, typer.Option(help="One model (default: every model).")] = None,
    failure_window: Annotated[
        str, typer.Option(help="A deployment reverted within this long counted as failed.")
    ] = "7d",
    slo_ms: Annotated[
        float, typer.Option(help="Latency SLO in milliseconds (and status < 400).")
    ] = 100.0,
    buckets: Annotated[
        int, typer.Option(min=1, max=365, help="Sub-periods of the quality trend.")
    ] = 4,
    json: JsonOpt = False,
) -> None:
    """Delivery and operations KPIs per model over a period (see docs/kpis.md)."""
    with state(ctx).client() as client:
        doc = _service(client).kpis(
            period=period,
            model=model,
            failure_window=failure_window,
            slo_latency_ms=slo_ms,
            quality_buckets=buckets,
        )
    if json:
        print_json(doc)
        return
    cols = [*doc["models"], *([doc["overall"]] if "overall" in doc else [])]
    p = doc["period"]
    per_model = [_kpi_column(k) for k in cols]
    table(
        f"KPIs {p['start'][:16]} to {p['end'][:16]} UTC (docs/kpis.md)",
        ["KPI", *(k["model"] or "all models" for k in cols)],
        [[name, *(c[i] for c in per_model)] for i, name in enumerate(_KPI_ROWS)],
    )


_KPI_ROWS = (
    "deployments (per week)",
    "lead time from commit (median)",
    "lead time from registration (median)",
    "lead time from data cutoff (median)",
    "change fail rate",
    "failed deployment recovery (median)",
    "deployment rework rate",
    "deployment success rate",
    "predictions served (shadow)",
    "ready versions with traffic",
    "deployed but idle",
    "SLO attainment",
    "quality trend",
)


def _kpi_column(k: dict[str, Any]) -> list[str]:
    u, q, lead = k["utilization"], k["quality_trend"], k["lead_time"]
    freq = k["deployment_frequency"]
    change = q.get("change")
    idle = ", ".join(f"{i['model']}/{i['version']}" for i in u["deployed_idle"]) or "none"
    return [
        f"{freq['deployments']} ({freq['per_week']:.2f})",
        _duration(lead["commit"]["median_s"]),
        _duration(lead["registration"]["median_s"]),
        _duration(lead["data_cutoff"]["median_s"]),
        _pct(k["change_fail_rate"]["rate"]),
        _duration(k["recovery_time"]["median_s"]),
        _pct(k["rework_rate"]["rate"]),
        _pct(k["deployment_success_rate"]["rate"]),
        f"{u['predictions']} ({u['shadow_predictions']})",
        f"{u['ready_with_traffic']} of {u['ready_versions']}",
        idle,
        _pct(k["slo"]["attainment"]),
        "-" if change is None else f"{q['metric']} {change:+.3g} ({q['direction']})",
    ]


@handle_errors
def card(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(min=1, help="Version number.")],
    as_html: Annotated[
        bool, typer.Option("--html", help="A self-contained HTML page instead of markdown.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option(help="Write to this file instead of standard output.")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Fill a model card from lineage, signature, gate reports and monitoring history."""
    from lockgate.audit.cards import to_html, to_markdown

    if json and as_html:
        raise InvalidInputError.for_field("--html", "not together with --json", True)
    with state(ctx).client() as client:
        doc = _service(client).card(model, version)
    if json and output is None:
        print_json(doc)
        return
    import orjson

    text = (
        orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
        if json
        else (to_html(doc) if as_html else to_markdown(doc))
    )
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    console.print(f"model card of {model}/{version} written to {output}")


@audit_app.command("export")
@handle_errors
def export(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help=_TIME_HELP)],
    output: Annotated[Path, typer.Option(help="A new or empty folder to write.")],
    json: JsonOpt = False,
) -> None:
    """Write a record-keeping bundle (events, alias history, gate reports, monitoring)."""
    start = parse_time(since, "since")
    assert start is not None
    with state(ctx).client() as client:
        manifest = _service(client).export(since=start, output=output)
    if json:
        print_json(manifest)
        return
    files = ", ".join(f"{n} ({m['records']})" for n, m in manifest["files"].items())
    chain = manifest["chain"]
    state_line = "chain OK" if chain["ok"] else f"CHAIN BROKEN: {chain['reason']}"
    console.print(f"exported to {output}: {files}; {state_line}")
    if not chain["ok"]:
        raise typer.Exit(EXIT_ERROR)


@audit_app.command("verify")
@handle_errors
def verify_export(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="An export folder.")],
    json: JsonOpt = False,
) -> None:
    """Check an export: manifest signature, file hashes and the events' hash links."""
    with state(ctx).client() as client:
        problems = _service(client).verify_export(directory)
    if json:
        print_json({"ok": not problems, "problems": problems})
        if problems:
            raise typer.Exit(EXIT_ERROR)
        return
    if problems:
        fail(f"{directory}: " + "; ".join(problems))
    console.print(f"{directory}: intact")
