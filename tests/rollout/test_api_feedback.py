"""The control-plane surface on a real server: bad input is a clear 4xx that changes nothing;
A/B arms are sticky by key; feedback joins the prediction log and decides an A/B test; the
CLI commands."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from tests import loopback
from tests.rollout.live import (
    Traffic,
    register_versions,
    server_env,
    serving_weights,
    status,
    wait_for,
)
from tests.rollout.scripted import ScriptedModel
from tests.serving.conftest import RunningServer, start_server

from lockgate.client import Client


@pytest.fixture
def srv(client: Client, env: dict[str, str], tmp_path: Path) -> Iterator[RunningServer]:
    register_versions(client, ScriptedModel(), ScriptedModel(), ScriptedModel())
    s = start_server(env, tmp_path, extra_env=server_env())
    try:
        yield s
    finally:
        s.stop()


def _state(url: str, client: Client) -> tuple[int, int]:
    """Events a request could have caused, and the endpoint's generation. The controller's
    own leadership events are left out: under load its short test lease can lapse and be
    taken again at any moment, which no request causes."""
    events = loopback.get(f"{url}/api/v1/events").json()["events"]
    caused = [e for e in events if e["kind"] != "controller.leader"]
    return len(caused), client.workspace.endpoints.get("m").generation


def _post(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return loopback.post(f"{url}/api/v1{path}", json=body, timeout=30)


def test_bad_input_is_a_clear_4xx_and_changes_nothing(srv: RunningServer, client: Client) -> None:
    before = _state(srv.url, client)
    cases = [
        ({"endpoint": "m", "candidate": 2, "steps": [50, 20]}, 400, "steps"),
        ({"endpoint": "m", "candidate": 2, "steps": [5, 150]}, 400, "steps"),
        (
            {"endpoint": "m", "candidate": 2, "strategy": "ab", "ab_weights": [60, 60]},
            400,
            "ab_weights",
        ),
        (
            {"endpoint": "m", "candidate": 2, "strategy": "ab", "ab_weights": [-10, 110]},
            400,
            "ab_weights",
        ),
        ({"endpoint": "m", "candidate": 9}, 404, None),
        ({"endpoint": "nope", "candidate": 2}, 404, None),
        ({"endpoint": "m", "candidate": 2, "strategy": "bluegreen"}, 422, "strategy"),
        ({"endpoint": "m", "candidate": 2, "interval": "soon"}, 400, "interval"),
        (
            {"endpoint": "m", "candidate": 2, "analysis": {"max_error_rate": 5}},
            400,
            "max_error_rate",
        ),
    ]
    for body, code, field in cases:
        r = _post(srv.url, "/rollouts", body)
        assert r.status_code == code, (body, r.text)
        doc = r.json()
        assert doc["error"]
        if field:
            assert doc["field"] == field, doc
    r = loopback.post(f"{srv.url}/api/v1/rollouts/m/promote")
    assert r.status_code == 404 and "no rollout" in r.json()["error"]
    assert _state(srv.url, client) == before
    assert _post(srv.url, "/rollouts", {"endpoint": "m", "candidate": 2}).status_code == 201
    mid = _state(srv.url, client)
    second = _post(srv.url, "/rollouts", {"endpoint": "m", "candidate": 3})
    assert second.status_code == 409 and "already has an active rollout" in second.json()["error"]
    r = loopback.post(f"{srv.url}/api/v1/rollouts/m/resume", json={})
    assert r.status_code == 409  # not paused
    assert _state(srv.url, client) == mid
    r = loopback.post(f"{srv.url}/api/v1/rollouts/m/abort", json={"reason": "test"})
    assert r.status_code == 200 and r.json()["state"] == "aborted"
    r = loopback.post(f"{srv.url}/api/v1/rollouts/m/promote", json={})
    assert r.status_code == 409 and "aborted" in r.json()["error"]


def _predict(url: str, key: str, x: list[float]) -> tuple[str, str]:
    r = loopback.post(
        f"{url}/v1/endpoints/m/predict",
        json={"dataframe_split": {"columns": ["x1", "x2"], "data": [x]}},
        headers={"x-lockgate-key": key},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["prediction_ids"][0], r.headers["x-lockgate-version"]


def test_ab_is_sticky_and_feedback_decides_it(srv: RunningServer, client: Client) -> None:
    r = _post(
        srv.url,
        "/rollouts",
        {
            "endpoint": "m",
            "candidate": 2,
            "strategy": "ab",
            "ab_weights": [50, 50],
            "interval": "1s",
            # latency is judged loosely: this test is about stickiness and the A/B decision,
            # and a busy CI machine must not roll the healthy arm back mid-test
            "analysis": {
                "min_requests": 20,
                "metric": "revenue",
                "min_samples": 60,
                "max_latency_ratio": 10.0,
                "latency_margin_ms": 250.0,
            },
        },
    )
    assert r.status_code == 201, r.text
    wait_for(lambda: serving_weights(srv.url) == {"1": 50.0, "2": 50.0}, 10)
    # sticky: one key, one version, every time
    seen = {_predict(srv.url, "user-7", [0.1, 0.2])[1] for _ in range(15)}
    assert len(seen) == 1
    rng = np.random.default_rng(0)
    items = []
    versions = []
    for i in range(240):
        x = list(rng.normal(size=2))
        pid, version = _predict(srv.url, f"user-{i}", x)
        versions.append(version)
        revenue = rng.normal(12 if version == "2" else 10, 2)
        # both arms are the same classifier, and the labels agree with it: equally accurate
        # whatever the split of keys, so the business metric decides (noisy labels made the
        # arms' accuracies differ by chance, and a candidate that looks worse without being
        # significantly worse is held, not promoted, until more labels come: none do here)
        truth = int(x[0] + x[1] > 0)
        items.append({"id": pid, "value": truth, "metrics": {"revenue": revenue}})
    assert 0.35 < versions.count("2") / len(versions) < 0.65
    items.append({"id": "not-a-prediction-0", "value": 1})
    fb = _post(srv.url, "/feedback", {"endpoint": "m", "items": items})
    assert fb.status_code == 200, fb.text
    doc = fb.json()
    assert doc["stored"] == 240 and doc["unknown_ids"] == ["not-a-prediction-0"]
    again = _post(srv.url, "/feedback", {"endpoint": "m", "items": items[:10]}).json()
    assert again["updated"] == 10 and again["stored"] == 0
    q = loopback.get(f"{srv.url}/api/v1/endpoints/m/quality").json()["quality"]
    by_version = {row["version"]: row for row in q}
    # every prediction was served by an A/B arm: the test was not ended under it
    assert set(by_version) == {1, 2} and all(row["role"] == "arm" for row in q), (
        q,
        status(srv.url)["history"],
    )
    assert by_version[2]["metric.revenue"] > by_version[1]["metric.revenue"]
    assert sum(row["labels"] for row in q) == 240
    # live traffic goes on (unlabelled): the guards judge fresh windows while the A/B test
    # decides on the labelled predictions since the stage began
    with Traffic(srv.url, threads=2, pause=0.01):
        try:
            done = wait_for(lambda: (s := status(srv.url))["state"] == "promoted" and s, 30, 0.2)
        except AssertionError:
            raise AssertionError(str(status(srv.url)["analysis"])) from None
    ab = done["analysis"]["figures"]["ab"]
    assert ab["winner"] == "candidate" and ab["p_value"] < 0.05
    assert ab["ci"][0] > 0 and ab["baseline"]["n"] >= 60
    assert client.get_version("m@champion").version == 2


def test_feedback_bad_input(srv: RunningServer) -> None:
    big = [{"id": f"x-{i}", "value": 1} for i in range(10_001)]
    r = _post(srv.url, "/feedback", {"endpoint": "m", "items": big})
    assert r.status_code == 400 and r.json()["field"] == "items"
    r = _post(srv.url, "/feedback", {"endpoint": "m", "items": [{"id": "a-0", "value": [1]}]})
    assert r.status_code == 400 and r.json()["field"] == "items[0].value"
    r = _post(srv.url, "/feedback", {"endpoint": "m", "items": [{"id": "a-0"}]})
    assert r.status_code == 400 and r.json()["field"] == "items[0]"
    r = _post(srv.url, "/feedback", {"endpoint": "m", "items": [{"id": "a", "value": 1}] * 2})
    assert r.status_code == 400 and r.json()["field"] == "items[1].id"
    r = _post(srv.url, "/feedback", {"endpoint": "zzz", "items": [{"id": "a", "value": 1}]})
    assert r.status_code == 404


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_rollout_and_feedback(
    srv: RunningServer, client: Client, env: dict[str, str], tmp_path: Path
) -> None:
    bad = _cli(env, "rollout", "start", "m", "--candidate", "2", "--steps", "50,20")
    assert bad.returncode == 1 and "steps" in bad.stderr
    ok = _cli(
        env,
        "rollout",
        "start",
        "m",
        "--candidate",
        "2",
        "--steps",
        "10,100",
        "--interval",
        "1h",
        "--json",
    )
    assert ok.returncode == 0, ok.stderr
    assert '"state": "canary"' in ok.stdout
    shown = _cli(env, "rollout", "status", "m")
    assert shown.returncode == 0 and "canary" in shown.stdout and "history" in shown.stdout
    paused = _cli(env, "rollout", "pause", "m", "--reason", "lunch")
    assert paused.returncode == 0 and "paused" in paused.stdout
    again = _cli(env, "rollout", "pause", "m")
    assert again.returncode == 1 and "already paused" in again.stderr
    ids = [_predict(srv.url, f"k{i}", [0.5, 0.5])[0] for i in range(5)]
    csv = tmp_path / "truth.csv"
    pd.DataFrame({"id": [*ids, "missing-0"], "value": [1, 0, 1, 1, 0, 1]}).to_csv(csv, index=False)
    out = _cli(env, "feedback", "m", str(csv), "--json")
    assert out.returncode == 1, out.stderr  # an unknown id
    assert '"unknown_ids": [\n    "missing-0"\n  ]' in out.stdout and '"stored": 5' in out.stdout
    jl = tmp_path / "truth.jsonl"
    pd.DataFrame({"id": ids, "value": [1] * 5}).to_json(jl, orient="records", lines=True)
    out = _cli(env, "feedback", "m", str(jl), "--allow-unknown")
    assert out.returncode == 0 and "5 updated" in out.stdout
    aborted = _cli(env, "rollout", "abort", "m", "--json")
    assert aborted.returncode == 0 and '"state": "aborted"' in aborted.stdout
    assert status(srv.url)["state"] == "aborted"
