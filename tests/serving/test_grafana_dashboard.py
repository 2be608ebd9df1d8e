"""The shipped Grafana dashboard is valid JSON and queries only metrics Lockgate exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from lockgate.monitoring.gauges import MonitoringMetrics
from lockgate.rollout.controller import _Metrics as ControllerMetrics
from lockgate.serving.metrics import ServingMetrics
from lockgate.store.predlog_metrics import LogMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "lockgate.json"


def _exported_names() -> set[str]:
    registry = CollectorRegistry()
    ServingMetrics(registry)
    MonitoringMetrics(registry)
    ControllerMetrics(registry)
    LogMetrics(registry, "block", lambda: 0.0)
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        for suffix in ("_total", "_bucket", "_sum", "_count", "_created"):
            names.add(family.name + suffix)
    return names


def test_dashboard_queries_only_exported_metrics() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["panels"], "the dashboard has no panels"
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\blockgate_[a-z_]+", e)}
    unknown = used - _exported_names()
    assert not unknown, f"dashboard queries metrics Lockgate does not export: {sorted(unknown)}"
