"""Metrics of the prediction log: Prometheus series plus the same counts as plain integers
(for :meth:`PredictionLog.stats`), updated off the hot path only."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

FLUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: reasons a record could not be written (label of ``..._rows_lost_total``)
LOST_REASONS = ("unconvertible", "sync_write_failed", "not_drained")


class LogMetrics:
    """The series of one prediction log, registered into ``registry``."""

    def __init__(
        self, registry: CollectorRegistry, policy: str, queue_rows: Callable[[], float]
    ) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "rows_written",
                "files_written",
                "flushes",
                "overflow_block",
                "overflow_reject",
                "write_errors",
                "rows_lost",
                "files_compacted",
            ),
            0,
        )
        self.queue = Gauge(
            "lockgate_prediction_log_queue_rows",
            "Rows waiting in the prediction log queue.",
            registry=registry,
        )
        self.queue.set_function(queue_rows)
        self.rows = Counter(
            "lockgate_prediction_log_rows_written_total",
            "Prediction records written to durable files.",
            registry=registry,
        )
        self.flushes = Counter(
            "lockgate_prediction_log_flushes_total",
            "Write cycles of the prediction log that wrote records.",
            registry=registry,
        )
        self.flush_seconds = Histogram(
            "lockgate_prediction_log_flush_duration_seconds",
            "Seconds one write cycle of the prediction log took.",
            buckets=FLUSH_BUCKETS,
            registry=registry,
        )
        self.overflow_total = Counter(
            "lockgate_prediction_log_overflow_total",
            "Submits that found the prediction log queue full, by overflow policy.",
            ["policy"],
            registry=registry,
        )
        self._policy = policy
        self._overflow = self.overflow_total.labels(policy=policy)
        self.errors = Counter(
            "lockgate_prediction_log_write_errors_total",
            "Failed prediction log writes (async rows are retried; sync callers get an error).",
            registry=registry,
        )
        self.lost = Counter(
            "lockgate_prediction_log_rows_lost_total",
            "Prediction records that could not be written, by reason: unconvertible data, a "
            "failed sync write (its caller got an error), a close that could not drain.",
            ["reason"],
            registry=registry,
        )
        for reason in LOST_REASONS:
            self.lost.labels(reason=reason)
        self.skipped = Counter(
            "lockgate_prediction_log_files_skipped_total",
            "Unreadable prediction log files skipped by readers.",
            registry=registry,
        )
        self._all = (
            self.queue,
            self.rows,
            self.flushes,
            self.flush_seconds,
            self.overflow_total,
            self.errors,
            self.lost,
            self.skipped,
        )

    def _add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def overflowed(self) -> None:
        self._add("overflow_" + self._policy)
        self._overflow.inc()

    def wrote(self, rows: int, files: int) -> None:
        self._add("rows_written", rows)
        self._add("files_written", files)
        self.rows.inc(rows)

    def flushed(self, seconds: float) -> None:
        self._add("flushes")
        self.flushes.inc()
        self.flush_seconds.observe(seconds)

    def write_error(self) -> None:
        self._add("write_errors")
        self.errors.inc()

    def lost_rows(self, rows: int, reason: str) -> None:
        self._add("rows_lost", rows)
        self.lost.labels(reason=reason).inc(rows)

    def compacted(self, files: int) -> None:
        self._add("files_compacted", files)

    def unregister(self) -> None:
        """Remove the series, so a new log can register into the same registry."""
        for metric in self._all:
            with contextlib.suppress(KeyError):
                self.registry.unregister(metric)
