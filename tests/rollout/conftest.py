"""Rollout fixtures: a workspace on a fake clock with two real tiny model versions deployed,
and a real prediction log that tests fill with records at fake-clock times."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from lockgate.client import Client, connect
from lockgate.clock import FakeClock
from lockgate.store.predlog import LogBatch, PredictionLog


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 5, 4, 9, 0, tzinfo=UTC))


@pytest.fixture
def fc(home: Path, database_url: str, clock: FakeClock) -> Iterator[Client]:
    """A client on a fake clock with model ``iris`` v1 (deployed) and v2, v3 registered."""
    c = connect(home, database_url=database_url, clock=clock)
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"x1": rng.normal(size=200), "x2": rng.normal(size=200)})
    y = (X["x1"] + X["x2"] > 0).astype(int)
    for c_ in (1.0, 0.5, 0.1):
        c.register_model("iris", LogisticRegression(C=c_).fit(X, y), sample=X)
    c.workspace.endpoints.deploy("iris", version=1)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def plog(fc: Client) -> Iterator[PredictionLog]:
    log = PredictionLog(fc.workspace.settings.predictions_dir, compact_interval=None)
    log.start()
    try:
        yield log
    finally:
        log.close()


def emit(
    log: PredictionLog,
    clock: FakeClock,
    version: int,
    role: str,
    n: int,
    *,
    error_rate: float = 0.0,
    latency_ms: float = 2.0,
    outputs: np.ndarray | None = None,
    ids: list[str] | None = None,
    seed: int = 0,
) -> list[str]:
    """``n`` one-row requests served by ``version`` in ``role``, spread over the last 10 s of
    the fake clock; returns the prediction ids."""
    rng = np.random.default_rng(seed)
    end = clock.now().timestamp()
    out_ids = []
    for i in range(n):
        rid = ids[i].rsplit("-", 1)[0] if ids else uuid.uuid4().hex
        failed = rng.random() < error_rate
        y = None if failed else np.array([outputs[i] if outputs is not None else i % 2])
        log.submit_nowait(
            LogBatch(
                request_id=rid,
                endpoint="iris",
                model="iris",
                version=version,
                role=role,
                ts=end - 10 + 10 * i / max(n, 1),
                inputs={"x1": np.array([rng.normal()]), "x2": np.array([rng.normal()])},
                outputs=y,
                latency_ms=float(rng.gamma(4.0, latency_ms / 4.0)),
                status=500 if failed else 200,
                error="boom" if failed else None,
                n_rows=1,
            )
        )
        out_ids.append(f"{rid}-0")
    log.flush()
    return out_ids
