"""The LightGBM runtime (flavor ``lightgbm``, extra ``lockgate[lightgbm]``). Never unpickles.

Artifacts are LightGBM's native text model (a ``.txt`` file starting with ``tree``), bare or
in a folder written by :meth:`LightGBMRuntime.save`::

    model/
      model.txt                booster_.save_model
      lockgate-lightgbm.json   {"kind": "classifier", "classes": ["no", "yes"], ...}

The sidecar tells a classifier from a regressor and keeps the classifier's original classes,
so ``predict`` returns the original labels (argmax of the probabilities, as
``LGBMClassifier.predict`` does) and ``predict_proba`` the ``(rows, classes)`` probabilities.
A bare file (or ``kind: "booster"``) returns :meth:`lightgbm.Booster.predict`'s output as is.
Features are passed as a float array in signature order; encode categorical columns before
LightGBM (pandas ``category`` columns are not carried through the signature).
"""

from __future__ import annotations

import json
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

SIDECAR = "lockgate-lightgbm.json"
ARTIFACT_NAMES = ("model.txt",)
KINDS = ("classifier", "regressor", "ranker", "booster")


def _is_native(path: Path) -> bool:
    return path.suffix.lower() == ".txt" and read_head(path, 5) == b"tree\n"


def _lgb() -> Any:
    return import_framework("lightgbm", "lightgbm")


class LightGBMRuntime(Runtime):
    flavor: ClassVar[str] = "lightgbm"
    requires: ClassVar[tuple[str, ...]] = ("lightgbm",)

    def load(self) -> None:
        lgb = _lgb()
        file = artifact_file(self.path, self.flavor, ARTIFACT_NAMES)
        kind, classes = self._sidecar()
        try:
            booster = lgb.Booster(model_file=str(file))
        except Exception as exc:
            raise load_error(self.flavor, file, exc) from exc
        if kind == "classifier" and classes is None:
            raise ModelLoadError(
                f"cannot load lightgbm model from {str(self.path)!r}: {SIDECAR} says "
                "classifier but lists no classes",
                flavor=self.flavor,
                path=str(self.path),
            )
        self.kind_ = kind
        self.classes_ = classes
        self.model_ = booster

    def _sidecar(self) -> tuple[str, np.ndarray | None]:
        sidecar = self.path / SIDECAR if self.path.is_dir() else None
        if sidecar is None or not sidecar.is_file():
            return "booster", None
        try:
            meta = json.loads(sidecar.read_text())
            kind = meta["kind"]
            classes = meta.get("classes")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise load_error(self.flavor, sidecar, exc) from exc
        if kind not in KINDS:
            raise ModelLoadError(
                f"cannot load lightgbm model from {str(self.path)!r}: {SIDECAR} kind is "
                f"{kind!r}; expected one of {', '.join(KINDS)}",
                flavor=self.flavor,
                path=str(self.path),
            )
        return kind, (np.asarray(classes) if classes is not None else None)

    def unload(self) -> None:
        for attr in ("model_", "kind_", "classes_"):
            self.__dict__.pop(attr, None)

    # -- prediction ------------------------------------------------------------------------
    def _raw(self, booster: Any, batch: Batch) -> np.ndarray:
        return np.asarray(booster.predict(batch.matrix(np.dtype(np.float64))))

    def _proba(self, booster: Any, batch: Batch) -> np.ndarray:
        out = self._raw(booster, batch)
        if out.ndim == 1:  # binary: the probability of the second class
            return np.column_stack([1.0 - out, out])
        return out

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return self.predict_batch(Batch.from_frame(data))

    def predict_batch(self, batch: Batch) -> np.ndarray:
        booster = self._require_loaded()
        with predicting(self.flavor):
            if self.kind_ != "classifier":
                return self._raw(booster, batch)
            index = np.argmax(self._proba(booster, batch), axis=1)
            labels: np.ndarray = np.asarray(self.classes_)[index]
            return labels

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray | None:
        booster = self._require_loaded()
        if self.kind_ != "classifier":
            return None
        with predicting(self.flavor):
            return self._proba(booster, Batch.from_frame(data))

    def metadata(self) -> dict[str, Any]:
        out = super().metadata()
        out.update(self.framework_versions())
        if not self.loaded:
            return out
        out["kind"] = self.kind_
        if self.classes_ is not None:
            out["classes"] = self.classes_.tolist()
        out["objective"] = str(self.model_.params.get("objective", ""))
        out["feature_names"] = list(self.model_.feature_name())
        out["num_trees"] = int(self.model_.num_trees())
        return out

    # -- registration-time capabilities ---------------------------------------------------
    @classmethod
    def detect(cls, path: Path) -> bool:
        path = Path(path)
        if path.is_dir():
            if (path / MLMODEL).exists():
                return False
            return (path / SIDECAR).is_file() or _is_native(path / "model.txt")
        return _is_native(path)

    @classmethod
    def can_save(cls, obj: Any) -> bool:
        lgb = sys.modules.get("lightgbm")
        if lgb is None:
            return False
        if isinstance(obj, lgb.Booster):
            return True
        return isinstance(obj, lgb.LGBMModel) and getattr(obj, "fitted_", False) is True

    @classmethod
    def save(cls, obj: Any, directory: Path) -> Path:
        lgb = _lgb()
        if not cls.can_save(obj):
            raise InvalidInputError.for_field(
                "model", "a fitted lightgbm.Booster or LGBMModel", type(obj).__qualname__
            )
        meta: dict[str, Any] = {"lightgbm_version": lgb.__version__}
        if isinstance(obj, lgb.Booster):
            booster, meta["kind"] = obj, "booster"
        else:
            booster = obj.booster_
            if isinstance(obj, lgb.LGBMClassifier):
                meta["kind"] = "classifier"
                meta["classes"] = np.asarray(obj.classes_).tolist()
            elif isinstance(obj, lgb.LGBMRanker):
                meta["kind"] = "ranker"
            else:
                meta["kind"] = "regressor"
        folder = Path(directory) / "model"
        folder.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(folder / "model.txt"))
        (folder / SIDECAR).write_text(json.dumps(meta, indent=2) + "\n")
        return folder
