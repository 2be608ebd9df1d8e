"""Signatures: the input columns (with dtypes and per-row shapes) and outputs of a model.

A signature is inferred from a sample or given explicitly, stored with the version, reported
by the data plane, and enforced before a model sees any data. Validation never coerces
silently: a value is accepted only when it converts to the expected dtype without loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from lockgate.batch import Batch
from lockgate.errors import InvalidInputError, SchemaError
from lockgate.types import DTYPES

_INT_RANGES = {
    name: (int(np.iinfo(name).min), int(np.iinfo(name).max))
    for name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
}
_FLOATS = ("float16", "float32", "float64")
#: signature dtype -> numpy dtype, for the numeric and bool dtypes (compared by equality: a
#: dtype's ``.name`` is a slow Python-level property)
_NUMPY_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name) for name in (*_INT_RANGES, *_FLOATS, "bool")
}


def dtype_of(values: np.ndarray | pd.Series) -> str:
    """The canonical signature dtype of an array or Series (raises for mixed objects)."""
    dt = values.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return "string"
    if isinstance(dt, np.dtype) and dt.kind == "O":
        return _object_dtype(np.asarray(values, dtype=object))
    if pd.api.types.is_string_dtype(dt):
        return "string"
    if pd.api.types.is_bool_dtype(dt):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(dt):
        return "datetime"
    if isinstance(dt, pd.api.extensions.ExtensionDtype):
        dt = np.dtype(dt.numpy_dtype) if hasattr(dt, "numpy_dtype") else np.dtype(object)
    np_dt = np.dtype(dt)
    if np_dt.kind in "iuf" and np_dt.name in DTYPES:
        return np_dt.name
    if np_dt.kind in "US":
        return "string"
    if np_dt.kind == "O":
        return _object_dtype(np.asarray(values, dtype=object))
    raise InvalidInputError.for_field(
        "dtype", "a numeric, bool, string or datetime column", str(dt)
    )


def _object_dtype(values: np.ndarray) -> str:
    kinds = {type(v) for v in values.ravel()[:1000] if v is not None and v == v}
    if not kinds or kinds <= {str}:
        return "string"
    if kinds <= {bool, np.bool_}:
        return "bool"
    raise InvalidInputError.for_field(
        "dtype", "a column of one type", ", ".join(sorted(k.__name__ for k in kinds))
    )


@dataclass(frozen=True)
class ColumnSpec:
    """One input column or output of a signature. ``shape`` is the per-row shape:
    ``()`` for a scalar, ``(4,)`` for a vector of four values, ``-1`` for any length."""

    name: str
    dtype: str
    shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInputError.for_field("signature.name", "a non-empty string", self.name)
        if self.dtype not in DTYPES:
            raise InvalidInputError.for_field(
                f"signature.{self.name}.dtype", f"one of {', '.join(DTYPES)}", self.dtype
            )
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnSpec:
        try:
            return cls(name=d["name"], dtype=d["dtype"], shape=tuple(d.get("shape") or ()))
        except KeyError as exc:
            raise InvalidInputError.for_field(
                f"signature.{exc.args[0]}", "a column with name and dtype", dict(d)
            ) from None


@dataclass(frozen=True)
class Signature:
    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        names = [c.name for c in self.inputs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidInputError.for_field("signature.inputs", "unique column names", dupes)
        if not self.inputs:
            raise InvalidInputError.for_field("signature.inputs", "at least one column", [])

    @property
    def input_names(self) -> list[str]:
        return list(self._names)

    # Facts the serving hot path needs on every request, computed once per signature (a
    # frozen value; cached_property writes the instance __dict__, not a field).
    @cached_property
    def _names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.inputs)

    @cached_property
    def input_name_set(self) -> frozenset[str]:
        """The input names as a set, for membership tests."""
        return frozenset(self._names)

    @cached_property
    def _matrix_spec(self) -> ColumnSpec | None:
        """The column spec every cell of a 2-D input tensor must conform to, when all inputs
        are scalars of one dtype (else None: validate column by column)."""
        dtypes = {c.dtype for c in self.inputs}
        if len(dtypes) == 1 and not any(c.shape for c in self.inputs):
            return ColumnSpec(self.inputs[0].name, next(iter(dtypes)))
        return None

    def input(self, name: str) -> ColumnSpec:
        for c in self.inputs:
            if c.name == name:
                return c
        raise SchemaError(
            f"unknown input column {name!r}; expected one of {self.input_names}",
            field=name,
            expected=self.input_names,
            got=name,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [c.to_dict() for c in self.inputs],
            "outputs": [c.to_dict() for c in self.outputs],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Signature:
        if not isinstance(d, Mapping) or "inputs" not in d:
            raise InvalidInputError.for_field("signature", "an object with 'inputs'", d)
        return cls(
            inputs=tuple(ColumnSpec.from_dict(c) for c in d["inputs"]),
            outputs=tuple(ColumnSpec.from_dict(c) for c in d.get("outputs") or ()),
        )

    # -- inference -----------------------------------------------------------------------
    @classmethod
    def infer(cls, sample: Any, outputs: Any = None) -> Signature:
        """Infer a signature from a sample: a DataFrame, a 2-D array (columns ``f0..fN``) or a
        mapping of column name to values. ``outputs`` may be a sample of the model's output."""
        frame = as_frame(sample)
        inputs = tuple(_infer_column(name, frame[name]) for name in frame.columns)
        outs: tuple[ColumnSpec, ...] = ()
        if outputs is not None:
            outs = infer_outputs(outputs)
        return cls(inputs=inputs, outputs=outs)

    # -- validation ----------------------------------------------------------------------
    def validate(self, data: pd.DataFrame) -> pd.DataFrame:
        """Return ``data`` restricted to the input columns, in signature order, with each
        column converted to its dtype when that is lossless; raise :class:`SchemaError`
        naming the column, the expected and the actual dtype otherwise."""
        missing = [c.name for c in self.inputs if c.name not in data.columns]
        if missing:
            raise SchemaError(
                f"missing input column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(m) for m in missing)}; expected columns {self.input_names}",
                field=missing[0],
                expected=self.input_names,
                got=[str(c) for c in data.columns],
            )
        out = {}
        for spec in self.inputs:
            out[spec.name] = conform_column(spec, data[spec.name])
        return pd.DataFrame(out, index=data.index, copy=False)

    def validate_columns(self, columns: Mapping[str, Any], n_rows: int) -> Batch:
        """Validate decoded request columns into a :class:`Batch` in signature order. Every
        column must have ``n_rows`` rows; errors name the column, expected and actual."""
        missing = [c.name for c in self.inputs if c.name not in columns]
        if missing:
            raise SchemaError(
                f"missing input{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(m) for m in missing)}; expected {self.input_names}",
                field=missing[0],
                expected=self.input_names,
                got=list(columns),
            )
        out: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            arr = conform_column(spec, columns[spec.name])
            if arr.shape[0] != n_rows:
                raise SchemaError(
                    f"input {spec.name!r}: expected {n_rows} rows, got {arr.shape[0]}",
                    field=spec.name,
                    expected=n_rows,
                    got=int(arr.shape[0]),
                )
            out[spec.name] = arr
        return Batch(out, n_rows)

    def validate_matrix(self, matrix: np.ndarray) -> Batch:
        """Validate a 2-D tensor whose columns are the inputs in signature order."""
        if matrix.ndim != 2 or matrix.shape[1] != len(self.inputs):
            raise SchemaError(
                f"input tensor: expected shape [n, {len(self.inputs)}] with columns "
                f"{self.input_names}, got {list(matrix.shape)}",
                field="shape",
                expected=[-1, len(self.inputs)],
                got=list(matrix.shape),
            )
        spec = self._matrix_spec
        if spec is not None:
            target = _NUMPY_DTYPES.get(spec.dtype)
            if target is not None and matrix.dtype == target:  # already right: nothing to do
                return Batch.from_matrix(self._names, matrix)
            try:
                col = conform_column(spec, matrix.reshape(-1))
                return Batch.from_matrix(self._names, col.reshape(matrix.shape))
            except SchemaError:
                pass  # validate column by column below, to name the offending column
        return self.validate_columns(
            {c.name: matrix[:, i] for i, c in enumerate(self.inputs)}, matrix.shape[0]
        )


def _infer_column(name: Any, series: pd.Series) -> ColumnSpec:
    first = series.iloc[0] if len(series) else None
    if isinstance(first, (list, tuple, np.ndarray)):
        arr = np.asarray(first)
        return ColumnSpec(str(name), dtype_of(arr.reshape(-1)), tuple(arr.shape))
    return ColumnSpec(str(name), dtype_of(series), ())


def infer_outputs(outputs: Any) -> tuple[ColumnSpec, ...]:
    if isinstance(outputs, pd.DataFrame):
        return tuple(_infer_column(n, outputs[n]) for n in outputs.columns)
    arr = np.asarray(outputs)
    shape = tuple(arr.shape[1:]) if arr.ndim > 1 else ()
    return (ColumnSpec("prediction", dtype_of(arr.reshape(-1) if arr.ndim else arr), shape),)


def as_frame(sample: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Turn a DataFrame, a 2-D array, a mapping of columns or a list of records into a
    DataFrame. A bare 2-D array gets the given ``columns`` or ``f0..fN``."""
    if isinstance(sample, pd.DataFrame):
        return sample
    if isinstance(sample, pd.Series):
        return sample.to_frame()
    if isinstance(sample, Mapping):
        return pd.DataFrame({str(k): _col(v) for k, v in sample.items()})
    if isinstance(sample, list) and sample and isinstance(sample[0], Mapping):
        return pd.DataFrame.from_records(sample)
    arr = np.asarray(sample)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1) if columns is None else arr.reshape(-1, len(columns))
    if arr.ndim != 2:
        raise InvalidInputError.for_field(
            "sample", "a DataFrame, a mapping of columns or a 2-D array", f"{arr.ndim}-D array"
        )
    names = list(columns) if columns is not None else [f"f{i}" for i in range(arr.shape[1])]
    if len(names) != arr.shape[1]:
        raise InvalidInputError.for_field("sample", f"{len(names)} columns", arr.shape[1])
    return pd.DataFrame(arr, columns=names, copy=False)


def _col(v: Any) -> Any:
    return v if isinstance(v, (np.ndarray, pd.Series, list)) else [v]


def conform_column(spec: ColumnSpec, values: pd.Series | np.ndarray) -> np.ndarray:
    """Convert one column to ``spec.dtype`` when lossless, else raise SchemaError."""
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    expected = spec.dtype
    target = _NUMPY_DTYPES.get(expected)
    if target is not None and not spec.shape and arr.dtype == target:
        return arr  # the hot path: already the right dtype
    if spec.shape:
        return _conform_tensor(spec, arr)
    got = _kind_name(arr)
    if got == expected:
        return arr
    if expected in _FLOATS:
        if arr.dtype.kind in "iuf":
            with np.errstate(over="ignore"):  # overflow is detected and reported below
                out = arr.astype(expected, copy=False)
            if out.dtype.itemsize < arr.dtype.itemsize or arr.dtype.kind in "iu":
                overflow = ~np.isfinite(out) & (np.isfinite(arr) if arr.dtype.kind == "f" else True)
                if overflow.any():
                    value = arr[np.flatnonzero(overflow)[0]].item()
                    raise SchemaError(
                        f"input {spec.name!r}: value {value!r} is outside the {expected} range",
                        field=spec.name,
                        expected=f"values in the {expected} range",
                        got=value,
                    )
            return out
        if arr.dtype.kind == "O":
            conv = _numeric_objects(arr)
            if conv is not None:
                return conv.astype(expected)
    elif expected in _INT_RANGES:
        if arr.dtype.kind in "iu":
            lo, hi = _INT_RANGES[expected]
            if arr.size == 0 or (int(arr.min()) >= lo and int(arr.max()) <= hi):
                return arr.astype(expected, copy=False)
            raise _mismatch(spec, f"{got} values outside the {expected} range")
        if arr.dtype.kind == "O":
            conv = _numeric_objects(arr)
            if conv is not None and conv.dtype.kind in "iu":
                return conform_column(spec, conv)
    elif expected == "string":
        if arr.dtype.kind in "OUS" and got == "string":
            return arr
    elif expected == "bool":
        if arr.dtype.kind == "O" and all(isinstance(v, (bool, np.bool_)) for v in arr):
            return arr.astype(bool)
    elif expected == "datetime":
        if arr.dtype.kind == "M":
            return arr
        if got == "string":
            try:
                return pd.to_datetime(arr).to_numpy()
            except (ValueError, TypeError):
                pass
    if arr.dtype.kind == "O" and (expected in _FLOATS or expected in _INT_RANGES):
        got += _first_non_number(arr)
    raise _mismatch(spec, got)


def _first_non_number(arr: np.ndarray) -> str:
    """Where an object column meant to hold numbers holds something else (a boolean, a
    string, null): `` (True at row 3)``, or nothing when every value is a number."""
    for i, v in enumerate(arr):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            return f" ({v!r} at row {i})"
    return ""


def _conform_tensor(spec: ColumnSpec, arr: np.ndarray) -> np.ndarray:
    if arr.dtype == object:
        try:
            arr = np.stack([np.asarray(v) for v in arr]) if len(arr) else arr
        except ValueError:
            raise _mismatch(spec, "rows of different shapes") from None
    row_shape = tuple(arr.shape[1:])
    if len(row_shape) != len(spec.shape) or any(
        e not in (-1, g) for e, g in zip(spec.shape, row_shape, strict=True)
    ):
        raise SchemaError(
            f"input {spec.name!r}: expected per-row shape {list(spec.shape)}, "
            f"got {list(row_shape)}",
            field=spec.name,
            expected=list(spec.shape),
            got=list(row_shape),
        )
    flat = conform_column(ColumnSpec(spec.name, spec.dtype), arr.reshape(-1))
    return flat.reshape(arr.shape)


def _numeric_objects(arr: np.ndarray) -> np.ndarray | None:
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in arr):
        return np.asarray(arr.tolist(), dtype=np.int64)
    if all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        for v in arr
    ):
        return np.asarray(arr.tolist(), dtype=np.float64)
    return None


def _kind_name(arr: np.ndarray) -> str:
    try:
        return dtype_of(arr)
    except InvalidInputError:
        return "mixed object"


def _mismatch(spec: ColumnSpec, got: str) -> SchemaError:
    return SchemaError(
        f"input {spec.name!r}: expected dtype {spec.dtype}, got {got}",
        field=spec.name,
        expected=spec.dtype,
        got=got,
    )


def compatible(old: Signature, new: Signature) -> list[str]:
    """Reasons why ``new`` cannot replace ``old`` (empty when compatible): a removed input or
    a narrowed dtype breaks callers that send what ``old`` accepted."""
    problems: list[str] = []
    new_inputs = {c.name: c for c in new.inputs}
    for c in old.inputs:
        n = new_inputs.get(c.name)
        if n is None:
            problems.append(f"input {c.name!r} was removed")
        elif not _widens(c.dtype, n.dtype):
            problems.append(f"input {c.name!r} narrowed from {c.dtype} to {n.dtype}")
    old_names = {c.name for c in old.inputs}
    for name in sorted(set(new_inputs) - old_names):
        problems.append(f"input {name!r} is new and required")
    return problems


def _widens(old: str, new: str) -> bool:
    if old == new:
        return True
    if (
        old in DTYPES
        and new in DTYPES
        and old not in ("string", "datetime")
        and new
        not in (
            "string",
            "datetime",
        )
    ):
        return bool(np.can_cast(np.dtype(old), np.dtype(new), "safe"))
    return False


def columns_of(names: Iterable[str]) -> list[str]:
    return [str(n) for n in names]
