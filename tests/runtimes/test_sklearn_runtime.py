"""The scikit-learn runtime on real tiny models: skops by default, pickles only with trust."""

from __future__ import annotations

import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from lockgate.client import connect
from lockgate.errors import (
    ModelLoadError,
    PredictionError,
    RuntimeUnavailableError,
    UntrustedArtifactError,
)
from lockgate.runtimes import detect_flavor, flavor_for_object, get_runtime
from lockgate.runtimes.check import check_runtime
from lockgate.runtimes.sklearn import SklearnRuntime
from lockgate.runtimes.trust import HOW_TO_TRUST, disallowed_skops_types, skops_type_allowed


def _frame(n: int = 120, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    y = ((x1 + 0.5 * x2 + (color == "red")) > 0.5).astype(np.int64)
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color}), y


def _pipeline() -> tuple[Pipeline, pd.DataFrame]:
    X, y = _frame()
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["x1", "x2"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(X, y)
    return pipe, X


def _loaded(path: Path, *, trusted: bool = False) -> SklearnRuntime:
    rt = SklearnRuntime(path, trusted=trusted)
    rt.load()
    return rt


def double(x: np.ndarray) -> np.ndarray:
    return x * 2


class Doubler:
    """A user-defined class: not on the allow-list."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x * 2


# -- conformance over a range of estimators ----------------------------------------------------
def test_check_runtime_logistic_regression_on_numpy_features(tmp_path: Path) -> None:
    X, y = _frame()
    num = X[["x1", "x2"]]
    model = LogisticRegression().fit(num.to_numpy(), y)  # no feature_names_in_: numpy path
    check_runtime(SklearnRuntime, model, num.iloc[:25], workspace=tmp_path)
    # with a workspace, the artifacts and the registry round trip stay there to inspect
    (run,) = tmp_path.iterdir()
    assert (run / "artifact" / "model.skops").is_file()
    with connect(
        run / "registry",
        database_url=f"sqlite:///{run / 'registry' / 'lockgate.db'}",
        artifacts_url=str(run / "registry" / "artifacts"),
    ) as client:
        (info,) = client.list_models()
        assert client.get_version(f"{info.name}/1").flavor == "sklearn"


def test_check_runtime_pipeline_with_string_column() -> None:
    pipe, X = _pipeline()
    check_runtime(SklearnRuntime, pipe, X.iloc[:30])


def test_check_runtime_regressor_and_tree_models() -> None:
    X, y = _frame()
    num = X[["x1", "x2"]]
    check_runtime(SklearnRuntime, LinearRegression().fit(num, num.x1 * 3 - num.x2), num.iloc[:20])
    check_runtime(
        SklearnRuntime, RandomForestClassifier(n_estimators=5, random_state=0).fit(num, y), num
    )
    check_runtime(SklearnRuntime, HistGradientBoostingClassifier(max_iter=5).fit(num, y), num)
    check_runtime(SklearnRuntime, KNeighborsClassifier(3).fit(num, y), num.iloc[:10])


def test_check_runtime_string_labels_and_imputer_dtype() -> None:
    X, y = _frame()
    labels = np.where(y == 1, "yes", "no")
    pipe = Pipeline([("imp", SimpleImputer()), ("clf", LogisticRegression())])
    pipe.fit(X[["x1", "x2"]], labels)
    check_runtime(SklearnRuntime, pipe, X[["x1", "x2"]].iloc[:15])


def test_check_runtime_fails_loudly_for_a_broken_runtime() -> None:
    class ShuffledRuntime(SklearnRuntime):
        flavor = "sklearn-broken"

        def predict(self, data: pd.DataFrame) -> np.ndarray:
            return super().predict(data)[::-1].copy()

    pipe, X = _pipeline()
    with pytest.raises(AssertionError, match=r"\[round trip\].*rows differ"):
        check_runtime(ShuffledRuntime, pipe, X.iloc[:30])


def test_check_runtime_detects_a_runtime_that_keeps_the_model_alive() -> None:
    leaked: list[object] = []

    class LeakyRuntime(SklearnRuntime):
        def load(self) -> None:
            super().load()
            leaked.append(self.model_)

    pipe, X = _pipeline()
    with pytest.raises(AssertionError, match=r"\[unload\].*still alive"):
        check_runtime(LeakyRuntime, pipe, X.iloc[:5])


# -- behaviour ---------------------------------------------------------------------------------
def test_save_writes_skops_and_detects(tmp_path: Path) -> None:
    pipe, _ = _pipeline()
    path = SklearnRuntime.save(pipe, tmp_path)
    assert path == tmp_path / "model.skops"
    assert zipfile.is_zipfile(path)
    assert SklearnRuntime.detect(path)
    assert SklearnRuntime.detect(tmp_path)  # the folder holding model.skops
    assert detect_flavor(path) == "sklearn"
    assert flavor_for_object(pipe) == "sklearn"
    assert not SklearnRuntime.requires_trust(path)


def test_predict_proba_and_metadata(tmp_path: Path) -> None:
    pipe, X = _pipeline()
    rt = _loaded(SklearnRuntime.save(pipe, tmp_path))
    proba = rt.predict_proba(X.iloc[:7])
    assert proba is not None
    np.testing.assert_array_equal(proba, pipe.predict_proba(X.iloc[:7]))
    meta = rt.metadata()
    assert meta["flavor"] == "sklearn"
    assert meta["format"] == "skops"
    assert meta["estimator"] == "sklearn.pipeline.Pipeline"
    assert meta["classes"] == [0, 1]
    assert meta["feature_names"] == ["x1", "x2", "color"]
    assert meta["scikit-learn"] == SklearnRuntime.framework_versions()["scikit-learn"]


def test_regressor_has_no_predict_proba(tmp_path: Path) -> None:
    X, _ = _frame()
    num = X[["x1", "x2"]]
    rt = _loaded(SklearnRuntime.save(LinearRegression().fit(num, num.x1), tmp_path))
    assert rt.predict_proba(num) is None


def test_numpy_path_is_used_without_feature_names(tmp_path: Path) -> None:
    X, y = _frame()
    num = X[["x1", "x2"]]
    rt = _loaded(SklearnRuntime.save(LogisticRegression().fit(num.to_numpy(), y), tmp_path))
    assert rt.wants_frame_ is False
    # a frame with other column names still works: the model was fitted without names
    renamed = num.rename(columns={"x1": "a", "x2": "b"})
    assert rt.predict(renamed).shape == (len(num),)


def test_framework_error_during_predict_is_a_prediction_error(tmp_path: Path) -> None:
    pipe, X = _pipeline()
    rt = _loaded(SklearnRuntime.save(pipe, tmp_path))
    with pytest.raises(PredictionError, match="sklearn model failed to predict"):
        rt.predict(X.drop(columns=["color"]))


# -- trust -------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".joblib", ".pkl", ".pickle"])
def test_pickles_are_refused_without_trust(tmp_path: Path, suffix: str) -> None:
    pipe, X = _pipeline()
    path = tmp_path / f"model{suffix}"
    if suffix == ".joblib":
        joblib.dump(pipe, path)
    else:
        path.write_bytes(pickle.dumps(pipe))
    assert SklearnRuntime.detect(path)
    assert SklearnRuntime.requires_trust(path)
    rt = SklearnRuntime(path)
    with pytest.raises(UntrustedArtifactError) as info:
        rt.load()
    assert HOW_TO_TRUST in str(info.value)
    assert "--trust-pickle" in str(info.value) and "LOCKGATE_TRUST_PICKLE=1" in str(info.value)
    assert not rt.loaded
    trusted = _loaded(path, trusted=True)
    assert trusted.format_ == "joblib"
    np.testing.assert_array_equal(trusted.predict(X), pipe.predict(X))


def test_check_runtime_on_a_pickle_runtime_needs_trust() -> None:
    class JoblibRuntime(SklearnRuntime):
        flavor = "sklearn-joblib"

        @classmethod
        def save(cls, obj: object, directory: Path) -> Path:
            target = Path(directory) / "model.joblib"
            joblib.dump(obj, target)
            return target

    pipe, X = _pipeline()
    with pytest.raises(AssertionError, match=r"\[trust\].*requires trust"):
        check_runtime(JoblibRuntime, pipe, X.iloc[:10])
    check_runtime(JoblibRuntime, pipe, X.iloc[:10], trusted=True)


def test_skops_with_a_user_function_is_refused_naming_it(tmp_path: Path) -> None:
    X, y = _frame()
    num = X[["x1", "x2"]]
    pipe = Pipeline([("f", FunctionTransformer(double)), ("clf", LogisticRegression())])
    path = SklearnRuntime.save(pipe.fit(num, y), tmp_path)
    assert SklearnRuntime.requires_trust(path)
    with pytest.raises(UntrustedArtifactError) as info:
        _loaded(path)
    assert f"{__name__}.double" in str(info.value)
    assert HOW_TO_TRUST in str(info.value)


def test_skops_with_a_custom_class_is_refused_and_loads_with_trust(tmp_path: Path) -> None:
    X, y = _frame()
    pipe = Pipeline([("f", FunctionTransformer(Doubler())), ("clf", LogisticRegression())]).fit(
        X[["x1", "x2"]], y
    )
    path = SklearnRuntime.save(pipe, tmp_path)
    with pytest.raises(UntrustedArtifactError, match=rf"{__name__}\.Doubler"):
        _loaded(path)
    rt = _loaded(path, trusted=True)
    np.testing.assert_array_equal(rt.predict(X[["x1", "x2"]]), pipe.predict(X[["x1", "x2"]]))


@pytest.mark.parametrize("func", [eval, print, subprocess.call])
def test_skops_with_dangerous_callables_is_refused(tmp_path: Path, func: object) -> None:
    path = tmp_path / "model.skops"
    sio.dump(LogisticRegression(C=1.0, class_weight={"f": func}), path)  # type: ignore[dict-item]
    with pytest.raises(UntrustedArtifactError) as info:
        _loaded(path)
    name = sio.get_untrusted_types(file=path)[0]
    assert name in str(info.value)


def test_allow_list_is_precise() -> None:
    allowed = [
        "sklearn.tree._tree.Tree",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "numpy.dtype",
        "numpy.dtypes.Float64DType",
        "scipy.sparse._csr.csr_matrix",
        "scipy.sparse._coo.coo_array",
        "numpy.random.mtrand.RandomState",
    ]
    refused = [
        "builtins.eval",
        "builtins.exec",
        "posix.system",
        "os.system",
        "subprocess.Popen",
        "sklearn.utils.check_array",  # a function, not a class
        "sklearn.base.clone",
        "sklearn.does_not_exist.Thing",
        "sklearn.utils._testing.__import__",
        "sklearn..base.BaseEstimator",
        "numpy.load",
        "scipy.sparse.load_npz",
        "sklearnx.Evil",
        "tests.Doubler",
    ]
    for name in allowed:
        assert skops_type_allowed(name), name
    for name in refused:
        assert not skops_type_allowed(name), name
    assert disallowed_skops_types(["numpy.dtype", "builtins.eval", "builtins.eval"]) == [
        "builtins.eval"
    ]


def test_an_alias_of_a_foreign_class_under_sklearn_is_refused() -> None:
    # names inside sklearn that resolve to classes defined elsewhere are not trusted
    import sklearn.pipeline

    assert sklearn.pipeline.islice.__module__ == "itertools"
    for name in ("sklearn.pipeline.islice", "sklearn.pipeline.chain", "sklearn.base.defaultdict"):
        assert not skops_type_allowed(name), name


# -- corrupt or missing files ------------------------------------------------------------------
def test_corrupt_skops_file_is_a_model_load_error(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(b"PK\x03\x04 this is not really a zip")
    assert not SklearnRuntime.detect(path)
    with pytest.raises(ModelLoadError, match=r"model\.skops"):
        _loaded(path)


def test_truncated_skops_file_is_a_model_load_error(tmp_path: Path) -> None:
    pipe, _ = _pipeline()
    good = SklearnRuntime.save(pipe, tmp_path / "good")
    bad = tmp_path / "bad.skops"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match=r"bad\.skops"):
        _loaded(bad)


def test_corrupt_trusted_pickle_is_a_model_load_error(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match=r"sklearn.*model.joblib"):
        _loaded(path, trusted=True)


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        _loaded(tmp_path / "nope.skops")
    with pytest.raises(ModelLoadError, match=r"holds none of"):
        _loaded(tmp_path)
    assert not SklearnRuntime.detect(tmp_path)


def test_a_folder_with_an_mlflow_model_is_not_claimed(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "model.pkl").write_bytes(b"x")
    assert not SklearnRuntime.detect(tmp_path)


def test_a_loaded_object_without_predict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    sio.dump(StandardScaler().fit(np.ones((3, 2))), path)
    with pytest.raises(ModelLoadError, match="no predict"):
        _loaded(path)


def test_svc_trained_on_sparse_input_round_trips(tmp_path: Path) -> None:
    import scipy.sparse as sp

    X, y = _frame()
    num = X[["x1", "x2"]].to_numpy()
    model = SVC().fit(sp.csr_matrix(num), y)  # holds a csr_matrix: needs the allow-list
    assert "scipy.sparse._csr.csr_matrix" in sio.get_untrusted_types(
        file=_dump(model, tmp_path / "m.skops")
    )
    rt = _loaded(tmp_path / "m.skops")
    np.testing.assert_array_equal(rt.predict(X[["x1", "x2"]]), model.predict(num))


def _dump(model: object, path: Path) -> Path:
    sio.dump(model, path)
    return path


# -- cheap imports -----------------------------------------------------------------------------
def test_importing_runtimes_and_detecting_loads_no_framework(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from lockgate.runtimes import BUILTIN_RUNTIMES, detect_flavor, get_runtime\n"
        "for f in BUILTIN_RUNTIMES: get_runtime(f).framework_versions()\n"
        f"assert detect_flavor(Path({str(tmp_path / 'm.onnx')!r})) == 'onnx'\n"
        "heavy = ['sklearn', 'skops', 'onnxruntime', 'onnx', 'xgboost', 'lightgbm', 'torch',\n"
        "         'mlflow', 'joblib', 'scipy']\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": src})


def test_missing_framework_is_runtime_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe, _ = _pipeline()
    path = SklearnRuntime.save(pipe, tmp_path)
    monkeypatch.setitem(sys.modules, "skops.io", None)  # as if skops were not installed
    with pytest.raises(RuntimeUnavailableError, match="pip install skops"):
        _loaded(path)
    assert get_runtime("sklearn") is SklearnRuntime
