"""Monitoring fixtures: a workspace on a fake clock with a real tiny classifier registered with
its reference data and deployed, a real prediction log that tests fill with records at
fake-clock times, and a monitor service over both."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from sklearn.linear_model import LogisticRegression

from lockgate.client import Client, connect
from lockgate.clock import FakeClock
from lockgate.monitoring.alerts import WebhookSender
from lockgate.store.predlog import LogBatch, PredictionLog

if TYPE_CHECKING:
    from lockgate.monitoring.service import MonitorService

ENDPOINT = "credit"
SECRET = "monitor-test-secret"


def reference_frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "color": rng.choice(np.array(["red", "green", "blue"], dtype=object), n),
        }
    )


def fit(frame: pd.DataFrame) -> object:
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    y = (frame["x1"] + frame["x2"] > 0).astype(np.int64)
    pre = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["color"]), remainder="passthrough"
    )
    return make_pipeline(pre, LogisticRegression()).fit(frame, y)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def ws_client(home: Path, database_url: str, clock: FakeClock) -> Iterator[Client]:
    """Model ``credit`` v1 registered with reference data and deployed on ``credit``."""
    c = connect(home, database_url=database_url, clock=clock)
    ref = reference_frame()
    c.register_model(ENDPOINT, fit(ref), sample=ref.head(20), reference=ref)
    c.workspace.endpoints.deploy(ENDPOINT, version=1)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def plog(ws_client: Client) -> Iterator[PredictionLog]:
    log = PredictionLog(ws_client.workspace.settings.predictions_dir, compact_interval=None)
    log.start()
    try:
        yield log
    finally:
        log.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def svc(
    ws_client: Client, plog: PredictionLog, clock: FakeClock, registry: CollectorRegistry
) -> Iterator[MonitorService]:
    from lockgate.monitoring.service import MonitorService

    s = MonitorService(
        ws_client.workspace,
        predlog=plog,
        registry=registry,
        sender=WebhookSender(backoff=0.01, attempts=3, timeout=5),
        background=False,
        clock=clock,
    )
    try:
        yield s
    finally:
        s.close()


def emit(
    log: PredictionLog,
    clock: FakeClock,
    n: int,
    *,
    shift: float = 0.0,
    version: int = 1,
    role: str = "primary",
    status: int = 200,
    latency_ms: float = 3.0,
    seed: int = 0,
) -> tuple[list[str], pd.DataFrame]:
    """One request of ``n`` rows served at the fake clock's now minus 1 s; ``shift`` moves
    ``x1``. Returns the prediction ids and the inputs with the predicted label ``y``."""
    frame = reference_frame(n, seed + 1000)
    frame["x1"] = frame["x1"] + shift
    predicted = (frame["x1"] + frame["x2"] > 0).astype(np.int64).to_numpy()
    batch = LogBatch(
        request_id=uuid.uuid4().hex,
        endpoint=ENDPOINT,
        model=ENDPOINT,
        version=version,
        role=role,
        ts=clock.now().timestamp() - 1.0,
        inputs={c: frame[c].to_numpy() for c in frame.columns},
        outputs=None if status >= 400 else predicted,
        latency_ms=latency_ms,
        status=status,
        error="boom" if status >= 400 else None,
        n_rows=n,
    )
    log.submit_nowait(batch)
    log.flush()
    return batch.row_ids(), frame.assign(y=predicted)
