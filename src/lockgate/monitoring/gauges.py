"""Prometheus figures of monitoring, with bounded labels.

==============================================  ===========================================
``lockgate_drift_share{endpoint,version}``      share of feature columns that drifted
``lockgate_drift_share_material{...}``          share of feature columns with a material change
``lockgate_drift_detected{endpoint,version}``   1 when the data set drifted, else 0
``lockgate_drift_column_psi{...,column}``       PSI of each column
``lockgate_drift_column_drifted{...,column}``   1 when the column's verdict is "drift"
``lockgate_quality{endpoint,version,metric}``   quality of the primary predictions
``lockgate_quality_labels{endpoint,version}``   labels the quality rests on
``lockgate_monitor_value{monitor,endpoint}``    the last value of each monitor
``lockgate_monitor_firing{monitor,endpoint}``   1 while a monitor fires
``lockgate_alerts_total{endpoint,status}``      alerts raised (firing, resolved)
``lockgate_alert_deliveries_total{outcome}``    webhook deliveries (delivered, failed)
==============================================  ===========================================

Bounds: ``endpoint`` and ``monitor`` are names an operator created; ``metric`` and ``status``
come from fixed lists. ``version`` is only ever the version last measured per endpoint: the
series of the previous one are removed when a new one is measured. ``column`` is a reference
column that is also an input of the version's signature, at most :data:`MAX_COLUMNS` per
endpoint (the rest are left out of the per-column series; the aggregate covers them).
"""

from __future__ import annotations

import contextlib
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge

from lockgate.monitoring.live import EndpointDrift
from lockgate.monitoring.quality import QualityReport

MAX_COLUMNS = 100


class MonitoringMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        ev = ["endpoint", "version"]
        self.drift_share = Gauge(
            "lockgate_drift_share", "Share of feature columns that drifted.", ev, registry=r
        )
        self.drift_material = Gauge(
            "lockgate_drift_share_material",
            "Share of feature columns with a material change.",
            ev,
            registry=r,
        )
        self.drift_detected = Gauge(
            "lockgate_drift_detected", "1 when the data set drifted.", ev, registry=r
        )
        self.column_psi = Gauge(
            "lockgate_drift_column_psi", "PSI of a column.", [*ev, "column"], registry=r
        )
        self.column_drifted = Gauge(
            "lockgate_drift_column_drifted",
            "1 when a column's drift verdict is drift.",
            [*ev, "column"],
            registry=r,
        )
        self.quality = Gauge(
            "lockgate_quality",
            "Quality of the primary predictions from feedback.",
            [*ev, "metric"],
            registry=r,
        )
        self.quality_labels = Gauge(
            "lockgate_quality_labels", "Labels the quality rests on.", ev, registry=r
        )
        self.monitor_value = Gauge(
            "lockgate_monitor_value",
            "Last value of a monitor.",
            ["monitor", "endpoint"],
            registry=r,
        )
        self.monitor_firing = Gauge(
            "lockgate_monitor_firing",
            "1 while a monitor fires.",
            ["monitor", "endpoint"],
            registry=r,
        )
        self.alerts = Counter(
            "lockgate_alerts", "Alerts raised.", ["endpoint", "status"], registry=r
        )
        self.deliveries = Counter(
            "lockgate_alert_deliveries", "Webhook deliveries of alerts.", ["outcome"], registry=r
        )
        self._lock = threading.Lock()
        #: endpoint -> (version, columns) of the drift series now exported
        self._drift: dict[str, tuple[str, list[str]]] = {}
        #: endpoint -> (version, metrics) of the quality series now exported
        self._quality: dict[str, tuple[str, list[str]]] = {}

    def drift(self, d: EndpointDrift) -> None:
        version = str(d.version)
        r = d.report
        if r.verdict == "insufficient_data":
            return
        columns = [c for c in r.columns if c.role == "feature"][:MAX_COLUMNS]
        with self._lock:
            self._forget_drift(d.endpoint, version)
            self.drift_share.labels(d.endpoint, version).set(r.share_drifted)
            self.drift_material.labels(d.endpoint, version).set(r.share_material)
            self.drift_detected.labels(d.endpoint, version).set(1.0 if r.drifted else 0.0)
            names = []
            for c in columns:
                psi = c.effect.get("psi")
                if psi is not None:
                    self.column_psi.labels(d.endpoint, version, c.column).set(psi)
                self.column_drifted.labels(d.endpoint, version, c.column).set(
                    1.0 if c.verdict == "drift" else 0.0
                )
                names.append(c.column)
            self._drift[d.endpoint] = (version, names)

    def _forget_drift(self, endpoint: str, version: str) -> None:
        old = self._drift.pop(endpoint, None)
        if old is None:
            return
        old_version, columns = old
        for c in columns:
            for g in (self.column_psi, self.column_drifted):
                _remove(g, endpoint, old_version, c)
        if old_version != version:
            for g in (self.drift_share, self.drift_material, self.drift_detected):
                _remove(g, endpoint, old_version)

    def quality_of(self, endpoint: str, version: int, report: QualityReport) -> None:
        v = str(version)
        with self._lock:
            old = self._quality.pop(endpoint, None)
            if old is not None:
                for m in old[1]:
                    _remove(self.quality, endpoint, old[0], m)
                if old[0] != v:
                    _remove(self.quality_labels, endpoint, old[0])
            self.quality_labels.labels(endpoint, v).set(report.n)
            names = []
            for name, est in report.metrics.items():
                if est.value is not None:
                    self.quality.labels(endpoint, v, name).set(est.value)
                    names.append(name)
            self._quality[endpoint] = (v, names)

    def monitor(self, name: str, endpoint: str, value: float | None, firing: bool) -> None:
        if value is not None:
            self.monitor_value.labels(name, endpoint).set(value)
        self.monitor_firing.labels(name, endpoint).set(1.0 if firing else 0.0)

    def forget_monitor(self, name: str, endpoint: str) -> None:
        _remove(self.monitor_value, name, endpoint)
        _remove(self.monitor_firing, name, endpoint)


def _remove(g: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never exported, or already removed
        g.remove(*labels)
