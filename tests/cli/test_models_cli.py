from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from lockgate.cli.main import app


@pytest.fixture
def files(tmp_path: Path, numeric_frame: tuple[pd.DataFrame, np.ndarray]) -> dict[str, Path]:
    X, y = numeric_frame
    model = LogisticRegression().fit(X, y)
    paths = {
        "model": tmp_path / "model.skops",
        "ref": tmp_path / "ref.parquet",
        "pkl": tmp_path / "model.pkl",
    }
    sio.dump(model, paths["model"])
    X.assign(label=y).to_parquet(paths["ref"])
    import joblib

    joblib.dump(model, paths["pkl"])
    return paths


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    r = runner.invoke(app, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


def test_register_list_show_alias_history(env: dict[str, str], files: dict[str, Path]) -> None:
    code, out, err = run(
        env,
        "models",
        "register",
        "churn",
        str(files["model"]),
        "--reference",
        str(files["ref"]),
        "--target",
        "label",
        "--metric",
        "auc=0.91",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["version"] == 1 and doc["flavor"] == "sklearn" and doc["metrics"]["auc"] == 0.91
    assert [c["name"] for c in doc["signature"]["inputs"]] == ["x1", "x2"]
    code, out, _ = run(
        env,
        "models",
        "register",
        "churn",
        str(files["model"]),
        "--reference",
        str(files["ref"]),
        "--target",
        "label",
        "--json",
    )
    assert json.loads(out)["version"] == 2
    code, out, _ = run(env, "models", "list", "--json")
    assert json.loads(out)["models"][0]["latest_version"] == 2
    assert run(env, "models", "alias", "churn", "champion", "1")[0] == 0
    code, out, _ = run(
        env, "models", "alias", "churn", "champion", "2", "--reason", "better", "--json"
    )
    assert json.loads(out)["from_version"] == 1
    code, out, _ = run(env, "models", "show", "churn@champion", "--json")
    assert json.loads(out)["version"] == 2
    code, out, _ = run(env, "models", "show", "churn", "--json")
    assert [v["version"] for v in json.loads(out)["versions"]] == [1, 2]
    code, out, _ = run(env, "models", "history", "churn", "--json")
    assert [h["action"] for h in json.loads(out)["history"]] == ["set", "move"]
    code, out, _ = run(env, "models", "show", "churn/1")
    assert code == 0 and "churn/1" in out


def test_errors_are_one_line_without_traceback(env: dict[str, str], files: dict[str, Path]) -> None:
    code, _, err = run(env, "models", "show", "ghost/1")
    assert code == 1 and err.strip() == "error: model not found: ghost"
    code, _, err = run(
        env,
        "models",
        "register",
        "churn",
        str(files["pkl"]),
        "--reference",
        str(files["ref"]),
        "--target",
        "label",
    )
    assert code == 1 and "--trust-pickle" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    code, _out, err = run(env, "models", "register", "Bad!", str(files["model"]))
    assert code == 1 and "model: expected" in err


def test_real_process_db_upgrade_and_error(env: dict[str, str], empty_database_url: str) -> None:
    env = {**env, "LOCKGATE_DATABASE_URL": empty_database_url}  # a new, empty database
    exe = [sys.executable, "-m", "lockgate.cli"]
    r = subprocess.run(
        [*exe, "db", "upgrade", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["revision"]
    r = subprocess.run(
        [*exe, "models", "show", "nope@champion"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert r.stderr.strip() == "error: model not found: nope"
