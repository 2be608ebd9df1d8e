"""Raw columnar segments: the prediction log's flush file for the serving hot path.

A flush of the columnar appender (:mod:`lockgate.store.predlog_columns`) is written as one
``part-<min_ts_ns>-<pid>-<seq>.seg`` file straight from its NumPy buffers: one ``writev``
call (which runs without the GIL) after a small JSON header, no Arrow or Parquet encoding on
the serving process. Readers turn a segment into the canonical Arrow layout
(:func:`read_segment`); the compactor rewrites segments into Parquet.

Layout (little-endian)::

    b"LGSEG\\x00\\x01\\n"            8 bytes of magic (format 1)
    u32 header length H
    H bytes of header JSON         {"endpoint", "model", "version", "role", "requests",
                                    "rows", "ts_min_ns", "ts_max_ns", "size",
                                    "per_request": [buffer...], "per_row": [buffer...]}
    the per-request buffers, each 64-byte aligned, then the per-row buffers, each aligned
    to 64 bytes, or to 4096 (and padded with zeros to it) in a segment written with O_DIRECT

A buffer is ``{"name", "dtype" (NumPy str), "shape", "offset" (from the file start),
"nbytes"}``. Per-request buffers (one value per request): ``request_id.offsets`` (int32,
requests + 1) and ``request_id.data`` (UTF-8), ``ts`` (int64 microseconds), ``latency_ms``
(float64), ``status`` (int32), ``rows`` (int32, rows of each request). Per-row buffers are the
record's ``input.<name>`` and ``output``/``output.<name>`` columns, ``(rows, ...)`` in shape.
Row ``i`` of request ``r`` has the id ``<request_id>-<i>``. ``size`` is the file length: a
file of any other length is corrupt (files appear only by atomic rename after fsync, so this
catches damage, not torn writes).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lockgate.store.predlog_format import US_PER_HOUR, to_arrow

MAGIC = b"LGSEG\x00\x01\n"
_ALIGN = 64
#: file block: per-row buffers of a direct write start and end on it (O_DIRECT's unit)
BLOCK = 4096
#: segments at least this large are written with O_DIRECT where the file system allows it
DIRECT_MIN_BYTES = 256 * 1024
_IOV_MAX = 512
#: dtype kinds a segment stores: booleans and numbers (strings and objects go through Arrow)
RAW_KINDS = frozenset("biuf")
_O_DIRECT = getattr(os, "O_DIRECT", 0)
#: name of the per-row buffer that holds several input columns side by side
INPUTS = "inputs"


class SegmentError(pa.ArrowInvalid):
    """A ``.seg`` file that is not a valid segment (readers skip and count it)."""


def _round_up(n: int, to: int) -> int:
    return n + (-n % to)


def aligned_empty(rows: int, row_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised ``(rows, *row_shape)`` array whose data starts on a :data:`BLOCK`
    boundary and whose memory extends to the next boundary (so a direct write of its first
    ``k`` rows can be rounded up to whole blocks without reading past the allocation)."""
    nbytes = _round_up(
        max(1, rows * dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))), BLOCK
    )
    raw = np.empty(nbytes + BLOCK, dtype=np.uint8)
    off = -raw.ctypes.data % BLOCK
    block = raw[off : off + nbytes]
    n = rows * dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
    return block[:n].view(dtype).reshape((rows, *row_shape))


def _block_view(a: np.ndarray) -> memoryview | None:
    """The bytes of ``a`` (leading rows of an :func:`aligned_empty` array) rounded up to
    whole blocks, with the bytes past its end zeroed so that no stale memory reaches the
    file; None when ``a`` is not laid out for a direct write."""
    owner = a.base  # NumPy points a view's base at the array that owns the memory
    if (
        not isinstance(owner, np.ndarray)
        or owner.base is not None
        or owner.dtype != np.uint8
        or owner.ndim != 1
        or not a.flags.c_contiguous
        or a.ctypes.data % BLOCK
    ):
        return None
    start = a.ctypes.data - owner.ctypes.data
    end = start + _round_up(a.nbytes, BLOCK)
    if start < 0 or end > owner.nbytes:
        return None
    owner[start + a.nbytes : end] = 0
    return memoryview(owner[start:end])


@dataclass(slots=True)
class SegmentData:
    """What one segment holds: the appender's buffers, trimmed to the rows they hold."""

    endpoint: str
    model: str
    version: int
    role: str
    request_ids: list[str]
    ts: np.ndarray  # float64 epoch seconds, per request
    latency_ms: np.ndarray  # float64, per request
    status: np.ndarray  # int32, per request
    rows: np.ndarray  # int32, per request
    columns: dict[str, np.ndarray]  # buffer name -> (rows, ...) per-row values
    #: buffers holding several columns side by side: name -> the columns' canonical names
    groups: dict[str, list[str]] = field(default_factory=dict)
    #: ``rows.sum()`` when the maker knows it (-1: not known); the sum of a large array
    #: releases the GIL, which a background thread then waits to take back
    rows_total: int = -1

    @property
    def num_rows(self) -> int:
        if self.rows_total < 0:
            self.rows_total = int(self.rows.sum())
        return self.rows_total

    @property
    def nbytes(self) -> int:
        """Bytes of the per-row buffers (most of the segment)."""
        return sum(a.nbytes for a in self.columns.values())

    def split_by_hour(self) -> list[tuple[int, SegmentData]]:
        """One part per UTC hour its requests fall in (a flush can straddle an hour)."""
        ts_us = np.rint(self.ts * 1e6).astype(np.int64)
        hours = ts_us // US_PER_HOUR
        lo, hi = int(hours.min()), int(hours.max())
        if lo == hi:
            return [(lo, self)]
        parts = []
        for h in np.unique(hours):
            keep = hours == h
            row_keep = np.repeat(keep, self.rows)
            parts.append(
                (
                    int(h),
                    SegmentData(
                        self.endpoint,
                        self.model,
                        self.version,
                        self.role,
                        [r for r, k in zip(self.request_ids, keep.tolist(), strict=True) if k],
                        self.ts[keep],
                        self.latency_ms[keep],
                        self.status[keep],
                        self.rows[keep],
                        {k: v[row_keep] for k, v in self.columns.items()},
                        self.groups,
                    ),
                )
            )
        return parts


def _strings(values: list[str]) -> tuple[np.ndarray, bytes]:
    """int32 offsets and UTF-8 data of a list of strings (Arrow's string layout)."""
    joined = "".join(values)
    if joined.isascii():
        data = joined.encode("ascii")
        lengths = np.fromiter(map(len, values), np.int64, len(values))
    else:
        encoded = [v.encode("utf-8") for v in values]
        data = b"".join(encoded)
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
    if len(data) >= 2**31:
        raise ValueError("request ids of one segment exceed 2 GiB")
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return offsets, data


@dataclass(slots=True)
class Encoded:
    """A segment ready to write: ``head`` (magic, header, per-request buffers) then the
    per-row buffers, each starting at its offset; ``size`` bytes in all. ``direct``: every
    piece is block-aligned in memory and in length (an O_DIRECT write can take it).
    ``ts_min_ns``: the earliest record's time, as the header has it."""

    head: memoryview
    rows: list[memoryview]
    size: int
    direct: bool
    ts_min_ns: int

    def iov(self) -> list[memoryview]:
        return [self.head, *self.rows]


def encode(seg: SegmentData, *, direct: bool = False) -> Encoded:
    """Lay a segment out. With ``direct``, per-row buffers start on :data:`BLOCK` boundaries
    and are written from the appender's own memory, padded with zeros to whole blocks
    (falls back to the compact layout when a buffer is not laid out for it)."""
    offsets, data = _strings(seg.request_ids)
    ts_us = np.rint(seg.ts * 1e6).astype(np.int64)
    per_request: list[tuple[str, np.ndarray]] = [
        ("request_id.offsets", offsets),
        ("request_id.data", np.frombuffer(data, dtype=np.uint8)),
        ("ts", ts_us),
        ("latency_ms", np.ascontiguousarray(seg.latency_ms, dtype="<f8")),
        ("status", np.ascontiguousarray(seg.status, dtype="<i4")),
        ("rows", np.ascontiguousarray(seg.rows, dtype="<i4")),
    ]
    per_row = [(name, np.ascontiguousarray(a)) for name, a in seg.columns.items()]
    blocks: list[memoryview] = []
    if direct:
        for _, a in per_row:
            view = _block_view(a)
            if view is None:
                direct = False
                break
            blocks.append(view)
    align = BLOCK if direct else _ALIGN
    ts_min_ns = int(ts_us.min()) * 1000
    header: dict[str, Any] = {
        "endpoint": seg.endpoint,
        "model": seg.model,
        "version": seg.version,
        "role": seg.role,
        "requests": len(seg.request_ids),
        "rows": int(seg.rows.sum()),
        "ts_min_ns": ts_min_ns,
        "ts_max_ns": int(ts_us.max()) * 1000,
    }
    hlen = 0
    while True:  # offsets depend on the header's length, which depends on the offsets
        pos = _round_up(len(MAGIC) + 4 + hlen, _ALIGN)
        req_specs, row_specs = [], []
        for name, buf in per_request:
            req_specs.append(_spec(name, buf, pos))
            pos = _round_up(pos + buf.nbytes, _ALIGN)
        head_len = _round_up(pos, align)
        pos = head_len
        for name, arr in per_row:
            row_specs.append(_spec(name, arr, pos))
            if name in seg.groups:
                row_specs[-1]["columns"] = seg.groups[name]
            pos = _round_up(pos + arr.nbytes, align)
        header.update(per_request=req_specs, per_row=row_specs, size=pos)
        raw = json.dumps(header, separators=(",", ":")).encode()
        if len(raw) <= hlen:
            raw += b" " * (hlen - len(raw))  # JSON allows trailing blanks
            break
        hlen = len(raw)
    head = (
        aligned_empty(head_len, (), np.dtype(np.uint8)) if direct else np.empty(head_len, np.uint8)
    )
    head[:] = 0
    intro = MAGIC + struct.pack("<I", len(raw)) + raw
    head[: len(intro)] = np.frombuffer(intro, dtype=np.uint8)
    for (_, buf), spec in zip(per_request, req_specs, strict=True):
        head[spec["offset"] : spec["offset"] + buf.nbytes] = buf.reshape(-1).view(np.uint8)
    if direct:
        return Encoded(memoryview(head), blocks, pos, True, ts_min_ns)
    views: list[memoryview] = []
    for (_, arr), spec in zip(per_row, row_specs, strict=True):
        views.append(memoryview(arr.reshape(-1).view(np.uint8)))
        pad = _round_up(spec["offset"] + arr.nbytes, align) - spec["offset"] - arr.nbytes
        if pad:
            views.append(memoryview(bytes(pad)))
    return Encoded(memoryview(head), views, pos, False, ts_min_ns)


def _spec(name: str, buf: np.ndarray, offset: int) -> dict[str, Any]:
    return {
        "name": name,
        "dtype": buf.dtype.str,
        "shape": list(buf.shape),
        "offset": offset,
        "nbytes": int(buf.nbytes),
    }


class DirectIO:
    """Whether O_DIRECT works in a folder tree (learnt on first use, per device)."""

    def __init__(self) -> None:
        self._ok: dict[int, bool] = {}

    def usable(self, directory: Path) -> bool:
        if not _O_DIRECT:
            return False
        try:
            dev = os.stat(directory).st_dev
        except OSError:
            return False
        return self._ok.get(dev, True)

    def refuse(self, directory: Path) -> None:
        with contextlib.suppress(OSError):
            self._ok[os.stat(directory).st_dev] = False


def lay_out(seg: SegmentData, directory: Path, direct: DirectIO | None = None) -> Encoded:
    """:func:`encode` ``seg`` for a file in ``directory``: block-aligned for O_DIRECT when
    the segment is large enough and the folder's file system takes it, compact otherwise.
    CPU only (one ``stat``): the part of a write that needs the GIL."""
    use_direct = (
        direct is not None
        and seg.num_rows
        and seg.nbytes >= DIRECT_MIN_BYTES
        and direct.usable(directory)
    )
    return encode(seg, direct=bool(use_direct))


def write_segment(
    path: Path,
    seg: SegmentData,
    *,
    direct: DirectIO | None = None,
    encoded: Encoded | None = None,
    fsync: bool = True,
) -> None:
    """Write ``seg`` to ``path`` (a temporary name) and fsync it. Large segments go with
    O_DIRECT where the file system takes it: the buffers move to the disk without a copy
    into the page cache, which is most of the CPU a buffered write costs; the rest is one
    ``writev`` per 512 buffers, without the GIL. ``encoded``: ``seg`` as :func:`lay_out`
    laid it out already. Without ``fsync`` the data may still be in the page cache when
    this returns (a process that dies keeps it; a machine that does may not)."""
    enc = encoded if encoded is not None else lay_out(seg, path.parent, direct)
    if enc.direct:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_DIRECT, 0o644)
            try:
                _write_all(fd, enc, fsync)
            finally:
                os.close(fd)
            return
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            if direct is not None:  # this file system takes no O_DIRECT: buffered below
                direct.refuse(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, enc, fsync)
    finally:
        os.close(fd)


#: ``pwritev``'s flag that makes one write durable as ``fdatasync`` after it would (Linux 4.7+)
_RWF_DSYNC = getattr(os, "RWF_DSYNC", None) if hasattr(os, "pwritev") else None
#: whether the running kernel and file systems took :data:`_RWF_DSYNC` (cleared on refusal)
_dsync_ok = [_RWF_DSYNC is not None]


def _write_dsync(fd: int, chunk: list[Any], want: int) -> bool:
    """Write a whole segment and make it durable in one system call (``pwritev`` with
    ``RWF_DSYNC``); False, having written nothing, where that is not available. One call
    instead of ``writev`` and ``fsync`` matters to the serving process: the writer thread
    gives the GIL up for each system call and waits up to the switch interval (5 ms) to get
    it back, while the event loop wakes it at every release (docs/performance.md)."""
    if not _dsync_ok[0]:
        return False
    try:
        n = os.pwritev(fd, chunk, 0, _RWF_DSYNC)  # type: ignore[arg-type]
    except OSError as exc:
        # EINVAL is not a refusal of the flag (the kernel says EOPNOTSUPP for that, glibc
        # ENOSYS without pwritev2): it is a file system refusing O_DIRECT, which the caller
        # handles
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        _dsync_ok[0] = False  # an old kernel: writev and fsync from now on
        return False
    if n < want:  # a short write (rare): the rest, then fsync
        _write_rest(fd, chunk, n, 0)
        os.fsync(fd)
    return True


def _write_rest(fd: int, chunk: list[Any], n: int, offset: int) -> None:
    """After a short write of ``n`` bytes of ``chunk`` at ``offset``: write the rest."""
    rest = b"".join(bytes(c) for c in chunk)[n:]
    os.lseek(fd, offset + n, os.SEEK_SET)
    while rest:
        rest = rest[os.write(fd, rest) :]


def _write_all(fd: int, enc: Encoded, fsync: bool = True) -> None:
    iov = enc.iov()
    total = sum(map(len, iov))
    if total != enc.size:
        raise AssertionError(f"segment size {total} != {enc.size}")
    if fsync and len(iov) <= _IOV_MAX and _write_dsync(fd, iov, total):
        return
    written = 0
    while iov:
        chunk, iov = iov[:_IOV_MAX], iov[_IOV_MAX:]
        want = sum(map(len, chunk))
        n = os.writev(fd, chunk)
        if n < want:  # a short write (rare): the rest of this chunk
            _write_rest(fd, chunk, n, written)
        written += want
    if fsync:
        os.fsync(fd)


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A segment's header: enough to count rows and skip by time without reading data."""

    header: dict[str, Any]

    @property
    def num_rows(self) -> int:
        return int(self.header["rows"])

    @property
    def ts_min(self) -> int:
        return int(self.header["ts_min_ns"])

    @property
    def ts_max(self) -> int:
        return int(self.header["ts_max_ns"])

    @property
    def column_names(self) -> list[str]:
        """Canonical names of the per-row columns, in file order."""
        names: list[str] = []
        for b in self.header["per_row"]:
            names.extend(b.get("columns") or [b["name"]])
        return names


def _parse_header(raw: bytes, file_size: int) -> dict[str, Any]:
    if raw[: len(MAGIC)] != MAGIC:
        raise SegmentError("not a Lockgate segment (bad magic)")
    if len(raw) < len(MAGIC) + 4:
        raise SegmentError("segment header is truncated")
    (hlen,) = struct.unpack_from("<I", raw, len(MAGIC))
    start = len(MAGIC) + 4
    if start + hlen > len(raw):
        raise SegmentError("segment header is truncated")
    try:
        header = json.loads(raw[start : start + hlen])
        size = header["size"]
        int(header["requests"]), int(header["rows"]), int(header["ts_min_ns"])
        int(header["ts_max_ns"])
        for key in ("per_request", "per_row"):
            specs = header[key]
            if not isinstance(specs, list) or not all(
                isinstance(b, dict) and isinstance(b.get("name"), str) for b in specs
            ):
                raise TypeError(f"{key!r} is not a list of buffers")
    except (ValueError, KeyError, TypeError) as exc:
        raise SegmentError(f"segment header is invalid: {exc}") from None
    if size != file_size:
        raise SegmentError(f"segment is {file_size} bytes, its header says {size}")
    return header


def read_info(path: Path) -> SegmentInfo:
    """The header of a segment (reads the first few kilobytes only)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        raw = f.read(65_536)
        if len(raw) >= len(MAGIC) + 4:
            (hlen,) = struct.unpack_from("<I", raw, len(MAGIC))
            if len(MAGIC) + 4 + hlen > len(raw):
                raw += f.read(len(MAGIC) + 4 + hlen - len(raw))
    return SegmentInfo(_parse_header(raw, size))


def _buffer(raw: bytes, spec: dict[str, Any]) -> np.ndarray:
    try:
        dtype = np.dtype(spec["dtype"])
        shape = tuple(spec["shape"])
        off, nbytes = int(spec["offset"]), int(spec["nbytes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SegmentError(f"segment buffer spec is invalid: {exc}") from None
    if dtype.kind not in RAW_KINDS and spec["name"] != "request_id.data":
        raise SegmentError(f"segment buffer {spec['name']!r} has dtype {dtype}")
    if nbytes != dtype.itemsize * int(np.prod(shape, dtype=np.int64)) or off < 0:
        raise SegmentError(f"segment buffer {spec['name']!r} has a wrong size")
    if off + nbytes > len(raw):
        raise SegmentError(f"segment buffer {spec['name']!r} lies past the end of the file")
    return np.frombuffer(raw, dtype=dtype, count=nbytes // dtype.itemsize, offset=off).reshape(
        shape
    )


def read_segment(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A segment as an Arrow table in the canonical layout (``id``, base columns, then its
    per-row columns); ``columns`` keeps only these canonical names (in that order)."""
    with open(path, "rb") as f:
        raw = f.read()
    header = _parse_header(raw, len(raw))
    per_request = {s["name"]: s for s in header["per_request"]}
    try:
        n_req, n_rows = int(header["requests"]), int(header["rows"])
        counts = _buffer(raw, per_request["rows"]).astype(np.int64)
        offsets = _buffer(raw, per_request["request_id.offsets"])
        data = _buffer(raw, per_request["request_id.data"])
    except KeyError as exc:
        raise SegmentError(f"segment lacks the buffer {exc}") from None
    if len(counts) != n_req or len(offsets) != n_req + 1 or int(counts.sum()) != n_rows:
        raise SegmentError("segment request counts do not add up")
    owner = np.repeat(np.arange(n_req, dtype=np.int32), counts)
    want = list(columns) if columns is not None else None

    def wanted(name: str) -> bool:
        return want is None or name in want

    out: dict[str, pa.Array] = {}
    if wanted("id") or wanted("request_id"):
        try:
            rids = pa.StringArray.from_buffers(
                n_req, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data.tobytes())
            )
            rids.validate(full=True)
        except pa.ArrowException as exc:
            raise SegmentError(f"segment request ids are invalid: {exc}") from None
        per_row_rid = rids.take(pa.array(owner))
        if wanted("id"):
            starts = np.cumsum(counts) - counts
            row = np.arange(n_rows, dtype=np.int64) - np.repeat(starts, counts)
            out["id"] = pa.compute.binary_join_element_wise(
                per_row_rid, pa.compute.cast(pa.array(row), pa.string()), "-"
            )
        if wanted("request_id"):
            out["request_id"] = per_row_rid

    def per_req(name: str) -> np.ndarray:
        try:
            return _buffer(raw, per_request[name])[owner]
        except KeyError:
            raise SegmentError(f"segment lacks the buffer {name!r}") from None

    for name, value in (
        ("endpoint", header["endpoint"]),
        ("model", header["model"]),
    ):
        if wanted(name):
            out[name] = pa.array([value] * n_rows, pa.string())
    if wanted("version"):
        out["version"] = pa.array(np.full(n_rows, int(header["version"]), dtype=np.int64))
    if wanted("role"):
        out["role"] = pa.array([header["role"]] * n_rows, pa.string())
    if wanted("ts"):
        out["ts"] = pa.array(per_req("ts"), pa.timestamp("us", tz="UTC"))
    if wanted("latency_ms"):
        out["latency_ms"] = pa.array(per_req("latency_ms"))
    if wanted("status"):
        out["status"] = pa.array(per_req("status"))
    if wanted("error"):
        out["error"] = pa.nulls(n_rows, pa.string())
    for spec in header["per_row"]:
        name = spec["name"]
        group = spec.get("columns")
        if group is None and not wanted(name):
            continue
        if group is not None and not any(wanted(c) for c in group):
            continue
        a = _buffer(raw, spec)
        if len(a) != n_rows:
            raise SegmentError(f"segment column {name!r} has {len(a)} rows, not {n_rows}")
        if group is None:
            out[name] = to_arrow(a)
            continue
        if not isinstance(group, list) or a.ndim != 2 or a.shape[1] != len(group):
            raise SegmentError(f"segment buffer {name!r} does not hold its {len(group)} columns")
        for j, col in enumerate(group):
            if wanted(col):
                out[str(col)] = pa.array(np.ascontiguousarray(a[:, j]))
    if want is not None:
        out = {c: out[c] for c in want if c in out}
    meta = {
        b"lockgate.ts_min_ns": str(header["ts_min_ns"]).encode(),
        b"lockgate.ts_max_ns": str(header["ts_max_ns"]).encode(),
        b"lockgate.rows": str(n_rows).encode(),
    }
    if not out:  # none of the wanted columns is here: the rows still count
        return _empty(n_rows, meta)
    return pa.table(out, metadata=meta)


def _empty(n_rows: int, meta: dict[bytes, bytes]) -> pa.Table:
    """A table of ``n_rows`` rows and no column (a read that selected nothing present)."""
    return pa.table({"_": pa.nulls(n_rows)}, metadata=meta).drop_columns(["_"])
