"""Refusing non-finite inputs before the model sees them.

scikit-learn checks every input for NaN and infinity in Python-level code on each call
(about 15 us of a 150 us single-row ``predict`` here) and raises a ``ValueError`` that
reaches the caller as a failed prediction. A runtime that knows what its model accepts does
the check once, in NumPy, names the column and row in a 4xx error, and then lets the model
skip its own check.
"""

from __future__ import annotations

import re
from typing import Any

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
    arrays = [m] if m is not None and m.dtype.kind in "fiub" else batch.columns.values()
    if all(a.dtype.kind != "f" or _taken(a, allow_nan) for a in arrays):
        return None  # the common case: one NumPy pass, no search
    found = _locate(batch, np.isinf if allow_nan else _not_finite)
    if found is None:
        return None
    name, row, value = found
    expected = (
        "a number or NaN (this model takes NaN as missing, not infinity)"
        if allow_nan
        else "a finite number (this model accepts neither NaN nor infinity)"
    )
    return InvalidInputError.for_field(f"{name}[{row}]", expected, value)


def _taken(values: np.ndarray, allow_nan: bool) -> bool:
    return not np.isinf(values).any() if allow_nan else bool(np.isfinite(values).all())


def _not_finite(values: np.ndarray) -> np.ndarray:
    return ~np.isfinite(values)


#: scikit-learn's refusal of a non-finite input (``Input X contains NaN.``, ``Input contains
#: infinity or a value too large for dtype('float64').``)
_REFUSAL = re.compile(r"\bInput (?:\w+ )?contains (NaN|infinity)")


def refusal_error(batch: Batch, exc: BaseException | None) -> InvalidInputError | None:
    """The request's error behind a model's refusal of NaN or infinity (scikit-learn's
    ``ValueError`` from a step of a pipeline, whose tags do not say what it takes): the
    first such value of the batch, by column and row. None when ``exc`` is no such refusal
    or the batch holds no such value (the model made it itself: a failed prediction)."""
    m = _REFUSAL.search(str(exc)) if isinstance(exc, ValueError) else None
    if m is None:
        return None
    want_nan = m[1] == "NaN"
    expected = (
        "a number (this model does not take NaN)"
        if want_nan
        else "a finite number (this model does not take infinity)"
    )
    found = _locate(batch, np.isnan if want_nan else np.isinf)
    if found is None:
        return None
    name, row, value = found
    return InvalidInputError.for_field(f"{name}[{row}]", expected, value)


def _locate(batch: Batch, bad: Any) -> tuple[str, int, float] | None:
    """Column, row and value of the first value of the batch's float columns for which
    ``bad`` (a NumPy predicate) holds."""
    m = batch.built_matrix
    if m is not None and m.dtype.kind == "f":
        hits = np.argwhere(bad(m))
        if len(hits):
            row, col = (int(i) for i in hits[0])
            return batch.names[col], row, m[row, col].item()
        return None
    for name, column in batch.columns.items():
        if column.dtype.kind == "f":
            values = column.reshape(len(column), -1)
            hits = np.argwhere(bad(values))
            if len(hits):
                row = int(hits[0][0])
                return name, row, values[tuple(hits[0])].item()
    return None
