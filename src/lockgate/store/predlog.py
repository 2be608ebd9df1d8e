"""The prediction log: every served prediction, recorded off the response path.

Requests hand a columnar :class:`LogBatch` to :meth:`PredictionLog.offer` (the serving hot
path: the batch is kept, and copied with the next hundred or so into the growing NumPy buffers
of a columnar channel, :mod:`lockgate.store.predlog_columns`) or :meth:`~PredictionLog.submit`
(every other case: the channel, or, for records the channels do not take, such as failed
requests and string columns, a queue). Everything counts against one bound.

Who writes: with the serving event loop given to :meth:`PredictionLog.start` (async
durability, what ``lockgate server`` does), a timer on that loop takes the channels' buffers
every ``flush_interval`` seconds and writes each as one raw segment (a header and one
``writev`` into the page cache: 1-3 ms per 2,000 records on the benchmark machine), and the
writer thread sleeps until it has work: queued records of the general path (one Arrow table
per endpoint), snapshots of 256 KiB or more (written with O_DIRECT, which a buffered write on
the loop would cost milliseconds), ``flush()``, fsyncing what the loop wrote, ``close()``.
A Python thread that wakes up while the loop is busy costs the loop more than the work it does
(it waits for the GIL, and every release of it by the loop wakes the waiter). Without a
loop, or in sync mode, the writer thread wakes every ``flush_interval`` (or when the queue
passes three quarters of its bound) and writes everything; large segments then go with
O_DIRECT where the file system allows it. Files are
partitioned by endpoint and UTC hour (see :mod:`lockgate.store.predlog_format`), written to
``<name>.tmp`` and renamed, so no reader ever sees a half file.

Durability: ``async`` (default) returns at once. Records reach a file within
``flush_interval`` (plus one write), so a process that dies, even by SIGKILL, loses at most
that; the file reaches the disk by the writer thread's fsync (at each :meth:`flush`, at
:meth:`close`, and after every 256 files) or the kernel's own writeback, so a machine that
crashes can lose more. :meth:`close` drains, writes and fsyncs everything: a clean shutdown
(SIGTERM -> the server's shutdown -> ``close()``) loses nothing. ``sync`` returns only when
the record is written, fsynced and its folder fsynced; every waiting caller of one write
cycle shares that one fsync (group commit).

Overflow: the queue holds at most ``max_queue_rows`` rows (a single larger batch is admitted
alone into an empty queue). When it is full, ``block`` makes the submitter wait for room and
loses nothing; ``reject`` raises :class:`~lockgate.errors.OverloadedError` (503). Both are
counted in ``lockgate_prediction_log_overflow_total{policy=...}``; nothing is dropped silently.

Reading (:meth:`PredictionLog.read`, :meth:`~PredictionLog.read_column`, ...) works on the
folder alone, so any process can read what a server wrote, across restarts. Closed hours are
compacted in the background (:mod:`lockgate.store.predlog_compact`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from prometheus_client import CollectorRegistry

from lockgate.errors import InvalidInputError, OverloadedError, StoreError
from lockgate.store.paths import validate_name
from lockgate.store.predlog_columns import FULL, MISFIT, Channel, Snapshot, new_channel
from lockgate.store.predlog_compact import compact_hour
from lockgate.store.predlog_format import HOUR_NS, ROLES, LogBatch, hour_dir, row_count
from lockgate.store.predlog_metrics import LogMetrics
from lockgate.store.predlog_read import Filters, Reader, SkipLog, TimeLike, Window, to_ns
from lockgate.store.predlog_segment import DIRECT_MIN_BYTES
from lockgate.store.predlog_writer import (
    AsyncWaiter,
    CycleResult,
    Done,
    Item,
    Writer,
    notify,
)

if TYPE_CHECKING:
    from lockgate.settings import Settings

__all__ = ["LogBatch", "PredictionLog"]

log = logging.getLogger("lockgate.predlog")

#: a channel that held nothing for this many seconds is dropped (its buffers' memory); a
#: shorter gap in traffic keeps it and the capacity its buffers grew to, so that the burst
#: after a pause neither grows them again from a few hundred rows (doubling, copying and
#: faulting in fresh pages each time) nor makes a new channel
IDLE_SECONDS = 60.0
#: files the event loop wrote that wait for an fsync by the writer thread before it is woken
#: for them (they are fsynced at each flush() and at close() too)
UNSYNCED_FILES = 256
#: seconds between the writer thread's checks that the event loop still writes (see start)
LOOP_WATCH = 5.0
#: a channel snapshot of this many bytes or more is written by the writer thread, not the
#: event loop: its buffered write would hold the loop for milliseconds (26 ms per 11 MB on
#: the benchmark machine), where the thread writes it with O_DIRECT without the GIL
LOOP_MAX_BYTES = DIRECT_MIN_BYTES
#: batches offered to a channel are copied into its buffers this many at a time
ABSORB_BATCHES = 128
#: an hour is compacted once it ended this many seconds ago (late requests still land in it)
COMPACT_GRACE = 120.0
_TS_MAX = 4_102_444_800.0  # 2100-01-01: beyond it a time is a unit mistake (ms, ns)
_CODECS = ("zstd", "snappy", "lz4", "gzip", "brotli", "none")


def _param_error(name: str, expected: str, got: Any) -> InvalidInputError:
    return InvalidInputError(
        f"The {name!r} parameter of PredictionLog must be {expected}. Got {got!r} instead.",
        field=name,
        expected=expected,
        got=got,
    )


def _offered_rows(b: LogBatch) -> int:
    """The rows :meth:`PredictionLog.offer` counts for a batch: ``n_rows``, else the length
    of its first input; 0 when it cannot tell cheaply (the batch then goes to submit)."""
    n = b.n_rows
    if n.__class__ is not int or n < 0:
        return 0
    if n == 0 and b.inputs:
        first = next(iter(b.inputs.values()))
        if first.__class__ is np.ndarray and first.ndim:
            return len(first)
    return n


class PredictionLog:
    """Append-only, columnar log of served predictions in a folder of Parquet files."""

    def __init__(
        self,
        directory: Path,
        *,
        durability: Literal["async", "sync"] = "async",
        flush_interval: float = 0.5,
        max_queue_rows: int = 200_000,
        overflow: Literal["block", "reject"] = "block",
        registry: CollectorRegistry | None = None,
        compact_interval: float | None = 60.0,
        compression: str = "zstd",
    ) -> None:
        if durability not in ("async", "sync"):
            raise _param_error("durability", "one of 'async', 'sync'", durability)
        if overflow not in ("block", "reject"):
            raise _param_error("overflow", "one of 'block', 'reject'", overflow)
        if not isinstance(flush_interval, int | float) or not 0 < flush_interval <= 60:
            raise _param_error("flush_interval", "a number in the range (0, 60]", flush_interval)
        if not isinstance(max_queue_rows, int) or max_queue_rows < 1:
            raise _param_error("max_queue_rows", "an int >= 1", max_queue_rows)
        if compact_interval is not None and not compact_interval > 0:
            raise _param_error("compact_interval", "a positive number or None", compact_interval)
        if compression not in _CODECS or (
            compression != "none" and not pa.Codec.is_available(compression)
        ):
            raise _param_error("compression", f"an available one of {_CODECS}", compression)
        self.directory = Path(directory)
        self.durability = durability
        self.flush_interval = float(flush_interval)
        self.max_queue_rows = max_queue_rows
        self.overflow = overflow
        self.compact_interval = compact_interval
        self.compression = compression
        self._sync = durability == "sync"

        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._queue: deque[Item] = deque()
        self._channels: dict[tuple[str, str, int, str], Channel] = {}
        self._retry_snapshots: list[Snapshot] = []
        self._queued_rows = 0
        self._rows_submitted = 0
        self._room_waiters: list[AsyncWaiter] = []
        self._wake_rows = max(1, max_queue_rows * 3 // 4)
        self._woken = False
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: held by an event-loop write cycle from taking its records to renaming their files
        self._seg_lock = threading.Lock()
        self._unsynced: list[Path] = []
        #: snapshots the event loop took but leaves to the writer thread (large ones)
        self._for_writer: list[Snapshot] = []
        self._loop_seen = 0.0
        self._writer_cycles = 0  # write cycles of the writer thread (tests watch it)
        self._compactor: threading.Thread | None = None
        self._compact_stop = threading.Event()
        self._closed = False
        self._stopping = False
        self._stop_deadline = float("inf")
        self._retry_at = 0.0
        self._ok_endpoints: set[str] = set()
        self.metrics = LogMetrics(
            registry if registry is not None else CollectorRegistry(),
            overflow,
            lambda: self._queued_rows,
        )
        self._writer = Writer(
            self.directory, sync=self._sync, compression=compression, metrics=self.metrics
        )
        self._reader = Reader(self.directory, SkipLog(self.metrics.skipped.inc))

    @classmethod
    def from_settings(
        cls, settings: Settings, registry: CollectorRegistry | None = None
    ) -> PredictionLog:
        """A log configured from ``LOCKGATE_*`` settings (not started)."""
        return cls(
            settings.predictions_dir,
            durability=settings.log_durability,
            flush_interval=settings.log_flush_interval,
            max_queue_rows=settings.log_queue_size,
            overflow=settings.log_overflow,
            registry=registry,
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start the writer thread (and the compactor); idempotent.

        ``loop`` (async durability): the event loop that serves the requests being logged.
        The columnar channels are then written by a timer on it, every ``flush_interval``:
        1-3 ms of work per 2,000 records (taking the buffers, a header, one ``writev`` into
        the page cache, a rename). The writer thread is woken only for the rest (records of
        the general path, snapshots of :data:`LOOP_MAX_BYTES` or more, ``flush()``, fsyncs,
        ``close()``). A thread that
        wakes up while the loop is busy waits for the GIL while every release of it by the
        loop wakes the waiter: measured, an idle writer thread waking every half second cost
        a busy server 4% of its throughput.
        """
        with self._lock:
            if self._closed:
                raise StoreError("prediction log is closed")
            if self._thread is not None:
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(
                target=self._run, name="lockgate-predlog-writer", daemon=True
            )
            if loop is not None and not self._sync:
                self._loop = loop
                self._loop_seen = time.monotonic()
                loop.call_soon_threadsafe(self._arm)
            self._thread.start()
            if self.compact_interval is not None:
                self._compactor = threading.Thread(
                    target=self._compact_loop, name="lockgate-predlog-compactor", daemon=True
                )
                self._compactor.start()
        atexit.register(self._atexit)

    def close(self, timeout: float | None = 30) -> None:
        """Refuse new records, write every queued one, stop the threads; idempotent.

        Raises StoreError if some rows could not be written within ``timeout`` seconds
        (they are counted in ``lockgate_prediction_log_rows_lost_total{reason="not_drained"}``).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            room_waiters, self._room_waiters = self._room_waiters, []
            self._room.notify_all()
        notify([(w, None) for w in room_waiters])
        atexit.unregister(self._atexit)
        self._compact_stop.set()
        thread = self._thread
        if thread is not None:
            self._stop_deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
            self._stopping = True
            self._wake.set()
            thread.join(timeout)
        else:
            with self._write_lock:
                self._sync_loop_files()
                self._process(*self._take())
        if self._compactor is not None:
            self._compactor.join(timeout)
        # a writer still in a cycle holds records outside the queue (a failing write puts
        # them back at its end): wait for that cycle, so that none is missed below
        cycle_done = self._write_lock.acquire(timeout=max(1.0, timeout or 0.0))
        try:
            with self._seg_lock, self._lock:  # and for an event-loop cycle holding records
                left, snaps = self._take_locked()
            self._sync_loop_files()
        finally:
            if cycle_done:
                self._write_lock.release()
        lost = sum(rows for _, rows, _ in left) + sum(s.data.num_rows for s in snaps)
        self.metrics.unregister()
        err = StoreError(f"prediction log closed with {lost} rows not written") if lost else None
        notify([(w, err) for _, _, w in left if w is not None])
        notify([(w, err) for s in snaps for w in s.waiters])
        if lost:
            self.metrics.lost_rows(lost, "not_drained")
            log.error("prediction log: %d rows could not be written before close", lost)
            raise err  # type: ignore[misc]

    def _atexit(self) -> None:
        with contextlib.suppress(Exception):  # close logs what it could not write
            self.close(timeout=10)

    def __enter__(self) -> PredictionLog:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ hot path

    def _check(self, batch: LogBatch) -> int:
        if batch.endpoint not in self._ok_endpoints:
            validate_name(batch.endpoint, "endpoint")
            self._ok_endpoints.add(batch.endpoint)
        if batch.role not in ROLES:
            raise InvalidInputError.for_field(
                "LogBatch.role", "one of " + ", ".join(sorted(ROLES)), batch.role
            )
        ts = batch.ts
        if not (isinstance(ts, float | int) and 0 < ts < _TS_MAX):  # NaN fails too
            raise InvalidInputError.for_field("LogBatch.ts", "epoch seconds (time.time())", ts)
        return row_count(batch)

    def _require_writer(self) -> None:
        if self._thread is None and not self._closed:
            raise StoreError("prediction log: start() it before submitting in sync mode")

    def _overloaded(self) -> OverloadedError:
        self.metrics.overflowed()
        return OverloadedError(
            f"prediction log queue is full ({self.max_queue_rows} rows); retry later",
            retry_after=self.flush_interval,
        )

    async def submit(self, batch: LogBatch) -> None:
        """Queue a batch (O(1)). In sync mode, return once it is durable. When the queue is
        full: ``block`` waits for room, ``reject`` raises OverloadedError."""
        rows = self._check(batch)
        waiter: AsyncWaiter | None = None
        if self._sync:
            self._require_writer()
            loop = asyncio.get_running_loop()
            waiter = (loop, loop.create_future())
        blocked = False
        while True:
            with self._lock:
                if self._closed:
                    raise StoreError("prediction log is closed")
                wake = self._enqueue_locked(batch, rows, waiter)
                if wake is not None:
                    break
                if self.overflow == "reject":
                    raise self._overloaded()
                if not blocked:
                    blocked = True
                    self.metrics.overflowed()
                loop = asyncio.get_running_loop()
                room: asyncio.Future[None] = loop.create_future()
                self._room_waiters.append((loop, room))
            self._wake.set()
            await room
        if wake:
            self._wake.set()
        if waiter is not None:
            await waiter[1]

    def _enqueue_locked(self, batch: LogBatch, rows: int, waiter: Any) -> bool | None:
        """Under ``self._lock``: queue the batch if there is room and return whether the
        writer must be woken; ``None`` when the queue is full (the caller applies the
        overflow policy)."""
        q = self._queued_rows
        key = (batch.endpoint, batch.model, batch.version, batch.role)
        ch = self._channels.get(key)
        if ch is None:
            ch = new_channel(batch, rows)
            if ch is not None:
                self._channels[key] = ch
        if ch is not None and ch.pending:
            self._absorb_locked(ch)  # records stay in the order they came
        got = ch.append(batch, q, self.max_queue_rows) if ch is not None else MISFIT
        if got == FULL:
            return None
        if got == MISFIT:
            if q and q + rows > self.max_queue_rows:
                return None
            self._queue.append((batch, rows, waiter))
        elif waiter is not None:
            ch.waiters.append(waiter)  # type: ignore[union-attr]
        self._queued_rows = q + rows
        self._rows_submitted += rows
        wake = waiter is not None or (not self._woken and q + rows >= self._wake_rows)
        if wake:
            self._woken = True
        return wake

    def offer(self, batch: LogBatch) -> bool:
        """The serving hot path: accept a served batch for the columnar channel of its
        endpoint, version and role, and return True; False, having done nothing, whenever
        anything is unusual (sync durability, a failed request, no channel yet, a full
        queue, a closed log): the caller then awaits :meth:`submit`, which handles every
        case.

        The batch is kept as it is and copied into the channel's buffers with the next
        :data:`ABSORB_BATCHES` ones, or at the next write cycle (a batch that turns out not
        to fit the channel's layout then takes the general path). Its arrays must not
        change after the call."""
        if self._sync or batch.error is not None or batch.outputs is None:
            return False
        ts = batch.ts
        if ts.__class__ is not float or not 0 < ts < _TS_MAX:
            return False
        rows = _offered_rows(batch)
        if not rows:
            return False
        key = (batch.endpoint, batch.model, batch.version, batch.role)
        with self._lock:
            ch = self._channels.get(key)  # under the lock: the writer drops idle channels
            if ch is None or self._closed:
                return False
            q = self._queued_rows
            if q and q + rows > self.max_queue_rows:
                return False
            pending = ch.pending
            pending.append(batch)
            if len(pending) >= ABSORB_BATCHES:
                self._absorb_locked(ch)
            q += rows
            self._queued_rows = q
            self._rows_submitted += rows
            wake = not self._woken and q >= self._wake_rows
            if wake:
                self._woken = True
        if wake:
            self._wake.set()
        return True

    def _absorb_locked(self, ch: Channel) -> None:
        """Under ``self._lock``: copy a channel's pending batches in; the misfits join the
        general queue (already counted in the queue's rows)."""
        for b in ch.absorb():
            self._queue.append((b, _offered_rows(b), None))

    def submit_nowait(self, batch: LogBatch) -> None:
        """:meth:`submit` for non-async code (never call it on an event loop with ``block``:
        it waits on a condition). In sync mode it returns once the batch is durable."""
        rows = self._check(batch)
        waiter = None
        if self._sync:
            self._require_writer()
            waiter = Done()
        blocked = False
        with self._lock:
            while True:
                if self._closed:
                    raise StoreError("prediction log is closed")
                wake = self._enqueue_locked(batch, rows, waiter)
                if wake is not None:
                    break
                if self.overflow == "reject":
                    raise self._overloaded()
                if not blocked:
                    blocked = True
                    self.metrics.overflowed()
                self._wake.set()
                self._room.wait(self.flush_interval)
        if wake:
            self._wake.set()
        if waiter is not None:
            waiter.event.wait()
            if waiter.error is not None:
                raise waiter.error

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything submitted before the call is durable. Without a running
        writer thread the queue is written in the calling thread. Raises StoreError when a
        write failed or ``timeout`` passed."""
        done = Done()
        with self._lock:
            self._queue.append((None, 0, done))
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._wake.set()
            if not done.event.wait(timeout):
                raise StoreError(f"prediction log flush did not finish within {timeout}s")
        else:
            with self._write_lock:
                self._sync_loop_files()
                self._process(*self._take())
        if done.error is not None:
            raise done.error

    # ------------------------------------------------------------------ writer

    def _take_channels_locked(self) -> list[Snapshot]:
        """Under ``self._lock``: the channels' records (they start over) and the snapshots
        to retry, taken out of the queue's count; idle channels are dropped."""
        for ch in self._channels.values():
            if ch.pending:
                self._absorb_locked(ch)
        snaps, self._retry_snapshots = self._retry_snapshots, []
        idle: list[tuple[str, str, int, str]] = []
        now = time.monotonic()
        for key, ch in self._channels.items():
            snap = ch.take(now)
            if snap is not None:
                snaps.append(snap)
            elif now - ch.idle_since >= IDLE_SECONDS:
                idle.append(key)
        for key in idle:
            del self._channels[key]
        self._queued_rows -= sum(s.data.num_rows for s in snaps)
        return snaps

    def _take_locked(self, channels: bool = True) -> tuple[list[Item], list[Snapshot]]:
        """Under ``self._lock``: everything waiting to be written (the queue empties, the
        channels start over; without ``channels`` they are left to the event loop's cycle)."""
        if channels:
            snaps = self._take_channels_locked()
        else:
            snaps, self._retry_snapshots = self._retry_snapshots, []
        snaps += self._for_writer
        self._for_writer = []
        items = list(self._queue)
        self._queue = deque()
        if channels:
            self._queued_rows = 0
        else:  # what the channels hold stays counted against the bound
            self._queued_rows -= sum(s.data.num_rows for s in snaps) + sum(it[1] for it in items)
        return items, snaps

    def _take(
        self, channels_only: bool = False, *, loop_owns_channels: bool = False
    ) -> tuple[list[Item], list[Snapshot]]:
        """What to write now. ``loop_owns_channels`` (the writer thread, while the event
        loop runs its cycles): the channels stay for the loop's next cycle, unless a
        ``flush()`` waits in the queue or the records pass three quarters of the bound."""
        with self._lock:
            if channels_only:
                taken: tuple[list[Item], list[Snapshot]] = ([], self._take_channels_locked())
            else:
                # a flush() must find every record offered before it; a queue near its
                # bound cannot wait for the loop's next cycle
                urgent = self._queued_rows >= self._wake_rows or any(
                    it[0] is None for it in self._queue
                )
                taken = self._take_locked(channels=urgent or not loop_owns_channels)
            self._woken = False
            room_waiters, self._room_waiters = self._room_waiters, []
            self._room.notify_all()
        if room_waiters:
            notify([(w, None) for w in room_waiters])
        return taken

    def _pending_locked(self) -> bool:
        return bool(
            self._queue
            or self._retry_snapshots
            or self._for_writer
            or any(ch.n_req or ch.pending for ch in self._channels.values())
        )

    # -- the event loop's share (async durability, see start())

    def _arm(self) -> None:
        """On the loop: the next write cycle in ``flush_interval`` seconds."""
        loop = self._loop
        if loop is not None and not self._closed:
            loop.call_later(self.flush_interval, self._loop_cycle)  # stops once closed

    def _loop_cycle(self) -> None:
        """On the loop: write the channels' records as segments (buffered, no fsync: the
        writer thread fsyncs them later), and wake the writer thread when it has work."""
        self._loop_seen = time.monotonic()
        if self._closed:
            return
        try:
            with self._seg_lock:
                _, snaps = self._take(channels_only=True)
                small = [s for s in snaps if s.data.nbytes < LOOP_MAX_BYTES]
                if len(small) < len(snaps):  # large ones: the writer thread, O_DIRECT
                    large = [s for s in snaps if s.data.nbytes >= LOOP_MAX_BYTES]
                    for snap in large:  # laid out here, while the thread sleeps (see prepare)
                        self._writer.prepare(snap)
                    with self._lock:
                        self._for_writer += large
                        self._queued_rows += sum(s.data.num_rows for s in large)
                unsynced = self._process([], small, durable=False)
            with self._lock:
                thread_work = bool(self._queue or self._retry_snapshots or self._for_writer)
            if thread_work or unsynced >= UNSYNCED_FILES:
                self._wake.set()
        except Exception:  # never stop the timer: the records stay for the next cycle
            log.exception("prediction log: event-loop write cycle failed")
        finally:
            self._arm()

    def _loop_alive(self) -> bool:
        """Whether the event loop still runs its write cycles; if not (it stopped, or is
        stuck in a long call), the writer thread goes back to writing everything itself."""
        loop = self._loop
        if loop is None:
            return False
        if loop.is_closed() or not loop.is_running():
            self._loop = None
            log.warning("prediction log: the event loop stopped; the writer thread writes")
            return False
        return time.monotonic() - self._loop_seen < max(LOOP_WATCH, 3 * self.flush_interval)

    def _sync_loop_files(self) -> None:
        """fsync the files the event loop wrote so far, then their folders (writer side)."""
        with self._lock:
            paths, self._unsynced = self._unsynced, []
        if paths:
            try:
                self._writer.sync_files(paths)
            except OSError:
                self.metrics.write_error()
                log.exception("prediction log: fsync of %d written files failed", len(paths))

    # -- the writer thread

    def _run(self) -> None:
        """The writer thread: wait for the interval or a wake-up, write, repeat; after
        :meth:`close`, write until the queue is empty or the close timeout passed. With an
        event loop writing the channels (see :meth:`start`), it sleeps until woken."""
        while True:
            retry_in = self._retry_at - time.monotonic()
            if self._stopping:
                timeout = max(0.0, retry_in)
            elif self._loop is not None:
                timeout = retry_in if retry_in > 0 else max(LOOP_WATCH, self.flush_interval)
            else:
                timeout = self.flush_interval
            woken = self._wake.wait(timeout)
            self._wake.clear()
            if not self._stopping and time.monotonic() < self._retry_at:
                continue  # back off after a failed write
            if not (woken or self._stopping or self._loop is None) and self._loop_alive():
                continue  # the loop writes the channels, and nothing asked for this thread
            self._writer_cycles += 1
            # while the loop runs its cycles, records still in the channels wait for the
            # next one: taken here they would make a second, small file every cycle
            loop_owns = not self._stopping and self._loop is not None and self._loop_alive()
            with self._write_lock:
                items, snaps = self._take(loop_owns_channels=loop_owns)
                with self._seg_lock:  # an event-loop cycle that took records has written them
                    pass
                self._sync_loop_files()
                self._process(items, snaps)
            if self._stopping:
                with self._lock:
                    empty = not self._pending_locked()
                if empty or time.monotonic() >= self._stop_deadline:
                    return

    def _process(
        self, items: list[Item], snapshots: list[Snapshot], *, durable: bool = True
    ) -> int:
        """Write channel snapshots and queued items; async records that failed are kept to
        be written first next cycle (``self._retry_at`` is set). Not ``durable``: files are
        not fsynced; they join the list the writer thread fsyncs. Returns how many files
        wait for an fsync."""
        try:
            result = self._writer.process(items, snapshots, durable=durable)
        except Exception as exc:  # a bug rather than an I/O error: keep the records
            log.exception("prediction log: write cycle failed")
            self.metrics.write_error()
            err = StoreError(f"prediction log write failed: {exc}")
            result = CycleResult(
                notify=[(w, err) for _, _, w in items if w is not None]
                + [(w, err) for s in snapshots for w in s.waiters],
                retry=[it for it in items if it[0] is not None and it[2] is None],
                retry_snapshots=[s for s in snapshots if not s.waiters],
            )
            lost = sum(it[1] for it in items if it[0] is not None and it[2] is not None)
            lost += sum(s.data.num_rows for s in snapshots if s.waiters)
            if lost:
                self.metrics.lost_rows(lost, "sync_write_failed")
        with self._lock:
            if result.retry or result.retry_snapshots:
                self._queue.extendleft(reversed(result.retry))
                self._retry_snapshots[:0] = result.retry_snapshots
                self._queued_rows += sum(it[1] for it in result.retry)
                self._queued_rows += sum(s.data.num_rows for s in result.retry_snapshots)
                self._retry_at = time.monotonic() + min(self.flush_interval, 1.0)
            self._unsynced += result.unsynced
            unsynced = len(self._unsynced)
        notify(result.notify)
        return unsynced

    # ------------------------------------------------------------------ compaction

    def compact(self, endpoint: str | None = None, *, open_hours: bool = False) -> int:
        """Merge the small files of every closed hour (of one endpoint or all) now; with
        ``open_hours``, also the flush files of hours still being written once they are
        many. Returns how many files were replaced. Safe while readers and writers run."""
        horizon = self._closed_horizon()
        replaced = 0
        for ep in [validate_name(endpoint, "endpoint")] if endpoint else self.endpoints():
            for idx, path in list(self._reader.hours(ep, Window(None, None))):
                closed = (idx + 1) * HOUR_NS <= horizon
                if closed or open_hours:
                    replaced += self._compact_one(path, open_hour=not closed)
        return replaced

    def _closed_horizon(self) -> float:
        """Hours ending before this (epoch ns) no longer receive records, late ones aside."""
        return (time.time() - COMPACT_GRACE - self.flush_interval) * 1e9

    def _compact_one(self, path: Path, *, open_hour: bool = False) -> int:
        try:
            n = compact_hour(self._reader, path, compression=self.compression, open_hour=open_hour)
        except Exception:  # never fatal: the small files stay readable
            log.exception("prediction log: compacting %s failed", path)
            return 0
        self.metrics.compacted(n)
        return n

    def _compact_loop(self) -> None:
        """Every ``compact_interval``: hours this log wrote to are compacted in full once
        closed, and lightly (flush files only) while open, so that a window over the current
        hour reads dozens of files, not thousands."""
        assert self.compact_interval is not None
        if self._compact_stop.wait(min(self.compact_interval, 5.0)):
            return
        self.compact()  # hours left small by earlier runs
        while not self._compact_stop.wait(self.compact_interval):
            closed, still_open = self._writer.take_dirty(self._closed_horizon())
            work = [(h, False) for h in closed] + [(h, True) for h in still_open]
            for (endpoint, idx), open_hour in work:
                if self._compact_stop.is_set():
                    return
                self._compact_one(hour_dir(self.directory, endpoint, idx), open_hour=open_hour)

    # ------------------------------------------------------------------ reading

    def _filters(
        self, since: TimeLike, until: TimeLike, roles: Sequence[str] | None, version: int | None
    ) -> Filters:
        if roles is not None:
            if isinstance(roles, str):
                roles = [roles]
            for r in roles:
                if r not in ROLES:
                    raise InvalidInputError.for_field(
                        "roles", "one of " + ", ".join(sorted(ROLES)), r
                    )
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise InvalidInputError.for_field("version", "an int", version)
        return Filters(
            Window(to_ns(since, "since"), to_ns(until, "until")),
            frozenset(roles) if roles is not None else None,
            version,
        )

    def read_table(
        self,
        endpoint: str,
        *,
        since: TimeLike = None,
        until: TimeLike = None,
        columns: list[str] | None = None,
        roles: list[str] | None = None,
        version: int | None = None,
    ) -> pa.Table:
        """:meth:`read` as an Arrow table (types preserved: tensors stay fixed-size lists)."""
        validate_name(endpoint, "endpoint")
        return self._reader.read_table(
            endpoint, self._filters(since, until, roles, version), columns
        )

    def read(
        self,
        endpoint: str,
        *,
        since: TimeLike = None,
        until: TimeLike = None,
        columns: list[str] | None = None,
        roles: list[str] | None = None,
        version: int | None = None,
    ) -> pd.DataFrame:
        """Records of ``endpoint`` with ``since <= ts < until``, in time order.

        Columns: id, request_id, endpoint, model, version, role, ts (UTC), latency_ms, status,
        error, then ``input.<col>`` and ``output`` (or ``output.<name>``). ``columns`` picks
        some (a bare input name means ``input.<name>``). Versions with different inputs read
        together; a column a version lacks is missing (NaN/None) in its rows. Only flushed
        records are visible: call :meth:`flush` first to read your own writes.
        """
        table = self.read_table(
            endpoint, since=since, until=until, columns=columns, roles=roles, version=version
        )
        return table.to_pandas()

    def read_column(
        self,
        endpoint: str,
        column: str,
        *,
        since: TimeLike = None,
        until: TimeLike = None,
        version: int | None = None,
        role: str | Sequence[str] | None = "primary",
    ) -> np.ndarray:
        """One column over a window, reading only it and ``ts`` (plus ``role``/``version``
        when filtering) from the files whose hour overlaps: the fast path for drift.

        ``column`` is an input name (``x1`` or ``input.x1``), ``output`` or a base column.
        Returns the rows' values in time order; rows without the column give NaN/None; a
        2-D+ tensor column comes back as an ``(n, ...)`` array. ``role=None`` means all.
        """
        validate_name(endpoint, "endpoint")
        roles = [role] if isinstance(role, str) else role
        f = self._filters(since, until, roles, version)
        return self._reader.read_column(endpoint, column, f)

    def tail_table(self, endpoint: str, n: int = 20) -> pa.Table:
        """:meth:`tail` as an Arrow table."""
        validate_name(endpoint, "endpoint")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise InvalidInputError.for_field("n", "an int >= 0", n)
        return self._reader.tail(endpoint, n)

    def tail(self, endpoint: str, n: int = 20) -> pd.DataFrame:
        """The last ``n`` records of ``endpoint`` by time (all roles), oldest first; reads
        only the newest files."""
        return self.tail_table(endpoint, n).to_pandas()

    def endpoints(self) -> list[str]:
        """Endpoints that have at least one record file, sorted."""
        return self._reader.endpoints()

    def count(self, endpoint: str | None = None) -> int:
        """Records stored (flushed) for one endpoint or all; reads file footers only."""
        if endpoint is not None:
            return self._reader.count(validate_name(endpoint, "endpoint"))
        return sum(self._reader.count(ep) for ep in self.endpoints())

    def stats(self) -> dict[str, Any]:
        """Counters of this log object (this process) and its queue."""
        with self._lock:
            queue_rows = self._queued_rows
            unsynced = len(self._unsynced)
            queue_batches = len(self._queue) + sum(
                ch.n_req + len(ch.pending) for ch in self._channels.values()
            )
        thread = self._thread
        return {
            "directory": str(self.directory),
            "durability": self.durability,
            "overflow": self.overflow,
            "running": bool(thread is not None and thread.is_alive()),
            "closed": self._closed,
            "queue_rows": queue_rows,
            "queue_batches": queue_batches,
            "max_queue_rows": self.max_queue_rows,
            "rows_submitted": self._rows_submitted,
            "unsynced_files": unsynced,
            **self.metrics.counts,
            "files_skipped": self._reader.skips.count,
        }
