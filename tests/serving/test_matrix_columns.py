"""A batch decoded as one 2-D tensor gives its columns by name as views made on first use:
the same values, names and order as a dict of columns, without the per-request views."""

from __future__ import annotations

import numpy as np
import pytest

from lockgate.batch import Batch, MatrixColumns

NAMES = ("a", "b", "c")


def test_columns_are_views_of_the_matrix_in_signature_order() -> None:
    m = np.arange(12, dtype=np.float64).reshape(4, 3)
    b = Batch.from_matrix(NAMES, m)
    assert isinstance(b.columns, MatrixColumns)
    assert b.columns._views is None  # nothing made yet
    assert list(b.columns) == list(NAMES) and len(b.columns) == 3
    assert "b" in b.columns and "z" not in b.columns
    np.testing.assert_array_equal(b.columns["b"], m[:, 1])
    assert np.shares_memory(b.columns["b"], m)
    assert b.columns["c"] is b.columns["c"]  # made once
    as_dict = dict(b.columns.items())
    assert list(as_dict) == list(NAMES)
    for i, name in enumerate(NAMES):
        np.testing.assert_array_equal(as_dict[name], m[:, i])
    assert b.n_rows == 4 and b.matrix() is m and b.built_matrix is m
    assert b.frame().columns.tolist() == list(NAMES)


def test_an_unknown_column_is_a_key_error() -> None:
    b = Batch.from_matrix(NAMES, np.zeros((1, 3)))
    with pytest.raises(KeyError):
        b.columns["z"]
    assert b.columns.get("z") is None


def test_names_and_matrix_must_agree() -> None:
    with pytest.raises(ValueError, match="3 columns"):
        MatrixColumns(NAMES, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="3 columns"):
        MatrixColumns(NAMES, np.zeros(3))


def test_concat_of_matrix_batches_keeps_one_matrix() -> None:
    a = Batch.from_matrix(NAMES, np.zeros((2, 3)))
    b = Batch.from_matrix(NAMES, np.ones((1, 3)))
    both = Batch.concat([a, b])
    assert both.n_rows == 3 and both.built_matrix is not None
    np.testing.assert_array_equal(both.columns["a"], [0.0, 0.0, 1.0])
