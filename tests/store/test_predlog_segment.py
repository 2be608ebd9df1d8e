"""The prediction log's fast path: columnar channels (:mod:`lockgate.store.predlog_columns`)
written as raw ``part-*.seg`` segments (:mod:`lockgate.store.predlog_segment`), read back
through :class:`PredictionLog`. Real files in tmp_path, real writer threads, no mocks."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import mmap
import os
import shutil
import struct
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry

from lockgate.errors import OverloadedError, StoreError
from lockgate.store import predlog_segment
from lockgate.store.predlog import LogBatch, PredictionLog
from lockgate.store.predlog_segment import (
    BLOCK,
    DIRECT_MIN_BYTES,
    MAGIC,
    DirectIO,
    SegmentData,
    SegmentError,
    aligned_empty,
    encode,
    lay_out,
    read_info,
    read_segment,
    write_segment,
)

#: 2026-01-01T10:00:00Z: a closed hour, so files land in known folders
T0 = datetime(2026, 1, 1, 10, tzinfo=UTC).timestamp()
#: 2026-01-01T11:00:00Z: the next hour boundary
T1 = T0 + 3600

#: every dtype the fast path takes
NUMERIC = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
)


# ---------------------------------------------------------------- helpers


def make(path: Path, **kw: Any) -> PredictionLog:
    kw.setdefault("compact_interval", None)
    return PredictionLog(path, **kw)


def batch(
    rid: str,
    inputs: dict[str, np.ndarray],
    outputs: np.ndarray | dict[str, np.ndarray],
    *,
    ts: float = T0,
    endpoint: str = "ep",
    version: int = 1,
    role: str = "primary",
    matrix: np.ndarray | None = None,
    latency_ms: float = 1.25,
    status: int = 200,
) -> LogBatch:
    return LogBatch(
        request_id=rid,
        endpoint=endpoint,
        model="m",
        version=version,
        role=role,
        ts=ts,
        inputs=inputs,
        outputs=outputs,
        latency_ms=latency_ms,
        status=status,
        matrix=matrix,
    )


def floats(rid: str, rows: int = 1, *, ts: float = T0, start: float = 0.0) -> LogBatch:
    """A request of ``rows`` rows with two float64 inputs and an int64 output."""
    x = np.arange(rows, dtype=np.float64) + start
    return batch(rid, {"a": x, "b": x * 10}, (x * 100).astype(np.int64), ts=ts)


def files(root: Path, suffix: str) -> list[Path]:
    return sorted(root.rglob(f"*{suffix}"))


def values(dtype: str, n: int, shift: int = 0) -> np.ndarray:
    """``n`` values of ``dtype`` including its extremes, exactly representable."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return (np.arange(n) + shift) % 3 == 0
    if dt.kind in "iu":
        info = np.iinfo(dt)
        pool = [info.min, info.max, 0, 1, info.max - 1, info.min + 7]
    else:
        fi = np.finfo(dt)
        pool = [float(fi.max), float(fi.min), float(fi.tiny), 0.5, -2.25, np.inf]
    return np.array([pool[(i + shift) % len(pool)] for i in range(n)], dtype=dt)


def header(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    assert raw[: len(MAGIC)] == MAGIC
    (hlen,) = struct.unpack_from("<I", raw, len(MAGIC))
    return json.loads(raw[len(MAGIC) + 4 : len(MAGIC) + 4 + hlen])


def gaps(path: Path) -> list[tuple[str, bytes]]:
    """The bytes between each buffer's end and the next buffer (or the file's end)."""
    raw = path.read_bytes()
    h = header(path)
    specs = h["per_request"] + h["per_row"]
    nexts = [s["offset"] for s in specs[1:]] + [h["size"]]
    pairs = zip(specs, nexts, strict=True)
    return [(s["name"], raw[s["offset"] + s["nbytes"] : n]) for s, n in pairs]


def o_direct_works(directory: Path) -> bool:
    """Whether the file system of ``directory`` accepts an O_DIRECT write of one block."""
    if not getattr(os, "O_DIRECT", 0):
        return False
    probe = directory / ".odirect-probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    try:
        with mmap.mmap(-1, BLOCK) as page:  # page-aligned memory
            os.write(fd, page)
        return True
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


def window(log: PredictionLog, ts: float, endpoint: str = "ep") -> pa.Table:
    """The records of one second (one request's own file, whatever else was written)."""
    return log.read_table(endpoint, since=ts, until=ts + 1)


def sample(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", NUMERIC)
def test_every_numeric_dtype_round_trips_exactly_through_segments(
    tmp_path: Path, dtype: str
) -> None:
    """Two layouts per dtype: 1-D inputs of one dtype (a shared matrix buffer) with one
    output array, and a 1-D input beside an (n, 2, 3) tensor with a dict of outputs."""
    log = make(tmp_path)
    arrow_type = pa.from_numpy_dtype(np.dtype(dtype))
    flat: list[tuple[str, int, np.ndarray, np.ndarray, np.ndarray]] = []
    nested: list[tuple[str, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for r, rows in enumerate((3, 1, 4)):
        x, y, out = values(dtype, rows, r), values(dtype, rows, r + 1), values(dtype, rows, r + 2)
        log.submit_nowait(batch(f"f{r}", {"x": x, "y": y}, out, endpoint="flat", ts=T0 + r))
        flat.append((f"f{r}", rows, x, y, out))
        t = values(dtype, rows * 6, r).reshape(rows, 2, 3)
        label, proba = values(dtype, rows, r + 3), values(dtype, rows * 2, r).reshape(rows, 2)
        log.submit_nowait(
            batch(
                f"n{r}",
                {"x": x, "t": t},
                {"label": label, "proba": proba},
                endpoint="nested",
                ts=T0 + r,
                version=3,
                role="canary",
            )
        )
        nested.append((f"n{r}", rows, x, t, label, proba))
    log.close()

    assert files(tmp_path, ".seg") and not files(tmp_path, ".arrow")
    reader = make(tmp_path)

    t = reader.read_table("flat")
    assert t.column("id").to_pylist() == [f"{rid}-{i}" for rid, n, *_ in flat for i in range(n)]
    assert t.column("request_id").to_pylist() == [rid for rid, n, *_ in flat for _ in range(n)]
    assert t.schema.field("input.x").type == arrow_type
    assert t.schema.field("input.y").type == arrow_type
    assert t.schema.field("output").type == arrow_type
    for name, k in (("x", 2), ("y", 3), ("output", 4)):
        got = reader.read_column("flat", name)
        want = np.concatenate([rec[k] for rec in flat])
        assert got.dtype == np.dtype(dtype)
        assert np.array_equal(got, want)
    df = reader.read("flat")
    assert df["input.x"].dtype == np.dtype(dtype) and df["output"].dtype == np.dtype(dtype)
    assert df["endpoint"].tolist() == ["flat"] * 8 and df["model"].tolist() == ["m"] * 8
    assert df["status"].tolist() == [200] * 8 and df["latency_ms"].tolist() == [1.25] * 8
    assert df["error"].isna().all()
    assert [ts.timestamp() for ts in df["ts"]] == [T0] * 3 + [T0 + 1] + [T0 + 2] * 4

    t = reader.read_table("nested")
    assert t.column("id").to_pylist() == [f"{rid}-{i}" for rid, n, *_ in nested for i in range(n)]
    assert t.schema.field("input.t").type == pa.list_(pa.list_(arrow_type, 3), 2)
    assert t.schema.field("output.label").type == arrow_type
    assert t.schema.field("output.proba").type == pa.list_(arrow_type, 2)
    assert "output" not in t.column_names
    assert set(t.column("version").to_pylist()) == {3}
    assert set(t.column("role").to_pylist()) == {"canary"}
    for name, k in (("x", 2), ("t", 3), ("output.label", 4), ("output.proba", 5)):
        got = reader.read_column("nested", name, role="canary")
        want = np.concatenate([rec[k] for rec in nested])
        assert got.dtype == np.dtype(dtype) and got.shape == want.shape
        assert np.array_equal(got, want)
    assert reader.count("nested") == 8 and reader.count("flat") == 8


def test_tail_and_count_read_segments(tmp_path: Path) -> None:
    log = make(tmp_path)
    for i in range(5):
        log.submit_nowait(floats(f"r{i}", 2, ts=T0 + i, start=i))
        if i == 2:
            log.flush()
    log.close()
    assert len(files(tmp_path, ".seg")) == 2
    reader = make(tmp_path)
    assert reader.count("ep") == 10
    assert reader.tail("ep", 3)["id"].tolist() == ["r3-1", "r4-0", "r4-1"]


# ---------------------------------------------------------------- the matrix layout


def _matrix_batches(with_matrix: bool) -> list[LogBatch]:
    out = []
    for r in range(4):
        m = np.arange(15, dtype=np.float64).reshape(5, 3) * (r + 1) + 0.25
        cols = {"a": m[:, 0].copy(), "b": m[:, 1].copy(), "c": m[:, 2].copy()}
        given = None
        if with_matrix:
            # C order, Fortran order, a column view, and a wrong shape (ignored)
            given = [m, np.asfortranarray(m), m, m[:, :2]][r]
        out.append(batch(f"r{r}", cols, m[:, 0] > 5, ts=T0 + r, matrix=given))
    return out


def test_matrix_copy_and_column_by_column_copy_read_the_same(tmp_path: Path) -> None:
    with_m, without_m = make(tmp_path / "with"), make(tmp_path / "without")
    for b in _matrix_batches(True):
        with_m.submit_nowait(b)
    for b in _matrix_batches(False):
        without_m.submit_nowait(b)
    with_m.close()
    without_m.close()
    for root in (tmp_path / "with", tmp_path / "without"):
        assert len(files(root, ".seg")) == 1 and not files(root, ".arrow")
    a = make(tmp_path / "with").read_table("ep")
    b = make(tmp_path / "without").read_table("ep")
    assert a.equals(b)
    assert a.num_rows == 20
    assert a.column("input.b").to_pylist() == [
        float(v) for r in range(4) for v in np.arange(1, 15, 3) * (r + 1) + 0.25
    ]
    assert a.schema.field("input.a").type == pa.float64()
    assert a.schema.field("output").type == pa.bool_()


def test_a_matrix_of_another_dtype_does_not_coerce_an_int_column(tmp_path: Path) -> None:
    """A float64 channel, then a batch whose ``b`` is int64 though its matrix is float64:
    it takes the general path and ``b`` stays int64, exact beyond 2**53."""
    log = make(tmp_path)
    log.submit_nowait(floats("floats", 2, ts=T0))
    big = np.array([2**53 + 1, -(2**62) - 3], dtype=np.int64)
    a = np.array([0.5, 1.5])
    mixed = batch(
        "mixed",
        {"a": a, "b": big},
        np.array([1, 2], dtype=np.int64),
        ts=T0 + 5,
        matrix=np.column_stack([a, big.astype(np.float64)]),
    )
    assert log.offer(mixed)  # not this channel's layout: it takes the general path
    log.close()
    assert len(files(tmp_path, ".seg")) == 1 and len(files(tmp_path, ".arrow")) == 1
    reader = make(tmp_path)
    t = window(reader, T0 + 5)
    assert t.schema.field("input.b").type == pa.int64()
    assert t.column("input.b").to_pylist() == big.tolist()
    ids = reader.read("ep", columns=["id"])["id"].tolist()
    assert ids == ["floats-0", "floats-1", "mixed-0", "mixed-1"]


def test_a_read_across_int_and_float_files_of_one_column_succeeds(tmp_path: Path) -> None:
    log = make(tmp_path)
    log.submit_nowait(floats("floats", 1, ts=T0))
    big = np.array([2**53 + 1], dtype=np.int64)
    log.submit_nowait(batch("ints", {"a": np.array([0.5]), "b": big}, np.array([1]), ts=T0 + 5))
    log.close()
    df = make(tmp_path).read("ep")
    assert df["id"].tolist() == ["floats-0", "ints-0"]


def test_a_first_batch_of_mixed_dtypes_ignores_its_matrix(tmp_path: Path) -> None:
    """The batch that creates a channel: mixed input dtypes get one buffer per column."""
    log = make(tmp_path)
    big = np.array([2**53 + 1, 7], dtype=np.int64)
    a = np.array([0.5, 1.5])
    m = np.column_stack([a, big.astype(np.float64)])
    log.submit_nowait(batch("m0", {"a": a, "b": big}, a * 2, ts=T0, matrix=m))
    assert log.offer(batch("m1", {"a": a + 1, "b": big + 1}, a, ts=T0 + 1, matrix=m + 1))
    log.close()
    assert len(files(tmp_path, ".seg")) == 1 and not files(tmp_path, ".arrow")
    t = make(tmp_path).read_table("ep")
    assert t.schema.field("input.b").type == pa.int64()
    assert t.column("input.b").to_pylist() == [*big.tolist(), *(big + 1).tolist()]
    assert t.column("input.a").to_pylist() == [0.5, 1.5, 1.5, 2.5]


def test_int_columns_with_a_float_matrix_are_not_coerced(tmp_path: Path) -> None:
    log = make(tmp_path)
    log.submit_nowait(floats("floats", 2, ts=T0))
    ints = {"a": np.array([3, 4], dtype=np.int64), "b": np.array([2**53 + 1, 6], dtype=np.int64)}
    m = np.column_stack([ints["a"], ints["b"]]).astype(np.float64)
    log.submit_nowait(batch("ints", ints, np.array([0, 1]), ts=T0 + 5, matrix=m))
    log.close()
    t = window(make(tmp_path), T0 + 5)
    assert t.schema.field("input.b").type == pa.int64()
    assert t.column("input.b").to_pylist() == [2**53 + 1, 6]


# ---------------------------------------------------------------- layout changes


def test_layout_changes_go_to_the_general_path_and_keep_their_types(tmp_path: Path) -> None:
    log = make(tmp_path)
    x = np.array([1.5, 2.5])
    log.submit_nowait(batch("r0", {"x": x}, np.array([1, 2]), ts=T0))  # the channel
    log.submit_nowait(batch("r1", {"x": np.array([7, 8])}, np.array([1, 2]), ts=T0 + 1))
    log.submit_nowait(batch("r2", {"z": x}, np.array([1, 2]), ts=T0 + 2))  # other name
    assert log.offer(batch("r3", {"x": x + 1}, np.array([3, 4]), ts=T0 + 3))
    log.flush()
    assert len(files(tmp_path, ".seg")) == 1 and len(files(tmp_path, ".arrow")) == 1
    # another output dtype, then another output kind (a dict), then the channel's again
    log.submit_nowait(batch("r4", {"x": x}, np.array([0.5, 1.0], np.float32), ts=T0 + 4))
    log.submit_nowait(batch("r5", {"x": x}, {"p": np.array([1, 2])}, ts=T0 + 5))
    assert log.offer(batch("r6", {"x": x + 2}, np.array([5, 6]), ts=T0 + 6))
    log.close()
    assert len(files(tmp_path, ".seg")) == 2 and len(files(tmp_path, ".arrow")) == 2

    reader = make(tmp_path)
    df = reader.read("ep")
    assert df["id"].tolist() == [f"r{r}-{i}" for r in range(7) for i in range(2)]
    assert df["ts"].is_monotonic_increasing
    expect: list[tuple[int, str, pa.DataType, list[Any]]] = [
        (0, "input.x", pa.float64(), [1.5, 2.5]),
        (0, "output", pa.int64(), [1, 2]),
        (1, "input.x", pa.int64(), [7, 8]),
        (2, "input.z", pa.float64(), [1.5, 2.5]),
        (3, "input.x", pa.float64(), [2.5, 3.5]),
        (4, "output", pa.float32(), [0.5, 1.0]),
        (5, "output.p", pa.int64(), [1, 2]),
        (6, "input.x", pa.float64(), [3.5, 4.5]),
        (6, "output", pa.int64(), [5, 6]),
    ]
    for r, column, typ, vals in expect:
        t = window(reader, T0 + r)
        assert t.column("id").to_pylist() == [f"r{r}-0", f"r{r}-1"]
        assert t.schema.field(column).type == typ, (r, column)
        assert t.column(column).to_pylist() == vals
    assert window(reader, T0 + 2).column("input.x").null_count == 2  # r2 has no x


# ---------------------------------------------------------------- hours and ids


def test_a_flush_straddling_an_hour_writes_one_segment_per_hour(tmp_path: Path) -> None:
    log = make(tmp_path)
    log.submit_nowait(floats("a", 3, ts=T1 - 0.5, start=0))
    assert log.offer(floats("b", 2, ts=T1 + 0.5, start=10))
    assert log.offer(floats("c", 1, ts=T1 - 0.1, start=20))
    assert log.offer(floats("d", 2, ts=T1 + 7, start=30))
    log.close()
    segs = files(tmp_path, ".seg")
    assert [p.relative_to(tmp_path).parts[:3] for p in segs] == [
        ("ep", "2026-01-01", "10"),
        ("ep", "2026-01-01", "11"),
    ]
    assert not files(tmp_path, ".arrow") and not files(tmp_path, ".tmp")
    ten, eleven = (header(p) for p in segs)
    assert (ten["requests"], ten["rows"], eleven["requests"], eleven["rows"]) == (2, 4, 2, 4)
    assert ten["ts_max_ns"] < T1 * 1e9 <= eleven["ts_min_ns"]
    reader = make(tmp_path)
    df = reader.read("ep")
    assert df["id"].tolist() == ["a-0", "a-1", "a-2", "c-0", "b-0", "b-1", "d-0", "d-1"]
    assert df["input.a"].tolist() == [0.0, 1.0, 2.0, 20.0, 10.0, 11.0, 30.0, 31.0]
    assert df["output"].tolist() == [0, 100, 200, 2000, 1000, 1100, 3000, 3100]
    assert reader.read_column("ep", "b", since=T1).tolist() == [100.0, 110.0, 300.0, 310.0]


def test_non_ascii_request_ids_survive(tmp_path: Path) -> None:
    log = make(tmp_path)
    rids = ["réq-日本", "plain", "emoji-🙂", "ß"]
    for i, rid in enumerate(rids):
        log.submit_nowait(floats(rid, 2, ts=T0 + i))
    log.close()
    assert len(files(tmp_path, ".seg")) == 1
    reader = make(tmp_path)
    df = reader.read("ep")
    assert df["id"].tolist() == [f"{rid}-{i}" for rid in rids for i in range(2)]
    assert df["request_id"].tolist() == [rid for rid in rids for _ in range(2)]
    assert reader.read_column("ep", "request_id").tolist()[:2] == ["réq-日本"] * 2


# ---------------------------------------------------------------- damaged segments


def test_damaged_segments_are_skipped_and_counted_once(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    log = make(tmp_path)
    log.submit_nowait(floats("good", 3, ts=T0))
    log.close()
    (good,) = files(tmp_path, ".seg")
    data = good.read_bytes()
    ns = int(T0 * 1e9)
    truncated = good.parent / f"part-{ns}-424242-1.seg"
    truncated.write_bytes(data[: len(data) // 2])
    bad_magic = good.parent / f"part-{ns}-424242-2.seg"
    bad_magic.write_bytes(b"NOTASEG\n" + data[len(MAGIC) :])
    too_long = good.parent / f"part-{ns}-424242-3.seg"
    too_long.write_bytes(data + bytes(64))  # the header says 64 bytes fewer

    for bad in (truncated, bad_magic, too_long):
        with pytest.raises(SegmentError):
            read_info(bad)
        with pytest.raises(SegmentError):
            read_segment(bad)

    reader = make(tmp_path, registry=reg)
    assert reader.read("ep")["id"].tolist() == ["good-0", "good-1", "good-2"]
    assert reader.stats()["files_skipped"] == 3
    assert reader.read_column("ep", "a").tolist() == [0.0, 1.0, 2.0]
    assert reader.count("ep") == 3
    assert len(reader.tail("ep", 10)) == 3
    assert reader.stats()["files_skipped"] == 3  # each bad file counted once
    assert sample(reg, "lockgate_prediction_log_files_skipped_total") == 3


def test_a_segment_cut_inside_its_length_word_is_skipped(tmp_path: Path) -> None:
    log = make(tmp_path)
    log.submit_nowait(floats("good", 1))
    log.close()
    (good,) = files(tmp_path, ".seg")
    cut = good.parent / f"part-{int(T0 * 1e9)}-424242-1.seg"
    cut.write_bytes(good.read_bytes()[:10])
    reader = make(tmp_path)
    assert reader.read("ep")["id"].tolist() == ["good-0"]
    assert reader.stats()["files_skipped"] == 1


def test_a_segment_header_without_buffer_lists_is_skipped(tmp_path: Path) -> None:
    log = make(tmp_path)
    log.submit_nowait(floats("good", 1))
    log.close()
    (good,) = files(tmp_path, ".seg")
    raw = good.read_bytes()
    (hlen,) = struct.unpack_from("<I", raw, len(MAGIC))
    h = header(good)
    del h["per_row"]
    text = json.dumps(h).encode()
    text += b" " * (hlen - len(text))  # same length: the size still matches
    start = len(MAGIC) + 4
    damaged = good.parent / f"part-{int(T0 * 1e9)}-424242-1.seg"
    damaged.write_bytes(raw[:start] + text + raw[start + hlen :])
    reader = make(tmp_path)
    assert reader.read("ep")["id"].tolist() == ["good-0"]
    assert reader.stats()["files_skipped"] == 1


# ---------------------------------------------------------------- direct I/O


def _wide(rid: str, ts: float, base: float) -> LogBatch:
    """100 rows x 10 float64 inputs (with the matrix), one float64 output."""
    m = np.arange(1000, dtype=np.float64).reshape(100, 10) + base
    cols = {f"f{j}": m[:, j].copy() for j in range(10)}
    return batch(rid, cols, m[:, 0] * 2, ts=ts, matrix=m)


def _wide_expected(base: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, 10) inputs and the output of requests 0..n-1 of a :func:`_wide` cycle."""
    per_req = np.repeat(np.arange(n, dtype=np.float64), 100)
    k = np.tile(np.arange(100, dtype=np.float64), n)
    inputs = (k * 10)[:, None] + np.arange(10)[None, :] + base + per_req[:, None]
    return inputs, inputs[:, 0] * 2


def test_a_large_segment_is_written_exactly_with_zero_padding(tmp_path: Path) -> None:
    """Three write cycles: 4000 requests, 1, then 3000. The third reuses the first's
    buffers (handed back after the write), whose tail still holds the first cycle's data:
    the padding after each buffer must be zeros, not that stale memory."""
    cycles = ((0.0, 4000), (100_000.0, 1), (200_000.0, 3000))
    log = make(tmp_path, max_queue_rows=1_000_000)
    for c, (base, n) in enumerate(cycles):
        for i in range(n):
            b = _wide(f"c{c}-{i}", T0 + c * 10 + i * 1e-3, base + i)
            if not log.offer(b):
                log.submit_nowait(b)
        log.flush()
    log.close()

    segs = files(tmp_path, ".seg")
    assert len(segs) == 3 and not files(tmp_path, ".arrow")
    direct = o_direct_works(tmp_path)
    for seg in segs:
        h = header(seg)
        assert seg.stat().st_size == h["size"]
        for name, pad in gaps(seg):
            assert pad == bytes(len(pad)), f"{seg.name}: non-zero bytes after {name}"
        big = sum(s["nbytes"] for s in h["per_row"]) >= DIRECT_MIN_BYTES
        if big and direct:  # the O_DIRECT layout: per-row buffers on whole blocks
            assert all(s["offset"] % BLOCK == 0 for s in h["per_row"])
            assert h["size"] % BLOCK == 0
    assert [header(p)["rows"] for p in segs] == [400_000, 100, 300_000]

    t = make(tmp_path).read_table("ep")
    assert t.num_rows == 700_100
    ids = t.column("id").to_pylist()
    assert ids[:2] == ["c0-0-0", "c0-0-1"] and ids[-1] == "c2-2999-99"
    assert len(set(ids)) == len(ids)
    start = 0
    for base, n in cycles:
        inputs, output = _wide_expected(base, n)
        stop = start + len(output)
        for j in range(10):
            assert np.array_equal(t.column(f"input.f{j}").to_numpy()[start:stop], inputs[:, j])
        assert np.array_equal(t.column("output").to_numpy()[start:stop], output)
        start = stop


def _aligned_segment(n_req: int, rows: int, k: int, dirt: int = 0xAB) -> SegmentData:
    """A segment whose per-row buffers are laid out like a channel's (block-aligned, with
    room after the rows) and whose spare memory holds ``dirt`` (a reused buffer)."""
    n = n_req * rows
    inputs = aligned_empty(2 * n, (k,), np.dtype(np.float64))
    output = aligned_empty(2 * n, (), np.dtype(np.int32))
    for a in (inputs, output):
        assert isinstance(a.base, np.ndarray)
        a.base[:] = dirt  # the whole allocation, beyond the rows too
    inputs[:n] = np.arange(n * k, dtype=np.float64).reshape(n, k) / 8
    output[:n] = np.arange(n, dtype=np.int32) * -3
    return SegmentData(
        "ep",
        "m",
        1,
        "primary",
        [f"réq{i}" for i in range(n_req)],
        T0 + np.arange(n_req) * 1e-3,
        np.full(n_req, 2.5),
        np.full(n_req, 200, dtype=np.int32),
        np.full(n_req, rows, dtype=np.int32),
        {"inputs": inputs[:n], "output": output[:n]},
        {"inputs": [f"input.f{j}" for j in range(k)]},
    )


def _check_written(path: Path, seg: SegmentData, k: int) -> dict[str, Any]:
    h = header(path)
    assert path.stat().st_size == h["size"]
    for name, pad in gaps(path):
        assert pad == bytes(len(pad)), f"non-zero bytes after {name}"
    t = read_segment(path)
    n = seg.num_rows
    assert t.num_rows == n
    for j in range(k):
        assert np.array_equal(t.column(f"input.f{j}").to_numpy(), seg.columns["inputs"][:, j])
    assert np.array_equal(t.column("output").to_numpy(), seg.columns["output"])
    assert t.column("request_id").to_pylist()[:2] == ["réq0", "réq0"]
    assert read_info(path).num_rows == n
    return h


def test_write_segment_with_direct_io_pads_with_zeros(tmp_path: Path) -> None:
    seg = _aligned_segment(1001, 4, 10)  # 320,320 bytes of inputs: not whole blocks
    assert sum(a.nbytes for a in seg.columns.values()) >= DIRECT_MIN_BYTES
    dio = DirectIO()
    path = tmp_path / "direct.seg"
    write_segment(path, seg, direct=dio)
    h = _check_written(path, seg, 10)
    if o_direct_works(tmp_path):
        assert dio.usable(tmp_path)
        assert all(s["offset"] % BLOCK == 0 for s in h["per_row"])
        assert h["size"] % BLOCK == 0


def test_write_segment_without_direct_io_uses_the_compact_layout(tmp_path: Path) -> None:
    seg = _aligned_segment(1001, 4, 10)
    refused = DirectIO()
    refused.refuse(tmp_path)
    assert not refused.usable(tmp_path)
    for name, dio in (("refused.seg", refused), ("none.seg", None)):
        path = tmp_path / name
        write_segment(path, seg, direct=dio)
        h = _check_written(path, seg, 10)
        assert all(s["offset"] % 64 == 0 for s in h["per_row"])
        assert any(s["offset"] % BLOCK for s in h["per_row"])  # not the direct layout
    # buffers not laid out for O_DIRECT (fresh arrays) fall back to the compact layout too
    fresh = {"inputs": seg.columns["inputs"].copy(), "output": seg.columns["output"].copy()}
    plain = dataclasses.replace(seg, columns=fresh)
    assert encode(seg, direct=True).direct
    assert not encode(plain, direct=True).direct
    write_segment(tmp_path / "plain.seg", plain, direct=DirectIO())
    _check_written(tmp_path / "plain.seg", plain, 10)


class _Calls:
    """Counts calls of ``os`` functions and passes them on to the real ones."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        for name in names:
            real = getattr(os, name)

            def spy(*args: Any, _real: Any = real, _name: str = name) -> Any:
                self.calls.append((_name, args))
                return _real(*args)

            monkeypatch.setattr(os, name, spy)

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]


needs_rwf_dsync = pytest.mark.skipif(
    not (hasattr(os, "pwritev") and hasattr(os, "RWF_DSYNC")), reason="no pwritev RWF_DSYNC"
)


@needs_rwf_dsync
@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
def test_a_durable_segment_is_written_and_synced_in_one_system_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    """One ``pwritev`` with ``RWF_DSYNC`` instead of ``writev`` then ``fsync``: the writer
    thread gives the GIL up once per segment instead of twice. A write that need not be
    durable stays a plain ``writev``."""
    if not predlog_segment._dsync_ok[0]:
        pytest.skip("this kernel refused RWF_DSYNC earlier in the run")
    seg = _aligned_segment(1001, 4, 10)
    calls = _Calls(monkeypatch, "pwritev", "writev", "fsync")
    write_segment(tmp_path / "a.seg", seg, direct=DirectIO() if direct else None)
    assert calls.names() == ["pwritev"]
    assert calls.calls[0][1][2:] == (0, os.RWF_DSYNC)
    _check_written(tmp_path / "a.seg", seg, 10)
    calls.calls.clear()
    write_segment(tmp_path / "b.seg", seg, direct=None, fsync=False)
    assert calls.names() == ["writev"]
    _check_written(tmp_path / "b.seg", seg, 10)


@needs_rwf_dsync
def test_a_kernel_without_rwf_dsync_gets_writev_and_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel older than Linux 4.7 refuses the flag (EOPNOTSUPP): that write and every
    later one go through ``writev`` and ``fsync``, and read back exactly. Other errors are
    raised."""
    monkeypatch.setattr(predlog_segment, "_dsync_ok", [True])  # restored after the test
    refusals: list[int] = []

    def old_kernel(*args: Any) -> int:
        refusals.append(1)
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "pwritev", old_kernel)
    calls = _Calls(monkeypatch, "writev", "fsync")
    seg = _aligned_segment(1001, 4, 10)
    write_segment(tmp_path / "a.seg", seg, direct=DirectIO())
    write_segment(tmp_path / "b.seg", seg, direct=DirectIO())
    assert refusals == [1]
    assert calls.names() == ["writev", "fsync", "writev", "fsync"]
    _check_written(tmp_path / "a.seg", seg, 10)
    _check_written(tmp_path / "b.seg", seg, 10)

    monkeypatch.setattr(predlog_segment, "_dsync_ok", [True])

    def disk_full(*args: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwritev", disk_full)
    with pytest.raises(OSError) as info:
        write_segment(tmp_path / "c.seg", seg, direct=DirectIO())
    assert info.value.errno == errno.ENOSPC
    assert predlog_segment._dsync_ok[0]  # no reason to give the flag up


@needs_rwf_dsync
def test_an_o_direct_write_refused_at_the_write_falls_back_and_keeps_rwf_dsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system that opens with O_DIRECT but refuses the write (EINVAL, as some FUSE
    and network file systems do): the segment is written buffered, still in one durable
    call, and the folder is not tried with O_DIRECT again."""
    import fcntl

    monkeypatch.setattr(predlog_segment, "_dsync_ok", [True])
    real = os.pwritev
    direct_writes: list[int] = []

    def refuses_direct(fd: int, *args: Any) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0):
            direct_writes.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, *args)

    monkeypatch.setattr(os, "pwritev", refuses_direct)
    seg = _aligned_segment(1001, 4, 10)
    dio = DirectIO()
    write_segment(tmp_path / "a.seg", seg, direct=dio)
    _check_written(tmp_path / "a.seg", seg, 10)
    assert predlog_segment._dsync_ok[0]
    if o_direct_works(tmp_path):
        assert len(direct_writes) == 1
        assert not dio.usable(tmp_path)


@needs_rwf_dsync
def test_a_short_durable_write_is_completed_and_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``pwritev`` that writes less than asked (the kernel may, rarely): the rest is
    written after it, then fsynced, and the segment reads back exactly."""
    monkeypatch.setattr(predlog_segment, "_dsync_ok", [True])
    real = os.pwritev

    def short(fd: int, chunk: list[Any], offset: int, flags: int) -> int:
        return real(fd, chunk[:1], offset, flags)  # the header only

    monkeypatch.setattr(os, "pwritev", short)
    calls = _Calls(monkeypatch, "write", "fsync")
    seg = _aligned_segment(1001, 4, 10)
    write_segment(tmp_path / "a.seg", seg, direct=None)
    assert "write" in calls.names()
    assert calls.names()[-1] == "fsync"
    _check_written(tmp_path / "a.seg", seg, 10)


def _tag_in_child(conn: Any) -> None:
    from lockgate.store.predlog_format import file_tag

    conn.send((os.getpid(), file_tag()))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_file_names_carry_the_process_id_of_a_forked_child(tmp_path: Path) -> None:
    """The process id is read once per process; a forked child names its files with its own
    (two processes writing one folder must not collide)."""
    import multiprocessing

    from lockgate.store.predlog_format import file_tag

    parent = file_tag()
    assert parent.split("-")[0] == str(os.getpid())
    ctx = multiprocessing.get_context("fork")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=_tag_in_child, args=(theirs,))
    child.start()
    pid, tag = ours.recv()
    child.join(30)
    assert child.exitcode == 0
    assert pid != os.getpid()
    assert tag.split("-")[0] == str(pid)


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm")
    d = Path(tempfile.mkdtemp(prefix="lockgate-seg-", dir="/dev/shm"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_direct_io_falls_back_where_the_file_system_refuses_it(shm_dir: Path) -> None:
    """tmpfs refused O_DIRECT with EINVAL before Linux 6.6; newer kernels accept it. Either
    way the segment reads back, and DirectIO learns what the folder does."""
    refuses = not o_direct_works(shm_dir)
    seg = _aligned_segment(1001, 4, 10)
    dio = DirectIO()
    path = shm_dir / "x.seg"
    write_segment(path, seg, direct=dio)
    h = _check_written(path, seg, 10)
    assert dio.usable(shm_dir) is (not refuses)
    if refuses:  # a buffered write of the direct layout, then no O_DIRECT there any more
        write_segment(shm_dir / "y.seg", seg, direct=dio)
        _check_written(shm_dir / "y.seg", seg, 10)
        assert not dio.usable(shm_dir)
    else:
        assert all(s["offset"] % BLOCK == 0 for s in h["per_row"])


@pytest.fixture
def refusing_o_direct(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """A file system that refuses O_DIRECT at open (EINVAL), as tmpfs did before Linux 6.6
    and some network and FUSE file systems do: the outside world, simulated. An open in a
    folder that does not exist fails as it would (ENOENT). Returns every open, as (path,
    with O_DIRECT)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        pytest.skip("no O_DIRECT on this platform")
    real_open = os.open
    opens: list[tuple[str, bool]] = []

    def open_(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        opens.append((str(path), bool(flags & flag)))
        if flags & flag and Path(path).parent.is_dir():
            raise OSError(errno.EINVAL, "Invalid argument", str(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", open_)
    return opens


def _refused(opens: list[tuple[str, bool]]) -> int:
    return sum(direct for _, direct in opens)


def test_write_segment_falls_back_to_a_buffered_write_on_einval(
    tmp_path: Path, refusing_o_direct: list[tuple[str, bool]]
) -> None:
    """The laid-out-for-O_DIRECT segment is written buffered, reads back exactly, and the
    folder is not tried with O_DIRECT again; other errors are not swallowed."""
    seg = _aligned_segment(1001, 4, 10)
    dio = DirectIO()
    assert dio.usable(tmp_path)
    write_segment(tmp_path / "a.seg", seg, direct=dio)
    assert _refused(refusing_o_direct) == 1
    h = _check_written(tmp_path / "a.seg", seg, 10)
    assert all(s["offset"] % BLOCK == 0 for s in h["per_row"])  # the layout it was given
    assert not dio.usable(tmp_path)
    write_segment(tmp_path / "b.seg", seg, direct=dio)  # laid out compact, opened plain
    assert _refused(refusing_o_direct) == 1
    h = _check_written(tmp_path / "b.seg", seg, 10)
    assert any(s["offset"] % BLOCK for s in h["per_row"])
    missing = str(tmp_path / "missing" / "c.seg")
    fresh = DirectIO()
    enc = lay_out(seg, tmp_path, fresh)  # as the writer does: laid out for the log's root
    assert enc.direct
    with pytest.raises(FileNotFoundError):  # ENOENT is no refusal: raised, no second try
        write_segment(Path(missing), seg, direct=fresh, encoded=enc)
    assert [o for o in refusing_o_direct if o[0] == missing] == [(missing, True)]


def test_log_writes_large_snapshots_buffered_where_o_direct_is_refused(
    tmp_path: Path, refusing_o_direct: list[tuple[str, bool]]
) -> None:
    """Through a running log: snapshots large enough for O_DIRECT are written anyway, every
    row reads back, nothing is counted lost or failed, and O_DIRECT is tried only once."""
    root = tmp_path / "log"
    log = make(root)
    log.start()
    rows = 2000  # 2000 rows x (2 float64 inputs + an int64 output): 48 KB per request
    n = 0
    for _flush in range(3):  # 10 requests per flush: 480 KB, above DIRECT_MIN_BYTES
        for _ in range(10):
            b = floats(f"r{n}", rows, ts=T0 + n, start=n * rows)
            b.matrix = np.column_stack([b.inputs["a"], b.inputs["b"]])  # type: ignore[index]
            if not log.offer(b):
                asyncio.run(log.submit(b))
            n += 1
        log.flush()
        assert _refused(refusing_o_direct) == 1  # refused at the first, not tried again
    log.close()
    stats = log.stats()
    assert stats["rows_written"] == n * rows
    assert stats["rows_lost"] == 0 and stats["write_errors"] == 0
    df = make(root).read("ep")
    assert len(df) == n * rows
    assert np.array_equal(df["input.a"].to_numpy(), np.arange(n * rows, dtype=np.float64))
    assert np.array_equal(df["input.b"].to_numpy(), np.arange(n * rows) * 10.0)
    assert np.array_equal(df["output"].to_numpy(), np.arange(n * rows) * 100)


# ---------------------------------------------------------------- write failures


def test_async_fast_path_write_failure_is_retried_exactly_once(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    root = tmp_path / "log"
    root.mkdir()
    (root / "ep").write_text("a file where the endpoint folder must go")
    log = make(root, registry=reg)
    log.submit_nowait(floats("a", 3, ts=T0))
    assert log.offer(floats("b", 2, ts=T0 + 1))
    with pytest.raises(StoreError, match="will retry"):
        log.flush()
    assert log.stats()["queue_rows"] == 5  # kept, not dropped
    assert log.stats()["write_errors"] == 1
    assert sample(reg, "lockgate_prediction_log_write_errors_total") == 1
    assert log.offer(floats("c", 1, ts=T0 + 2))  # the channel still takes records
    assert log.stats()["queue_rows"] == 6
    with pytest.raises(StoreError, match="will retry"):
        log.flush()
    assert log.stats()["queue_rows"] == 6
    (root / "ep").unlink()
    log.flush()
    assert log.stats()["queue_rows"] == 0
    log.close()
    assert not files(root, ".tmp") and not files(root, ".arrow")
    df = make(root).read("ep")
    assert df["id"].tolist() == ["a-0", "a-1", "a-2", "b-0", "b-1", "c-0"]
    assert log.stats()["rows_lost"] == 0 and log.stats()["rows_written"] == 6


def test_a_failed_straddling_snapshot_leaves_nothing_visible(tmp_path: Path) -> None:
    """The segment of the first hour is not renamed while the second hour's fails, so the
    retry does not write the first hour's rows twice."""
    log = make(tmp_path)
    (tmp_path / "ep" / "2026-01-01").mkdir(parents=True)
    (tmp_path / "ep" / "2026-01-01" / "11").write_text("blocks the second hour")
    log.submit_nowait(floats("ten", 2, ts=T1 - 1))
    assert log.offer(floats("eleven", 2, ts=T1 + 1))
    with pytest.raises(StoreError, match="will retry"):
        log.flush()
    assert not files(tmp_path, ".seg") and not files(tmp_path, ".tmp")
    (tmp_path / "ep" / "2026-01-01" / "11").unlink()
    log.close()
    assert len(files(tmp_path, ".seg")) == 2
    ids = make(tmp_path).read("ep")["id"].tolist()
    assert ids == ["ten-0", "ten-1", "eleven-0", "eleven-1"]


def test_sync_fast_path_write_failure_reaches_the_caller(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    root = tmp_path / "log"
    root.mkdir()
    (root / "ep").write_text("in the way")
    log = make(root, durability="sync", registry=reg)
    log.start()

    async def failing() -> None:
        with pytest.raises(StoreError, match="write failed"):
            await log.submit(floats("a", 3))

    asyncio.run(failing())
    assert sample(reg, "lockgate_prediction_log_rows_lost_total", reason="sync_write_failed") == 3
    assert log.stats()["rows_lost"] == 3 and log.stats()["queue_rows"] == 0
    (root / "ep").unlink()

    async def working() -> None:
        await asyncio.gather(*(log.submit(floats(f"ok{i}", 2, ts=T0 + i)) for i in range(5)))
        assert make(root).count("ep") == 10  # durable before any flush or close

    asyncio.run(working())
    log.close()
    assert files(root, ".seg") and not files(root, ".arrow")
    ids = make(root).read("ep")["id"].tolist()
    assert ids == [f"ok{i}-{j}" for i in range(5) for j in range(2)]
    assert log.stats()["rows_lost"] == 3  # the failed request only


# ---------------------------------------------------------------- the queue bound


def test_channel_rows_count_against_the_queue_bound(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    log = make(tmp_path, max_queue_rows=10, overflow="reject", registry=reg)  # not started
    log.submit_nowait(floats("a", 4, ts=T0))
    assert log.offer(floats("b", 4, ts=T0 + 1))
    assert not log.offer(floats("c", 4, ts=T0 + 2))  # 12 > 10: refused, nothing copied
    assert log.stats()["queue_rows"] == 8 and log.stats()["rows_submitted"] == 8
    with pytest.raises(OverloadedError, match="queue is full"):
        log.submit_nowait(floats("c", 4, ts=T0 + 2))

    async def refused() -> None:
        with pytest.raises(OverloadedError):
            await log.submit(floats("c", 4, ts=T0 + 2))

    asyncio.run(refused())
    assert log.offer(floats("d", 2, ts=T0 + 3))  # exactly full
    assert not log.offer(floats("e", 1, ts=T0 + 4))
    assert log.stats()["queue_rows"] == 10
    assert log.stats()["overflow_reject"] == 2
    assert sample(reg, "lockgate_prediction_log_overflow_total", policy="reject") == 2
    log.flush()
    assert log.stats()["queue_rows"] == 0
    assert log.offer(floats("e", 1, ts=T0 + 4))  # room again
    assert log.offer(floats("big", 30, ts=T0 + 5)) is False  # 31 > 10
    log.flush()
    assert log.offer(floats("big", 30, ts=T0 + 5))  # admitted alone into an empty queue
    log.close()
    df = make(tmp_path).read("ep")
    assert df["request_id"].unique().tolist() == ["a", "b", "d", "e", "big"]
    assert len(df) == 4 + 4 + 2 + 1 + 30
    assert log.stats()["rows_written"] == 41


def test_general_path_rows_and_channel_rows_share_one_bound(tmp_path: Path) -> None:
    log = make(tmp_path, max_queue_rows=10, overflow="reject")
    log.submit_nowait(floats("a", 2, ts=T0))  # the channel
    strings = batch("s", {"color": np.array(["red"] * 6, dtype=object)}, np.zeros(6), ts=T0 + 1)
    log.submit_nowait(strings)  # the general queue: 8 rows in all
    assert not log.offer(floats("b", 3, ts=T0 + 2))
    assert log.offer(floats("b", 2, ts=T0 + 2))
    with pytest.raises(OverloadedError):
        log.submit_nowait(batch("t", {"color": np.array(["x"], dtype=object)}, np.zeros(1)))
    log.close()
    assert len(files(tmp_path, ".seg")) == 1 and len(files(tmp_path, ".arrow")) == 1
    ids = make(tmp_path).read("ep")["id"].tolist()
    assert ids == ["a-0", "a-1", *[f"s-{i}" for i in range(6)], "b-0", "b-1"]


# ---------------------------------------------------------------- offer()


def test_offer_takes_only_batches_a_channel_fits(tmp_path: Path) -> None:
    log = make(tmp_path)
    assert not log.offer(floats("first", 2))  # no channel yet
    assert log.stats()["queue_rows"] == 0 and log.stats()["rows_submitted"] == 0
    log.submit_nowait(floats("second", 2, ts=T0 + 1))  # creates the channel
    assert log.offer(floats("third", 3, ts=T0 + 2))
    # another layout: accepted, and written through the general path (an Arrow file)
    other = batch("other", {"a": np.array([1.0]), "c": np.array([2.0])}, np.array([1]), ts=T0 + 2.5)
    assert log.offer(other)
    wrong_role = floats("canary", 1, ts=T0 + 3)
    wrong_role.role = "canary"
    assert not log.offer(wrong_role)  # another channel key
    failed = LogBatch("failed", "ep", "m", 1, "primary", T0 + 4, None, None, 0.5, 400, "bad")
    assert not log.offer(failed)
    assert log.stats()["queue_rows"] == 6 and log.stats()["rows_submitted"] == 6
    assert log.stats()["queue_batches"] == 3
    log.close()
    assert not log.offer(floats("late", 1, ts=T0 + 5))  # closed
    assert log.stats()["rows_submitted"] == 6
    assert len(files(tmp_path, ".seg")) == 1 and len(files(tmp_path, ".arrow")) == 1
    df = make(tmp_path).read("ep")
    assert df["id"].tolist() == ["second-0", "second-1", "third-0", "third-1", "third-2", "other-0"]
    assert df["input.b"].tolist()[:5] == [0.0, 10.0, 0.0, 10.0, 20.0]
    assert df["input.c"].tolist()[5] == 2.0


def test_offer_refuses_in_sync_mode(tmp_path: Path) -> None:
    log = make(tmp_path, durability="sync")
    log.start()
    asyncio.run(log.submit(floats("s1", 2)))  # creates the channel, durable on return
    assert not log.offer(floats("s2", 2, ts=T0 + 1))
    assert log.stats()["rows_submitted"] == 2 and log.stats()["queue_rows"] == 0
    log.close()
    assert files(tmp_path, ".seg") and not files(tmp_path, ".arrow")
    assert make(tmp_path).read("ep")["id"].tolist() == ["s1-0", "s1-1"]


def test_offer_from_threads_with_a_running_writer(tmp_path: Path) -> None:
    """Real threads offer while the writer thread flushes on its size threshold."""
    log = make(tmp_path, flush_interval=30, max_queue_rows=400)
    log.start()
    log.submit_nowait(floats("seed", 1, ts=T0))

    def worker(w: int) -> None:
        for i in range(250):
            b = floats(f"w{w}-{i}", 2, ts=T0 + 1 + w + i * 1e-3, start=w * 1000 + i)
            if not log.offer(b):
                log.submit_nowait(b)  # the caller's fallback: blocks for room

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert not files(tmp_path, ".arrow")
    assert len(files(tmp_path, ".seg")) > 1  # the size threshold woke the writer
    df = make(tmp_path).read("ep")
    assert len(df) == 1 + 4 * 250 * 2 and df["id"].is_unique
    want = {"seed-0"} | {f"w{w}-{i}-{j}" for w in range(4) for i in range(250) for j in (0, 1)}
    assert set(df["id"]) == want


# ---------------------------------------------------------------- compaction


def test_compaction_turns_segments_into_one_parquet_with_the_same_reads(
    tmp_path: Path,
) -> None:
    log = make(tmp_path)
    for cycle in range(3):
        for i in range(4):
            r = cycle * 4 + i
            x = values("int16", 3, r)
            t = values("float32", 6, r).reshape(3, 2)
            out = {"label": values("uint8", 3, r), "p": values("float64", 3, r)}
            log.submit_nowait(batch(f"réq-{r}", {"x": x, "t": t}, out, ts=T0 + r))
        log.flush()
    log.close()
    hour = tmp_path / "ep" / "2026-01-01" / "10"
    assert len(files(hour, ".seg")) == 3
    reader = make(tmp_path)
    before = reader.read_table("ep")
    column_before = reader.read_column("ep", "t")

    assert reader.compact() == 3
    assert not files(tmp_path, ".seg")
    assert [p.name.split("-")[0] for p in files(hour, ".parquet")] == ["compact"]
    after = make(tmp_path).read_table("ep")
    assert after.column_names == before.column_names
    assert after.num_rows == before.num_rows == 36
    for name in before.column_names:
        assert after.column(name).to_pylist() == before.column(name).to_pylist(), name
        want, got = before.schema.field(name).type, after.schema.field(name).type
        if pa.types.is_fixed_size_list(want):  # Parquet names the list items "element"
            assert got.list_size == want.list_size and got.value_type == want.value_type
        else:
            assert got == want, name
    assert np.array_equal(make(tmp_path).read_column("ep", "t"), column_before)
