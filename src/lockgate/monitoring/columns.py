"""How a DataFrame column is read for monitoring: its kind, numeric values and category labels.

One place decides, for the reference profile and for every current window alike, whether a
column is *numerical* or *categorical* and how its values are turned into what the statistics
use, so that a reference and a window of the same data always line up:

- numerical: signed/unsigned integers and floats (numpy or pandas nullable), object columns
  holding only numbers, datetimes (epoch seconds, dtype ``datetime``) and timedeltas (seconds,
  dtype ``timedelta``). Missing means NaN, None, ``pd.NA``, NaT **or ±inf**.
- categorical: strings, booleans, ``category`` columns and any other object column. Integers stay
  numerical unless the column is typed ``category``. Categories are compared by their label:
  ``str(value)``, with ``True``/``False`` for booleans and integral floats written as integers
  (``1.0`` -> ``"1"``), so a window decoded from JSON matches a reference read from Parquet.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import numpy as np
import pandas as pd

from lockgate.errors import SchemaError

Kind: TypeAlias = Literal["numerical", "categorical"]

_NUMERIC_INFERRED = {"integer", "floating", "mixed-integer-float", "decimal"}


def column_kind(series: pd.Series) -> tuple[Kind, str]:
    """The monitoring kind and a canonical dtype name of a column."""
    dt = series.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return "categorical", "category"
    if pd.api.types.is_bool_dtype(dt):
        return "categorical", "bool"
    if pd.api.types.is_datetime64_any_dtype(dt):
        return "numerical", "datetime"
    if pd.api.types.is_timedelta64_dtype(dt):
        return "numerical", "timedelta"
    if pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_complex_dtype(dt):
        np_dt = np.dtype(dt.numpy_dtype) if hasattr(dt, "numpy_dtype") else np.dtype(dt)
        return "numerical", np_dt.name
    if pd.api.types.is_string_dtype(dt) and not pd.api.types.is_object_dtype(dt):
        return "categorical", "string"
    if pd.api.types.is_object_dtype(dt):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in _NUMERIC_INFERRED:
            return "numerical", "float64"
        if inferred == "boolean":
            return "categorical", "bool"
        if inferred in ("string", "empty"):
            return "categorical", "string"
    return "categorical", "object"


def numeric_values(series: pd.Series, name: str) -> tuple[np.ndarray, int]:
    """The finite values of a numerical column as float64 (unsorted) and the missing count."""
    dt = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dt):
        if isinstance(dt, pd.DatetimeTZDtype):
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        ns = series.to_numpy(dtype="datetime64[ns]")
        raw = np.where(np.isnat(ns), np.nan, ns.view(np.int64) / 1e9)
    elif pd.api.types.is_timedelta64_dtype(dt):
        ns = series.to_numpy(dtype="timedelta64[ns]")
        raw = np.where(np.isnat(ns), np.nan, ns.view(np.int64) / 1e9)
    elif pd.api.types.is_bool_dtype(dt) or not (
        pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_object_dtype(dt)
    ):
        raise SchemaError.for_field(name, "a numerical column", str(dt))
    else:
        try:
            if pd.api.types.is_object_dtype(dt):
                series = pd.to_numeric(series, errors="raise")
            raw = series.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise SchemaError.for_field(name, "a numerical column", str(dt)) from exc
    finite = np.isfinite(raw)
    n_missing = int(raw.size - np.count_nonzero(finite))
    values = raw if n_missing == 0 else raw[finite]
    return values, n_missing


def label(value: object) -> str:
    """The label a category value is compared by."""
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def category_counts(series: pd.Series) -> tuple[list[str], np.ndarray, int]:
    """Labels and counts of the non-missing values of a column (most frequent first), and the
    missing count. Values whose labels coincide are counted together."""
    n_missing = int(series.isna().sum())
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        raw_counts = np.bincount(codes[codes >= 0], minlength=len(series.cat.categories))
        raw_labels = [label(v) for v in series.cat.categories]
    else:
        vc = series.value_counts(dropna=True, sort=False)
        raw_counts = vc.to_numpy(dtype=np.int64)
        raw_labels = [label(v) for v in vc.index]
    merged: dict[str, int] = {}
    for lab, cnt in zip(raw_labels, raw_counts.tolist(), strict=True):
        if cnt:
            merged[lab] = merged.get(lab, 0) + int(cnt)
    ordered = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
    labels = [k for k, _ in ordered]
    counts = np.fromiter((v for _, v in ordered), dtype=np.int64, count=len(ordered))
    return labels, counts, n_missing
