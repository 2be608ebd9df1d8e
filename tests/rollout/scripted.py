"""A test-only runtime (flavor ``scripted``): a linear classifier stored as JSON that can be
told to be slow, to raise on some inputs, or to raise always. No pickle: a server loads it
through ``LOCKGATE_RUNTIMES=scripted=tests.rollout.scripted:ScriptedRuntime``."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lockgate.batch import Batch
from lockgate.runtimes.base import Runtime

SPEC = "tests.rollout.scripted:ScriptedRuntime"


@dataclass
class ScriptedModel:
    coef: list[float] = field(default_factory=lambda: [1.0, 1.0])
    intercept: float = 0.0
    delay_ms: float = 0.0
    #: raise when any row has ``fail_column > fail_above``
    fail_column: int | None = None
    fail_above: float = math.inf
    fail_always: bool = False


class ScriptedRuntime(Runtime):
    flavor: ClassVar[str] = "scripted"

    def load(self) -> None:
        path = self.path / "model.json" if self.path.is_dir() else self.path
        self.model_ = ScriptedModel(**json.loads(path.read_text()))

    def _run(self, X: np.ndarray) -> np.ndarray:
        m: ScriptedModel = self._require_loaded()
        if m.delay_ms:
            time.sleep(m.delay_ms / 1000)
        if m.fail_always:
            raise RuntimeError("scripted failure: this version always fails")
        if m.fail_column is not None and np.any(X[:, m.fail_column] > m.fail_above):
            raise ValueError("scripted failure on this input")
        return (X @ np.asarray(m.coef) + m.intercept > 0).astype(np.int64)

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return self._run(data.to_numpy(dtype=np.float64))

    def predict_batch(self, batch: Batch) -> np.ndarray:
        return self._run(batch.matrix(np.dtype(np.float64)))

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.name == "model.json"

    @classmethod
    def can_save(cls, obj: Any) -> bool:
        return isinstance(obj, ScriptedModel)

    @classmethod
    def save(cls, obj: Any, directory: Path) -> Path:
        out = directory / "model.json"
        out.write_text(json.dumps(asdict(obj)))
        return out
