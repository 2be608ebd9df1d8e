"""KPIs over a scripted history equal hand-computed values.

The history is written by the real services under a FakeClock at chosen times (registrations,
direct deploys), plus rollout and validation events recorded as the rollout and gate services
record them; predictions go to a real prediction log and ground truth through the feedback
service. Every expected number below is worked out by hand in the comments (days are counted
from the period's start S; the period is [S, S+30d))."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from lockgate.audit.events import Event, record_event
from lockgate.audit.kpis import KpiConfig, VersionFacts, compute, empty_predictions, replay
from lockgate.audit.service import AuditService
from lockgate.cli.main import app
from lockgate.client import Client, connect
from lockgate.clock import FakeClock
from lockgate.store.predlog import LogBatch, PredictionLog
from lockgate.web.api import create_api

S = datetime(2026, 3, 1, tzinfo=UTC)
DAY = 86_400.0


def day(d: float) -> datetime:
    return S + timedelta(days=d)


def iso(d: float) -> str:
    return day(d).isoformat()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(day(-45))


@pytest.fixture
def ws_client(home: Path, database_url: str, clock: FakeClock) -> Iterator[Client]:
    c = connect(home, database_url=database_url, clock=clock, actor="scripted")
    try:
        yield c
    finally:
        c.close()


def move(clock: FakeClock, d: float) -> None:
    clock.advance((day(d) - clock.now()).total_seconds())


def rollout(client: Client, kind: str, rid: int, base: int, cand: int, w: dict[int, float]) -> None:
    ws = client.workspace
    with ws.db.write() as s:
        record_event(
            ws.db,
            s,
            kind=kind,
            subject="credit",
            actor="lockgate-controller",
            at=ws.clock.now(),
            payload={
                "rollout": rid,
                "endpoint": "credit",
                "model": "credit",
                "baseline_version": base,
                "candidate_version": cand,
                "weights": {str(v): x for v, x in w.items()},
            },
        )


def batch(
    rid: str,
    ep: str,
    version: int,
    role: str,
    d: float,
    latency: float,
    status: int = 200,
    outputs: list[int] | None = None,
) -> LogBatch:
    n = len(outputs) if outputs else 1
    return LogBatch(
        request_id=rid,
        endpoint=ep,
        model=ep,
        version=version,
        role=role,
        ts=day(d).timestamp(),
        inputs={"x1": np.zeros(n), "x2": np.ones(n)},
        outputs=np.asarray(outputs, dtype=np.int64) if outputs else None,
        latency_ms=latency,
        status=status,
        error=None if status < 400 else "failed",
        n_rows=n,
    )


def script(client: Client, clock: FakeClock) -> None:
    ws = client.workspace
    X = pd.DataFrame({"x1": np.linspace(-1, 1, 40), "x2": np.linspace(1, -1, 40)})
    model = LogisticRegression().fit(X, (X.x1 > 0).astype(int))

    def register(name: str, d: float, lineage: dict[str, Any]) -> int:
        move(clock, d)
        return ws.registry.register(name, model, sample=X.head(8), lineage=lineage).version

    register("fraud", -40, {})
    move(clock, -39)
    ws.endpoints.deploy("fraud", version=1)
    code = {"commit": "c1", "committed_at": iso(-21)}
    register("credit", -20, {"code": code, "data_cutoff": iso(-25)})
    move(clock, -19)
    ws.endpoints.deploy("credit", version=1)
    register(
        "credit", 1, {"code": {"commit": "c2", "committed_at": iso(0.5)}, "data_cutoff": iso(-2)}
    )
    move(clock, 2)
    ws.endpoints.deploy("credit", version=2)  # reverted a day later: a failed change
    move(clock, 3)
    ws.endpoints.deploy("credit", version=1)  # the revert: rework
    register("credit", 5, {"code": {"commit": "c3", "committed_at": iso(4)}})
    move(clock, 6)
    rollout(client, "rollout.started", 1, 1, 3, {1: 95, 3: 5})
    move(clock, 6.5)
    rollout(client, "rollout.advanced", 1, 1, 3, {1: 50, 3: 50})
    move(clock, 7)
    rollout(client, "rollout.rolled_back", 1, 1, 3, {1: 100})  # failed, recovered in 1 d
    register("credit", 10, {"code": None, "data_cutoff": iso(8)})
    move(clock, 11)
    rollout(client, "rollout.started", 2, 1, 4, {1: 90, 4: 10})
    move(clock, 12)
    rollout(client, "rollout.promoted", 2, 1, 4, {4: 100})  # 5 d after a failure: rework
    register("credit", 20, {})
    move(clock, 20.5)
    with ws.db.write() as s:
        record_event(
            ws.db,
            s,
            kind="validation.completed",
            subject="credit/5",
            actor="ci",
            at=clock.now(),
            payload={"model": "credit", "version": 5, "status": "fail"},
        )
    move(clock, 22)
    rollout(client, "rollout.started", 3, 4, 3, {4: 100})  # shadow stage
    move(clock, 22.5)
    rollout(client, "rollout.aborted", 3, 4, 3, {4: 100})  # failed, recovered in 0.5 d
    move(clock, 25)
    ws.endpoints.deploy("credit", version=2)  # v2 served before: rework
    move(clock, 29)
    ws.endpoints.deploy("credit", version=2, batching={"enabled": True})  # config only
    move(clock, 29.5)
    rollout(client, "rollout.started", 4, 2, 3, {2: 100})  # still pending at the end

    log = PredictionLog(ws.settings.predictions_dir, compact_interval=None)
    batches = [
        batch("old", "credit", 1, "primary", -1, 10, outputs=[1]),  # before the period
        *(
            batch(f"a{i}", "credit", 1, "primary", 1, 50, outputs=[o])
            for i, o in enumerate([1, 0, 1, 0])
        ),
        batch("b0", "credit", 1, "primary", 4, 150, outputs=[1]),
        batch("b1", "credit", 1, "primary", 4, 60, outputs=[1]),
        batch("b2", "credit", 1, "primary", 4, 20, status=500),
        batch("c0", "credit", 3, "canary", 6.2, 80, outputs=[1]),
        batch("c1", "credit", 3, "canary", 6.2, 80, outputs=[1]),
        batch("m", "credit", 4, "primary", 13, 30, outputs=[1, 0, 1]),
        batch("d0", "credit", 4, "primary", 13, 40, outputs=[1]),
        batch("d1", "credit", 4, "primary", 13, 120, outputs=[1]),
        batch("d2", "credit", 4, "primary", 13, 90, outputs=[0]),
        batch("d3", "credit", 4, "primary", 13, 10, status=429),
        *(batch(f"s{i}", "credit", 3, "shadow", 22.2, 300, outputs=[1]) for i in range(4)),
        *(batch(f"f{i}", "fraud", 1, "primary", 15, 200, outputs=[1]) for i in range(6)),
    ]
    for b in batches:
        log.submit_nowait(b)
    log.flush()
    move(clock, 30)
    from lockgate.feedback import FeedbackService

    fb = FeedbackService(ws, log)
    truth = {
        "a0": 1,
        "a1": 0,
        "a2": 1,
        "a3": 1,
        "c0": 1,
        "c1": 0,
        "d0": 1,
        "d1": 1,
        "d2": 0,
        "d3": 1,
    }
    assert not fb.send(
        "credit", [{"id": f"{k}-0", "value": v} for k, v in truth.items()]
    ).unknown_ids
    fraud = [{"id": f"f{i}-0", "value": v} for i, v in enumerate([1, 1, 1, 0, 0, 0])]
    assert not fb.send("fraud", fraud).unknown_ids
    log.close()


def by_model(doc: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    out = {m["model"]: m for m in doc["models"]}
    if "overall" in doc:
        out[None] = doc["overall"]
    return out


def test_kpis_of_a_scripted_history(ws_client: Client, clock: FakeClock) -> None:
    pytest.importorskip("lockgate.feedback")
    script(ws_client, clock)
    doc = AuditService(ws_client.workspace).kpis(period="30d")
    assert doc["period"]["start"] == S.isoformat() and doc["period"]["end"] == iso(30)
    k = by_model(doc)
    credit, fraud, overall = k["credit"], k["fraud"], k[None]

    # deployments in the period: v2 @2, v1 @3 (revert), v4 @12 (promotion), v2 @25; the
    # redeploy of v2 @29 changed only batching
    assert credit["deployment_frequency"]["deployments"] == 4
    assert credit["deployment_frequency"]["per_week"] == pytest.approx(4 / (30 / 7))
    assert credit["deployment_frequency"]["per_day"] == pytest.approx(4 / 30)
    # first deployments in the period: v2 @2 (registered @1, committed @0.5, cutoff @-2) and
    # v4 @12 (registered @10, no commit time, cutoff @8)
    lead = credit["lead_time"]
    assert lead["registration"] == {
        "n": 2,
        "median_s": 1.5 * DAY,
        "mean_s": 1.5 * DAY,
        "max_s": 2 * DAY,
        "not_recorded": 0,
    }
    assert lead["commit"] == {
        "n": 1,
        "median_s": 1.5 * DAY,
        "mean_s": 1.5 * DAY,
        "max_s": 1.5 * DAY,
        "not_recorded": 1,
    }
    assert lead["data_cutoff"]["n"] == 2 and lead["data_cutoff"]["median_s"] == 4 * DAY
    # attempts started in the period: deploy v2 (reverted: failed), deploy v1, rollout v3
    # (rolled back), rollout v4 (promoted), rollout v3 (aborted), deploy v2; rollout 4 pends
    assert credit["change_fail_rate"] == {"changes": 6, "failed": 3, "rate": 0.5, "pending": 1}
    assert credit["deployment_success_rate"] == {
        "attempts": 6,
        "succeeded": 4,
        "rate": pytest.approx(4 / 6),
    }
    # recovery: revert 1 d after the deploy, rollback 1 d after its start, abort after 0.5 d
    assert credit["recovery_time"] == {"n": 3, "median_s": DAY, "mean_s": 72_000.0, "max_s": DAY}
    # rework: the revert to v1, v4 (first deployment 5 d after the rollback), v2 again @25
    assert credit["rework_rate"] == {"deployments": 4, "rework": 3, "rate": 0.75}
    for key in ("change_fail_rate", "deployment_success_rate", "recovery_time", "rework_rate"):
        assert overall[key] == credit[key]
    assert fraud["deployment_frequency"]["deployments"] == 0
    assert fraud["change_fail_rate"]["rate"] is None and fraud["recovery_time"]["n"] == 0

    # utilization: rows served (not shadow) in the period; the request before S is left out
    u = credit["utilization"]
    assert u["predictions"] == 16 and u["shadow_predictions"] == 4
    rows = {r["version"]: (r["served"], r["shadow"]) for r in u["per_version"]}
    assert rows == {1: (7, 0), 3: (2, 4), 4: (7, 0)}
    # ready: v1-v4 (v5 failed its gates); with traffic: v1, v3, v4
    assert (u["ready_versions"], u["ready_with_traffic"]) == (4, 3)
    assert u["ready_with_traffic_share"] == 0.75
    assert u["deployed_idle"] == [{"model": "credit", "version": 2}]
    assert fraud["utilization"]["ready_with_traffic_share"] == 1.0
    assert overall["utilization"]["predictions"] == 22
    assert overall["utilization"]["ready_with_traffic_share"] == pytest.approx(4 / 5)

    # SLO (100 ms, status < 400), per request: credit 14 requests, 10 good (b0 slow, b2 and
    # d3 failed, d1 slow); fraud's 6 requests took 200 ms
    slo = credit["slo"]
    assert (slo["requests"], slo["good"]) == (14, 10)
    assert slo["attainment"] == pytest.approx(10 / 14)
    assert slo["error_rate"] == pytest.approx(2 / 14)
    assert slo["latency_p50_ms"] == 50.0
    per = {r["version"]: (r["requests"], r["good"]) for r in slo["per_version"]}
    assert per == {1: (7, 5), 3: (2, 2), 4: (5, 3)}
    assert fraud["slo"]["attainment"] == 0.0
    assert overall["slo"]["attainment"] == 0.5

    # quality, 4 buckets of 7.5 d: credit 4/6 correct in the first, 3/3 in the second (the
    # failed d3 does not count); fraud 3/6 in the third
    q = credit["quality_trend"]
    assert q["metric"] == "accuracy"
    assert [b["labels"] for b in q["buckets"]] == [6, 3, 0, 0]
    assert q["buckets"][0]["value"] == pytest.approx(4 / 6) and q["buckets"][1]["value"] == 1.0
    assert q["change"] == pytest.approx(1 / 3) and q["direction"] == "improving"
    assert fraud["quality_trend"]["change"] is None
    assert fraud["quality_trend"]["buckets"][2]["value"] == 0.5
    assert overall["quality_trend"]["change"] == pytest.approx(0.5 - 4 / 6)
    assert overall["quality_trend"]["direction"] == "worsening"

    # one model only; a shorter period that leaves out everything before day 20
    only = AuditService(ws_client.workspace).kpis(period="10d", model="credit")
    assert [m["model"] for m in only["models"]] == ["credit"] and "overall" not in only
    ten = only["models"][0]
    assert ten["deployment_frequency"]["deployments"] == 1  # v2 @25
    assert ten["change_fail_rate"] == {"changes": 2, "failed": 1, "rate": 0.5, "pending": 1}


def test_kpis_cli_and_rest(ws_client: Client, clock: FakeClock, env: dict[str, str]) -> None:
    """The same figures through ``GET /api/v1/kpis``; errors are 4xx naming the field. The
    CLI runs on the real clock: a ten-year period ending now holds the whole history, so the
    deployment of v1 @-19 is counted too."""
    pytest.importorskip("lockgate.feedback")
    script(ws_client, clock)
    api = TestClient(create_api(ws_client.workspace))
    r = api.get("/api/v1/kpis", params={"period": "30d", "model": "credit"})
    assert r.status_code == 200
    doc = r.json()
    assert doc["models"][0]["change_fail_rate"]["rate"] == 0.5
    assert doc["models"][0]["slo"]["good"] == 10
    r = api.get("/api/v1/kpis", params={"period": "30x"})
    assert r.status_code == 400 and r.json()["field"] == "period"
    r = api.get("/api/v1/kpis", params={"model": "nope"})
    assert r.status_code == 404

    cmd = ["kpis", "--period", "3650d", "--model", "credit", "--json"]
    res = CliRunner().invoke(app, cmd, env=env)
    assert res.exit_code == 0, res.stderr
    k = json.loads(res.stdout)["models"][0]
    assert k["deployment_frequency"]["deployments"] == 5
    assert k["change_fail_rate"] == {"changes": 7, "failed": 3, "rate": 3 / 7, "pending": 1}
    res = CliRunner().invoke(app, ["kpis", "--period", "3650d"], env=env)
    assert res.exit_code == 0 and "change fail rate" in res.stdout and "all models" in res.stdout
    res = CliRunner().invoke(app, ["kpis", "--period", "soon"], env=env)
    assert res.exit_code == 1 and "period" in res.stderr


def ev(i: int, d: float, kind: str, **payload: Any) -> Event:
    return Event(i, day(d), "t", kind, str(payload.get("endpoint", "")), payload, f"{i:064x}")


def test_replay_edge_cases() -> None:
    """Pure: a revert outside the failure window is rework but not a failure; a redeploy of
    the same version is no deployment; events after the period are ignored."""
    cfg = KpiConfig(day(0), day(30), failure_window=timedelta(days=2))
    dep = "endpoint.deployed"
    events = [
        ev(1, 1, dep, endpoint="e", model="m", from_version=None, to_version=1),
        ev(2, 2, dep, endpoint="e", model="m", from_version=1, to_version=2),
        ev(3, 2.5, dep, endpoint="e", model="m", from_version=2, to_version=2),
        ev(4, 9, dep, endpoint="e", model="m", from_version=2, to_version=1),  # 7 d: too late
        ev(5, 10, "endpoint.deleted", endpoint="e", policy={"primary": 1}),
        ev(6, 11, dep, endpoint="e", model="m", from_version=None, to_version=1),
        ev(7, 31, dep, endpoint="e", model="m", from_version=1, to_version=2),  # after the end
    ]
    facts = [VersionFacts("m", v, day(0)) for v in (1, 2)]
    k = compute("m", cfg, replay(events, cfg), facts, empty_predictions(), None, "no feedback")
    assert k["deployment_frequency"]["deployments"] == 4
    assert k["change_fail_rate"] == {"changes": 4, "failed": 0, "rate": 0.0, "pending": 0}
    assert k["rework_rate"]["rework"] == 2  # back to v1 @9, and v1 again @11
    assert k["lead_time"]["registration"]["n"] == 2  # v1 @1 and v2 @2; later ones are repeats
    assert k["quality_trend"]["reason"] == "no feedback" and k["quality_trend"]["metric"] is None
    assert k["slo"]["attainment"] is None
    assert k["utilization"]["deployed_idle"] == [
        {"model": "m", "version": 1},
        {"model": "m", "version": 2},
    ]
    with pytest.raises(ValueError, match="period"):
        KpiConfig(day(1), day(1))
