"""The quality gate on real models: change thresholds against the champion, absolute thresholds,
slices, regressors, and what happens without a baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from lockgate.client import Client
from lockgate.errors import InvalidInputError

from .conftest import FEATURES, fit

QUALITY = {
    "gates": [
        {
            "type": "quality",
            "metrics": {"accuracy": {"max_regression": 0.02}, "roc_auc": {"max_regression": 0.02}},
        }
    ]
}


def _register(client: Client, model: object, train: pd.DataFrame, name: str = "churn") -> int:
    return client.register_model(name, model, sample=train[FEATURES].head(20)).version


def test_worse_candidate_fails_and_names_metric_both_values_and_threshold(
    client: Client, train: pd.DataFrame, evaluation: pd.DataFrame
) -> None:
    champion = _register(client, fit(train), train)
    client.set_alias("churn", "champion", champion)
    # same inputs, but it learned from x3 alone: clearly worse
    worse = _register(client, fit(train.assign(x1=0.0, x2=0.0)), train)
    report = client.validate(
        "churn", worse, against="champion", eval_data=evaluation, target="y", policy=QUALITY
    )
    assert report.status == "fail" and report.exit_code == 1
    gate = report.gate("quality")
    assert gate.status == "fail"
    change = next(c for c in gate.checks if c.key == "accuracy.change")
    assert change.status == "fail"
    champ_acc = gate.observed["accuracy.baseline"]
    cand_acc = gate.observed["accuracy"]
    assert champ_acc - cand_acc > 0.1
    assert change.baseline == pytest.approx(champ_acc)
    assert change.observed == pytest.approx(cand_acc - champ_acc)
    assert change.threshold == -0.02 and change.bound == "min"
    assert gate.threshold["accuracy.change"] == {"min": -0.02}
    # the reason a human reads names the metric, both values and the allowed change
    assert "accuracy fell from" in gate.reason
    assert f"{champ_acc:.4g} (churn/{champion})" in gate.reason
    assert f"to {cand_acc:.4g} (candidate)" in gate.reason
    assert "allowed -0.02" in gate.reason
    # stored with the version and recorded as an event
    stored = client.gate_reports("churn", worse)
    assert [r.id for r in stored] == [report.id]
    assert stored[0].gate("quality").checks == gate.checks
    events = client.events(kind="validation.completed", subject=f"churn/{worse}")
    assert events[-1].payload["status"] == "fail"
    assert events[-1].payload["gates"] == {"quality": "fail"}
    assert events[-1].payload["report_id"] == report.id
    assert events[-1].payload["baseline_version"] == champion


def test_comparable_or_better_candidate_passes(
    client: Client, train: pd.DataFrame, evaluation: pd.DataFrame
) -> None:
    weaker = _register(client, fit(train.assign(x1=0.0)), train)
    client.set_alias("churn", "champion", weaker)
    better = _register(client, fit(train), train)
    report = client.validate(
        "churn", better, against="champion", eval_data=evaluation, target="y", policy=QUALITY
    )
    assert report.status == "pass", report.gate("quality").reason
    client.set_alias("churn", "champion", better)
    comparable = _register(client, fit(train.sample(frac=0.9, random_state=3)), train)
    report = client.validate(
        "churn", comparable, against="champion", eval_data=evaluation, target="y", policy=QUALITY
    )
    gate = report.gate("quality")
    assert report.status == "pass", gate.reason
    assert abs(gate.observed["accuracy"] - gate.observed["accuracy.baseline"]) < 0.02
    assert {c.key for c in gate.checks} == {"accuracy.change", "roc_auc.change"}


def test_default_metrics_and_margins_for_a_classifier(
    client: Client, train: pd.DataFrame, evaluation: pd.DataFrame
) -> None:
    v = _register(client, fit(train), train)
    client.set_alias("churn", "champion", v)
    report = client.validate(
        "churn",
        v,
        against="champion",
        eval_data=evaluation,
        target="y",
        policy={"gates": [{"type": "quality"}]},
    )
    gate = report.gate("quality")
    assert gate.status == "pass"
    assert gate.threshold == {
        "accuracy.change": {"min": -0.01},
        "f1.change": {"min": -0.01},
        "roc_auc.change": {"min": -0.01},
    }
    assert gate.details["task"] == "classification" and gate.details["pos_label"] == 1


def test_absolute_thresholds_and_slices(
    client: Client, train: pd.DataFrame, evaluation: pd.DataFrame
) -> None:
    v = _register(client, fit(train), train)
    # the model is wrong on the small "south-east" slice: its labels are flipped
    ev = evaluation.copy()
    se = np.arange(len(ev)) < 150
    ev.loc[se, "region"] = "south-east"
    ev.loc[se, "y"] = 1 - ev.loc[se, "y"]
    policy = {
        "gates": [
            {
                "type": "quality",
                "slices": ["region"],
                "min_slice_size": 100,
                "metrics": {"accuracy": {"min": 0.7}, "log_loss": {"max": 5.0}},
            }
        ]
    }
    report = client.validate("churn", v, eval_data=ev, target="y", policy=policy)
    gate = report.gate("quality")
    status = {c.key: c.status for c in gate.checks}
    assert status["accuracy"] == "pass"
    assert status["accuracy[region=north]"] == "pass"
    assert status["accuracy[region=south-east]"] == "fail"
    assert gate.status == "fail"
    assert "accuracy[region=south-east]" in gate.reason and "below the minimum 0.7" in gate.reason
    # a slice below min_slice_size is reported, not judged
    ev2 = ev.copy()
    ev2.loc[se & (np.arange(len(ev)) < 50), "region"] = "tiny"
    report = client.validate("churn", v, eval_data=ev2, target="y", policy=policy)
    skipped = report.gate("quality").details["slices_skipped"]
    assert {"slice": "region=tiny", "rows": 50} in skipped
    assert not any("tiny" in c.key for c in report.gate("quality").checks)


def test_change_thresholds_without_a_baseline(
    client: Client, train: pd.DataFrame, evaluation: pd.DataFrame
) -> None:
    v = _register(client, fit(train), train)
    # no baseline requested at all: the comparison cannot be made, the gate is inconclusive
    report = client.validate("churn", v, eval_data=evaluation, target="y", policy=QUALITY)
    assert report.status == "inconclusive" and report.exit_code == 2
    assert "needs a baseline" in report.gate("quality").reason
    # the policy's baseline alias does not exist yet (the first version): comparisons skipped
    policy = {**QUALITY, "baseline": "champion"}
    report = client.validate("churn", v, eval_data=evaluation, target="y", policy=policy)
    assert report.status == "pass"
    assert report.baseline_version is None and report.baseline_alias == "champion"
    assert "alias 'champion' does not exist yet" in report.gate("quality").reason
    # but an explicit --against that does not exist is an error
    with pytest.raises(LookupError, match="champion"):
        client.validate("churn", v, against="champion", eval_data=evaluation, target="y")


def test_regressor_relative_change(client: Client, train: pd.DataFrame) -> None:
    rng = np.random.default_rng(5)
    frame = train.assign(y=train.x1 * 3 + train.x2 + rng.normal(scale=0.3, size=len(train)))
    good = LinearRegression().fit(frame[FEATURES], frame.y)
    bad = LinearRegression().fit(frame[FEATURES].assign(x1=0.0), frame.y)
    sample = frame[FEATURES].head(20)
    v1 = client.register_model("price", good, sample=sample).version
    client.set_alias("price", "champion", v1)
    v2 = client.register_model("price", bad, sample=sample).version
    ev = frame.tail(1000)
    report = client.validate(
        "price",
        v2,
        against="champion",
        eval_data=ev,
        target="y",
        policy={"gates": [{"type": "quality"}]},
    )
    gate = report.gate("quality")
    assert gate.details["task"] == "regression"
    keys = {c.key: c for c in gate.checks}
    assert set(keys) == {"rmse.relative_change", "mae.relative_change", "r2.change"}
    assert keys["rmse.relative_change"].status == "fail"
    assert keys["rmse.relative_change"].threshold == 0.02
    assert keys["rmse.relative_change"].bound == "max"
    assert "rmse rose from" in gate.reason
    report = client.validate(
        "price",
        v1,
        against="champion",
        eval_data=ev,
        target="y",
        policy={"gates": [{"type": "quality"}]},
    )
    assert report.status == "pass"


def test_bad_quality_parameters_are_clear(client: Client, train: pd.DataFrame) -> None:
    v = _register(client, fit(train), train)
    cases = [
        (
            {"metrics": {"accuracy": {"max_regression": -1}}},
            "The 'metrics.accuracy.max_regression' parameter of QualityGate must be a float in "
            "the range [0, inf) or None. Got -1 instead.",
        ),
        ({"metrics": {"acuracy": {}}}, "unexpected metric 'acuracy'"),
        ({"metrics": {"accuracy": {"minimum": 0.5}}}, "Did you mean 'metrics.accuracy.min'"),
        (
            {"task": "ranking"},
            "The 'task' parameter of QualityGate must be a str among "
            "{'auto', 'classification', 'regression'}. Got 'ranking' instead.",
        ),
        ({"slices": "region"}, "The 'slices' parameter of QualityGate must be a list"),
    ]
    for params, message in cases:
        policy = {"gates": [{"type": "quality", **params}]}
        with pytest.raises(InvalidInputError) as info:
            client.validate("churn", v, policy=policy)
        assert message in str(info.value), str(info.value)
        assert "gate 'quality'" in str(info.value)
    assert client.gate_reports("churn") == []
