"""The smoke gate loads the candidate in its own process: a model that crashes the interpreter,
hangs while loading or needs a module that is missing fails the gate, and the validating
process stays healthy (it goes on to validate another model)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from lockgate.client import Client

from .conftest import FEATURES, Plugin, fit, register_lgtest

SAMPLE = pd.DataFrame({"x1": [0.5, -1.0, 2.0], "x2": [1.0, 0.0, -0.5], "x3": [0.1, 0.2, 0.3]})
SMOKE = {"gates": [{"type": "smoke", "load_budget_s": 20.0}]}


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _still_healthy(client: Client, train: pd.DataFrame) -> None:
    """The validating process goes on: a good model validates and passes."""
    v = client.register_model("healthy", fit(train), sample=train[FEATURES].head(20)).version
    report = client.validate("healthy", v, policy=SMOKE)
    assert report.status == "pass", report.gate("smoke").reason


def test_a_good_model_passes_in_its_own_process(
    client: Client, plugin: Plugin, train: pd.DataFrame
) -> None:
    v = register_lgtest(client, "lin", plugin.artifact([1.0, -1.0, 0.5]), SAMPLE)
    report = client.validate("lin", v, policy=SMOKE)
    gate = report.gate("smoke")
    assert report.status == "pass", gate.reason
    keys = {c.key: c.status for c in gate.checks}
    assert keys == {
        "load_s": "pass",
        "requests_s": "pass",
        "outputs_per_row": "pass",
        "nan_outputs": "pass",
        "consistent": "pass",
    }
    assert gate.observed["load_s"] < 20.0
    assert gate.threshold["load_s"] == {"max": 20.0}
    assert gate.details["rows_from"] == "synthetic rows from the signature"
    assert gate.details["exit"] == "exited normally"


def test_a_model_that_crashes_the_interpreter_on_load_fails(
    client: Client, plugin: Plugin, train: pd.DataFrame, evaluation: pd.DataFrame
) -> None:
    hook = plugin.hook("VALUE = 1\n")
    v = register_lgtest(client, "crashy", plugin.artifact([1.0, 0.0, 0.0], hook=hook), SAMPLE)
    # in production the model's own code now aborts the interpreter when imported
    plugin.rewrite_hook(hook, "import os\nos.abort()\n")
    policy = {
        "gates": [*SMOKE["gates"], {"type": "quality", "metrics": {"accuracy": {"min": 0.5}}}]
    }
    report = client.validate("crashy", v, eval_data=evaluation, target="y", policy=policy)
    smoke = report.gate("smoke")
    assert report.status == "fail" and smoke.status == "fail"
    assert "SIGABRT" in smoke.reason and "while loading" in smoke.reason
    # later gates do not load the crashing model into this process
    quality = report.gate("quality")
    assert quality.status == "inconclusive"
    assert "not evaluated" in quality.reason and "smoke gate failed" in quality.reason
    _still_healthy(client, train)


def test_a_model_that_hangs_on_load_fails_within_the_budget_and_is_killed(
    client: Client, plugin: Plugin, train: pd.DataFrame, tmp_path: Path
) -> None:
    hook = plugin.hook("VALUE = 1\n")
    v = register_lgtest(client, "slow", plugin.artifact([1.0, 0.0, 0.0], hook=hook), SAMPLE)
    pid_file = tmp_path / "child.pid"
    plugin.rewrite_hook(
        hook,
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n",
    )
    start = time.monotonic()
    report = client.validate("slow", v, policy={"gates": [{"type": "smoke", "load_budget_s": 2}]})
    elapsed = time.monotonic() - start
    smoke = report.gate("smoke")
    assert smoke.status == "fail"
    assert "did not finish loading within the 2 s budget" in smoke.reason
    assert "killed" in smoke.reason
    assert smoke.threshold["load_s"] == {"max": 2.0}
    assert smoke.observed["load_s"] >= 2.0
    assert elapsed < 30, elapsed
    child = int(pid_file.read_text())
    assert _pid_gone(child), "the hung child process was left running"
    _still_healthy(client, train)


def test_a_model_whose_module_is_missing_fails(
    client: Client, plugin: Plugin, train: pd.DataFrame
) -> None:
    hook = plugin.hook("VALUE = 1\n")
    v = register_lgtest(client, "deps", plugin.artifact([1.0, 0.0, 0.0], hook=hook), SAMPLE)
    plugin.rewrite_hook(hook, None)
    report = client.validate("deps", v, policy=SMOKE)
    smoke = report.gate("smoke")
    assert smoke.status == "fail"
    assert "did not load" in smoke.reason and "ModuleNotFoundError" in smoke.reason
    assert hook in smoke.reason
    _still_healthy(client, train)


def test_slow_answers_fail_the_request_budget(client: Client, plugin: Plugin) -> None:
    v = register_lgtest(
        client, "sluggish", plugin.artifact([1.0, 0.0, 0.0], predict_delay_s=0.3), SAMPLE
    )
    policy = {"gates": [{"type": "smoke", "rows": 8, "request_budget_s": 1.0}]}
    report = client.validate("sluggish", v, policy=policy)
    smoke = report.gate("smoke")
    assert smoke.status == "fail"
    assert "did not answer 8 sample rows within the 1 s budget" in smoke.reason


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"load_budget_s": 0},
            "The 'load_budget_s' parameter of SmokeGate must be a float in the range (0, inf). "
            "Got 0 instead.",
        ),
        (
            {"rows": 0},
            "The 'rows' parameter of SmokeGate must be an int in the range [1, 1000]. "
            "Got 0 instead.",
        ),
        (
            {"check_consistency": "yes"},
            "The 'check_consistency' parameter of SmokeGate must be a bool. Got 'yes' instead.",
        ),
        ({"load_budget": 5}, "SmokeGate got an unexpected parameter 'load_budget'"),
    ],
)
def test_bad_smoke_parameters(
    client: Client, train: pd.DataFrame, params: dict[str, object], message: str
) -> None:
    v = client.register_model("m", fit(train), sample=train[FEATURES].head(5)).version
    with pytest.raises(ValueError) as info:
        client.validate("m", v, policy={"gates": [{"type": "smoke", **params}]})
    assert message in str(info.value)
