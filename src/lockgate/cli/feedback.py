"""``lockgate feedback ENDPOINT FILE``: post ground truth for served predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lockgate.cli.context import state
from lockgate.cli.output import console, err_console, handle_errors, print_json
from lockgate.feedback import MAX_BATCH, FeedbackService, frame_items, read_feedback_file


@handle_errors
def feedback(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="Endpoint that served the predictions.")],
    file: Annotated[
        Path, typer.Argument(help="A .csv, .parquet or .jsonl file with id and value columns.")
    ],
    id_column: Annotated[str, typer.Option(help="Column of prediction ids.")] = "id",
    value_column: Annotated[str, typer.Option(help="Column of ground-truth values.")] = "value",
    allow_unknown: Annotated[
        bool, typer.Option("--allow-unknown", help="Exit 0 even when some ids are unknown.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print a JSON document.")] = False,
) -> None:
    """Post ground truth from FILE for ENDPOINT's predictions (other numeric columns are
    business metrics). Ids not found in the prediction log are listed, not stored; then the
    exit code is 1 unless --allow-unknown."""
    from rich.progress import Progress

    items = frame_items(read_feedback_file(file), id_column=id_column, value_column=value_column)
    totals = {"received": 0, "stored": 0, "updated": 0}
    unknown: list[str] = []
    with state(ctx).client() as client:
        svc = FeedbackService(client.workspace)
        with Progress(console=err_console, disable=json or len(items) <= MAX_BATCH) as bar:
            task = bar.add_task("feedback", total=len(items))
            for lo in range(0, max(len(items), 1), MAX_BATCH):
                result = svc.send(endpoint, items[lo : lo + MAX_BATCH])
                for k in totals:
                    totals[k] += getattr(result, k)
                unknown.extend(result.unknown_ids)
                bar.advance(task, result.received)
    doc = {"endpoint": endpoint, **totals, "unknown": len(unknown), "unknown_ids": unknown}
    if json:
        print_json(doc)
    else:
        console.print(
            f"{totals['received']} feedback items for {endpoint}: {totals['stored']} stored, "
            f"{totals['updated']} updated, {len(unknown)} unknown"
        )
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            err_console.print(f"[yellow]unknown prediction ids:[/] {shown}", markup=True)
    if unknown and not allow_unknown:
        raise typer.Exit(1)
