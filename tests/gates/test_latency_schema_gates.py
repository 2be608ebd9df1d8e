"""The latency gate (budgets, ratio against the baseline) and the schema gate (compatibility
with what the model's endpoints serve)."""

from __future__ import annotations

import pandas as pd

from lockgate.client import Client

from .conftest import FEATURES, Plugin, fit, register_lgtest

SAMPLE = pd.DataFrame({"x1": [0.5, -1.0], "x2": [1.0, 0.0], "x3": [0.1, 0.2]})


def test_latency_budgets(client: Client, train: pd.DataFrame) -> None:
    v = client.register_model("churn", fit(train), sample=train[FEATURES].head(20)).version
    generous = {
        "gates": [{"type": "latency", "single_p99_ms": 2000, "batch_p50_ms": 2000, "n_single": 30}]
    }
    report = client.validate("churn", v, policy=generous)
    gate = report.gate("latency")
    assert gate.status == "pass", gate.reason
    for key in ("single_p50_ms", "single_p99_ms", "batch_p50_ms", "batch_p99_ms"):
        assert gate.observed[key] > 0
    assert gate.threshold == {"single_p99_ms": {"max": 2000.0}, "batch_p50_ms": {"max": 2000.0}}
    impossible = {"gates": [{"type": "latency", "single_p50_ms": 1e-6, "n_single": 10}]}
    report = client.validate("churn", v, policy=impossible)
    gate = report.gate("latency")
    assert gate.status == "fail"
    assert "single_p50 (ms)" in gate.reason and "above the maximum 1e-06" in gate.reason


def test_latency_ratio_against_the_baseline(client: Client, plugin: Plugin) -> None:
    fast = register_lgtest(client, "lin", plugin.artifact([1.0, 0.0, 0.0]), SAMPLE)
    client.set_alias("lin", "champion", fast)
    slow = register_lgtest(
        client, "lin", plugin.artifact([1.0, 0.0, 0.0], predict_delay_s=0.05), SAMPLE
    )
    # The slow candidate sleeps 50 ms per call against a sub-millisecond baseline (>50x), so a
    # 10x allowance fails it with a wide margin, and leaves room for scheduling noise on a
    # busy machine when the same model is measured against itself.
    policy = {
        "gates": [{"type": "latency", "max_ratio": 10.0, "n_single": 20, "n_batch": 9, "warmup": 2}]
    }
    report = client.validate("lin", slow, against="champion", policy=policy)
    gate = report.gate("latency")
    assert gate.status == "fail"
    ratio = next(c for c in gate.checks if c.key == "single_p50_ratio")
    assert ratio.status == "fail" and ratio.observed > 10.0 and ratio.threshold == 10.0
    assert f"(lin/{fast})" in ratio.message and "beyond the allowed 10x" in ratio.message
    assert gate.details["interleaved_with_baseline"] is True
    report = client.validate("lin", fast, against="champion", policy=policy)
    assert report.gate("latency").status == "pass", report.gate("latency").reason
    # a ratio without any baseline cannot be judged
    report = client.validate("lin", slow, policy=policy)
    assert report.gate("latency").status == "inconclusive"


def test_schema_gate_against_the_endpoint(client: Client, train: pd.DataFrame) -> None:
    full = train[FEATURES].head(20)
    v1 = client.register_model("churn", fit(train), sample=full).version
    policy = {"gates": [{"type": "schema"}]}
    # nothing served yet and no baseline: nothing to break
    report = client.validate("churn", v1, policy=policy)
    assert report.status == "pass" and "nothing to stay compatible with" in report.gates[0].reason
    client.workspace.endpoints.deploy("churn", version=v1)
    two = ["x1", "x2"]
    v2 = client.register_model("churn", fit(train, two), sample=train[two].head(20)).version
    report = client.validate("churn", v2, policy=policy)
    gate = report.gate("schema")
    assert gate.status == "fail"
    assert f"incompatible with endpoint churn (v{v1}): input 'x3' was removed" in gate.reason
    # a narrowed dtype fails too: x3 as float32 where float64 was served
    narrowed = train[FEATURES].head(20).astype({"x3": "float32"})
    v3 = client.register_model("churn", fit(train), sample=narrowed).version
    report = client.validate("churn", v3, policy=policy)
    assert "narrowed from float64 to float32" in report.gate("schema").reason
    # a new input is a break unless allowed
    four = train.assign(x4=1.0)
    cols = [*FEATURES, "x4"]
    v4 = client.register_model("churn", fit(four, cols), sample=four[cols].head(20)).version
    report = client.validate("churn", v4, policy=policy)
    assert "input 'x4' is new and required" in report.gate("schema").reason
    allowed = {"gates": [{"type": "schema", "allow_new_inputs": True}]}
    assert client.validate("churn", v4, policy=allowed).status == "pass"
    v5 = client.register_model("churn", fit(train), sample=full).version
    assert client.validate("churn", v5, policy=policy).status == "pass"
