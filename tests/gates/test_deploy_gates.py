"""Deploys of a model whose saved gate policy is required need a passing report under that
policy; ``--force`` with a reason deploys anyway, and the override is recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lockgate.cli.main import app
from lockgate.client import Client
from lockgate.errors import ConflictError, InvalidInputError

from .conftest import FEATURES, fit

REQUIRED = {
    "required": True,
    "baseline": "champion",
    "gates": [{"type": "quality", "metrics": {"accuracy": {"max_regression": 0.02}}}],
}


@pytest.fixture
def versions(client: Client, train: pd.DataFrame) -> Client:
    """churn/1 champion, churn/2 clearly worse, churn/3 as good as the champion."""
    sample = train[FEATURES].head(20)
    client.register_model("churn", fit(train), sample=sample)
    client.register_model("churn", fit(train.assign(x1=0.0, x2=0.0)), sample=sample)
    client.register_model("churn", fit(train.sample(frac=0.9, random_state=1)), sample=sample)
    client.set_alias("churn", "champion", 1)
    return client


def _deploy_events(client: Client) -> list[dict[str, object]]:
    return [e.payload for e in client.events(kind="endpoint.deployed")]


def test_without_a_required_policy_deploys_are_not_gated(versions: Client) -> None:
    ws = versions.workspace
    ws.endpoints.deploy("churn", version=2)
    gates = _deploy_events(versions)[-1]["gates"]
    assert gates == {
        "required": False,
        "allowed": True,
        "reason": "no required gate policy",
        "report_id": None,
        "report_status": None,
        "policy_sha256": None,
        "forced": False,
        "force_reason": "",
    }
    # a saved policy that is not required does not gate deploys either
    ws.gates.set_policy("churn", {**REQUIRED, "required": False})
    ws.endpoints.deploy("churn", version=2)


def test_refused_until_passed_and_forced_with_a_recorded_reason(
    versions: Client, evaluation: pd.DataFrame
) -> None:
    ws = versions.workspace
    ws.endpoints.deploy("churn", version=1)
    policy = ws.gates.set_policy("churn", REQUIRED, reason="gate churn deploys")
    event = versions.events(kind="gates.policy_set")[-1]
    assert event.subject == "churn" and event.payload["required"] is True
    assert event.payload["policy_sha256"] == policy.sha256()
    # never validated
    with pytest.raises(ConflictError, match=r"churn/3 has not been validated under the model's"):
        ws.endpoints.deploy("churn", version=3)
    # validated and failed
    failed = versions.validate("churn", 2, eval_data=evaluation, target="y")
    assert failed.status == "fail" and failed.policy_sha256 == policy.sha256()
    with pytest.raises(ConflictError) as info:
        ws.endpoints.deploy("churn", version=2)
    assert f"(report {failed.id}) is fail: quality fail" in str(info.value)
    assert "--force" in str(info.value)
    # forcing needs a reason, and a reason needs force
    with pytest.raises(InvalidInputError, match="force_reason"):
        ws.endpoints.deploy("churn", version=2, force=True)
    with pytest.raises(InvalidInputError, match="force_reason"):
        ws.endpoints.deploy("churn", version=2, force_reason="hotfix")
    assert ws.endpoints.get("churn").policy.primary == 1  # nothing changed
    info_forced = ws.endpoints.deploy(
        "churn", version=2, force=True, force_reason="incident 42: roll forward"
    )
    assert info_forced.policy.primary == 2
    gates = _deploy_events(versions)[-1]["gates"]
    assert gates["forced"] is True and gates["force_reason"] == "incident 42: roll forward"
    assert gates["allowed"] is False and gates["report_id"] == failed.id
    assert gates["report_status"] == "fail"
    # validated and passed: allowed, the report is named in the event
    passed = versions.validate("churn", 3, eval_data=evaluation, target="y")
    assert passed.status == "pass"
    ws.endpoints.deploy("churn", version=3)
    gates = _deploy_events(versions)[-1]["gates"]
    assert gates["allowed"] is True and gates["forced"] is False
    assert gates["report_id"] == passed.id
    # a deploy by alias is checked too (champion is churn/1, never validated)
    with pytest.raises(ConflictError):
        ws.endpoints.deploy("churn", alias="champion")
    assert versions.verify_events().ok


def test_a_report_under_another_policy_does_not_count(
    versions: Client, evaluation: pd.DataFrame
) -> None:
    ws = versions.workspace
    ws.gates.set_policy("churn", REQUIRED)
    lax = {"gates": [{"type": "schema"}]}
    assert versions.validate("churn", 2, policy=lax).status == "pass"
    with pytest.raises(ConflictError, match="has not been validated"):
        ws.endpoints.deploy("churn", version=2)
    # the latest report under the required policy decides
    assert versions.validate("churn", 3, eval_data=evaluation, target="y").status == "pass"
    assert ws.gates.deploy_check("churn", 3).allowed
    # changing the saved policy requires validating again
    stricter = {**REQUIRED, "gates": [*REQUIRED["gates"], {"type": "schema"}]}
    ws.gates.set_policy("churn", stricter)
    check = ws.gates.deploy_check("churn", 3)
    assert not check.allowed and "has not been validated" in check.reason
    ws.gates.delete_policy("churn", reason="experiment")
    assert ws.gates.deploy_check("churn", 2).allowed
    assert [e.kind for e in versions.events(subject="churn") if e.kind.startswith("gates.")] == [
        "gates.policy_set",
        "gates.policy_set",
        "gates.policy_deleted",
    ]


def test_cli_save_policy_refusal_and_force(
    versions: Client, env: dict[str, str], tmp_path: Path, evaluation: pd.DataFrame
) -> None:
    runner = CliRunner()
    ev = tmp_path / "eval.parquet"
    evaluation.to_parquet(ev)
    policy = tmp_path / "gates.toml"
    policy.write_text(
        'required = true\nbaseline = "champion"\n\n[[gates]]\ntype = "quality"\n'
        "metrics = { accuracy = { max_regression = 0.02 } }\n"
    )
    r = runner.invoke(
        app,
        ["validate", "churn", "2", "--eval", str(ev), "--target", "y", "--policy", str(policy),
         "--save-policy"],
        env=env,
    )  # fmt: skip
    assert r.exit_code == 1, r.stderr
    assert versions.workspace.gates.get_policy("churn") is not None
    r = runner.invoke(app, ["deploy", "churn", "--version", "2"], env=env)
    assert r.exit_code == 1 and "refusing to deploy churn/2" in r.stderr
    r = runner.invoke(
        app,
        ["deploy", "churn", "--version", "2", "--force", "--force-reason", "demo", "--json"],
        env=env,
    )
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["version"] == 2
    assert _deploy_events(versions)[-1]["gates"]["force_reason"] == "demo"
    # without --policy, the saved policy runs (and its report counts for deploys)
    r = runner.invoke(
        app, ["validate", "churn", "3", "--eval", str(ev), "--target", "y", "--json"], env=env
    )
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["policy_source"] == "saved"
    r = runner.invoke(app, ["deploy", "churn", "--version", "3"], env=env)
    assert r.exit_code == 0, r.stderr


def test_rollouts_are_gated_like_deploys(versions: Client, evaluation: pd.DataFrame) -> None:
    from lockgate.rollout.service import RolloutService

    ws = versions.workspace
    ws.endpoints.deploy("churn", version=1)
    ws.gates.set_policy("churn", REQUIRED, reason="gate churn rollouts")
    rollouts = RolloutService(ws)
    failed = versions.validate("churn", 2, eval_data=evaluation, target="y")
    assert failed.status == "fail"
    with pytest.raises(ConflictError, match="refusing to deploy churn/2"):
        rollouts.start("churn", 2, strategy="canary")
    with pytest.raises(ConflictError, match="has not been validated"):
        rollouts.start("churn", 3, strategy="canary")
    assert ws.endpoints.get("churn").policy.primary == 1  # nothing changed
    forced = rollouts.start(
        "churn",
        2,
        strategy="canary",
        force=True,
        force_reason="incident 7: try the fix on 5% of traffic",
    )
    assert "gates forced: incident 7" in forced.to_dict()["history"][0]["reason"]
    rollouts.abort("churn", reason="test over")
    passed = versions.validate("churn", 3, eval_data=evaluation, target="y")
    assert passed.status == "pass"
    assert rollouts.start("churn", 3, strategy="canary").candidate == 3
