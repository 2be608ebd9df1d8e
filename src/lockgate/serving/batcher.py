"""Adaptive batching: concurrent requests for one version share one model call.

Requests join a bounded queue (``max_queue`` rows; beyond it the caller gets
:class:`OverloadedError`, answered as 503 with Retry-After). One worker task takes whatever is
queued, predicts once and hands every caller exactly its own rows back, in order. When the
model call fails, the error reaches every caller of that batch and no other; when it fails on
a caller's input (:class:`InvalidInputError`, e.g. a pipeline refusing a NaN), each caller of
the batch is predicted alone, so that only the caller whose rows are at fault gets the
error, with its own row numbers.

The adaptive wait: before a model call the worker first lets the requests already decoded on
the event loop join (one loop turn), then waits, at most ``max_wait_ms``, only until as many
rows are queued as the previous model call took (capped at ``max_batch_size``): under
concurrency the callers of the last batch are on their way back, and waiting for them makes
the next batch as large for one model call; once they are back nobody waits longer. A lone
caller (the last batch was one small request) never waits. Arrivals wake the worker only when
they complete the batch it waits for, and a caller's deadline is a timer on its future, so a
request costs no task and no extra wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lockgate.batch import Batch
from lockgate.errors import InvalidInputError, OverloadedError, PredictionError
from lockgate.serving.config import BatchingConfig


def _expire(fut: asyncio.Future[np.ndarray]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


def _fail(taken: list[_Pending], exc: Exception) -> None:
    """Fail every caller of a batch that is still waiting."""
    for p in taken:
        if not p.future.done():
            p.future.set_exception(exc)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


@dataclass(slots=True)
class _Pending:
    batch: Batch
    future: asyncio.Future[np.ndarray] = field(repr=False)


class AdaptiveBatcher:
    def __init__(
        self,
        predict: Callable[[Batch], np.ndarray],
        config: BatchingConfig,
        *,
        on_batch: Callable[[int], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
        check: Callable[[Batch], None] | None = None,
    ) -> None:
        self.predict = predict
        #: refuses one caller's bad values (NaN, say) before its rows join a shared call
        self.check = check
        self.config = config
        self.on_batch = on_batch
        self.on_queue = on_queue
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        # the worker sleeps on _waiter until _want rows are queued
        self._waiter: asyncio.Future[None] | None = None
        self._want = 1
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, batch: Batch, timeout: float | None = None) -> np.ndarray:
        """Queue ``batch`` and return its rows of the model's output. Past ``timeout``
        seconds the caller gets TimeoutError and its rows are dropped from the queue (a
        timer on the caller's future: no task per request, unlike ``asyncio.wait_for``).
        A batch of ``max_batch_size`` rows or more would be a model call of its own anyway:
        it is predicted at once, without the queue, the worker's hop and the wait."""
        if self._closed:
            raise OverloadedError("the model version is shutting down", retry_after=1.0)
        if batch.n_rows >= self.config.max_batch_size:
            return self._call(batch)
        if self.check is not None:
            self.check(batch)
        if self._queued_rows + batch.n_rows > self.config.max_queue and self._queue:
            raise OverloadedError(
                f"batch queue full ({self._queued_rows} rows waiting, max_queue "
                f"{self.config.max_queue}); retry later",
                retry_after=max(0.1, self.config.max_wait_ms / 1000 * 2),
            )
        if self._task is None:
            self.start()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.append(_Pending(batch, fut))
        self._queued_rows += batch.n_rows
        if self.on_queue:
            self.on_queue(self._queued_rows)
        waiter = self._waiter
        if waiter is not None and self._queued_rows >= self._want and not waiter.done():
            waiter.set_result(None)
        if timeout is None:
            return await fut
        timer = loop.call_later(timeout, _expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    async def _wait_for_rows(self, rows: int, timeout: float | None) -> None:
        """Sleep until ``rows`` rows are queued, or ``timeout`` seconds passed."""
        loop = asyncio.get_running_loop()
        self._want = rows
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout, _wake, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def _run(self) -> None:
        max_rows = self.config.max_batch_size
        max_wait = self.config.max_wait_ms / 1000
        last_rows = 1
        while True:
            if not self._queue:
                await self._wait_for_rows(1, None)
                continue
            # Let requests already in flight on the loop join before deciding to wait.
            await asyncio.sleep(0)
            target = min(max_rows, last_rows)
            if self._queued_rows < target and max_wait > 0:
                await self._wait_for_rows(target, max_wait)
            taken: list[_Pending] = []
            rows = 0
            while self._queue and (not taken or rows + self._queue[0].batch.n_rows <= max_rows):
                p = self._queue.popleft()
                rows += p.batch.n_rows
                if not p.future.done():  # a caller that timed out does not cost a prediction
                    taken.append(p)
            self._queued_rows -= rows
            if self.on_queue:
                self.on_queue(self._queued_rows)
            if not taken:
                continue
            last_rows = sum(p.batch.n_rows for p in taken)
            self._dispatch(taken)

    def _call(self, batch: Batch) -> np.ndarray:
        """One model call, its row count checked and counted."""
        out = np.asarray(self.predict(batch))
        if out.shape[0] != batch.n_rows:
            raise PredictionError(f"model returned {out.shape[0]} rows for {batch.n_rows} inputs")
        if self.on_batch:
            self.on_batch(batch.n_rows)
        return out

    def _dispatch(self, taken: list[_Pending]) -> None:
        try:
            out = self._call(Batch.concat([p.batch for p in taken]))
        except InvalidInputError as exc:
            if len(taken) == 1:
                _fail(taken, exc)
            else:
                for p in taken:  # whose rows: each caller alone
                    self._dispatch([p])
            return
        except Exception as exc:
            _fail(taken, exc)
            return
        start = 0
        for p in taken:
            end = start + p.batch.n_rows
            if not p.future.done():
                p.future.set_result(out[start:end])
            start = end

    async def close(self) -> None:
        """Stop taking requests, answer what is queued, stop the worker."""
        self._closed = True
        while self._queue:
            await asyncio.sleep(0.001)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
