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

from lockgate.errors import InvalidInputError


def nonfinite_error(
    matrix: np.ndarray, names: Sequence[str], *, allow_nan: bool
) -> InvalidInputError | None:
    """The error for the first value of a 2-D float ``matrix`` the model does not accept
    (NaN unless ``allow_nan``, infinity always), naming its column and row; None when every
    value is accepted. Other dtypes hold no such values."""
    if matrix.dtype.kind not in "fc":
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
    name = names[col] if col < len(names) else str(col)
    return InvalidInputError.for_field(f"{name}[{row}]", expected, matrix[row, col].item())
