"""Deploying a new version while a real server is under load: no request fails, the server
switches within 2 s, and every answer is right for the version that gave it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
import numpy as np
from sklearn.linear_model import LogisticRegression
from tests.serving.conftest import SharedServer, wait_until_served

IRIS = ["x1", "x2", "x3"]
CONCURRENCY = 16
LOAD_SECONDS = 5.0
DEPLOY_AFTER = 1.0
SWITCH_WITHIN = 2.0


@dataclass
class Answer:
    sent: float
    received: float
    rows: np.ndarray
    status: int
    version: str | None
    labels: list[int] | None


async def _load_and_deploy(
    shared: SharedServer, rows: np.ndarray
) -> tuple[list[Answer], tuple[float, float]]:
    """Run the load loop; deploy version 2 after DEPLOY_AFTER seconds. Returns the answers
    and when the deploy call started and returned."""
    answers: list[Answer] = []
    t_end = time.monotonic() + LOAD_SECONDS
    rng = np.random.default_rng(8)

    async def worker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < t_end:
            chunk = rows[rng.integers(0, len(rows), 4)]
            body = {
                "inputs": [
                    {"name": n, "shape": [4], "datatype": "FP64", "data": chunk[:, j].tolist()}
                    for j, n in enumerate(IRIS)
                ]
            }
            sent = time.monotonic()
            r = await client.post("/v2/models/reload/infer", json=body)
            doc = r.json() if r.status_code == 200 else None
            answers.append(
                Answer(
                    sent,
                    time.monotonic(),
                    chunk,
                    r.status_code,
                    doc["model_version"] if doc else None,
                    doc["outputs"][0]["data"] if doc else None,
                )
            )

    async def deploy() -> tuple[float, float]:
        await asyncio.sleep(DEPLOY_AFTER)
        start = time.monotonic()
        await asyncio.to_thread(shared.ws.client.workspace.endpoints.deploy, "reload", version=2)
        return start, time.monotonic()

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=shared.url, limits=limits, timeout=30) as client:
        deployed, *_ = await asyncio.gather(deploy(), *(worker(client) for _ in range(CONCURRENCY)))
    return answers, deployed


def test_deploy_under_load_switches_without_a_failed_request(shared: SharedServer) -> None:
    X = shared.iris_X
    y = shared.iris.predict(X.to_numpy())
    v1 = LogisticRegression().fit(X.to_numpy(), y)
    v2 = LogisticRegression().fit(X.to_numpy(), 1 - y)  # answers differ from v1 on every row
    client = shared.ws.client
    client.register_model("reload", v1, sample=X)
    client.workspace.endpoints.deploy("reload", version=1)
    client.register_model("reload", v2, sample=X)  # registered, not yet served
    wait_until_served(shared.url, "reload", version=1)

    rows = X.to_numpy()
    answers, (deploy_start, deploy_end) = asyncio.run(_load_and_deploy(shared, rows))

    assert len(answers) > 100
    assert [a.status for a in answers if a.status != 200] == []
    for a in answers:
        model = v1 if a.version == "1" else v2
        assert a.version in ("1", "2")
        assert a.labels == model.predict(a.rows).tolist(), a
    answers.sort(key=lambda a: a.sent)
    first_v2 = next(a for a in answers if a.version == "2")
    assert deploy_start <= first_v2.received
    # once an answer came from version 2, every request sent after it was answered by 2
    assert all(a.version == "2" for a in answers if a.sent > first_v2.received)
    # the switch happened within SWITCH_WITHIN of the deploy: every request sent later was
    # answered by version 2, and the load went on long enough to show it
    after = [a for a in answers if a.sent > deploy_end + SWITCH_WITHIN]
    assert len(after) > 20 and all(a.version == "2" for a in after)
    assert any(a.version == "1" for a in answers)
