"""``lockgate predictions``: look at and export the prediction log.

The log folder is ``<home>/predictions`` (``Settings.predictions_dir``). Reading works while a
server writes: files appear atomically, so a command sees every flushed record.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from lockgate.cli.context import state
from lockgate.cli.output import console, handle_errors, print_json, table
from lockgate.clock import SYSTEM_CLOCK
from lockgate.errors import InvalidInputError, NotFoundError
from lockgate.store.paths import validate_name

if TYPE_CHECKING:
    import pyarrow as pa

    from lockgate.store.predlog import PredictionLog

app = typer.Typer(help="Inspect and export the prediction log.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document.")]
_TIME_HELP = (
    "ISO 8601 time (2026-01-31T12:00:00Z; no zone means UTC) "
    "or a duration back from now: 45s, 30m, 1h, 2d, 1w."
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class Format(StrEnum):
    parquet = "parquet"
    csv = "csv"


def parse_time(value: str | None, field: str, now: datetime | None = None) -> datetime | None:
    """``--since``/``--until``: an ISO 8601 time or a duration back from now (``30m``)."""
    if value is None:
        return None
    text = value.strip()
    m = _DURATION.fullmatch(text.lower())
    if m:
        now = now or SYSTEM_CLOCK.now()
        return now - timedelta(seconds=float(m[1]) * _UNIT_SECONDS[m[2]])
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError.for_field(
            field, "an ISO 8601 time (2026-01-31T12:00:00Z) or a duration like 30m, 1h, 2d", value
        ) from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _open(ctx: typer.Context, endpoint: str) -> PredictionLog:
    """The workspace's log, for reading; a clear error when the endpoint has no records."""
    from lockgate.store.predlog import PredictionLog

    validate_name(endpoint, "endpoint")
    directory = state(ctx).settings().predictions_dir
    log = PredictionLog(directory, compact_interval=None)
    if endpoint not in log.endpoints():
        raise NotFoundError(
            "endpoint",
            endpoint,
            f"no predictions logged for endpoint {endpoint!r} (looked in {directory})",
        )
    return log


def _records(t: pa.Table) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: inputs grouped, times in ISO 8601."""
    out = []
    inputs = [c for c in t.column_names if c.startswith("input.")]
    outputs = [c for c in t.column_names if c == "output" or c.startswith("output.")]
    for row in t.to_pylist():
        rec = {k: v for k, v in row.items() if k not in inputs and k not in outputs}
        rec["ts"] = rec["ts"].isoformat()
        rec["inputs"] = {c[len("input.") :]: row[c] for c in inputs}
        if outputs == ["output"]:
            rec["output"] = row["output"]
        else:
            rec["outputs"] = {c[len("output.") :]: row[c] for c in outputs}
        out.append(rec)
    return out


def _short(value: Any, width: int = 48) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def _inputs(values: dict[str, Any]) -> str:
    return _short(" ".join(f"{k}={_short(v, 24)}" for k, v in values.items() if v is not None))


@app.command("tail")
@handle_errors
def tail(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    n: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many records.")] = 20,
    json: JsonOpt = False,
) -> None:
    """Show the last N prediction records of ENDPOINT, oldest first."""
    log = _open(ctx, endpoint)
    records = _records(log.tail_table(endpoint, n))
    if json:
        print_json({"endpoint": endpoint, "count": len(records), "records": records})
        return
    table(
        f"last {len(records)} predictions of {endpoint}",
        ["time (UTC)", "id", "version", "role", "status", "ms", "inputs", "output", "error"],
        [
            (
                r["ts"][:19].replace("T", " "),
                r["id"],
                r["version"],
                r["role"],
                r["status"],
                f"{r['latency_ms']:.1f}",
                _inputs(r["inputs"]),
                _short(r["output"] if "output" in r else r["outputs"], 24),
                _short(r["error"], 40),
            )
            for r in records
        ],
    )


def _write_csv(t: pa.Table, path: Path) -> None:
    import pyarrow as pa

    nested = [f.name for f in t.schema if pa.types.is_nested(f.type)]  # one JSON array a cell
    frame = t.drop_columns(nested).to_pandas()
    for c in nested:
        frame[c] = [
            None if v is None else orjson.dumps(v).decode() for v in t.column(c).to_pylist()
        ]
    frame = frame[t.column_names]
    frame.to_csv(path, index=False)


@app.command("export")
@handle_errors
def export(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    fmt: Annotated[
        Format | None,
        typer.Option("--format", help="parquet or csv; default: from the file name."),
    ] = None,
    since: Annotated[str | None, typer.Option(help="From (inclusive). " + _TIME_HELP)] = None,
    until: Annotated[str | None, typer.Option(help="To (exclusive). " + _TIME_HELP)] = None,
    json: JsonOpt = False,
) -> None:
    """Export ENDPOINT's prediction records of a time window to a Parquet or CSV file."""
    import pyarrow.parquet as pq

    if fmt is None:
        suffix = output.suffix.lower().lstrip(".")
        if suffix not in ("parquet", "csv"):
            raise InvalidInputError.for_field(
                "--format", "parquet or csv (or an output ending in .parquet/.csv)", output.name
            )
        fmt = Format(suffix)
    now = SYSTEM_CLOCK.now()
    start = parse_time(since, "--since", now)
    end = parse_time(until, "--until", now)
    if start is not None and end is not None and start >= end:
        raise InvalidInputError.for_field("--until", f"a time after --since ({start})", until)
    log = _open(ctx, endpoint)
    t = log.read_table(endpoint, since=start, until=end)
    if output.parent and not output.parent.is_dir():
        raise InvalidInputError.for_field("--output", "a file in an existing folder", str(output))
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        if fmt is Format.parquet:
            pq.write_table(t, tmp, compression="zstd")
        else:
            _write_csv(t, tmp)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    doc = {
        "endpoint": endpoint,
        "rows": t.num_rows,
        "format": fmt.value,
        "output": str(output.resolve()),
        "since": start.isoformat() if start else None,
        "until": end.isoformat() if end else None,
    }
    if json:
        print_json(doc)
    else:
        console.print(f"exported {t.num_rows} records of {endpoint} to {output} ({fmt.value})")
