"""The monitor service on a fake clock, a real prediction log and a real metadata store:
drift, quality, error-rate and latency monitors fire once and resolve once, with events,
stored alerts and webhook deliveries; definitions are validated and stored."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from tests.alerts.receiver import receiver
from tests.monitoring_service.conftest import ENDPOINT, SECRET, emit

from lockgate.audit.events import iter_events, verify_chain
from lockgate.client import Client
from lockgate.clock import FakeClock
from lockgate.errors import ConflictError, InvalidInputError, NotFoundError
from lockgate.feedback import FeedbackService
from lockgate.monitoring.alerts import SIGNATURE_HEADER, verify
from lockgate.monitoring.service import MonitorService
from lockgate.store.predlog import PredictionLog


def drift_monitor(url: str | None = None, **extra: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "name": "credit-drift",
        "endpoint": ENDPOINT,
        "kind": "drift",
        "threshold": 0.3,
        "window": "10m",
        "interval": "1m",
    }
    if url:
        spec["webhooks"] = [{"url": url, "secret": SECRET}]
    return {**spec, **extra}


def test_drift_monitor_fires_once_and_resolves_once(
    svc: MonitorService, plog: PredictionLog, clock: FakeClock, ws_client: Client
) -> None:
    with receiver() as rec:
        svc.add(drift_monitor(rec.url))
        emit(plog, clock, 500, seed=1)
        assert svc.evaluate_due() == []
        assert svc.get("credit-drift").state == "ok"

        clock.advance(600)  # the normal window is gone
        emit(plog, clock, 500, shift=2.5, seed=2)
        fired = svc.evaluate_due()
        assert [a.status for a in fired] == ["firing"]
        alert = fired[0]
        assert alert.value is not None and alert.value >= 0.3
        assert alert.version == 1
        assert "x1" in alert.measurement["detail"]["drifted_columns"]
        assert svc.get("credit-drift").state == "firing"

        # still drifting: evaluated again, but deduplicated
        assert svc.evaluate_due() == []  # not due yet
        clock.advance(60)
        emit(plog, clock, 500, shift=2.5, seed=3)
        assert svc.evaluate_due() == []
        assert svc.get("credit-drift").state == "firing"

        clock.advance(660)
        emit(plog, clock, 500, seed=4)
        resolved = svc.evaluate_due()
        assert [a.status for a in resolved] == ["resolved"]
        assert resolved[0].firing_since == alert.at

        got = rec.wait_for(2)
    bodies = [r.json() for r in got]
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    assert bodies[0]["id"] == alert.id and bodies[0]["monitor"] == "credit-drift"
    for r in got:
        assert verify(r.body, SECRET, r.headers[SIGNATURE_HEADER])
    stored = svc.alerts(monitor="credit-drift")
    assert [a.status for a in stored] == ["resolved", "firing"]  # newest first
    assert all(a.deliveries["delivery"] == "delivered" for a in stored)
    kinds = [e.kind for e in iter_events(ws_client.workspace.db, subject=ENDPOINT)]
    assert kinds.count("monitor.firing") == 1 and kinds.count("monitor.resolved") == 1
    assert kinds.count("alert.delivered") == 2
    assert verify_chain(ws_client.workspace.db).ok


def test_a_small_window_is_insufficient_data_and_keeps_the_state(
    svc: MonitorService, plog: PredictionLog, clock: FakeClock
) -> None:
    svc.add(drift_monitor())
    emit(plog, clock, 30, shift=3.0)
    assert svc.evaluate_due() == []
    info = svc.get("credit-drift")
    assert info.state == "unknown" and info.value is None
    assert "fewer than 100 rows" in info.measurement["reason"]


def test_quality_monitor_fires_on_falling_accuracy_and_resolves(
    svc: MonitorService, plog: PredictionLog, clock: FakeClock, ws_client: Client
) -> None:
    fb = FeedbackService(ws_client.workspace, plog)
    svc.add(
        {
            "name": "credit-accuracy",
            "endpoint": ENDPOINT,
            "kind": "quality",
            "metric": "accuracy",
            "threshold": 0.8,
            "window": "5m",
            "interval": "30s",
            "min_samples": 50,
        }
    )
    ids, frame = emit(plog, clock, 200, seed=5)
    fb.send(ENDPOINT, [{"id": i, "value": int(y)} for i, y in zip(ids, frame["y"], strict=True)])
    assert svc.evaluate_due() == []
    assert svc.get("credit-accuracy").value == pytest.approx(1.0)

    clock.advance(300)
    ids, frame = emit(plog, clock, 200, seed=6)
    rng = np.random.default_rng(0)
    wrong = rng.random(200) < 0.4  # 60% accuracy
    truth = np.where(wrong, 1 - frame["y"], frame["y"])
    fb.send(ENDPOINT, [{"id": i, "value": int(t)} for i, t in zip(ids, truth, strict=True)])
    fired = svc.evaluate_due()
    assert [a.status for a in fired] == ["firing"]
    est = fired[0].measurement["detail"]["estimate"]
    assert est["method"] == "wilson" and est["n"] == 200
    assert est["low"] < fired[0].value < est["high"] < 0.8

    clock.advance(300)
    ids, frame = emit(plog, clock, 200, seed=7)
    fb.send(ENDPOINT, [{"id": i, "value": int(y)} for i, y in zip(ids, frame["y"], strict=True)])
    assert [a.status for a in svc.evaluate_due()] == ["resolved"]


def test_error_rate_and_latency_monitors(
    svc: MonitorService, plog: PredictionLog, clock: FakeClock
) -> None:
    svc.add({"name": "errors", "endpoint": ENDPOINT, "kind": "error_rate", "threshold": 0.1,
             "window": "1m", "interval": "10s"})  # fmt: skip
    svc.add({"name": "slow", "endpoint": ENDPOINT, "kind": "latency", "threshold": 50,
             "quantile": 0.9, "window": "1m", "interval": "10s"})  # fmt: skip
    for i in range(30):
        emit(plog, clock, 1, seed=i, latency_ms=5.0)
    assert svc.evaluate_due() == []
    assert svc.get("errors").state == "ok" and svc.get("slow").value == pytest.approx(5.0)

    clock.advance(61)
    for i in range(20):
        emit(plog, clock, 2, seed=i, latency_ms=120.0)  # 2 rows, 1 request each
    for i in range(10):
        emit(plog, clock, 1, seed=i, status=503)
    emit(plog, clock, 1, role="shadow", status=500)  # shadows are not counted
    fired = {a.monitor: a for a in svc.evaluate_due()}
    assert set(fired) == {"errors", "slow"}
    assert fired["errors"].value == pytest.approx(10 / 30)
    assert fired["errors"].measurement["detail"]["requests"] == 30
    assert fired["slow"].value == pytest.approx(120.0)


def test_metrics_are_exported_with_bounded_labels(
    svc: MonitorService, plog: PredictionLog, clock: FakeClock, registry: CollectorRegistry
) -> None:
    svc.add(drift_monitor())
    emit(plog, clock, 400, shift=2.5)
    svc.evaluate_due()
    text = generate_latest(registry).decode()
    assert 'lockgate_monitor_firing{endpoint="credit",monitor="credit-drift"} 1.0' in text
    assert 'lockgate_drift_detected{endpoint="credit",version="1"}' in text
    assert 'lockgate_drift_column_drifted{column="x1",endpoint="credit",version="1"} 1.0' in text
    assert 'lockgate_drift_column_drifted{column="x2",endpoint="credit",version="1"} 0.0' in text
    assert 'lockgate_alerts_total{endpoint="credit",status="firing"} 1.0' in text
    svc.remove("credit-drift")
    assert "lockgate_monitor_firing{" not in generate_latest(registry).decode()


def test_definitions_are_validated_stored_and_audited(
    svc: MonitorService, ws_client: Client
) -> None:
    with pytest.raises(NotFoundError):
        svc.add(drift_monitor(endpoint="nope"))
    with pytest.raises(InvalidInputError, match="metric"):
        svc.add({"name": "q", "endpoint": ENDPOINT, "kind": "quality", "threshold": 0.9})
    with pytest.raises(InvalidInputError, match="threshold"):
        svc.add(drift_monitor(threshold=1.5))
    with pytest.raises(InvalidInputError, match=r"webhooks\.url"):
        svc.add(drift_monitor(webhooks=["ftp://127.0.0.1/x"]))
    with pytest.raises(InvalidInputError, match=r"webhooks\.secret"):
        svc.add(drift_monitor(webhooks=["http://127.0.0.1:9/x"]))  # no secret anywhere
    info = svc.add(drift_monitor("http://127.0.0.1:9/x"))
    assert info.to_dict()["webhooks"] == [{"url": "http://127.0.0.1:9/x", "secret": "set"}]
    with pytest.raises(ConflictError):
        svc.add(drift_monitor())
    svc.add(drift_monitor(threshold=0.6), replace=True)
    assert svc.get("credit-drift").spec.threshold == 0.6
    assert [m.name for m in svc.list_monitors(ENDPOINT)] == ["credit-drift"]
    events = [e for e in iter_events(ws_client.workspace.db) if e.kind.startswith("monitor.")]
    assert [e.kind for e in events] == ["monitor.created", "monitor.updated"]
    assert SECRET not in str([e.payload for e in events])
    svc.remove("credit-drift", reason="done")
    with pytest.raises(NotFoundError):
        svc.get("credit-drift")


def test_a_drift_monitor_needs_a_reference_profile(svc: MonitorService, ws_client: Client) -> None:
    from tests.monitoring_service.conftest import fit, reference_frame

    ref = reference_frame(200)
    ws_client.register_model("bare", fit(ref), sample=ref.head(5))
    ws_client.workspace.endpoints.deploy("bare", version=1)
    with pytest.raises(InvalidInputError, match="no reference profile"):
        svc.add({"name": "bare-drift", "endpoint": "bare", "kind": "drift"})
    with pytest.raises(NotFoundError, match="no reference profile"):
        svc.drift("bare")


def test_a_monitor_changed_meanwhile_is_not_judged_twice(
    svc: MonitorService, plog: PredictionLog, clock: FakeClock, ws_client: Client
) -> None:
    """Two evaluators (a leader and ``lockgate monitors check``) racing: the optimistic
    revision lets one alert through, not two."""
    svc.add(drift_monitor())
    emit(plog, clock, 400, shift=2.5)
    other = MonitorService(ws_client.workspace, predlog=plog, background=False, clock=clock)
    row = svc.get("credit-drift")
    spec = row.spec
    from sqlalchemy import select

    from lockgate.store.schema import MonitorRow

    with ws_client.workspace.db.read() as s:
        rev = s.execute(select(MonitorRow.revision).where(MonitorRow.id == row.id)).scalar_one()
    first = svc._evaluate(row.id, rev, spec, clock.now())
    second = other._evaluate(row.id, rev, spec, clock.now())
    assert [a.status for a in first] == ["firing"] and second == []
    assert len(svc.alerts()) == 1


def test_undeliverable_alerts_are_marked_failed(
    svc: MonitorService, plog: PredictionLog, clock: FakeClock, ws_client: Client
) -> None:
    with receiver(script=[500, 500, 500]) as rec:
        svc.add(drift_monitor(rec.url))
        emit(plog, clock, 400, shift=2.5)
        (alert,) = svc.evaluate_due()
        rec.wait_for(3)
    stored = svc.alerts()[0]
    assert stored.id == alert.id
    assert stored.deliveries["delivery"] == "failed" and stored.deliveries["attempts"] == 3
    assert stored.deliveries["results"][0]["error"] == "answered 500"
    kinds = [e.kind for e in iter_events(ws_client.workspace.db)]
    assert "alert.delivery_failed" in kinds
