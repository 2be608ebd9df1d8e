"""A columnar batch of input rows: the data plane's unit of work.

Requests are decoded straight into NumPy columns (or one 2-D matrix) and stay that way
through validation, batching and prediction; a pandas DataFrame is built only for models
that need one, and only once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


class Batch:
    __slots__ = ("_frame", "_matrix", "columns", "n_rows", "names")

    def __init__(
        self,
        columns: Mapping[str, np.ndarray],
        n_rows: int | None = None,
        *,
        matrix: np.ndarray | None = None,
    ) -> None:
        self.columns: dict[str, np.ndarray] = dict(columns)
        self.names: list[str] = list(self.columns)
        if n_rows is None:
            n_rows = len(next(iter(self.columns.values()))) if self.columns else 0
        self.n_rows = n_rows
        self._matrix = matrix
        self._frame: pd.DataFrame | None = None

    @classmethod
    def from_matrix(cls, names: Sequence[str], matrix: np.ndarray) -> Batch:
        """Columns as views of a 2-D matrix (no copy); ``matrix()`` returns it as is."""
        return cls(dict(zip(names, matrix.T, strict=True)), matrix.shape[0], matrix=matrix)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Batch:
        b = cls({str(c): frame[c].to_numpy() for c in frame.columns}, len(frame))
        b._frame = frame
        return b

    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = pd.DataFrame(
                {n: (list(c) if c.ndim > 1 else c) for n, c in self.columns.items()}, copy=False
            )
        return self._frame

    @property
    def built_matrix(self) -> np.ndarray | None:
        """The columns side by side if that matrix was decoded or built already (never
        builds one): its dtype is the columns' common type."""
        return self._matrix

    def matrix(self, dtype: np.dtype | None = None) -> np.ndarray:
        """The columns side by side as one 2-D array (scalar columns only)."""
        if self._matrix is None:
            cols = list(self.columns.values())
            self._matrix = np.column_stack(cols) if cols else np.empty((self.n_rows, 0))
        m = self._matrix
        return m if dtype is None or m.dtype == dtype else m.astype(dtype)

    @staticmethod
    def concat(batches: Sequence[Batch]) -> Batch:
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        if (
            all(b._matrix is not None for b in batches)
            and len({b._matrix.dtype for b in batches if b._matrix is not None}) == 1
        ):
            return Batch.from_matrix(
                first.names, np.concatenate([b._matrix for b in batches if b._matrix is not None])
            )
        cols = {n: np.concatenate([b.columns[n] for b in batches]) for n in first.names}
        return Batch(cols, sum(b.n_rows for b in batches))

    def __len__(self) -> int:
        return self.n_rows
