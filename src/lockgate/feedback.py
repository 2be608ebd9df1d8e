"""Ground-truth feedback: labels or outcomes posted after the fact against prediction ids,
stored in the metadata store and joined to the prediction log for live quality per version
and role.

A prediction id is ``<request_id>-<row>``: the MLflow endpoint returns them as
``prediction_ids``; for an OIP request they are the request's ``id`` and the row index. A
shadow's record of a row has the same id as the primary's, so one label scores both.

:meth:`FeedbackService.send` takes up to :data:`MAX_BATCH` items; every id is looked up in
the prediction log of the endpoint (over ``LOCKGATE_FEEDBACK_LOOKBACK_DAYS``) and the ids not
found are returned in ``unknown_ids`` and not stored, never dropped silently. Posting an id
again replaces its value (a corrected label); the result counts ``stored`` and ``updated``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lockgate.audit.events import record_event
from lockgate.errors import InvalidInputError, NotFoundError
from lockgate.rollout.analysis import Labeled, quality_of
from lockgate.store.paths import validate_name
from lockgate.store.predlog_read import to_numpy
from lockgate.store.schema import EndpointRow, FeedbackRow

if TYPE_CHECKING:
    from lockgate.store.predlog import PredictionLog
    from lockgate.workspace import Workspace

#: most items in one post
MAX_BATCH = 10_000
#: longest prediction id accepted
MAX_ID = 160
_CHUNK = 1000


@dataclass(frozen=True)
class FeedbackItem:
    id: str
    value: Any
    metrics: dict[str, float] | None = None


@dataclass(frozen=True)
class FeedbackResult:
    endpoint: str
    received: int
    stored: int
    updated: int
    unknown_ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "received": self.received,
            "stored": self.stored,
            "updated": self.updated,
            "unknown": len(self.unknown_ids),
            "unknown_ids": self.unknown_ids,
        }


def parse_items(items: Any) -> list[FeedbackItem]:
    """Validate a batch: 1 to 10,000 objects with a unique ``id``, a scalar ``value`` and
    optional numeric ``metrics``; errors name the item and the field."""
    if isinstance(items, Mapping) or not isinstance(items, Sequence) or isinstance(items, str):
        raise InvalidInputError.for_field("items", "a list of feedback items", type(items).__name__)
    if not 1 <= len(items) <= MAX_BATCH:
        raise InvalidInputError.for_field(
            "items", f"between 1 and {MAX_BATCH} items per batch", len(items)
        )
    out: list[FeedbackItem] = []
    seen: set[str] = set()
    for i, raw in enumerate(items):
        item = raw if isinstance(raw, FeedbackItem) else _item(raw, i)
        if not isinstance(item.id, str) or not 0 < len(item.id) <= MAX_ID:
            raise InvalidInputError.for_field(
                f"items[{i}].id", f"a prediction id of 1-{MAX_ID} characters", item.id
            )
        if item.id in seen:
            raise InvalidInputError.for_field(
                f"items[{i}].id", "an id not repeated within the batch", item.id
            )
        seen.add(item.id)
        _check_value(item.value, f"items[{i}].value")
        out.append(item)
    return out


def _item(raw: Any, i: int) -> FeedbackItem:
    if not isinstance(raw, Mapping):
        raise InvalidInputError.for_field(f"items[{i}]", "an object with id and value", raw)
    unknown = set(raw) - {"id", "value", "metrics"}
    if unknown:
        raise InvalidInputError.for_field(
            f"items[{i}]", "keys among id, value, metrics", sorted(unknown)
        )
    if "id" not in raw or "value" not in raw:
        raise InvalidInputError.for_field(f"items[{i}]", "an object with id and value", raw)
    metrics = raw.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, Mapping):
            raise InvalidInputError.for_field(
                f"items[{i}].metrics", "an object of name: number", metrics
            )
        for k, v in metrics.items():
            if (
                not isinstance(k, str)
                or not k
                or isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
            ):
                raise InvalidInputError.for_field(f"items[{i}].metrics.{k}", "a finite number", v)
        metrics = {str(k): float(v) for k, v in metrics.items()}
    return FeedbackItem(raw["id"], raw["value"], metrics)


def _check_value(value: Any, field: str) -> None:
    if isinstance(value, np.generic):
        value = value.item()
    ok = isinstance(value, str | bool | int) or (isinstance(value, float) and math.isfinite(value))
    if not ok:
        raise InvalidInputError.for_field(
            field, "a label or number (string, int, finite float or bool)", value
        )


def frame_items(
    frame: pd.DataFrame, *, id_column: str = "id", value_column: str = "value"
) -> list[dict[str, Any]]:
    """Feedback items from a table: ``id`` and ``value`` columns; every other numeric column
    is a business metric (missing values left out)."""
    for col in (id_column, value_column):
        if col not in frame.columns:
            raise InvalidInputError.for_field(
                "columns", f"a column named {col!r}", [str(c) for c in frame.columns]
            )
    metric_cols = [
        c
        for c in frame.columns
        if c not in (id_column, value_column)
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]
    ids = frame[id_column].astype(str).tolist()
    values = [v.item() if isinstance(v, np.generic) else v for v in frame[value_column].tolist()]
    items: list[dict[str, Any]] = []
    metric_values = {c: frame[c].to_numpy(dtype=np.float64) for c in metric_cols}
    for i, (pid, value) in enumerate(zip(ids, values, strict=True)):
        item: dict[str, Any] = {"id": pid, "value": value}
        metrics = {str(c): float(v[i]) for c, v in metric_values.items() if math.isfinite(v[i])}
        if metrics:
            item["metrics"] = metrics
        items.append(item)
    return items


def read_feedback_file(path: str | Path) -> pd.DataFrame:
    """A feedback table from ``.csv``, ``.parquet`` or ``.jsonl`` (one object per line)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(p, dtype={"id": str})
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if suffix in (".jsonl", ".ndjson"):
        return pd.read_json(p, lines=True, dtype={"id": str})
    raise InvalidInputError.for_field("file", "a .csv, .parquet or .jsonl file", p.name)


def truth_array(values: Sequence[Any]) -> np.ndarray:
    """Ground-truth values as one array: ints, floats, or strings (objects) when mixed."""
    if all(isinstance(v, bool | int | np.integer) for v in values):
        return np.asarray(values, dtype=np.int64)
    if all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.float64)
    return np.asarray([str(v) for v in values], dtype=object)


class FeedbackService:
    """Feedback of one workspace; ``predlog`` is the prediction log to check ids against and
    join with (a running server passes its own, so unflushed records can be flushed)."""

    def __init__(self, ws: Workspace, predlog: PredictionLog | None = None) -> None:
        self.ws = ws
        self._predlog = predlog

    @property
    def predlog(self) -> PredictionLog:
        if self._predlog is None:
            from lockgate.store.predlog import PredictionLog

            self._predlog = PredictionLog(self.ws.settings.predictions_dir)
        return self._predlog

    # -- writing -------------------------------------------------------------------------
    def send(self, endpoint: str, items: Any, *, since: datetime | None = None) -> FeedbackResult:
        """Store ground truth for the known ids among ``items``; report the unknown ones."""
        validate_name(endpoint, "endpoint")
        parsed = parse_items(items)
        self._require_endpoint(endpoint)
        ids = [it.id for it in parsed]
        known = self._known(endpoint, ids, since)
        if len(known) < len(ids) and self._flushable():
            self.predlog.flush(timeout=10)  # records of this process still in the queue
            known = self._known(endpoint, ids, since)
        keep = [it for it in parsed if it.id in known]
        unknown = [i for i in ids if i not in known]
        now = self.ws.clock.now()
        stored = updated = 0
        with self.ws.db.write() as s:
            for lo in range(0, len(keep), _CHUNK):
                chunk = keep[lo : lo + _CHUNK]
                existing = set(
                    s.execute(
                        select(FeedbackRow.prediction_id).where(
                            FeedbackRow.endpoint == endpoint,
                            FeedbackRow.prediction_id.in_([it.id for it in chunk]),
                        )
                    ).scalars()
                )
                updated += len(existing)
                stored += len(chunk) - len(existing)
                self._upsert(s, endpoint, chunk, now)
            record_event(
                self.ws.db,
                s,
                kind="feedback.received",
                subject=endpoint,
                actor=self.ws.actor,
                at=now,
                payload={
                    "endpoint": endpoint,
                    "received": len(parsed),
                    "stored": stored,
                    "updated": updated,
                    "unknown": len(unknown),
                },
            )
        return FeedbackResult(endpoint, len(parsed), stored, updated, unknown)

    def _upsert(self, s: Any, endpoint: str, chunk: list[FeedbackItem], now: datetime) -> None:
        if not chunk:
            return
        rows = [
            {
                "endpoint": endpoint,
                "prediction_id": it.id,
                "value": it.value.item() if isinstance(it.value, np.generic) else it.value,
                "metrics": it.metrics,
                "received_at": now,
                "received_by": self.ws.actor,
            }
            for it in chunk
        ]
        ins = (
            pg_insert(FeedbackRow)
            if self.ws.db.dialect == "postgresql"
            else sqlite_insert(FeedbackRow)
        )
        stmt = ins.values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["endpoint", "prediction_id"],
            set_={
                "value": stmt.excluded.value,
                "metrics": stmt.excluded.metrics,
                "received_at": stmt.excluded.received_at,
                "received_by": stmt.excluded.received_by,
            },
        )
        s.execute(stmt)

    def _require_endpoint(self, endpoint: str) -> None:
        with self.ws.db.read() as s:
            row = s.execute(
                select(EndpointRow.id).where(EndpointRow.name == endpoint)
            ).scalar_one_or_none()
        if row is None and endpoint not in self.predlog.endpoints():
            raise NotFoundError("endpoint", endpoint)

    def _flushable(self) -> bool:
        return bool(self._predlog is not None and self._predlog.stats()["running"])

    def _known(self, endpoint: str, ids: list[str], since: datetime | None) -> set[str]:
        if since is None:
            days = self.ws.settings.feedback_lookback_days
            since = self.ws.clock.now() - timedelta(days=days)
        table = self.predlog.read_table(endpoint, since=since, columns=["id"], roles=None)
        col = table.column("id")
        hits = col.filter(pc.is_in(col, value_set=pa.array(ids, pa.string())))
        return set(pc.unique(hits).to_pylist())

    # -- reading -------------------------------------------------------------------------
    def count(self, endpoint: str) -> int:
        from sqlalchemy import func

        with self.ws.db.read() as s:
            return int(
                s.execute(
                    select(func.count())
                    .select_from(FeedbackRow)
                    .where(FeedbackRow.endpoint == endpoint)
                ).scalar_one()
            )

    def frame(self, endpoint: str) -> pd.DataFrame:
        """Stored feedback of an endpoint: ``id``, ``value``, ``metric.<name>``..."""
        validate_name(endpoint, "endpoint")
        with self.ws.db.read() as s:
            rows = s.execute(
                select(FeedbackRow.prediction_id, FeedbackRow.value, FeedbackRow.metrics).where(
                    FeedbackRow.endpoint == endpoint
                )
            ).all()
        df = pd.DataFrame({"id": [r[0] for r in rows], "value": [r[1] for r in rows]})
        names = sorted({k for r in rows if r[2] for k in r[2]})
        for name in names:
            df[f"metric.{name}"] = [
                (r[2] or {}).get(name, math.nan) if r[2] else math.nan for r in rows
            ]
        return df

    def joined(
        self,
        endpoint: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """Predictions of the window that have feedback, one row per record (a shadow's
        record of a row is a row of its own): id, version, role, ts, status, output, value,
        metric.<name>..."""
        fb = self.frame(endpoint)
        cols = ["id", "version", "role", "ts", "status"]
        empty = pd.DataFrame(columns=[*cols, "output", *fb.columns[1:]])
        if fb.empty:
            return empty
        try:
            table = self.predlog.read_table(
                endpoint, since=since, until=until, columns=[*cols, "output"], roles=None
            )
        except InvalidInputError:  # outputs stored as output.<name>: not scorable
            table = self.predlog.read_table(
                endpoint, since=since, until=until, columns=cols, roles=None
            )
            table = table.append_column("output", pa.nulls(table.num_rows))
        table = table.filter(pc.is_in(table.column("id"), value_set=pa.array(fb["id"])))
        if table.num_rows == 0:
            return empty
        df = pd.DataFrame({c: to_numpy(table.column(c)) for c in table.column_names})
        return df.merge(fb, on="id", how="inner")

    def labeled(
        self, joined: pd.DataFrame, version: int, roles: Sequence[str] | None = None
    ) -> Labeled:
        """One version's successful predictions with their ground truth."""
        m = (joined["version"] == version) & (joined["status"] < 400)
        if roles is not None:
            m &= joined["role"].isin(list(roles))
        part = joined[m]
        metrics = {
            c.removeprefix("metric."): part[c].to_numpy(dtype=np.float64)
            for c in part.columns
            if c.startswith("metric.")
        }
        predicted = part["output"].to_numpy()
        if predicted.dtype == object and len(predicted):
            with contextlib.suppress(TypeError, ValueError):
                predicted = predicted.astype(np.float64)
        return Labeled(
            version,
            predicted,
            truth_array(part["value"].tolist()) if len(part) else np.zeros(0),
            metrics,
        )

    def quality(
        self,
        endpoint: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Live quality per (version, role): labels, accuracy or MAE/RMSE, business metric
        means, over the predictions of the window that have feedback."""
        joined = self.joined(endpoint, since=since, until=until)
        out: list[dict[str, Any]] = []
        if joined.empty:
            return out
        for (version, role), _ in joined.groupby(["version", "role"], sort=True):
            q = quality_of(self.labeled(joined, int(version), [str(role)]))
            out.append({"role": str(role), **q})
        return out
