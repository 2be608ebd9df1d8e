"""Drift statistics as pure numpy functions, equal to their SciPy counterparts.

Every function here works on what a :class:`~lockgate.monitoring.profile.Profile` keeps (sorted
values, bin shares, category counts), so a reference is never recomputed per window:

- :func:`compare_sorted`: the two-sample Kolmogorov-Smirnov statistic and the Wasserstein-1
  distance in one O(n log n) pass over two sorted arrays (one ``searchsorted`` and a merge);
  equal to ``scipy.stats.ks_2samp(...).statistic`` and ``scipy.stats.wasserstein_distance``.
- :func:`ks_pvalue`: the p-value of ``ks_2samp`` for ``method`` auto / exact / asymp, taken from
  SciPy's own distributions (``scipy.stats`` is imported on first use, not at import time).
- :func:`chi2_2xk`: Pearson's chi-square test of homogeneity on the 2 x K table (reference
  counts, current counts), as ``scipy.stats.chi2_contingency`` with its defaults (Yates'
  continuity correction when the table has one degree of freedom).
- :func:`psi`, :func:`js_distance`, :func:`two_proportion_pvalue`, :func:`adjust_pvalues`.
"""

from __future__ import annotations

import math
from typing import Literal, TypeAlias

import numpy as np

KSMethod: TypeAlias = Literal["auto", "exact", "asymp"]
Correction: TypeAlias = Literal["holm", "bonferroni"]

#: ``ks_2samp(method="auto")`` is exact when both samples have at most this many values.
KS_MAX_AUTO_EXACT = 10_000


def compare_sorted(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """``(ks_statistic, wasserstein_1)`` of two sorted, finite, non-empty float64 arrays.

    The two arrays are merged (a stable merge: reference values first among ties) and the
    running counts give ``n1*n2*(F_ref - F_cur)`` as exact integers at every merged value; the
    KS statistic is the largest absolute difference at the last value of each group of ties,
    and Wasserstein-1 the integral of the absolute difference between consecutive values.
    """
    n1, n2 = reference.size, current.size
    total = n1 + n2
    both = np.concatenate([reference, current])
    order = np.argsort(both, kind="stable")  # timsort: a linear merge of the two sorted runs
    merged = both[order]
    del both
    from_ref = order < n1
    del order
    # n1*n2*(F_ref - F_cur) = c_ref*n2 - c_cur*n1: a running sum of +n2 per reference value
    # and -n1 per current value
    diff = from_ref.astype(np.int64)
    del from_ref
    diff *= total
    diff -= n1
    np.cumsum(diff, out=diff)
    np.abs(diff, out=diff)
    deltas = np.diff(merged)
    del merged
    last_of_ties = np.empty(total, dtype=bool)
    np.not_equal(deltas, 0.0, out=last_of_ties[:-1])
    last_of_ties[-1] = True
    scale = float(n1) * float(n2)
    ks = float(diff[last_of_ties].max()) / scale
    wasserstein = float(np.sum(diff[:-1] * deltas)) / scale
    return ks, wasserstein


def ks_pvalue(
    statistic: float,
    n1: int,
    n2: int,
    method: KSMethod = "auto",
    samples: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """Two-sided p-value of a two-sample KS statistic with the semantics of
    ``scipy.stats.ks_2samp``: ``auto`` is exact when ``max(n1, n2) <= 10_000`` and asymptotic
    otherwise. The exact distribution needs the ``samples`` (sorted arrays) and is delegated to
    ``ks_2samp`` itself; without them the asymptotic distribution is used. One deviation: with
    a single value on each side the asymptotic p-value is 1.0 where SciPy gives NaN."""
    if method == "auto":
        method = "exact" if max(n1, n2) <= KS_MAX_AUTO_EXACT else "asymp"
    if method == "exact" and samples is not None:
        import warnings

        from scipy.stats import ks_2samp

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy falls back to asymp
            return float(ks_2samp(samples[0], samples[1], method="exact").pvalue)
    from scipy.stats import kstwo

    m, n = sorted((float(n1), float(n2)), reverse=True)
    en = np.round(m * n / (m + n))
    if en < 1:  # one value on each side: scipy returns NaN, no evidence either way
        return 1.0
    return float(np.clip(kstwo.sf(statistic, en), 0.0, 1.0))


def chi2_2xk(reference: np.ndarray, current: np.ndarray) -> tuple[float, float, int]:
    """``(statistic, p_value, dof)`` of Pearson's chi-square test on the 2 x K table with
    rows ``reference`` and ``current`` (counts of the same K categories, each column non-zero),
    as ``scipy.stats.chi2_contingency(table)``: Yates-corrected when ``dof == 1``."""
    from scipy.special import chdtrc

    observed = np.vstack([reference, current]).astype(np.float64)
    dof = observed.shape[1] - 1
    if dof <= 0:
        return 0.0, 1.0, 0
    col = observed.sum(axis=0)
    row = observed.sum(axis=1)
    expected = np.multiply.outer(row, col) / observed.sum()
    if dof == 1:
        gap = expected - observed
        observed = observed + np.minimum(0.5, np.abs(gap)) * np.sign(gap)
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return statistic, float(chdtrc(dof, statistic)), dof


def psi(reference: np.ndarray, current: np.ndarray, epsilon: float = 1e-4) -> float:
    """Population stability index ``sum((q - p) * ln(q / p))`` of two vectors of bin shares;
    a share of zero is replaced by ``epsilon`` (in both vectors, without renormalising) so an
    empty bin costs a large but finite amount."""
    p = np.maximum(np.asarray(reference, dtype=np.float64), epsilon)
    q = np.maximum(np.asarray(current, dtype=np.float64), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2 (in [0, 1]) between two count or probability vectors,
    as ``scipy.spatial.distance.jensenshannon(p, q, base=2)``."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2.0
    divergence = (_rel_entr(p, m) + _rel_entr(q, m)).sum() / 2.0 / math.log(2.0)
    return math.sqrt(max(float(divergence), 0.0))


def _rel_entr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    pos = x > 0
    out[pos] = x[pos] * np.log(x[pos] / y[pos])
    return out


def two_proportion_pvalue(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of ``x1/n1`` against ``x2/n2``
    (1.0 when the pooled proportion is 0 or 1, where the test is undefined)."""
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if variance <= 0.0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2.0))


def adjust_pvalues(pvalues: np.ndarray | list[float], method: Correction = "holm") -> np.ndarray:
    """Family-wise adjusted p-values: Holm's step-down (default) or Bonferroni, capped at 1."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    if method != "holm":
        raise ValueError(f"unknown correction {method!r}")
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted
