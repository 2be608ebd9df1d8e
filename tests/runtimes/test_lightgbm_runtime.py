"""The LightGBM runtime: native text models with a sidecar for classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lockgate.errors import ModelLoadError
from lockgate.runtimes import detect_flavor, flavor_for_object
from lockgate.runtimes.check import check_runtime
from lockgate.runtimes.lightgbm import SIDECAR, LightGBMRuntime

lgb = pytest.importorskip("lightgbm")
pytestmark = pytest.mark.extras


def _data(n: int = 200, seed: int = 5) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    y = np.where(X.x1 + 0.3 * X.x2 > 0, "yes", "no")
    return X, y


def _loaded(path: Path) -> LightGBMRuntime:
    rt = LightGBMRuntime(path)
    rt.load()
    return rt


def test_check_runtime_classifier_with_string_labels_and_regressor() -> None:
    X, y = _data()
    clf = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y)
    check_runtime(LightGBMRuntime, clf, X.iloc[:50])
    reg = lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(X, X.x1 * 2 - X.x2)
    check_runtime(LightGBMRuntime, reg, X.iloc[:50])


def test_check_runtime_multiclass_with_integer_labels() -> None:
    X, _ = _data()
    y = np.digitize(X.x1, [-0.5, 0.5]) * 10  # classes 0, 10, 20
    clf = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y)
    check_runtime(LightGBMRuntime, clf, X.iloc[:60])


def test_labels_map_back_to_original_classes(tmp_path: Path) -> None:
    X, y = _data()
    clf = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y)
    folder = LightGBMRuntime.save(clf, tmp_path)
    meta = json.loads((folder / SIDECAR).read_text())
    assert meta["kind"] == "classifier" and meta["classes"] == ["no", "yes"]
    assert (folder / "model.txt").read_text().startswith("tree\n")
    rt = _loaded(folder)
    assert set(rt.predict(X)) == {"no", "yes"}
    np.testing.assert_array_equal(rt.predict(X), clf.predict(X))
    np.testing.assert_allclose(rt.predict_proba(X), clf.predict_proba(X))
    info = rt.metadata()
    assert info["classes"] == ["no", "yes"] and info["feature_names"] == ["x1", "x2"]
    assert info["lightgbm"] == lgb.__version__
    assert flavor_for_object(clf) == "lightgbm"
    assert not LightGBMRuntime.requires_trust(folder)


def test_bare_text_model_loads_as_booster(tmp_path: Path) -> None:
    X, y = _data()
    clf = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
    path = tmp_path / "model.txt"
    clf.booster_.save_model(str(path))
    assert LightGBMRuntime.detect(path) and detect_flavor(path) == "lightgbm"
    rt = _loaded(path)
    np.testing.assert_allclose(rt.predict(X), clf.predict_proba(X)[:, 1])
    assert rt.predict_proba(X) is None


def test_unfitted_estimator_cannot_be_saved() -> None:
    assert not LightGBMRuntime.can_save(lgb.LGBMClassifier())
    assert not LightGBMRuntime.detect(Path("/nonexistent/model.txt"))


def test_other_text_files_are_not_claimed(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("trees are nice\n")
    assert not LightGBMRuntime.detect(tmp_path / "notes.txt")


def test_corrupt_model_and_bad_sidecar_are_model_load_errors(tmp_path: Path) -> None:
    path = tmp_path / "model.txt"
    path.write_text("tree\nversion=v4\nthis is not a model\n")
    with pytest.raises(ModelLoadError, match=r"lightgbm.*model\.txt"):
        _loaded(path)
    X, y = _data()
    folder = LightGBMRuntime.save(
        lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(X, y), tmp_path / "ok"
    )
    (folder / SIDECAR).write_text(json.dumps({"kind": "classifier"}))
    with pytest.raises(ModelLoadError, match="lists no classes"):
        _loaded(folder)
    (folder / SIDECAR).write_text(json.dumps({"kind": "eval"}))
    with pytest.raises(ModelLoadError, match="expected one of"):
        _loaded(folder)
