"""A columnar batch of input rows: the data plane's unit of work.

Requests are decoded straight into NumPy columns (or one 2-D matrix) and stay that way
through validation, batching and prediction; a pandas DataFrame is built only for models
that need one, and only once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd


class MatrixColumns(Mapping[str, np.ndarray]):
    """The columns of a decoded 2-D matrix by name: views of it, made on first use.

    A request decoded as one ``(rows, k)`` tensor needs its columns by name only off the
    hot path (a column-wise check, a routing key, the prediction log's general path);
    making ``k`` views per request up front costs about 0.2 us per column. The names and
    the matrix are kept as given (do not mutate either)."""

    __slots__ = ("_views", "matrix", "names")

    def __init__(self, names: Sequence[str], matrix: np.ndarray) -> None:
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            raise ValueError(
                f"a matrix of {len(names)} columns is needed for {len(names)} names, "
                f"got shape {matrix.shape}"
            )
        self.names = names
        self.matrix = matrix
        self._views: dict[str, np.ndarray] | None = None

    def _all(self) -> dict[str, np.ndarray]:
        views = self._views
        if views is None:
            views = self._views = dict(zip(self.names, self.matrix.T, strict=True))
        return views

    def __getitem__(self, name: str) -> np.ndarray:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def __repr__(self) -> str:
        return f"MatrixColumns({list(self.names)!r}, shape={self.matrix.shape})"


class Batch:
    __slots__ = ("_frame", "_matrix", "columns", "n_rows", "names")

    def __init__(
        self,
        columns: Mapping[str, np.ndarray],
        n_rows: int | None = None,
        *,
        matrix: np.ndarray | None = None,
    ) -> None:
        #: the columns by name (read-only; a :class:`MatrixColumns` for a decoded matrix)
        self.columns: Mapping[str, np.ndarray] = dict(columns)
        self.names: Sequence[str] = list(self.columns)
        if n_rows is None:
            n_rows = len(next(iter(self.columns.values()))) if self.columns else 0
        self.n_rows = n_rows
        self._matrix = matrix
        self._frame: pd.DataFrame | None = None

    @classmethod
    def from_matrix(cls, names: Sequence[str], matrix: np.ndarray) -> Batch:
        """Columns as views of a 2-D matrix (no copy, made on first use); ``matrix()``
        returns it as is. ``names`` is kept, not copied."""
        b = cls.__new__(cls)
        b.columns = MatrixColumns(names, matrix)
        b.names = names
        b.n_rows = matrix.shape[0]
        b._matrix = matrix
        b._frame = None
        return b

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
