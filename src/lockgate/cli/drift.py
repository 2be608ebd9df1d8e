"""``lockgate drift`` and ``lockgate quality``: reports over a served endpoint's window, or
drift between two data files.

``lockgate drift ENDPOINT`` compares the primary traffic of the window with the version's
stored reference profile; ``lockgate drift --reference FILE --current FILE`` compares two
Parquet or CSV files. Both print a table (``--json``: a document; ``--html FILE``: a
self-contained HTML report with a distribution plot per column).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lockgate.cli.context import state
from lockgate.cli.output import console, err_console, handle_errors, print_json, table
from lockgate.clock import SYSTEM_CLOCK
from lockgate.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from lockgate.monitoring.report import DriftReport
    from lockgate.monitoring.service import MonitorService

#: exit code of ``--fail-on-drift`` when the data set drifted
EXIT_DRIFT = 3

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document.")]
WindowOpt = Annotated[
    str, typer.Option(help="How far back from now (or from --until): 30m, 1h, 1d, 1w.")
]
_TIME = "ISO 8601 time (no zone means UTC) or a duration back from now: 30m, 1h, 2d."


def read_frame(path: Path, field: str) -> pd.DataFrame:
    """A data set from a ``.parquet``/``.pq`` or ``.csv`` file."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise InvalidInputError.for_field(field, "a .parquet or .csv file", path.name)
    if not path.is_file():
        raise InvalidInputError.for_field(field, "an existing file", str(path))
    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:
        raise InvalidInputError.for_field(
            field, "a readable parquet or csv file", f"{path.name} ({type(exc).__name__})"
        ) from None


def _service(ctx: typer.Context) -> MonitorService:
    from lockgate.monitoring.service import MonitorService
    from lockgate.workspace import Workspace

    return MonitorService(Workspace(state(ctx).settings()), background=False)


def _bounds(
    window: str, since: str | None, until: str | None
) -> tuple[float, datetime | None, datetime | None]:
    from lockgate.cli.predictions import parse_time
    from lockgate.monitoring.monitors import parse_duration

    now = SYSTEM_CLOCK.now()
    seconds = parse_duration(window, "--window", low=1.0, high=366 * 86_400)
    return seconds, parse_time(since, "--since", now), parse_time(until, "--until", now)


def _print_drift(report: DriftReport, heading: str) -> None:
    console.print(
        f"{heading}: [bold]{report.verdict}[/] — {report.share_drifted:.0%} of "
        f"{report.n_tested} columns drifted, {report.share_material:.0%} material "
        f"({report.n_reference:,} reference rows, {report.n_current:,} current rows)",
        markup=True,
    )

    def effect(c: Any) -> str:
        e = c.effect
        parts = [f"{k}={e[k]:.3g}" for k in ("psi", "wasserstein_norm", "js_distance") if k in e]
        return " ".join(parts)

    def p(v: float | None) -> str:
        return "" if v is None else (f"{v:.2e}" if v < 1e-3 else f"{v:.4f}")

    table(
        None,
        [
            "column",
            "kind",
            "test",
            "statistic",
            "p-value",
            "adj. p",
            "significant",
            "material",
            "effects",
            "verdict",
        ],
        [
            (
                c.column + (" (output)" if c.role == "output" else ""),
                c.kind,
                c.test or "",
                "" if c.statistic is None else f"{c.statistic:.4g}",
                p(c.p_value),
                p(c.p_value_adjusted),
                "yes" if c.significant else "no",
                "yes" if c.material else "no",
                effect(c),
                c.verdict,
            )
            for c in report.columns
        ],
    )


@handle_errors
def drift(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Argument(help="Endpoint whose primary traffic is compared.")
    ] = None,
    window: WindowOpt = "1h",
    since: Annotated[str | None, typer.Option(help="Window start. " + _TIME)] = None,
    until: Annotated[str | None, typer.Option(help="Window end (default now). " + _TIME)] = None,
    version: Annotated[
        int | None, typer.Option(help="Version (default: the endpoint's primary).")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option(help="Reference data (.parquet or .csv), with --current.")
    ] = None,
    current: Annotated[
        Path | None, typer.Option(help="Current data (.parquet or .csv), with --reference.")
    ] = None,
    column: Annotated[
        list[str] | None, typer.Option("--column", help="Only this column (repeatable).")
    ] = None,
    output_column: Annotated[
        list[str] | None,
        typer.Option("--output-column", help="A column of model outputs (files; repeatable)."),
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report.")
    ] = None,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help=f"Exit {EXIT_DRIFT} when the data drifted.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Drift of ENDPOINT's primary traffic against its version's reference profile, or of
    --current against --reference: per column the test, statistic, p-value, and whether the
    change is significant and material."""
    from lockgate.monitoring.config import DriftConfig

    files = reference is not None or current is not None
    if files and (reference is None or current is None):
        raise InvalidInputError.for_field("--reference/--current", "both files", "only one of them")
    if files == (endpoint is not None):
        raise InvalidInputError.for_field(
            "ENDPOINT", "an endpoint, or --reference and --current (not both)",
            endpoint if endpoint else "neither",
        )  # fmt: skip
    if files:
        from lockgate.monitoring import detect_drift

        assert reference is not None and current is not None
        ref = read_frame(reference, "--reference")
        cur = read_frame(current, "--current")
        cfg = DriftConfig(output_columns=tuple(output_column or ()))
        names = None
        if column:  # the output columns are tested too
            names = [*column, *(c for c in output_column or () if c not in column)]
        report = detect_drift(ref, cur, cfg, columns=names)
        doc = {"reference": str(reference), "current": str(current), **report.to_dict()}
        ref_data: Any = ref
        labels = (reference.name, current.name)
        heading = f"{current.name} vs {reference.name}"
    else:
        assert endpoint is not None
        if output_column:
            raise InvalidInputError.for_field(
                "--output-column", "only with --reference/--current files", output_column
            )
        seconds, start, end = _bounds(window, since, until)
        d = _service(ctx).drift(
            endpoint, window=seconds, since=start, until=end, version=version, columns=column
        )
        report, ref_data, cur = d.report, d.reference, d.current
        doc = d.to_dict()
        labels = (
            f"profile of {d.model}/{d.version}",
            f"{endpoint} v{d.version} primary, {d.since:%Y-%m-%d %H:%M:%S} to "
            f"{d.until:%Y-%m-%d %H:%M:%S} UTC",
        )
        heading = f"{endpoint} v{d.version}"
    if html is not None:
        from lockgate.monitoring.report_html import render_html

        assert cur is not None
        page = render_html(
            report, ref_data, cur, title=f"Drift report: {heading}",
            reference_label=labels[0], current_label=labels[1],
        )  # fmt: skip
        html.write_text(page, encoding="utf-8")
        doc["html"] = str(html.resolve())
    if json:
        print_json(doc)
    else:
        _print_drift(report, heading)
        if html is not None:
            err_console.print(f"HTML report written to {html}")
    if fail_on_drift and report.verdict == "drift":
        raise typer.Exit(EXIT_DRIFT)


@handle_errors
def quality(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    window: WindowOpt = "1d",
    since: Annotated[str | None, typer.Option(help="Window start. " + _TIME)] = None,
    until: Annotated[str | None, typer.Option(help="Window end (default now). " + _TIME)] = None,
    version: Annotated[int | None, typer.Option(help="Only this version.")] = None,
    task: Annotated[
        str | None, typer.Option(help="classification or regression (default: inferred).")
    ] = None,
    positive: Annotated[
        str | None, typer.Option(help="Positive class of a binary classifier.")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Live quality of ENDPOINT per version and role, from the feedback joined to the
    predictions of the window: accuracy, precision, recall, F1, ROC AUC, log loss (classifiers)
    or MAE, RMSE, R² (regressors), with counts and 95% confidence intervals."""
    if task is not None and task not in ("classification", "regression"):
        raise InvalidInputError.for_field("--task", "classification or regression", task)
    seconds, start, end = _bounds(window, since, until)
    q = _service(ctx).quality(
        endpoint, window=seconds, since=start, until=end, version=version,
        task=task, positive=positive,  # type: ignore[arg-type]
    )  # fmt: skip
    if json:
        print_json(q.to_dict())
        return
    console.print(
        f"quality of {endpoint}, predictions from {q.since:%Y-%m-%d %H:%M:%S} to "
        f"{q.until:%Y-%m-%d %H:%M:%S} UTC with feedback"
    )
    if not q.versions:
        console.print("no labelled predictions in the window")
        return

    def num(v: float | None) -> str:
        return "" if v is None else f"{v:.4g}"

    rows = []
    for vq in q.versions:
        for name, est in vq.report.metrics.items():
            ci = f"[{num(est.low)}, {num(est.high)}]" if est.low is not None else ""
            rows.append(
                (vq.version, vq.role, vq.report.task, name, num(est.value), ci, est.method, est.n,
                 est.note)
            )  # fmt: skip
    table(
        None, ["version", "role", "task", "metric", "value", "95% CI", "method", "n", "note"], rows
    )
