"""Reference profiles: what drift tests need to know about a reference data set, computed once.

A :class:`Profile` is built from a DataFrame (typically a model version's training data) by
:func:`compute_profile`, stored with the version as bytes (:meth:`Profile.to_bytes`, an ``.npz``
archive read back without pickle) and reused for every monitoring window.

Per numerical column it keeps the **sorted** finite reference values (all of them up to
:data:`MAX_EXACT_VALUES`, so the Kolmogorov-Smirnov statistic against a window is exact; above
that, :data:`MAX_EXACT_VALUES` evenly spaced order statistics), mean, standard deviation, missing
count and the population-stability (PSI) bins: interior edges at reference quantiles and the
reference share of each bin. Per categorical column it keeps the category counts (the
:data:`MAX_CATEGORIES` most frequent, the rest summed in ``other_count``) and the missing count.
A bounded uniform sample of rows is kept for display.
"""

from __future__ import annotations

import io
import json
import math
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lockgate.errors import InvalidInputError
from lockgate.monitoring.columns import Kind, category_counts, column_kind, numeric_values

#: Up to this many finite values per column, a profile keeps every value (KS is exact).
MAX_EXACT_VALUES = 1_000_000
#: A profile keeps the counts of at most this many categories per column.
MAX_CATEGORIES = 10_000
#: PSI bins computed at profile time.
DEFAULT_PSI_BINS = 10
#: Quantiles reported by :meth:`Profile.summary`.
SUMMARY_QUANTILES: dict[str, float] = {
    "p1": 0.01,
    "p5": 0.05,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}
#: Categories listed per column by :meth:`Profile.summary`.
SUMMARY_TOP_CATEGORIES = 10

FORMAT = "lockgate.profile"
FORMAT_VERSION = 1


class ProfileVersionWarning(UserWarning):
    """A stored profile was written by another Lockgate version than the one reading it."""


@cache
def _lockgate_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lockgate")
    except PackageNotFoundError:
        return "unknown"


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class ColumnProfile:
    """What every column profile has. ``count`` counts rows, ``n_missing`` the missing ones."""

    name: str
    kind: ClassVar[Kind]
    dtype: str
    count: int
    n_missing: int

    @property
    def n_present(self) -> int:
        """Rows with a (finite, non-missing) value."""
        return self.count - self.n_missing

    @property
    def missing_rate(self) -> float:
        return self.n_missing / self.count if self.count else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dtype": self.dtype,
            "count": self.count,
            "missing": self.n_missing,
            "missing_rate": self.missing_rate,
        }


@dataclass(frozen=True, eq=False)
class NumericalProfile(ColumnProfile):
    """A numerical column. ``values`` are sorted; ``exact`` says whether they are all the
    finite reference values or evenly spaced order statistics of them. ``psi_edges`` are the
    interior bin edges (bins are ``(-inf, e0], (e0, e1], ..., (e_last, inf)``) and
    ``psi_proportions`` the reference share of each bin."""

    kind: ClassVar[Kind] = "numerical"
    values: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    exact: bool = True
    mean: float = math.nan
    std: float = math.nan
    psi_bins: int = DEFAULT_PSI_BINS
    psi_edges: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    psi_proportions: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    @property
    def min(self) -> float:
        return float(self.values[0]) if self.values.size else math.nan

    @property
    def max(self) -> float:
        return float(self.values[-1]) if self.values.size else math.nan

    def quantiles(self, qs: np.ndarray | list[float]) -> np.ndarray:
        """Reference quantiles (linear interpolation, as ``numpy.quantile``)."""
        if not self.values.size:
            return np.full(len(qs), np.nan)
        return np.asarray(np.quantile(self.values, qs), dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        qs = self.quantiles(list(SUMMARY_QUANTILES.values()))
        return {
            **super().summary(),
            "mean": _num(self.mean),
            "std": _num(self.std),
            "min": _num(self.min),
            "max": _num(self.max),
            "quantiles": {k: _num(v) for k, v in zip(SUMMARY_QUANTILES, qs, strict=True)},
        }


@dataclass(frozen=True, eq=False)
class CategoricalProfile(ColumnProfile):
    """A categorical column: category labels, most frequent first, with their counts;
    ``other_count`` sums the categories beyond :data:`MAX_CATEGORIES`."""

    kind: ClassVar[Kind] = "categorical"
    categories: tuple[str, ...] = ()
    counts: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0, np.int64))
    other_count: int = 0

    def summary(self) -> dict[str, Any]:
        present = self.n_present
        top = [
            {"value": c, "count": int(n), "frequency": int(n) / present}
            for c, n in zip(
                self.categories[:SUMMARY_TOP_CATEGORIES],
                self.counts[:SUMMARY_TOP_CATEGORIES].tolist(),
                strict=True,
            )
        ]
        return {
            **super().summary(),
            "n_categories": len(self.categories) + (1 if self.other_count else 0),
            "other_count": self.other_count,
            "top": top,
        }


@dataclass(frozen=True, eq=False)
class Profile:
    """The reference profile of a data set: per-column profiles, row count and a row sample."""

    columns: Mapping[str, NumericalProfile | CategoricalProfile]
    n_rows: int
    sample: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    lockgate_version: str = field(default_factory=_lockgate_version)

    def summary(self) -> dict[str, Any]:
        """A JSON-serialisable summary: ``{"n_rows", "n_columns", "columns": {name: {...}}}``.
        Every column has kind, dtype, count, missing, missing_rate; numerical ones add mean,
        std, min, max and quantiles p1..p99; categorical ones n_categories and the top
        categories with count and frequency. Undefined numbers (std of one value) are None."""
        return {
            "n_rows": self.n_rows,
            "n_columns": len(self.columns),
            "columns": {name: col.summary() for name, col in self.columns.items()},
        }

    def to_bytes(self) -> bytes:
        """An ``.npz`` archive (no pickled objects): a JSON header, one array per column
        statistic and the row sample as Arrow IPC."""
        meta: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "lockgate_version": self.lockgate_version,
            "n_rows": self.n_rows,
            "columns": [],
        }
        arrays: dict[str, np.ndarray] = {}
        for i, col in enumerate(self.columns.values()):
            entry: dict[str, Any] = {
                "name": col.name,
                "kind": col.kind,
                "dtype": col.dtype,
                "count": col.count,
                "n_missing": col.n_missing,
            }
            if isinstance(col, NumericalProfile):
                entry.update(
                    exact=col.exact, mean=_num(col.mean), std=_num(col.std), psi_bins=col.psi_bins
                )
                arrays[f"c{i}_values"] = col.values
                arrays[f"c{i}_edges"] = col.psi_edges
                arrays[f"c{i}_props"] = col.psi_proportions
            else:
                entry.update(categories=list(col.categories), other_count=col.other_count)
                arrays[f"c{i}_counts"] = col.counts
            meta["columns"].append(entry)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        arrays["sample"] = np.frombuffer(_sample_to_ipc(self.sample), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, b: bytes) -> Profile:
        """Read a profile written by :meth:`to_bytes`. Never unpickles anything."""
        if not isinstance(b, bytes | bytearray | memoryview):
            raise InvalidInputError.for_field("profile", "bytes", type(b).__name__)
        try:
            with np.load(io.BytesIO(bytes(b)), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            meta = json.loads(arrays["meta"].tobytes().decode())
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
            raise InvalidInputError.for_field(
                "profile", "bytes written by Profile.to_bytes", f"{len(b)} other bytes"
            ) from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise InvalidInputError.for_field(
                "profile", "bytes written by Profile.to_bytes", "another .npz archive"
            )
        if meta.get("format_version") != FORMAT_VERSION:
            raise InvalidInputError.for_field(
                "profile.format_version", str(FORMAT_VERSION), meta.get("format_version")
            )
        if meta.get("lockgate_version") != _lockgate_version():
            warnings.warn(
                ProfileVersionWarning(
                    f"profile written by lockgate {meta.get('lockgate_version')}, "
                    f"read by {_lockgate_version()}"
                ),
                stacklevel=2,
            )
        columns: dict[str, NumericalProfile | CategoricalProfile] = {}
        try:
            for i, e in enumerate(meta["columns"]):
                base = {
                    "name": e["name"],
                    "dtype": e["dtype"],
                    "count": int(e["count"]),
                    "n_missing": int(e["n_missing"]),
                }
                if e["kind"] == "numerical":
                    columns[e["name"]] = NumericalProfile(
                        **base,
                        values=_frozen(arrays[f"c{i}_values"].astype(np.float64, copy=False)),
                        exact=bool(e["exact"]),
                        mean=_float(e["mean"]),
                        std=_float(e["std"]),
                        psi_bins=int(e["psi_bins"]),
                        psi_edges=_frozen(arrays[f"c{i}_edges"]),
                        psi_proportions=_frozen(arrays[f"c{i}_props"]),
                    )
                else:
                    columns[e["name"]] = CategoricalProfile(
                        **base,
                        categories=tuple(e["categories"]),
                        counts=_frozen(arrays[f"c{i}_counts"].astype(np.int64, copy=False)),
                        other_count=int(e["other_count"]),
                    )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError.for_field(
                "profile", "a complete Lockgate profile", f"a damaged one ({exc})"
            ) from exc
        return cls(
            columns=columns,
            n_rows=int(meta["n_rows"]),
            sample=_sample_from_ipc(arrays["sample"].tobytes()),
            lockgate_version=str(meta.get("lockgate_version")),
        )


def compute_profile(data: pd.DataFrame, *, max_sample: int = 10_000, seed: int = 0) -> Profile:
    """Profile every column of ``data`` (see the module docstring for what is kept).

    ``max_sample`` bounds the rows kept for display (drawn uniformly with ``seed``, in their
    original order); it does not affect any statistic.
    """
    if not isinstance(data, pd.DataFrame):
        raise InvalidInputError.for_field("data", "a pandas DataFrame", type(data).__name__)
    if not _is_int(max_sample) or max_sample < 0:
        raise InvalidInputError.for_field("max_sample", "an int >= 0", max_sample)
    if not _is_int(seed):
        raise InvalidInputError.for_field("seed", "an int", seed)
    names = list(data.columns)
    for name in names:
        if not isinstance(name, str) or not name:
            raise InvalidInputError.for_field("data.columns", "non-empty string names", name)
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInputError.for_field("data.columns", "unique names", dupes)
    columns = {name: profile_column(data[name], name) for name in names}
    n = len(data)
    k = min(int(max_sample), n)
    rows = np.sort(np.random.default_rng(int(seed)).choice(n, size=k, replace=False))
    sample = data.iloc[rows].reset_index(drop=True)
    return Profile(columns=columns, n_rows=n, sample=sample)


def profile_column(series: pd.Series, name: str) -> NumericalProfile | CategoricalProfile:
    """The profile of one column."""
    kind, dtype = column_kind(series)
    if kind == "numerical":
        values, n_missing = numeric_values(series, name)
        return numerical_profile(np.sort(values), name=name, dtype=dtype, n_missing=n_missing)
    labels, counts, n_missing = category_counts(series)
    return CategoricalProfile(
        name=name,
        dtype=dtype,
        count=len(series),
        n_missing=n_missing,
        categories=tuple(labels[:MAX_CATEGORIES]),
        counts=_frozen(counts[:MAX_CATEGORIES].copy()),
        other_count=int(counts[MAX_CATEGORIES:].sum()),
    )


def numerical_profile(
    sorted_values: np.ndarray,
    *,
    name: str,
    dtype: str = "float64",
    n_missing: int = 0,
    psi_bins: int = DEFAULT_PSI_BINS,
) -> NumericalProfile:
    """The profile of a numerical column from its sorted finite values."""
    n = sorted_values.size
    with np.errstate(over="ignore", invalid="ignore"):  # |values| near float max: inf/nan
        mean = float(sorted_values.mean()) if n else math.nan
        std = float(sorted_values.std(ddof=1)) if n > 1 else math.nan
    edges, props = psi_bins_of(sorted_values, psi_bins)
    if n > MAX_EXACT_VALUES:
        idx = np.round(np.linspace(0, n - 1, MAX_EXACT_VALUES)).astype(np.int64)
        kept, exact = sorted_values[idx], False
    else:
        kept, exact = sorted_values, True
    return NumericalProfile(
        name=name,
        dtype=dtype,
        count=n + n_missing,
        n_missing=n_missing,
        values=_frozen(np.ascontiguousarray(kept, dtype=np.float64)),
        exact=exact,
        mean=mean,
        std=std,
        psi_bins=psi_bins,
        psi_edges=_frozen(edges),
        psi_proportions=_frozen(props),
    )


def psi_bins_of(sorted_values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Interior PSI bin edges at the reference quantiles ``1/bins .. (bins-1)/bins`` and the
    share of values per bin. Edges are observed values (``inverted_cdf`` quantiles), so with
    right-closed bins each holds ``1/bins`` of distinct continuous values; repeated edges are
    merged, so a discrete column gets one bin per distinct value at most."""
    if not sorted_values.size:
        return np.empty(0), np.empty(0)
    qs = np.arange(1, bins) / bins
    edges = np.unique(np.quantile(sorted_values, qs, method="inverted_cdf"))
    return edges, bin_counts(sorted_values, edges) / sorted_values.size


def bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of sorted values in the bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)``."""
    cum = np.searchsorted(sorted_values, edges, side="right")
    return np.diff(np.concatenate(([0], cum, [sorted_values.size])))


def _sample_to_ipc(sample: pd.DataFrame) -> bytes:
    import pyarrow as pa

    frame = sample.copy()
    for name in frame.columns:
        try:
            pa.array(frame[name], from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError):
            frame[name] = frame[name].map(lambda v: None if v is None or v != v else str(v))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _sample_from_ipc(b: bytes) -> pd.DataFrame:
    import pyarrow as pa

    try:
        with pa.ipc.open_stream(b) as reader:
            return reader.read_all().to_pandas()
    except pa.ArrowException as exc:
        raise InvalidInputError.for_field(
            "profile.sample", "an Arrow IPC stream", "damaged bytes"
        ) from exc


def _is_int(v: object) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _float(v: float | None) -> float:
    return math.nan if v is None else float(v)
