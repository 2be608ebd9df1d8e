"""Adaptive batching on a real server: concurrent callers share model calls yet each gets
exactly its own rows back; a failing batch fails its own callers only; a full queue answers
503 with Retry-After; a passed deadline answers 504."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from tests import loopback
from tests.serving.conftest import SharedServer, metric, scrape, wait_until_served

IRIS = ["x1", "x2", "x3"]
BATCHING = {"enabled": True, "max_batch_size": 32, "max_wait_ms": 5}


@dataclass
class Batched:
    url: str
    linear: LinearRegression
    scaled: Pipeline
    colors: Pipeline
    iris: LogisticRegression


@pytest.fixture(scope="module")
def batched(shared: SharedServer) -> Iterator[Batched]:
    """Endpoints with batching on the shared server:

    * ``linear``: a LinearRegression (every row's output is its own), batching 32 rows / 5 ms;
    * ``scaled``: the same behind a StandardScaler (a pipeline: scikit-learn checks NaN),
      same batching;
    * ``colors``: a pipeline that raises on an unseen colour (OneHotEncoder
      handle_unknown='error'), same batching;
    * ``iris-tinyqueue``: iris with a queue of 2 rows;
    * ``iris-deadline``: iris with a 1 ms deadline per request.
    """
    rng = np.random.default_rng(11)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=IRIS)
    linear = LinearRegression().fit(X.to_numpy(), X @ [1.5, -2.0, 0.25] + rng.normal(size=200))
    scaled = make_pipeline(StandardScaler(), LinearRegression()).fit(
        X.to_numpy(), linear.predict(X.to_numpy())
    )
    C = pd.DataFrame(
        {"color": rng.choice(["red", "green", "blue"], 200).astype(object), "x1": X["x1"]}
    )
    colors = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="error"), ["color"]), remainder="passthrough"
        ),
        LogisticRegression(),
    ).fit(C, (C["x1"] + (C["color"] == "red") > 0.5).astype(np.int64))
    client = shared.ws.client
    client.register_model("linear", linear, sample=X)
    client.register_model("scaled", scaled, sample=X)
    client.register_model("colors", colors, sample=C)
    eps = client.workspace.endpoints
    eps.deploy("linear", version=1, batching=BATCHING)
    eps.deploy("scaled", version=1, batching=BATCHING)
    eps.deploy("colors", version=1, batching=BATCHING)
    eps.deploy(
        "iris",
        version=1,
        endpoint="iris-tinyqueue",
        batching={"enabled": True, "max_batch_size": 2, "max_wait_ms": 5, "max_queue": 2},
    )
    eps.deploy(
        "iris",
        version=1,
        endpoint="iris-deadline",
        batching={
            "enabled": True,
            "max_batch_size": 9999,  # a 5,000-row request queues, alone per call
            "max_wait_ms": 0,
            "max_queue": 1_000_000,
            "timeout_ms": 1,
        },
    )
    for name in ("linear", "scaled", "colors", "iris-tinyqueue", "iris-deadline"):
        wait_until_served(shared.url, name)
    yield Batched(shared.url, linear, scaled, colors, shared.iris)


async def _post_all(
    url: str, requests: list[tuple[str, dict[str, Any]]], connections: int = 64
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as c:
        return list(await asyncio.gather(*(c.post(path, json=body) for path, body in requests)))


def post_all(
    url: str, requests: list[tuple[str, dict[str, Any]]], connections: int = 64
) -> list[httpx.Response]:
    """Send every request at once over ``connections`` connections; answers in order."""
    return asyncio.run(_post_all(url, requests, connections))


def oip(rows: np.ndarray, rid: str) -> dict[str, Any]:
    return {
        "id": rid,
        "inputs": [
            {"name": n, "shape": [len(rows)], "datatype": "FP64", "data": rows[:, j].tolist()}
            for j, n in enumerate(IRIS)
        ],
    }


def mlflow(rows: np.ndarray) -> dict[str, Any]:
    return {"dataframe_split": {"columns": IRIS, "data": rows.tolist()}}


def test_every_caller_gets_its_own_rows_in_order(batched: Batched) -> None:
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 9, 500)
    chunks = np.split(rng.normal(size=(int(sizes.sum()), 3)), np.cumsum(sizes)[:-1])
    requests = [
        ("/v2/models/linear/infer", oip(rows, f"r{i}"))
        if i % 2
        else ("/v1/endpoints/linear/predict", mlflow(rows))
        for i, rows in enumerate(chunks)
    ]
    before = scrape(batched.url)
    answers = post_all(batched.url, requests)
    after = scrape(batched.url)

    for i, (rows, r) in enumerate(zip(chunks, answers, strict=True)):
        assert r.status_code == 200, r.text
        doc = r.json()
        got = doc["outputs"][0]["data"] if i % 2 else doc["predictions"]
        if i % 2:
            assert doc["id"] == f"r{i}"
        np.testing.assert_allclose(got, batched.linear.predict(rows), rtol=1e-12, atol=1e-12)

    def delta(name: str) -> float:
        labels = {"endpoint": "linear", "version": "1"}
        return metric(after, name, **labels) - metric(before, name, **labels)

    # every row went through a batch; fewer model calls than requests: batches were shared
    assert delta("lockgate_batch_rows_sum") == sizes.sum()
    calls = delta("lockgate_batch_rows_count")
    assert 0 < calls < len(requests)
    assert delta("lockgate_batch_rows_bucket") > 0
    # the largest bucket holding every call proves max_batch_size held (bucket le=32)
    assert metric(after, "lockgate_batch_rows_bucket", endpoint="linear", le="32.0") == metric(
        after, "lockgate_batch_rows_count", endpoint="linear"
    )
    assert metric(after, "lockgate_batch_queue_rows", endpoint="linear") == 0


def test_a_failing_batch_fails_its_own_callers_only(batched: Batched) -> None:
    """Requests with an unseen colour make the model raise. Each failure names the unseen
    colours of its batch, so failures group by batch: every caller of a failed batch (its
    poisoned requests and the healthy ones that shared it) gets the same 500, and every
    other caller gets its own predictions."""
    rng = np.random.default_rng(9)
    requests: list[tuple[str, dict[str, Any]]] = []
    frames: list[pd.DataFrame] = []
    poisoned: dict[int, str] = {}
    for i in range(300):
        n = int(rng.integers(1, 4))
        f = pd.DataFrame(
            {
                "color": rng.choice(["red", "green", "blue"], n).astype(object),
                "x1": rng.normal(size=n),
            }
        )
        if i % 10 == 3:
            poisoned[i] = f"bad{i}"
            f.loc[n - 1, "color"] = poisoned[i]
        frames.append(f)
        split = {"columns": ["color", "x1"], "data": f.to_numpy().tolist()}
        requests.append(("/v1/endpoints/colors/predict", {"dataframe_split": split}))

    answers = post_all(batched.url, requests)

    batches: dict[str, list[int]] = defaultdict(list)
    for i, (f, r) in enumerate(zip(frames, answers, strict=True)):
        if r.status_code == 200:
            assert i not in poisoned
            assert r.json()["predictions"] == batched.colors.predict(f).tolist()
        else:
            assert r.status_code == 500, r.text
            assert set(r.json()) == {"error"}
            batches[r.json()["error"]].append(i)
    assert set(poisoned) <= {i for members in batches.values() for i in members}
    mixed = 0
    for message, members in batches.items():
        named = {int(m) for m in re.findall(r"bad(\d+)", message)}
        assert "unknown categories" in message
        # the failure reached exactly the poisoned callers its batch held, and healthy
        # callers only as many as fit in one batch of at most 32 rows
        assert named == {i for i in members if i in poisoned}
        assert sum(len(frames[i]) for i in members) <= 32
        mixed += any(i not in poisoned for i in members)
    assert mixed, "no healthy request shared a batch with a poisoned one: batching did not act"


def test_a_full_queue_answers_503_with_retry_after(batched: Batched) -> None:
    rng = np.random.default_rng(1)
    chunks = [rng.normal(size=(1, 3)) for _ in range(200)]
    answers = post_all(
        batched.url,
        [("/v2/models/iris-tinyqueue/infer", oip(c, f"q{i}")) for i, c in enumerate(chunks)],
    )
    refused = [r for r in answers if r.status_code == 503]
    assert refused, "200 concurrent requests never filled a queue of 2 rows"
    for r in refused:
        assert int(r.headers["retry-after"]) >= 1
        assert set(r.json()) == {"error"} and "queue full" in r.json()["error"]
    for rows, r in zip(chunks, answers, strict=True):
        if r.status_code != 503:
            assert r.status_code == 200, r.text
            assert r.json()["outputs"][0]["data"] == batched.iris.predict(rows).tolist()
    # a request larger than the whole queue is still served when the queue is empty
    big = rng.normal(size=(5, 3))
    r = loopback.post(f"{batched.url}/v2/models/iris-tinyqueue/infer", json=oip(big, "big"))
    assert (
        r.status_code == 200
        and r.json()["outputs"][0]["data"] == batched.iris.predict(big).tolist()
    )
    samples = scrape(batched.url)
    assert metric(samples, "lockgate_requests_total", endpoint="iris-tinyqueue", code="503") == len(
        refused
    )


def test_a_passed_deadline_answers_504(batched: Batched) -> None:
    """A 1 ms deadline and requests of 5,000 rows: callers queued behind another caller's
    model call are past their deadline and get 504; nobody gets a wrong answer."""
    rng = np.random.default_rng(2)
    chunks = [rng.normal(size=(5000, 3)) for _ in range(16)]
    answers = post_all(
        batched.url,
        [("/v2/models/iris-deadline/infer", oip(c, f"d{i}")) for i, c in enumerate(chunks)],
        connections=16,
    )
    late = [r for r in answers if r.status_code == 504]
    assert late, "no request passed a 1 ms deadline"
    for rows, r in zip(chunks, answers, strict=True):
        if r.status_code == 504:
            assert set(r.json()) == {"error"} and "timeout_ms=1" in r.json()["error"]
        else:
            assert r.status_code == 200, r.text
            assert r.json()["outputs"][0]["data"] == batched.iris.predict(rows).tolist()
    samples = scrape(batched.url)
    assert metric(samples, "lockgate_requests_total", endpoint="iris-deadline", code="504") == len(
        late
    )
    assert metric(samples, "lockgate_batch_queue_rows", endpoint="iris-deadline") == 0


def _binary(rows: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """An OIP request with its tensor in binary (how tritonclient sends, and how NaN and
    infinity can arrive)."""
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": rows.nbytes},
                }
            ]
        }
    )
    return head + rows.astype("<f8").tobytes(), {"Inference-Header-Content-Length": str(len(head))}


async def _post_binary(
    url: str, endpoint: str, bodies: list[tuple[bytes, dict[str, str]]]
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    path = f"/v2/models/{endpoint}/infer"
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as c:
        return list(await asyncio.gather(*(c.post(path, content=b, headers=h) for b, h in bodies)))


@pytest.mark.parametrize("endpoint", ["linear", "scaled"])
def test_non_finite_values_fail_their_own_caller_only(batched: Batched, endpoint: str) -> None:
    """NaN or infinity in a request fails its caller alone, with a 400 naming the column and
    its own row; the callers that would have shared its batch get their own predictions.
    ``linear`` is checked by its tags before batching; ``scaled``, a pipeline, is refused by
    scikit-learn inside a shared model call, which the batcher then splits by caller."""
    rng = np.random.default_rng(21)
    model = getattr(batched, endpoint)
    frames: list[np.ndarray] = []
    for i in range(200):
        rows = rng.normal(size=(int(rng.integers(1, 4)), 3))
        if i % 10 == 4:
            rows[-1, 1] = np.nan if i % 20 == 4 else np.inf
        frames.append(rows)
    answers = asyncio.run(_post_binary(batched.url, endpoint, [_binary(f) for f in frames]))
    for i, (rows, r) in enumerate(zip(frames, answers, strict=True)):
        if i % 10 == 4:
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error.startswith(f"x2[{len(rows) - 1}]: expected a"), error
            assert error.endswith("got nan" if i % 20 == 4 else "got inf"), error
        else:
            assert r.status_code == 200, r.text
            got = np.asarray(r.json()["outputs"][0]["data"])
            np.testing.assert_allclose(got, model.predict(rows))
