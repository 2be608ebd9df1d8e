"""Drift detection between a reference (a :class:`Profile` or a DataFrame) and a current window.

Per column, by kind:

- numerical: two-sample Kolmogorov-Smirnov test (statistic and p-value as
  ``scipy.stats.ks_2samp``), PSI on the reference-quantile bins of the profile, and the
  Wasserstein-1 distance divided by the reference standard deviation;
- categorical: chi-square test of homogeneity on the 2 x K table of reference and current
  counts (as ``scipy.stats.chi2_contingency``), Jensen-Shannon distance (base 2), PSI over the
  reference categories plus one bucket for the rest, and the rate of unseen categories;
- both: the change of the missing rate (two-proportion z-test).

The p-values of the distribution tests are corrected across the columns tested (one family),
those of the missing-rate tests across the columns too (a second family). See
:class:`~lockgate.monitoring.config.DriftConfig` for the verdict rules.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lockgate.errors import InvalidInputError, SchemaError
from lockgate.monitoring.columns import category_counts, numeric_values
from lockgate.monitoring.config import DriftConfig
from lockgate.monitoring.profile import (
    CategoricalProfile,
    NumericalProfile,
    Profile,
    bin_counts,
    profile_column,
    psi_bins_of,
)
from lockgate.monitoring.report import ColumnDrift, DriftReport, Role, Verdict
from lockgate.monitoring.stats import (
    adjust_pvalues,
    chi2_2xk,
    compare_sorted,
    js_distance,
    ks_pvalue,
    psi,
    two_proportion_pvalue,
)


def detect_drift(
    reference: Profile | pd.DataFrame,
    current: pd.DataFrame,
    config: DriftConfig | None = None,
    columns: list[str] | None = None,
) -> DriftReport:
    """Test every column of ``reference`` (or only ``columns``) for drift in ``current``.

    ``reference`` is a stored :class:`Profile` (the fast path: nothing about the reference is
    recomputed) or a DataFrame, profiled on the fly. Without ``columns``, every reference column
    except timestamps (dtype ``datetime``) is tested. A requested column missing from either
    side raises :class:`~lockgate.errors.SchemaError`, as does a numerical reference column
    whose current values are not numbers.
    """
    config = DriftConfig() if config is None else config
    if not isinstance(config, DriftConfig):
        raise InvalidInputError.for_field("config", "a DriftConfig", type(config).__name__)
    if not isinstance(current, pd.DataFrame):
        raise InvalidInputError.for_field("current", "a pandas DataFrame", type(current).__name__)
    if isinstance(reference, pd.DataFrame):
        available = list(reference.columns)
        bad = [c for c in available if not isinstance(c, str)]
        if bad:
            raise InvalidInputError.for_field("reference.columns", "string names", bad)
        n_reference = len(reference)
    elif isinstance(reference, Profile):
        available = list(reference.columns)
        n_reference = reference.n_rows
    else:
        raise InvalidInputError.for_field(
            "reference", "a Profile or a pandas DataFrame", type(reference).__name__
        )
    names = _select_columns(reference, available, columns, config)
    absent = [n for n in names if n not in current.columns]
    doubled = sorted(set(current.columns[current.columns.duplicated()]) & set(names))
    if doubled:
        raise InvalidInputError.for_field("current.columns", "unique names", doubled)
    if absent:
        raise SchemaError.for_field(
            "current", "the reference columns " + ", ".join(absent), "a window without them"
        )

    def run(name: str) -> _Partial:
        ref = (
            reference.columns[name]
            if isinstance(reference, Profile)
            else profile_column(reference[name], name)
        )
        role: Role = "output" if name in config.output_columns else "feature"
        return _test_column(ref, current[name], role, config)

    workers = config.max_workers or min(4, os.cpu_count() or 1)
    if workers > 1 and len(names) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(names))) as pool:
            partials = list(pool.map(run, names))
    else:
        partials = [run(name) for name in names]
    return _assemble(partials, config, n_reference, len(current))


def _select_columns(
    reference: Profile | pd.DataFrame,
    available: list[str],
    columns: Sequence[str] | None,
    config: DriftConfig,
) -> list[str]:
    if columns is None:
        if isinstance(reference, Profile):
            names = [n for n, c in reference.columns.items() if c.dtype != "datetime"]
        else:
            names = [
                str(n)
                for n in reference.columns
                if not pd.api.types.is_datetime64_any_dtype(reference[n].dtype)
            ]
    else:
        if isinstance(columns, str) or not isinstance(columns, Sequence):
            raise InvalidInputError.for_field("columns", "a list of column names", columns)
        names = list(dict.fromkeys(columns))
        unknown = [n for n in names if n not in available]
        if unknown:
            raise SchemaError.for_field("columns", "columns of the reference", unknown)
    missing_outputs = [n for n in config.output_columns if n not in available]
    if missing_outputs:
        raise SchemaError.for_field("output_columns", "columns of the reference", missing_outputs)
    return names


@dataclass
class _Partial:
    """A column's results before the family-wise correction."""

    column: str
    role: Role
    kind: str
    rows_reference: int
    rows_current: int
    n_reference: int
    n_current: int
    missing_reference: int
    missing_current: int
    test: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    missing_p_value: float | None = None
    effect: dict[str, float] = field(default_factory=dict)
    material: dict[str, bool] = field(default_factory=dict)


def _test_column(
    ref: NumericalProfile | CategoricalProfile,
    series: pd.Series,
    role: Role,
    config: DriftConfig,
) -> _Partial:
    if isinstance(ref, NumericalProfile):
        values, n_missing = numeric_values(series, ref.name)
        part = _Partial(
            ref.name, role, "numerical", ref.count, len(series), ref.n_present,
            values.size, ref.n_missing, n_missing,
        )  # fmt: skip
        if _enough_values(part, config):
            _numerical(ref, np.sort(values), part, config)
    else:
        labels, counts, n_missing = category_counts(series)
        part = _Partial(
            ref.name, role, "categorical", ref.count, len(series), ref.n_present,
            int(counts.sum()), ref.n_missing, n_missing,
        )  # fmt: skip
        if _enough_values(part, config):
            _categorical(ref, labels, counts, part, config)
    if _enough(part, config):
        change = abs(
            part.missing_current / part.rows_current - part.missing_reference / part.rows_reference
        )
        part.effect["missing_rate_change"] = change
        part.material["missing_rate_change"] = _reaches(change, config.missing_rate_threshold)
        part.missing_p_value = two_proportion_pvalue(
            part.missing_reference, part.rows_reference, part.missing_current, part.rows_current
        )
    return part


def _enough(part: _Partial, config: DriftConfig) -> bool:
    return min(part.rows_reference, part.rows_current) >= config.min_sample_size


def _enough_values(part: _Partial, config: DriftConfig) -> bool:
    present = min(part.n_reference, part.n_current)
    return _enough(part, config) and present >= config.min_sample_size


def _numerical(ref: NumericalProfile, cur: np.ndarray, part: _Partial, config: DriftConfig) -> None:
    statistic, wasserstein = compare_sorted(ref.values, cur)
    samples = (ref.values, cur) if ref.exact else None
    part.test = "ks"
    part.statistic = statistic
    part.p_value = ks_pvalue(statistic, ref.n_present, cur.size, config.ks_method, samples)
    if config.psi_bins == ref.psi_bins:
        edges, ref_props = ref.psi_edges, ref.psi_proportions
    else:
        edges, ref_props = psi_bins_of(ref.values, config.psi_bins)
    cur_props = bin_counts(cur, edges) / cur.size
    part.effect["psi"] = psi(ref_props, cur_props, config.psi_epsilon)
    w_norm = _per_std(wasserstein, ref.std)
    part.effect["wasserstein_norm"] = w_norm
    part.material["psi"] = _reaches(part.effect["psi"], config.psi_threshold)
    part.material["wasserstein_norm"] = _reaches(w_norm, config.wasserstein_threshold)


def _categorical(
    ref: CategoricalProfile,
    labels: list[str],
    counts: np.ndarray,
    part: _Partial,
    config: DriftConfig,
) -> None:
    k = len(ref.categories)
    index = pd.Index(ref.categories, dtype=object).get_indexer(pd.Index(labels, dtype=object))
    seen = index >= 0
    cur_known = np.zeros(k, dtype=np.int64)
    cur_known[index[seen]] = counts[seen]  # labels are unique: no two land on one slot
    unseen = counts[~seen]
    n_unseen = int(unseen.sum())
    ref_counts = ref.counts
    if ref.other_count:
        # categories beyond the profiled ones cannot be told apart: one "other" column
        ref_table = np.append(ref_counts, ref.other_count)
        cur_table = np.append(cur_known, n_unseen)
    else:
        ref_table = np.concatenate([ref_counts, np.zeros(unseen.size, dtype=np.int64)])
        cur_table = np.concatenate([cur_known, unseen])
    statistic, p_value, _ = chi2_2xk(ref_table, cur_table)
    part.test = "chi2"
    part.statistic = statistic
    part.p_value = p_value
    ref_props = np.append(ref_counts, ref.other_count) / ref.n_present
    cur_props = np.append(cur_known, n_unseen) / part.n_current
    part.effect["psi"] = psi(ref_props, cur_props, config.psi_epsilon)
    part.effect["js_distance"] = js_distance(ref_table, cur_table)
    part.effect["unseen_rate"] = n_unseen / part.n_current
    part.material["psi"] = _reaches(part.effect["psi"], config.psi_threshold)
    part.material["js_distance"] = _reaches(part.effect["js_distance"], config.js_threshold)


def _per_std(distance: float, std: float) -> float:
    if std > 0:
        return distance / std
    # a constant reference (std 0, or undefined with one value): any move is infinitely large
    return 0.0 if distance == 0 else math.inf


def _reaches(value: float, threshold: float | None) -> bool:
    return threshold is not None and value >= threshold


def _assemble(
    partials: list[_Partial], config: DriftConfig, n_reference: int, n_current: int
) -> DriftReport:
    tested = [i for i, p in enumerate(partials) if p.p_value is not None]
    adjusted = adjust_pvalues([partials[i].p_value for i in tested], config.correction)  # type: ignore[misc]
    adj = dict(zip(tested, adjusted.tolist(), strict=True))
    m_tested = [i for i, p in enumerate(partials) if p.missing_p_value is not None]
    m_adjusted = adjust_pvalues(
        [partials[i].missing_p_value for i in m_tested],  # type: ignore[misc]
        config.correction,
    )
    m_adj = dict(zip(m_tested, m_adjusted.tolist(), strict=True))
    columns: list[ColumnDrift] = []
    for i, p in enumerate(partials):
        p_adj = adj.get(i)
        m_p_adj = m_adj.get(i)
        significant = p_adj is not None and p_adj < config.alpha
        missing_significant = m_p_adj is not None and m_p_adj < config.alpha
        reasons = tuple(name for name, hit in p.material.items() if hit)
        dist_material = any(v for k, v in p.material.items() if k != "missing_rate_change")
        missing_material = p.material.get("missing_rate_change", False)
        need = config.require_significance
        drift = (dist_material and (significant or not need)) or (
            missing_material and (missing_significant or not need)
        )
        verdict: Verdict
        if not _enough(p, config):
            verdict = "insufficient_data"
        elif drift:
            verdict = "drift"
        elif significant or missing_significant or dist_material or missing_material:
            verdict = "warning"
        else:
            verdict = "no_drift"
        columns.append(
            ColumnDrift(
                column=p.column,
                role=p.role,
                kind=p.kind,
                test=p.test,
                statistic=p.statistic,
                p_value=p.p_value,
                p_value_adjusted=p_adj,
                significant=significant,
                material=dist_material or missing_material,
                effect=p.effect,
                n_reference=p.n_reference,
                n_current=p.n_current,
                missing_rate_reference=_rate(p.missing_reference, p.rows_reference),
                missing_rate_current=_rate(p.missing_current, p.rows_current),
                missing_p_value=p.missing_p_value,
                missing_p_value_adjusted=m_p_adj,
                missing_significant=missing_significant,
                reasons=reasons,
                verdict=verdict,
            )
        )
    features = [c for c in columns if c.role == "feature" and c.verdict != "insufficient_data"]
    outputs = [c for c in columns if c.role == "output" and c.verdict != "insufficient_data"]
    n_tested = len(features)
    share_material = sum(c.material for c in features) / n_tested if n_tested else 0.0
    share_drifted = sum(c.verdict == "drift" for c in features) / n_tested if n_tested else 0.0
    return DriftReport(
        columns=columns,
        drifted=n_tested > 0 and share_drifted >= config.drift_share,
        share_material=share_material,
        share_drifted=share_drifted,
        n_tested=n_tested,
        output_drifted=any(c.verdict == "drift" for c in outputs) if outputs else None,
        n_reference=n_reference,
        n_current=n_current,
        config=config,
    )


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
