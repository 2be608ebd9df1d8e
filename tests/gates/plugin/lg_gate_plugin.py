"""A third-party plugin as the gate tests install it: a runtime flavor and a custom gate, both
declared through entry points in a ``*.dist-info`` folder the tests put on ``sys.path``.

``ScriptedRuntime`` (flavor ``lgtest``) loads a JSON file holding a linear model. Its artifact
may name a ``hook`` module that ``load()`` imports, the way a real model needs its own code in
the production environment; the tests rewrite or delete that module between registration and
validation to make loading crash, hang or fail. ``predict_delay_s`` slows predictions down.

``ArtifactSizeGate`` is the custom gate of docs/gates.md.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lockgate.gates import Check, Gate, GateResult, Interval, Param
from lockgate.gates.context import GateContext
from lockgate.runtimes.base import Runtime


class ScriptedRuntime(Runtime):
    flavor: ClassVar[str] = "lgtest"

    def load(self) -> None:
        spec = json.loads(Path(self.path).read_text())
        if spec.get("hook"):
            importlib.import_module(spec["hook"])
        self.model_ = spec

    def _scores(self, data: pd.DataFrame) -> np.ndarray:
        spec = self._require_loaded()
        time.sleep(float(spec.get("predict_delay_s", 0.0)))
        x = data.to_numpy(dtype=np.float64)
        return np.asarray(x @ np.asarray(spec["weights"], dtype=np.float64) + spec["bias"])

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return (self._scores(data) > 0).astype(np.int64)

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray | None:
        p = 1.0 / (1.0 + np.exp(-self._scores(data)))
        return np.column_stack([1.0 - p, p])

    def metadata(self) -> dict[str, Any]:
        return {"flavor": self.flavor, "classes": [0, 1]}

    @classmethod
    def detect(cls, path: Path) -> bool:
        return Path(path).suffix == ".lgtest"


class ArtifactSizeGate(Gate):
    """Fails a candidate whose artifact is larger than ``max_mb`` megabytes."""

    type: ClassVar[str] = "artifact_size"
    isolated: ClassVar[bool] = True  # never loads the model
    summary: ClassVar[str] = "the artifact is small enough to ship"
    parameters = {
        "max_mb": Param(100.0, Interval(float, 0, None, "neither"), help="largest artifact, MB"),
    }

    def evaluate(self, ctx: GateContext) -> GateResult:
        size_mb = ctx.candidate.artifact_size / 1e6
        return self.result([Check.at_most("artifact_mb", size_mb, self.params_["max_mb"])])
