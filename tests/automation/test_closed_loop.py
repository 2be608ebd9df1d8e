"""Done-when test on a real `lockgate server` on loopback: drifted traffic fires a drift
alert, the policy retrains, the candidate passes the gates and goes through shadow and canary
to become champion, with no human step and every step in the event log; a retrain producing a
worse model stops at the gates and the champion stays."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests import loopback
from tests.databases import fresh_database
from tests.rollout.live import wait_for
from tests.serving.conftest import RunningServer, start_server

from lockgate.automation.context import TrainingContext
from lockgate.automation.pipelines import PipelineSpec, PipelineStore
from lockgate.automation.service import AutomationService
from lockgate.client import Client, connect
from lockgate.datasets import CREDIT_FEATURES, CREDIT_TARGET, credit
from lockgate.quickstart_pipeline import train

HERE = Path(__file__).resolve().parent
GOOD, BAD = "credit", "credit-bad"
#: the quality gate judges ROC AUC, the steadiest metric on a few hundred held-out rows; the
#: prior-predicting model (AUC 0.5) fails it by far
GATES = {
    "baseline": "champion",
    "gates": [
        {"type": "schema"},
        {"type": "smoke"},
        {"type": "quality", "metrics": {"roc_auc": {"max_regression": 0.03}}},
    ],
}
#: latency is judged loosely: two trainings and two servers' traffic share a 2-core machine
#: here, and the rollout tests judge latency on their own
ANALYSIS = {
    "min_requests": 30,
    "min_labels": 30,
    "min_agreement": 0.6,
    "output_shift": "warn",
    "max_latency_ratio": 10.0,
    "latency_margin_ms": 250.0,
}


def _setup(client: Client, model: str, entry: str) -> None:
    data = credit(3000, seed=1)
    fitted, _ = train(data, TrainingContext(model, CREDIT_TARGET, tuple(CREDIT_FEATURES)))
    v = client.register_model(model, fitted, reference=data, target=CREDIT_TARGET)
    client.set_alias(model, "champion", v.version, reason="first model")
    client.workspace.endpoints.deploy(model, alias="champion")
    client.workspace.gates.set_policy(model, GATES)
    PipelineStore(client.workspace).set(
        PipelineSpec(
            model=model,
            entry=entry,
            target=CREDIT_TARGET,
            strategy="shadow-then-canary",
            steps=(50.0, 100.0),
            interval=2.0,
            window=600.0,
            min_rows=1000,
            timeout=120.0,
            analysis=ANALYSIS,
        )
    )
    AutomationService(client.workspace).set_policy(
        {"endpoint": model, "cooldown": 3600, "max_concurrent": 2}
    )
    from lockgate.monitoring.service import MonitorService

    MonitorService(client.workspace, background=False).add(
        {
            "name": f"{model}-drift",
            "endpoint": model,
            "kind": "drift",
            "window": 120,
            "interval": 1,
            "min_samples": 1500,
        }
    )


class DriftedTraffic:
    """Threads posting drifted rows in batches and their true labels as feedback."""

    def __init__(self, url: str, endpoints: list[str], batch: int = 100) -> None:
        self.url = url
        self.endpoints = endpoints
        self.batch = batch
        self.failures: list[str] = []
        self.sent = dict.fromkeys(endpoints, 0)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(ep, i), daemon=True)
            for i, ep in enumerate(endpoints)
        ]

    def __enter__(self) -> DriftedTraffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self, endpoint: str, seed: int) -> None:
        frame = credit(5000, seed=100 + seed, shift=1.5)
        rows = frame[CREDIT_FEATURES].to_dict(orient="records")
        labels = frame[CREDIT_TARGET].tolist()
        i = 0
        with loopback.client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                i = i + self.batch if i + 2 * self.batch <= len(rows) else 0
                chunk = slice(i, i + self.batch)
                r = http.post(
                    f"/v1/endpoints/{endpoint}/predict", json={"dataframe_records": rows[chunk]}
                )
                if r.status_code != 200:
                    self.failures.append(f"predict {r.status_code}: {r.text[:200]}")
                    continue
                ids = r.json()["prediction_ids"]
                items = [{"id": p, "value": y} for p, y in zip(ids, labels[chunk], strict=True)]
                for _ in range(20):  # the log flushes every 0.2 s: ids become known shortly
                    f = http.post("/api/v1/feedback", json={"endpoint": endpoint, "items": items})
                    if f.status_code == 200 and f.json()["unknown"] == 0:
                        break
                    time.sleep(0.1)
                self.sent[endpoint] += self.batch
                time.sleep(0.05)


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, RunningServer]]:
    tmp = tmp_path_factory.mktemp("loop")
    with fresh_database(tmp) as url:
        home = tmp / "ws"
        home.mkdir()
        client = connect(home, database_url=url)
        _setup(client, GOOD, "lockgate.quickstart_pipeline:train")
        _setup(client, BAD, f"{HERE / 'worse_train.py'}:train")
        e = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
        e.update(LOCKGATE_HOME=str(home), LOCKGATE_DATABASE_URL=url)
        srv = start_server(
            e,
            tmp,
            extra_env={
                "LOCKGATE_CONTROLLER_INTERVAL": "0.2",
                "LOCKGATE_POLL_INTERVAL": "0.2",
                "LOCKGATE_LOG_FLUSH_INTERVAL": "0.2",
                "LOCKGATE_CONTROLLER_LEASE_TTL": "3",
            },
        )
        try:
            yield client, srv
        finally:
            srv.stop()
            client.close()


def _kinds(client: Client, subjects: set[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, actor, payload) of the events about ``subjects`` (models, their versions and
    aliases, endpoints), in chain order."""
    from sqlalchemy import select

    from lockgate.store.schema import EventRow

    with client.workspace.db.read() as s:
        rows = s.execute(select(EventRow).order_by(EventRow.id)).scalars().all()
        return [
            (r.kind, r.actor, dict(r.payload or {}))
            for r in rows
            if r.subject in subjects or r.subject.split("/")[0].split("@")[0] in subjects
        ]


def _explain(client: Client, srv: RunningServer, traffic: DriftedTraffic) -> str:
    """What happened, for a failure message: events, runs, traffic and the server's log."""
    lines = [f"sent: {traffic.sent}, failures: {traffic.failures[:3]}"]
    for model in (GOOD, BAD):
        seen = [(k, p.get("status") or p.get("reason")) for k, _, p in _kinds(client, {model})]
        lines.append(f"{model} events: {[e for e in seen if e[0] != 'feedback.received']}")
        lines.append(f"{model} runs: {_runs(client, model)}")
    lines.append(srv.log()[-3000:])
    return "\n".join(lines)


def _runs(client: Client, model: str) -> list[dict[str, Any]]:
    return AutomationService(client.workspace).runner.runs(model)


def test_drift_retrains_validates_rolls_out_and_promotes_with_no_human_step(
    loop: tuple[Client, RunningServer],
) -> None:
    client, srv = loop
    started = time.monotonic()
    with DriftedTraffic(srv.url, [GOOD, BAD]) as traffic:
        try:
            wait_for(
                lambda: (
                    client.get_version(f"{GOOD}@champion").version == 2
                    and any(r["status"] == "gates_failed" for r in _runs(client, BAD))
                ),
                100,
                every=0.5,
            )
        except AssertionError:
            pytest.fail(_explain(client, srv, traffic))
    assert not traffic.failures, traffic.failures[:3]
    elapsed = time.monotonic() - started
    assert elapsed < 100

    # the good model: alert -> decision -> run -> registered -> gates -> rollout -> champion
    events = _kinds(client, {GOOD})
    kinds = [k for k, _, _ in events]
    order = [
        "monitor.firing",
        "automation.decision",
        "pipeline.started",
        "version.registered",
        "validation.completed",
        "rollout.started",
        "pipeline.finished",
        "rollout.advanced",
        "alias.move",  # champion moves in the promotion's transaction, just before its event
        "rollout.promoted",
    ]
    positions = []
    for kind in order:
        after = positions[-1] + 1 if positions else 0
        assert kind in kinds[after:], (kind, kinds)
        positions.append(kinds.index(kind, after))
    decision = next(p for k, _, p in events if k == "automation.decision")
    assert decision["taken"] is True and decision["action"] == "retrain"
    assert decision["trigger"] == "drift"
    finished = next(p for k, _, p in events if k == "pipeline.finished")
    assert finished["status"] == "rolling_out" and finished["gates"] == "pass"
    v2 = client.get_version(f"{GOOD}/2")
    assert v2.lineage["parent_version"] == 1
    assert v2.lineage["trigger"]["type"] == "drift"
    assert v2.lineage["data_window"]["source"] == "prediction-log"
    assert len(v2.lineage["data_window"]["sha256"]) == 64
    assert client.workspace.endpoints.get(GOOD).policy.primary == 2
    actors = {k: a for k, a, _ in events}
    assert actors["automation.decision"] == "lockgate-automation"
    assert actors["pipeline.started"] == "lockgate-automation"
    assert actors["rollout.promoted"] == "lockgate-controller"

    # the worse model: stopped at the gates, no rollout, the champion stays
    bad = _kinds(client, {BAD})
    bad_kinds = [k for k, _, _ in bad]
    assert "monitor.firing" in bad_kinds and "validation.completed" in bad_kinds
    assert "rollout.started" not in bad_kinds
    run = next(r for r in _runs(client, BAD) if r["status"] == "gates_failed")
    assert run["candidate_version"] == 2 and run["gates"] == "fail"
    assert client.get_version(f"{BAD}@champion").version == 1
    assert client.workspace.endpoints.get(BAD).policy.primary == 1
