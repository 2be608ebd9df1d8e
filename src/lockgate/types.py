"""Shared type aliases and protocols. The bottom of the import graph: imports nothing of ours."""

from __future__ import annotations

from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

import numpy as np
import pandas as pd

#: Canonical column dtypes of a signature. OIP V2 datatypes map onto these one to one.
DType: TypeAlias = Literal[
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "string",
    "datetime",
]

DTYPES: tuple[str, ...] = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "string",
    "datetime",
)

JSONDict: TypeAlias = dict[str, Any]
Frame: TypeAlias = pd.DataFrame
Array: TypeAlias = np.ndarray

#: Roles a prediction can be served in.
Role: TypeAlias = Literal["primary", "canary", "shadow", "arm"]


@runtime_checkable
class Predictor(Protocol):
    """Anything that predicts from a DataFrame: a loaded model version, a runtime."""

    def predict(self, data: pd.DataFrame) -> np.ndarray: ...
