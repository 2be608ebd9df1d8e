"""Prometheus metrics of the data plane: ``lockgate_`` prefix, base units, ``_total``
counters, and only bounded labels (endpoint, version, role, code)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "lockgate_requests",
            "Inference requests answered.",
            ["endpoint", "version", "role", "code"],
            registry=registry,
        )
        self.rows = Counter(
            "lockgate_predicted_rows",
            "Rows predicted.",
            ["endpoint", "version", "role"],
            registry=registry,
        )
        self.duration = Histogram(
            "lockgate_request_duration_seconds",
            "Time from decoded request to encoded answer, per version and role.",
            ["endpoint", "version", "role"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_rows = Histogram(
            "lockgate_batch_rows",
            "Rows per model call under adaptive batching.",
            ["endpoint", "version"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.queue_rows = Gauge(
            "lockgate_batch_queue_rows",
            "Rows waiting in the adaptive batching queue.",
            ["endpoint", "version"],
            registry=registry,
        )
        self.ready = Gauge(
            "lockgate_version_ready",
            "1 when a version is loaded and serving an endpoint.",
            ["endpoint", "version", "role"],
            registry=registry,
        )
        self.reloads = Counter(
            "lockgate_endpoint_reloads",
            "Traffic policy changes applied by this server.",
            ["endpoint"],
            registry=registry,
        )
        self.shadow_skipped = Counter(
            "lockgate_shadow_skipped",
            "Shadow copies not run: reason queue_full (LOCKGATE_SHADOW_QUEUE reached), "
            "log_full (the prediction log refused the record) or shutdown.",
            ["endpoint", "version", "reason"],
            registry=registry,
        )

    def for_version(self, endpoint: str, version: int, role: str) -> VersionMetrics:
        v = str(version)
        return VersionMetrics(
            self,
            endpoint,
            v,
            role,
            ok=self.requests.labels(endpoint, v, role, "200"),
            rows=self.rows.labels(endpoint, v, role),
            duration=self.duration.labels(endpoint, v, role),
            batch_rows=self.batch_rows.labels(endpoint, v),
            queue_rows=self.queue_rows.labels(endpoint, v),
        )


@dataclass
class VersionMetrics:
    """Label children resolved once per version, so the hot path does no label lookups."""

    parent: ServingMetrics
    endpoint: str
    version: str
    role: str
    ok: Counter
    rows: Counter
    duration: Histogram
    batch_rows: Histogram
    queue_rows: Gauge

    def observe(self, code: int, seconds: float, n_rows: int) -> None:
        if code == 200:
            self.ok.inc()
            self.rows.inc(n_rows)
        else:
            self.parent.requests.labels(self.endpoint, self.version, self.role, str(code)).inc()
        self.duration.observe(seconds)
