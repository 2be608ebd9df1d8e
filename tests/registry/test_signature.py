from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.errors import InvalidInputError, SchemaError
from lockgate.registry.signature import ColumnSpec, Signature, compatible


def test_infer_from_dataframe() -> None:
    df = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5], "c": ["x", "y"], "d": [True, False]})
    sig = Signature.infer(df)
    assert [(c.name, c.dtype) for c in sig.inputs] == [
        ("a", "int64"),
        ("b", "float64"),
        ("c", "string"),
        ("d", "bool"),
    ]


def test_infer_from_array_names_columns() -> None:
    sig = Signature.infer(np.zeros((3, 2), dtype=np.float32))
    assert [(c.name, c.dtype) for c in sig.inputs] == [("f0", "float32"), ("f1", "float32")]


def test_round_trip() -> None:
    sig = Signature(
        (ColumnSpec("a", "float32"), ColumnSpec("img", "uint8", (2, 2))),
        (ColumnSpec("prediction", "int64"),),
    )
    assert Signature.from_dict(sig.to_dict()) == sig


def test_missing_column_named() -> None:
    sig = Signature((ColumnSpec("a", "float64"), ColumnSpec("b", "float64")))
    with pytest.raises(SchemaError) as exc:
        sig.validate(pd.DataFrame({"a": [1.0]}))
    assert "'b'" in str(exc.value)
    assert exc.value.field == "b"


def test_wrong_dtype_names_column_expected_and_actual() -> None:
    sig = Signature((ColumnSpec("age", "float64"),))
    with pytest.raises(SchemaError) as exc:
        sig.validate(pd.DataFrame({"age": ["old", "young"]}))
    msg = str(exc.value)
    assert "'age'" in msg and "float64" in msg and "string" in msg


def test_float_into_int_is_refused_not_coerced() -> None:
    sig = Signature((ColumnSpec("n", "int64"),))
    with pytest.raises(SchemaError, match="expected dtype int64, got float64"):
        sig.validate(pd.DataFrame({"n": [1.5]}))


def test_int_out_of_range_refused() -> None:
    sig = Signature((ColumnSpec("n", "uint8"),))
    with pytest.raises(SchemaError, match="outside the uint8 range"):
        sig.validate(pd.DataFrame({"n": [300]}))


def test_validate_orders_and_drops_extra_columns() -> None:
    sig = Signature((ColumnSpec("b", "float32"), ColumnSpec("a", "int32")))
    out = sig.validate(pd.DataFrame({"a": [1], "z": ["extra"], "b": [2]}))
    assert list(out.columns) == ["b", "a"]
    assert out["b"].dtype == np.float32 and out["a"].dtype == np.int32


def test_bad_dtype_in_spec() -> None:
    with pytest.raises(InvalidInputError, match="dtype"):
        ColumnSpec("a", "complex128")


def test_compatible_reports_removed_and_narrowed() -> None:
    old = Signature((ColumnSpec("a", "float64"), ColumnSpec("b", "int32")))
    new = Signature((ColumnSpec("b", "int16"),))
    problems = compatible(old, new)
    assert "input 'a' was removed" in problems
    assert "input 'b' narrowed from int32 to int16" in problems
    assert compatible(old, Signature((ColumnSpec("a", "float64"), ColumnSpec("b", "int64")))) == []


@given(st.lists(st.integers(min_value=-(2**31), max_value=2**31 - 1), min_size=1, max_size=50))
def test_int_values_conform_losslessly(values: list[int]) -> None:
    sig = Signature((ColumnSpec("n", "int32"),))
    out = sig.validate(pd.DataFrame({"n": np.array(values, dtype=np.int64)}))
    assert out["n"].tolist() == values


def test_narrowing_float_overflow_refused_not_inf() -> None:
    sig = Signature((ColumnSpec("x", "float16"),))
    with pytest.raises(SchemaError, match="outside the float16 range"):
        sig.validate(pd.DataFrame({"x": [0.5, 1e6]}))
    out = sig.validate(pd.DataFrame({"x": [0.5, np.inf, np.nan]}))  # inf and NaN stay as sent
    assert np.isinf(out["x"].iloc[1]) and np.isnan(out["x"].iloc[2])
