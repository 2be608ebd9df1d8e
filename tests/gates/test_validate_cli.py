"""``lockgate validate``: exit codes 0 / 1 / 2 / 3, the JSON document, Markdown and HTML
reports, policy files (TOML and YAML)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lockgate.cli.main import app
from lockgate.client import Client

from .conftest import FEATURES, fit


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def setup(
    client: Client, tmp_path: Path, train: pd.DataFrame, evaluation: pd.DataFrame
) -> dict[str, str]:
    """churn/1 is the champion, churn/2 a clearly worse candidate, churn/3 as good."""
    sample = train[FEATURES].head(20)
    client.register_model("churn", fit(train), sample=sample)
    client.register_model("churn", fit(train.assign(x1=0.0, x2=0.0)), sample=sample)
    client.register_model("churn", fit(train.sample(frac=0.9, random_state=1)), sample=sample)
    client.set_alias("churn", "champion", 1)
    ev = tmp_path / "eval.parquet"
    evaluation.to_parquet(ev)
    csv = tmp_path / "eval.csv"
    evaluation.to_csv(csv, index=False)
    return {"eval": str(ev), "csv": str(csv), "dir": str(tmp_path)}


def test_exit_0_pass_with_json_document(env: dict[str, str], setup: dict[str, str]) -> None:
    code, out, err = run(
        env, "validate", "churn", "3", "--against", "champion", "--eval", setup["csv"],
        "--target", "y", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "pass" and doc["exit_code"] == 0
    assert doc["model"] == "churn" and doc["version"] == 3
    assert doc["baseline"] == {"alias": "champion", "version": 1}
    assert [g["name"] for g in doc["gates"]] == ["schema", "smoke", "quality"]
    for gate in doc["gates"]:
        assert {"name", "status", "observed", "threshold", "reason"} <= set(gate)
        assert gate["status"] == "pass"
    quality = doc["gates"][2]
    assert quality["threshold"]["accuracy.change"] == {"min": -0.01}
    assert isinstance(quality["observed"]["accuracy"], float)


def test_exit_1_fail_names_the_metric(env: dict[str, str], setup: dict[str, str]) -> None:
    code, out, err = run(
        env, "validate", "churn", "2", "--against", "champion", "--eval", setup["eval"],
        "--target", "y",
    )  # fmt: skip
    assert code == 1, err
    assert "FAIL" in out and "accuracy fell from" in out
    assert "quality" in out and "fail" in out


def test_exit_2_inconclusive(env: dict[str, str], setup: dict[str, str]) -> None:
    policy = Path(setup["dir"]) / "gates.toml"
    policy.write_text('[[gates]]\ntype = "quality"\nmetrics = ["accuracy"]\n')
    code, out, err = run(
        env, "validate", "churn", "3", "--eval", setup["eval"], "--target", "y",
        "--policy", str(policy), "--json",
    )  # fmt: skip
    assert code == 2, err
    doc = json.loads(out)
    assert doc["status"] == "inconclusive"
    assert "needs a baseline" in doc["gates"][0]["reason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "nope", "1"], "model not found: nope"),
        (["validate", "churn", "9"], "version not found: churn/9"),
        (["validate", "churn", "1", "--against", "best"], "alias not found: churn@best"),
        (["validate", "churn", "1", "--eval", "missing.csv", "--target", "y"], "missing.csv"),
        (["validate", "churn", "1", "--eval", "{eval}"], "--eval and --target go together"),
        (["validate", "churn", "1", "--eval", "{eval}", "--target", "label"], "target"),
        (["validate", "churn", "1", "--policy", "{dir}/none.toml"], "none.toml"),
        (["validate", "churn", "1", "--report", "{dir}/r.txt"], ".md or .html"),
        (["validate", "churn", "1", "--save-policy"], "--save-policy needs --policy"),
    ],
)
def test_exit_3_usage_errors(
    env: dict[str, str], setup: dict[str, str], args: list[str], message: str
) -> None:
    code, out, err = run(env, *[a.format(**setup) for a in args])
    assert code == 3, (out, err)
    assert message in err


def test_exit_3_for_click_usage_errors_and_bad_policies(
    env: dict[str, str], setup: dict[str, str]
) -> None:
    assert run(env, "validate", "churn")[0] == 3  # missing VERSION
    assert run(env, "validate", "churn", "one")[0] == 3  # not an int
    assert run(env, "validate", "churn", "1", "--bogus")[0] == 3
    policy = Path(setup["dir"]) / "bad.toml"
    policy.write_text('[[gates]]\ntype = "latency"\nmax_ratio = 0.5\n')
    code, out, err = run(env, "validate", "churn", "1", "--policy", str(policy), "--json")
    assert code == 3
    doc = json.loads(out)
    assert doc["exit_code"] == 3 and doc["code"] == "invalid_input"
    assert (
        "The 'max_ratio' parameter of LatencyGate must be a float in the range (1, inf) or "
        "None. Got 0.5 instead."
    ) in doc["error"]
    policy.write_text('[[gates]]\ntype = "qualty"\n')
    code, _, err = run(env, "validate", "churn", "1", "--policy", str(policy))
    assert code == 3 and "Did you mean 'quality'?" in err
    policy.write_text("[[gates]\n")
    code, _, err = run(env, "validate", "churn", "1", "--policy", str(policy))
    assert code == 3 and "valid TOML" in err


def test_markdown_and_html_reports(env: dict[str, str], setup: dict[str, str]) -> None:
    md = Path(setup["dir"]) / "report.md"
    code, _, err = run(
        env, "validate", "churn", "2", "--against", "champion", "--eval", setup["eval"],
        "--target", "y", "--sensitive", "region", "--report", str(md),
    )  # fmt: skip
    assert code == 1, err
    text = md.read_text()
    assert text.startswith("# Validation of churn/2: ❌ FAIL")
    assert "| quality | ❌ fail |" in text
    assert "`accuracy.change`" in text and "≥ -0.01" in text
    assert "Groups by `region`:" in text
    html_path = Path(setup["dir"]) / "report.html"
    code, _, _ = run(
        env, "validate", "churn", "2", "--against", "champion", "--eval", setup["eval"],
        "--target", "y", "--report", str(html_path),
    )  # fmt: skip
    page = html_path.read_text()
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "Validation of churn/2" in page and "accuracy.change" in page


def test_yaml_and_multi_model_policy_files(env: dict[str, str], setup: dict[str, str]) -> None:
    pytest.importorskip("yaml")
    policy = Path(setup["dir"]) / "gates.yaml"
    policy.write_text(
        "models:\n"
        "  churn:\n"
        "    baseline: champion\n"
        "    gates:\n"
        "      - type: quality\n"
        "        metrics: {accuracy: {max_regression: 0.02}}\n"
        "  other:\n"
        "    gates: []\n"
    )
    args = ["--eval", setup["eval"], "--target", "y", "--policy", str(policy), "--json"]
    code, out, _ = run(env, "validate", "churn", "2", *args)
    assert code == 1
    doc = json.loads(out)
    assert doc["baseline"]["version"] == 1 and doc["policy_source"] == str(policy)
    code, out, _ = run(env, "validate", "churn", "3", *args)
    assert code == 0, out


def test_real_process_exit_codes(env: dict[str, str], setup: dict[str, str]) -> None:
    base = [sys.executable, "-m", "lockgate.cli", "validate", "churn"]
    ok = subprocess.run(
        [*base, "3", "--against", "champion", "--eval", setup["eval"], "--target", "y"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [*base, "2", "--against", "champion", "--eval", setup["eval"], "--target", "y"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1, bad.stderr
    usage = subprocess.run([*base], env=env, capture_output=True, text=True, timeout=120)
    assert usage.returncode == 3
