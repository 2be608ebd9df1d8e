"""Shared fixtures. The metadata store runs on a real SQLite file by default, and on the real
local PostgreSQL when ``LOCKGATE_TEST_DATABASE_URL`` names one (a fresh database per test)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.databases import fresh_database

from lockgate.client import Client, connect

PG_URL = os.environ.get("LOCKGATE_TEST_DATABASE_URL", "")


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A new metadata database at the newest schema, with no data: a SQLite file or a new
    PostgreSQL database."""
    with fresh_database(tmp_path) as url:
        yield url


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A new, empty metadata database (no tables): for the tests of the migrations."""
    folder = tmp_path / "empty-db"  # apart from database_url's file
    folder.mkdir()
    with fresh_database(folder, at_head=False) as url:
        yield url


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "ws"
    h.mkdir()
    return h


@pytest.fixture
def env(home: Path, database_url: str) -> dict[str, str]:
    """Environment for a subprocess (CLI, server) on the same workspace."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    e.update(LOCKGATE_HOME=str(home), LOCKGATE_DATABASE_URL=database_url)
    return e


@pytest.fixture
def client(home: Path, database_url: str) -> Iterator[Client]:
    c = connect(home, database_url=database_url)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def iris_like() -> tuple[pd.DataFrame, np.ndarray]:
    """A small synthetic classification dataset with numeric and string columns."""
    rng = np.random.default_rng(7)
    n = 300
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    y = ((x1 + 0.5 * x2 + (color == "red")) > 0.5).astype(np.int64)
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color}), y


@pytest.fixture(scope="session")
def numeric_frame(iris_like: tuple[pd.DataFrame, np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = iris_like
    return X[["x1", "x2"]].copy(), y


#: Test files that do not depend on which database holds the metadata (pure statistics,
#: codecs, runtimes, the prediction log), that exercise the data plane's protocol
#: behaviour, which reads endpoint definitions once, or that test how processes behave
#: (a server's start-up order and graceful shutdown, the smoke gate's child process, the
#: exit codes of ``lockgate validate``) with the same registry calls other files run on both
#: databases. They run on the SQLite pass only; every other test also runs on the
#: PostgreSQL pass.
DATABASE_INDEPENDENT = (
    "tests/test_docs.py",
    "tests/test_import_direction.py",
    "tests/alerts/",
    "tests/audit/test_audit_imports.py",
    "tests/cli/test_predictions_cli.py",
    "tests/gates/test_fairness_metrics.py",
    "tests/gates/test_smoke_gate.py",
    "tests/gates/test_validate_cli.py",
    "tests/monitoring/",
    "tests/monitoring_service/test_quality.py",
    "tests/monitoring_service/test_report_html.py",
    "tests/registry/test_signature.py",
    "tests/rollout/test_abtest_analysis.py",
    "tests/rollout/test_imports.py",
    "tests/rollout/test_policy_router.py",
    "tests/rollout/test_state.py",
    "tests/runtimes/",
    "tests/serving/test_oip.py",
    "tests/serving/test_mlflow.py",
    "tests/serving/test_batching.py",
    "tests/serving/test_shutdown.py",
    "tests/serving/test_startup.py",
    "tests/serving/test_metrics.py",
    "tests/store/",
)
#: Files that the CI runs on one of its two passes only (``LOCKGATE_TEST_PASS``, set by
#: ``.ci/run``): the two passes run side by side on a 2-core machine, so every second a file
#: spends on both is a second of the run's length.
#:
#: * Database-independent files, moved from the SQLite pass (which runs every other file)
#:   to balance the two.
#: * End-to-end flows over real servers and child processes (rollouts, the closed loop,
#:   schedules, alerts, training children), which cost the most and go through the same
#:   store calls that the store, registry, audit and control-plane tests check on both
#:   databases: each flow runs once, on the pass named, and the flows are shared between
#:   the two databases. What depends on the database itself stays on both: leader election
#:   (tests/rollout/test_server_lifecycle.py), concurrent registration
#:   (tests/registry/test_concurrency.py), hot reload and every store-level test.
#:
#: Run by hand (no ``LOCKGATE_TEST_PASS``), a SQLite pass runs every file and a PostgreSQL
#: pass every database-dependent one, these included.
CI_PASS = {
    "tests/gates/test_fairness_metrics.py": "postgresql",
    "tests/gates/test_validate_cli.py": "postgresql",
    "tests/serving/test_shutdown.py": "postgresql",
    "tests/rollout/test_api_feedback.py": "postgresql",
    "tests/automation/test_closed_loop.py": "postgresql",
    "tests/automation/test_online_schedule.py": "postgresql",
    "tests/automation/test_slo_rollback.py": "postgresql",
    "tests/monitoring_service/test_server_alerts.py": "postgresql",
    "tests/rollout/test_server_rollouts.py": "sqlite",
    "tests/automation/test_runner_and_engine.py": "sqlite",
    "tests/automation/test_shutdown_training.py": "sqlite",
    "tests/automation/test_pipeline_schedule.py": "sqlite",
}
_ROOT = Path(__file__).resolve().parent.parent


def _listed(rel: str, patterns: tuple[str, ...]) -> bool:
    return any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in patterns)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass (LOCKGATE_TEST_DATABASE_URL set), deselect the
    database-independent files listed above; they run on the SQLite pass. In CI
    (LOCKGATE_TEST_PASS set), a file of :data:`CI_PASS` runs on its pass only."""
    ci_pass = os.environ.get("LOCKGATE_TEST_PASS", "")
    if not PG_URL and not ci_pass:
        return
    this_pass = "postgresql" if PG_URL else "sqlite"
    if ci_pass and ci_pass != this_pass:
        raise pytest.UsageError(
            f"LOCKGATE_TEST_PASS={ci_pass!r} but the tests run on {this_pass} "
            "(LOCKGATE_TEST_DATABASE_URL names the PostgreSQL server of that pass)"
        )
    unknown = [p for p in CI_PASS if not (_ROOT / p).is_file()]
    if ci_pass and unknown:
        raise pytest.UsageError(f"CI_PASS names files that do not exist: {unknown}")
    keep: list[pytest.Item] = []
    skipped: list[pytest.Item] = []
    for item in items:
        rel = Path(str(item.fspath)).resolve().relative_to(_ROOT).as_posix()
        if ci_pass and rel in CI_PASS:
            here = CI_PASS[rel] == this_pass
        else:
            here = not (PG_URL and _listed(rel, DATABASE_INDEPENDENT))
        (keep if here else skipped).append(item)
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = keep
