"""The drift statistics against SciPy and against naive implementations written here."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from lockgate.monitoring.stats import (
    adjust_pvalues,
    chi2_2xk,
    compare_sorted,
    js_distance,
    ks_pvalue,
    psi,
    two_proportion_pvalue,
)

TOL = 1e-9

# scipy's own reference calls warn on degenerate samples (exact-to-asymp fallback, n=1)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

# values from a small grid (many ties) or anywhere: KS and Wasserstein must handle both
tied = st.integers(min_value=-5, max_value=5).map(float)
spread = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(st.one_of(tied, spread), min_size=1, max_size=80)


def close(a: float, b: float, tol: float = TOL) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def naive_ecdf(values: list[float], x: float) -> float:
    return sum(v <= x for v in values) / len(values)


def naive_ks(a: list[float], b: list[float]) -> float:
    return max(abs(naive_ecdf(a, x) - naive_ecdf(b, x)) for x in a + b)


def naive_wasserstein(a: list[float], b: list[float]) -> float:
    points = sorted(set(a + b))
    return sum(
        abs(naive_ecdf(a, lo) - naive_ecdf(b, lo)) * (hi - lo)
        for lo, hi in itertools.pairwise(points)
    )


def naive_psi(p: list[float], q: list[float], eps: float) -> float:
    total = 0.0
    for pi, qi in zip(p, q, strict=True):
        pi, qi = max(pi, eps), max(qi, eps)
        total += (qi - pi) * math.log(qi / pi)
    return total


def naive_js(p: list[float], q: list[float]) -> float:
    sp, sq = sum(p), sum(q)
    div = 0.0
    for pi, qi in zip(p, q, strict=True):
        pi, qi = pi / sp, qi / sq
        mi = (pi + qi) / 2
        if pi:
            div += pi * math.log2(pi / mi) / 2
        if qi:
            div += qi * math.log2(qi / mi) / 2
    return math.sqrt(max(div, 0.0))


@settings(max_examples=300, deadline=None)
@given(samples, samples, st.sampled_from(["auto", "exact", "asymp"]))
def test_ks_statistic_and_pvalue_match_scipy(a: list[float], b: list[float], method: str) -> None:
    ra, rb = np.sort(a), np.sort(b)
    statistic, _ = compare_sorted(ra, rb)
    expected = stats.ks_2samp(a, b, method=method)  # type: ignore[arg-type]
    if len(a) == len(b) == 1 and method == "asymp":  # scipy: NaN; documented deviation
        assert ks_pvalue(statistic, 1, 1, "asymp") == 1.0 and math.isnan(expected.pvalue)
        return
    assert close(statistic, float(expected.statistic))
    assert close(statistic, naive_ks(a, b))
    p = ks_pvalue(statistic, len(a), len(b), method, (ra, rb))  # type: ignore[arg-type]
    assert close(p, float(expected.pvalue))
    assert 0.0 <= statistic <= 1.0 and 0.0 <= p <= 1.0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=10_001, max_value=60_000),
    st.integers(min_value=10_001, max_value=60_000),
    st.floats(min_value=0.0, max_value=0.05),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.booleans(),
)
def test_ks_asymptotic_pvalue_matches_scipy_for_large_samples(
    n1: int, n2: int, shift: float, seed: int, discrete: bool
) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, n1), rng.normal(shift, 1, n2)
    if discrete:
        a, b = np.round(a, 1), np.round(b, 1)
    statistic, wasserstein = compare_sorted(np.sort(a), np.sort(b))
    expected = stats.ks_2samp(a, b)  # auto: asymptotic at this size
    assert close(statistic, float(expected.statistic))
    assert close(ks_pvalue(statistic, n1, n2), float(expected.pvalue))
    assert close(wasserstein, float(stats.wasserstein_distance(a, b)))


@settings(max_examples=300, deadline=None)
@given(samples, samples)
def test_wasserstein_matches_scipy_and_naive(a: list[float], b: list[float]) -> None:
    _, w = compare_sorted(np.sort(a), np.sort(b))
    scale = max(1.0, max(abs(v) for v in a + b))
    assert math.isclose(w, stats.wasserstein_distance(a, b), rel_tol=TOL, abs_tol=TOL * scale)
    assert math.isclose(w, naive_wasserstein(a, b), rel_tol=1e-7, abs_tol=TOL * scale)
    assert w >= 0.0


def test_ks_identical_samples_and_disjoint_samples() -> None:
    x = np.arange(50.0)
    assert compare_sorted(x, x) == (0.0, 0.0)
    statistic, w = compare_sorted(x, x + 100.0)
    assert statistic == 1.0 and w == pytest.approx(100.0)


counts = st.integers(min_value=0, max_value=5000)


@st.composite
def tables(draw: st.DrawFn) -> np.ndarray:
    k = draw(st.integers(min_value=1, max_value=8))
    ref = draw(st.lists(counts, min_size=k, max_size=k))
    cur = draw(st.lists(counts, min_size=k, max_size=k))
    table = np.array([ref, cur], dtype=np.int64)
    table = table[:, table.sum(axis=0) > 0]
    assume(table.shape[1] >= 1 and (table.sum(axis=1) > 0).all())
    return table


@settings(max_examples=300, deadline=None)
@given(tables())
def test_chi2_matches_scipy_chi2_contingency(table: np.ndarray) -> None:
    statistic, p, dof = chi2_2xk(table[0], table[1])
    expected = stats.chi2_contingency(table)
    assert dof == expected.dof
    assert close(statistic, float(expected.statistic))
    assert close(p, float(expected.pvalue))
    assert statistic >= 0.0 and 0.0 <= p <= 1.0


@settings(max_examples=200, deadline=None)
@given(tables())
def test_js_distance_matches_scipy_and_naive(table: np.ndarray) -> None:
    d = js_distance(table[0], table[1])
    assert close(d, float(jensenshannon(table[0], table[1], base=2)))
    assert close(d, naive_js(table[0].tolist(), table[1].tolist()))
    assert 0.0 <= d <= 1.0


@settings(max_examples=200, deadline=None)
@given(tables(), st.sampled_from([1e-4, 1e-3, 1e-6]))
def test_psi_matches_naive_and_is_non_negative(table: np.ndarray, eps: float) -> None:
    p = table[0] / table[0].sum()
    q = table[1] / table[1].sum()
    value = psi(p, q, eps)
    assert close(value, naive_psi(p.tolist(), q.tolist(), eps))
    assert value >= -TOL
    assert psi(p, p, eps) == 0.0


def test_psi_epsilon_keeps_empty_bins_finite() -> None:
    value = psi(np.array([0.5, 0.5, 0.0]), np.array([0.4, 0.4, 0.2]), 1e-4)
    expected = 2 * (0.4 - 0.5) * math.log(0.8) + (0.2 - 1e-4) * math.log(0.2 / 1e-4)
    assert value == pytest.approx(expected)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=1, max_value=1000),
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=1, max_value=1000),
)
def test_two_proportion_test_equals_uncorrected_chi2(x1: int, n1: int, x2: int, n2: int) -> None:
    assume(x1 <= n1 and x2 <= n2)
    p = two_proportion_pvalue(x1, n1, x2, n2)
    assert 0.0 <= p <= 1.0
    table = np.array([[x1, n1 - x1], [x2, n2 - x2]])
    if (table.sum(axis=0) == 0).any():
        assert p == 1.0
    else:
        assert close(p, float(stats.chi2_contingency(table, correction=False).pvalue))


def naive_holm(p: list[float]) -> list[float]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=0, max_size=30))
def test_holm_and_bonferroni(p: list[float]) -> None:
    holm = adjust_pvalues(p, "holm")
    bonf = adjust_pvalues(p, "bonferroni")
    np.testing.assert_allclose(holm, naive_holm(p), rtol=1e-12, atol=0)
    np.testing.assert_allclose(bonf, [min(1.0, v * len(p)) for v in p], rtol=1e-12, atol=0)
    raw = np.asarray(p)
    assert np.all(raw <= holm + 1e-15) and np.all(holm <= bonf + 1e-15) and np.all(bonf <= 1.0)
