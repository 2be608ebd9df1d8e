"""The /api/v1 automation routes: pipelines, runs, policies, decisions; errors are 4xx that
name the field."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from lockgate.automation.context import TrainingContext
from lockgate.client import Client
from lockgate.datasets import CREDIT_FEATURES, CREDIT_TARGET, credit
from lockgate.quickstart_pipeline import train
from lockgate.web.api import create_api


def test_pipelines_policies_runs_and_decisions_over_rest(client: Client) -> None:
    data = credit(500, seed=1)
    model, _ = train(data, TrainingContext("credit", CREDIT_TARGET, tuple(CREDIT_FEATURES)))
    client.register_model("credit", model, reference=data, target=CREDIT_TARGET)
    client.workspace.endpoints.deploy("credit", version=1)
    http = TestClient(create_api(client.workspace))

    r = http.put(
        "/api/v1/pipelines/credit",
        json={"entry": "lockgate.quickstart_pipeline:train", "target": "default", "reason": "t"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "credit" and r.json()["strategy"] == "shadow-then-canary"
    assert [p["model"] for p in http.get("/api/v1/pipelines").json()["pipelines"]] == ["credit"]
    bad = http.put("/api/v1/pipelines/credit", json={"entry": "../x.py"})
    assert bad.status_code == 400 and bad.json()["field"] == "entry"
    other = http.put("/api/v1/pipelines/credit", json={"model": "x", "entry": "a.b:c"})
    assert other.status_code == 400
    assert http.get("/api/v1/pipelines/nope").status_code == 404

    r = http.post("/api/v1/pipelines/credit/runs")
    assert r.status_code == 202, r.text
    run_id = r.json()["run"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = http.get("/api/v1/pipeline-runs", params={"model": "credit"}).json()["runs"]
        if runs[0]["status"] != "running":
            break
        time.sleep(0.1)
    assert runs[0]["run"] == run_id and runs[0]["status"] == "failed"
    assert "labelled rows" in runs[0]["error"]

    r = http.put("/api/v1/automation/policies/credit", json={"cooldown": 60, "schedule": "@daily"})
    assert r.status_code == 200, r.text
    assert http.get("/api/v1/automation/policies/credit").json()["cooldown"] == 60.0
    bad = http.put("/api/v1/automation/policies/credit", json={"on_slo": "retrain"})
    assert bad.status_code == 400 and bad.json()["field"] == "on_slo"
    assert http.put("/api/v1/automation/policies/ghost", json={}).status_code == 404
    assert http.get("/api/v1/automation/decisions").json() == {"decisions": []}
    assert http.delete("/api/v1/automation/policies/credit").status_code == 200
    assert http.get("/api/v1/automation/policies").json() == {"policies": []}
    assert http.delete("/api/v1/pipelines/credit").status_code == 200
