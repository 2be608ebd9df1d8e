"""One write cycle of the prediction log, and the completion of whoever waits for it.

The writer thread hands every channel snapshot and queued item of a cycle to
:meth:`Writer.process`. A snapshot (the columnar appender's buffers) is written as a raw
segment per hour it touches. Queued batches are grouped by endpoint, then by schema (same
input names, kinds and tensor shapes), each group becomes one Arrow table built column by
column, the groups of an endpoint are concatenated (missing columns become nulls, numbers
widen) and written as one file per hour they touch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lockgate.errors import StoreError
from lockgate.store.predlog_format import (
    HOUR_NS,
    PART_PREFIX,
    SEG_SUFFIX,
    TMP_SUFFIX,
    LogBatch,
    build_table,
    file_tag,
    fsync_dir,
    group_key,
    hour_dir,
    publish,
    schema_key,
    split_by_hour,
    write_tmp,
)
from lockgate.store.predlog_metrics import LogMetrics
from lockgate.store.predlog_segment import DirectIO, Encoded, SegmentData, lay_out, write_segment

if TYPE_CHECKING:
    from lockgate.store.predlog_columns import Part, Snapshot

log = logging.getLogger("lockgate.predlog")


class Done:
    """Completion of a flush marker, or of a sync submit made from a thread."""

    __slots__ = ("error", "event")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None

    def set(self, error: BaseException | None) -> None:
        self.error = error
        self.event.set()


AsyncWaiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]
Waiter = Done | AsyncWaiter
#: a queued item: (batch, or None for a flush marker; its rows; who waits for durability)
Item = tuple[LogBatch | None, int, Waiter | None]


def _resolve_futures(pairs: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for fut, err in pairs:
        if not fut.done():
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(err)


def notify(waiters: list[tuple[Waiter, BaseException | None]]) -> None:
    """Wake waiters from any thread: one callback per event loop, whatever their number."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for w, err in waiters:
        if isinstance(w, Done):
            w.set(err)
        else:
            by_loop.setdefault(w[0], []).append((w[1], err))
    for loop, pairs in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_resolve_futures, pairs)


@dataclass
class CycleResult:
    """What a cycle did: who to wake (with an error or None) and what to retry."""

    notify: list[tuple[Waiter, BaseException | None]] = field(default_factory=list)
    retry: list[Item] = field(default_factory=list)
    retry_snapshots: list[Snapshot] = field(default_factory=list)
    #: files written without an fsync (a cycle that was not ``durable``)
    unsynced: list[Path] = field(default_factory=list)


class Writer:
    """Turns queued items into durable files; used by one thread at a time."""

    def __init__(self, root: Path, *, sync: bool, compression: str, metrics: LogMetrics) -> None:
        self.root = root
        self.sync = sync
        self.compression = compression
        self.metrics = metrics
        #: (endpoint, hour) written to since the compactor last looked (see take_dirty)
        self._dirty: set[tuple[str, int]] = set()
        self._dirty_lock = threading.Lock()
        self._known_dirs: set[Path] = set()
        self._direct = DirectIO()

    def process(
        self, items: list[Item], snapshots: Sequence[Snapshot] = (), *, durable: bool = True
    ) -> CycleResult:
        """Write a cycle's snapshots and queued items; say who to wake and what to retry.
        Not ``durable``: the snapshots' segments are written through the page cache and not
        fsynced (their paths are in ``CycleResult.unsynced``); only for snapshots."""
        result = CycleResult()
        if not items and not snapshots:
            return result
        t0 = time.perf_counter()
        failure: BaseException | None = None
        for snap in snapshots:
            exc = self._write_snapshot(snap, result, durable)
            failure = failure or exc
        by_endpoint: dict[str, list[Item]] = {}
        markers: list[Waiter] = []
        for item in items:
            b = item[0]
            if b is None:
                if item[2] is not None:
                    markers.append(item[2])
            else:
                by_endpoint.setdefault(b.endpoint, []).append(item)
        for endpoint, eitems in by_endpoint.items():
            try:
                done = self._write_endpoint(endpoint, eitems)
            except Exception as exc:  # disk full, permissions ...: counted, retried or reported
                self.metrics.write_error()
                log.exception(
                    "prediction log: writing %d batches of %s failed", len(eitems), endpoint
                )
                failure = failure or exc
                err = StoreError(f"prediction log write failed: {exc}")
                for it in eitems:
                    if it[2] is None:
                        result.retry.append(it)
                    else:
                        result.notify.append((it[2], err))
                        self.metrics.lost_rows(it[1], "sync_write_failed")
                continue
            result.notify.extend((it[2], err) for it, err in done if it[2] is not None)
        marker_err = (
            StoreError(f"prediction log write failed, will retry: {failure}") if failure else None
        )
        result.notify.extend((m, marker_err) for m in markers)
        if by_endpoint or snapshots:
            self.metrics.flushed(time.perf_counter() - t0)
        return result

    def _write_snapshot(
        self, snap: Snapshot, result: CycleResult, durable: bool
    ) -> BaseException | None:
        """Write a channel's records as raw segments, one per hour they touch; all renamed
        only once all are written (so a retry cannot duplicate rows)."""
        data, waiters = snap.data, snap.waiters
        staged: list[tuple[Path, Path]] = []
        try:
            parts = snap.parts if durable and snap.parts is not None else self._parts(data, durable)
            for hour, part, enc in parts:
                directory = hour_dir(self.root, data.endpoint, hour)
                staged.append(self._stage_raw(directory, part, durable, enc))
                self._mark_dirty(data.endpoint, hour)
            for tmp, final in staged:
                publish(tmp, final, sync_dir=self.sync and durable)
        except Exception as exc:  # disk full, permissions ...: counted, retried or reported
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            self.metrics.write_error()
            log.exception(
                "prediction log: writing %d rows of %s failed", data.num_rows, data.endpoint
            )
            if waiters:
                err = StoreError(f"prediction log write failed: {exc}")
                result.notify.extend((w, err) for w in waiters)
                self.metrics.lost_rows(data.num_rows, "sync_write_failed")
                snap.release()
            else:
                result.retry_snapshots.append(snap)
            return exc
        snap.release()
        if not durable:
            result.unsynced.extend(final for _, final in staged)
        self.metrics.wrote(data.num_rows, len(staged))
        result.notify.extend((w, None) for w in waiters)
        return None

    def prepare(self, snap: Snapshot) -> None:
        """Lay out a snapshot's segments for a durable write, ahead of it (see
        :meth:`PredictionLog._loop_cycle`): the event loop does this CPU work while the
        writer thread sleeps, so the thread then needs the GIL only between its system
        calls. A layout that fails is left to the write, which reports it."""
        with contextlib.suppress(Exception):
            snap.parts = self._parts(snap.data, True)

    def _parts(self, data: SegmentData, durable: bool) -> list[Part]:
        # a write that is not durable goes through the page cache (an O_DIRECT write waits
        # for the device, which the event loop must not)
        direct = self._direct if durable else None
        return [(h, part, lay_out(part, self.root, direct)) for h, part in data.split_by_hour()]

    def _stage_raw(
        self, directory: Path, data: SegmentData, durable: bool, enc: Encoded
    ) -> tuple[Path, Path]:
        self._ensure_dir(directory)
        direct = self._direct if durable else None
        final = directory / f"{PART_PREFIX}{enc.ts_min_ns}-{file_tag()}{SEG_SUFFIX}"
        tmp = final.with_name(final.name + TMP_SUFFIX)
        try:
            write_segment(tmp, data, direct=direct, encoded=enc, fsync=durable)
        except FileNotFoundError:  # the folder was removed under us: make it again
            self._known_dirs.discard(directory)
            self._ensure_dir(directory)
            write_segment(tmp, data, direct=direct, encoded=enc, fsync=durable)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, final

    def sync_files(self, paths: list[Path]) -> None:
        """fsync files written without it, then their folders (a file compacted away in the
        meantime is skipped: its rows are in a durable file already)."""
        folders: set[Path] = set()
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            folders.add(path.parent)
        for folder in folders:
            with contextlib.suppress(FileNotFoundError):
                fsync_dir(folder)

    def _mark_dirty(self, endpoint: str, hour: int) -> None:
        with self._dirty_lock:
            self._dirty.add((endpoint, hour))

    def take_dirty(self, horizon_ns: float) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """Hours written to since the last call: those that ended before ``horizon_ns``
        (forgotten: they are compacted in full) and those still open (kept)."""
        with self._dirty_lock:
            closed = sorted(h for h in self._dirty if (h[1] + 1) * HOUR_NS <= horizon_ns)
            self._dirty.difference_update(closed)
            still_open = sorted(self._dirty)
        return closed, still_open

    def _write_endpoint(
        self, endpoint: str, items: list[Item]
    ) -> list[tuple[Item, BaseException | None]]:
        """One table for an endpoint's items, written as one file per hour it touches.
        Items whose data cannot be converted are dropped, counted and reported."""
        groups: dict[Any, list[Item]] = {}
        results: list[tuple[Item, BaseException | None]] = []
        for it in items:
            try:
                key = group_key(it[0], it[1])  # type: ignore[arg-type]
            except Exception as exc:
                results.append((it, self._unconvertible(it, exc)))
                continue
            groups.setdefault(key, []).append(it)
        tables: list[pa.Table] = []
        for group in groups.values():
            try:
                tables.append(_table(endpoint, group))
                results.extend((it, None) for it in group)
            except Exception:
                self._split(endpoint, group, tables, results)
        if not tables:
            return results
        try:
            merged = [pa.concat_tables(tables, promote_options="permissive")]
        except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
            merged = tables  # types that cannot merge within one cycle: one file per schema
        # every file of the cycle is written first, then all are renamed: a failure before
        # the renames leaves nothing visible, so retrying the items cannot duplicate rows
        staged: list[tuple[Path, Path]] = []
        try:
            for table in merged:
                for hour, part in split_by_hour(table):
                    directory = hour_dir(self.root, endpoint, hour)
                    staged.append(self._stage(directory, part))
                    self._mark_dirty(endpoint, hour)
        except BaseException:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise
        for tmp, final in staged:
            publish(tmp, final, sync_dir=self.sync)
        rows = sum(t.num_rows for t in merged)
        files = len(staged)
        self.metrics.wrote(rows, files)
        return results

    def _split(
        self,
        endpoint: str,
        group: list[Item],
        tables: list[pa.Table],
        results: list[tuple[Item, BaseException | None]],
    ) -> None:
        """A group whose dtypes differ: build one table per full schema key, and isolate
        the batches that still cannot be converted."""
        sub: dict[Any, list[Item]] = {}
        for it in group:
            sub.setdefault(schema_key(it[0], it[1]), []).append(it)  # type: ignore[arg-type]
        for part in sub.values():
            try:
                tables.append(_table(endpoint, part))
                results.extend((it, None) for it in part)
                continue
            except Exception:
                pass
            for it in part:
                try:
                    tables.append(_table(endpoint, [it]))
                    results.append((it, None))
                except Exception as exc:
                    results.append((it, self._unconvertible(it, exc)))

    def _unconvertible(self, item: Item, exc: Exception) -> StoreError:
        b = item[0]
        assert b is not None
        self.metrics.write_error()
        self.metrics.lost_rows(item[1], "unconvertible")
        log.error(
            "prediction log: dropping request %s of %s: cannot store its data: %s",
            b.request_id,
            b.endpoint,
            exc,
        )
        return StoreError(f"prediction log cannot store request {b.request_id}: {exc}")

    def _stage(self, directory: Path, table: pa.Table) -> tuple[Path, Path]:
        self._ensure_dir(directory)
        try:
            return write_tmp(directory, table, compression=self.compression)
        except FileNotFoundError:  # the folder was removed under us: make it again
            self._known_dirs.discard(directory)
            self._ensure_dir(directory)
            return write_tmp(directory, table, compression=self.compression)

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._known_dirs:
            return
        created = not directory.is_dir()
        directory.mkdir(parents=True, exist_ok=True)
        if created and self.sync:  # the new folders themselves must survive a crash
            for parent in (directory.parent, directory.parent.parent, self.root):
                fsync_dir(parent)
        self._known_dirs.add(directory)


def _table(endpoint: str, group: list[Item]) -> pa.Table:
    batches = [it[0] for it in group]
    counts = np.array([it[1] for it in group], dtype=np.int64)
    return build_table(endpoint, batches, counts)  # type: ignore[arg-type]
