"""The data plane's request metrics are plain numbers under a lock (the hot path's share is
a fraction of prometheus-client's); what /metrics shows must be what prometheus-client's own
Counter and Histogram would show for the same requests, also with threads counting at once."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Histogram

from lockgate.serving.metrics import LATENCY_BUCKETS, ServingMetrics

SECONDS = [0.0, 0.0001, 0.0005, 0.0007, 0.001, 0.003, 0.0999, 0.1, 2.5, 7.0, 10.0, 11.0, 1e9]


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, ...], float]:
    return {
        (s.name, *sorted(s.labels.items())): s.value  # type: ignore[misc]
        for m in registry.collect()
        for s in m.samples
        if s.name.startswith(name) and not s.name.endswith("_created")
    }


def test_exposition_matches_prometheus_client() -> None:
    ours = CollectorRegistry()
    vm = ServingMetrics(ours).for_version("ep", 3, "primary")
    ref = CollectorRegistry()
    labels = ["endpoint", "version", "role"]
    requests = Counter("lockgate_requests", "", [*labels, "code"], registry=ref)
    rows = Counter("lockgate_predicted_rows", "", labels, registry=ref)
    duration = Histogram(
        "lockgate_request_duration_seconds", "", labels, buckets=LATENCY_BUCKETS, registry=ref
    )
    for i, sec in enumerate(SECONDS):
        code, n = (200, i + 1) if i % 4 else (503, 0)
        vm.observe(code, sec, n)
        requests.labels("ep", "3", "primary", str(code)).inc()
        rows.labels("ep", "3", "primary").inc(n)
        duration.labels("ep", "3", "primary").observe(sec)
    for name in ("lockgate_requests", "lockgate_predicted_rows", "lockgate_request_duration"):
        assert _samples(ours, name) == _samples(ref, name), name


def test_a_new_version_shows_zero_answers() -> None:
    reg = CollectorRegistry()
    ServingMetrics(reg).for_version("ep", 1, "canary")
    got = _samples(reg, "lockgate_requests_total")
    assert got == {
        (
            "lockgate_requests_total",
            ("code", "200"),
            ("endpoint", "ep"),
            ("role", "canary"),
            ("version", "1"),
        ): 0.0
    }


def test_no_count_is_lost_across_threads() -> None:
    reg = CollectorRegistry()
    metrics = ServingMetrics(reg)
    # two handles of the same version and role (a deploy swapping handles) share the counts
    a, b = metrics.for_version("ep", 1, "shadow"), metrics.for_version("ep", 1, "shadow")

    def hammer(vm: object, code: int) -> None:
        for _ in range(20_000):
            vm.observe(code, 0.002, 2)  # type: ignore[attr-defined]

    threads = [threading.Thread(target=hammer, args=(vm, c)) for vm in (a, b) for c in (200, 500)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = _samples(reg, "lockgate_")
    key = (("endpoint", "ep"), ("role", "shadow"), ("version", "1"))
    assert s[("lockgate_requests_total", ("code", "200"), *key)] == 40_000
    assert s[("lockgate_requests_total", ("code", "500"), *key)] == 40_000
    assert s[("lockgate_predicted_rows_total", *key)] == 160_000
    assert s[("lockgate_request_duration_seconds_count", *key)] == 80_000
