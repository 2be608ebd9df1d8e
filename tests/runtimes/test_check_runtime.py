"""check_runtime itself: each check fails, with its name, for a runtime that breaks it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from lockgate.batch import Batch
from lockgate.runtimes.check import check_runtime
from lockgate.runtimes.sklearn import SklearnRuntime


def _model() -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(4)
    X = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    return LogisticRegression().fit(X, (X.a > X.b).astype(int)), X.iloc[:20]


class NoDetect(SklearnRuntime):
    @classmethod
    def detect(cls, path: Path) -> bool:
        return False


class GreedyDetect(SklearnRuntime):
    @classmethod
    def detect(cls, path: Path) -> bool:
        return True


class EagerConstructor(SklearnRuntime):
    def __init__(self, path: str | Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.size_ = Path(path).stat().st_size


class RawErrorOnMissing(SklearnRuntime):
    def load(self) -> None:
        self.path.read_bytes()
        super().load()


class BrokenBatch(SklearnRuntime):
    def predict_batch(self, batch: Batch) -> np.ndarray:
        return np.zeros(batch.n_rows)


class OneRowTooMany(SklearnRuntime):
    def predict(self, data: pd.DataFrame) -> np.ndarray:
        out = super().predict(data)
        return np.concatenate([out, out[:1]])


class Drifting(SklearnRuntime):
    """Right the first time, then different on every call."""

    calls = 0

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        type(self).calls += 1
        return super().predict(data) + (type(self).calls - 1)


class BatchDependent(SklearnRuntime):
    """Each row's answer depends on the other rows of the batch."""

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return super().predict(data) * 0 + len(data)


class BadProba(SklearnRuntime):
    def predict_proba(self, data: pd.DataFrame) -> np.ndarray | None:
        return np.ones((len(data), 2)) / 2


class OpaqueMetadata(SklearnRuntime):
    def metadata(self) -> dict[str, Any]:
        return {"flavor": self.flavor, "model": self.model_}


class SticksAround(SklearnRuntime):
    def unload(self) -> None:
        pass


class ListOutput(SklearnRuntime):
    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return super().predict(data).tolist()  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("runtime", "check"),
    [
        (NoDetect, "detect"),
        (GreedyDetect, "detect"),
        (EagerConstructor, "contract"),
        (RawErrorOnMissing, "contract"),
        (BrokenBatch, "batch"),
        (OneRowTooMany, "round trip"),
        (Drifting, "rows"),
        (BadProba, "predict_proba"),
        (OpaqueMetadata, "metadata"),
        (SticksAround, "unload"),
        (ListOutput, "round trip"),
    ],
)
def test_each_check_fails_for_a_runtime_that_breaks_it(runtime: type, check: str) -> None:
    model, sample = _model()
    with pytest.raises(AssertionError, match=rf"check_runtime\({runtime.__name__}\) \[{check}\]"):
        check_runtime(runtime, model, sample)


def test_tolerance_is_honoured() -> None:
    model, sample = _model()
    noisy = model.predict(sample) + 1e-9
    with pytest.raises(AssertionError, match="rows differ"):
        check_runtime(SklearnRuntime, model, sample, expected=noisy)
    check_runtime(SklearnRuntime, model, sample, expected=noisy, atol=1e-6)


def test_bad_arguments_are_type_errors(tmp_path: Path) -> None:
    model, sample = _model()
    with pytest.raises(TypeError, match="Runtime subclass"):
        check_runtime(object, model, sample)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty pandas DataFrame"):
        check_runtime(SklearnRuntime, model, sample.iloc[:0])
    with pytest.raises(TypeError, match="expected="):
        check_runtime(SklearnRuntime, tmp_path / "model.skops", sample)
    with pytest.raises(TypeError, match="no predict"):
        check_runtime(SklearnRuntime, object(), sample)


def test_answers_that_depend_on_the_rest_of_the_batch_fail() -> None:
    model, sample = _model()
    with pytest.raises(AssertionError, match=r"\[rows\]: predicting the first row alone"):
        check_runtime(BatchDependent, model, sample, expected=np.full(len(sample), len(sample)))
