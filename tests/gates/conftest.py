"""Fixtures for the gate tests: real tiny models trained here, evaluation data, and a plugin
distribution (a runtime flavor and a custom gate declared by entry points) put on sys.path."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from lockgate import runtimes
from lockgate.client import Client
from lockgate.gates import catalog

PLUGIN_SOURCE = Path(__file__).parent / "plugin" / "lg_gate_plugin.py"
FEATURES = ["x1", "x2", "x3"]


def classification_data(n: int, seed: int) -> pd.DataFrame:
    """Three informative features, a binary label and a region column for slicing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    logit = 1.5 * x[:, 0] + 1.0 * x[:, 1] - 0.8 * x[:, 2]
    y = (logit + rng.normal(scale=0.7, size=n) > 0).astype(np.int64)
    region = rng.choice(["north", "south"], size=n)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "region": region, "y": y})


def fit(frame: pd.DataFrame, features: list[str] = FEATURES, **kw: object) -> LogisticRegression:
    model = LogisticRegression(**kw)  # type: ignore[arg-type]
    return model.fit(frame[features], frame["y"])


def fairness_data(n: int, seed: int, *, bias: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """Features with a ``group`` column and two labels: ``y`` (the truth, independent of the
    group) and the training label, in which, with ``bias``, 60% of group b's positives were
    recorded as negatives."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], size=n)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 + x2 + rng.normal(scale=0.5, size=n) > 0).astype(np.int64)
    train_label = y.copy()
    if bias:
        flip = (group == "b") & (y == 1) & (rng.random(n) < 0.6)
        train_label[flip] = 0
    return pd.DataFrame({"x1": x1, "x2": x2, "group": group, "y": y}), train_label


def group_model(frame: pd.DataFrame, label: np.ndarray) -> Pipeline:
    pre = ColumnTransformer(
        [("group", OneHotEncoder(handle_unknown="ignore"), ["group"])], remainder="passthrough"
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())])
    return model.fit(frame[["x1", "x2", "group"]], label)


@pytest.fixture(scope="session")
def train() -> pd.DataFrame:
    return classification_data(3000, seed=1)


@pytest.fixture(scope="session")
def evaluation() -> pd.DataFrame:
    return classification_data(2000, seed=2)


@dataclass
class Plugin:
    """The installed test plugin: where it lives and how to make ``lgtest`` artifacts."""

    site: Path

    def hook(self, body: str) -> str:
        """A new module on the plugin's path with ``body``; returns its name."""
        name = f"lg_hook_{uuid.uuid4().hex[:10]}"
        (self.site / f"{name}.py").write_text(body)
        return name

    def rewrite_hook(self, name: str, body: str | None) -> None:
        """Replace the hook module's code (None: delete it, as if not installed)."""
        path = self.site / f"{name}.py"
        shutil.rmtree(self.site / "__pycache__", ignore_errors=True)
        if body is None:
            path.unlink()
        else:
            path.write_text(body)

    def artifact(
        self,
        weights: list[float],
        bias: float = 0.0,
        *,
        hook: str | None = None,
        predict_delay_s: float = 0.0,
    ) -> Path:
        path = self.site / f"model-{uuid.uuid4().hex[:8]}.lgtest"
        spec = {"weights": weights, "bias": bias, "hook": hook, "predict_delay_s": predict_delay_s}
        path.write_text(json.dumps(spec))
        return path


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plugin]:
    """Install the test plugin for this process and for the smoke gate's child processes."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(PLUGIN_SOURCE, site / "lg_gate_plugin.py")
    dist = site / "lg_gate_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lg-gate-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[lockgate.runtimes]\nlgtest = lg_gate_plugin:ScriptedRuntime\n\n"
        "[lockgate.gates]\nartifact_size = lg_gate_plugin:ArtifactSizeGate\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    )
    runtimes._all_specs.cache_clear()
    catalog.refresh()
    try:
        yield Plugin(site)
    finally:
        runtimes._all_specs.cache_clear()
        catalog.refresh()
        for name in [m for m in sys.modules if m.startswith(("lg_gate_plugin", "lg_hook_"))]:
            del sys.modules[name]


def register_lgtest(client: Client, name: str, path: Path, sample: pd.DataFrame) -> int:
    v = client.register_model(name, path, flavor="lgtest", sample=sample)
    return v.version
