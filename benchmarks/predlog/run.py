"""Prediction log benchmark: hot-path submit cost, writer throughput, one-column window read.

    python benchmarks/predlog/run.py [--rows 1000000] [--submits 100000] [--json]

Each figure is printed next to a floor or peer measured in the same run:

* submit: ``await log.submit(batch)`` of prebuilt single-row batches (async durability, queue
  big enough not to block), against ``asyncio.Queue.put_nowait`` (the cheapest hand-off an
  asyncio server could use);
* writer: single-row batches turned into durable Arrow IPC segments (vectorised build +
  fsync), measured alone (queue filled, then ``flush()``) and end to end (an asyncio producer
  submitting while the writer thread runs, until ``close()`` returns), against
  ``pyarrow.parquet.write_table`` of an equivalent prebuilt table;
* read: ``read_column`` of one feature over a one-hour window of ``--rows`` rows, against
  ``pandas.read_parquet`` of all columns of the same files; measured on one file per flush
  (no compaction), on an hour still being written (flush files merged every minute, as the
  background compactor does) and on a closed, compacted hour.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lockgate.store.predlog import LogBatch, PredictionLog
from lockgate.store.predlog_compact import compact_hour

T0 = 1_780_000_000.0  # a fixed epoch second at the start of an hour (2026-05-28 20:26:40 UTC)


def batches(n: int, start: float, step: float, version: int = 1) -> list[LogBatch]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4))
    color = np.array(["red", "green", "blue"], dtype=object)
    return [
        LogBatch(
            request_id=f"req{i:08d}",
            endpoint="bench",
            model="m",
            version=version,
            role="primary",
            ts=start + i * step,
            inputs={
                "x1": x[i : i + 1, 0],
                "x2": x[i : i + 1, 1],
                "x3": x[i : i + 1, 2],
                "color": color[i % 3 : i % 3 + 1],
            },
            outputs=x[i : i + 1, 3],
            latency_ms=1.0,
            status=200,
        )
        for i in range(n)
    ]


async def _submit_all(log: PredictionLog, bs: list[LogBatch]) -> float:
    t = time.perf_counter()
    for b in bs:
        await log.submit(b)
    return time.perf_counter() - t


async def _queue_floor(bs: list[LogBatch]) -> float:
    q: asyncio.Queue[LogBatch] = asyncio.Queue()
    t = time.perf_counter()
    for b in bs:
        q.put_nowait(b)
    return time.perf_counter() - t


def bench_submit(root: Path, n: int) -> dict[str, float]:
    bs = batches(n, T0, 1e-4)
    log = PredictionLog(root / "submit", max_queue_rows=n + 1, flush_interval=60)
    log.start()
    elapsed = asyncio.run(_submit_all(log, bs))
    floor = asyncio.run(_queue_floor(bs))
    log.close()
    t = time.perf_counter()
    batches(n, T0, 1e-4)
    build = time.perf_counter() - t
    return {
        "submit_us": elapsed / n * 1e6,
        "queue_put_nowait_us": floor / n * 1e6,
        "submit_vs_put_nowait": elapsed / floor,
        "logbatch_build_us": build / n * 1e6,
    }


def bench_writer(root: Path, n: int) -> dict[str, float]:
    bs = batches(n, T0, 1e-3)
    log = PredictionLog(root / "writer", max_queue_rows=n + 1, compact_interval=None)
    for b in bs:
        log.submit_nowait(b)
    t = time.perf_counter()
    log.flush()  # the writer is not started: build + write + fsync in this thread
    alone = time.perf_counter() - t
    log.close()
    table = log.read_table("bench")
    path = root / "floor.parquet"
    t = time.perf_counter()
    with open(path, "wb") as f:
        pq.write_table(table, f, compression="zstd")
        f.flush()
        os.fsync(f.fileno())
    floor = time.perf_counter() - t

    log2 = PredictionLog(root / "e2e", max_queue_rows=100_000, compact_interval=None)
    log2.start()
    t = time.perf_counter()
    asyncio.run(_submit_all(log2, bs))
    log2.close()
    e2e = time.perf_counter() - t
    assert log2.count("bench") == n
    return {
        "writer_rows_per_s": n / alone,
        "write_table_floor_rows_per_s": n / floor,
        "writer_vs_write_table": alone / floor,
        "end_to_end_rows_per_s": n / e2e,
        "end_to_end_flushes": float(log2.stats()["flushes"]),
    }


def _write_hour(log: PredictionLog, rows: int, every: int | None = None) -> None:
    """One hour of traffic at rows/3600 rows/s, flushed every second (3600 files), as a
    running server would write it; ``every``: merge the flush files every that many seconds,
    as the background compactor does with an hour still being written."""
    per_file = max(1, rows // 3600)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(rows, 3))
    color = np.array(["red", "green", "blue"], dtype=object)[rng.integers(0, 3, rows)]
    for k, start in enumerate(range(0, rows, per_file)):
        stop = min(rows, start + per_file)
        log.submit_nowait(
            LogBatch(
                request_id=f"b{start}",
                endpoint="bench",
                model="m",
                version=1,
                role="primary",
                ts=T0 - 7200 + start * 3600 / rows,
                inputs={"x1": x[start:stop, 0], "x2": x[start:stop, 1], "color": color[start:stop]},
                outputs=x[start:stop, 2],
                latency_ms=1.0,
                status=200,
            )
        )
        log.flush()
        if every and k % every == every - 1:
            for hour in sorted(log.directory.glob("bench/*/*")):
                compact_hour(log._reader, hour, open_hour=True)


def _files(root: Path) -> list[Path]:
    """Log files of a folder: Arrow IPC segments and Parquet files."""
    return sorted(p for p in root.rglob("*-*") if p.suffix in (".arrow", ".parquet"))


def _best(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_read(root: Path, rows: int) -> dict[str, float]:
    window = {"since": T0 - 7200, "until": T0 - 3600}
    log = PredictionLog(root / "read", max_queue_rows=rows + 1, compact_interval=None)
    _write_hour(log, rows)
    files_before = len(_files(root / "read"))
    small = _best(lambda: log.read_column("bench", "x1", **window))
    t = time.perf_counter()
    log.compact()
    compact_s = time.perf_counter() - t
    files_after = len(_files(root / "read"))
    values = log.read_column("bench", "x1", **window)
    assert len(values) == rows, len(values)
    fast = _best(lambda: log.read_column("bench", "x1", **window))
    files = sorted((root / "read").rglob("*.parquet"))
    peer = _best(lambda: pd.concat([pd.read_parquet(f) for f in files]))
    full = _best(lambda: log.read("bench", **window))
    log.close()

    live = PredictionLog(root / "open", max_queue_rows=rows + 1, compact_interval=None)
    _write_hour(live, rows, every=60)  # the compactor's pass every minute
    files_open = len(_files(root / "open"))
    assert len(live.read_column("bench", "x1", **window)) == rows
    open_s = _best(lambda: live.read_column("bench", "x1", **window))
    live.close()
    return {
        "window_rows": float(rows),
        "files_one_per_flush": float(files_before),
        "read_column_one_per_flush_s": small,
        "files_open_hour_compacted": float(files_open),
        "read_column_open_hour_s": open_s,
        "compaction_of_closed_hour_s": compact_s,
        "files_closed_hour_compacted": float(files_after),
        "read_column_s": fast,
        "pandas_read_parquet_all_columns_s": peer,
        "read_column_vs_pandas": fast / peer,
        "read_all_columns_s": full,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows in the read window")
    ap.add_argument("--submits", type=int, default=100_000, help="single-row batches")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="predlog-bench-"))
    try:
        out = {
            "python": sys.version.split()[0],
            "pyarrow": pa.__version__,
            "cpus": os.cpu_count(),
            **bench_submit(root, args.submits),
            **bench_writer(root, args.submits),
            **bench_read(root, args.rows),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for k, v in out.items():
        print(f"{k:36s} {v:,.3f}" if isinstance(v, float) else f"{k:36s} {v}")


if __name__ == "__main__":
    main()
