"""Quality metrics equal scikit-learn's on random data; their intervals are what the docs
say (Wilson, DeLong, normal approximation, bootstrap) and cover the truth as often as their
confidence promises."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from lockgate.errors import InvalidInputError
from lockgate.monitoring.quality import (
    classification_quality,
    quality,
    regression_quality,
    wilson_interval,
)

SEEDS = st.integers(0, 2**32 - 1)


def values(report: object) -> dict[str, float | None]:
    return {k: v.value for k, v in report.metrics.items()}  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None)
@given(seed=SEEDS, n=st.integers(4, 400))
def test_binary_classification_equals_sklearn(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]  # both classes present
    score = np.clip(rng.random(n) * 0.7 + 0.3 * y * rng.random(), 0, 1)
    pred = (score >= 0.5).astype(np.int64)
    got = values(classification_quality(y, pred, score))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, score), abs=1e-9)
    if pred.sum():
        assert got["precision"] == pytest.approx(skm.precision_score(y, pred), abs=1e-12)
    else:
        assert got["precision"] is None  # sklearn warns and says 0
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred), abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert got["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=0), abs=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, n=st.integers(12, 300), k=st.integers(3, 6))
def test_multiclass_classification_equals_sklearn(seed: int, n: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)  # every class present
    proba = rng.dirichlet(np.ones(k), n)
    pred = rng.integers(0, k, n)
    got = values(classification_quality(y, pred, proba))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in (
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
            ("f1", skm.f1_score),
        ):
            expected = fn(y, pred, average="macro", zero_division=0)
            assert got[name] == pytest.approx(expected, abs=1e-12), name
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr"), abs=1e-12
    )
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(seed=SEEDS, n=st.integers(3, 500))
def test_regression_equals_sklearn(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    t = rng.normal(size=n) * rng.uniform(0.1, 100)
    p = t + rng.normal(size=n) * rng.uniform(0.01, 10)
    got = values(regression_quality(t, p))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(t, p), rel=1e-12)
    assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(t, p), rel=1e-12)
    assert got["r2"] == pytest.approx(skm.r2_score(t, p), rel=1e-9, abs=1e-12)


def test_string_labels_and_the_positive_class() -> None:
    rng = np.random.default_rng(1)
    y = rng.choice(["ham", "spam"], 300)
    pred = rng.choice(["ham", "spam"], 300)
    r = quality(y, pred)
    assert r.task == "classification" and r.positive == "spam"  # the greater label
    assert r.value("precision") == pytest.approx(skm.precision_score(y, pred, pos_label="spam"))
    r = quality(y, pred, positive="ham")
    assert r.value("recall") == pytest.approx(skm.recall_score(y, pred, pos_label="ham"))
    assert r.metrics["roc_auc"].value is None and "probabilities" in r.metrics["roc_auc"].note


def test_task_inference() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 100)
    assert quality(y, y.astype(float)).task == "classification"  # whole floats are labels
    scored = quality(y, rng.random(100))  # probabilities of the positive class
    assert scored.task == "classification" and scored.value("roc_auc") is not None
    assert quality(rng.normal(size=100), rng.normal(size=100)).task == "regression"
    assert quality(y, y, task="regression").task == "regression"


def test_wilson_interval_known_values() -> None:
    # Wilson (1927) / Newcombe (1998) table: 81 of 263 -> (0.2553, 0.3662)
    lo, hi = wilson_interval(81, 263, 0.95)
    assert lo == pytest.approx(0.2553, abs=1e-4) and hi == pytest.approx(0.3662, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    lo, hi = wilson_interval(0, 10)
    assert 0.0 == lo < hi < 0.35


def test_undefined_figures_are_none_with_a_reason() -> None:
    r = classification_quality([0, 0, 0], [0, 0, 0], [0.1, 0.2, 0.3])
    assert r.metrics["precision"].value is None and r.metrics["precision"].note
    assert r.metrics["roc_auc"].value is None and "both classes" in r.metrics["roc_auc"].note
    assert r.value("accuracy") == 1.0
    r = regression_quality([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    assert r.metrics["r2"].value is None and "constant" in r.metrics["r2"].note
    empty = quality(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert empty.n == 0 and empty.value("accuracy") is None
    doc = r.to_dict()
    assert doc["metrics"]["r2"]["value"] is None and doc["task"] == "regression"


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(InvalidInputError) as info:
        classification_quality([0, 1], [0, 1], [0.5, 1.5])
    assert info.value.field == "y_score"
    with pytest.raises(InvalidInputError) as info:
        regression_quality([1.0, 2.0], [1.0])
    assert info.value.field == "y_pred"
    with pytest.raises(InvalidInputError) as info:
        quality([0, 1], [0, 1], confidence=1.5)
    assert info.value.field == "confidence"


@pytest.mark.parametrize("metric", ["accuracy", "roc_auc", "mae", "rmse", "r2", "f1"])
def test_intervals_cover_the_population_value(metric: str) -> None:
    """Over 200 samples of 400 rows the 95% intervals hold the population value about 95%
    of the time (binomial 3-sigma band: 178-199)."""
    rng = np.random.default_rng(42)
    big = 400_000

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        if metric in ("mae", "rmse", "r2"):
            t = rng.normal(size=n)
            return t, 0.8 * t + rng.standard_t(5, size=n) * 0.5
        y = rng.integers(0, 2, n)
        s = 1 / (1 + np.exp(-(1.2 * y - 0.6 + rng.normal(size=n))))
        return y, s if metric == "roc_auc" else (s >= 0.5).astype(np.int64)

    def figure(t: np.ndarray, p: np.ndarray) -> object:
        if metric in ("mae", "rmse", "r2"):
            return regression_quality(t, p).metrics[metric]
        if metric == "roc_auc":
            return classification_quality(t, None, p).metrics[metric]
        return classification_quality(t, p, n_boot=400).metrics[metric]

    truth = figure(*draw(big)).value  # type: ignore[attr-defined]
    hits = 0
    for _ in range(200):
        est = figure(*draw(400))
        assert est.low <= est.value <= est.high  # type: ignore[attr-defined]
        hits += est.low <= truth <= est.high  # type: ignore[attr-defined,operator]
    assert 178 <= hits <= 199, hits
    assert not math.isnan(truth)
