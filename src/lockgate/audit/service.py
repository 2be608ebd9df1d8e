"""The audit service of a workspace: chain verification, retention, checkpoints and KPIs over
the metadata store and the prediction log. The pure parts live in :mod:`lockgate.audit.events`
and :mod:`lockgate.audit.kpis`; this module only gathers their inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select

from lockgate.audit.checkpoints import Checkpoint, list_checkpoints
from lockgate.audit.events import (
    ChainReport,
    PruneResult,
    iter_events,
    prune_events,
    verify_chain,
    write_checkpoint,
)
from lockgate.audit.keys import audit_key
from lockgate.audit.kpis import (
    PREDICTION_COLUMNS,
    KpiConfig,
    VersionFacts,
    compute,
    empty_predictions,
    parse_duration,
    replay,
)
from lockgate.errors import InvalidInputError, NotFoundError
from lockgate.store.schema import EndpointRow, ModelRow, VersionRow

if TYPE_CHECKING:
    from lockgate.store.predlog import PredictionLog
    from lockgate.workspace import Workspace

#: event kinds the KPIs replay
KPI_EVENT_KINDS = ("endpoint.deployed", "endpoint.deleted", "validation.completed", "rollout.*")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset; none means UTC; a date means its midnight UTC)
    as an aware datetime; None stays None, an unreadable value is None too."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        dt = datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class AuditService:
    """Audit operations of one workspace; ``predlog`` is the prediction log to read (a running
    server passes its own; otherwise the workspace's folder is read)."""

    def __init__(self, ws: Workspace, predlog: PredictionLog | None = None) -> None:
        self.ws = ws
        self._predlog = predlog

    @property
    def predlog(self) -> PredictionLog:
        if self._predlog is None:
            from lockgate.store.predlog import PredictionLog

            self._predlog = PredictionLog(self.ws.settings.predictions_dir, compact_interval=None)
        return self._predlog

    # -- chain ---------------------------------------------------------------------------
    def key(self, *, create: bool) -> bytes | None:
        return audit_key(self.ws.settings, create=create)

    def verify(self) -> ChainReport:
        return verify_chain(self.ws.db, self.key(create=False))

    def prune(self, older_than: str | timedelta, *, dry_run: bool = False) -> PruneResult:
        """Delete events older than ``older_than`` (``365d``) behind a signed checkpoint."""
        age = parse_duration(older_than, "older_than")
        key = self.key(create=True)
        assert key is not None
        now = self.ws.clock.now()
        return prune_events(
            self.ws.db, key, before=now - age, actor=self.ws.actor, at=now, dry_run=dry_run
        )

    def checkpoint(self) -> Checkpoint:
        key = self.key(create=True)
        assert key is not None
        return write_checkpoint(self.ws.db, key, actor=self.ws.actor, at=self.ws.clock.now())

    def checkpoints(self) -> list[Checkpoint]:
        return list_checkpoints(self.ws.db)

    # -- KPIs ----------------------------------------------------------------------------
    def version_facts(self) -> list[VersionFacts]:
        with self.ws.db.read() as s:
            rows = s.execute(
                select(
                    ModelRow.name,
                    VersionRow.version,
                    VersionRow.created_at,
                    VersionRow.lineage,
                    VersionRow.tags,
                ).join(ModelRow, ModelRow.id == VersionRow.model_id)
            ).all()
        out = []
        for name, version, created, lineage, tags in rows:
            code = (lineage or {}).get("code") or {}
            cutoff = (lineage or {}).get("data_cutoff") or (tags or {}).get("data_cutoff")
            out.append(
                VersionFacts(
                    name,
                    version,
                    created,
                    parse_time(code.get("committed_at") if isinstance(code, dict) else None),
                    parse_time(cutoff),
                )
            )
        return out

    def predictions(self, cfg: KpiConfig) -> pd.DataFrame:
        """Rows of every endpoint's log in the period: the KPI columns plus ``endpoint``."""
        frames = []
        for ep in self.predlog.endpoints():
            t = self.predlog.read_table(
                ep, since=cfg.start, until=cfg.end, columns=PREDICTION_COLUMNS, roles=None
            )
            if t.num_rows:
                df = t.to_pandas()
                df["endpoint"] = ep
                frames.append(df)
        if not frames:
            return empty_predictions()
        return pd.concat(frames, ignore_index=True)

    def labeled(self, cfg: KpiConfig, predictions: pd.DataFrame) -> tuple[pd.DataFrame | None, str]:
        """Live predictions with feedback, or None and why not."""
        try:
            from lockgate.feedback import FeedbackService
        except ImportError as exc:
            return None, f"feedback is not available in this installation ({exc})"
        models = (
            predictions.groupby(["endpoint", "version"])["model"].first().to_dict()
            if not predictions.empty
            else {}
        )
        service = FeedbackService(self.ws, self.predlog)
        frames = []
        for ep in sorted({e for e, _ in models}):
            joined = service.joined(ep, since=cfg.start, until=cfg.end)
            if joined.empty:
                continue
            joined = joined.assign(
                model=[models.get((ep, int(v))) for v in joined["version"]], endpoint=ep
            )
            frames.append(joined)
        if not frames:
            return pd.DataFrame(
                columns=["model", "version", "role", "ts", "status", "output", "value"]
            ), ""
        return pd.concat(frames, ignore_index=True), ""

    def kpis(
        self,
        *,
        period: str | timedelta = "30d",
        model: str | None = None,
        failure_window: str | timedelta = "7d",
        slo_latency_ms: float = 100.0,
        quality_buckets: int = 4,
        end: datetime | None = None,
    ) -> dict[str, Any]:
        """KPIs of every model (or of ``model``) over the period ending at ``end`` (now)."""
        span = parse_duration(period, "period")
        window = parse_duration(failure_window, "failure_window")
        stop = end or self.ws.clock.now()
        cfg = KpiConfig(stop - span, stop, window, float(slo_latency_ms), quality_buckets)
        facts = self.version_facts()
        with self.ws.db.read() as s:
            names = list(s.execute(select(ModelRow.name).order_by(ModelRow.name)).scalars())
        if model is not None:
            if not isinstance(model, str) or not model:
                raise InvalidInputError.for_field("model", "a model name", model)
            if model not in names:
                raise NotFoundError("model", model)
            names = [model]
        events = iter_events(self.ws.db, until=cfg.end, kinds=KPI_EVENT_KINDS)
        history = replay(events, cfg, self._live_now() if end is None else None)
        preds = self.predictions(cfg)
        labeled, reason = self.labeled(cfg, preds)
        doc: dict[str, Any] = {
            "period": cfg.to_dict(),
            "generated_at": self.ws.clock.now().isoformat(),
        }
        if model is None:
            doc["overall"] = compute(None, cfg, history, facts, preds, labeled, reason)
        doc["models"] = [compute(m, cfg, history, facts, preds, labeled, reason) for m in names]
        return doc

    def _live_now(self) -> dict[str, tuple[str, frozenset[int]]]:
        """Versions with live traffic weight on each endpoint now, from the stored policies."""
        from lockgate.rollout.policy import TrafficPolicy

        with self.ws.db.read() as s:
            rows = s.execute(
                select(EndpointRow.name, ModelRow.name, EndpointRow.policy).join(
                    ModelRow, ModelRow.id == EndpointRow.model_id
                )
            ).all()
        out = {}
        for ep, model, policy in rows:
            weights = TrafficPolicy.from_dict(policy).weights()
            out[ep] = (model, frozenset(v for v, w in weights.items() if w > 0))
        return out

    # -- records -------------------------------------------------------------------------
    def card(self, model: str, version: int) -> dict[str, Any]:
        """The model card of ``model/version`` as a dict (render with
        :func:`lockgate.audit.cards.to_markdown` or :func:`~lockgate.audit.cards.to_html`)."""
        from lockgate.audit.cards import build_card

        return build_card(self.ws, model, version)

    def export(self, *, since: datetime, output: Path) -> dict[str, Any]:
        """Write the record-keeping bundle since ``since`` into ``output``; returns its
        manifest (which carries the chain verification result: a broken chain is exported
        too, and says so)."""
        from lockgate.audit.export import export_bundle

        key = self.key(create=True)
        assert key is not None
        chain = verify_chain(self.ws.db, key)
        return export_bundle(self.ws, since=since, output=output, key=key, chain=chain)

    def verify_export(self, directory: Path) -> list[str]:
        from lockgate.audit.export import verify_bundle

        return verify_bundle(directory, self.key(create=False))
