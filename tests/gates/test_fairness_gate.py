"""The fairness gate on real models: a model trained on labels with a planted bias against one
group fails; the same model family trained on clean labels passes; small groups are
inconclusive; a candidate may not be less fair than the baseline beyond the margin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lockgate.client import Client
from lockgate.gates.fairness_metrics import group_table

from .conftest import fairness_data, group_model

FAIRNESS = {"gates": [{"type": "fairness"}]}


@pytest.fixture(scope="module")
def audit() -> pd.DataFrame:
    """Held-out rows with the true outcome, the same for every group."""
    frame, _ = fairness_data(4000, seed=11, bias=False)
    return frame


def _register(client: Client, bias: bool, seed: int = 3) -> int:
    frame, label = fairness_data(4000, seed=seed, bias=bias)
    model = group_model(frame, label)
    return client.register_model(
        "credit", model, sample=frame[["x1", "x2", "group"]].head(20)
    ).version


def test_planted_bias_fails_and_clean_labels_pass(client: Client, audit: pd.DataFrame) -> None:
    biased = _register(client, bias=True)
    clean = _register(client, bias=False)
    report = client.validate(
        "credit", biased, eval_data=audit, target="y", sensitive=["group"], policy=FAIRNESS
    )
    gate = report.gate("fairness")
    assert report.status == "fail" and gate.status == "fail"
    status = {c.key: c.status for c in gate.checks}
    assert status["demographic_parity_ratio[group]"] == "fail"
    assert status["equal_opportunity_difference[group]"] == "fail"
    ratio = gate.observed["demographic_parity_ratio[group]"]
    assert ratio < 0.8
    assert gate.threshold["demographic_parity_ratio[group]"] == {"min": 0.8}
    assert "demographic parity ratio [group]" in gate.reason
    assert "below the minimum 0.8" in gate.reason and "95% CI" in gate.reason
    # the numbers are the fairness metrics' own (equal to Fairlearn's, tested there)
    model = client.load(f"credit/{biased}")
    pred = model.predict(audit)
    expected = group_table(audit["y"], pred, audit["group"]).disparities()
    assert ratio == pytest.approx(expected.demographic_parity_ratio, abs=1e-12)
    cis = gate.details["columns"]["group"]["confidence_intervals"]
    low, high = cis["demographic_parity_ratio"]
    assert low <= ratio <= high
    groups = gate.details["columns"]["group"]["groups"]["groups"]
    assert [g["group"]["group"] for g in groups] == ["a", "b"]

    report = client.validate(
        "credit", clean, eval_data=audit, target="y", sensitive=["group"], policy=FAIRNESS
    )
    gate = report.gate("fairness")
    assert report.status == "pass", gate.reason
    assert gate.observed["demographic_parity_ratio[group]"] >= 0.8
    assert gate.observed["equalized_odds_difference[group]"] <= 0.1


def test_small_groups_are_inconclusive(client: Client, audit: pd.DataFrame) -> None:
    clean = _register(client, bias=False)
    rows = audit.copy()
    rows.loc[rows.index[:12], "group"] = "c"  # a group of 12 rows
    report = client.validate(
        "credit", clean, eval_data=rows, target="y", sensitive=["group"], policy=FAIRNESS
    )
    gate = report.gate("fairness")
    assert report.status == "inconclusive" and report.exit_code == 2
    assert "'c' (12 rows) below min_group_size 30" in gate.reason
    # the values are still reported
    assert gate.observed["demographic_parity_ratio[group]"] is not None
    # with the minimum lowered, the same data is judged
    policy = {"gates": [{"type": "fairness", "min_group_size": 10, "min_group_positives": 1}]}
    report = client.validate(
        "credit", clean, eval_data=rows, target="y", sensitive=["group"], policy=policy
    )
    assert report.gate("fairness").status in ("pass", "fail")


def test_no_regression_against_the_baseline(client: Client, audit: pd.DataFrame) -> None:
    clean = _register(client, bias=False)
    client.set_alias("credit", "champion", clean)
    biased = _register(client, bias=True)
    # thresholds loose enough that only the comparison with the champion can fail
    policy = {
        "gates": [
            {
                "type": "fairness",
                "min_dp_ratio": 0.0,
                "max_dp_difference": 1.0,
                "max_equalized_odds_difference": 1.0,
                "max_equal_opportunity_difference": 1.0,
                "max_regression": 0.05,
                "n_boot": 0,
            }
        ]
    }
    report = client.validate(
        "credit",
        biased,
        against="champion",
        eval_data=audit,
        target="y",
        sensitive=["group"],
        policy=policy,
    )
    gate = report.gate("fairness")
    assert gate.status == "fail"
    failed = [c for c in gate.checks if c.status == "fail"]
    assert failed and all(c.key.endswith(".vs_baseline") for c in failed)
    dp = next(c for c in failed if c.key == "demographic_parity_ratio[group].vs_baseline")
    assert dp.baseline == pytest.approx(gate.observed["demographic_parity_ratio[group].baseline"])
    assert dp.threshold == pytest.approx(dp.baseline - 0.05)
    assert f"(credit/{clean})" in dp.message
    report = client.validate(
        "credit",
        clean,
        against="champion",
        eval_data=audit,
        target="y",
        sensitive=["group"],
        policy=policy,
    )
    assert report.gate("fairness").status == "pass"


def test_sensitive_columns_add_the_default_fairness_gate(
    client: Client, audit: pd.DataFrame
) -> None:
    biased = _register(client, bias=True)
    report = client.validate(
        "credit",
        biased,
        eval_data=audit,
        target="y",
        sensitive=["group"],
        policy={"gates": [{"type": "schema"}]},
    )
    assert [g.name for g in report.gates] == ["schema", "fairness"]
    assert report.inputs["gates_added"] == ["fairness"]
    assert report.gate("fairness").status == "fail"
    # the added gate is not part of the policy (nor its hash)
    assert [g["name"] for g in report.policy["gates"]] == ["schema"]


def test_fairness_input_errors(client: Client, audit: pd.DataFrame) -> None:
    clean = _register(client, bias=False)
    with pytest.raises(ValueError, match=r"sensitive: expected columns of the eval data"):
        client.validate("credit", clean, eval_data=audit, target="y", sensitive=["gender"])
    with pytest.raises(ValueError, match="evaluation data"):
        client.validate("credit", clean, sensitive=["group"])
    bad = {"gates": [{"type": "fairness", "min_dp_ratio": 1.5}]}
    with pytest.raises(ValueError) as info:
        client.validate("credit", clean, eval_data=audit, target="y", policy=bad)
    assert (
        "The 'min_dp_ratio' parameter of FairnessGate must be a float in the range [0, 1] or "
        "None. Got 1.5 instead."
    ) in str(info.value)
    # missing sensitive values are an error, not a silently dropped group
    rows = audit.assign(group=np.where(np.arange(len(audit)) < 5, None, audit["group"]))
    report_or_error = None
    with pytest.raises(ValueError, match="missing"):
        report_or_error = client.validate(
            "credit", clean, eval_data=rows, target="y", sensitive=["group"], policy=FAIRNESS
        )
    assert report_or_error is None
