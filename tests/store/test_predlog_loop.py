"""The prediction log with a serving event loop (``PredictionLog.start(loop)``, what
``lockgate server`` does in async mode): a timer on the loop writes the columnar channels and
the writer thread sleeps until it has work; offered batches are copied in bulk. Real files,
a real event loop and real threads; only a full disk is simulated (the outside world)."""

from __future__ import annotations

import asyncio
import errno
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lockgate.batch import MatrixColumns
from lockgate.store import predlog as predlog_mod
from lockgate.store import predlog_writer
from lockgate.store.predlog import LogBatch, PredictionLog

T0 = datetime(2026, 1, 1, 10, tzinfo=UTC).timestamp()
FLUSH = 0.05


def make(path: Path, **kw: Any) -> PredictionLog:
    kw.setdefault("compact_interval", None)
    kw.setdefault("flush_interval", FLUSH)
    return PredictionLog(path, **kw)


NAMES = ("x0", "x1", "x2")


def served(i: int, rows: int = 1, *, ts: float | None = None) -> LogBatch:
    """A record as the data plane makes it: the decoded matrix and its columns by name."""
    m = np.arange(rows * 3, dtype=np.float64).reshape(rows, 3) + i * 1000
    inputs = MatrixColumns(NAMES, m)
    out = (m[:, 0] > 0).astype(np.int64)
    at = T0 + i * 1e-3 if ts is None else ts
    return LogBatch(f"r{i}", "ep", "m", 1, "primary", at, inputs, out, 0.5, 200, None, rows, m)


def ids(root: Path) -> list[str]:
    return PredictionLog(root).read("ep", columns=["id"])["id"].tolist()


async def offer_all(log: PredictionLog, batches: list[LogBatch], per_tick: int = 50) -> None:
    """Offer like a busy server: a tick of requests, then the loop runs its callbacks."""
    for i, b in enumerate(batches):
        if not log.offer(b):
            await log.submit(b)
        if i % per_tick == per_tick - 1:
            await asyncio.sleep(0)


def test_the_loop_writes_the_channels_while_the_writer_thread_sleeps(tmp_path: Path) -> None:
    log = make(tmp_path)

    async def main() -> int:
        log.start(asyncio.get_running_loop())
        await log.submit(served(0))  # makes the channel
        cycles = log._writer_cycles
        await offer_all(log, [served(i) for i in range(1, 2000)])
        await asyncio.sleep(FLUSH * 6)  # a few loop cycles
        assert log._writer_cycles == cycles  # nothing woke the thread
        return PredictionLog(tmp_path).count("ep")  # visible without a flush()

    visible = asyncio.run(main())
    assert visible == 2000
    assert log.stats()["unsynced_files"] >= 1  # written by the loop, fsync still due
    log.close()
    assert log.stats()["unsynced_files"] == 0
    assert ids(tmp_path) == [f"r{i}-0" for i in range(2000)]


def test_flush_from_a_thread_makes_the_loop_s_files_durable(tmp_path: Path) -> None:
    log = make(tmp_path, flush_interval=0.02)

    async def main() -> None:
        log.start(asyncio.get_running_loop())
        await log.submit(served(0))
        for round_ in range(5):  # flushes race with the loop's own cycles
            start = 1 + round_ * 300
            await offer_all(log, [served(i) for i in range(start, start + 300)], per_tick=7)
            await asyncio.to_thread(log.flush, 10)
            assert PredictionLog(tmp_path).count("ep") == start + 300
            assert log.stats()["unsynced_files"] == 0

    asyncio.run(main())
    log.close()
    got = ids(tmp_path)
    assert len(got) == len(set(got)) == 1501


def test_close_while_the_loop_writes_loses_and_repeats_nothing(tmp_path: Path) -> None:
    log = make(tmp_path, flush_interval=0.01)

    async def main() -> None:
        log.start(asyncio.get_running_loop())
        await log.submit(served(0))
        await offer_all(log, [served(i) for i in range(1, 3000)], per_tick=3)
        closing = asyncio.create_task(asyncio.to_thread(log.close))
        await asyncio.sleep(0)  # the loop keeps running its timer while close() drains
        await closing

    asyncio.run(main())
    assert sorted(ids(tmp_path)) == sorted(f"r{i}-0" for i in range(3000))


def test_the_writer_thread_takes_over_when_the_loop_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predlog_mod, "LOOP_WATCH", 0.1)
    log = make(tmp_path)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run_loop() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    t = threading.Thread(target=run_loop, daemon=True)
    t.start()
    ready.wait(5)
    log.start(loop)
    log.submit_nowait(served(0))
    deadline = time.monotonic() + 5
    while PredictionLog(tmp_path).count("ep") < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert PredictionLog(tmp_path).count("ep") == 1  # written by the loop's timer
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)
    for i in range(1, 11):  # a thread's records, no loop to write them any more
        log.submit_nowait(served(i))
    deadline = time.monotonic() + 5
    while PredictionLog(tmp_path).count("ep") < 11 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert PredictionLog(tmp_path).count("ep") == 11  # without flush() or close()
    assert log._loop is None
    log.close()
    loop.close()


def test_a_failed_loop_write_is_retried_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = predlog_writer.write_segment
    failures = [2]

    def full_disk(*args: Any, **kw: Any) -> None:
        if failures[0]:
            failures[0] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        real(*args, **kw)

    monkeypatch.setattr(predlog_writer, "write_segment", full_disk)
    log = make(tmp_path)

    async def main() -> None:
        log.start(asyncio.get_running_loop())
        await log.submit(served(0))
        await offer_all(log, [served(i) for i in range(1, 500)])
        deadline = time.monotonic() + 10
        while PredictionLog(tmp_path).count("ep") < 500 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    asyncio.run(main())
    assert failures == [0]
    assert log.stats()["write_errors"] == 2
    assert not list(tmp_path.rglob("*.tmp"))  # the failed writes left nothing behind
    log.close()
    assert ids(tmp_path) == [f"r{i}-0" for i in range(500)]


def test_bulk_copies_match_one_by_one_copies(tmp_path: Path) -> None:
    """offer() (bulk copies of the batches that fit, the general path for the others) and
    submit_nowait() (one copy per batch) store the same records."""
    rng = np.random.default_rng(3)
    batches: list[LogBatch] = []
    for i in range(400):
        b = served(i, rows=int(rng.integers(1, 5)))
        kind = i % 9
        if kind == 1:  # no matrix: the columns are copied one by one
            b.matrix = None
        elif kind == 2:  # a float32 matrix and columns: not this channel's dtype
            m = b.matrix.astype(np.float32)  # type: ignore[union-attr]
            b.matrix, b.inputs = m, {f"x{j}": m[:, j] for j in range(3)}
        elif kind == 3:  # an int column under a float matrix: the column stays int
            b.inputs = {**b.inputs, "x1": b.inputs["x1"].astype(np.int64)}  # type: ignore[dict-item]
        elif kind == 4:  # the columns in another order
            b.inputs = dict(reversed(list(b.inputs.items())))  # type: ignore[union-attr]
        elif kind == 5:  # another output dtype
            b.outputs = b.outputs.astype(np.float64)  # type: ignore[union-attr]
        elif kind == 6:  # n_rows left out
            b.n_rows = 0
        elif kind == 7:  # the columns as a dict of views (not the matrix's own mapping)
            b.inputs = dict(b.inputs.items())  # type: ignore[union-attr]
        elif kind == 8:  # the matrix's own mapping, its names in another order
            b.inputs = MatrixColumns(NAMES[::-1], b.matrix)  # type: ignore[arg-type]
        batches.append(b)
    bulk, single = make(tmp_path / "bulk"), make(tmp_path / "single")
    bulk.submit_nowait(served(10_000))
    single.submit_nowait(served(10_000))
    for b in batches:
        assert bulk.offer(b)
        single.submit_nowait(b)
    bulk.close()
    single.close()
    a = PredictionLog(tmp_path / "bulk").read("ep").sort_values("id", ignore_index=True)
    b = PredictionLog(tmp_path / "single").read("ep").sort_values("id", ignore_index=True)
    assert len(a) == sum(x.n_rows or len(x.outputs) for x in batches) + 1  # type: ignore[arg-type]
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        assert a[col].tolist() == b[col].tolist(), col


def test_the_matrix_own_columns_are_copied_in_bulk(tmp_path: Path) -> None:
    """Batches whose inputs are their matrix's own columns (what the data plane sends) take
    the bulk copy without a look at each column; names in another order do not."""
    from lockgate.store.predlog_columns import new_channel

    ch = new_channel(served(0, 2), 2)
    assert ch is not None
    fits = [served(i, 3) for i in range(1, 6)]
    other = served(6, 3)
    other.inputs = MatrixColumns(NAMES[::-1], other.matrix)  # type: ignore[arg-type]
    assert ch._bulk([*fits, other]) == [other]
    assert ch.n_req == 5 and ch.n_rows == 15
    np.testing.assert_array_equal(ch.bufs[0][:15], np.concatenate([b.matrix for b in fits]))


def test_a_large_snapshot_goes_to_the_writer_thread(tmp_path: Path) -> None:
    """The loop leaves a channel of LOOP_MAX_BYTES or more to the writer thread (a buffered
    write of megabytes would hold the loop); the thread fsyncs it before the rename."""
    log = make(tmp_path, flush_interval=0.2)
    rows = 100
    n = predlog_mod.LOOP_MAX_BYTES // (rows * 4 * 8) + 20  # 3 inputs + 1 output, 8 bytes

    async def main() -> int:
        log.start(asyncio.get_running_loop())
        await log.submit(served(0, rows))
        cycles = log._writer_cycles
        await offer_all(log, [served(i, rows) for i in range(1, n)], per_tick=n)
        deadline = time.monotonic() + 10
        while PredictionLog(tmp_path).count("ep") < n * rows and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return log._writer_cycles - cycles

    assert asyncio.run(main()) >= 1
    assert PredictionLog(tmp_path).count("ep") == n * rows
    assert log.stats()["unsynced_files"] == 0
    log.close()


def counted_and_held(log: PredictionLog) -> tuple[int, int]:
    """The rows the log counts against its bound, and those it holds unwritten (in the
    channels, their pending batches, the general queue, the snapshots for the thread)."""
    with log._lock:
        held = sum(
            ch.n_rows + sum(predlog_mod._offered_rows(b) for b in ch.pending)
            for ch in log._channels.values()
        )
        held += sum(it[1] for it in log._queue)
        held += sum(s.data.num_rows for s in [*log._for_writer, *log._retry_snapshots])
        return log._queued_rows, held


def test_the_writer_thread_only_makes_system_calls_for_a_large_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under steady traffic the loop takes every channel and lays the large snapshots out
    (the NumPy work, which gives up the GIL for arrays of a few hundred values and would
    make the thread wait for it again each time); the thread only writes. It leaves the
    records that reach a channel meanwhile to the loop's next cycle (taken by the thread
    they made a second, small file each cycle), unless a flush() waits for them."""
    from lockgate.store import predlog_columns

    seen: dict[str, set[str]] = {"take": set(), "lay_out": set()}
    real_take, real_lay_out = predlog_columns.Channel.take, predlog_writer.lay_out

    def take(self: Any, now: float) -> Any:
        snap = real_take(self, now)
        if snap is not None:
            seen["take"].add(threading.current_thread().name)
        return snap

    def lay_out(*args: Any, **kw: Any) -> Any:
        seen["lay_out"].add(threading.current_thread().name)
        return real_lay_out(*args, **kw)

    monkeypatch.setattr(predlog_columns.Channel, "take", take)
    monkeypatch.setattr(predlog_writer, "lay_out", lay_out)
    log = make(tmp_path, flush_interval=0.1)
    rows = 100
    per_cycle = predlog_mod.LOOP_MAX_BYTES // (rows * 4 * 8) + 20  # 3 inputs, 1 output

    async def main() -> int:
        log.start(asyncio.get_running_loop())
        await log.submit(served(0, rows))
        cycles = log._writer_cycles
        i = 1
        for _ in range(8):  # offers keep coming while the thread writes
            for _ in range(20):
                await offer_all(log, [served(j, rows) for j in range(i, i + per_cycle // 20)])
                i += per_cycle // 20
                await asyncio.sleep(0.1 / 20)
                counted, held = counted_and_held(log)
                assert counted == held  # the bound counts what the channels still hold
        assert log._writer_cycles - cycles >= 3
        loop_only = {k: set(v) for k, v in seen.items()}
        await asyncio.to_thread(log.flush, 10)  # takes what the channels hold now
        assert PredictionLog(tmp_path).count("ep") == i * rows
        assert loop_only == {"take": {"MainThread"}, "lay_out": {"MainThread"}}
        return i

    n = asyncio.run(main())
    log.close()
    got = ids(tmp_path)
    assert len(got) == len(set(got)) == n * rows


def test_records_left_in_the_channels_stay_counted_against_the_bound(tmp_path: Path) -> None:
    """What the writer thread takes while the loop owns the channels leaves the count of
    what the channels hold as it was (the bound must see those rows)."""
    log = make(tmp_path)
    log.submit_nowait(served(0))  # makes the channel
    for i in range(1, 50):
        assert log.offer(served(i, 3))
    broken = served(50)
    broken.error = "boom"  # a failed request: the general queue
    log.submit_nowait(broken)
    assert counted_and_held(log) == (1 + 49 * 3 + 1,) * 2
    items, snaps = log._take(loop_owns_channels=True)
    assert [it[0] for it in items] == [broken] and snaps == []
    assert counted_and_held(log) == (1 + 49 * 3,) * 2
    log._take(channels_only=True)
    assert counted_and_held(log) == (0, 0)
    log.close()


def test_a_queue_near_its_bound_is_drained_by_the_thread_before_the_loop_s_cycle(
    tmp_path: Path,
) -> None:
    """The thread leaves the channels to the loop, except when the records pass three
    quarters of the bound: then it takes them at once, as a full queue cannot wait for the
    loop's next cycle (here 30 s away)."""
    log = make(tmp_path, flush_interval=30.0, max_queue_rows=2_000, overflow="block")
    n = 20_000

    async def main() -> float:
        log.start(asyncio.get_running_loop())
        await log.submit(served(0))
        await asyncio.to_thread(log.flush, 10)
        t0 = time.monotonic()
        await offer_all(log, [served(i) for i in range(1, n)], per_tick=100)
        await asyncio.to_thread(log.flush, 10)
        return time.monotonic() - t0

    took = asyncio.run(main())
    log.close()
    assert took < 20  # not one loop cycle per 2,000 records
    assert len(set(ids(tmp_path))) == n


def test_a_pause_in_traffic_keeps_the_channel_and_its_capacity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bursts with pauses between them (idle write cycles) reuse the channel and the
    buffers it grew to; only a channel idle for IDLE_SECONDS is dropped."""
    monkeypatch.setattr(predlog_mod, "IDLE_SECONDS", FLUSH * 12)
    log = make(tmp_path)
    key = ("ep", "m", 1, "primary")

    async def main() -> None:
        log.start(asyncio.get_running_loop())
        await log.submit(served(0))
        await offer_all(log, [served(i, 100) for i in range(1, 200)])
        await asyncio.sleep(FLUSH * 3)
        ch = log._channels[key]
        cap = len(ch.bufs[0])
        assert cap >= 100 * 199 // 3  # grew from 256 rows with the burst
        await asyncio.sleep(FLUSH * 6)  # a pause: several idle cycles
        assert log._channels.get(key) is ch and len(ch.bufs[0]) == cap
        await offer_all(log, [served(i, 100) for i in range(200, 400)])
        await asyncio.sleep(FLUSH * 3)
        assert log._channels.get(key) is ch and len(ch.bufs[0]) == cap  # nothing regrown
        await asyncio.sleep(FLUSH * 20)  # idle past IDLE_SECONDS: dropped
        assert key not in log._channels
        await offer_all(log, [served(i, 100) for i in range(400, 410)])

    asyncio.run(main())
    log.close()
    assert ids(tmp_path)[:3] == ["r0-0", "r1-0", "r1-1"]
    assert PredictionLog(tmp_path).count("ep") == 1 + 409 * 100
