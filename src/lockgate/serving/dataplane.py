"""The data plane: route a decoded request to the right loaded version, predict (directly or
through the adaptive batcher), record the prediction off the response path, count metrics.

Routing state is a value per endpoint (:class:`EndpointState`) rebuilt only when the
endpoint's generation changes in the metadata store: the new versions are loaded first, in a
worker thread, then the state is swapped in one assignment, so no request sees a half-loaded
endpoint and none fails during a deploy. Versions no longer routed are unloaded after the
requests that still hold them have finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lockgate.batch import Batch
from lockgate.errors import InvalidInputError, LockgateError, NotFoundError, PredictionError
from lockgate.registry.loaded import LoadedModel
from lockgate.registry.signature import Signature
from lockgate.rollout.router import BUCKETS, Route, bucket_of
from lockgate.serving.batcher import AdaptiveBatcher
from lockgate.serving.config import BatchingConfig
from lockgate.serving.endpoints import EndpointInfo
from lockgate.serving.metrics import ServingMetrics, VersionMetrics

if TYPE_CHECKING:
    from lockgate.store.predlog import LogBatch, PredictionLog
    from lockgate.workspace import Workspace

log = logging.getLogger("lockgate.serving")


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


#: random bytes for request ids, read from the OS 256 ids at a time (one system call
#: instead of one per request; the bytes are the same ``os.urandom``). A forked child
#: starts with an empty pool, or parent and child would hand out the same ids.
_ID_BYTES = 16 * 256
_id_pool: list[bytes] = []
os.register_at_fork(after_in_child=_id_pool.clear)


def new_request_id() -> str:
    """A random version-4 UUID as 32 hex digits, like ``uuid.uuid4().hex`` at a fraction of
    the cost (no UUID object, no system call per id on the hot path). Thread-safe."""
    try:
        raw = _id_pool.pop()
    except IndexError:
        pool = os.urandom(_ID_BYTES)
        _id_pool.extend(pool[i : i + 16] for i in range(16, _ID_BYTES, 16))
        raw = pool[:16]
    return "%032x" % (int.from_bytes(raw) & _UUID4_CLEAR | _UUID4_SET)


class DeadlineExceeded(LockgateError):
    code = "deadline_exceeded"


@dataclass
class VersionHandle:
    """One loaded version serving one endpoint in one role."""

    endpoint: str
    model: str
    version: int
    role: str
    loaded: LoadedModel
    batching: BatchingConfig
    metrics: VersionMetrics
    batcher: AdaptiveBatcher | None = None
    in_flight: int = 0
    #: shadow copies queued or running in the shadow pool (changed under the plane's lock)
    shadows: int = 0

    @property
    def signature(self) -> Signature:
        return self.loaded.version.signature

    def _predict_now(self, batch: Batch) -> np.ndarray:
        try:
            out = self.loaded.runtime.predict_batch(batch)
        except LockgateError:
            raise
        except Exception as exc:
            raise PredictionError(
                f"model {self.model}/{self.version} failed to predict: {type(exc).__name__}: {exc}"
            ) from exc
        return np.asarray(out)

    async def predict(self, batch: Batch) -> np.ndarray:
        timeout = self.batching.timeout_ms / 1000
        if self.batcher is None:
            return self._predict_now(batch)
        try:
            return await self.batcher.submit(batch, timeout)
        except TimeoutError:
            raise DeadlineExceeded(
                f"prediction did not finish within timeout_ms={self.batching.timeout_ms:g}"
            ) from None

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        while self.in_flight or self.shadows:
            await asyncio.sleep(0.005)
        await asyncio.to_thread(self.loaded.unload)


@dataclass
class EndpointState:
    info: EndpointInfo
    primary: VersionHandle
    handles: dict[int, VersionHandle] = field(default_factory=dict)
    #: the routing decision, computed from the traffic policy once per change
    route: Route = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.route is None:
            self.route = Route.from_policy(self.info.policy)
        #: the handle every request goes to when the route has one live version
        self.single: VersionHandle | None = (
            self.handles.get(self.route.targets[0].version, self.primary)
            if self.route.single
            else None
        )

    @property
    def name(self) -> str:
        return self.info.name


@dataclass
class InferenceResult:
    request_id: str
    model: str
    endpoint: str
    version: int
    outputs: np.ndarray
    n_rows: int
    signature: Signature

    def prediction_ids(self) -> list[str]:
        return [f"{self.request_id}-{i}" for i in range(self.n_rows)]


class DataPlane:
    def __init__(
        self,
        ws: Workspace,
        *,
        predlog: PredictionLog | None,
        metrics: ServingMetrics,
        poll_interval: float = 1.0,
        shadow_workers: int = 2,
        shadow_queue: int = 1000,
    ) -> None:
        self.ws = ws
        self.predlog = predlog
        if predlog is not None:  # resolved once: an import statement per request costs ~2 us
            from lockgate.store.predlog import LogBatch

            self._log_batch = LogBatch
        self.metrics = metrics
        self.poll_interval = poll_interval
        # shadows run in a bounded pool, never on the event loop; beyond shadow_queue
        # copies waiting or running, a copy is skipped and counted
        self._shadow_pool = ThreadPoolExecutor(shadow_workers, "lockgate-shadow")
        self.shadow_queue = shadow_queue
        self._shadow_backlog = 0
        self._shadow_lock = threading.Lock()
        self._endpoints: dict[str, EndpointState] = {}
        self._generations: dict[str, int] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._sync_lock = asyncio.Lock()
        self.started = False

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        await self.sync()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        self.started = True

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        self._shadow_pool.shutdown(wait=False, cancel_futures=True)
        states = list(self._endpoints.values())
        self._endpoints = {}
        for st in states:
            for h in st.handles.values():
                await h.close()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.sync()
            except Exception:  # a store hiccup must not kill the server; retried next tick
                log.exception("endpoint sync failed; retrying in %.1fs", self.poll_interval)

    async def sync(self) -> None:
        """Apply endpoint changes from the metadata store."""
        async with self._sync_lock:
            gens = await asyncio.to_thread(self.ws.endpoints.generations)
            for name in list(self._endpoints):
                if name not in gens:
                    old = self._endpoints.pop(name)
                    self._generations.pop(name, None)
                    await self._retire(old, keep=set())
            for name, gen in gens.items():
                if self._generations.get(name) == gen:
                    continue
                try:
                    await self._apply(name)
                except LockgateError as exc:
                    log.error("endpoint %s: cannot apply change: %s", name, exc.message)
                    self._generations[name] = gen  # do not retry a broken deploy every tick

    async def _apply(self, name: str) -> None:
        info = await asyncio.to_thread(self.ws.endpoints.get, name)
        old = self._endpoints.get(name)
        handles: dict[int, VersionHandle] = {}
        for v in info.policy.versions:
            role = info.policy.role_of(v)
            reuse = old.handles.get(v) if old else None
            if reuse is not None and reuse.batching == info.batching and reuse.role == role:
                handles[v] = reuse
                continue
            loaded = await asyncio.to_thread(self.ws.registry.load, f"{info.model}/{v}")
            handles[v] = self._handle(info, loaded, role)
        state = EndpointState(info, handles[info.policy.primary], handles)
        self._endpoints[name] = state  # the switch: one assignment
        self._generations[name] = info.generation
        self.metrics.reloads.labels(name).inc()
        for h in handles.values():
            self.metrics.ready.labels(name, str(h.version), h.role).set(1)
        if old is not None:
            asyncio.get_running_loop().create_task(self._retire(old, keep=set(handles)))
        log.info(
            "endpoint %s now serves %s/%s (generation %s)",
            name,
            info.model,
            info.policy.primary,
            info.generation,
        )

    async def _retire(self, old: EndpointState, keep: set[int]) -> None:
        for v, h in old.handles.items():
            if (
                v in keep
                and self._endpoints.get(old.name)
                and (self._endpoints[old.name].handles.get(v) is h)
            ):
                continue
            self.metrics.ready.labels(old.name, str(v), h.role).set(0)
            await h.close()

    def _handle(self, info: EndpointInfo, loaded: LoadedModel, role: str) -> VersionHandle:
        vm = self.metrics.for_version(info.name, loaded.version.version, role)
        h = VersionHandle(
            info.name, info.model, loaded.version.version, role, loaded, info.batching, vm
        )
        if info.batching.enabled:
            h.batcher = AdaptiveBatcher(
                h._predict_now,
                info.batching,
                on_batch=vm.batch_rows.observe,
                on_queue=vm.queue_rows.set,
                check=h.loaded.runtime.check_batch,  # one caller's bad values fail it alone
            )
        return h

    # -- queries ----------------------------------------------------------------------------
    def endpoint(self, name: str) -> EndpointState:
        st = self._endpoints.get(name)
        if st is None:
            raise NotFoundError("endpoint", name)
        return st

    def endpoints(self) -> list[EndpointState]:
        return list(self._endpoints.values())

    def handle(self, name: str, version: int | None = None) -> VersionHandle:
        st = self.endpoint(name)
        if version is None:
            return st.primary
        h = st.handles.get(version)
        if h is None:
            raise NotFoundError(
                "version",
                f"{name}/{version}",
                f"endpoint {name!r} does not serve version {version} (it serves "
                f"{sorted(st.handles)})",
            )
        return h

    @property
    def ready(self) -> bool:
        return self.started

    # -- the hot path -----------------------------------------------------------------------
    async def infer(
        self,
        endpoint: str,
        decode: Callable[[Signature], Batch],
        *,
        version: int | None = None,
        request_id: str | None = None,
        key: str | None = None,
    ) -> InferenceResult:
        """Decode against the routed version's signature, predict, record, count. Without
        ``version`` the endpoint's route picks it: sticky by ``key`` (the X-Lockgate-Key
        header) or the route's key column, else at random by weight; shadows get a copy
        after the answer is computed."""
        st = self.endpoint(endpoint)
        early: Batch | None = None
        if version is not None:
            handle = self.handle(endpoint, version)
        elif st.single is not None:
            handle = st.single
        else:
            handle, early = self._route(st, decode, key)
        ts = time.time()
        t0 = time.perf_counter()
        rid = request_id or new_request_id()
        handle.in_flight += 1
        batch: Batch | None = None
        try:
            batch = _require_rows(early if early is not None else decode(handle.signature))
            outputs = await handle.predict(batch)
        except LockgateError as exc:
            code = status_of(exc)
            elapsed = time.perf_counter() - t0
            handle.metrics.observe(code, elapsed, 0)
            if self.predlog is not None:
                await self.predlog.submit(
                    self._log_record(handle, rid, ts, batch, None, elapsed, code, exc.message)
                )
            raise
        finally:
            handle.in_flight -= 1
        elapsed = time.perf_counter() - t0
        handle.metrics.observe(200, elapsed, batch.n_rows)
        if st.route.shadows and version is None:  # once this task yields: off the answer
            asyncio.get_running_loop().call_soon(
                self._shadow, st, batch, handle.signature, decode, rid
            )
        predlog = self.predlog
        if predlog is not None:
            record = self._log_record(handle, rid, ts, batch, outputs, elapsed, 200, None)
            if not predlog.offer(record):  # the columnar fast path, else the general one
                await predlog.submit(record)
        return InferenceResult(
            rid, handle.model, endpoint, handle.version, outputs, batch.n_rows, handle.signature
        )

    def _route(
        self, st: EndpointState, decode: Callable[[Signature], Batch], key: str | None
    ) -> tuple[VersionHandle, Batch | None]:
        """The routed handle, and the batch when the key had to be read from an input
        column (decoded against the primary's signature; reused when the signatures match)."""
        route = st.route
        batch: Batch | None = None
        if key is None and route.key_column is not None:
            try:
                batch = decode(st.primary.signature)
            except LockgateError:
                return st.primary, None  # decoded again, and the error recorded, by infer
            col = batch.columns.get(route.key_column)
            if col is not None and len(col):
                key = str(col[0])
        bucket = bucket_of(key, route.salt) if key is not None else random.randrange(BUCKETS)
        h = st.handles[route.pick(bucket).version]
        if batch is not None and h.signature != st.primary.signature:
            batch = None
        return h, batch

    def _shadow(
        self,
        st: EndpointState,
        batch: Batch,
        sig: Signature,
        decode: Callable[[Signature], Batch],
        rid: str,
    ) -> None:
        """Hand a copy of the request to the shadow thread pool, per sampled shadow. A
        finished copy never wakes the event loop: the counters are shared under a lock."""
        for target in st.route.shadows:
            if target.threshold < BUCKETS and random.randrange(BUCKETS) >= target.threshold:
                continue
            h = st.handles.get(target.version)
            if h is None:
                continue
            with self._shadow_lock:
                full = self._shadow_backlog >= self.shadow_queue
                if not full:
                    self._shadow_backlog += 1
                    h.shadows += 1
            if full:
                self.metrics.shadow_skipped.labels(st.name, str(h.version), "queue_full").inc()
                continue
            try:
                fut = self._shadow_pool.submit(self._run_shadow, h, batch, sig, decode, rid)
            except RuntimeError:  # the pool is shut down
                self._shadow_cancelled(h, None)
                continue
            fut.add_done_callback(functools.partial(self._shadow_cancelled, h))

    def _shadow_release(self, h: VersionHandle) -> None:
        with self._shadow_lock:
            self._shadow_backlog -= 1
            h.shadows -= 1

    def _shadow_cancelled(self, h: VersionHandle, fut: Future[None] | None) -> None:
        """A copy that never ran (the pool shut down): release it and count it."""
        if fut is None or fut.cancelled():
            self._shadow_release(h)
            self.metrics.shadow_skipped.labels(h.endpoint, str(h.version), "shutdown").inc()

    def _run_shadow(
        self,
        h: VersionHandle,
        batch: Batch,
        sig: Signature,
        decode: Callable[[Signature], Batch],
        rid: str,
    ) -> None:
        """In a shadow thread: predict, count and log with role shadow and the primary's
        request id (so the two records of a row share their prediction id)."""
        try:
            self._shadow_predict(h, batch, sig, decode, rid)
        except Exception:  # never let a shadow's failure escape its thread
            log.exception("shadow %s/%s failed", h.endpoint, h.version)
        finally:
            self._shadow_release(h)

    def _shadow_predict(
        self,
        h: VersionHandle,
        batch: Batch,
        sig: Signature,
        decode: Callable[[Signature], Batch],
        rid: str,
    ) -> None:
        from lockgate.store.predlog import LogBatch

        ts = time.time()
        t0 = time.perf_counter()
        outputs: np.ndarray | None = None
        error: str | None = None
        try:
            if h.signature != sig:
                batch = decode(h.signature)
            outputs = h._predict_now(batch)
            status = 200
        except LockgateError as exc:
            status, error = status_of(exc), exc.message
        except Exception as exc:  # never let a shadow's failure escape its thread
            status, error = 500, f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - t0
        h.metrics.observe(status, elapsed, batch.n_rows if outputs is not None else 0)
        if self.predlog is None:
            return
        try:
            self.predlog.submit_nowait(
                LogBatch(
                    request_id=rid,
                    endpoint=h.endpoint,
                    model=h.model,
                    version=h.version,
                    role="shadow",
                    ts=ts,
                    inputs=batch.columns,
                    outputs=outputs,
                    latency_ms=elapsed * 1000,
                    status=status,
                    error=error,
                    n_rows=batch.n_rows,
                )
            )
        except LockgateError:
            self.metrics.shadow_skipped.labels(h.endpoint, str(h.version), "log_full").inc()

    def _log_record(
        self,
        h: VersionHandle,
        rid: str,
        ts: float,
        batch: Batch | None,
        outputs: np.ndarray | None,
        elapsed: float,
        status: int,
        error: str | None,
    ) -> LogBatch:
        """The prediction log's record of one request (positional: this is the hot path)."""
        return self._log_batch(
            rid,
            h.endpoint,
            h.model,
            h.version,
            h.role,
            ts,
            batch.columns if batch is not None else None,
            outputs,
            elapsed * 1000,
            status,
            error,
            batch.n_rows if batch is not None else 0,
            batch.built_matrix if batch is not None else None,
        )


def _require_rows(batch: Batch) -> Batch:
    if batch.n_rows == 0:  # models refuse empty input; say so instead of answering 500
        raise InvalidInputError.for_field("inputs", "at least one row", 0)
    return batch


_STATUS: dict[str, int] = {
    "invalid_input": 400,
    "invalid_name": 400,
    "unsafe_path": 400,
    "schema_mismatch": 400,
    "not_found": 404,
    "conflict": 409,
    "untrusted_artifact": 403,
    "overloaded": 503,
    "deadline_exceeded": 504,
    "runtime_unavailable": 501,
}


def status_of(exc: LockgateError) -> int:
    """The HTTP-like status a domain error maps to (used for metrics and the log too)."""
    return _STATUS.get(exc.code, 500)


def describe(state: EndpointState) -> dict[str, Any]:
    return {
        "endpoint": state.name,
        "model": state.info.model,
        "generation": state.info.generation,
        "versions": {str(v): h.role for v, h in state.handles.items()},
        "weights": {str(v): w for v, w in state.route.shares().items()},
        "shadows": {str(t.version): t.threshold * 100 / BUCKETS for t in state.route.shadows},
    }
