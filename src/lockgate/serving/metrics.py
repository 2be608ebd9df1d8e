"""Prometheus metrics of the data plane: ``lockgate_`` prefix, base units, ``_total``
counters, and only bounded labels (endpoint, version, role, code)."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

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


class RequestStats:
    """What one (endpoint, version, role) answered: requests by status code, rows and the
    latency histogram, as plain numbers under one lock. The serving hot path updates them in
    about a quarter of what three prometheus-client metric children cost (each takes its own
    lock, the histogram walks its buckets in Python); :class:`RequestCollector` reports them."""

    __slots__ = ("buckets", "codes", "created", "lock", "rows", "sum")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: dict[int, int] = {200: 0}
        self.rows = 0
        #: observations per bucket (not cumulative), the last one above every bound (+Inf)
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, code: int, seconds: float, n_rows: int) -> None:
        i = bisect_left(LATENCY_BUCKETS, seconds)  # the first bound >= seconds: its "le"
        with self.lock:
            codes = self.codes
            codes[code] = codes.get(code, 0) + 1
            self.rows += n_rows
            self.buckets[i] += 1
            self.sum += seconds


class RequestCollector(Collector):
    """``lockgate_requests_total``, ``lockgate_predicted_rows_total`` and
    ``lockgate_request_duration_seconds`` from every version's :class:`RequestStats`."""

    def __init__(self) -> None:
        self._stats: dict[tuple[str, str, str], RequestStats] = {}
        self._lock = threading.Lock()

    def stats(self, endpoint: str, version: str, role: str) -> RequestStats:
        with self._lock:
            return self._stats.setdefault((endpoint, version, role), RequestStats())

    def collect(self) -> Iterator[Metric]:
        labels = ["endpoint", "version", "role"]
        requests = CounterMetricFamily(
            "lockgate_requests", "Inference requests answered.", labels=[*labels, "code"]
        )
        rows = CounterMetricFamily("lockgate_predicted_rows", "Rows predicted.", labels=labels)
        duration = HistogramMetricFamily(
            "lockgate_request_duration_seconds",
            "Time from decoded request to encoded answer, per version and role.",
            labels=labels,
        )
        with self._lock:
            items = list(self._stats.items())
        bounds = [*map(_float_label, LATENCY_BUCKETS), "+Inf"]
        for key, st in items:
            with st.lock:
                codes, n_rows = dict(st.codes), st.rows
                counts, total = list(st.buckets), st.sum
            for code, n in sorted(codes.items()):
                requests.add_metric([*key, str(code)], n, created=st.created)
            rows.add_metric(list(key), n_rows, created=st.created)
            cumulative, running = [], 0
            for bound, n in zip(bounds, counts, strict=True):
                running += n
                cumulative.append((bound, running))
            duration.add_metric(list(key), cumulative, total)
        yield requests
        yield rows
        yield duration


def _float_label(bound: float) -> str:
    """A bucket bound as prometheus-client writes it (``0.005``, ``1.0``)."""
    return repr(float(bound))


class ServingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = RequestCollector()
        registry.register(self.requests)
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
            batch_rows=self.batch_rows.labels(endpoint, v),
            queue_rows=self.queue_rows.labels(endpoint, v),
            observe=self.requests.stats(endpoint, v, role).observe,
        )


@dataclass
class VersionMetrics:
    """A version's metrics, resolved once, so the hot path does no label lookups;
    ``observe(code, seconds, n_rows)`` counts one answered request (its
    :meth:`RequestStats.observe`)."""

    parent: ServingMetrics
    endpoint: str
    version: str
    role: str
    batch_rows: Histogram
    queue_rows: Gauge
    observe: Callable[[int, float, int], None]
