"""A/B statistics against SciPy, and the analysis checks on real-looking windows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lockgate.errors import InvalidInputError
from lockgate.rollout.abtest import compare_means, compare_proportions, required_sample_size
from lockgate.rollout.analysis import (
    AnalysisConfig,
    AnalysisInput,
    Labeled,
    VersionWindow,
    analyze,
    is_label_like,
)

RNG = np.random.default_rng(11)


def test_welch_matches_scipy() -> None:
    a = RNG.normal(10, 2, 300)
    b = RNG.normal(10.6, 3, 250)
    r = compare_means("revenue", (1, a), (2, b), min_samples=100)
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert r.difference == pytest.approx(b.mean() - a.mean())
    assert r.winner == "candidate" and r.p_value < 0.05


def test_proportions_pvalue_and_ci() -> None:
    r = compare_proportions("accuracy", (1, 700, 1000), (2, 760, 1000), min_samples=100)
    table = np.array([[760, 240], [700, 300]])
    chi2 = stats.chi2_contingency(table, correction=False)
    assert r.p_value == pytest.approx(chi2.pvalue, rel=1e-9)  # z-test == uncorrected chi2
    assert r.ci_low < 0.06 < r.ci_high and r.ci_low > 0
    assert r.winner == "candidate"
    worse = compare_proportions("accuracy", (1, 760, 1000), (2, 700, 1000), min_samples=100)
    assert worse.winner == "baseline" and worse.ci_high < 0


def test_no_winner_before_the_minimum_sample_size() -> None:
    r = compare_proportions("accuracy", (1, 10, 50), (2, 45, 50), min_samples=100)
    assert r.p_value < 1e-6 and r.winner is None
    assert "100 samples per arm" in r.reason
    assert r.to_dict()["enough_samples"] is False
    slow = compare_means("m", (1, np.ones(10)), (2, np.ones(10) * 2), min_samples=20)
    assert slow.winner is None


def test_required_sample_size() -> None:
    # the textbook example: 10% -> 12%, alpha 0.05, power 0.8 needs about 3,840 per arm
    n = required_sample_size(0.10, 0.02)
    assert 3800 <= n <= 3900
    with pytest.raises(InvalidInputError):
        required_sample_size(0.5, 0.0)


def _window(
    version: int, n: int, *, err: float = 0.0, ms: float = 2.0, out: np.ndarray | None = None
) -> VersionWindow:
    status = np.where(RNG.random(n) < err, 500, 200).astype(np.int32)
    latency = RNG.gamma(4.0, ms / 4.0, n)
    return VersionWindow(version, status, latency, out)


def test_error_rate_fails_and_healthy_passes() -> None:
    cfg = AnalysisConfig(min_requests=50)
    labels = RNG.integers(0, 2, 400)
    good = analyze(
        cfg, AnalysisInput("canary", _window(1, 400, out=labels), _window(2, 400, out=labels))
    )
    assert good.outcome == "successful", good.reason
    bad = analyze(cfg, AnalysisInput("canary", _window(1, 400), _window(2, 400, err=0.2)))
    assert bad.outcome == "failed" and bad.check("error_rate").verdict == "fail"
    few = analyze(cfg, AnalysisInput("canary", _window(1, 400), _window(2, 10, err=0.5)))
    assert few.outcome == "inconclusive"


def test_latency_relative_absolute_and_remembered() -> None:
    cfg = AnalysisConfig(min_requests=50, slo_p99_ms=100)
    slow = analyze(cfg, AnalysisInput("canary", _window(1, 300, ms=3), _window(2, 300, ms=30)))
    assert slow.outcome == "failed" and slow.check("latency").verdict == "fail"
    # noise under the margin is not a failure even at a large ratio
    tiny = analyze(cfg, AnalysisInput("canary", _window(1, 300, ms=0.2), _window(2, 300, ms=0.8)))
    assert tiny.check("latency").verdict == "pass"
    slo = analyze(cfg, AnalysisInput("canary", _window(1, 300, ms=150), _window(2, 300, ms=150)))
    assert slo.check("latency_slo").verdict == "fail"
    # a canary at 100%: the baseline has no rows; the remembered p99 is used
    full = AnalysisInput(
        "canary", VersionWindow.empty(1), _window(2, 300, ms=30), remembered={"p99_ms": 5.0}
    )
    assert analyze(AnalysisConfig(min_requests=50), full).check("latency").verdict == "fail"


def test_a_single_spike_is_not_a_slow_candidate() -> None:
    """Among 20 requests one slow one puts the sample p99 over the limit; that is not
    significant, so the analysis waits for more rows instead of failing a healthy version."""
    cfg = AnalysisConfig(min_requests=20)
    lat = np.full(20, 5.0)
    lat[7] = 70.0
    cand = VersionWindow(2, np.full(20, 200, np.int32), lat)
    res = analyze(cfg, AnalysisInput("canary", _window(1, 400, ms=5), cand))
    assert res.check("latency").verdict == "inconclusive" and res.outcome == "inconclusive"
    lat[3] = lat[11] = 70.0  # three of twenty: p < 0.05 that only 1% are over
    res = analyze(cfg, AnalysisInput("canary", _window(1, 400, ms=5), cand))
    assert res.check("latency").verdict == "fail"
    two_errors = VersionWindow(2, np.array([500] * 2 + [200] * 18, np.int32), np.full(20, 5.0))
    res = analyze(cfg, AnalysisInput("canary", _window(1, 400, ms=5), two_errors))
    assert res.check("error_rate").verdict == "inconclusive"  # 10% of 20 rows: p = 0.26


def test_shadow_agreement_and_numeric_differences() -> None:
    cfg = AnalysisConfig(min_requests=50, min_agreement=0.9, output_shift="off")
    a = RNG.integers(0, 3, 500)
    b = a.copy()
    b[:100] = (b[:100] + 1) % 3
    res = analyze(cfg, AnalysisInput("shadow", _window(1, 500), _window(2, 500), pairs=(a, b)))
    assert res.check("shadow").verdict == "fail"
    assert res.figures["shadow"]["agreement"] == pytest.approx(0.8)
    x = RNG.normal(size=500)
    res = analyze(
        AnalysisConfig(min_requests=50, max_shadow_mae=0.05, output_shift="off"),
        AnalysisInput("shadow", _window(1, 500), _window(2, 500), pairs=(x, x + 0.1)),
    )
    assert res.check("shadow").verdict == "fail"
    assert res.figures["shadow"]["mae"] == pytest.approx(0.1)
    assert res.figures["shadow"]["kind"] == "numbers"


def test_quality_from_feedback_and_output_shift() -> None:
    cfg = AnalysisConfig(min_requests=50, min_labels=100)
    truth = RNG.integers(0, 2, 300)
    good_pred = np.where(RNG.random(300) < 0.9, truth, 1 - truth)
    bad_pred = np.where(RNG.random(300) < 0.6, truth, 1 - truth)
    res = analyze(
        cfg,
        AnalysisInput(
            "canary",
            _window(1, 300, out=good_pred),
            _window(2, 300, out=bad_pred),
            labeled_baseline=Labeled(1, good_pred, truth),
            labeled_candidate=Labeled(2, bad_pred, truth),
        ),
    )
    assert res.check("quality").verdict == "fail"
    few = analyze(
        cfg,
        AnalysisInput(
            "canary",
            _window(1, 300),
            _window(2, 300),
            labeled_baseline=Labeled(1, good_pred[:10], truth[:10]),
            labeled_candidate=Labeled(2, bad_pred[:10], truth[:10]),
        ),
    )
    assert few.check("quality").verdict == "skipped"
    shifted = analyze(
        cfg,
        AnalysisInput(
            "canary",
            _window(1, 500, out=RNG.normal(0, 1, 500)),
            _window(2, 500, out=RNG.normal(2, 1, 500)),
        ),
    )
    assert shifted.check("output_shift").verdict == "fail"
    same = analyze(
        cfg,
        AnalysisInput(
            "canary",
            _window(1, 500, out=RNG.normal(0, 1, 500)),
            _window(2, 500, out=RNG.normal(0, 1, 500)),
        ),
    )
    assert same.check("output_shift").verdict == "pass"


def test_ab_outcomes() -> None:
    cfg = AnalysisConfig(min_requests=50, min_samples=200, metric="revenue", output_shift="off")
    truth = np.zeros(400, dtype=np.int64)
    lab_b = Labeled(1, truth, truth, {"revenue": RNG.normal(10, 2, 400)})
    lab_c = Labeled(2, truth, truth, {"revenue": RNG.normal(11, 2, 400)})
    win = analyze(cfg, AnalysisInput("ab", _window(1, 400), _window(2, 400), None, lab_b, lab_c))
    assert win.outcome == "successful" and win.figures["ab"]["winner"] == "candidate"
    lose = analyze(cfg, AnalysisInput("ab", _window(1, 400), _window(2, 400), None, lab_c, lab_b))
    assert lose.outcome == "failed"
    none = analyze(cfg, AnalysisInput("ab", _window(1, 400), _window(2, 400)))
    assert none.outcome == "inconclusive"


def test_label_detection_and_config_validation() -> None:
    assert is_label_like(np.array([0, 1, 1]))
    assert is_label_like(np.array(["a", "b"], dtype=object))
    assert is_label_like(np.array([0.0, 1.0]))
    assert not is_label_like(np.array([0.5, 1.25]))
    with pytest.raises(InvalidInputError) as e:
        AnalysisConfig(max_error_rate=2)
    assert e.value.field == "max_error_rate"
    with pytest.raises(InvalidInputError):
        AnalysisConfig.from_dict({"nope": 1})
    assert AnalysisConfig.from_dict(AnalysisConfig(slo_p99_ms=5).to_dict()).slo_p99_ms == 5


def test_quality_fails_only_when_significantly_worse() -> None:
    """Two equally good classifiers judged on a hundred labels each differ by chance; the
    analysis holds (inconclusive) instead of rolling back, and fails a clearly worse one."""
    cfg = AnalysisConfig(min_requests=50, min_labels=30, output_shift="off")
    truth = np.zeros(100, dtype=np.int64)

    def labeled(version: int, hits: int, n: int = 100) -> Labeled:
        pred = truth[:n].copy()
        pred[hits:] = 1
        return Labeled(version, pred, truth[:n])

    def run(base: Labeled, cand: Labeled) -> str:
        data = AnalysisInput("canary", _window(1, 400), _window(2, 400), None, base, cand)
        return analyze(cfg, data).check("quality").verdict

    assert run(labeled(1, 58), labeled(2, 49)) == "inconclusive"  # 49% vs 58%: p ~ 0.3
    assert run(labeled(1, 58), labeled(2, 55)) == "pass"  # within the 5-point drop
    assert run(labeled(1, 90), labeled(2, 60)) == "fail"
    res = analyze(
        cfg,
        AnalysisInput(
            "canary", _window(1, 400), _window(2, 400), None, labeled(1, 58), labeled(2, 49)
        ),
    )
    assert res.outcome == "inconclusive"  # the window grows until labels decide
    y, err = RNG.normal(5, 1, 200), RNG.normal(0, 1, 200)
    num = Labeled(1, y + err, y)
    assert run(num, Labeled(2, y + err * 1.02, y)) == "pass"
    assert run(num, Labeled(2, y + err * 3, y)) == "fail"


def test_output_shift_waits_for_a_hundred_rows_a_side() -> None:
    """Sixty labels a side that differ a lot (30% vs 70% positive) are still judged only
    once each side has 100 rows: on small windows identical models differ by chance."""
    cfg = AnalysisConfig(min_requests=20)
    base = np.array([1] * 18 + [0] * 42)
    cand = np.array([1] * 42 + [0] * 18)
    data = AnalysisInput("canary", _window(1, 60, out=base), _window(2, 60, out=cand))
    small = analyze(cfg, data)
    assert small.check("output_shift").verdict == "skipped"
    big = analyze(
        cfg,
        AnalysisInput(
            "canary", _window(1, 300, out=np.tile(base, 5)), _window(2, 300, out=np.tile(cand, 5))
        ),
    )
    assert big.check("output_shift").verdict == "fail"
