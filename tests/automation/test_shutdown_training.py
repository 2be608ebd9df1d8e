"""A real `lockgate server` gets SIGTERM while a pipeline's training child runs: the child (and
the process it started in its group) is terminated, or killed after the grace period when it
ignores SIGTERM; the run is recorded ``cancelled`` with the reason; the server exits 0 within
its graceful timeout and no training process outlives it. Ctrl-C on `lockgate pipeline run`
does the same for its child."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import select
from tests import loopback
from tests.rollout.live import wait_for
from tests.serving.conftest import start_server

from lockgate.automation.pipelines import PipelineSpec, PipelineStore
from lockgate.automation.runner import KILL_GRACE
from lockgate.automation.service import AutomationService
from lockgate.client import Client
from lockgate.store.schema import EventRow

HERE = Path(__file__).resolve().parent
#: uvicorn's timeout_graceful_shutdown in lockgate.server.run
GRACEFUL_TIMEOUT = 30.0


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _serve_and_label(url: str, n: int) -> None:
    rng = np.random.default_rng(5)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    y = (X["x1"] > 0).astype(int).tolist()
    with loopback.client(base_url=url, timeout=30) as http:
        r = http.post("/v1/endpoints/m/predict", json={"dataframe_records": X.to_dict("records")})
        assert r.status_code == 200, r.text
        items = [{"id": p, "value": v} for p, v in zip(r.json()["prediction_ids"], y, strict=True)]

        def accepted() -> bool:
            f = http.post("/api/v1/feedback", json={"endpoint": "m", "items": items})
            assert f.status_code == 200, f.text
            return bool(f.json()["unknown"] == 0)

        wait_for(accepted, 30, every=0.2)


@pytest.mark.parametrize("ignore_term", [False, True], ids=["terminated", "killed"])
def test_sigterm_stops_the_training_child_and_records_the_run_cancelled(
    client: Client, env: dict[str, str], tmp_path: Path, ignore_term: bool
) -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x1": rng.normal(size=200), "x2": rng.normal(size=200)})
    y = (X["x1"] > 0).astype(int)
    client.register_model("m", LogisticRegression().fit(X, y), reference=X.assign(label=y),
                          target="label")  # fmt: skip
    client.workspace.endpoints.deploy("m", version=1)
    PipelineStore(client.workspace).set(
        PipelineSpec(model="m", entry=f"{HERE / 'sleepy_train.py'}:train", target="label",
                     strategy="none", min_rows=10, timeout=600.0)
    )  # fmt: skip
    pids_file = tmp_path / "pids.json"
    extra = {
        "LOCKGATE_CONTROLLER_INTERVAL": "0.2",
        "LOCKGATE_LOG_FLUSH_INTERVAL": "0.2",
        "SLEEPY_TRAIN_PIDS": str(pids_file),
        "SLEEPY_TRAIN_IGNORE_TERM": "1" if ignore_term else "0",
    }
    srv = start_server(env, tmp_path, extra_env=extra)
    pids: dict[str, int] = {}
    try:
        _serve_and_label(srv.url, 30)
        r = loopback.post(f"{srv.url}/api/v1/pipelines/m/runs", timeout=30)
        assert r.status_code == 202, r.text
        run_id = r.json()["run"]
        try:
            wait_for(pids_file.exists, 60, every=0.1)
        except AssertionError:
            pytest.fail(f"the training never started:\n{srv.log()[-3000:]}")
        pids = json.loads(pids_file.read_text())
        assert _alive(pids["child"]) and _alive(pids["grandchild"])

        t0 = time.monotonic()
        code = srv.stop(signal.SIGTERM, timeout=GRACEFUL_TIMEOUT + 30)
        elapsed = time.monotonic() - t0
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    assert code == 0, srv.log()[-3000:]
    assert elapsed < GRACEFUL_TIMEOUT, elapsed
    if ignore_term:
        assert elapsed >= KILL_GRACE - 0.5, elapsed  # it waited the grace period first
    # no orphan: the training child and the process it started are gone
    wait_for(lambda: not _alive(pids["child"]) and not _alive(pids["grandchild"]), 10)

    run = AutomationService(client.workspace).runner.runs("m")[0]
    assert run["run"] == run_id and run["status"] == "cancelled", run
    assert run["finished_at"] is not None
    how = "killed (SIGKILL after 5 s of SIGTERM)" if ignore_term else "terminated (SIGTERM)"
    expected = f"the server shut down during training: the training process (pid {pids['child']}) was {how}"  # noqa: E501
    assert run["error"] == expected
    assert run["candidate_version"] is None
    assert [v.version for v in client.workspace.registry.list_versions("m")] == [1]
    with client.workspace.db.read() as s:
        finished = s.execute(
            select(EventRow).where(EventRow.kind == "pipeline.finished")
        ).scalar_one()
    assert finished.payload["run"] == run_id and finished.payload["status"] == "cancelled"
    assert finished.payload["error"] == expected
    assert not list((client.workspace.cache_dir / "pipelines").iterdir())  # job folder removed


def test_ctrl_c_on_pipeline_run_takes_the_training_child_down(
    client: Client, env: dict[str, str], tmp_path: Path
) -> None:
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"x1": rng.normal(size=100), "x2": rng.normal(size=100)})
    y = (X["x1"] > 0).astype(int)
    client.register_model("m", LogisticRegression().fit(X, y), reference=X.assign(label=y),
                          target="label")  # fmt: skip
    PipelineStore(client.workspace).set(
        PipelineSpec(model="m", entry=f"{HERE / 'sleepy_train.py'}:train", target="label",
                     strategy="none", min_rows=10, timeout=600.0)
    )  # fmt: skip
    data = tmp_path / "train.parquet"
    X.assign(label=y).to_parquet(data)
    pids_file = tmp_path / "pids.json"
    cli = subprocess.Popen(
        [sys.executable, "-m", "lockgate.cli", "pipeline", "run", "m", "--data", str(data),
         "--json"],
        # PYTHONFAULTHANDLER: a SIGABRT makes it print every thread's stack (see below)
        env={**env, "SLEEPY_TRAIN_PIDS": str(pids_file), "PYTHONFAULTHANDLER": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        try:
            wait_for(pids_file.exists, 60, every=0.1)
        except AssertionError:
            cli.kill()
            pytest.fail(f"the training never started: {cli.communicate()}")
        pids = json.loads(pids_file.read_text())
        cli.send_signal(signal.SIGINT)
        try:
            _, err = cli.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # say where it is stuck, not only that it is
            cli.send_signal(signal.SIGABRT)
            _, err = cli.communicate(timeout=30)
            pytest.fail(f"`lockgate pipeline run` still running 60 s after Ctrl-C:\n{err[-8000:]}")
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode != 0
    wait_for(lambda: not _alive(pids["child"]) and not _alive(pids["grandchild"]), 10)
    run = AutomationService(client.workspace).runner.runs("m")[0]
    assert run["status"] == "cancelled", (run, err[-2000:])
    assert run["error"] == "interrupted (KeyboardInterrupt); the training was stopped"
