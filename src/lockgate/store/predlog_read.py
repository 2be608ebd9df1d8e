"""Reading the prediction log: list the hours a window overlaps, the live files of each hour,
and read only the columns asked for.

Files are Arrow IPC segments or Parquet files (:mod:`lockgate.store.predlog_format`); both
are read in the canonical layout through :class:`LogFile`. A file that cannot be read (a
truncated write from a hard kill, a foreign file named ``*.parquet``) is skipped, logged once
and counted; it never breaks a read. Files replaced by a compacted file are ignored even
before the compactor deletes them, and a read that races with a compaction lists the hour
again, so a reader never sees a row twice or misses one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lockgate.errors import InvalidInputError, StoreError
from lockgate.store.paths import NAME_RE
from lockgate.store.predlog_format import (
    BASE_COLUMNS,
    BASE_SCHEMA,
    COMPACT_PREFIX,
    HOUR_NS,
    INPUT_PREFIX,
    META_ROWS,
    META_SOURCES,
    META_TS_MAX,
    META_TS_MIN,
    OUTPUT,
    OUTPUT_PREFIX,
    ROW,
    SEG_SUFFIX,
    SEGMENT_SUFFIX,
    canonical,
    file_min_ns,
    hour_of_dir,
    is_log_file,
)
from lockgate.store.predlog_segment import read_info, read_segment

log = logging.getLogger("lockgate.predlog")

T = TypeVar("T")
TimeLike = datetime | float | int | None
_RETRIES = 8


def to_ns(value: TimeLike, field: str) -> int | None:
    """Epoch nanoseconds of a window bound: an aware datetime (naive means UTC), or epoch
    seconds as a number."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
        return round(value * 1e9)
    raise InvalidInputError.for_field(field, "a datetime or epoch seconds", value)


def column_name(name: str) -> str:
    """``x1`` -> ``input.x1``; stored names (``ts``, ``input.x1``, ``output``) unchanged."""
    if name in BASE_COLUMNS or name == OUTPUT or name.startswith((INPUT_PREFIX, OUTPUT_PREFIX)):
        return name
    return INPUT_PREFIX + name


class SkipLog:
    """Unreadable files: each is logged once and counted once."""

    def __init__(self, on_new: Callable[[], None] | None = None) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._on_new = on_new
        self.count = 0

    def skip(self, path: Path, exc: BaseException) -> None:
        key = str(path)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            self.count += 1
        log.warning("prediction log: skipping unreadable file %s: %s", path, exc)
        if self._on_new is not None:
            self._on_new()


@dataclass(frozen=True, slots=True)
class Window:
    since: int | None  # ns, inclusive
    until: int | None  # ns, exclusive

    def overlaps(self, lo: int, hi_exclusive: int) -> bool:
        return (self.since is None or hi_exclusive > self.since) and (
            self.until is None or lo < self.until
        )

    def contains(self, lo: int, hi: int) -> bool:
        return (self.since is None or lo >= self.since) and (self.until is None or hi < self.until)

    def mask(self, ts: pa.ChunkedArray) -> pa.ChunkedArray | None:
        typ = pa.timestamp("us", tz="UTC")
        conds = []
        if self.since is not None:
            conds.append(pc.greater_equal(ts, pa.scalar(-(-self.since // 1000), typ)))
        if self.until is not None:
            conds.append(pc.less(ts, pa.scalar(-(-self.until // 1000), typ)))
        if not conds:
            return None
        return conds[0] if len(conds) == 1 else pc.and_(conds[0], conds[1])


@dataclass(frozen=True, slots=True)
class Filters:
    window: Window
    roles: frozenset[str] | None = None
    version: int | None = None

    def needed(self) -> list[str]:
        out = ["ts"]
        if self.roles is not None:
            out.append("role")
        if self.version is not None:
            out.append("version")
        return out

    def mask(self, t: pa.Table, whole_window: bool) -> pa.ChunkedArray | None:
        conds = [] if whole_window else [self.window.mask(t.column("ts"))]
        if self.roles is not None:
            conds.append(pc.is_in(t.column("role"), pa.array(sorted(self.roles), pa.string())))
        if self.version is not None:
            conds.append(pc.equal(t.column("version"), pa.scalar(self.version, pa.int64())))
        conds = [c for c in conds if c is not None]
        if not conds:
            return None
        m = conds[0]
        for c in conds[1:]:
            m = pc.and_(m, c)
        return m


def _has_files(path: Path) -> bool:
    try:
        return any(is_log_file(n) for n in os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return False


class LogFile:
    """One file of the log, a raw segment (``.seg``), an Arrow IPC segment (``.arrow``) or a
    Parquet file, read in the canonical layout. Opening reads only the header or footer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = path.name.endswith(SEG_SUFFIX)
        #: one readable unit (a flush segment), not row groups
        self.segment = self.raw or path.name.endswith(SEGMENT_SUFFIX)
        self._pf: pq.ParquetFile | None = None
        self._names: list[str]
        if self.raw:
            info = read_info(path)
            self._names = [*BASE_COLUMNS, *info.column_names]
            self.num_rows: int = info.num_rows
            self.ts_min: int | None = info.ts_min
            self.ts_max: int | None = info.ts_max
            return
        if self.segment:
            with pa.OSFile(str(path)) as f:
                rd = pa.ipc.open_file(f)
                schema = rd.schema
                rows = _meta_int(schema.metadata, META_ROWS)
                self.num_rows = rows if rows is not None else rd.count_rows()
            names = schema.names
            self._names = ["id", *[n for n in names if n != ROW]] if ROW in names else names
        else:
            self._pf = pq.ParquetFile(path)
            schema = self._pf.schema_arrow
            self.num_rows = self._pf.metadata.num_rows
            self._names = schema.names
        meta = schema.metadata
        self.ts_min = _meta_int(meta, META_TS_MIN)
        self.ts_max = _meta_int(meta, META_TS_MAX)

    @property
    def names(self) -> list[str]:
        """Canonical column names (a segment's ``id`` is derived, its ``row`` hidden)."""
        return self._names

    def units(self) -> list[tuple[int, int, int, int]]:
        """(index, rows, min ts ns, max ts ns) per readable unit: a Parquet file's row
        groups, a segment as a whole."""
        if self._pf is not None:
            return row_groups(self._pf.metadata)
        return [(0, self.num_rows, self.ts_min or 0, self.ts_max or 2**62)]

    def read(self, columns: list[str] | None, groups: list[int] | None = None) -> pa.Table:
        """``columns`` (canonical names present in the file; None: all), of the row groups
        ``groups`` (None: all; ignored for a segment, which is one unit)."""
        if self._pf is not None:
            if groups is None:
                return self._pf.read(columns=columns, use_threads=False)
            return self._pf.read_row_groups(groups, columns=columns, use_threads=False)
        if self.raw:
            return read_segment(self.path, columns)
        with pa.OSFile(str(self.path)) as f:
            t = pa.ipc.open_file(f).read_all()
        return canonical(t, columns)


def _meta_int(meta: dict[bytes, bytes] | None, key: bytes) -> int | None:
    raw = (meta or {}).get(key)
    return int(raw) if raw is not None else None


class Reader:
    """Read-side of a prediction log folder; safe to use from any thread."""

    def __init__(self, root: Path, skips: SkipLog) -> None:
        self.root = root
        self.skips = skips
        self._sources: dict[str, frozenset[str]] = {}

    # ----------------------------------------------------------------- listing

    def endpoints(self) -> list[str]:
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        return [
            e.name
            for e in entries
            if NAME_RE.fullmatch(e.name) and e.is_dir() and self._has_files(Path(e.path))
        ]

    def _has_files(self, ep_dir: Path) -> bool:
        return any(self.hours(ep_dir.name, Window(None, None), newest_first=True, probe=True))

    def hours(
        self, endpoint: str, window: Window, *, newest_first: bool = False, probe: bool = False
    ) -> Iterable[tuple[int, Path]]:
        """Hour folders overlapping the window, in time order (lazily)."""
        ep_dir = self.root / endpoint
        try:
            dates = sorted((e.name for e in os.scandir(ep_dir) if e.is_dir()), reverse=newest_first)
        except (FileNotFoundError, NotADirectoryError):
            return
        for d in dates:
            first = hour_of_dir(d, "00")
            if first is None or not window.overlaps(first * HOUR_NS, (first + 24) * HOUR_NS):
                continue
            try:
                hours = sorted(os.listdir(ep_dir / d), reverse=newest_first)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for h in hours:
                idx = hour_of_dir(d, h)
                if idx is None or not window.overlaps(idx * HOUR_NS, (idx + 1) * HOUR_NS):
                    continue
                path = ep_dir / d / h
                if probe and not _has_files(path):
                    continue
                yield idx, path

    def compact_sources(self, path: Path) -> frozenset[str]:
        """Names a compacted file replaces (from its footer; cached, files are immutable)."""
        key = str(path)
        cached = self._sources.get(key)
        if cached is not None:
            return cached
        meta = pq.read_schema(path).metadata or {}
        sources = frozenset(json.loads(meta.get(META_SOURCES, b"[]")))
        if len(self._sources) > 65_536:
            self._sources.clear()
        self._sources[key] = sources
        return sources

    def live_files(self, hour_dir: Path) -> list[Path]:
        """Readable-looking files of an hour, minus those a compacted file replaced."""
        try:
            names = [n for n in os.listdir(hour_dir) if is_log_file(n)]
        except FileNotFoundError:
            return []
        superseded: set[str] = set()
        for n in names:
            if n.startswith(COMPACT_PREFIX):
                try:
                    superseded |= self.compact_sources(hour_dir / n)
                except FileNotFoundError:
                    raise
                except (pa.ArrowException, OSError, ValueError) as exc:
                    self.skips.skip(hour_dir / n, exc)
                    superseded.add(n)
        return [hour_dir / n for n in sorted(names) if n not in superseded]

    def per_hour(self, hour_dir: Path, fn: Callable[[Path], T | None]) -> list[T]:
        """``fn`` over the live files of an hour; lists again if a compaction moved them."""
        for _ in range(_RETRIES):
            out: list[T] = []
            try:
                for path in self.live_files(hour_dir):
                    try:
                        r = fn(path)
                    except FileNotFoundError:
                        raise
                    except (pa.ArrowException, OSError) as exc:
                        self.skips.skip(path, exc)
                        continue
                    if r is not None:
                        out.append(r)
                return out
            except FileNotFoundError:
                continue
        raise StoreError(f"prediction log: files of {hour_dir} kept moving; try again")

    # ----------------------------------------------------------------- reading

    def _read_file(
        self,
        path: Path,
        columns: list[str] | None,
        f: Filters,
        keep_missing: bool,
        groups: list[int] | None = None,
    ) -> pa.Table | None:
        """The rows of one file that pass ``f``; only ``columns`` (plus those the filters
        need), only the row groups whose times overlap the window."""
        min_ns = file_min_ns(path.name)
        w = f.window
        if min_ns is not None and w.until is not None and min_ns >= w.until:
            return None
        lf = LogFile(path)
        lo, hi = lf.ts_min, lf.ts_max
        whole = False
        if lo is not None and hi is not None:
            if not w.overlaps(lo, hi + 1):
                return None
            whole = w.contains(lo, hi)
        names = lf.names
        if columns is None:
            cols = None
        else:
            want = dict.fromkeys([*f.needed(), *columns])
            cols = [c for c in want if c in names]
        if groups is None and not whole and not lf.segment and lf.num_rows:
            units = lf.units()
            if len(units) > 1:
                groups = [i for i, _, glo, ghi in units if w.overlaps(glo, ghi + 1)]
        if groups is not None and not groups:
            return None
        t = lf.read(cols, groups)
        m = f.mask(t, whole)
        if m is not None:
            t = t.filter(m)
        if keep_missing and columns is not None:
            for c in columns:
                if c not in names:
                    t = t.append_column(c, pa.nulls(t.num_rows))
        return t

    def read_tables(
        self, endpoint: str, f: Filters, columns: list[str] | None, keep_missing: bool = False
    ) -> list[pa.Table]:
        tables: list[pa.Table] = []
        for _, hdir in self.hours(endpoint, f.window):
            tables.extend(
                self.per_hour(hdir, lambda p: self._read_file(p, columns, f, keep_missing))
            )
        return tables

    def read_table(self, endpoint: str, f: Filters, columns: list[str] | None) -> pa.Table:
        """Rows of the window, ts order; ``columns`` None means all."""
        want = None if columns is None else [column_name(c) for c in columns]
        tables = self.read_tables(endpoint, f, want)
        t = concat(tables)
        if t is None:
            t = BASE_SCHEMA.empty_table()
        elif t.num_rows > 1:
            t = t.take(pc.sort_indices(t.column("ts")))
        if want is None:
            return order_columns(t)
        present = set(t.column_names)
        for c in want:
            if c not in present:
                if t.num_rows and c not in BASE_COLUMNS:
                    raise InvalidInputError.for_field(
                        "columns", f"stored columns ({', '.join(t.column_names)})", c
                    )
                typ = BASE_SCHEMA.field(c).type if c in BASE_COLUMNS else pa.null()
                t = t.append_column(c, pa.nulls(t.num_rows, typ))
        return t.select(want)

    def read_column(self, endpoint: str, column: str, f: Filters) -> np.ndarray:
        name = column_name(column)
        tables = self.read_tables(endpoint, f, [name], keep_missing=True)
        t = concat([tb.select(list(dict.fromkeys(["ts", name]))) for tb in tables])
        if t is None or t.num_rows == 0:
            return np.array([], dtype=np.float64)
        if not any(
            name in tb.schema.names and tb.schema.field(name).type != pa.null() for tb in tables
        ):
            raise InvalidInputError.for_field(
                "column", f"a column stored for endpoint {endpoint!r}", column
            )
        t = t.take(pc.sort_indices(t.column("ts")))
        return to_numpy(t.column(name))

    def count(self, endpoint: str) -> int:
        total = 0
        for _, hdir in self.hours(endpoint, Window(None, None)):
            total += sum(self.per_hour(hdir, lambda p: LogFile(p).num_rows))
        return total

    def tail(self, endpoint: str, n: int) -> pa.Table:
        """The last ``n`` rows by time, reading only the newest files."""
        chosen: list[pa.Table] = []
        have = 0
        for _, hdir in self.hours(endpoint, Window(None, None), newest_first=True):
            if have >= n:
                break
            tables = self._tail_hour(hdir, n - have)
            chosen.extend(tables)
            have += sum(t.num_rows for t in tables)
        t = concat(chosen)
        if t is None:
            return BASE_SCHEMA.empty_table()
        t = t.take(pc.sort_indices(t.column("ts")))
        return order_columns(t.slice(max(0, t.num_rows - n)))

    def _tail_hour(self, hdir: Path, need: int) -> list[pa.Table]:
        """Enough of an hour to hold its last ``need`` rows, by row group (a compacted file
        has many): groups by their newest row until ``need`` rows, plus every group that may
        hold a row newer than the oldest row of those."""
        everything = Filters(Window(None, None))

        def units(p: Path) -> list[tuple[Path, int, int, int, int]]:
            return [(p, *g) for g in LogFile(p).units()]

        for _ in range(_RETRIES):
            found = [u for us in self.per_hour(hdir, units) for u in us]
            found.sort(key=lambda u: -u[4])
            picked: list[tuple[Path, int, int, int, int]] = []
            rows = 0
            for u in found:
                if rows >= need:
                    break
                picked.append(u)
                rows += u[2]
            if picked:
                floor = min(u[3] for u in picked)
                picked += [u for u in found[len(picked) :] if u[4] >= floor]
            by_file: dict[Path, list[int]] = {}
            for u in picked:
                by_file.setdefault(u[0], []).append(u[1])
            tables: list[pa.Table] = []
            try:
                for path, groups in by_file.items():
                    try:
                        t = self._read_file(path, None, everything, False, sorted(groups))
                    except FileNotFoundError:
                        raise
                    except (pa.ArrowException, OSError) as exc:
                        self.skips.skip(path, exc)
                        continue
                    if t is not None:
                        tables.append(t)
                return tables
            except FileNotFoundError:
                continue
        raise StoreError(f"prediction log: files of {hdir} kept moving; try again")


def row_groups(md: pq.FileMetaData) -> list[tuple[int, int, int, int]]:
    """(index, rows, min ts ns, max ts ns) of each row group of a file, from the ``ts``
    statistics (the file's bounds when a group has none)."""
    meta = md.metadata or {}
    flo = _meta_int(meta, META_TS_MIN)
    fhi = _meta_int(meta, META_TS_MAX)
    lo0 = flo if flo is not None else 0
    hi0 = fhi if fhi is not None else 2**62
    ts_col = next((j for j in range(md.num_columns) if md.schema.column(j).path == "ts"), None)
    out = []
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        lo, hi = lo0, hi0
        if ts_col is not None and md.num_row_groups > 1:
            st = rg.column(ts_col).statistics
            if st is not None and st.has_min_max:
                lo = to_ns(st.min, "ts") or lo0
                hi = to_ns(st.max, "ts") or hi0
        out.append((i, rg.num_rows, lo, hi))
    return out


def concat(tables: list[pa.Table]) -> pa.Table | None:
    """Concatenate tables whose schemas differ across versions: missing columns become
    nulls, numbers widen; a column whose types cannot be merged (a label in one version, a
    probability vector in the next) is returned as text (JSON for nested values)."""
    tables = [t for t in tables if t.num_columns]
    if not tables:
        return None
    tables = [t for t in tables if t.num_rows] or tables[:1]
    tables = [t.replace_schema_metadata(None) for t in tables]
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    types: dict[str, set[pa.DataType]] = {}
    for t in tables:
        for fld in t.schema:
            if fld.type != pa.null():
                types.setdefault(fld.name, set()).add(fld.type)
    targets: dict[str, pa.DataType | None] = {}  # None: no common type, read as text
    for c, ts in types.items():
        if len(ts) > 1:
            try:
                schemas = [pa.schema([pa.field(c, typ)]) for typ in ts]
                targets[c] = pa.unify_schemas(schemas, promote_options="permissive").field(c).type
            except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
                targets[c] = None
    while True:  # a widening that would lose values (int64 above 2**53 to float64): text
        fixed = []
        try:
            for t in tables:
                for c in targets.keys() & set(t.column_names):
                    target = targets[c]
                    col = t.column(c)
                    try:
                        new = _as_text(col) if target is None else col.cast(target)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                        targets[c] = None
                        raise
                    t = t.set_column(t.schema.get_field_index(c), c, new)
                fixed.append(t)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        return pa.concat_tables(fixed, promote_options="permissive")


def _as_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(col.type):
        return col
    if not pa.types.is_nested(col.type):
        try:
            return pc.cast(col, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    text = [None if v is None else json.dumps(v, default=str) for v in col.to_pylist()]
    return pa.chunked_array([pa.array(text, pa.string())])


def order_columns(t: pa.Table) -> pa.Table:
    """Base columns in their documented order, then inputs, then outputs."""
    names = t.column_names
    base = [c for c in BASE_COLUMNS if c in names]
    inputs = [c for c in names if c.startswith(INPUT_PREFIX)]
    outputs = [c for c in names if c == OUTPUT or c.startswith(OUTPUT_PREFIX)]
    rest = [c for c in names if c not in base and c not in inputs and c not in outputs]
    return t.select(base + inputs + outputs + rest)


def to_numpy(col: pa.ChunkedArray) -> np.ndarray:
    """A column as NumPy: numbers (missing -> NaN), strings as objects, fixed-size tensors
    without missing values as an (n, ...) array."""
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    typ = arr.type
    if pa.types.is_fixed_size_list(typ) and arr.null_count == 0:
        shape = []
        values: pa.Array = arr
        while pa.types.is_fixed_size_list(values.type) and values.null_count == 0:
            shape.append(values.type.list_size)
            values = values.flatten()
        if values.null_count == 0:
            flat = np.asarray(values.to_numpy(zero_copy_only=False))
            return flat.reshape(len(arr), *shape)
    if pa.types.is_null(typ):
        return np.full(len(arr), np.nan)
    return np.asarray(arr.to_numpy(zero_copy_only=False))
