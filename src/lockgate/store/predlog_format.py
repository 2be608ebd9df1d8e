"""On-disk format of the prediction log: the record batch, its Arrow schema, file layout and
the vectorised conversion of many queued batches into one Arrow table.

Layout (all times UTC)::

    <dir>/<endpoint>/<YYYY-MM-DD>/<HH>/part-<min_ts_ns>-<pid>-<seq>.seg
    <dir>/<endpoint>/<YYYY-MM-DD>/<HH>/part-<min_ts_ns>-<pid>-<seq>.arrow
    <dir>/<endpoint>/<YYYY-MM-DD>/<HH>/compact-<min_ts_ns>-<pid>-<seq>.parquet

Every row of a file lies in the hour of its folder (a flush that straddles an hour is split),
so a window read lists only the hours it overlaps. ``<min_ts_ns>`` is the smallest row time of
the file, which lets a reader skip files that start after the window. A file becomes visible
only by an atomic rename of ``<name>.tmp``; readers ignore every other name.

Three kinds of file, one logical table. A flush writes *segments*: records of the serving
hot path (numbers and booleans, successful requests) come from the columnar appender
(:mod:`lockgate.store.predlog_columns`) and are written as raw segments (``part-*.seg``,
:mod:`lockgate.store.predlog_segment`): the NumPy buffers as they are, in one ``writev``.
Other records (failed requests, string columns) are built into an Arrow table here and
written as an Arrow IPC segment (``part-*.arrow``), uncompressed, in a write-friendly layout:
the per-request strings (request id, model, role) are dictionary-encoded, built from one
value per request, and the row id is not stored but derived (``<request_id>-<row>``). The
compactor (:mod:`lockgate.store.predlog_compact`) rewrites segments into sorted, compressed
Parquet files (``compact-*.parquet``) in the canonical layout. Readers see the canonical
layout (:data:`BASE_SCHEMA`, plain strings, an ``id`` column) whatever the file
(:func:`canonical`, :func:`~lockgate.store.predlog_segment.read_segment`). Earlier versions
wrote flush files as ``part-*.parquet`` in the canonical layout; they are read and compacted
like any other file.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lockgate.errors import InvalidInputError

#: roles a prediction can be served in (``lockgate.types.Role``)
ROLES = frozenset({"primary", "canary", "shadow", "arm"})

#: base columns of every file, in order; inputs follow as ``input.<name>``, then the output(s)
BASE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("id", pa.string(), nullable=False),
    pa.field("request_id", pa.string(), nullable=False),
    pa.field("endpoint", pa.string(), nullable=False),
    pa.field("model", pa.string(), nullable=False),
    pa.field("version", pa.int64(), nullable=False),
    pa.field("role", pa.string(), nullable=False),
    pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("latency_ms", pa.float64(), nullable=False),
    pa.field("status", pa.int32(), nullable=False),
    pa.field("error", pa.string()),
)
BASE_COLUMNS: tuple[str, ...] = tuple(f.name for f in BASE_FIELDS)
BASE_SCHEMA = pa.schema(BASE_FIELDS)
INPUT_PREFIX = "input."
OUTPUT = "output"
OUTPUT_PREFIX = "output."

#: schema metadata keys
META_FORMAT = b"lockgate.predlog.format"
META_TS_MIN = b"lockgate.ts_min_ns"
META_TS_MAX = b"lockgate.ts_max_ns"
META_SOURCES = b"lockgate.compacted_from"
META_ROWS = b"lockgate.rows"
FORMAT_VERSION = b"1"
#: the segment layout (``part-*.arrow``)
SEGMENT_FORMAT = b"2"

PART_PREFIX = "part-"
COMPACT_PREFIX = "compact-"
SUFFIX = ".parquet"
SEGMENT_SUFFIX = ".arrow"
#: raw segments of the columnar channels (:mod:`lockgate.store.predlog_segment`)
SEG_SUFFIX = ".seg"
#: every name a log file can end with
SUFFIXES = (SUFFIX, SEGMENT_SUFFIX, SEG_SUFFIX)
TMP_SUFFIX = ".tmp"
#: segment column holding each row's index within its request (the id's suffix)
ROW = "row"
HOUR_NS = 3_600 * 1_000_000_000
US_PER_HOUR = 3_600 * 1_000_000

#: one sequence for every writer in the process, so two logs on one folder never collide
_SEQ = itertools.count()
#: this process's id, read once (a system call gives up the GIL, and the writer thread then
#: waits for it back: see docs/performance.md); a forked child reads its own
_PID = [os.getpid()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def file_tag() -> str:
    """``<pid>-<seq>``: what makes a file name of this process unique."""
    return f"{_PID[0]}-{next(_SEQ)}"


@dataclass(slots=True)
class LogBatch:
    """One request's worth of prediction records, columnar; built on the hot path, so cheap
    (not frozen: a frozen dataclass's ``__init__`` costs three times as much).

    The arrays are referenced, not copied: do not mutate them after submitting the batch.
    A batch always yields at least one row, so a request that failed before any row was
    decoded (``inputs`` None, ``n_rows`` 0) is still recorded with its status and error.
    """

    request_id: str
    endpoint: str
    model: str
    version: int
    role: str
    ts: float
    inputs: dict[str, np.ndarray] | None
    outputs: np.ndarray | dict[str, np.ndarray] | None
    latency_ms: float
    status: int
    error: str | None = None
    n_rows: int = 0
    #: optional: the inputs side by side as one ``(rows, len(inputs))`` array, in the order
    #: of ``inputs`` (the decoded request matrix); lets the log copy them in one go
    matrix: np.ndarray | None = None

    def num_rows(self) -> int:
        """Rows this batch records: ``n_rows``, else the length of its arrays, at least 1."""
        return row_count(self)

    def row_ids(self) -> list[str]:
        """Ids of the rows: ``f"{request_id}-{i}"``."""
        rid = self.request_id
        return [f"{rid}-{i}" for i in range(row_count(self))]


def _bad(field: str, expected: str, got: Any) -> InvalidInputError:
    return InvalidInputError.for_field(f"LogBatch.{field}", expected, got)


def row_count(b: LogBatch) -> int:
    """Rows of a batch, checking that every array agrees; raises InvalidInputError."""
    n = b.n_rows
    inputs = b.inputs
    if inputs:
        for name, a in inputs.items():
            if not isinstance(a, np.ndarray) or a.ndim == 0:
                raise _bad(f"inputs[{name!r}]", "a 1-D or N-D numpy array", type(a).__name__)
            m = len(a)
            if n == 0:
                n = m
            elif m != n and m != 0:
                raise _bad(f"inputs[{name!r}]", f"{n} rows like the other arrays", m)
    out = b.outputs
    if out is not None:
        arrays = out.values() if isinstance(out, dict) else (out,)
        for a in arrays:
            if not isinstance(a, np.ndarray) or a.ndim == 0:
                raise _bad("outputs", "a 1-D or N-D numpy array", type(a).__name__)
            m = len(a)
            if n == 0:
                n = m
            elif m != n and m != 0:
                raise _bad("outputs", f"{n} rows like the inputs", m)
    return n or 1


# --------------------------------------------------------------------------- building tables

_DTYPE = operator.attrgetter("dtype")
_KIND = {"b": "b", "i": "n", "u": "n", "f": "n", "c": "c", "U": "s", "S": "s", "O": "s"}


class MixedSchemaError(ValueError):
    """Batches of one group hold a column with kinds that must not be concatenated."""


def _array_key(a: np.ndarray) -> tuple[str, tuple[int, ...]]:
    dt = a.dtype
    return (_KIND.get(dt.kind, dt.str), a.shape[1:])


def group_key(b: LogBatch, rows: int) -> tuple[Any, ...]:
    """A cheap key: the names of the input and output columns the batch stores. Batches with
    equal keys usually build one table; :func:`build_table` checks the dtypes."""
    inputs = b.inputs
    ikey = tuple(inputs) if inputs and len(next(iter(inputs.values()))) == rows else ()
    out = b.outputs
    okey: Any
    if out is None:
        okey = None
    elif isinstance(out, dict):
        okey = tuple([k for k, v in out.items() if len(v) == rows])
    else:
        okey = "" if len(out) == rows else None
    return (ikey, okey)


def schema_key(b: LogBatch, rows: int) -> tuple[Any, ...]:
    """The full key: batches with equal keys concatenate column by column without coercion
    (same names, same kind of dtype, same tensor shape)."""
    inputs = b.inputs
    if inputs and len(next(iter(inputs.values()))) == rows:
        ikey: tuple[Any, ...] = tuple([(k, *_array_key(v)) for k, v in inputs.items()])
    else:
        ikey = ()
    out = b.outputs
    okey: Any
    if out is None:
        okey = None
    elif isinstance(out, dict):
        okey = tuple([(k, *_array_key(v)) for k, v in out.items() if len(v) == rows])
    else:
        okey = _array_key(out) if len(out) == rows else None
    return (ikey, okey)


def is_log_file(name: str) -> bool:
    """A name a log file (segment or Parquet) can have; not a temporary or hidden file."""
    return name.endswith(SUFFIXES) and not name.startswith(".")


def _dictionary_columns(table: pa.Table) -> list[str]:
    """Dictionary-encode only the string columns (ids, endpoint, role, categories):
    for floats it costs twice the write time and makes files larger."""
    return [
        f.name
        for f in table.schema
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]


def _concat(arrays: list[np.ndarray], name: str) -> np.ndarray:
    """Concatenate one column of many batches; refuses mixes NumPy would coerce silently
    (numbers into strings, booleans into numbers)."""
    dtypes = set(map(_DTYPE, arrays))  # map + attrgetter: a third of a generator's cost
    if len(dtypes) == 1:
        return np.concatenate(arrays)
    if len({_KIND.get(dt.kind, dt.str) for dt in dtypes}) > 1:
        raise MixedSchemaError(f"column {name!r} mixes dtypes {sorted(map(str, dtypes))}")
    return np.concatenate(arrays)


def to_arrow(a: np.ndarray) -> pa.Array:
    """A column to Arrow; 2-D+ tensors become (nested) fixed-size lists."""
    if a.ndim <= 1:
        if a.dtype.kind == "O":
            return pa.array(a, from_pandas=True)
        return pa.array(a)
    n = a.shape[0]
    flat = pa.array(np.ascontiguousarray(a).reshape(-1))
    for size in reversed(a.shape[1:]):
        flat = pa.FixedSizeListArray.from_arrays(flat, size)
    assert len(flat) == n
    return flat


def build_table(endpoint: str, batches: Sequence[LogBatch], counts: np.ndarray) -> pa.Table:
    """One segment-layout Arrow table from batches of one :func:`group_key`; vectorised per
    column, not per row: the per-request strings become dictionaries of one entry per request
    and the rows index them, so no string is copied per row. ``counts[i]`` is the row count
    of ``batches[i]``. Raises MixedSchemaError (or NumPy's error for tensors of different
    shapes) when the batches' dtypes do not match. :func:`canonical` turns it into the
    layout readers see."""
    nb = len(batches)
    total = int(counts.sum())
    single = total == nb
    owner = np.arange(nb, dtype=np.int32)
    if not single:
        owner = np.repeat(owner, counts)
    per_request = pa.array(owner)

    def strings(values: list[Any]) -> pa.Array:
        return pa.DictionaryArray.from_arrays(per_request, pa.array(values, pa.string()))

    def same(value: str) -> pa.Array:
        return pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(total, dtype=np.int32)), pa.array([value], pa.string())
        )

    def numbers(values: list[Any], dtype: Any) -> np.ndarray:
        arr = np.asarray(values, dtype=dtype)
        return arr if single else arr[owner]

    if single:
        row_in_batch = np.zeros(total, dtype=np.int32)
    else:
        starts = np.cumsum(counts) - counts
        row_in_batch = (np.arange(total, dtype=np.int64) - np.repeat(starts, counts)).astype(
            np.int32
        )
    models = [b.model for b in batches]
    roles = [b.role for b in batches]
    errors = [b.error for b in batches]
    ts_us = np.rint(numbers([b.ts for b in batches], np.float64) * 1e6).astype(np.int64)
    columns: dict[str, pa.Array] = {
        "request_id": strings([b.request_id for b in batches]),
        ROW: pa.array(row_in_batch),
        "endpoint": same(endpoint),
        "model": same(models[0]) if models.count(models[0]) == nb else strings(models),
        "version": pa.array(numbers([b.version for b in batches], np.int64)),
        "role": same(roles[0]) if roles.count(roles[0]) == nb else strings(roles),
        "ts": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
        "latency_ms": pa.array(numbers([b.latency_ms for b in batches], np.float64)),
        "status": pa.array(numbers([b.status for b in batches], np.int32)),
        "error": _optional_strings(errors, owner),
    }
    first = batches[0]
    if first.inputs and len(next(iter(first.inputs.values()))) == counts[0]:
        for name in first.inputs:
            data = _concat([b.inputs[name] for b in batches], name)  # type: ignore[index]
            columns[INPUT_PREFIX + name] = to_arrow(data)
    out = first.outputs
    if isinstance(out, dict):
        for name, a in out.items():
            if len(a) == counts[0]:
                data = _concat([b.outputs[name] for b in batches], name)  # type: ignore[index]
                columns[OUTPUT_PREFIX + name] = to_arrow(data)
    elif out is not None and len(out) == counts[0]:
        columns[OUTPUT] = to_arrow(_concat([b.outputs for b in batches], OUTPUT))  # type: ignore[misc]
    return pa.table(columns)


def _optional_strings(values: list[str | None], owner: np.ndarray) -> pa.Array:
    """A dictionary column of per-request strings that may be None (null rows, no null in
    the dictionary: dictionaries with nulls cannot be unified)."""
    present = [v for v in values if v is not None]
    if not present:
        return pa.DictionaryArray.from_arrays(
            pa.nulls(len(owner), pa.int32()), pa.array([], pa.string())
        )
    slot = np.cumsum([v is not None for v in values], dtype=np.int32) - 1
    slot[[v is None for v in values]] = -1
    rows = slot[owner]
    indices = pa.array(rows, mask=rows < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(present, pa.string()))


def canonical(table: pa.Table, columns: Sequence[str] | None = None) -> pa.Table:
    """A table of either layout in the canonical one: dictionaries decoded, the ``id``
    column derived from ``request_id`` and ``row`` (first, as in :data:`BASE_SCHEMA`), no
    ``row`` column. ``columns``: keep only these (canonical names) when present."""
    names = table.column_names
    if ROW not in names:  # already canonical (a Parquet file)
        if columns is None:
            return table
        return table.select([c for c in columns if c in names])
    want = names if columns is None else columns
    out: dict[str, Any] = {}
    if "id" in want or columns is None:
        rid = _plain(table.column("request_id"))
        row = pc.cast(table.column(ROW), pa.string())
        out["id"] = pc.binary_join_element_wise(rid, row, "-")
    for c in want:
        if c in names and c != ROW and c not in out:
            col = table.column(c)
            out[c] = _plain(col) if pa.types.is_dictionary(col.type) else col
    return pa.table(out, metadata=table.schema.metadata)


def _plain(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.cast(col, pa.string()) if pa.types.is_dictionary(col.type) else col


# --------------------------------------------------------------------------- files


def hour_dir(root: Path, endpoint: str, hour_index: int) -> Path:
    """Folder of the hour ``hour_index`` (hours since the epoch, UTC)."""
    dt = datetime.fromtimestamp(hour_index * 3600, UTC)
    return root / endpoint / dt.strftime("%Y-%m-%d") / dt.strftime("%H")


def hour_of_dir(date_name: str, hour_name: str) -> int | None:
    """Hour index of a ``YYYY-MM-DD/HH`` folder pair, None when the names are not ours."""
    if len(date_name) != 10 or len(hour_name) != 2 or not hour_name.isdigit():
        return None
    try:
        dt = datetime.strptime(date_name, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    h = int(hour_name)
    if h > 23:
        return None
    return int(dt.timestamp()) // 3600 + h


def split_by_hour(table: pa.Table) -> list[tuple[int, pa.Table]]:
    """Split a table so each part's rows fall in one UTC hour."""
    ts = table.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
    hours = ts // US_PER_HOUR
    lo, hi = int(hours.min()), int(hours.max())
    if lo == hi:
        return [(lo, table)]
    return [(int(h), table.filter(pa.array(hours == h))) for h in np.unique(hours)]


def ts_range_ns(table: pa.Table) -> tuple[int, int]:
    mm = pc.min_max(table.column("ts"))
    lo, hi = mm["min"].cast(pa.int64()).as_py(), mm["max"].cast(pa.int64()).as_py()
    return lo * 1000, hi * 1000


def file_min_ns(name: str) -> int | None:
    """The ``<min_ts_ns>`` encoded in a file name, None for a foreign name."""
    for prefix in (PART_PREFIX, COMPACT_PREFIX):
        if name.startswith(prefix) and name.endswith(SUFFIXES):
            head = name[len(prefix) :].split("-", 1)[0]
            return int(head) if head.isdigit() else None
    return None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_tmp(
    directory: Path,
    table: pa.Table,
    *,
    prefix: str = PART_PREFIX,
    sources: Sequence[str] | None = None,
    compression: str = "zstd",
    row_group_rows: int | None = None,
) -> tuple[Path, Path]:
    """Write ``table`` to ``<name>.tmp`` in ``directory`` and fsync it; readers do not see
    it until :func:`publish`. Returns (temporary path, final path). A table in the segment
    layout (a ``row`` column, from :func:`build_table`) becomes an Arrow IPC segment, any
    other a Parquet file (``compression`` and ``row_group_rows`` apply to those)."""
    segment = ROW in table.column_names
    lo, hi = ts_range_ns(table)
    meta = dict(table.schema.metadata or {})
    meta.update(
        {
            META_FORMAT: SEGMENT_FORMAT if segment else FORMAT_VERSION,
            META_TS_MIN: str(lo),
            META_TS_MAX: str(hi),
            META_ROWS: str(table.num_rows),
        }
    )
    if sources is not None:
        meta[META_SOURCES] = json.dumps(list(sources)).encode()
    table = table.replace_schema_metadata(meta)
    suffix = SEGMENT_SUFFIX if segment else SUFFIX
    while True:
        final = directory / f"{prefix}{lo}-{file_tag()}{suffix}"
        if not final.exists():
            break
    tmp = final.with_name(final.name + TMP_SUFFIX)
    try:
        with open(tmp, "wb") as f:
            if segment:
                # one dictionary per column for the whole file (the IPC file format has no
                # dictionary replacement), then the buffers as they are
                table = table.unify_dictionaries()
                with pa.ipc.new_file(f, table.schema) as w:
                    w.write_table(table)
            else:
                pq.write_table(
                    table,
                    f,
                    compression=compression,
                    row_group_size=row_group_rows,
                    use_dictionary=_dictionary_columns(table),
                )
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, final


def publish(tmp: Path, final: Path, *, sync_dir: bool = False) -> None:
    """Make a written temporary file visible by an atomic rename (and fsync its folder)."""
    os.replace(tmp, final)
    if sync_dir:
        fsync_dir(final.parent)


def write_file(
    directory: Path,
    table: pa.Table,
    *,
    prefix: str = PART_PREFIX,
    sync_dir: bool = False,
    sources: Sequence[str] | None = None,
    compression: str = "zstd",
    row_group_rows: int | None = None,
) -> Path:
    """Write ``table`` atomically into ``directory``: ``<name>.tmp``, fsync, rename; the
    folder is fsynced too when ``sync_dir``. Returns the final path."""
    tmp, final = write_tmp(
        directory,
        table,
        prefix=prefix,
        sources=sources,
        compression=compression,
        row_group_rows=row_group_rows,
    )
    publish(tmp, final, sync_dir=sync_dir)
    return final
