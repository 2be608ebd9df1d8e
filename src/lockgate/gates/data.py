"""Evaluation data for a validation run: read from a file, checked against the columns the run
needs, with errors that name the file and the column."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lockgate.errors import InvalidInputError

SUFFIXES = (".parquet", ".pq", ".csv")


def read_table(source: pd.DataFrame | str | Path, field: str = "eval") -> pd.DataFrame:
    """A DataFrame, or a ``.parquet`` / ``.csv`` file read into one."""
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInputError.for_field(field, "a .parquet or .csv file", path.name)
    if not path.is_file():
        raise InvalidInputError.for_field(field, "an existing file", str(path))
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as exc:
        raise InvalidInputError.for_field(
            field, "a readable parquet or csv file", f"{path} ({type(exc).__name__}: {exc})"
        ) from None


def check_columns(
    frame: pd.DataFrame, target: str | None, sensitive: Sequence[str], field: str = "eval"
) -> None:
    """The target and sensitive columns exist, and the target has no missing values."""
    columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise InvalidInputError.for_field(field, "at least one row", "no rows")
    if target is not None and target not in frame.columns:
        raise InvalidInputError.for_field(
            "target", f"a column of the {field} data {columns}", target
        )
    missing = [c for c in sensitive if c not in frame.columns]
    if missing:
        raise InvalidInputError.for_field(
            "sensitive", f"columns of the {field} data {columns}", missing
        )
    if target is not None and frame[target].isna().any():
        n = int(frame[target].isna().sum())
        raise InvalidInputError.for_field(
            "target", "no missing labels", f"{n} missing in {target!r}"
        )
