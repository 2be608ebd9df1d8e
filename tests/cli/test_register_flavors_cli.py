"""Each flavor registers through the CLI from a model file and predicts exactly what the
original model predicts when loaded through the SDK."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lockgate.cli.main import app
from lockgate.client import connect


def _data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(200, 4)).astype(np.float32), columns=["a", "b", "c", "d"])
    y = (X["a"] + X["b"] * 0.5 - X["c"] > 0).astype(np.int64).to_numpy()
    return X, y


def _sklearn(tmp: Path, X: pd.DataFrame, y: np.ndarray) -> tuple[Path, np.ndarray]:
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    m = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    sio.dump(m, tmp / "model.skops")
    return tmp / "model.skops", m.predict(X)


def _onnx(tmp: Path, X: pd.DataFrame, y: np.ndarray) -> tuple[Path, np.ndarray]:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression().fit(X.to_numpy(), y)
    onx = to_onnx(m, X.to_numpy()[:1], options={id(m): {"zipmap": False}})
    (tmp / "model.onnx").write_bytes(onx.SerializeToString())
    return tmp / "model.onnx", m.predict(X.to_numpy())


def _xgboost(tmp: Path, X: pd.DataFrame, y: np.ndarray) -> tuple[Path, np.ndarray]:
    xgb = pytest.importorskip("xgboost")
    m = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
    m.save_model(tmp / "model.json")
    booster = xgb.Booster()
    booster.load_model(tmp / "model.json")
    return tmp / "model.json", booster.predict(xgb.DMatrix(X))


def _lightgbm(tmp: Path, X: pd.DataFrame, y: np.ndarray) -> tuple[Path, np.ndarray]:
    lgb = pytest.importorskip("lightgbm")
    m = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, y.astype(float))
    m.booster_.save_model(str(tmp / "model.txt"))
    return tmp / "model.txt", m.predict(X)


def _torch(tmp: Path, X: pd.DataFrame, y: np.ndarray) -> tuple[Path, np.ndarray]:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript deprecation notice
        scripted = torch.jit.script(net)
    scripted.save(str(tmp / "model.pt"))
    with torch.no_grad():
        expected = scripted(torch.from_numpy(X.to_numpy().copy())).numpy()
    return tmp / "model.pt", expected


CASES: dict[str, tuple[Callable[..., tuple[Path, np.ndarray]], str, bool]] = {
    "sklearn": (_sklearn, "sklearn", False),
    "onnx": (_onnx, "onnx", False),
    "xgboost": (_xgboost, "xgboost", True),
    "lightgbm": (_lightgbm, "lightgbm", True),
    "torch": (_torch, "torch", True),
}


@pytest.mark.parametrize(
    "case",
    [pytest.param(k, marks=pytest.mark.extras) if v[2] else k for k, v in CASES.items()],
)
def test_register_via_cli_predicts_like_original(
    case: str, tmp_path: Path, env: dict[str, str], home: Path, database_url: str
) -> None:
    build, flavor, _ = CASES[case]
    X, y = _data()
    path, expected = build(tmp_path, X, y)
    ref = tmp_path / "ref.parquet"
    X.to_parquet(ref)
    r = CliRunner().invoke(
        app,
        ["models", "register", f"m-{case}", str(path), "--reference", str(ref), "--json"],
        env=env,
    )
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["flavor"] == flavor and doc["version"] == 1
    with connect(home, database_url=database_url) as c, c.load(f"m-{case}/1") as m:
        got = m.predict(X)
    np.testing.assert_allclose(
        np.asarray(got).reshape(-1), np.asarray(expected).reshape(-1), rtol=1e-5, atol=1e-6
    )
