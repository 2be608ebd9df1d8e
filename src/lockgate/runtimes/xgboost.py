"""The XGBoost runtime (flavor ``xgboost``, extra ``lockgate[xgboost]``). Never unpickles.

Artifacts are XGBoost's native model files: JSON (``.json`` whose top-level key is
``learner``) or UBJSON (``.ubj``), either bare or in a folder written by
:meth:`XGBoostRuntime.save`::

    model/
      model.json              Booster.save_model / XGBModel.save_model
      lockgate-xgboost.json   {"model_class": "XGBClassifier", ...}

The sidecar names the scikit-learn wrapper class to load into (``XGBClassifier``,
``XGBRegressor``, ``XGBRanker``, ``XGBRFClassifier``, ``XGBRFRegressor``; only these), so a
classifier's ``predict`` returns labels and ``predict_proba`` its probabilities. A bare file
loads into :class:`xgboost.Booster`, whose ``predict`` returns the raw objective output
(probabilities for ``binary:logistic``); ``predict_proba`` then answers for
``binary:logistic`` (two columns) and ``multi:softprob``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lockgate.batch import Batch
from lockgate.errors import InvalidInputError, ModelLoadError
from lockgate.runtimes._util import (
    MLMODEL,
    artifact_file,
    import_framework,
    load_error,
    predicting,
    read_head,
)
from lockgate.runtimes.base import Runtime

SIDECAR = "lockgate-xgboost.json"
ARTIFACT_NAMES = ("model.json", "model.ubj")
WRAPPERS = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor")
_JSON_HEAD = re.compile(rb'^\s*\{\s*"learner"\s*:')


def _is_native(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return bool(_JSON_HEAD.match(read_head(path, 64)))
    if suffix == ".ubj":
        return b"learner" in read_head(path, 64)
    return False


def _xgb() -> Any:
    return import_framework("xgboost", "xgboost")


class XGBoostRuntime(Runtime):
    flavor: ClassVar[str] = "xgboost"
    requires: ClassVar[tuple[str, ...]] = ("xgboost",)

    def load(self) -> None:
        xgb = _xgb()
        file = artifact_file(self.path, self.flavor, ARTIFACT_NAMES)
        model_class = self._model_class()
        try:
            if model_class == "Booster":
                model: Any = xgb.Booster()
            else:
                model = getattr(xgb, model_class)()
            model.load_model(file)
        except Exception as exc:
            raise load_error(self.flavor, file, exc) from exc
        booster = model if model_class == "Booster" else model.get_booster()
        self.model_class_ = model_class
        self.wants_frame_ = booster.feature_names is not None
        self.objective_ = json.loads(booster.save_config())["learner"]["objective"]["name"]
        self.model_ = model

    def _model_class(self) -> str:
        sidecar = self.path / SIDECAR if self.path.is_dir() else None
        if sidecar is None or not sidecar.is_file():
            return "Booster"
        try:
            model_class = json.loads(sidecar.read_text())["model_class"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise load_error(self.flavor, sidecar, exc) from exc
        if model_class != "Booster" and model_class not in WRAPPERS:
            raise ModelLoadError(
                f"cannot load xgboost model from {str(self.path)!r}: {SIDECAR} names "
                f"{model_class!r}; expected Booster or one of {', '.join(WRAPPERS)}",
                flavor=self.flavor,
                path=str(self.path),
            )
        return str(model_class)

    def unload(self) -> None:
        for attr in ("model_", "model_class_", "wants_frame_", "objective_"):
            self.__dict__.pop(attr, None)

    # -- prediction ------------------------------------------------------------------------
    def _features(self, batch: Batch) -> pd.DataFrame | np.ndarray:
        return batch.frame() if self.wants_frame_ else batch.matrix()

    def _booster_predict(self, model: Any, batch: Batch) -> np.ndarray:
        # inplace_predict skips building a DMatrix: the cheapest path on the serving hot path
        return np.asarray(model.inplace_predict(self._features(batch)))

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return self.predict_batch(Batch.from_frame(data))

    def predict_batch(self, batch: Batch) -> np.ndarray:
        model = self._require_loaded()
        with predicting(self.flavor):
            if self.model_class_ == "Booster":
                return self._booster_predict(model, batch)
            return np.asarray(model.predict(self._features(batch)))

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray | None:
        model = self._require_loaded()
        batch = Batch.from_frame(data)
        with predicting(self.flavor):
            if self.model_class_ != "Booster":
                if not hasattr(model, "predict_proba"):
                    return None
                return np.asarray(model.predict_proba(self._features(batch)))
            if self.objective_ == "binary:logistic":
                p = self._booster_predict(model, batch).astype(np.float64)
                return np.column_stack([1.0 - p, p])
            if self.objective_ == "multi:softprob":
                return self._booster_predict(model, batch)
            return None

    def metadata(self) -> dict[str, Any]:
        out = super().metadata()
        out.update(self.framework_versions())
        if not self.loaded:
            return out
        out["model_class"] = self.model_class_
        out["objective"] = self.objective_
        classes = getattr(self.model_, "classes_", None)
        if classes is not None:
            out["classes"] = np.asarray(classes).tolist()
        booster = self.model_ if self.model_class_ == "Booster" else self.model_.get_booster()
        out["num_features"] = int(booster.num_features())
        if booster.feature_names is not None:
            out["feature_names"] = list(booster.feature_names)
        return out

    # -- registration-time capabilities ---------------------------------------------------
    @classmethod
    def detect(cls, path: Path) -> bool:
        path = Path(path)
        if path.is_dir():
            if (path / MLMODEL).exists():
                return False
            if (path / SIDECAR).is_file():
                return True
            return any(_is_native(path / name) for name in ARTIFACT_NAMES)
        return _is_native(path)

    @classmethod
    def can_save(cls, obj: Any) -> bool:
        xgb = sys.modules.get("xgboost")
        return xgb is not None and isinstance(obj, (xgb.Booster, xgb.XGBModel))

    @classmethod
    def save(cls, obj: Any, directory: Path) -> Path:
        xgb = _xgb()
        if not cls.can_save(obj):
            raise InvalidInputError.for_field(
                "model", "an xgboost.Booster or XGBModel", type(obj).__qualname__
            )
        model_class = "Booster" if isinstance(obj, xgb.Booster) else type(obj).__name__
        if model_class != "Booster" and model_class not in WRAPPERS:
            model_class = "Booster"  # an unknown subclass: keep the trees, drop the wrapper
            obj = obj.get_booster()
        folder = Path(directory) / "model"
        folder.mkdir(parents=True, exist_ok=True)
        obj.save_model(folder / "model.json")
        sidecar = {"model_class": model_class, "xgboost_version": xgb.__version__}
        (folder / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n")
        return folder
