"""A loaded model version: its runtime plus its signature, enforced on every call."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lockgate.registry.models import ModelVersion
from lockgate.registry.signature import as_frame
from lockgate.runtimes.base import Runtime


class LoadedModel:
    """What ``client.load("name/3")`` returns. ``predict`` validates its input against the
    version's signature (missing column or wrong dtype: SchemaError naming the column, the
    expected and the actual dtype) before the model sees it."""

    def __init__(self, version: ModelVersion, runtime: Runtime, workdir: Path | None) -> None:
        self.version = version
        self.runtime = runtime
        self._workdir = workdir

    @property
    def signature(self) -> Any:
        return self.version.signature

    def _frame(self, data: Any) -> pd.DataFrame:
        return self.version.signature.validate(
            as_frame(data, columns=self.version.signature.input_names)
        )

    def predict(self, data: Any) -> np.ndarray:
        return self.runtime.predict(self._frame(data))

    def predict_proba(self, data: Any) -> np.ndarray | None:
        return self.runtime.predict_proba(self._frame(data))

    def unload(self) -> None:
        self.runtime.unload()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()

    def __repr__(self) -> str:
        return f"<LoadedModel {self.version.ref} flavor={self.version.flavor}>"
