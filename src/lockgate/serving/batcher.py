"""Adaptive batching: concurrent requests for one version share one model call.

Requests join a bounded queue (``max_queue`` rows; beyond it the caller gets
:class:`OverloadedError`, answered as 503 with Retry-After). One worker task takes whatever is
queued, waits up to ``max_wait_ms`` for more only while the batch is short of
``max_batch_size`` *and* requests are arriving (under light load nobody waits), predicts once
and hands every caller exactly its own rows back, in order. When the model call fails, the
error reaches every caller of that batch and no other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lockgate.batch import Batch
from lockgate.errors import OverloadedError
from lockgate.serving.config import BatchingConfig


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
    ) -> None:
        self.predict = predict
        self.config = config
        self.on_batch = on_batch
        self.on_queue = on_queue
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def start(self) -> None:
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, batch: Batch) -> np.ndarray:
        if self._closed:
            raise OverloadedError("the model version is shutting down", retry_after=1.0)
        if self._queued_rows + batch.n_rows > self.config.max_queue and self._queue:
            raise OverloadedError(
                f"batch queue full ({self._queued_rows} rows waiting, max_queue "
                f"{self.config.max_queue}); retry later",
                retry_after=max(0.1, self.config.max_wait_ms / 1000 * 2),
            )
        if self._task is None:
            self.start()
        fut: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(batch, fut))
        self._queued_rows += batch.n_rows
        if self.on_queue:
            self.on_queue(self._queued_rows)
        assert self._wakeup is not None
        self._wakeup.set()
        return await fut

    async def _run(self) -> None:
        assert self._wakeup is not None
        max_rows = self.config.max_batch_size
        max_wait = self.config.max_wait_ms / 1000
        loop = asyncio.get_running_loop()
        last_size = 1
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Let requests already in flight on the loop join before deciding to wait.
            await asyncio.sleep(0)
            if self._queued_rows < max_rows and last_size > 1 and max_wait > 0:
                deadline = loop.time() + max_wait
                while self._queued_rows < max_rows:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), remaining)
                    except TimeoutError:
                        break
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
            last_size = len(taken)
            self._dispatch(taken)

    def _dispatch(self, taken: list[_Pending]) -> None:
        try:
            combined = Batch.concat([p.batch for p in taken])
            out = np.asarray(self.predict(combined))
            if out.shape[0] != combined.n_rows:
                raise RuntimeError(
                    f"model returned {out.shape[0]} rows for {combined.n_rows} inputs"
                )
        except Exception as exc:
            for p in taken:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        if self.on_batch:
            self.on_batch(combined.n_rows)
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
