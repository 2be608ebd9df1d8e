from __future__ import annotations

import io
import json
import math
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.errors import InvalidInputError, SchemaError
from lockgate.monitoring import (
    CategoricalProfile,
    NumericalProfile,
    Profile,
    ProfileVersionWarning,
    compute_profile,
)
from lockgate.monitoring import profile as profile_module


def _frame(n: int = 1000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n)
    age[::10] = np.nan
    return pd.DataFrame(
        {
            "age": age,
            "visits": rng.poisson(3, n),
            "income": pd.array(rng.integers(0, 100, n), dtype="Int64"),
            "city": rng.choice(["paris", "lyon", "nice"], n, p=[0.6, 0.3, 0.1]),
            "member": rng.random(n) < 0.25,
            "tier": pd.Categorical(rng.choice([1, 2, 3], n)),
            "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 1e6, n), "s"),
        }
    )


def test_kinds_and_dtypes() -> None:
    prof = compute_profile(_frame())
    kinds = {name: (c.kind, c.dtype) for name, c in prof.columns.items()}
    assert kinds == {
        "age": ("numerical", "float64"),
        "visits": ("numerical", "int64"),
        "income": ("numerical", "int64"),
        "city": ("categorical", "string"),
        "member": ("categorical", "bool"),
        "tier": ("categorical", "category"),
        "signup": ("numerical", "datetime"),
    }
    assert prof.n_rows == 1000


def test_numerical_profile_keeps_sorted_values_and_psi_bins() -> None:
    df = _frame()
    col = compute_profile(df).columns["age"]
    assert isinstance(col, NumericalProfile)
    finite = df["age"].dropna().to_numpy()
    np.testing.assert_array_equal(col.values, np.sort(finite))
    assert col.exact
    assert col.n_missing == 100 and col.missing_rate == pytest.approx(0.1)
    assert col.mean == pytest.approx(finite.mean())
    assert col.std == pytest.approx(finite.std(ddof=1))
    ordered = np.sort(finite)
    np.testing.assert_array_equal(col.psi_edges, ordered[np.arange(90, 900, 90) - 1])
    np.testing.assert_allclose(col.psi_proportions, 0.1)
    with pytest.raises(ValueError):
        col.values[0] = 1.0  # read-only: profiles are immutable


def test_discrete_column_merges_repeated_edges() -> None:
    df = pd.DataFrame({"x": np.repeat([0.0, 1.0, 2.0], [700, 200, 100])})
    col = compute_profile(df).columns["x"]
    assert isinstance(col, NumericalProfile)
    np.testing.assert_array_equal(col.psi_edges, [0.0, 1.0])
    np.testing.assert_allclose(col.psi_proportions, [0.7, 0.2, 0.1])


def test_categorical_profile_counts() -> None:
    df = pd.DataFrame(
        {"c": ["a", "b", None, "a", "a", "b", "c"], "f": [1.0, 2, 1, np.nan, 1, 2, 1]}
    )
    df["f"] = df["f"].astype("category")
    prof = compute_profile(df)
    c = prof.columns["c"]
    assert isinstance(c, CategoricalProfile)
    assert c.categories == ("a", "b", "c")
    assert c.counts.tolist() == [3, 2, 1]
    assert c.n_missing == 1 and c.count == 7
    f = prof.columns["f"]
    assert isinstance(f, CategoricalProfile)
    assert f.categories == ("1", "2")  # integral floats labelled as integers
    assert f.counts.tolist() == [4, 2]


def test_infinities_count_as_missing() -> None:
    df = pd.DataFrame({"x": [1.0, np.inf, -np.inf, np.nan, 2.0]})
    col = compute_profile(df).columns["x"]
    assert isinstance(col, NumericalProfile)
    assert col.n_missing == 3
    assert col.values.tolist() == [1.0, 2.0]


def test_large_column_keeps_evenly_spaced_order_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile_module, "MAX_EXACT_VALUES", 101)
    values = np.arange(1001, dtype=float)
    col = compute_profile(pd.DataFrame({"x": values[::-1]})).columns["x"]
    assert isinstance(col, NumericalProfile)
    assert not col.exact
    np.testing.assert_array_equal(col.values, np.arange(0, 1001, 10, dtype=float))
    assert col.count == 1001 and col.mean == 500.0


def test_sample_is_bounded_and_reproducible() -> None:
    df = _frame(5000)
    a = compute_profile(df, max_sample=100, seed=3)
    b = compute_profile(df, max_sample=100, seed=3)
    c = compute_profile(df, max_sample=100, seed=4)
    assert len(a.sample) == 100
    pd.testing.assert_frame_equal(a.sample, b.sample)
    assert not a.sample["age"].equals(c.sample["age"])
    assert len(compute_profile(df.head(10), max_sample=100).sample) == 10
    assert len(compute_profile(df, max_sample=0).sample) == 0


def test_summary_is_json_and_complete() -> None:
    prof = compute_profile(_frame())
    summary = json.loads(json.dumps(prof.summary(), allow_nan=False))
    age = summary["columns"]["age"]
    assert age["kind"] == "numerical" and age["dtype"] == "float64"
    assert age["count"] == 1000 and age["missing_rate"] == pytest.approx(0.1)
    assert set(age["quantiles"]) == {"p1", "p5", "p25", "p50", "p75", "p95", "p99"}
    assert age["min"] <= age["quantiles"]["p1"] <= age["quantiles"]["p99"] <= age["max"]
    city = summary["columns"]["city"]
    assert city["kind"] == "categorical"
    assert [t["value"] for t in city["top"]] == ["paris", "lyon", "nice"]
    assert sum(t["frequency"] for t in city["top"]) == pytest.approx(1.0)
    one = compute_profile(pd.DataFrame({"x": [1.0]})).summary()["columns"]["x"]
    assert one["std"] is None and one["mean"] == 1.0


def test_round_trip_through_bytes() -> None:
    prof = compute_profile(_frame(), max_sample=50)
    blob = prof.to_bytes()
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        for name in zf.namelist():
            assert zf.read(name)[:6] == b"\x93NUMPY"  # plain .npy members
    back = Profile.from_bytes(blob)
    assert back.n_rows == prof.n_rows
    assert back.summary() == prof.summary()
    assert list(back.columns) == list(prof.columns)
    for name, col in prof.columns.items():
        other = back.columns[name]
        assert type(other) is type(col)
        if isinstance(col, NumericalProfile):
            assert isinstance(other, NumericalProfile)
            np.testing.assert_array_equal(other.values, col.values)
            np.testing.assert_array_equal(other.psi_edges, col.psi_edges)
            np.testing.assert_array_equal(other.psi_proportions, col.psi_proportions)
            assert other.exact == col.exact
        else:
            assert isinstance(other, CategoricalProfile)
            assert other.categories == col.categories
            np.testing.assert_array_equal(other.counts, col.counts)
    assert back.sample.shape == (50, 7)
    np.testing.assert_array_equal(back.sample["age"].to_numpy(), prof.sample["age"].to_numpy())
    assert back.sample["city"].tolist() == prof.sample["city"].tolist()


def test_round_trip_mixed_object_sample_and_empty_frame() -> None:
    df = pd.DataFrame({"m": pd.Series([1, "a", None, 2.5], dtype=object)})
    back = Profile.from_bytes(compute_profile(df).to_bytes())
    got = back.sample["m"].tolist()
    assert got[:2] == ["1", "a"] and pd.isna(got[2]) and got[3] == "2.5"
    assert back.columns["m"].kind == "categorical"
    empty = Profile.from_bytes(compute_profile(pd.DataFrame()).to_bytes())
    assert empty.n_rows == 0 and not empty.columns


def test_from_bytes_rejects_garbage_and_pickles() -> None:
    with pytest.raises(InvalidInputError) as err:
        Profile.from_bytes(b"not a profile")
    assert err.value.field == "profile"
    buf = io.BytesIO()
    np.savez(buf, meta=np.array([{"format": "lockgate.profile"}], dtype=object))
    with pytest.raises(InvalidInputError):
        Profile.from_bytes(buf.getvalue())  # object arrays need pickle: refused
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(b'{"format": "other"}', dtype=np.uint8))
    with pytest.raises(InvalidInputError):
        Profile.from_bytes(buf.getvalue())


def test_from_bytes_warns_on_other_version_and_refuses_future_format() -> None:
    prof = compute_profile(pd.DataFrame({"x": [1.0, 2.0]}))
    old = Profile(columns=prof.columns, n_rows=2, sample=prof.sample, lockgate_version="0.0.1")
    with pytest.warns(ProfileVersionWarning):
        Profile.from_bytes(old.to_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Profile.from_bytes(prof.to_bytes())
    with np.load(io.BytesIO(prof.to_bytes()), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["format_version"] = 99
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(InvalidInputError) as err:
        Profile.from_bytes(buf.getvalue())
    assert err.value.field == "profile.format_version"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"data": [1, 2]}, "data"),
        ({"data": pd.DataFrame({"x": [1]}), "max_sample": -1}, "max_sample"),
        ({"data": pd.DataFrame({"x": [1]}), "max_sample": 1.5}, "max_sample"),
        ({"data": pd.DataFrame({"x": [1]}), "seed": "a"}, "seed"),
        ({"data": pd.DataFrame({0: [1]})}, "data.columns"),
        ({"data": pd.DataFrame([[1, 2]], columns=["a", "a"])}, "data.columns"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, object], field: str) -> None:
    data = kwargs.pop("data")
    with pytest.raises(InvalidInputError) as err:
        compute_profile(data, **kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_non_numeric_values_in_numeric_object_column_are_a_schema_error() -> None:
    from lockgate.monitoring.columns import numeric_values

    with pytest.raises(SchemaError) as err:
        numeric_values(pd.Series(["1", "x"], dtype=object), "age")
    assert err.value.field == "age"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.none()),
        min_size=0,
        max_size=200,
    )
)
def test_numerical_profile_invariants(values: list[float | None]) -> None:
    series = pd.Series([np.nan if v is None else v for v in values], dtype=float)
    col = compute_profile(pd.DataFrame({"x": series})).columns["x"]
    assert isinstance(col, NumericalProfile)
    finite = series[np.isfinite(series)].to_numpy()
    assert col.count == len(values) and col.n_present == finite.size
    assert 0.0 <= col.missing_rate <= 1.0
    assert np.all(np.diff(col.values) >= 0)
    if finite.size:
        assert col.psi_proportions.sum() == pytest.approx(1.0)
        assert len(col.psi_proportions) == len(col.psi_edges) + 1 <= 10
        assert np.all(np.diff(col.psi_edges) > 0)
        assert col.min == finite.min() and col.max == finite.max()
        if math.isfinite(col.mean):
            assert col.min - 1e-9 * abs(col.min) <= col.mean <= col.max + 1e-9 * abs(col.max)
    back = Profile.from_bytes(compute_profile(pd.DataFrame({"x": series})).to_bytes())
    np.testing.assert_array_equal(back.columns["x"].values, col.values)  # type: ignore[union-attr]
