"""Statistics of an A/B comparison: two-sided tests with a p-value and a confidence interval of
the difference (candidate minus baseline), and the minimum sample size below which no winner
is declared, however small the p-value.

- proportions (accuracy, a conversion rate): the pooled two-proportion z-test for the p-value
  and the unpooled Wald interval of the difference;
- means (a business metric such as revenue, an absolute error): Welch's t-test (unequal
  variances) and its t interval, equal to ``scipy.stats.ttest_ind(equal_var=False)``.

Pure functions over counts and arrays; ``scipy.stats`` is imported on first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np

from lockgate.errors import InvalidInputError
from lockgate.monitoring.stats import two_proportion_pvalue

Goal: TypeAlias = Literal["maximize", "minimize"]
Winner: TypeAlias = Literal["candidate", "baseline"]


@dataclass(frozen=True)
class ArmSummary:
    version: int
    n: int
    mean: float
    std: float

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "n": self.n, "mean": _f(self.mean), "std": _f(self.std)}


@dataclass(frozen=True)
class ABResult:
    """One metric compared between two arms. ``difference`` is candidate minus baseline;
    ``winner`` is set only when both arms have ``min_samples`` and ``p_value < alpha``."""

    metric: str
    test: Literal["two_proportion_z", "welch_t"]
    goal: Goal
    baseline: ArmSummary
    candidate: ArmSummary
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    alpha: float
    min_samples: int
    winner: Winner | None
    reason: str

    @property
    def enough(self) -> bool:
        return min(self.baseline.n, self.candidate.n) >= self.min_samples

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "test": self.test,
            "goal": self.goal,
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
            "difference": _f(self.difference),
            "ci": [_f(self.ci_low), _f(self.ci_high)],
            "confidence": self.confidence,
            "p_value": _f(self.p_value),
            "alpha": self.alpha,
            "min_samples": self.min_samples,
            "enough_samples": self.enough,
            "winner": self.winner,
            "reason": self.reason,
        }


def _f(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _check(alpha: float, min_samples: int) -> None:
    if not isinstance(alpha, float | int) or not 0 < alpha < 1:
        raise InvalidInputError.for_field("alpha", "a number in (0, 1)", alpha)
    if not isinstance(min_samples, int) or isinstance(min_samples, bool) or min_samples < 2:
        raise InvalidInputError.for_field("min_samples", "an int >= 2", min_samples)


def _z(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def _verdict(
    diff: float, p: float, n_min: int, alpha: float, min_samples: int, goal: Goal
) -> tuple[Winner | None, str]:
    if n_min < min_samples:
        return None, f"no winner before {min_samples} samples per arm (smallest arm: {n_min})"
    if not math.isfinite(p) or p >= alpha:
        return None, f"no significant difference (p={p:.3g} >= alpha={alpha:g})"
    better = diff > 0 if goal == "maximize" else diff < 0
    who: Winner = "candidate" if better else "baseline"
    return who, f"{who} is better (p={p:.3g} < alpha={alpha:g})"


def compare_proportions(
    metric: str,
    baseline: tuple[int, int, int],
    candidate: tuple[int, int, int],
    *,
    alpha: float = 0.05,
    min_samples: int = 100,
    goal: Goal = "maximize",
) -> ABResult:
    """Compare ``successes / n`` of two arms given as ``(version, successes, n)``."""
    _check(alpha, min_samples)
    (v1, x1, n1), (v2, x2, n2) = baseline, candidate
    p1 = x1 / n1 if n1 else math.nan
    p2 = x2 / n2 if n2 else math.nan
    diff = p2 - p1
    if n1 and n2:
        p = two_proportion_pvalue(x2, n2, x1, n1)
        se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
        half = _z(1 - alpha / 2) * se
    else:
        p, half = math.nan, math.nan
    winner, reason = _verdict(diff, p, min(n1, n2), alpha, min_samples, goal)
    return ABResult(
        metric,
        "two_proportion_z",
        goal,
        ArmSummary(v1, n1, p1, math.sqrt(p1 * (1 - p1)) if n1 else math.nan),
        ArmSummary(v2, n2, p2, math.sqrt(p2 * (1 - p2)) if n2 else math.nan),
        diff,
        diff - half,
        diff + half,
        1 - alpha,
        p,
        alpha,
        min_samples,
        winner,
        reason,
    )


def compare_means(
    metric: str,
    baseline: tuple[int, np.ndarray],
    candidate: tuple[int, np.ndarray],
    *,
    alpha: float = 0.05,
    min_samples: int = 100,
    goal: Goal = "maximize",
) -> ABResult:
    """Welch's two-sided t-test of the means of two arms given as ``(version, values)``."""
    _check(alpha, min_samples)
    (v1, a), (v2, b) = baseline, candidate
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    n1, n2 = a.size, b.size
    m1 = float(a.mean()) if n1 else math.nan
    m2 = float(b.mean()) if n2 else math.nan
    s1 = float(a.std(ddof=1)) if n1 > 1 else math.nan
    s2 = float(b.std(ddof=1)) if n2 > 1 else math.nan
    diff = m2 - m1
    p, lo, hi = math.nan, math.nan, math.nan
    if n1 > 1 and n2 > 1:
        from scipy.stats import t as student_t

        va, vb = s1 * s1 / n1, s2 * s2 / n2
        se = math.sqrt(va + vb)
        if se > 0:
            df = (va + vb) ** 2 / (va * va / (n1 - 1) + vb * vb / (n2 - 1))
            p = float(2 * student_t.sf(abs(diff) / se, df))
            half = float(student_t.ppf(1 - alpha / 2, df)) * se
            lo, hi = diff - half, diff + half
        else:  # both arms constant: equal means are no evidence, different ones are certain
            p = 1.0 if diff == 0 else 0.0
            lo = hi = diff
    winner, reason = _verdict(diff, p, min(n1, n2), alpha, min_samples, goal)
    return ABResult(
        metric,
        "welch_t",
        goal,
        ArmSummary(v1, n1, m1, s1),
        ArmSummary(v2, n2, m2, s2),
        diff,
        lo,
        hi,
        1 - alpha,
        p,
        alpha,
        min_samples,
        winner,
        reason,
    )


def required_sample_size(
    baseline_rate: float, min_effect: float, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Samples per arm for a two-sided two-proportion test to detect an absolute change of
    ``min_effect`` from ``baseline_rate`` with the given power (the classical formula)."""
    if not 0 < baseline_rate < 1:
        raise InvalidInputError.for_field("baseline_rate", "a number in (0, 1)", baseline_rate)
    p2 = baseline_rate + min_effect
    if min_effect == 0 or not 0 < p2 < 1:
        raise InvalidInputError.for_field(
            "min_effect", "a non-zero change keeping the rate in (0, 1)", min_effect
        )
    if not 0 < power < 1:
        raise InvalidInputError.for_field("power", "a number in (0, 1)", power)
    _check(alpha, 2)
    p1 = baseline_rate
    pbar = (p1 + p2) / 2
    za, zb = _z(1 - alpha / 2), _z(power)
    n = (
        za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2 / min_effect**2
    return math.ceil(n)
