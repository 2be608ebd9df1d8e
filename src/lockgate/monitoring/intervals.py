"""Confidence intervals and rank statistics used by :mod:`lockgate.monitoring.quality`:
normal quantiles, the Wilson score interval, percentile intervals of resamples, mid-ranks,
the rank form of ROC AUC and DeLong's variance of it. Pure numpy and the standard library."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence`` (1.96 for 0.95)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``; (0, 1) when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    z = z_value(confidence)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / n + z2n / (4 * n)) / (1 + z2n)
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, no rounding
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def normal_interval(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    """``mean ± z·sd/√n`` of ``values`` (None with fewer than two)."""
    n = values.size
    if n < 2:
        return None, None
    mean = float(values.mean())
    half = z_value(confidence) * float(values.std(ddof=1)) / math.sqrt(n)
    return mean - half, mean + half


def percentile_interval(
    samples: np.ndarray, confidence: float
) -> tuple[float | None, float | None]:
    """The central ``confidence`` range of resampled figures (non-finite ones ignored)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None, None
    a = (1 - confidence) / 2
    lo, hi = np.quantile(finite, [a, 1 - a])
    return float(lo), float(hi)


def midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their mean rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    n = x.size
    starts = np.flatnonzero(np.concatenate(([True], xs[1:] != xs[:-1])))
    ends = np.concatenate((starts[1:], [n]))
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of ``score`` for the boolean ``positive`` (the Mann-Whitney
    form, ties counted half); None with one class."""
    m = int(np.count_nonzero(positive))
    k = positive.size - m
    if m == 0 or k == 0:
        return None
    ranks = midranks(score)
    return float((ranks[positive].sum() - m * (m + 1) / 2) / (m * k))


def delong(
    score: np.ndarray, positive: np.ndarray, confidence: float
) -> tuple[float | None, float | None, float | None]:
    """ROC AUC and its interval from DeLong's variance (normal approximation, clipped to
    [0, 1]): ``(auc, low, high)``; None where undefined (one class; fewer than two of one)."""
    x, y = score[positive], score[~positive]
    m, k = x.size, y.size
    if m == 0 or k == 0:
        return None, None, None
    tz = midranks(np.concatenate((x, y)))
    auc = float((tz[:m].sum() - m * (m + 1) / 2) / (m * k))
    if m < 2 or k < 2:
        return auc, None, None
    v10 = (tz[:m] - midranks(x)) / k
    v01 = 1.0 - (tz[m:] - midranks(y)) / m
    se = math.sqrt(float(v10.var(ddof=1)) / m + float(v01.var(ddof=1)) / k)
    half = z_value(confidence) * se
    return auc, max(0.0, auc - half), min(1.0, auc + half)
