"""The prediction log's read side: windows, one-column reads, schemas that change across
versions, damaged files, tail, compaction."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client import CollectorRegistry

from lockgate.errors import InvalidInputError, InvalidNameError
from lockgate.store import predlog_compact
from lockgate.store.predlog import LogBatch, PredictionLog
from lockgate.store.predlog_format import build_table, canonical, hour_dir, write_file
from lockgate.store.predlog_read import LogFile

T0 = datetime(2026, 1, 1, 10, tzinfo=UTC).timestamp()


def make(path: Path, **kw: Any) -> PredictionLog:
    kw.setdefault("compact_interval", None)
    return PredictionLog(path, **kw)


def row(i: int, ts: float, *, version: int = 1, role: str = "primary") -> LogBatch:
    return LogBatch(
        request_id=f"r{i}",
        endpoint="ep",
        model="m",
        version=version,
        role=role,
        ts=ts,
        inputs={"x": np.array([float(i)]), "k": np.array([i], dtype=np.int64)},
        outputs=np.array([i % 3]),
        latency_ms=float(i),
        status=200,
    )


@pytest.fixture
def five_hours(tmp_path: Path) -> PredictionLog:
    """300 rows, one a minute from 10:00 for five hours; every 10th is canary; version 2
    from row 150; written in 6 flushes (several files per hour)."""
    log = make(tmp_path / "log")
    for i in range(300):
        log.submit_nowait(
            row(i, T0 + 60 * i, version=1 if i < 150 else 2,
                role="canary" if i % 10 == 0 else "primary")
        )  # fmt: skip
        if i % 50 == 49:
            log.flush()
    log.close()
    return make(tmp_path / "log")


def test_read_column_returns_exactly_the_window(five_hours: PredictionLog) -> None:
    log = five_hours
    since, until = T0 + 95 * 60, T0 + 250 * 60  # inclusive, exclusive
    got = log.read_column("ep", "x", since=since, until=until)
    assert got.dtype == np.float64
    assert got.tolist() == [float(i) for i in range(95, 250) if i % 10]
    as_dt = log.read_column(
        "ep", "input.x",
        since=datetime.fromtimestamp(since, UTC), until=datetime.fromtimestamp(until, UTC),
    )  # fmt: skip
    assert as_dt.tolist() == got.tolist()
    naive = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)  # naive means UTC
    assert log.read_column("ep", "x", since=naive, until=until).tolist() == got.tolist()
    assert log.read_column("ep", "x", since=since, until=until, version=2).tolist() == [
        float(i) for i in range(150, 250) if i % 10
    ]
    assert log.read_column("ep", "k", since=since, until=until, role="canary").tolist() == list(
        range(100, 250, 10)
    )
    assert len(log.read_column("ep", "x", since=since, until=until, role=None)) == 155
    assert log.read_column("ep", "output", until=T0 + 3 * 60, role=None).tolist() == [0, 1, 2]
    assert log.read_column("ep", "latency_ms", since=T0 + 299 * 60).tolist() == [299.0]
    assert len(log.read_column("ep", "x", since=T0 + 300 * 60)) == 0
    ts = log.read_column("ep", "ts", since=since, until=since + 120, role=None)
    assert ts.dtype.kind == "M" and len(ts) == 2


def test_read_column_opens_only_the_hours_of_the_window(five_hours: PredictionLog) -> None:
    log = five_hours
    # a damaged file in the first hour is not even opened by a read of the third hour
    first_hour = log.directory / "ep" / "2026-01-01" / "10"
    (first_hour / f"part-{int(T0 * 1e9)}-1-1.parquet").write_bytes(b"PAR1 not really")
    got = log.read_column("ep", "x", since=T0 + 120 * 60, until=T0 + 180 * 60, role=None)
    assert got.tolist() == [float(i) for i in range(120, 180)]
    assert log.stats()["files_skipped"] == 0
    assert len(log.read_column("ep", "x", role=None)) == 300
    assert log.stats()["files_skipped"] == 1


def test_read_returns_the_window_as_a_frame(five_hours: PredictionLog) -> None:
    log = five_hours
    df = log.read("ep", since=T0 + 60 * 60, until=T0 + 62 * 60)  # every role
    assert df["id"].tolist() == ["r60-0", "r61-0"]
    assert df["role"].tolist() == ["canary", "primary"]
    df = log.read("ep", since=T0 + 60 * 60, until=T0 + 62 * 60, roles=["primary"])
    assert df["id"].tolist() == ["r61-0"]
    df = log.read("ep", since=T0 + 60 * 60, until=T0 + 62 * 60, columns=["id", "x", "output"])
    assert list(df.columns) == ["id", "input.x", "output"]
    with pytest.raises(InvalidInputError, match="columns"):
        log.read("ep", columns=["nope"])
    assert log.read("ep", version=2)["version"].unique().tolist() == [2]
    empty = log.read("never-written")
    assert len(empty) == 0 and "ts" in empty.columns
    with pytest.raises(InvalidNameError):
        log.read("Not A Name")
    with pytest.raises(InvalidInputError, match="since"):
        log.read("ep", since="yesterday")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="column"):
        log.read_column("ep", "nope")


def test_tail_returns_the_newest_rows_in_time_order(five_hours: PredictionLog) -> None:
    log = five_hours
    t = log.tail("ep", 5)
    assert t["id"].tolist() == [f"r{i}-0" for i in range(295, 300)]
    assert t["ts"].is_monotonic_increasing
    assert len(log.tail("ep", 1000)) == 300
    assert len(log.tail("ep", 0)) == 0
    assert len(log.tail("nothing-here")) == 0


def test_schemas_that_differ_across_versions_read_together(tmp_path: Path) -> None:
    log = make(tmp_path)
    v1 = LogBatch(
        "a", "ep", "m", 1, "primary", T0,
        {"x1": np.array([1.0, 2.0]), "x2": np.array([3, 4])}, np.array([0, 1]), 1.0, 200,
    )  # fmt: skip
    v2 = LogBatch(
        "b", "ep", "m", 2, "primary", T0 + 1,
        {"x1": np.array([5], dtype=np.int32),
         "color": np.array(["red", None], dtype=object)[:1],
         "emb": np.arange(6, dtype=np.float32).reshape(1, 2, 3)},
        np.array([[0.2, 0.8]]), 1.0, 200,
    )  # fmt: skip
    log.submit_nowait(v1)
    log.flush()
    log.submit_nowait(v2)
    log.flush()
    log.submit_nowait(v1.__class__(**{**_fields(v1), "request_id": "c", "ts": T0 + 2}))
    log.submit_nowait(v2.__class__(**{**_fields(v2), "request_id": "d", "ts": T0 + 3}))
    log.close()  # the last cycle holds both versions: one file per schema
    df = PredictionLog(tmp_path).read("ep")
    assert df["id"].tolist() == ["a-0", "a-1", "b-0", "c-0", "c-1", "d-0"]
    assert df["input.x1"].tolist() == [1.0, 2.0, 5.0, 1.0, 2.0, 5.0]  # int32 and float widen
    assert df["input.x2"].isna().tolist() == [False, False, True, False, False, True]
    assert df["input.color"].tolist()[2] == "red" and pd.isna(df["input.color"].iloc[0])
    # a label in v1, a probability vector in v2: mixed, the column reads as text
    assert df["output"].tolist() == ["0", "1", "[0.2, 0.8]", "0", "1", "[0.2, 0.8]"]
    only_v2 = PredictionLog(tmp_path).read("ep", version=2)
    assert [list(map(list, e)) for e in only_v2["input.emb"]] == [[[0, 1, 2], [3, 4, 5]]] * 2
    assert [list(o) for o in only_v2["output"]] == [[0.2, 0.8]] * 2
    emb = PredictionLog(tmp_path).read_column("ep", "emb", version=2)
    assert emb.shape == (2, 2, 3) and emb[1, 1, 2] == 5
    assert PredictionLog(tmp_path).read_column("ep", "x2").tolist()[:2] == [3, 4]
    x2 = PredictionLog(tmp_path).read_column("ep", "x2")
    assert np.isnan(x2[2])  # a version without the column: missing, not dropped


def _fields(b: LogBatch) -> dict[str, Any]:
    return {name: getattr(b, name) for name in LogBatch.__slots__}


def test_damaged_and_temporary_files_do_not_break_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = make(tmp_path)
    for i in range(10):
        log.submit_nowait(row(i, T0 + i))
    log.close()
    (good,) = list(tmp_path.rglob("*.seg"))
    data = good.read_bytes()
    # a hard kill mid-write leaves a .tmp; a copied or damaged file can be truncated
    (good.parent / (good.name + ".tmp")).write_bytes(data[: len(data) // 2])
    truncated = good.parent / f"part-{int(T0 * 1e9)}-424242-7.seg"
    truncated.write_bytes(data[: len(data) // 2])
    reg = CollectorRegistry()
    reader = PredictionLog(tmp_path, registry=reg)
    with caplog.at_level(logging.WARNING, logger="lockgate.predlog"):
        df = reader.read("ep")
    assert df["id"].tolist() == [f"r{i}-0" for i in range(10)]
    assert reader.stats()["files_skipped"] == 1
    assert reg.get_sample_value("lockgate_prediction_log_files_skipped_total") == 1
    assert truncated.name in caplog.text
    assert reader.count("ep") == 10
    assert reader.read_column("ep", "x").tolist() == [float(i) for i in range(10)]
    assert len(reader.tail("ep", 3)) == 3
    assert reader.stats()["files_skipped"] == 1  # counted once per file


def test_compaction_merges_closed_hours_and_is_invisible_to_readers(tmp_path: Path) -> None:
    log = make(tmp_path)
    for i in range(40):
        log.submit_nowait(row(i, T0 + i))
        if i % 2:
            log.flush()
    hour = tmp_path / "ep" / "2026-01-01" / "10"
    parts = sorted(hour.glob("*.seg"))
    assert len(parts) == 20
    before = log.read("ep")
    keep = tmp_path / "leftover.seg"
    shutil.copy(parts[0], keep)

    assert log.compact() == 20
    (compacted,) = hour.glob("*.parquet")
    assert compacted.name.startswith("compact-") and not list(hour.glob("*.seg"))
    pd.testing.assert_frame_equal(log.read("ep"), before)
    assert log.count("ep") == 40

    # a crash between rename and delete leaves a replaced file: readers ignore it ...
    shutil.copy(keep, parts[0])
    pd.testing.assert_frame_equal(log.read("ep"), before)
    assert log.count("ep") == 40
    # ... and a late request lands in the compacted hour as a new small file
    log.submit_nowait(row(99, T0 + 99))
    log.flush()
    assert len(log.read("ep")) == 41
    # the next compaction removes the leftover and merges the late file
    assert log.compact() == 2
    (again,) = hour.glob("*.parquet")
    meta = pq.read_schema(again).metadata
    assert compacted.name.encode() in meta[b"lockgate.compacted_from"]
    assert log.read("ep")["id"].tolist() == [f"r{i}-0" for i in [*range(40), 99]]
    log.close()


def test_open_hours_are_not_compacted(tmp_path: Path) -> None:
    log = make(tmp_path)
    now = time.time()
    for i in range(3):
        log.submit_nowait(row(i, now))
        log.flush()
    assert log.compact("ep") == 0
    assert len(list(tmp_path.rglob("part-*.seg"))) == 3
    log.close()


def test_background_compaction_runs_when_started(tmp_path: Path) -> None:
    for i in range(3):
        w = make(tmp_path)
        w.submit_nowait(row(i, T0 + i))
        w.close()
    assert len(list(tmp_path.rglob("*.seg"))) == 3
    log = PredictionLog(tmp_path, compact_interval=0.05)  # compacts old hours on start
    log.start()
    deadline = time.monotonic() + 30
    while log.stats()["files_compacted"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    log.close()
    assert [p.name.split("-")[0] for p in tmp_path.rglob("*.parquet")] == ["compact"]
    assert not list(tmp_path.rglob("*.seg"))
    assert PredictionLog(tmp_path).read("ep")["id"].tolist() == ["r0-0", "r1-0", "r2-0"]


def test_count_and_endpoints_ignore_foreign_entries(tmp_path: Path) -> None:
    log = make(tmp_path)
    log.submit_nowait(row(1, T0))
    log.close()
    (tmp_path / "Not-An-Endpoint").mkdir()
    (tmp_path / "empty-ep").mkdir()
    (tmp_path / "ep" / "notes.txt").write_text("hello")
    (tmp_path / "ep" / "2026-01-01" / "xx").mkdir()
    assert log.endpoints() == ["ep"]
    assert log.count() == 1
    os.remove(next(tmp_path.rglob("*.seg")))
    assert log.endpoints() == []


def test_compacted_files_are_read_by_row_group(tmp_path: Path) -> None:
    log = make(tmp_path)
    n = 150_000  # three row groups of 65,536 rows once compacted
    x = np.arange(n, dtype=np.float64)
    for part in np.array_split(np.arange(n), 3):
        log.submit_nowait(
            LogBatch(
                f"b{part[0]}", "ep", "m", 1, "primary", T0, {"x": x[part]}, None, 1.0, 200,
                n_rows=len(part),
            )
        )  # fmt: skip
        log.flush()
    # every row of a request has the request's time: give them distinct times by request
    assert log.compact() == 3
    (compacted,) = tmp_path.rglob("*.parquet")
    assert pq.ParquetFile(compacted).metadata.num_row_groups == 3
    assert log.tail("ep", 3)["input.x"].tolist() == [float(n - 3), float(n - 2), float(n - 1)]
    assert len(log.read_column("ep", "x", since=T0, until=T0 + 1)) == n
    log.close()


def test_large_flushes_are_left_as_written_and_small_ones_merged(tmp_path: Path) -> None:
    """A flush of a row group's worth of rows or more (heavy traffic) is not rewritten:
    that would cost more CPU than it saves reads; the small flushes around it are merged."""
    log = make(tmp_path)
    big = 100_000  # a 0.5 s flush of 100-row requests at 2,000/s
    assert big >= predlog_compact.SMALL_FILE_ROWS
    sizes = [10, big, 20, 30]
    x = np.arange(sum(sizes), dtype=np.float64)
    start = 0
    for i, n in enumerate(sizes):
        log.submit_nowait(
            LogBatch(
                f"b{i}", "ep", "m", 1, "primary", T0 + i, {"x": x[start : start + n]}, None,
                1.0, 200, n_rows=n,
            )
        )  # fmt: skip
        log.flush()
        start += n
    hour = tmp_path / "ep" / "2026-01-01" / "10"
    (large,) = (p for p in hour.glob("part-*") if LogFile(p).num_rows == big)
    before = log.read("ep")
    assert log.compact() == 3  # the three small flushes
    assert large.exists()
    (compacted,) = hour.glob("compact-*.parquet")
    assert pq.ParquetFile(compacted).metadata.num_rows == 60
    pd.testing.assert_frame_equal(log.read("ep"), before)
    assert log.read_column("ep", "x").tolist() == x.tolist()
    assert log.compact() == 0  # nothing left to merge
    log.close()


def _compact_then_set(log: PredictionLog, done: threading.Event) -> None:
    try:
        log.compact()
    finally:
        done.set()


def test_reads_racing_compaction_never_miss_or_double_rows(tmp_path: Path) -> None:
    log = make(tmp_path)
    total = 0
    errors: list[str] = []
    for rnd in range(3):
        for i in range(60):  # 60 small files per round, across two closed hours
            log.submit_nowait(row(total, T0 + 30 * i + rnd))
            total += 1
            log.flush()
        done = threading.Event()
        t = threading.Thread(target=_compact_then_set, args=(log, done))
        t.start()
        reads = 0
        while not done.is_set() or reads < 3:
            reader = make(tmp_path)
            got = (reader.count("ep"), len(reader.read_column("ep", "x", role=None)))
            if got != (total, total):
                errors.append(f"round {rnd}: {got} != {total}")
            reads += 1
        t.join()
    assert not errors, errors[:5]
    assert sorted(make(tmp_path).read("ep")["id"]) == sorted(f"r{i}-0" for i in range(total))
    log.close()


def test_one_cycle_with_clashing_dtypes_keeps_each_type(tmp_path: Path) -> None:
    log = make(tmp_path)

    def b(rid: str, x: np.ndarray, ts: float) -> LogBatch:
        return LogBatch(rid, "ep", "m", 1, "primary", ts, {"x": x}, None, 1.0, 200)

    log.submit_nowait(b("i", np.array([1]), T0))
    log.submit_nowait(b("f", np.array([2.5]), T0 + 1))  # widens with the int: same file
    log.submit_nowait(b("s", np.array(["seven"], dtype=object), T0 + 2))  # must not coerce
    log.close()
    stored = sorted(
        str(LogFile(p).read(["input.x"]).schema.field("input.x").type)
        for p in tmp_path.rglob("part-*")
    )
    # records without outputs take the general path: one Arrow segment per schema
    assert stored == ["double", "string"]
    assert make(tmp_path).read("ep")["input.x"].tolist() == ["1", "2.5", "seven"]


def test_open_hours_are_compacted_lightly_once_they_hold_many_flush_files(
    tmp_path: Path,
) -> None:
    log = make(tmp_path)
    now = time.time()
    now -= now % 3600 - 1  # early in the current hour: every row in one open hour
    for i in range(40):
        log.submit_nowait(row(i, now + i / 100))
        log.flush()
    assert log.compact() == 0  # the hour is open: the closed-hour pass leaves it
    assert log.compact(open_hours=True) == 40
    for i in range(40, 45):
        log.submit_nowait(row(i, now + i / 100))
        log.flush()
    assert log.compact(open_hours=True) == 0  # 5 new flush files: not worth a rewrite
    names = sorted(p.name for p in tmp_path.rglob("*-*") if p.suffix in (".parquet", ".seg"))
    assert [n.split("-")[0] for n in names] == ["compact"] + ["part"] * 5
    assert names[0].endswith(".parquet") and all(n.endswith(".seg") for n in names[1:])
    assert log.read("ep")["id"].tolist() == [f"r{i}-0" for i in range(45)]
    log.close()


def test_segments_are_compact_arrow_files_read_in_the_canonical_layout(tmp_path: Path) -> None:
    """A flush writes a raw segment for served records and an Arrow IPC segment for the
    rest (here a failed request): per-request strings as dictionaries, no per-row id string
    (derived on read from the request id and the row); readers see the same columns as from
    a Parquet file, and legacy Parquet flush files are read and compacted with the
    segments."""
    log = make(tmp_path)
    log.submit_nowait(
        LogBatch("multi", "ep", "m", 1, "primary", T0, {"x": np.arange(3.0)}, np.arange(3),
                 2.0, 200, n_rows=3)
    )  # fmt: skip
    log.submit_nowait(LogBatch("bad", "ep", "m", 2, "canary", T0 + 1, None, None, 1.0, 422,
                               "inputs: expected x", n_rows=0))  # fmt: skip
    log.flush()
    (served,) = tmp_path.rglob("*.seg")
    assert LogFile(served).num_rows == 3
    (segment,) = tmp_path.rglob("*.arrow")
    raw = pa.ipc.open_file(segment.read_bytes()).read_all()
    assert "id" not in raw.column_names and raw.column("row").to_pylist() == [0]
    assert pa.types.is_dictionary(raw.schema.field("request_id").type)
    assert pa.types.is_dictionary(raw.schema.field("error").type)
    # a flush file in the earlier, canonical Parquet layout, in the same hour
    legacy = canonical(build_table("ep", [row(7, T0 + 2)], np.array([1])))
    assert legacy.column_names[0] == "id" and "row" not in legacy.column_names
    write_file(hour_dir(tmp_path, "ep", int(T0 // 3600)), legacy)
    df = log.read("ep")
    assert df["id"].tolist() == ["multi-0", "multi-1", "multi-2", "bad-0", "r7-0"]
    assert df["role"].tolist() == ["primary"] * 3 + ["canary", "primary"]
    assert df["error"].isna().tolist() == [True, True, True, False, True]
    assert df["error"][3] == "inputs: expected x"
    assert list(df.columns[:10]) == [
        "id", "request_id", "endpoint", "model", "version", "role", "ts", "latency_ms",
        "status", "error",
    ]  # fmt: skip
    assert log.read("ep", roles=["canary"])["id"].tolist() == ["bad-0"]
    assert log.read("ep", columns=["id"])["id"].tolist()[-1] == "r7-0"
    assert log.count("ep") == 5
    assert log.compact() == 3
    (compacted,) = tmp_path.rglob("*.parquet")
    assert not list(tmp_path.rglob("*.seg")) and not list(tmp_path.rglob("*.arrow"))
    assert pq.read_schema(compacted).field("request_id").type == pa.string()
    pd.testing.assert_frame_equal(log.read("ep"), df)
    log.close()
