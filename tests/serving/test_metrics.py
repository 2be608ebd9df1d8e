"""``/metrics`` of a real server: Prometheus text, ``lockgate_`` names, the data plane and
prediction log series, counted exactly, with bounded labels only."""

from __future__ import annotations

import re
import time
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from tests import loopback
from tests.serving.conftest import SharedServer, metric, scrape

from lockgate.serving.metrics import BATCH_BUCKETS, LATENCY_BUCKETS
from lockgate.store.predlog_metrics import LOST_REASONS

#: data plane series and their exact label names (histograms add ``le`` to _bucket)
SERVING = {
    "lockgate_requests": {"endpoint", "version", "role", "code"},
    "lockgate_predicted_rows": {"endpoint", "version", "role"},
    "lockgate_request_duration_seconds": {"endpoint", "version", "role"},
    "lockgate_batch_rows": {"endpoint", "version"},
    "lockgate_batch_queue_rows": {"endpoint", "version"},
    "lockgate_version_ready": {"endpoint", "version", "role"},
    "lockgate_endpoint_reloads": {"endpoint"},
}
#: prediction log series; their only labels are closed enumerations
PREDLOG = {
    "lockgate_prediction_log_queue_rows": {},
    "lockgate_prediction_log_rows_written": {},
    "lockgate_prediction_log_flushes": {},
    "lockgate_prediction_log_flush_duration_seconds": {},
    "lockgate_prediction_log_overflow": {"policy": {"block", "reject"}},
    "lockgate_prediction_log_write_errors": {},
    "lockgate_prediction_log_rows_lost": {"reason": set(LOST_REASONS)},
    "lockgate_prediction_log_files_skipped": {},
}


def _traffic(url: str) -> None:
    """5 answered requests (11 rows) and 1 refused one on iris/1."""
    inputs = [
        {"name": n, "shape": [2], "datatype": "FP64", "data": [0.5, -1.0]}
        for n in ("x1", "x2", "x3")
    ]
    with loopback.client(base_url=url, timeout=30) as c:
        for path in ("/v2/models/iris/infer",) * 3 + ("/v2/models/iris/versions/1/infer",):
            assert c.post(path, json={"inputs": inputs}).status_code == 200
        r = c.post("/v1/endpoints/iris/predict", json={"inputs": [[0.0, 1.0, 2.0]] * 3})
        assert r.status_code == 200
        assert c.post("/v2/models/iris/infer", json={"inputs": inputs[:2]}).status_code == 400


def test_prometheus_text_with_lockgate_names(shared: SharedServer) -> None:
    r = loopback.get(f"{shared.url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    families = list(text_string_to_metric_families(r.text))
    names = {f.name for f in families}
    assert all(n.startswith("lockgate_") for n in names), sorted(names)
    assert set(SERVING) | set(PREDLOG) <= names
    for f in families:
        assert f.documentation
        assert re.search(rf"^# TYPE {f.name}(_total)? {f.type}$", r.text, re.MULTILINE), f.name
    types = {f.name: f.type for f in families}
    assert types["lockgate_requests"] == "counter"
    assert types["lockgate_request_duration_seconds"] == "histogram"
    assert types["lockgate_batch_rows"] == "histogram"
    assert types["lockgate_batch_queue_rows"] == "gauge"
    assert types["lockgate_prediction_log_rows_written"] == "counter"


def test_requests_rows_and_durations_are_counted_exactly(shared: SharedServer) -> None:
    labels = {"endpoint": "iris", "version": "1", "role": "primary"}
    before = scrape(shared.url)
    _traffic(shared.url)
    after = scrape(shared.url)

    def delta(name: str, **extra: str) -> float:
        return metric(after, name, **labels, **extra) - metric(before, name, **labels, **extra)

    assert delta("lockgate_requests_total", code="200") == 5
    assert delta("lockgate_requests_total", code="400") == 1
    assert delta("lockgate_predicted_rows_total") == 11
    assert delta("lockgate_request_duration_seconds_count") == 6
    assert delta("lockgate_request_duration_seconds_sum") > 0
    buckets = sorted(
        (float(s.labels["le"]), s.value)
        for s in after
        if s.name == "lockgate_request_duration_seconds_bucket"
        and all(s.labels[k] == v for k, v in labels.items())
    )
    assert [le for le, _ in buckets] == [*LATENCY_BUCKETS, float("inf")]
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert buckets[-1][1] == metric(after, "lockgate_request_duration_seconds_count", **labels)
    ready = {"endpoint": "iris", "version": "1", "role": "primary"}
    assert metric(after, "lockgate_version_ready", **ready) == 1
    assert metric(after, "lockgate_batch_queue_rows", endpoint="iris", version="1") == 0
    assert metric(after, "lockgate_endpoint_reloads_total", endpoint="iris") >= 1
    les = {
        float(s.labels["le"])
        for s in after
        if s.name == "lockgate_batch_rows_bucket" and s.labels["endpoint"] == "iris"
    }
    assert les == {*map(float, BATCH_BUCKETS), float("inf")}


def test_prediction_log_metrics_follow_the_writes(shared: SharedServer) -> None:
    before = scrape(shared.url)
    _traffic(shared.url)
    deadline = time.monotonic() + 15
    while True:  # records are written off the response path, every flush interval
        after = scrape(shared.url)
        written = metric(after, "lockgate_prediction_log_rows_written_total") - metric(
            before, "lockgate_prediction_log_rows_written_total"
        )
        flushes = metric(after, "lockgate_prediction_log_flushes_total") - metric(
            before, "lockgate_prediction_log_flushes_total"
        )
        # a cycle counts its rows as it writes each file and itself once done: a scrape
        # can fall in between
        if (written >= 11 and flushes > 0) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert written >= 11
    assert flushes > 0
    assert metric(after, "lockgate_prediction_log_flush_duration_seconds_count") > 0
    assert metric(after, "lockgate_prediction_log_write_errors_total") == 0
    assert metric(after, "lockgate_prediction_log_rows_lost_total") == 0
    assert metric(after, "lockgate_prediction_log_overflow_total", policy="block") == 0


def _labels_by_family(samples: list[Sample]) -> dict[str, dict[str, set[str]]]:
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for s in samples:
        family = s.name
        for suffix in ("_total", "_bucket", "_count", "_sum", "_created"):
            family = family.removesuffix(suffix)
        labels = out[family]  # a family without labels appears too
        for k, v in s.labels.items():
            if k != "le":
                labels[k].add(v)
    return out


def test_labels_are_bounded(shared: SharedServer) -> None:
    """Data plane series carry only endpoint, version, role and code, with values from the
    served endpoints, version numbers, roles and status codes; the prediction log's only
    labels are closed enumerations; nothing is labelled per request."""
    _traffic(shared.url)
    by_family = _labels_by_family(scrape(shared.url))
    endpoints = loopback.get(f"{shared.url}/api/v1/endpoints").json()["endpoints"]
    known = {e["name"] for e in endpoints}
    for family, allowed in SERVING.items():
        labels = by_family[family]
        assert set(labels) == allowed, family
        assert labels["endpoint"] <= known, family
        assert all(v.isdigit() for v in labels.get("version", set())), family
        assert labels.get("role", set()) <= {"primary", "canary", "shadow", "arm"}, family
        assert all(c.isdigit() and len(c) == 3 for c in labels.get("code", set())), family
    for family, enums in PREDLOG.items():
        assert set(by_family[family]) == set(enums), family
        for label, values in enums.items():
            assert by_family[family][label] <= values, (family, label)
    for family, labels in by_family.items():
        assert not {"id", "request_id", "prediction_id"} & set(labels), family
