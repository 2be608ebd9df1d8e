"""Scheduled online learning on a real `lockgate server` on loopback: the endpoint's policy
has an ``online`` schedule (``@every 1s``, an interval, so the test does not wait for a cron
minute), and the server's controller tick fires it: the serving SGDClassifier is updated with
``partial_fit`` on the logged, labelled traffic into a new version with its lineage, which
passes the model's gates and starts the pipeline's rollout, all by lockgate-automation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import SGDClassifier
from sqlalchemy import select
from tests import loopback
from tests.rollout.live import wait_for
from tests.serving.conftest import RunningServer, start_server

from lockgate.automation.pipelines import ONLINE_ENTRY, PipelineSpec, PipelineStore
from lockgate.automation.service import AUTOMATION_ACTOR, AutomationService
from lockgate.client import Client
from lockgate.rollout.service import RolloutService
from lockgate.store.schema import EventRow

GATES = {
    "baseline": "champion",
    "gates": [
        {"type": "schema"},
        {"type": "smoke"},
        {"type": "quality", "metrics": {"roc_auc": {"max_regression": 0.1}}},
    ],
}
FAST = {
    "LOCKGATE_CONTROLLER_INTERVAL": "0.2",
    "LOCKGATE_POLL_INTERVAL": "0.2",
    "LOCKGATE_LOG_FLUSH_INTERVAL": "0.2",
    "LOCKGATE_CONTROLLER_LEASE_TTL": "3",
}


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    y = ((X["x1"] + 0.5 * X["x2"]) > 0.3).astype(np.int64).to_numpy()
    return X, y


@pytest.fixture
def online(
    client: Client, env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[Client, RunningServer, SGDClassifier]]:
    """``sgd`` v1 (an SGDClassifier, champion, deployed), its gates, an online pipeline
    rolled out by canary, and a running server."""
    X, y = _frame(400, seed=1)
    sgd = SGDClassifier(loss="log_loss", random_state=0).fit(X, y)
    v1 = client.register_model("sgd", sgd, reference=X.assign(label=y), target="label")
    client.set_alias("sgd", "champion", v1.version)
    client.workspace.endpoints.deploy("sgd", alias="champion")
    client.workspace.gates.set_policy("sgd", GATES)
    PipelineStore(client.workspace).set(
        PipelineSpec(
            model="sgd", entry=ONLINE_ENTRY, target="label", strategy="canary",
            steps=(50.0, 100.0), interval=600.0, min_rows=100, timeout=120.0,
        )
    )  # fmt: skip
    srv = start_server(env, tmp_path, extra_env=FAST)
    try:
        yield client, srv, sgd
    finally:
        assert srv.stop() == 0, srv.log()[-3000:]


def _serve_and_label(url: str, n: int) -> None:
    """``n`` served predictions of ``sgd``, each with its true label as feedback."""
    X, y = _frame(n, seed=2)
    with loopback.client(base_url=url, timeout=30) as http:
        for start in range(0, n, 50):
            rows = X.iloc[start : start + 50].to_dict(orient="records")
            r = http.post("/v1/endpoints/sgd/predict", json={"dataframe_records": rows})
            assert r.status_code == 200, r.text
            items = [
                {"id": p, "value": int(v)}
                for p, v in zip(r.json()["prediction_ids"], y[start : start + 50], strict=True)
            ]

            def accepted(items: list[dict[str, Any]] = items) -> bool:
                f = http.post("/api/v1/feedback", json={"endpoint": "sgd", "items": items})
                assert f.status_code == 200, f.text
                return bool(f.json()["unknown"] == 0)  # ids known once the log flushed

            wait_for(accepted, 30, every=0.2)


def _events(client: Client, *kinds: str) -> list[EventRow]:
    with client.workspace.db.read() as s:
        q = select(EventRow).where(EventRow.kind.in_(kinds)).order_by(EventRow.id)
        return list(s.execute(q).scalars())


def test_online_schedule_fires_on_the_server_and_updates_through_the_gates(
    online: tuple[Client, RunningServer, SGDClassifier],
) -> None:
    client, srv, sgd = online
    ws = client.workspace
    _serve_and_label(srv.url, 300)
    svc = AutomationService(ws)
    svc.set_policy(
        {"endpoint": "sgd", "on_drift": "none", "on_quality": "none", "online": "@every 1s",
         "cooldown": 0}
    )  # fmt: skip
    runs = svc.runner.runs
    try:
        wait_for(lambda: any(r["status"] != "running" for r in runs("sgd")), 60, every=0.2)
    except AssertionError:
        pytest.fail(f"no online run finished: {runs('sgd')}\n{srv.log()[-3000:]}")
    run = runs("sgd")[-1]  # the first run the schedule started
    assert run["status"] == "rolling_out", (run, srv.log()[-3000:])
    assert run["trigger"]["type"] == "online" and run["trigger"]["cron"] == "@every 1s"
    assert (run["parent_version"], run["candidate_version"]) == (1, 2)
    assert run["gates"] == "pass"

    # the decision and the run are the policy engine's, fired by the server's tick
    decision = next(
        e for e in _events(client, "automation.decision") if e.payload["trigger"] == "online"
    )
    assert decision.actor == AUTOMATION_ACTOR and decision.payload["taken"] is True
    started = _events(client, "pipeline.started")[0]
    assert started.actor == AUTOMATION_ACTOR and started.payload["entry"] == ONLINE_ENTRY

    # the new version: partial_fit on the logged window, with its lineage and gate report
    v2 = client.get_version("sgd/2")
    assert v2.lineage["parent_version"] == 1
    assert v2.lineage["trigger"]["type"] == "online"
    assert v2.lineage["pipeline"]["entry"] == ONLINE_ENTRY
    window = v2.lineage["data_window"]
    assert window["source"] == "prediction-log" and window["endpoint"] == "sgd"
    assert window["rows"] == 300 and window["train"] == 210 and len(window["sha256"]) == 64
    assert v2.metrics["online_rows"] == 210.0
    model2 = client.load("sgd/2").runtime.model_
    assert not np.allclose(model2.coef_, sgd.coef_)  # updated from the feedback...
    assert model2.classes_.tolist() == [0, 1]  # ...not a fresh model
    validation = next(
        e for e in _events(client, "validation.completed") if e.payload.get("version") == 2
    )
    assert validation.payload["status"] == "pass"
    info = RolloutService(ws).status("sgd")
    assert info.active and info.candidate == 2 and info.plan.strategy == "canary"

    # while its rollout runs, the schedule keeps firing and is skipped, saying why
    def skipped() -> list[dict[str, Any]]:
        return [
            d
            for d in svc.decisions("sgd")
            if d["trigger"] == "online" and not d["taken"] and "rollout" in d["reason"]
        ]

    wait_for(skipped, 30, every=0.2)
    assert [r["candidate_version"] for r in runs("sgd")] == [2]
