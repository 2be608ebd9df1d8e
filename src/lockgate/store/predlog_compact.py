"""Compaction of the prediction log: the many small files a closed hour collects (one Arrow
IPC segment per flush) are merged into few sorted, compressed Parquet files, so a day-long
window reads dozens of files, not thousands.

Protocol, safe with concurrent readers and with several processes on one folder:

1. take an exclusive ``flock`` on ``<hour>/.compact.lock`` (skip the hour when it is held);
2. write ``compact-<min_ts_ns>-<pid>-<seq>.parquet`` (tmp, fsync, rename, fsync folder) whose
   footer lists the files it replaces (``lockgate.compacted_from``);
3. delete those files.

Readers ignore files a compacted file lists, so between 2 and 3 nothing is read twice, and a
reader that finds a listed file gone lists the hour again. A crash between 2 and 3 leaves
replaced files behind; the next compaction of the hour deletes them.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from lockgate.store.predlog_format import (
    COMPACT_PREFIX,
    PART_PREFIX,
    SUFFIX,
    TMP_SUFFIX,
    fsync_dir,
    is_log_file,
    write_file,
)
from lockgate.store.predlog_read import LogFile, Reader

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no compaction
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("lockgate.predlog")

#: rows per row group of a compacted file: sorted by time, so window reads and ``tail`` read
#: only the groups they need
ROW_GROUP_ROWS = 65_536
#: files with at least this many rows are left as they are: a flush that large (heavy
#: traffic: 100-row requests at 2,000/s make 100,000-row flushes) is already as big as a
#: compacted file's row group, so merging it would save a window read little, and rewriting
#: costs about 1.3 us of CPU per row (2 million rows of 10 features: 2.7 s), a third of
#: what serving those rows cost
SMALL_FILE_ROWS = ROW_GROUP_ROWS
#: a compacted file holds at most about this many rows (bounds the memory of a compaction)
MAX_COMPACT_ROWS = 2_000_000
#: an hour still being written is compacted once it holds this many flush files
OPEN_HOUR_MIN_FILES = 32
#: ``.tmp`` files older than this are leftovers of a killed writer
STALE_TMP_SECONDS = 3_600.0


def compact_hour(
    reader: Reader,
    hour_dir: Path,
    *,
    small_file_rows: int = SMALL_FILE_ROWS,
    max_rows: int = MAX_COMPACT_ROWS,
    compression: str = "zstd",
    open_hour: bool = False,
) -> int:
    """Merge the small files of one hour folder. Returns how many files were replaced.

    ``open_hour``: the hour still receives records; merge only flush files (``part-*``),
    and only when there are at least :data:`OPEN_HOUR_MIN_FILES`, so each record is
    rewritten once before its hour closes, not at every pass."""
    if fcntl is None:
        return 0
    try:
        names = os.listdir(hour_dir)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    if open_hour:
        if sum(n.startswith(PART_PREFIX) and is_log_file(n) for n in names) < (OPEN_HOUR_MIN_FILES):
            return 0
    elif sum(is_log_file(n) for n in names) < 2 and not any(n.endswith(TMP_SUFFIX) for n in names):
        return 0  # nothing to merge, nothing to clean: do not even take the lock
    fd = os.open(hour_dir / ".compact.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        _remove_leftovers(reader, hour_dir)
        live = reader.live_files(hour_dir)
        if open_hour:
            live = [p for p in live if p.name.startswith(PART_PREFIX)]
        small: list[tuple[Path, int]] = []
        for path in live:
            try:
                rows = LogFile(path).num_rows
            except (pa.ArrowException, OSError) as exc:
                reader.skips.skip(path, exc)
                continue
            if rows < small_file_rows:
                small.append((path, rows))
        groups: list[list[Path]] = [[]]
        size = 0
        for path, rows in small:
            if groups[-1] and size + rows > max_rows:
                groups.append([])
                size = 0
            groups[-1].append(path)
            size += rows
        return sum(_merge(reader, hour_dir, g, compression) for g in groups if len(g) > 1)
    finally:
        os.close(fd)


def _merge(reader: Reader, hour_dir: Path, paths: list[Path], compression: str) -> int:
    tables: list[pa.Table] = []
    sources: list[str] = []
    for path in paths:
        try:
            t = LogFile(path).read(None)
        except (pa.ArrowException, OSError) as exc:
            reader.skips.skip(path, exc)
            continue
        tables.append(t.replace_schema_metadata(None))
        sources.append(path.name)
    if len(tables) < 2:
        return 0
    try:
        merged = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        log.info("prediction log: not compacting %s: %s", hour_dir, exc)
        return 0
    merged = merged.take(pc.sort_indices(merged.column("ts")))
    write_file(
        hour_dir,
        merged,
        prefix=COMPACT_PREFIX,
        sync_dir=True,
        sources=sources,
        compression=compression,
        row_group_rows=ROW_GROUP_ROWS,
    )
    for name in sources:
        (hour_dir / name).unlink(missing_ok=True)
    fsync_dir(hour_dir)
    return len(sources)


def _remove_leftovers(reader: Reader, hour_dir: Path) -> None:
    """Delete files a valid compacted file already replaced, and stale temporary files."""
    names = os.listdir(hour_dir)
    present = set(names)
    now = time.time()
    removed = False
    for n in names:
        path = hour_dir / n
        if n.startswith(COMPACT_PREFIX) and n.endswith(SUFFIX):
            try:
                sources = reader.compact_sources(path)
            except (pa.ArrowException, OSError, ValueError):
                continue
            for s in sources & present:
                (hour_dir / s).unlink(missing_ok=True)
                removed = True
        elif n.endswith(TMP_SUFFIX):
            try:
                if now - path.stat().st_mtime > STALE_TMP_SECONDS:
                    path.unlink(missing_ok=True)
                    removed = True
            except FileNotFoundError:
                continue
    if removed:
        fsync_dir(hour_dir)
