"""The adaptive batcher on its own, on a real event loop with a real model: what reaches
the model in which call. (The server-level behaviour, under real concurrency over HTTP, is
in test_batching.py.)"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from lockgate.batch import Batch
from lockgate.errors import InvalidInputError, PredictionError
from lockgate.serving.batcher import AdaptiveBatcher
from lockgate.serving.config import BatchingConfig

NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def model() -> LinearRegression:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(100, 3))
    return LinearRegression().fit(X, X @ [1.0, -2.0, 0.5])


class Recorder:
    """The model's predict, with the row count of every call kept."""

    def __init__(self, model: LinearRegression) -> None:
        self.model = model
        self.calls: list[int] = []

    def __call__(self, batch: Batch) -> np.ndarray:
        self.calls.append(batch.n_rows)
        return self.model.predict(batch.matrix())


def _batch(rows: np.ndarray) -> Batch:
    return Batch.from_matrix(NAMES, rows)


def test_a_batch_as_large_as_a_model_call_skips_the_queue(model: LinearRegression) -> None:
    """It would be a call of its own anyway: predicted at once, counted, no worker started,
    while small batches still share calls."""
    predict = Recorder(model)
    sizes: list[int] = []
    batcher = AdaptiveBatcher(
        predict,
        BatchingConfig(max_batch_size=8, max_wait_ms=50),
        on_batch=sizes.append,
    )
    rng = np.random.default_rng(1)
    big = rng.normal(size=(8, 3))
    small = [rng.normal(size=(2, 3)) for _ in range(3)]

    async def run() -> tuple[np.ndarray, list[np.ndarray]]:
        got_big = await batcher.submit(_batch(big))
        assert batcher._task is None  # no worker was needed
        got_small = await asyncio.gather(*(batcher.submit(_batch(s)) for s in small))
        await batcher.close()
        return got_big, list(got_small)

    got_big, got_small = asyncio.run(run())
    np.testing.assert_allclose(got_big, model.predict(big))
    for rows, got in zip(small, got_small, strict=True):
        np.testing.assert_allclose(got, model.predict(rows))
    assert predict.calls == [8, 6] and sizes == [8, 6]


def test_the_check_refuses_before_the_queue(model: LinearRegression) -> None:
    """A caller's bad values fail it alone: the others share a call without it."""
    predict = Recorder(model)

    def check(batch: Batch) -> None:
        m = batch.matrix()
        if not np.isfinite(m).all():
            raise InvalidInputError("not finite")

    batcher = AdaptiveBatcher(
        predict, BatchingConfig(max_batch_size=64, max_wait_ms=50), check=check
    )
    rng = np.random.default_rng(2)
    frames = [rng.normal(size=(2, 3)) for _ in range(4)]
    frames[1][0, 0] = np.nan

    async def run() -> list[np.ndarray | BaseException]:
        answers = await asyncio.gather(
            *(batcher.submit(_batch(f)) for f in frames), return_exceptions=True
        )
        await batcher.close()
        return list(answers)

    answers = asyncio.run(run())
    assert isinstance(answers[1], InvalidInputError)
    for i in (0, 2, 3):
        np.testing.assert_allclose(answers[i], model.predict(frames[i]))
    assert predict.calls == [6]


def test_a_model_answering_the_wrong_row_count_fails_its_callers() -> None:
    def short(batch: Batch) -> np.ndarray:
        return np.zeros(batch.n_rows - 1)

    batcher = AdaptiveBatcher(short, BatchingConfig(max_batch_size=4, max_wait_ms=0))

    async def run() -> list[np.ndarray | BaseException]:
        answers = await asyncio.gather(
            batcher.submit(_batch(np.ones((2, 3)))),
            batcher.submit(_batch(np.ones((4, 3)))),  # alone: predicted at once
            return_exceptions=True,
        )
        await batcher.close()
        return list(answers)

    small, big = asyncio.run(run())
    assert isinstance(small, PredictionError) and "1 rows for 2 inputs" in str(small)
    assert isinstance(big, PredictionError) and "3 rows for 4 inputs" in str(big)
