"""The MLflow runtime: pyfunc folders, with the pickle trust rule read from MLmodel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from lockgate.errors import ModelLoadError, UntrustedArtifactError
from lockgate.runtimes import detect_flavor
from lockgate.runtimes.check import check_runtime
from lockgate.runtimes.mlflow import MLflowRuntime, trust_reasons
from lockgate.runtimes.sklearn import SklearnRuntime
from lockgate.runtimes.trust import HOW_TO_TRUST

mlflow = pytest.importorskip("mlflow")
#: explicit requirements spare MLflow its slow inference of the environment
REQS = ["mlflow"]
pytestmark = [
    pytest.mark.extras,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _data(n: int = 120) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(9)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    return X, (X.x1 - X.x2 > 0).astype(np.int64).to_numpy()


def _loaded(path: Path, *, trusted: bool = False) -> MLflowRuntime:
    rt = MLflowRuntime(path, trusted=trusted)
    rt.load()
    return rt


def _edit(folder: Path, change: dict[str, dict[str, object]]) -> None:
    doc = yaml.safe_load((folder / "MLmodel").read_text())
    for flavor, values in change.items():
        doc["flavors"][flavor].update(values)
    (folder / "MLmodel").write_text(yaml.safe_dump(doc))


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(
        self, context: object, model_input: pd.DataFrame, params: dict[str, object] | None = None
    ) -> list[float]:
        return (model_input["x1"] * 2).tolist()


@pytest.fixture(scope="module")
def skops_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LogisticRegression]:
    X, y = _data()
    model = LogisticRegression().fit(X, y)
    folder = tmp_path_factory.mktemp("mlflow") / "sk"
    mlflow.sklearn.save_model(model, folder, serialization_format="skops", pip_requirements=REQS)
    return folder, model


def test_check_runtime_on_an_mlflow_skops_model(skops_model: tuple[Path, object]) -> None:
    folder, model = skops_model
    X, _ = _data()
    assert not MLflowRuntime.requires_trust(folder)
    check_runtime(MLflowRuntime, folder, X.iloc[:30], expected=model.predict(X.iloc[:30]))


def test_detect_claims_the_folder_and_nothing_else(skops_model: tuple[Path, object]) -> None:
    folder, _ = skops_model
    assert MLflowRuntime.detect(folder)
    assert detect_flavor(folder) == "mlflow"
    assert not SklearnRuntime.detect(folder)  # although it holds a model.skops
    assert not MLflowRuntime.detect(folder / "MLmodel")


def test_predict_proba_and_metadata(skops_model: tuple[Path, LogisticRegression]) -> None:
    folder, model = skops_model
    X, _ = _data()
    rt = _loaded(folder)
    np.testing.assert_array_equal(rt.predict(X), model.predict(X))
    np.testing.assert_array_equal(rt.predict_proba(X), model.predict_proba(X))
    meta = rt.metadata()
    assert meta["loader_module"] == "mlflow.sklearn"
    assert meta["mlflow_flavors"] == ["python_function", "sklearn"]
    assert meta["mlflow"] == MLflowRuntime.framework_versions()["mlflow"]


def test_cloudpickled_python_model_needs_trust(tmp_path: Path) -> None:
    folder = tmp_path / "py"
    mlflow.pyfunc.save_model(folder, python_model=Doubler(), pip_requirements=REQS)
    assert MLflowRuntime.requires_trust(folder)
    with pytest.raises(UntrustedArtifactError) as info:
        _loaded(folder)
    assert "cloudpickled PythonModel" in str(info.value)
    assert HOW_TO_TRUST in str(info.value)
    X, _ = _data()
    np.testing.assert_allclose(_loaded(folder, trusted=True).predict(X), X.x1 * 2)
    check_runtime(MLflowRuntime, folder, X.iloc[:10], expected=X.x1.iloc[:10] * 2, trusted=True)


def test_pickled_sklearn_model_needs_trust(tmp_path: Path) -> None:
    X, y = _data()
    model = LogisticRegression().fit(X, y)
    folder = tmp_path / "pickled"
    mlflow.sklearn.save_model(
        model, folder, serialization_format="cloudpickle", pip_requirements=REQS
    )
    assert MLflowRuntime.requires_trust(folder)
    with pytest.raises(UntrustedArtifactError, match="serialised with 'cloudpickle'"):
        _loaded(folder)
    np.testing.assert_array_equal(_loaded(folder, trusted=True).predict(X), model.predict(X))


def test_skops_trusted_types_in_mlmodel_are_checked_against_the_allow_list(
    tmp_path: Path,
) -> None:
    X, y = _data()
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    folder = tmp_path / "forest"
    mlflow.sklearn.save_model(
        forest,
        folder,
        serialization_format="skops",
        skops_trusted_types=["sklearn.tree._tree.Tree"],
        pip_requirements=REQS,
    )
    assert trust_reasons(yaml.safe_load((folder / "MLmodel").read_text())) == []
    np.testing.assert_array_equal(_loaded(folder).predict(X), forest.predict(X))
    _edit(
        folder, {"sklearn": {"skops_trusted_types": ["sklearn.tree._tree.Tree", "builtins.eval"]}}
    )
    with pytest.raises(UntrustedArtifactError, match=r"builtins\.eval"):
        _loaded(folder)


@pytest.mark.parametrize(
    ("flavor", "change", "reason"),
    [
        ("python_function", {"loader_module": "evil.loader"}, "loader_module 'evil.loader'"),
        ("python_function", {"code": "code"}, "ships code paths"),
        ("sklearn", {"pickled_model": "../../etc/passwd"}, "points outside"),
        ("python_function", {"predict_fn": "__reduce__"}, "predict_fn"),
    ],
)
def test_mlmodel_entries_that_load_code_need_trust(
    skops_model: tuple[Path, object],
    tmp_path: Path,
    flavor: str,
    change: dict[str, object],
    reason: str,
) -> None:
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(skops_model[0], folder)
    _edit(folder, {flavor: change})
    assert MLflowRuntime.requires_trust(folder)
    with pytest.raises(UntrustedArtifactError, match=reason):
        _loaded(folder)


def test_xgboost_and_onnx_mlflow_models_are_safe(tmp_path: Path) -> None:
    xgb = pytest.importorskip("xgboost")
    pytest.importorskip("onnx")
    from skl2onnx import to_onnx

    X, y = _data()
    clf = xgb.XGBClassifier(n_estimators=3).fit(X, y)
    mlflow.xgboost.save_model(clf, tmp_path / "xgb", pip_requirements=REQS)
    assert not MLflowRuntime.requires_trust(tmp_path / "xgb")
    np.testing.assert_array_equal(_loaded(tmp_path / "xgb").predict(X), clf.predict(X))
    _edit(tmp_path / "xgb", {"xgboost": {"model_class": "os.getcwd"}})
    assert MLflowRuntime.requires_trust(tmp_path / "xgb")

    lr = LogisticRegression().fit(X.to_numpy(np.float32), y)
    mlflow.onnx.save_model(
        to_onnx(lr, X.to_numpy(np.float32)[:1]), tmp_path / "onnx", pip_requirements=REQS
    )
    assert not MLflowRuntime.requires_trust(tmp_path / "onnx")


def test_broken_folders_are_model_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="MLmodel"):
        _loaded(tmp_path)
    (tmp_path / "MLmodel").write_text("flavors: [unclosed")
    assert MLflowRuntime.requires_trust(tmp_path)
    with pytest.raises(ModelLoadError, match="MLmodel"):
        _loaded(tmp_path)
    (tmp_path / "MLmodel").write_text("just a string\n")
    with pytest.raises(ModelLoadError, match="no flavors"):
        _loaded(tmp_path)


def test_missing_data_file_is_a_model_load_error(
    skops_model: tuple[Path, object], tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(skops_model[0], folder)
    (folder / "model.skops").unlink()
    with pytest.raises(ModelLoadError, match="copy"):
        _loaded(folder)


def test_cannot_save_in_memory_models() -> None:
    X, y = _data()
    assert not MLflowRuntime.can_save(LogisticRegression().fit(X, y))
