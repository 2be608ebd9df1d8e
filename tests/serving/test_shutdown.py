"""Stopping a real server loses nothing: after SIGTERM every answered prediction is in the
log and the process exits 0; with sync durability the same holds after SIGKILL; requests in
flight at SIGTERM are finished with 200.

The 10,000-request loads use aiohttp (tritonclient[http]'s own async transport): on a busy
2-core machine httpx spends ~5 ms of CPU per request, aiohttp ~0.4 ms, which keeps each
test well under a minute."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from tests.serving.conftest import (
    RunningServer,
    ServingWorkspace,
    fit_iris,
    running_server,
    serving_workspace,
)

from lockgate.store.predlog import PredictionLog

N_REQUESTS = 10_000
IRIS = ["x1", "x2", "x3"]


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, numeric_frame: Any
) -> Iterator[tuple[ServingWorkspace, LogisticRegression]]:
    """One workspace whose "iris" model is deployed at one endpoint per test."""
    model, X = fit_iris(numeric_frame)
    with serving_workspace(tmp_path_factory.mktemp("shutdown")) as ws:
        ws.client.register_model("iris", model, sample=X)
        for endpoint in ("async-log", "sync-log", "graceful"):
            ws.client.workspace.endpoints.deploy("iris", version=1, endpoint=endpoint)
        yield ws, model


async def _load(url: str, endpoint: str, rows: np.ndarray) -> list[dict[str, Any]]:
    """One request per row, all at once over 64 connections; the answers in order."""
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(url, connector=connector) as session:

        async def one(row: list[float]) -> dict[str, Any]:
            async with session.post(
                f"/v1/endpoints/{endpoint}/predict", json={"inputs": [row]}
            ) as r:
                assert r.status == 200, await r.text()
                doc: dict[str, Any] = await r.json()
                return doc

        return list(await asyncio.gather(*(one(row) for row in rows.tolist())))


def load(srv: RunningServer, endpoint: str, model: LogisticRegression) -> dict[str, int]:
    """10,000 distinct one-row requests; check each answer; return {prediction id: label}."""
    rows = np.random.default_rng(len(endpoint)).normal(size=(N_REQUESTS, 3))
    answers = asyncio.run(_load(srv.url, endpoint, rows))
    expected = model.predict(rows).tolist()
    assert [a["predictions"][0] for a in answers] == expected
    ids = {a["prediction_ids"][0]: a["predictions"][0] for a in answers}
    assert len(ids) == N_REQUESTS
    return ids


def assert_logged(home: Path, endpoint: str, ids: dict[str, int]) -> None:
    """The log holds exactly one record per answered prediction, with its output."""
    log = PredictionLog(home / "predictions")
    assert log.count(endpoint) == len(ids)
    frame = log.read(endpoint, columns=["id", "output", "status"])
    assert frame["id"].is_unique
    assert set(frame["id"]) == set(ids)
    assert (frame["status"] == 200).all()
    assert dict(zip(frame["id"], frame["output"].tolist(), strict=True)) == ids


def test_sigterm_after_10000_requests_loses_no_prediction(
    workspace: tuple[ServingWorkspace, LogisticRegression],
) -> None:
    ws, model = workspace
    with running_server(ws.env, ws.tmp) as srv:
        ids = load(srv, "async-log", model)
        assert srv.stop(signal.SIGTERM) == 0, srv.log()
    assert_logged(ws.home, "async-log", ids)


def test_sync_durability_survives_sigkill(
    workspace: tuple[ServingWorkspace, LogisticRegression],
) -> None:
    ws, model = workspace
    with running_server(ws.env, ws.tmp, extra_env={"LOCKGATE_LOG_DURABILITY": "sync"}) as srv:
        ids = load(srv, "sync-log", model)
        assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
    assert_logged(ws.home, "sync-log", ids)


def _accepts(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


async def _in_flight_at_sigterm(srv: RunningServer, rows: np.ndarray) -> list[httpx.Response]:
    """Start one request per row whose body stops halfway; SIGTERM the server; once it has
    stopped accepting connections, send the rest of every body."""
    release = asyncio.Event()
    halfway = [asyncio.Event() for _ in rows]

    async def body(i: int, raw: bytes) -> Any:
        yield raw[: len(raw) // 2]
        halfway[i].set()
        await release.wait()
        yield raw[len(raw) // 2 :]

    limits = httpx.Limits(max_connections=len(rows))
    async with httpx.AsyncClient(base_url=srv.url, limits=limits, timeout=60) as client:
        tasks = []
        for i, row in enumerate(rows.tolist()):
            raw = httpx.Request("POST", "/", json={"inputs": [row]}).content
            tasks.append(
                asyncio.create_task(
                    client.post(
                        "/v1/endpoints/graceful/predict",
                        content=body(i, raw),
                        headers={"content-type": "application/json"},
                    )
                )
            )
        for event in halfway:
            await asyncio.wait_for(event.wait(), 30)
        # one round trip on another connection: the server has read what was sent before
        async with httpx.AsyncClient(base_url=srv.url) as other:
            assert (await other.get("/v2/health/live")).status_code == 200
        assert not any(t.done() for t in tasks)
        srv.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        while _accepts(srv.url):
            assert time.monotonic() - t0 < 30, "the server kept accepting after SIGTERM"
            await asyncio.sleep(0.02)
        assert not any(t.done() for t in tasks)
        release.set()
        return list(await asyncio.gather(*tasks))


def test_requests_in_flight_at_sigterm_complete(
    workspace: tuple[ServingWorkspace, LogisticRegression],
) -> None:
    ws, model = workspace
    rows = np.random.default_rng(4).normal(size=(8, 3))
    with running_server(ws.env, ws.tmp) as srv:
        answers = asyncio.run(_in_flight_at_sigterm(srv, rows))
        for row, r in zip(rows, answers, strict=True):
            assert r.status_code == 200, r.text
            assert r.json()["predictions"] == model.predict(row.reshape(1, 3)).tolist()
        assert srv.proc.wait(timeout=60) == 0, srv.log()
    assert PredictionLog(ws.home / "predictions").count("graceful") == len(rows)
