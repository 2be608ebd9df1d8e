"""The XGBoost runtime: native JSON/UBJ files, never pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lockgate.errors import InvalidInputError, ModelLoadError
from lockgate.runtimes import detect_flavor, flavor_for_object
from lockgate.runtimes.check import check_runtime
from lockgate.runtimes.xgboost import SIDECAR, XGBoostRuntime

xgb = pytest.importorskip("xgboost")
pytestmark = pytest.mark.extras


def _data(n: int = 150, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "x3": rng.normal(size=n)})
    y = ((X.x1 + X.x2 * 0.5) > 0).astype(np.int64).to_numpy()
    return X, y


def _loaded(path: Path) -> XGBoostRuntime:
    rt = XGBoostRuntime(path)
    rt.load()
    return rt


def test_check_runtime_classifier_regressor_and_multiclass() -> None:
    X, y = _data()
    check_runtime(XGBoostRuntime, xgb.XGBClassifier(n_estimators=8, max_depth=3).fit(X, y), X)
    check_runtime(XGBoostRuntime, xgb.XGBRegressor(n_estimators=8).fit(X, X.x1 * 2), X.iloc[:40])
    multi = (X.x1 > 0.5).astype(int) + (X.x2 > 0).astype(int)
    check_runtime(XGBoostRuntime, xgb.XGBClassifier(n_estimators=5).fit(X, multi), X.iloc[:40])


def test_check_runtime_raw_booster_trained_on_numpy() -> None:
    X, y = _data()
    booster = xgb.train(
        {"objective": "binary:logistic"}, xgb.DMatrix(X.to_numpy(), label=y), num_boost_round=5
    )
    sample = X.iloc[:30]
    expected = booster.predict(xgb.DMatrix(sample.to_numpy()))
    check_runtime(XGBoostRuntime, booster, sample, expected=expected)


def test_classifier_labels_probabilities_and_metadata(tmp_path: Path) -> None:
    X, y = _data()
    clf = xgb.XGBClassifier(n_estimators=8).fit(X, y)
    folder = XGBoostRuntime.save(clf, tmp_path)
    assert json.loads((folder / SIDECAR).read_text())["model_class"] == "XGBClassifier"
    assert json.loads((folder / "model.json").read_text())["learner"]
    rt = _loaded(folder)
    np.testing.assert_array_equal(rt.predict(X), clf.predict(X))
    np.testing.assert_array_equal(rt.predict_proba(X), clf.predict_proba(X))
    meta = rt.metadata()
    assert meta["model_class"] == "XGBClassifier"
    assert meta["classes"] == [0, 1]
    assert meta["objective"] == "binary:logistic"
    assert meta["feature_names"] == ["x1", "x2", "x3"]
    assert meta["xgboost"] == xgb.__version__
    assert not XGBoostRuntime.requires_trust(folder)


def test_bare_json_and_ubj_files_load_as_booster(tmp_path: Path) -> None:
    X, y = _data()
    clf = xgb.XGBClassifier(n_estimators=4).fit(X, y)
    for name in ("m.json", "m.ubj"):
        clf.save_model(tmp_path / name)
        assert XGBoostRuntime.detect(tmp_path / name)
        assert detect_flavor(tmp_path / name) == "xgboost"
        rt = _loaded(tmp_path / name)
        assert rt.model_class_ == "Booster"
        # a bare Booster returns the objective's output: the positive-class probability
        np.testing.assert_allclose(rt.predict(X), clf.predict_proba(X)[:, 1], rtol=1e-6)
        np.testing.assert_allclose(rt.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    assert flavor_for_object(clf) == "xgboost"


def test_detect_refuses_other_json_and_pickles(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"name": "not a model", "learner": 1}')
    assert not XGBoostRuntime.detect(tmp_path / "config.json")
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04")
    assert not XGBoostRuntime.detect(tmp_path / "model.pkl")


def test_sidecar_cannot_name_an_arbitrary_class(tmp_path: Path) -> None:
    X, y = _data()
    folder = XGBoostRuntime.save(xgb.XGBClassifier(n_estimators=2).fit(X, y), tmp_path)
    (folder / SIDECAR).write_text(json.dumps({"model_class": "os.system"}))
    with pytest.raises(ModelLoadError, match=r"names 'os\.system'"):
        _loaded(folder)
    (folder / SIDECAR).write_text("{not json")
    with pytest.raises(ModelLoadError, match=SIDECAR):
        _loaded(folder)


def test_corrupt_model_file_is_a_model_load_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"learner": {"oops": true}}')
    with pytest.raises(ModelLoadError, match=r"xgboost.*broken\.json"):
        _loaded(path)


def test_save_refuses_other_objects(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="xgboost"):
        XGBoostRuntime.save(object(), tmp_path)
