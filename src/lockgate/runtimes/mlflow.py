"""The MLflow runtime (flavor ``mlflow``, extra ``lockgate[mlflow]``): an MLflow model folder
(one with an ``MLmodel`` file), loaded with ``mlflow.pyfunc.load_model``.

MLflow models often unpickle, and the ``MLmodel`` file itself names modules and classes that
MLflow imports. So :meth:`MLflowRuntime.requires_trust` is False only when the ``MLmodel``
describes one of these, with nothing else that loads code (no ``code`` paths, paths inside the
folder):

* ``mlflow.sklearn`` with ``serialization_format: skops`` whose ``skops_trusted_types`` all
  pass Lockgate's skops allow-list (:mod:`lockgate.runtimes.trust`);
* ``mlflow.onnx``;
* ``mlflow.xgboost`` in a native format (json, ubj, xgb) of a known XGBoost class;
* ``mlflow.lightgbm`` holding a native ``lightgbm.basic.Booster``.

Everything else (``python_model`` cloudpickles, pickled sklearn or torch models, unknown
loader modules) loads only with explicit trust.

``predict`` returns the pyfunc output as an array (a one-column frame flattened);
``predict_proba`` asks the raw model (``get_raw_model()``) when it has ``predict_proba``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lockgate.errors import ModelLoadError
from lockgate.runtimes._util import MLMODEL, import_framework, load_error, predicting
from lockgate.runtimes.base import Runtime
from lockgate.runtimes.trust import disallowed_skops_types, untrusted_error

_XGB_CLASSES = {
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
    "xgboost.sklearn.XGBRanker",
    "xgboost.sklearn.XGBRFClassifier",
    "xgboost.sklearn.XGBRFRegressor",
}
_PREDICT_FNS = {None, "predict", "predict_proba", "predict_log_proba"}
_PATH_KEYS = ("data", "model_path", "pickled_model", "python_model")


def read_mlmodel(folder: Path) -> dict[str, Any]:
    """The parsed ``MLmodel`` file of ``folder``; ModelLoadError naming it when unreadable."""
    yaml = import_framework("yaml", "mlflow", "pyyaml")
    file = folder / MLMODEL
    try:
        doc = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise load_error("mlflow", file, exc) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("flavors"), dict):
        raise ModelLoadError(
            f"cannot load mlflow model from {str(folder)!r}: MLmodel has no flavors mapping",
            flavor="mlflow",
            path=str(folder),
        )
    return doc


def _inside(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    p = PurePosixPath(value.replace("\\", "/"))
    return not p.is_absolute() and ".." not in p.parts and ":" not in value


def trust_reasons(doc: dict[str, Any]) -> list[str]:
    """Why loading the MLflow model described by ``doc`` could run code (empty: it cannot)."""
    flavors: dict[str, Any] = doc["flavors"]
    pyfunc = flavors.get("python_function")
    if not isinstance(pyfunc, dict):
        return ["it has no python_function flavor"]
    reasons: list[str] = []
    for name, conf in flavors.items():
        if not isinstance(conf, dict):
            reasons.append(f"flavor {name!r} is not a mapping")
            continue
        if conf.get("code"):
            reasons.append(f"flavor {name!r} ships code paths ({conf['code']!r})")
        reasons += [
            f"flavor {name!r} {key} {conf[key]!r} points outside the model folder"
            for key in _PATH_KEYS
            if key in conf and not _inside(conf[key])
        ]
    loader = pyfunc.get("loader_module")
    if "python_model" in pyfunc or "cloudpickle_version" in pyfunc:
        reasons.append("its python_function model is a cloudpickled PythonModel")
    if loader == "mlflow.sklearn":
        reasons += _sklearn_reasons(flavors.get("sklearn"), pyfunc)
    elif loader == "mlflow.onnx":
        if not isinstance(flavors.get("onnx"), dict):
            reasons.append("it has no onnx flavor")
    elif loader == "mlflow.xgboost":
        conf = flavors.get("xgboost") or {}
        if conf.get("model_format") not in ("json", "ubj", "xgb"):
            reasons.append(f"its xgboost model_format is {conf.get('model_format')!r}")
        if conf.get("model_class", "xgboost.core.Booster") not in _XGB_CLASSES:
            reasons.append(f"its xgboost model_class is {conf.get('model_class')!r}")
    elif loader == "mlflow.lightgbm":
        conf = flavors.get("lightgbm") or {}
        if conf.get("model_class") != "lightgbm.basic.Booster":
            reasons.append(f"its lightgbm model_class {conf.get('model_class')!r} is serialised")
    else:
        reasons.append(f"its loader_module {loader!r} may unpickle")
    return reasons


def _sklearn_reasons(conf: Any, pyfunc: dict[str, Any]) -> list[str]:
    if not isinstance(conf, dict):
        return ["it has no sklearn flavor"]
    fmt = conf.get("serialization_format")
    if fmt != "skops":
        return [f"its sklearn model is serialised with {fmt!r}"]
    reasons = []
    refused = disallowed_skops_types(conf.get("skops_trusted_types") or [])
    if refused:
        reasons.append(f"its MLmodel trusts skops types outside the allow-list: {refused}")
    if pyfunc.get("predict_fn") not in _PREDICT_FNS:
        reasons.append(f"its predict_fn is {pyfunc.get('predict_fn')!r}")
    return reasons


class MLflowRuntime(Runtime):
    flavor: ClassVar[str] = "mlflow"
    requires: ClassVar[tuple[str, ...]] = ("mlflow",)

    def load(self) -> None:
        if not (self.path / MLMODEL).is_file():
            raise ModelLoadError(
                f"cannot load mlflow model: {str(self.path)!r} is not a folder with an MLmodel "
                "file",
                flavor=self.flavor,
                path=str(self.path),
            )
        doc = read_mlmodel(self.path)
        reasons = trust_reasons(doc)
        if reasons and not self.trusted:
            raise untrusted_error(self.path, self.flavor, "; ".join(reasons))
        pyfunc = import_framework("mlflow.pyfunc", self.flavor)
        try:
            model = pyfunc.load_model(str(self.path))
        except Exception as exc:
            raise load_error(self.flavor, self.path, exc) from exc
        self.loader_ = str(doc["flavors"]["python_function"].get("loader_module"))
        self.model_ = model

    def unload(self) -> None:
        for attr in ("model_", "loader_"):
            self.__dict__.pop(attr, None)

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        model = self._require_loaded()
        with predicting(self.flavor):
            out = model.predict(data)
            if isinstance(out, pd.DataFrame):
                arr: np.ndarray = out.to_numpy()
                return arr.reshape(-1) if arr.shape[1] == 1 else arr
            return np.asarray(out)

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray | None:
        model = self._require_loaded()
        try:
            raw = model.get_raw_model()
        except Exception:
            return None
        if not callable(getattr(raw, "predict_proba", None)):
            return None
        with predicting(self.flavor):
            return np.asarray(raw.predict_proba(data))

    def metadata(self) -> dict[str, Any]:
        out = super().metadata()
        out.update(self.framework_versions())
        if self.loaded:
            out["loader_module"] = self.loader_
            out["mlflow_flavors"] = sorted(read_mlmodel(self.path)["flavors"])
        return out

    @classmethod
    def framework_versions(cls) -> dict[str, str]:
        from importlib import metadata

        for dist in ("mlflow", "mlflow-skinny"):
            try:
                return {"mlflow": metadata.version(dist)}
            except metadata.PackageNotFoundError:
                continue
        return {}

    # -- registration-time capabilities ---------------------------------------------------
    @classmethod
    def detect(cls, path: Path) -> bool:
        path = Path(path)
        return path.is_dir() and (path / MLMODEL).is_file()

    @classmethod
    def requires_trust(cls, path: Path) -> bool:
        path = Path(path)
        try:
            return bool(trust_reasons(read_mlmodel(path)))
        except ModelLoadError:
            return True
