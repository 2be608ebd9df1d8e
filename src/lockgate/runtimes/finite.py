"""Refusing non-finite inputs before the model sees them.

scikit-learn checks every input for NaN and infinity in Python-level code on each call
(about 15 us of a 150 us single-row ``predict`` here) and raises a ``ValueError`` that
reaches the caller as a failed prediction. A runtime that knows what its model accepts does
the check once, in NumPy, names the column and row in a 4xx error, and then lets the model
skip its own check.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lockgate.batch import Batch
from lockgate.errors import InvalidInputError


def numeric(batch: Batch) -> bool:
    """Whether every column of the batch holds booleans or numbers (nothing else can hide a
    NaN from :func:`nonfinite_error`)."""
    m = batch.built_matrix
    if m is not None and m.dtype.kind in "fiub":
        return True
    return all(c.dtype.kind in "fiub" for c in batch.columns.values())


def nonfinite_error(batch: Batch, *, allow_nan: bool) -> InvalidInputError | None:
    """The error for the first value of the batch's float columns the model does not take
    (NaN unless ``allow_nan``, infinity always), naming its column and row; None when every
    value is taken. The decoded matrix is checked in one go when there is one."""
    m = batch.built_matrix
    if m is not None and m.dtype.kind in "fiub":
        return _first_bad(m, batch.names, allow_nan)
    for name, col in batch.columns.items():
        if col.dtype.kind == "f":
            err = _first_bad(col.reshape(len(col), -1), [name], allow_nan, one_column=True)
            if err is not None:
                return err
    return None


def _first_bad(
    matrix: np.ndarray, names: Sequence[str], allow_nan: bool, *, one_column: bool = False
) -> InvalidInputError | None:
    if matrix.dtype.kind != "f":
        return None
    if allow_nan:
        if not np.isinf(matrix).any():
            return None
        bad = np.isinf(matrix)
        expected = "a number or NaN (this model takes NaN as missing, not infinity)"
    else:
        if np.isfinite(matrix).all():
            return None
        bad = ~np.isfinite(matrix)
        expected = "a finite number (this model accepts neither NaN nor infinity)"
    row, col = (int(i) for i in np.argwhere(bad)[0])
    name = names[0] if one_column else (names[col] if col < len(names) else str(col))
    return InvalidInputError.for_field(f"{name}[{row}]", expected, matrix[row, col].item())
