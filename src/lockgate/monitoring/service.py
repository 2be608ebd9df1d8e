"""The monitor service: monitor definitions in the metadata store, their evaluation on a
schedule, alerts (stored, logged, posted to webhooks) and the endpoint reports behind
``lockgate drift``/``lockgate quality`` and the REST API.

The server's controller calls :meth:`MonitorService.evaluate_due` on every tick while it
holds the controller lease, so exactly one server process evaluates; each evaluation updates
the monitor row with an optimistic revision check, so a monitor changed meanwhile (or
evaluated by ``lockgate monitors check``) never raises an alert twice. A firing or resolving
monitor, its alert row and its event commit in one transaction; webhooks are then posted by a
background thread and the outcome written back to the alert (``delivery``). An alert still
``pending`` after :data:`REDELIVER_AFTER` seconds (its server died) is posted again by the
next leader: delivery is at least once, and receivers deduplicate on the alert id.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select

from lockgate import __version__
from lockgate.audit.events import record_event
from lockgate.errors import ConflictError, InvalidInputError, LockgateError, NotFoundError
from lockgate.monitoring.alerts import Delivery, Dispatcher, WebhookSender, redact_url
from lockgate.monitoring.config import DriftConfig
from lockgate.monitoring.gauges import MonitoringMetrics
from lockgate.monitoring.live import (
    EndpointDrift,
    EndpointQuality,
    endpoint_drift,
    endpoint_quality,
    request_stats,
    version_of,
    window_bounds,
)
from lockgate.monitoring.monitors import (
    Alert,
    Measurement,
    MonitorSpec,
    alert_message,
    transition,
)
from lockgate.monitoring.profile import Profile
from lockgate.monitoring.records import (
    MonitorInfo,
    alert_of,
    audit_doc,
    jsonable,
    spec_of,
)
from lockgate.store.paths import validate_name
from lockgate.store.schema import AlertRow, MonitorRow

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from lockgate.clock import Clock
    from lockgate.feedback import FeedbackService
    from lockgate.monitoring.quality import Task
    from lockgate.store.predlog import PredictionLog
    from lockgate.workspace import Workspace

log = logging.getLogger("lockgate.alerts")

#: the actor of evaluations, alerts and deliveries in the event trail
MONITOR_ACTOR = "lockgate-monitor"
#: seconds after which an alert still pending delivery is posted again
REDELIVER_AFTER = 300.0
_PROFILE_CACHE = 8


class MonitorService:
    """Monitors of one workspace. ``predlog`` is the prediction log read for windows (a
    server passes its own so this process's records can be flushed first), ``feedback`` the
    feedback service joined for quality, ``registry`` where the gauges are exported."""

    def __init__(
        self,
        ws: Workspace,
        *,
        predlog: PredictionLog | None = None,
        feedback: FeedbackService | None = None,
        registry: CollectorRegistry | None = None,
        sender: WebhookSender | None = None,
        background: bool = True,
        clock: Clock | None = None,
    ) -> None:
        self.ws = ws
        self.clock: Clock = clock or ws.clock
        self._predlog = predlog
        self._feedback = feedback
        self.metrics = MonitoringMetrics(registry)
        s = ws.settings
        self.sender = sender or WebhookSender(
            timeout=s.webhook_timeout,
            attempts=s.webhook_attempts,
            backoff=s.webhook_backoff,
            user_agent=f"lockgate/{__version__}",
        )
        self.dispatcher = Dispatcher(self.sender, self._delivered, background=background)
        self._profiles: OrderedDict[str, Profile] = OrderedDict()
        self._profiles_lock = threading.Lock()  # the controller and API threads share it
        self._next_redeliver = 0.0

    @property
    def default_secret(self) -> str | None:
        secret = self.ws.settings.webhook_secret
        return secret.get_secret_value() if secret is not None else None

    @property
    def predlog(self) -> PredictionLog:
        if self._predlog is None:
            from lockgate.store.predlog import PredictionLog

            self._predlog = PredictionLog(self.ws.settings.predictions_dir)
        return self._predlog

    @property
    def feedback(self) -> FeedbackService:
        if self._feedback is None:
            from lockgate.feedback import FeedbackService

            self._feedback = FeedbackService(self.ws, self.predlog)
        return self._feedback

    def close(self, timeout: float = 10.0) -> None:
        """Wait (up to ``timeout``) for queued webhook deliveries, then stop."""
        self.dispatcher.close(timeout)

    # -- definitions ------------------------------------------------------------------------
    def add(
        self, spec: MonitorSpec | dict[str, Any], *, replace: bool = False, reason: str = ""
    ) -> MonitorInfo:
        """Store a monitor (``replace``: overwrite the definition of one with that name,
        keeping its state). It is evaluated at the controller's next tick."""
        if not isinstance(spec, MonitorSpec):
            spec = MonitorSpec.from_dict(spec)
        self._check(spec)
        now = self.clock.now()
        with self.ws.db.write() as s:
            row = s.execute(
                select(MonitorRow).where(MonitorRow.name == spec.name).with_for_update()
            ).scalar_one_or_none()
            if row is not None and not replace:
                raise ConflictError(
                    f"monitor {spec.name!r} exists; remove it first or add it with --replace",
                    name=spec.name,
                )
            kind = "monitor.created"
            if row is None:
                row = MonitorRow(
                    name=spec.name,
                    state="unknown",
                    revision=1,
                    created_at=now,
                    created_by=self.ws.actor,
                )
                s.add(row)
            else:
                kind = "monitor.updated"
                row.revision += 1
                if row.endpoint != spec.endpoint or row.kind != spec.kind:
                    row.state, row.value, row.firing_since = "unknown", None, None
            row.endpoint = spec.endpoint
            row.kind = spec.kind
            row.params = spec.params()
            row.webhooks = [h.stored() for h in spec.webhooks]
            row.enabled = spec.enabled
            row.next_eval_at = now
            row.updated_at = now
            row.updated_by = self.ws.actor
            s.flush()
            record_event(
                self.ws.db, s, kind=kind, subject=spec.endpoint, actor=self.ws.actor, at=now,
                payload={"monitor": audit_doc(spec), "reason": reason},
            )  # fmt: skip
            return MonitorInfo(row)

    def _check(self, spec: MonitorSpec) -> None:
        self.ws.endpoints.get(spec.endpoint)  # NotFoundError for an unknown endpoint
        missing = [h.url for h in spec.webhooks if not h.secret]
        if missing and not self.default_secret:
            raise InvalidInputError.for_field(
                "webhooks.secret",
                "a secret per webhook (--webhook-secret) or LOCKGATE_WEBHOOK_SECRET set: "
                "every alert is signed",
                [redact_url(u) for u in missing],
            )
        if spec.kind == "drift":
            model, v = version_of(self.ws, spec.endpoint, spec.version)
            mv = self.ws.registry.get_version(f"{model}/{v}")
            if not mv.profile_sha256:
                raise InvalidInputError.for_field(
                    "kind",
                    f"a monitor its version can support: {mv.ref} has no reference profile "
                    "(register it with --reference) for a drift monitor",
                    spec.kind,
                )

    def remove(self, name: str, *, reason: str = "") -> MonitorInfo:
        """Delete a monitor (its alerts stay). A firing monitor removed raises no resolved
        alert; the event records its state."""
        validate_name(name, "name")
        now = self.clock.now()
        with self.ws.db.write() as s:
            row = s.execute(
                select(MonitorRow).where(MonitorRow.name == name).with_for_update()
            ).scalar_one_or_none()
            if row is None:
                raise NotFoundError("monitor", name)
            info = MonitorInfo(row)
            s.delete(row)
            record_event(
                self.ws.db, s, kind="monitor.removed", subject=info.spec.endpoint,
                actor=self.ws.actor, at=now,
                payload={"monitor": name, "state": info.state, "reason": reason},
            )  # fmt: skip
        self.metrics.forget_monitor(name, info.spec.endpoint)
        return info

    def get(self, name: str) -> MonitorInfo:
        validate_name(name, "name")
        with self.ws.db.read() as s:
            row = s.execute(select(MonitorRow).where(MonitorRow.name == name)).scalar_one_or_none()
            if row is None:
                raise NotFoundError("monitor", name)
            return MonitorInfo(row)

    def list_monitors(self, endpoint: str | None = None) -> list[MonitorInfo]:
        q = select(MonitorRow).order_by(MonitorRow.endpoint, MonitorRow.name)
        if endpoint is not None:
            q = q.where(MonitorRow.endpoint == validate_name(endpoint, "endpoint"))
        with self.ws.db.read() as s:
            return [MonitorInfo(r) for r in s.execute(q).scalars()]

    def alerts(
        self, *, monitor: str | None = None, endpoint: str | None = None, limit: int = 100
    ) -> list[Alert]:
        """Alerts, newest first."""
        q = select(AlertRow).order_by(AlertRow.id.desc()).limit(max(1, min(limit, 10_000)))
        if monitor is not None:
            q = q.where(AlertRow.monitor == monitor)
        if endpoint is not None:
            q = q.where(AlertRow.endpoint == endpoint)
        with self.ws.db.read() as s:
            return [alert_of(r) for r in s.execute(q).scalars()]

    # -- reports ---------------------------------------------------------------------------
    def drift(
        self,
        endpoint: str,
        *,
        window: float | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        version: int | None = None,
        config: DriftConfig | None = None,
        columns: Sequence[str] | None = None,
    ) -> EndpointDrift:
        """Drift of the endpoint's primary traffic in the window (default: the last hour)
        against the version's reference profile (default: the current primary)."""
        validate_name(endpoint, "endpoint")
        start, end = window_bounds(self.clock.now(), window, since, until)
        self._flush()
        model, v = version_of(self.ws, endpoint, version)
        return endpoint_drift(
            self.ws, self.predlog, endpoint, since=start, until=end, version=v,
            config=config, columns=columns, profile=self._profile(model, v),
        )  # fmt: skip

    def quality(
        self,
        endpoint: str,
        *,
        window: float | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        version: int | None = None,
        task: Task | None = None,
        positive: Any = None,
    ) -> EndpointQuality:
        """Quality per version and role of the endpoint's predictions in the window that
        have feedback."""
        validate_name(endpoint, "endpoint")
        self.ws.endpoints.get(endpoint)
        start, end = window_bounds(self.clock.now(), window, since, until)
        self._flush()
        return endpoint_quality(
            self.feedback, endpoint, since=start, until=end, version=version, task=task,
            positive=positive,
        )  # fmt: skip

    def _profile(self, model: str, version: int) -> Profile | None:
        mv = self.ws.registry.get_version(f"{model}/{version}")
        key = mv.profile_sha256
        if not key:
            return None
        with self._profiles_lock:
            if key in self._profiles:
                self._profiles.move_to_end(key)
                return self._profiles[key]
        profile: Profile = self.ws.registry.load_profile(mv)
        with self._profiles_lock:
            self._profiles[key] = profile
            while len(self._profiles) > _PROFILE_CACHE:
                self._profiles.popitem(last=False)
        return profile

    def _flush(self) -> None:
        p = self._predlog
        if p is not None and p.stats()["running"]:
            with contextlib.suppress(LockgateError):
                p.flush(timeout=10)

    # -- evaluation ------------------------------------------------------------------------
    def measure(self, spec: MonitorSpec, now: datetime) -> Measurement:
        """The monitor's value over the window ending at ``now`` (None when the window has
        too little data, or the measurement failed: then ``error`` says why)."""
        since = now - timedelta(seconds=spec.window)
        try:
            return self._measure(spec, since, now)
        except LockgateError as exc:
            return Measurement(None, 0, since, now, spec.version, error=exc.message)

    def _measure(self, spec: MonitorSpec, since: datetime, until: datetime) -> Measurement:
        n_min = int(spec.min_samples or 1)
        if spec.kind == "drift":
            model, v = version_of(self.ws, spec.endpoint, spec.version)
            d = endpoint_drift(
                self.ws, self.predlog, spec.endpoint, since=since, until=until, version=v,
                config=spec.drift_config(n_min), columns=spec.columns or None,
                profile=self._profile(model, v),
            )  # fmt: skip
            r = d.report
            self.metrics.drift(d)
            detail: dict[str, Any] = {
                "verdict": r.verdict,
                "share_drifted": r.share_drifted,
                "share_material": r.share_material,
                "n_tested": r.n_tested,
                "drifted_columns": r.drifted_columns,
                "material_columns": [c.column for c in r.columns if c.material],
            }
            if r.n_tested == 0:
                reason = f"fewer than {n_min} rows in the window ({r.n_current})"
                return Measurement(None, r.n_current, since, until, v, detail, reason)
            return Measurement(r.share_drifted, r.n_current, since, until, v, detail)
        if spec.kind == "quality":
            _, v = version_of(self.ws, spec.endpoint, spec.version)
            q = endpoint_quality(
                self.feedback, spec.endpoint, since=since, until=until, version=v,
                roles=["primary"], positive=spec.positive,
            )  # fmt: skip
            vq = q.get(v, "primary")
            if vq is None:
                return Measurement(None, 0, since, until, v, {}, "no labelled predictions")
            self.metrics.quality_of(spec.endpoint, v, vq.report)
            metric = str(spec.metric)
            est = vq.report.metrics.get(metric)
            detail = {"task": vq.report.task, "metric": metric}
            if est is not None:
                detail["estimate"] = est.to_dict()
            n = vq.report.n
            if n < n_min:
                reason = f"{n} labelled predictions, fewer than {n_min}"
                return Measurement(None, n, since, until, v, detail, reason)
            if est is None or est.value is None:
                reason = (
                    est.note if est is not None else f"{metric} is not a {vq.report.task} metric"
                )
                return Measurement(None, n, since, until, v, detail, reason)
            return Measurement(est.value, n, since, until, v, detail)
        stats = request_stats(
            self.predlog, spec.endpoint, since=since, until=until, version=spec.version
        )
        detail = {
            "requests": stats.n,
            "errors_5xx": stats.errors_5xx,
            "errors_4xx": stats.errors_4xx,
        }
        if stats.n < n_min:
            reason = f"{stats.n} requests, fewer than {n_min}"
            return Measurement(None, stats.n, since, until, spec.version, detail, reason)
        if spec.kind == "error_rate":
            value = stats.error_rate(spec.include_4xx)
        else:
            value = stats.latency_quantile(spec.quantile)
        return Measurement(value, stats.n, since, until, spec.version, detail)

    def evaluate_due(self, now: datetime | None = None) -> list[Alert]:
        """Evaluate every enabled monitor whose time has come; return the alerts raised.
        Called by the controller on each tick while it leads."""
        now = now or self.clock.now()
        with self.ws.db.read() as s:
            due = [
                (r.id, r.revision, spec_of(r))
                for r in s.execute(
                    select(MonitorRow)
                    .where(MonitorRow.enabled.is_(True), MonitorRow.next_eval_at <= now)
                    .order_by(MonitorRow.next_eval_at)
                ).scalars()
            ]
        if due:
            self._flush()
        alerts: list[Alert] = []
        for monitor_id, revision, spec in due:
            alerts.extend(self._evaluate(monitor_id, revision, spec, now))
        self._redeliver(now)
        return alerts

    def evaluate(self, name: str | None = None, now: datetime | None = None) -> list[Alert]:
        """Evaluate one monitor (or every enabled one) now, due or not."""
        now = now or self.clock.now()
        q = select(MonitorRow).order_by(MonitorRow.name)
        q = q.where(MonitorRow.name == name) if name else q.where(MonitorRow.enabled.is_(True))
        with self.ws.db.read() as s:
            rows = [(r.id, r.revision, spec_of(r)) for r in s.execute(q).scalars()]
        if name and not rows:
            raise NotFoundError("monitor", name)
        self._flush()
        alerts: list[Alert] = []
        for monitor_id, revision, spec in rows:
            alerts.extend(self._evaluate(monitor_id, revision, spec, now))
        return alerts

    def _evaluate(
        self, monitor_id: int, revision: int, spec: MonitorSpec, now: datetime
    ) -> list[Alert]:
        m = self.measure(spec, now)
        if m.error:
            log.error("monitor %s on %s: %s", spec.name, spec.endpoint, m.error)
        alert: Alert | None = None
        with self.ws.db.write() as s:
            row = s.get(MonitorRow, monitor_id, with_for_update=True)
            if row is None or row.revision != revision:
                return []  # removed or redefined meanwhile: judged again at its next time
            state, status = transition(row.state, spec, m)
            row.value = m.value
            row.measurement = jsonable(m.to_dict())
            row.last_evaluated_at = now
            row.next_eval_at = now + timedelta(seconds=spec.interval)
            row.revision += 1
            firing_since = row.firing_since
            if status == "firing":
                firing_since = row.firing_since = now
            row.state = state
            if status is not None:
                alert = self._raise(s, row, spec, m, status, now, firing_since)
            if status == "resolved":
                row.firing_since = None
        self.metrics.monitor(spec.name, spec.endpoint, m.value, state == "firing")
        if alert is None:
            return []
        (log.warning if alert.status == "firing" else log.info)("%s", alert.message)
        self.metrics.alerts.labels(spec.endpoint, alert.status).inc()
        self._dispatch(alert, spec)
        return [alert]

    def _raise(
        self,
        s: Any,
        row: MonitorRow,
        spec: MonitorSpec,
        m: Measurement,
        status: str,
        now: datetime,
        firing_since: datetime | None,
    ) -> Alert:
        message = alert_message(spec, status, m)  # type: ignore[arg-type]
        arow = AlertRow(
            monitor_id=row.id,
            monitor=spec.name,
            endpoint=spec.endpoint,
            kind=spec.kind,
            status=status,
            at=now,
            value=m.value,
            threshold=float(spec.threshold or 0.0),
            message=message,
            body={},
            delivery="pending" if spec.webhooks else "none",
            attempts=0,
        )
        s.add(arow)
        s.flush()
        alert = Alert(
            id=arow.id,
            monitor=spec.name,
            endpoint=spec.endpoint,
            kind=spec.kind,
            status=status,  # type: ignore[arg-type]
            at=now,
            value=m.value,
            threshold=float(spec.threshold or 0.0),
            comparison=spec.comparison,
            message=message,
            version=m.version,
            firing_since=firing_since,
            measurement=jsonable(m.to_dict()),
        )
        arow.body = jsonable(alert.to_dict())
        record_event(
            self.ws.db, s, kind=f"monitor.{status}", subject=spec.endpoint,
            actor=MONITOR_ACTOR, at=now,
            payload={
                "monitor": spec.name, "alert": arow.id, "kind": spec.kind, "value": m.value,
                "threshold": spec.threshold, "comparison": spec.comparison,
                "version": m.version, "n": m.n,
            },
        )  # fmt: skip
        return alert

    # -- delivery --------------------------------------------------------------------------
    def _dispatch(self, alert: Alert, spec: MonitorSpec) -> None:
        if not spec.webhooks:
            return
        body = orjson.dumps(alert.to_dict(), option=orjson.OPT_SORT_KEYS)
        default = self.default_secret
        targets = [(h.url, h.secret or default) for h in spec.webhooks]
        self.dispatcher.submit(Delivery(alert.id, body, targets))

    def _delivered(self, d: Delivery) -> None:
        ok = all(r.ok for r in d.results)
        now = self.clock.now()
        for r in d.results:
            self.metrics.deliveries.labels("delivered" if r.ok else "failed").inc()
        results = [r.to_dict() for r in d.results]
        with self.ws.db.write() as s:
            row = s.get(AlertRow, d.alert_id, with_for_update=True)
            if row is None:
                return
            row.delivery = "delivered" if ok else "failed"
            row.attempts = (row.attempts or 0) + sum(r.attempts for r in d.results)
            row.deliveries = results
            if ok:
                row.delivered_at = now
            record_event(
                self.ws.db, s, kind="alert.delivered" if ok else "alert.delivery_failed",
                subject=row.endpoint, actor=MONITOR_ACTOR, at=now,
                payload={"alert": row.id, "monitor": row.monitor, "results": results},
            )  # fmt: skip

    def _redeliver(self, now: datetime) -> None:
        """Post again the alerts left pending by a server that died (at most every 30 s)."""
        if time.monotonic() < self._next_redeliver:
            return
        self._next_redeliver = time.monotonic() + 30.0
        cutoff = now - timedelta(seconds=REDELIVER_AFTER)
        busy = self.dispatcher.inflight()
        with self.ws.db.read() as s:
            stale = [
                (r.id, r.body, r.monitor)
                for r in s.execute(
                    select(AlertRow)
                    .where(AlertRow.delivery == "pending", AlertRow.at <= cutoff)
                    .order_by(AlertRow.id)
                    .limit(100)
                ).scalars()
                if r.id not in busy
            ]
            hooks = {
                r.name: [(h["url"], h.get("secret")) for h in r.webhooks or []]
                for r in s.execute(
                    select(MonitorRow).where(MonitorRow.name.in_({m for _, _, m in stale}))
                ).scalars()
            }
        default = self.default_secret
        for alert_id, body, monitor in stale:
            targets = [(u, sec or default) for u, sec in hooks.get(monitor, [])]
            if not targets:
                continue
            raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
            self.dispatcher.submit(Delivery(alert_id, raw, targets))
