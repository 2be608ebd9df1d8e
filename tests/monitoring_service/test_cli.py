"""``lockgate drift``, ``lockgate quality`` and ``lockgate monitors`` on a real workspace and a
real prediction log (records written at the real time, as a server would)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.alerts.receiver import receiver
from tests.monitoring_service.conftest import ENDPOINT, SECRET, fit, reference_frame
from typer.testing import CliRunner

from lockgate.cli.main import app
from lockgate.client import Client
from lockgate.feedback import FeedbackService
from lockgate.monitoring.alerts import SIGNATURE_HEADER, verify
from lockgate.store.predlog import LogBatch, PredictionLog

COLUMN_KEYS = {"column", "test", "statistic", "p_value", "significant", "material"}


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **env})
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def served(client: Client, home: Path) -> tuple[Client, list[str], pd.DataFrame]:
    """``credit`` v1 deployed, 400 drifted predictions logged a second ago."""
    ref = reference_frame()
    client.register_model(ENDPOINT, fit(ref), sample=ref.head(20), reference=ref)
    client.workspace.endpoints.deploy(ENDPOINT, version=1)
    frame = reference_frame(400, 99)
    frame["x1"] += 2.5
    y = (frame["x1"] + frame["x2"] > 0).astype(np.int64).to_numpy()
    log = PredictionLog(home / "predictions", compact_interval=None)
    batch = LogBatch(
        request_id=uuid.uuid4().hex, endpoint=ENDPOINT, model=ENDPOINT, version=1,
        role="primary", ts=time.time() - 1, inputs={c: frame[c].to_numpy() for c in frame},
        outputs=y, latency_ms=2.0, status=200, n_rows=len(frame),
    )  # fmt: skip
    log.submit_nowait(batch)
    log.close()
    return client, batch.row_ids(), frame.assign(y=y)


def test_drift_between_two_files(env: dict[str, str], tmp_path: Path) -> None:
    ref = reference_frame(3000, 1).assign(score=lambda d: d["x1"] > 0)
    cur = reference_frame(2000, 2)
    cur["x2"] = cur["x2"] * 1.6
    cur = cur.assign(score=cur["x1"] > 0)
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    args = ["drift", "--reference", str(tmp_path / "ref.parquet"), "--current"]
    code, out, err = run(env, *args, str(tmp_path / "cur.csv"), "--output-column", "score",
                         "--json", "--html", str(tmp_path / "r.html"))  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert {c["column"] for c in doc["columns"]} == {"x1", "x2", "color", "score"}
    for c in doc["columns"]:
        assert set(c) >= COLUMN_KEYS
    by = {c["column"]: c for c in doc["columns"]}
    assert by["x2"]["significant"] and by["x2"]["material"] and by["x2"]["test"] == "ks"
    assert not by["x1"]["material"] and by["color"]["test"] == "chi2"
    assert by["score"]["role"] == "output"
    assert doc["drifted_columns"] == ["x2"] and doc["html"].endswith("r.html")
    page = (tmp_path / "r.html").read_text()
    assert page.count("<svg") == 4 and "x2" in page

    code, out, _ = run(env, *args, str(tmp_path / "cur.csv"))
    assert code == 0 and "x2" in out and "drift" in out and "verdict" in out
    code, _, _ = run(env, *args, str(tmp_path / "cur.csv"), "--fail-on-drift")
    assert code == 0  # one of three features drifted: below the data set's share
    code, _, _ = run(env, *args, str(tmp_path / "cur.csv"), "--column", "x2", "--fail-on-drift")
    assert code == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reference", "a.parquet"], "both files"),
        (["credit", "--reference", "a.csv", "--current", "b.csv"], "not both"),
        ([], "an endpoint"),
        (["--reference", "a.txt", "--current", "b.csv"], ".parquet or .csv"),
        (["--reference", "missing.csv", "--current", "b.csv"], "an existing file"),
    ],
)
def test_drift_arguments_are_checked(
    env: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    pd.DataFrame({"a": [1.0]}).to_csv(tmp_path / "b.csv", index=False)
    env = {**env}
    args = [str(tmp_path / a) if a.endswith((".csv", ".parquet", ".txt")) else a for a in args]
    code, _, err = run(env, "drift", *args)
    assert code == 1 and message in err, err


def test_drift_and_quality_of_an_endpoint(
    env: dict[str, str], served: tuple[Client, list[str], pd.DataFrame], tmp_path: Path
) -> None:
    client, ids, frame = served
    html = tmp_path / "endpoint.html"
    code, out, err = run(env, "drift", ENDPOINT, "--window", "1h", "--json", "--html", str(html))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["endpoint"] == ENDPOINT and doc["version"] == 1 and doc["n_current"] == 400
    assert doc["drifted_columns"] == ["x1"]
    assert all(set(c) >= COLUMN_KEYS for c in doc["columns"])
    assert "profile of credit/1" in html.read_text()
    code, out, _ = run(env, "drift", ENDPOINT, "--since", "30m")
    assert code == 0 and "credit v1" in out and "x1" in out
    code, _, err = run(env, "drift", ENDPOINT, "--version", "7")
    assert code == 1 and "not found" in err
    code, _, err = run(env, "drift", ENDPOINT, "--window", "forever")
    assert code == 1 and "--window" in err

    code, out, _ = run(env, "quality", ENDPOINT, "--json")
    assert code == 0 and json.loads(out)["versions"] == []  # no feedback yet
    truth = np.where(np.arange(400) % 4 == 0, 1 - frame["y"], frame["y"])  # 75% right
    items = [{"id": i, "value": int(t)} for i, t in zip(ids, truth, strict=True)]
    assert FeedbackService(client.workspace).send(ENDPOINT, items).unknown_ids == []
    code, out, err = run(env, "quality", ENDPOINT, "--window", "1h", "--json")
    assert code == 0, err
    (vq,) = json.loads(out)["versions"]
    assert vq["version"] == 1 and vq["role"] == "primary" and vq["n"] == 400
    assert vq["metrics"]["accuracy"]["value"] == pytest.approx(0.75)
    assert vq["metrics"]["accuracy"]["method"] == "wilson"
    code, out, _ = run(env, "quality", ENDPOINT)
    assert code == 0 and "accuracy" in out and "0.75" in out and "wilson" in out


def test_monitors_commands(
    env: dict[str, str], served: tuple[Client, list[str], pd.DataFrame], tmp_path: Path
) -> None:
    with receiver() as rec:
        env = {**env, "HOOK_SECRET": SECRET}
        code, out, err = run(
            env, "monitors", "add", "credit-drift", "--endpoint", ENDPOINT, "--kind", "drift",
            "--threshold", "0.3", "--window", "1h", "--webhook", rec.url,
            "--webhook-secret-env", "HOOK_SECRET", "--json",
        )  # fmt: skip
        assert code == 0, err
        doc = json.loads(out)
        assert doc["state"] == "unknown" and doc["webhooks"] == [{"url": rec.url, "secret": "set"}]
        assert SECRET not in out
        code, _, err = run(env, "monitors", "add", "credit-drift", "--endpoint", ENDPOINT,
                           "--kind", "drift")  # fmt: skip
        assert code == 1 and "--replace" in err
        code, _, err = run(
            env,
            "monitors",
            "add",
            "bad",
            "--endpoint",
            ENDPOINT,
            "--kind",
            "latency",
            "--threshold",
            "50",
            "--webhook",
            "ftp://127.0.0.1/x",
        )
        assert code == 1 and "http" in err

        code, out, err = run(env, "monitors", "check", "--json")
        assert code == 0, err
        (alert,) = json.loads(out)["alerts"]
        assert alert["status"] == "firing" and alert["monitor"] == "credit-drift"
        (got,) = rec.wait_for(1)
        assert verify(got.body, SECRET, got.headers[SIGNATURE_HEADER])
        code, out, _ = run(env, "monitors", "check", "credit-drift", "--json")
        assert json.loads(out)["alerts"] == []  # still firing: no second alert

    code, out, _ = run(env, "monitors", "list")
    assert code == 0 and "credit-drift" in out and "firing" in out
    code, out, _ = run(env, "monitors", "alerts", "--json")
    (a,) = json.loads(out)["alerts"]
    assert a["delivery"]["delivery"] == "delivered"
    code, out, _ = run(env, "monitors", "show", "credit-drift", "--json")
    assert json.loads(out)["measurement"]["detail"]["drifted_columns"] == ["x1"]

    (tmp_path / "monitors.toml").write_text(
        """
[[monitor]]
name = "credit-errors"
endpoint = "credit"
kind = "error_rate"
threshold = 0.02
interval = "30s"

[[monitor]]
name = "credit-accuracy"
endpoint = "credit"
kind = "quality"
metric = "accuracy"
threshold = 0.9
webhooks = [{url = "http://127.0.0.1:9/hook", secret_env = "HOOK_SECRET"}]
"""
    )
    code, out, err = run(env, "monitors", "apply", str(tmp_path / "monitors.toml"), "--json")
    assert code == 0, err
    assert [m["name"] for m in json.loads(out)["monitors"]] == ["credit-errors", "credit-accuracy"]
    code, out, _ = run(env, "monitors", "list", "--endpoint", ENDPOINT, "--json")
    assert len(json.loads(out)["monitors"]) == 3
    code, out, _ = run(env, "monitors", "remove", "credit-errors", "--reason", "noisy")
    assert code == 0 and "removed" in out
    code, _, err = run(env, "monitors", "remove", "credit-errors")
    assert code == 1 and "not found" in err
