"""The columnar appender: the prediction log's side of the serving hot path.

A served request's records are copied into growing NumPy buffers of one :class:`Channel` per
(endpoint, model, version, role): one buffer per input and output column, one value per
request for the id, time, latency and status. Batches offered on the hot path wait in the
channel's ``pending`` list and are copied a hundred or so at a time (:meth:`Channel.absorb`:
one ``np.concatenate`` per buffer), so no object is kept per request beyond that, and a
flush is a buffer swap plus one ``writev`` of the buffers (:mod:`lockgate.store.predlog_segment`).

Only records whose columns are all booleans or numbers, with every array holding the
request's rows, take this path; the rest (failed requests, strings, a column that changed
kind) go through the general queue of :mod:`lockgate.store.predlog_writer`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lockgate.batch import MatrixColumns
from lockgate.store.predlog_format import INPUT_PREFIX, OUTPUT, OUTPUT_PREFIX, LogBatch
from lockgate.store.predlog_segment import (
    INPUTS,
    RAW_KINDS,
    Encoded,
    SegmentData,
    aligned_empty,
)

#: one segment of a snapshot: its UTC hour, its records and their layout on disk
Part = tuple[int, SegmentData, Encoded]
#: rows a new channel's buffers start with (they double when full)
START_ROWS = 256
#: write cycles without a record after which a channel lets its spare buffer set go (it
#: keeps the set it fills); the log drops a channel idle for longer (``predlog.IDLE_SECONDS``)
SPARE_IDLE_CYCLES = 4
_DTYPE = operator.attrgetter("dtype")


@dataclass(slots=True)
class Snapshot:
    """What a channel held at one write cycle: its records, who waits for them to be
    durable, and the buffers to hand back once written (the next cycle reuses them, so the
    event loop fills memory that is already mapped)."""

    data: SegmentData
    waiters: list[Any]
    channel: Channel | None = None
    buffers: list[np.ndarray] = field(default_factory=list)
    #: the segments to write, laid out ahead by :meth:`Writer.prepare` (None: not yet)
    parts: list[Part] | None = None

    def release(self) -> None:
        """Give the buffers back to the channel (any thread: one list append)."""
        if self.channel is not None and self.buffers:
            self.channel.spare.append(self.buffers)
        self.channel, self.buffers = None, []


def _matrix_columns(inputs: Any, matrix: Any) -> bool:
    """Whether ``inputs`` are the columns of ``matrix`` itself (so they all have its dtype
    and rows: nothing to check column by column)."""
    return inputs.__class__ is MatrixColumns and inputs.matrix is matrix


def _layout(b: LogBatch, rows: int) -> tuple[list[str], list[tuple[Any, tuple[int, ...]]]] | None:
    """Column names and (dtype, row shape) of a batch, or None when it cannot take the fast
    path: a failed request, a string or object column, an array without the batch's rows."""
    if b.error is not None or not b.inputs or b.outputs is None:
        return None
    names: list[str] = []
    specs: list[tuple[Any, tuple[int, ...]]] = []
    out = b.outputs
    pairs: list[tuple[str, Any]] = [(INPUT_PREFIX + k, v) for k, v in b.inputs.items()]
    if isinstance(out, dict):
        pairs += [(OUTPUT_PREFIX + k, v) for k, v in out.items()]
    else:
        pairs.append((OUTPUT, out))
    for name, a in pairs:
        if not isinstance(a, np.ndarray) or a.ndim == 0 or len(a) != rows:
            return None
        if a.dtype.kind not in RAW_KINDS or not a.dtype.isnative or 0 in a.shape[1:]:
            return None
        names.append(name)
        specs.append((a.dtype, a.shape[1:]))
    return names, specs


#: a batch that does not fit a channel's layout (it takes the general path)
MISFIT = 0
#: a batch that fits but finds no room under the log's bound
FULL = -1


class Channel:
    """Buffers of one (endpoint, model, version, role) and one column layout; filled on the
    event loop under the log's lock, taken whole by the writer thread.

    When every input is a 1-D column of one dtype (the common case: a feature vector), the
    inputs share one ``(rows, k)`` buffer, filled by a single copy when the batch carries
    the decoded matrix (``LogBatch.matrix``), else column by column."""

    __slots__ = (
        "_bulk_ok",
        "_cap",
        "_in_dtype",
        "_in_names",
        "_k",
        "_out_names",
        "_out_specs",
        "_specs",
        "bufs",
        "endpoint",
        "idle",
        "idle_since",
        "latency",
        "model",
        "n_req",
        "n_rows",
        "names",
        "pending",
        "rids",
        "role",
        "rows",
        "spare",
        "status",
        "ts",
        "version",
        "waiters",
    )

    def __init__(
        self,
        b: LogBatch,
        names: list[str],
        specs: list[tuple[Any, tuple[int, ...]]],
        rows: int,
    ) -> None:
        self.endpoint, self.model, self.version, self.role = b.endpoint, b.model, b.version, b.role
        inputs = b.inputs or {}
        self._in_names = tuple(inputs)
        self._k = k = len(inputs)
        out = b.outputs
        self._out_names: tuple[str, ...] | None = tuple(out) if isinstance(out, dict) else None
        in_specs = specs[:k]
        self._out_specs = specs[k:]
        dtypes = {dt for dt, _ in in_specs}
        if len(dtypes) == 1 and all(shape == () for _, shape in in_specs):
            self._in_dtype = in_specs[0][0]
            #: buffer name -> the column names it holds side by side
            self.names: list[str | tuple[str, ...]] = [tuple(names[:k]), *names[k:]]
            self._specs = [(self._in_dtype, (k,)), *self._out_specs]
        else:
            self._in_dtype = None
            self.names = list(names)
            self._specs = specs
        self._cap = max(START_ROWS, rows)
        #: the layout :meth:`absorb` copies in bulk: the inputs as one matrix, one output
        self._bulk_ok = self._in_dtype is not None and self._out_names is None
        self.waiters: list[Any] = []
        #: batches accepted by :meth:`PredictionLog.offer`, not yet copied (see :meth:`absorb`)
        self.pending: list[LogBatch] = []
        #: write cycles in a row that found the channel empty, and since when (monotonic)
        self.idle = 0
        self.idle_since = 0.0
        #: buffer sets written and handed back (appended by the writer thread)
        self.spare: list[list[np.ndarray]] = []
        self._fresh()

    def _fresh(self) -> None:
        cap = self._cap
        bufs: list[np.ndarray] | None = None
        while self.spare:
            got = self.spare.pop()
            if len(got[0]) >= cap:
                bufs = got
                break
        self.bufs = bufs or [aligned_empty(cap, shape, dt) for dt, shape in self._specs]
        # per request: plain lists (an append is a fifth of a NumPy item assignment)
        self.ts: list[float] = []
        self.latency: list[float] = []
        self.status: list[int] = []
        self.rows: list[int] = []
        self.rids: list[str] = []
        self.n_rows = 0
        self.n_req = 0

    def append(self, b: LogBatch, queued: int, limit: int) -> int:
        """Copy a batch in. Returns its rows, :data:`MISFIT` (nothing copied) when its
        layout is not this channel's, or :data:`FULL` when ``queued`` rows plus its own
        would pass ``limit`` (a batch is always admitted into an empty queue)."""
        inputs = b.inputs
        out = b.outputs
        if b.error is not None or not inputs or out is None:
            return MISFIT
        if tuple(inputs) != self._in_names:
            return MISFIT
        status = b.status
        if b.latency_ms.__class__ is not float or status.__class__ is not int:
            return MISFIT  # the general path converts (or refuses) anything else
        if not 0 <= status < 2**31:
            return MISFIT
        rows = b.n_rows or len(next(iter(inputs.values())))
        if self._out_names is None:
            if isinstance(out, dict):
                return MISFIT
            outs = [out]
        else:
            if not isinstance(out, dict) or tuple(out) != self._out_names:
                return MISFIT
            outs = list(out.values())
        for a, (dt, shape) in zip(outs, self._out_specs, strict=True):
            if (
                not isinstance(a, np.ndarray)
                or a.dtype != dt
                or a.ndim == 0
                or len(a) != rows
                or a.shape[1:] != shape
            ):
                return MISFIT
        dt = self._in_dtype
        matrix = b.matrix
        cols: list[Any] | None = None
        if (
            dt is not None
            and matrix is not None
            and (
                not isinstance(matrix, np.ndarray)
                or matrix.dtype != dt
                or matrix.shape != (rows, self._k)
                or not (
                    _matrix_columns(inputs, matrix) or set(map(_DTYPE, inputs.values())) == {dt}
                )
            )
        ):
            matrix = None  # checked column by column instead
        if dt is None or matrix is None:
            cols = list(inputs.values())
            specs = self._specs if dt is None else None
            for j, a in enumerate(cols):
                want, shape = specs[j] if specs is not None else (dt, ())
                if (
                    not isinstance(a, np.ndarray)
                    or a.dtype != want
                    or a.ndim == 0
                    or len(a) != rows
                    or a.shape[1:] != shape
                ):
                    return MISFIT
        if queued and queued + rows > limit:
            return FULL
        start = self.n_rows
        end = start + rows
        if end > self._cap:
            self._grow(end)
        bufs = self.bufs
        if dt is None:
            assert cols is not None
            for buf, a in zip(bufs, cols, strict=False):
                buf[start:end] = a
            first_out = len(cols)
        else:
            if matrix is not None:
                bufs[0][start:end] = matrix
            else:
                target = bufs[0][start:end]
                for j, a in enumerate(cols):  # type: ignore[arg-type]
                    target[:, j] = a
            first_out = 1
        for buf, a in zip(bufs[first_out:], outs, strict=True):
            buf[start:end] = a
        self.ts.append(b.ts)
        self.latency.append(b.latency_ms)
        self.status.append(status)
        self.rows.append(rows)
        self.rids.append(b.request_id)
        self.n_rows = end
        self.n_req += 1
        return rows

    def absorb(self) -> list[LogBatch]:
        """Copy the pending batches in, in one go, and return those that do not fit this
        channel's layout (for the general path). In the common layout (the inputs as one
        matrix, one output array) the checks are one pass over plain attributes and the
        copies one ``np.concatenate`` per buffer straight into it: about a tenth of what
        copying each batch as it comes costs."""
        pending, self.pending = self.pending, []
        if not pending:
            return []
        misfits: list[LogBatch] = []
        append = self.append
        for b in self._bulk(pending) if self._bulk_ok else pending:
            if append(b, 0, 0) <= 0:
                misfits.append(b)
        return misfits

    def _bulk(self, pending: list[LogBatch]) -> list[LogBatch]:
        """Copy in the batches that carry the inputs as one matrix of the channel's dtype
        and one output array of its dtype; return the others (to copy one by one)."""
        nd = np.ndarray
        dt, k, in_names = self._in_dtype, self._k, self._in_names
        names = list(in_names)
        out_dt, out_shape = self._out_specs[0]
        ok: list[LogBatch] = []
        rest: list[LogBatch] = []
        mats: list[np.ndarray] = []
        outs: list[np.ndarray] = []
        rows: list[int] = []
        for b in pending:
            m, o, n, inp = b.matrix, b.outputs, b.n_rows, b.inputs
            if (
                b.error is None
                and m.__class__ is nd
                and o.__class__ is nd
                and n.__class__ is int
                and b.status.__class__ is int
                and b.latency_ms.__class__ is float
                and m.dtype == dt
                and m.shape == (n, k)
                and o.dtype == out_dt
                and len(o) == n
                and o.shape[1:] == out_shape
                and 0 <= b.status < 2**31
                and (
                    (_matrix_columns(inp, m) and tuple(inp.names) == in_names)  # type: ignore[union-attr]
                    or (
                        list(inp) == names  # type: ignore[arg-type]
                        and list(map(_DTYPE, inp.values())).count(dt) == k  # type: ignore[union-attr]
                    )
                )
            ):
                ok.append(b)
                mats.append(m)
                outs.append(o)
                rows.append(n)
            else:
                rest.append(b)
        if ok:
            start = self.n_rows
            end = start + sum(rows)
            if end > self._cap:
                self._grow(end)
            in_buf, out_buf = self.bufs
            np.concatenate(mats, out=in_buf[start:end])
            np.concatenate(outs, out=out_buf[start:end])
            self.ts.extend([b.ts for b in ok])
            self.latency.extend([b.latency_ms for b in ok])
            self.status.extend([b.status for b in ok])
            self.rows.extend(rows)
            self.rids.extend([b.request_id for b in ok])
            self.n_rows = end
            self.n_req += len(ok)
        return rest

    def _grow(self, need: int) -> None:
        cap = max(self._cap * 2, need)
        n = self.n_rows
        grown = []
        for buf in self.bufs:
            new = aligned_empty(cap, buf.shape[1:], buf.dtype)
            new[:n] = buf[:n]
            grown.append(new)
        self.bufs = grown
        self._cap = cap
        self.spare.clear()  # too small now

    def take(self, now: float) -> Snapshot | None:
        """What the channel holds; the channel starts over with fresh (or handed back)
        buffers of the same capacity. None when it holds nothing (``now``, monotonic
        seconds, is then kept as the start of the idle spell if it is one)."""
        if not self.n_req:
            if not self.idle:
                self.idle_since = now
            self.idle += 1
            if self.idle >= SPARE_IDLE_CYCLES:  # a pause, not a gap between requests
                self.spare.clear()
            return None
        self.idle = 0
        n = self.n_rows
        columns: dict[str, np.ndarray] = {}
        groups: dict[str, list[str]] = {}
        for name, buf in zip(self.names, self.bufs, strict=True):
            if isinstance(name, tuple):
                columns[INPUTS] = buf[:n]
                groups[INPUTS] = list(name)
            else:
                columns[name] = buf[:n]
        data = SegmentData(
            self.endpoint,
            self.model,
            self.version,
            self.role,
            self.rids,
            np.array(self.ts, dtype=np.float64),
            np.array(self.latency, dtype=np.float64),
            np.array(self.status, dtype=np.int32),
            np.array(self.rows, dtype=np.int32),
            columns,
            groups,
            n,
        )
        waiters, self.waiters = self.waiters, []
        bufs = self.bufs
        self._fresh()
        return Snapshot(data, waiters, self, bufs)


def new_channel(b: LogBatch, rows: int) -> Channel | None:
    """A channel for the batch's layout, or None when the batch cannot take the fast path."""
    layout = _layout(b, rows)
    if layout is None:
        return None
    return Channel(b, layout[0], layout[1], rows)
