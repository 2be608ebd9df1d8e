"""A runtime (flavor ``failing``) for the shadow benchmark: it does ``work_ms`` of sleeping
(or nothing) and then raises, or returns zeros when ``raise`` is false. Loaded by the server
through ``LOCKGATE_RUNTIMES=failing=failing_runtime:FailingRuntime``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lockgate.batch import Batch
from lockgate.runtimes.base import Runtime


class FailingSpec(dict[str, Any]):
    """``{"work_ms": 0.0, "raise": true}``: what the model does per call."""


class FailingRuntime(Runtime):
    flavor: ClassVar[str] = "failing"

    def load(self) -> None:
        path = self.path / "model.json" if self.path.is_dir() else self.path
        self.model_ = json.loads(path.read_text())

    def _run(self, n: int) -> np.ndarray:
        spec = self._require_loaded()
        if spec.get("work_ms"):
            time.sleep(spec["work_ms"] / 1000)
        if spec.get("raise", True):
            raise RuntimeError("this shadow always fails")
        return np.zeros(n, dtype=np.int64)

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return self._run(len(data))

    def predict_batch(self, batch: Batch) -> np.ndarray:
        return self._run(batch.n_rows)

    @classmethod
    def can_save(cls, obj: Any) -> bool:
        return isinstance(obj, FailingSpec)

    @classmethod
    def save(cls, obj: Any, directory: Path) -> Path:
        out = directory / "model.json"
        out.write_text(json.dumps(dict(obj)))
        return out
