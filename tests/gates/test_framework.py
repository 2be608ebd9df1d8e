"""The gate framework: parameter constraints and their messages, policies from files, the gate
catalog (entry points and run-time registration), custom gates, and the stored report table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from lockgate.client import Client
from lockgate.errors import InvalidInputError
from lockgate.gates import Check, Gate, GateResult, Interval, Options, Param, catalog
from lockgate.gates.base import combine
from lockgate.gates.context import GateContext
from lockgate.gates.latency import LatencyGate
from lockgate.gates.params import ListOf, validate_params
from lockgate.gates.policy import GatePolicy, load_policy
from lockgate.store.schema import Base

from .conftest import FEATURES, Plugin, fit, register_lgtest

SAMPLE = pd.DataFrame({"x1": [0.5, -1.0], "x2": [1.0, 0.0], "x3": [0.1, 0.2]})


# --- parameters -------------------------------------------------------------------------------


def test_parameter_messages_follow_the_scikit_learn_form() -> None:
    gate = LatencyGate(max_ratio=0.5)
    with pytest.raises(InvalidInputError) as info:
        gate.validate_params()
    assert str(info.value) == (
        "The 'max_ratio' parameter of LatencyGate must be a float in the range (1, inf) or None. "
        "Got 0.5 instead."
    )
    assert info.value.field == "max_ratio" and info.value.got == 0.5
    params = {
        "n": Param(3, Interval(int, 1, 10, "left")),
        "mode": Param("a", Options(("a", "b"))),
        "cols": Param((), ListOf()),
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({"n": 10}, "The 'n' parameter of G must be an int in the range [1, 10). Got 10 instead."),
        ({"n": 2.0}, "must be an int in the range [1, 10). Got 2.0 instead."),
        ({"n": True}, "Got True instead."),
        ({"mode": "c"}, "The 'mode' parameter of G must be a str among {'a', 'b'}. Got 'c'"),
        ({"cols": ["a", "a"]}, "must be a list of unique non-empty str. Got ['a', 'a']"),
        ({"nn": 1}, "G got an unexpected parameter 'nn'; expected one of ['cols', 'mode', 'n']."),
    ]
    for values, message in cases:
        with pytest.raises(InvalidInputError) as info:
            validate_params("G", params, values)
        assert message in str(info.value)
    assert validate_params("G", params, {"cols": ["x"]}) == {"n": 3, "mode": "a", "cols": ("x",)}
    # ints are accepted for floats and converted
    assert LatencyGate(max_ratio=2).validate_params()["max_ratio"] == 2.0
    with pytest.raises(InvalidInputError, match="LatencyGate needs at least one threshold"):
        LatencyGate().validate_params()


def test_statuses_combine_fail_over_inconclusive_over_pass() -> None:
    assert combine([]) == "pass"
    assert combine(["pass", "inconclusive"]) == "inconclusive"
    assert combine(["inconclusive", "fail", "pass"]) == "fail"
    c = Check.at_least("auc", float("nan"), 0.7)
    assert c.status == "inconclusive" and c.observed is None


# --- policies ---------------------------------------------------------------------------------


def test_policy_files(tmp_path: Path) -> None:
    path = tmp_path / "gates.toml"
    path.write_text(
        'baseline = "champion"\nrequired = true\n\n[[gates]]\ntype = "schema"\n\n'
        '[[gates]]\ntype = "quality"\nname = "quality-eu"\nslices = ["region"]\n'
        "metrics = { roc_auc = { min = 0.7, max_regression = 0.01 } }\n"
    )
    policy = load_policy(path, "churn")
    assert policy.baseline == "champion" and policy.required is True
    assert [(g.type, g.name) for g in policy.gates] == [
        ("schema", "schema"),
        ("quality", "quality-eu"),
    ]
    assert policy.gates[1].params == {
        "slices": ["region"],
        "metrics": {"roc_auc": {"min": 0.7, "max_regression": 0.01}},
    }
    # the hash is of the content, not the source
    same = GatePolicy.from_dict(policy.to_dict(), source="api")
    assert same.sha256() == policy.sha256()
    # a multi-model file picks the model's section
    multi = tmp_path / "all.toml"
    multi.write_text('[models.churn]\nrequired = true\n[[models.churn.gates]]\ntype = "smoke"\n')
    assert load_policy(multi, "churn").gates[0].type == "smoke"
    with pytest.raises(InvalidInputError, match=r"no section for model 'other' \(it has: churn\)"):
        load_policy(multi, "other")
    bad = [
        ("requird = true\n", "unexpected key 'requird'"),
        ('[[gates]]\ntype = "smoke"\n[[gates]]\ntype = "smoke"\n', "unique gate names"),
        ('[[gates]]\nname = "x"\n', "gates[0].type"),
        ('[[gates]]\ntype = "smoke"\nrows = 0\n', "The 'rows' parameter of SmokeGate"),
        ("required = 1\n", "required: expected true or false"),
        ("version = 2\n", "version: expected 1"),
    ]
    for text, message in bad:
        path.write_text(text)
        with pytest.raises(InvalidInputError) as info:
            load_policy(path, "churn").build()
        assert message in str(info.value), str(info.value)
        assert str(path) in str(info.value)
    with pytest.raises(InvalidInputError, match=r"a \.toml, \.yaml or \.yml file"):
        load_policy(tmp_path / "gates.json", "churn")


# --- catalog and custom gates -----------------------------------------------------------------


def test_built_in_gates_are_declared_as_entry_points() -> None:
    declared = catalog.entry_point_types()
    for name, spec in catalog.BUILTIN_GATES.items():
        assert declared.get(name) == spec
        assert catalog.get_gate(name).type == name
    assert catalog.available_gates()[:5] == list(catalog.BUILTIN_GATES)


def test_a_gate_from_an_entry_point(client: Client, plugin: Plugin) -> None:
    assert "artifact_size" in catalog.available_gates()
    v = register_lgtest(client, "lin", plugin.artifact([1.0, 0.0, 0.0]), SAMPLE)
    policy = {"gates": [{"type": "artifact_size", "max_mb": 1.0}]}
    report = client.validate("lin", v, policy=policy)
    gate = report.gate("artifact_size")
    assert gate.status == "pass" and gate.threshold == {"artifact_mb": {"max": 1.0}}
    policy = {"gates": [{"type": "artifact_size", "max_mb": 1e-6}]}
    report = client.validate("lin", v, policy=policy)
    assert report.status == "fail"
    assert "artifact_mb" in report.gate("artifact_size").reason
    with pytest.raises(InvalidInputError, match="The 'max_mb' parameter of ArtifactSizeGate"):
        client.validate("lin", v, policy={"gates": [{"type": "artifact_size", "max_mb": -1}]})


class PositiveRateGate(Gate):
    """A custom gate registered at run time: the share of positive predictions on the
    evaluation data stays within bounds."""

    type: ClassVar[str] = "positive_rate"
    parameters = {
        "low": Param(0.0, Interval(float, 0, 1)),
        "high": Param(1.0, Interval(float, 0, 1)),
    }

    def check_params(self, params: dict[str, Any]) -> None:
        if params["low"] > params["high"]:
            raise InvalidInputError.for_field("low", "at most 'high'", params["low"])

    def evaluate(self, ctx: GateContext) -> GateResult:
        rate = float((ctx.scored(ctx.candidate).labels == 1).mean())
        p = self.params_
        return self.result(
            [
                Check.at_least("positive_rate", rate, p["low"]),
                Check.at_most("positive_rate", rate, p["high"]),
            ]
        )


def test_register_a_gate_at_run_time(
    client: Client, train: pd.DataFrame, evaluation: pd.DataFrame
) -> None:
    catalog.register_gate(PositiveRateGate)
    try:
        v = client.register_model("churn", fit(train), sample=train[FEATURES].head(5)).version
        ok = {"gates": [{"type": "positive_rate", "low": 0.3, "high": 0.7}]}
        report = client.validate("churn", v, eval_data=evaluation, target="y", policy=ok)
        assert report.status == "pass", report.gates[0].reason
        tight = {"gates": [{"type": "positive_rate", "high": 0.1}]}
        report = client.validate("churn", v, eval_data=evaluation, target="y", policy=tight)
        assert report.status == "fail"
        with pytest.raises(InvalidInputError, match="low: expected at most 'high'"):
            client.validate(
                "churn", v, policy={"gates": [{"type": "positive_rate", "low": 0.9, "high": 0.1}]}
            )
    finally:
        catalog.unregister_gate("positive_rate")
    with pytest.raises(InvalidInputError, match="unexpected gate type 'positive_rate'"):
        client.validate("churn", v, policy={"gates": [{"type": "positive_rate"}]})


def test_register_gate_refuses_built_in_names_and_non_gates() -> None:
    class Schema2(PositiveRateGate):
        type: ClassVar[str] = "schema"

    with pytest.raises(InvalidInputError, match="built-in"):
        catalog.register_gate(Schema2)
    with pytest.raises(InvalidInputError, match=r"subclass of lockgate\.gates\.Gate"):
        catalog.register_gate(int)  # type: ignore[arg-type]


class CrashingGate(Gate):
    type: ClassVar[str] = "crashing"

    def evaluate(self, ctx: GateContext) -> GateResult:
        raise RuntimeError("bug in the gate")


def test_a_gate_that_raises_is_inconclusive_not_pass(client: Client, train: pd.DataFrame) -> None:
    catalog.register_gate(CrashingGate)
    try:
        v = client.register_model("churn", fit(train), sample=train[FEATURES].head(5)).version
        report = client.validate("churn", v, policy={"gates": [{"type": "crashing"}]})
    finally:
        catalog.unregister_gate("crashing")
    assert report.status == "inconclusive"
    assert "RuntimeError: bug in the gate" in report.gates[0].reason


# --- storage ----------------------------------------------------------------------------------


def test_the_migration_matches_the_tables(client: Client) -> None:
    engine = client.workspace.db.engine
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    mine = [d for d in diff if "gate_" in repr(d)]
    assert mine == []
    tables = {t for t in Base.metadata.tables}
    assert {"gate_reports", "gate_policies"} <= tables


def test_every_built_in_gate_parameter_is_documented() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "gates.md").read_text()
    for name in catalog.BUILTIN_GATES:
        section = docs.split(f"\n### {name}\n", 1)[1].split("\n### ", 1)[0]
        for param, spec in catalog.get_gate(name).parameters.items():
            row = next((ln for ln in section.splitlines() if ln.startswith(f"| `{param}` |")), "")
            assert row, f"{name}.{param} is not documented in docs/gates.md"
            assert spec.describe() in row, f"{name}.{param}: docs disagree with the constraints"
