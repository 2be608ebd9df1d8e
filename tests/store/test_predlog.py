"""The prediction log's write side: queue, durability modes, overflow policies, failures,
metrics. Real files in tmp_path; "restarts" are new PredictionLog objects or killed
processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from lockgate.errors import InvalidInputError, InvalidNameError, OverloadedError, StoreError
from lockgate.settings import Settings
from lockgate.store.predlog import LogBatch, PredictionLog

#: 2026-01-01T10:00:00Z: a closed hour, so files land in known folders
T0 = datetime(2026, 1, 1, 10, tzinfo=UTC).timestamp()


def one(
    rid: str,
    x: float = 0.0,
    *,
    ts: float = T0,
    endpoint: str = "ep",
    version: int = 1,
    role: str = "primary",
    status: int = 200,
) -> LogBatch:
    return LogBatch(
        request_id=rid,
        endpoint=endpoint,
        model="m",
        version=version,
        role=role,
        ts=ts,
        inputs={"x": np.array([x]), "color": np.array(["red"], dtype=object)},
        outputs=np.array([int(x) % 2]),
        latency_ms=1.25,
        status=status,
    )


def make(path: Path, **kw: Any) -> PredictionLog:
    kw.setdefault("compact_interval", None)
    return PredictionLog(path, **kw)


def sample(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


# ---------------------------------------------------------------- the record batch


def test_logbatch_rows_and_ids() -> None:
    b = LogBatch("r1", "ep", "m", 1, "primary", T0, {"x": np.arange(3.0)}, np.arange(3), 2.0, 200)
    assert b.num_rows() == 3
    assert b.row_ids() == ["r1-0", "r1-1", "r1-2"]
    failed = LogBatch("r2", "ep", "m", 1, "primary", T0, None, None, 0.5, 400, "bad json")
    assert failed.num_rows() == 1 and failed.row_ids() == ["r2-0"]
    assert LogBatch("r3", "ep", "m", 1, "primary", T0, None, None, 1, 500, n_rows=4).num_rows() == 4


def test_multi_row_and_failed_requests_are_recorded(tmp_path: Path) -> None:
    log = make(tmp_path)
    log.submit_nowait(
        LogBatch(
            "multi", "ep", "m", 2, "canary", T0, {"x": np.array([1.0, 2.0, 3.0])},
            np.array([10, 20, 30]), 3.0, 200,
        )
    )  # fmt: skip
    log.submit_nowait(
        LogBatch("fail", "ep", "m", 2, "primary", T0 + 1, None, None, 0.4, 400, "x: expected")
    )
    log.close()
    df = PredictionLog(tmp_path).read("ep")
    assert list(df["id"]) == ["multi-0", "multi-1", "multi-2", "fail-0"]
    assert list(df["request_id"]) == ["multi"] * 3 + ["fail"]
    assert df["input.x"].tolist()[:3] == [1.0, 2.0, 3.0] and np.isnan(df["input.x"].iloc[3])
    assert df["output"].tolist()[:3] == [10, 20, 30]
    assert df["status"].tolist() == [200, 200, 200, 400]
    assert df["error"].iloc[3] == "x: expected"
    assert df["role"].tolist() == ["canary"] * 3 + ["primary"]
    assert list(df.columns[:10]) == [
        "id", "request_id", "endpoint", "model", "version", "role", "ts", "latency_ms",
        "status", "error",
    ]  # fmt: skip
    assert str(df["ts"].dt.tz) == "UTC"
    assert df["ts"].iloc[0].timestamp() == pytest.approx(T0)


def test_bad_batches_are_refused_at_submit(tmp_path: Path) -> None:
    log = make(tmp_path)
    with pytest.raises(InvalidNameError, match="endpoint"):
        log.submit_nowait(one("a", endpoint="../etc"))
    with pytest.raises(InvalidInputError, match="role"):
        log.submit_nowait(one("a", role="champion"))
    ragged = LogBatch(
        "r", "ep", "m", 1, "primary", T0, {"a": np.zeros(2), "b": np.zeros(3)}, None, 1, 200
    )
    expected = r"inputs\['b'\]: expected 2 rows like the other arrays, got 3"
    with pytest.raises(InvalidInputError, match=expected):
        log.submit_nowait(ragged)
    for bad_ts in (float("nan"), T0 * 1000, "now"):
        with pytest.raises(InvalidInputError, match=r"LogBatch\.ts"):
            log.submit_nowait(one("a", ts=bad_ts))  # type: ignore[arg-type]
    assert log.stats()["queue_rows"] == 0
    with pytest.raises(InvalidInputError, match="'overflow' parameter of PredictionLog"):
        PredictionLog(tmp_path, overflow="drop")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="flush_interval"):
        PredictionLog(tmp_path, flush_interval=0)
    with pytest.raises(InvalidInputError, match="compression"):
        PredictionLog(tmp_path, compression="nope")


# ---------------------------------------------------------------- async durability


def test_async_close_drains_everything_from_many_tasks(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    # a long interval: only the size threshold and close() make the writer write
    log = make(tmp_path, flush_interval=30, max_queue_rows=1_000, registry=reg)
    log.start()

    async def worker(w: int) -> None:
        for i in range(100):
            await log.submit(one(f"w{w}-r{i}", w * 100 + i, ts=T0 + w + i / 1000))

    async def main() -> None:
        await asyncio.gather(*(worker(w) for w in range(100)))

    asyncio.run(main())
    log.close()
    assert log.stats()["rows_written"] == 10_000
    df = PredictionLog(tmp_path).read("ep")
    assert len(df) == 10_000
    assert df["id"].is_unique
    assert set(df["id"]) == {f"w{w}-r{i}-0" for w in range(100) for i in range(100)}
    assert sorted(df["input.x"].astype(int)) == list(range(10_000))
    assert sample(reg, "lockgate_prediction_log_rows_written_total") is None  # unregistered


def test_flush_makes_submitted_rows_readable_while_running(tmp_path: Path) -> None:
    log = make(tmp_path, flush_interval=30)
    log.start()
    for i in range(7):
        log.submit_nowait(one(f"r{i}", i))
    log.flush(timeout=10)
    assert PredictionLog(tmp_path).count("ep") == 7
    log.close()
    log.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        log.submit_nowait(one("late"))


def test_reopen_after_restart_reads_old_and_appends_new(tmp_path: Path) -> None:
    first = make(tmp_path)
    first.start()
    for i in range(5):
        first.submit_nowait(one(f"a{i}", i))
    first.close()
    second = make(tmp_path)
    second.start()
    for i in range(3):
        second.submit_nowait(one(f"b{i}", i, ts=T0 + 10))
    second.close()
    ids = PredictionLog(tmp_path).read("ep")["id"].tolist()
    assert ids == [f"a{i}-0" for i in range(5)] + [f"b{i}-0" for i in range(3)]


_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    import numpy as np
    from lockgate.store.predlog import LogBatch, PredictionLog

    root, durability, interval = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    log = PredictionLog(root, durability=durability, flush_interval=interval,
                        compact_interval=None)
    log.start()

    async def main():
        for i in range(5):
            await log.submit(LogBatch(f"k{i}", "ep", "m", 1, "primary", time.time(),
                                      {"x": np.array([float(i)])}, np.array([i]), 1.0, 200))
            print(f"k{i}", flush=True)
        print("done", flush=True)
        await asyncio.sleep(120)

    asyncio.run(main())
    """
)


def _run_and_kill(tmp_path: Path, durability: str, interval: float, wait: float) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "log"), durability, str(interval)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.strip())
            if line.strip() == "done":
                break
        assert lines[-1] == "done", lines
        time.sleep(wait)
    finally:
        proc.kill()  # SIGKILL: no close(), no atexit
        proc.wait(10)
    return PredictionLog(tmp_path / "log").read("ep")["id"].tolist()


def test_sync_submit_survives_sigkill_right_after_it_returns(tmp_path: Path) -> None:
    assert _run_and_kill(tmp_path, "sync", 60.0, 0.0) == [f"k{i}-0" for i in range(5)]


def test_async_hard_kill_loses_at_most_the_flush_interval(tmp_path: Path) -> None:
    # records older than the flush interval (plus one write) are on disk when killed
    assert _run_and_kill(tmp_path, "async", 0.1, 2.0) == [f"k{i}-0" for i in range(5)]


def test_sync_mode_shares_one_fsync_between_concurrent_callers(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    log = make(tmp_path, durability="sync", flush_interval=60, registry=reg)
    log.start()

    async def main() -> None:
        await asyncio.gather(*(log.submit(one(f"r{i}", i)) for i in range(200)))
        # durable before any flush()/close(): a fresh reader sees all of them
        assert PredictionLog(tmp_path).count("ep") == 200

    asyncio.run(main())
    stats = log.stats()
    assert stats["rows_written"] == 200
    assert stats["files_written"] <= 20, stats  # group commit: not one write per caller
    assert sample(reg, "lockgate_prediction_log_flushes_total") == stats["flushes"]
    log.close()


def test_sync_submit_nowait_from_threads(tmp_path: Path) -> None:
    log = make(tmp_path, durability="sync", flush_interval=60)
    log.start()
    seen: list[int] = []

    def worker(w: int) -> None:
        for i in range(20):
            log.submit_nowait(one(f"t{w}-{i}", i))
            seen.append(PredictionLog(tmp_path).count("ep"))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert PredictionLog(tmp_path).count("ep") == 80
    assert min(seen) >= 1 and max(seen) == 80


# ---------------------------------------------------------------- overflow


def test_reject_raises_overloaded_and_counts_it(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    log = make(tmp_path, max_queue_rows=3, overflow="reject", registry=reg)  # not started

    async def main() -> None:
        for i in range(3):
            await log.submit(one(f"r{i}", i))
        with pytest.raises(OverloadedError, match="queue is full") as info:
            await log.submit(one("r3"))
        assert info.value.retry_after > 0
        assert info.value.to_dict()["code"] == "overloaded"

    asyncio.run(main())
    with pytest.raises(OverloadedError):
        log.submit_nowait(one("r4"))
    assert log.stats()["overflow_reject"] == 2
    assert log.stats()["queue_rows"] == 3
    assert sample(reg, "lockgate_prediction_log_overflow_total", policy="reject") == 2
    assert sample(reg, "lockgate_prediction_log_queue_rows") == 3
    log.flush()  # no writer thread: written by the caller
    assert log.count("ep") == 3
    log.submit_nowait(one("r5"))  # room again
    log.close()
    assert PredictionLog(tmp_path).read("ep")["id"].tolist() == ["r0-0", "r1-0", "r2-0", "r5-0"]


def test_block_waits_for_room_and_loses_nothing(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    log = make(tmp_path, max_queue_rows=5, overflow="block", registry=reg, flush_interval=0.05)

    async def main() -> None:
        tasks = [asyncio.create_task(log.submit(one(f"r{i}", i))) for i in range(20)]
        await asyncio.sleep(0.1)
        assert sum(t.done() for t in tasks) == 5  # the queue is full, the writer not started
        assert log.stats()["overflow_block"] == 15
        log.start()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)

    asyncio.run(main())
    assert sample(reg, "lockgate_prediction_log_overflow_total", policy="block") == 15
    log.close()
    df = PredictionLog(tmp_path).read("ep")
    assert sorted(df["id"]) == sorted(f"r{i}-0" for i in range(20))


def test_block_from_a_thread_waits_on_a_condition(tmp_path: Path) -> None:
    log = make(tmp_path, max_queue_rows=2, overflow="block", flush_interval=0.05)
    log.submit_nowait(one("a"))
    log.submit_nowait(one("b"))
    done = threading.Event()

    def blocked() -> None:
        log.submit_nowait(one("c"))
        done.set()

    t = threading.Thread(target=blocked)
    t.start()
    assert not done.wait(0.2)
    log.start()
    assert done.wait(10)
    t.join()
    log.close()
    assert PredictionLog(tmp_path).count("ep") == 3


def test_a_batch_larger_than_the_queue_is_admitted_alone(tmp_path: Path) -> None:
    log = make(tmp_path, max_queue_rows=2, overflow="reject")
    big = LogBatch("big", "ep", "m", 1, "primary", T0, {"x": np.arange(5.0)}, None, 1, 200)
    log.submit_nowait(big)
    with pytest.raises(OverloadedError):
        log.submit_nowait(one("a"))
    log.close()
    assert PredictionLog(tmp_path).count("ep") == 5


# ---------------------------------------------------------------- failures


def test_async_write_failure_is_counted_and_retried(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    root = tmp_path / "log"
    root.mkdir()
    (root / "ep").write_text("a file where the endpoint folder must go")
    log = make(root, registry=reg)
    log.submit_nowait(one("a"))
    with pytest.raises(StoreError, match="will retry"):
        log.flush()
    assert log.stats()["write_errors"] == 1
    assert log.stats()["queue_rows"] == 1  # kept, not dropped
    assert sample(reg, "lockgate_prediction_log_write_errors_total") == 1
    (root / "ep").unlink()
    log.flush()
    assert log.count("ep") == 1
    assert log.stats()["rows_lost"] == 0
    log.close()


def test_sync_write_failure_reaches_the_caller(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    root = tmp_path / "log"
    root.mkdir()
    (root / "ep").write_text("in the way")
    log = make(root, durability="sync", registry=reg)
    log.start()

    async def main() -> None:
        with pytest.raises(StoreError, match="write failed"):
            await log.submit(one("a"))

    asyncio.run(main())
    assert sample(reg, "lockgate_prediction_log_rows_lost_total", reason="sync_write_failed") == 1
    log.close()


def test_unconvertible_batch_is_dropped_alone_and_counted(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    log = make(tmp_path, registry=reg)
    bad = LogBatch(
        "bad", "ep", "m", 1, "primary", T0, {"x": np.array([1.0, 2.0]),
        "color": np.array([1, "red"], dtype=object)}, None, 1.0, 200,
    )  # fmt: skip
    log.submit_nowait(one("good1", 1))
    log.submit_nowait(bad)
    log.submit_nowait(one("good2", 2))
    log.flush()
    assert PredictionLog(tmp_path).read("ep")["id"].tolist() == ["good1-0", "good2-0"]
    assert log.stats()["rows_lost"] == 2
    assert sample(reg, "lockgate_prediction_log_rows_lost_total", reason="unconvertible") == 2
    log.close()


def test_close_reports_rows_it_could_not_write(tmp_path: Path) -> None:
    root = tmp_path / "log"
    root.mkdir()
    (root / "ep").write_text("in the way")
    log = make(root, flush_interval=0.05)
    log.start()
    log.submit_nowait(one("a"))
    with pytest.raises(StoreError, match="1 rows not written"):
        log.close(timeout=0.5)
    assert log.stats()["rows_lost"] == 1


# ---------------------------------------------------------------- metrics and settings


def test_metrics_follow_prometheus_conventions(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    log = make(tmp_path, registry=reg)
    for i in range(4):
        log.submit_nowait(one(f"r{i}", i))
    assert sample(reg, "lockgate_prediction_log_queue_rows") == 4
    log.flush()
    assert sample(reg, "lockgate_prediction_log_queue_rows") == 0
    assert sample(reg, "lockgate_prediction_log_rows_written_total") == 4
    assert sample(reg, "lockgate_prediction_log_flushes_total") == 1
    assert sample(reg, "lockgate_prediction_log_flush_duration_seconds_count") == 1
    assert sample(reg, "lockgate_prediction_log_overflow_total", policy="block") == 0
    assert sample(reg, "lockgate_prediction_log_write_errors_total") == 0
    log.close()
    again = make(tmp_path, registry=reg)  # the closed log left the registry
    again.close()


def test_from_settings_uses_the_workspace_folder(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, log_durability="sync", log_overflow="reject",
                        log_queue_size=500, log_flush_interval=2.0)  # fmt: skip
    log = PredictionLog.from_settings(settings)
    assert log.directory == tmp_path.resolve() / "predictions"
    assert (log.durability, log.overflow, log.max_queue_rows, log.flush_interval) == (
        "sync", "reject", 500, 2.0,
    )  # fmt: skip


def test_stats_reports_the_queue(tmp_path: Path) -> None:
    log = make(tmp_path)
    log.submit_nowait(one("a"))
    s = log.stats()
    assert s["queue_rows"] == 1 and s["queue_batches"] == 1 and s["rows_submitted"] == 1
    assert s["running"] is False and s["durability"] == "async"
    log.close()
    assert log.stats()["rows_written"] == 1 and log.stats()["closed"] is True


def test_files_are_partitioned_by_endpoint_and_hour(tmp_path: Path) -> None:
    log = make(tmp_path)
    end = datetime(2026, 1, 1, 11, tzinfo=UTC).timestamp()
    log.submit_nowait(one("before", ts=end - 0.1))
    log.submit_nowait(one("after", ts=end + 0.1))
    log.submit_nowait(one("other", ts=end, endpoint="other-ep"))
    log.close()
    files = sorted(p.relative_to(tmp_path).parts[:3] for p in tmp_path.rglob("*.arrow"))
    assert files == [
        ("ep", "2026-01-01", "10"), ("ep", "2026-01-01", "11"), ("other-ep", "2026-01-01", "11"),
    ]  # fmt: skip
    names = [p.name for p in tmp_path.rglob("*.arrow")]
    assert all(n.startswith("part-") and f"-{os.getpid()}-" in n for n in names)
    assert not list(tmp_path.rglob("*.tmp"))
    log2 = PredictionLog(tmp_path)
    assert log2.endpoints() == ["ep", "other-ep"]
    assert log2.count() == 3 and log2.count("ep") == 2


def test_a_failed_cycle_leaves_nothing_visible_so_the_retry_cannot_duplicate(
    tmp_path: Path,
) -> None:
    log = make(tmp_path)
    eleven = datetime(2026, 1, 1, 11, tzinfo=UTC).timestamp()
    (tmp_path / "ep" / "2026-01-01").mkdir(parents=True)
    (tmp_path / "ep" / "2026-01-01" / "11").write_text("blocks the second hour")
    log.submit_nowait(one("ten", ts=eleven - 1))
    log.submit_nowait(one("eleven", ts=eleven + 1))
    with pytest.raises(StoreError):
        log.flush()
    assert not list(tmp_path.rglob("*.arrow")) and not list(tmp_path.rglob("*.tmp"))
    (tmp_path / "ep" / "2026-01-01" / "11").unlink()
    log.flush()
    assert PredictionLog(tmp_path).read("ep")["id"].tolist() == ["ten-0", "eleven-0"]
    log.close()


def test_sync_mode_needs_a_started_writer(tmp_path: Path) -> None:
    log = make(tmp_path, durability="sync")
    with pytest.raises(StoreError, match="start"):
        log.submit_nowait(one("a"))


def test_inputs_must_be_numpy_arrays(tmp_path: Path) -> None:
    log = make(tmp_path)
    as_list = LogBatch("r", "ep", "m", 1, "primary", T0, {"x": [1.0]}, None, 1, 200)  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match=r"inputs\['x'\]: expected a 1-D or N-D numpy"):
        log.submit_nowait(as_list)
    scalar = LogBatch("r", "ep", "m", 1, "primary", T0, None, np.float64(1.0), 1, 200)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="outputs"):
        log.submit_nowait(scalar)
