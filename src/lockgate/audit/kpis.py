"""KPIs: delivery and operations figures per model and period, computed from the event log,
the registry's version facts, the prediction log and feedback. Pure: every input is a value
and the period is given (or taken from an injected clock), so a scripted history gives exact,
hand-checkable numbers. The definitions are in ``docs/kpis.md``; the code follows them.

Event kinds read: ``endpoint.deployed`` / ``endpoint.deleted`` (direct deploys),
``rollout.started`` / ``rollout.promoted`` / ``rollout.rolled_back`` / ``rollout.aborted`` and
any ``rollout.*`` event with ``weights`` (rollouts), ``validation.completed`` (readiness).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from lockgate.audit.events import Event
from lockgate.clock import Clock
from lockgate.errors import InvalidInputError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
#: rollout outcomes that end an attempt unsuccessfully
FAILED_ROLLOUT_KINDS = ("rollout.rolled_back", "rollout.aborted")
#: prediction log columns the KPIs read
PREDICTION_COLUMNS = ["request_id", "model", "version", "role", "ts", "latency_ms", "status"]


def parse_duration(text: str | timedelta, field_name: str) -> timedelta:
    """``45s``, ``30m``, ``1h``, ``7d``, ``2w`` (or a timedelta) as a positive timedelta."""
    if isinstance(text, timedelta):
        value = text
    else:
        m = _DURATION.fullmatch(str(text).strip().lower())
        if not m:
            raise InvalidInputError.for_field(field_name, "a duration like 30m, 1h, 7d or 2w", text)
        value = timedelta(seconds=float(m[1]) * _UNIT_SECONDS[m[2]])
    if value <= timedelta(0):
        raise InvalidInputError.for_field(field_name, "a positive duration", str(text))
    return value


@dataclass(frozen=True)
class KpiConfig:
    """The period ``[start, end)`` and the knobs of the definitions."""

    start: datetime
    end: datetime
    #: a deployment replaced by the version it replaced within this long counts as failed;
    #: the first deployment this soon after a failure counts as rework
    failure_window: timedelta = timedelta(days=7)
    #: a request meets the SLO when it succeeded (status < 400) within this latency
    slo_latency_ms: float = 100.0
    #: equal sub-periods of the production quality trend
    quality_buckets: int = 4

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise InvalidInputError.for_field("period", "an end after its start", self.end)
        if not self.slo_latency_ms > 0:
            raise InvalidInputError.for_field("slo_latency_ms", "> 0", self.slo_latency_ms)
        if not 1 <= self.quality_buckets <= 365:
            raise InvalidInputError.for_field("quality_buckets", "1 to 365", self.quality_buckets)

    @classmethod
    def last(cls, period: timedelta, clock: Clock, **options: Any) -> KpiConfig:
        """The period ending now (by ``clock``)."""
        end = clock.now()
        return cls(end - period, end, **options)

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86_400

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": round(self.days, 6),
            "failure_window_s": self.failure_window.total_seconds(),
            "slo_latency_ms": self.slo_latency_ms,
            "quality_buckets": self.quality_buckets,
        }

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class VersionFacts:
    """What the registry knows about a version that lead times start from."""

    model: str
    version: int
    registered_at: datetime
    committed_at: datetime | None = None
    data_cutoff: datetime | None = None


@dataclass
class Attempt:
    """One try to put a version into production on an endpoint: a direct deploy (decided at
    once) or a rollout (decided by promotion, rollback or abort; pending meanwhile)."""

    endpoint: str
    model: str
    version: int
    previous: int | None
    via: str  # deploy | rollout
    started_at: datetime
    outcome: str = "pending"  # success | failed | pending
    decided_at: datetime | None = None
    rollout: Any = None
    deployment: Deployment | None = None


@dataclass
class Deployment:
    """A version becoming the primary of an endpoint (a direct deploy or a promotion)."""

    endpoint: str
    model: str
    version: int
    previous: int | None
    at: datetime
    attempt: Attempt
    reverted_at: datetime | None = None
    rework: bool = False


@dataclass
class History:
    """The deployment history of every endpoint, replayed from events in chain order."""

    attempts: list[Attempt] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    #: (endpoint, model, live versions, from, until) while a set of versions took traffic
    live: list[tuple[str, str, frozenset[int], datetime, datetime | None]] = field(
        default_factory=list
    )
    #: latest validation status per (model, version), with its time
    validations: dict[tuple[str, int], list[tuple[datetime, str]]] = field(default_factory=dict)


def replay(
    events: Iterable[Event],
    cfg: KpiConfig,
    live_at_end: dict[str, tuple[str, frozenset[int]]] | None = None,
) -> History:
    """Rebuild attempts, deployments and live traffic from events before ``cfg.end``.
    ``live_at_end`` maps endpoints to (model, versions with live traffic) as stored at the
    end of the period: it covers what older, pruned events no longer show."""
    h = History()
    primary: dict[str, int | None] = {}
    model_of: dict[str, str] = {}
    rollouts: dict[Any, Attempt] = {}
    live_since: dict[str, tuple[frozenset[int], datetime]] = {}
    last_failure: dict[str, datetime] = {}

    def set_live(ep: str, versions: frozenset[int], at: datetime) -> None:
        prev = live_since.get(ep)
        if prev is not None and prev[0] == versions:
            return
        if prev is not None:
            h.live.append((ep, model_of.get(ep, ""), prev[0], prev[1], at))
        if versions:
            live_since[ep] = (versions, at)
        else:
            live_since.pop(ep, None)

    def deployed(att: Attempt, at: datetime) -> None:
        ep = att.endpoint
        eps = [d for d in h.deployments if d.endpoint == ep]
        before = eps[-1] if eps else None
        served_before = {d.version for d in eps} | {d.previous for d in eps}
        fix = ep in last_failure and at - last_failure.pop(ep) <= cfg.failure_window
        dep = Deployment(ep, att.model, att.version, att.previous, at, att)
        dep.rework = fix or att.version in served_before
        if (
            before is not None
            and before.previous is not None
            and before.previous == att.version
            and at - before.at <= cfg.failure_window
        ):
            before.reverted_at = at  # the deployment before this one was reverted: it failed
            last_failure[ep] = at
        h.deployments.append(dep)
        att.deployment = dep
        primary[ep] = att.version
        set_live(ep, frozenset({att.version}), at)

    for ev in events:
        if ev.at >= cfg.end:
            continue
        p = ev.payload or {}
        kind = ev.kind
        if kind == "validation.completed" and "version" in p:
            key = (str(p.get("model")), int(p["version"]))
            h.validations.setdefault(key, []).append((ev.at, str(p.get("status"))))
        elif kind == "endpoint.deployed":
            ep, to = str(p.get("endpoint") or ev.subject), p.get("to_version")
            model_of[ep] = str(p.get("model"))
            if not isinstance(to, int) or to == primary.get(ep, p.get("from_version")):
                continue  # the same version again: a configuration change, not a deployment
            previous = primary.get(ep, p.get("from_version"))
            att = Attempt(ep, model_of[ep], to, previous, "deploy", ev.at, "success", ev.at)
            h.attempts.append(att)
            deployed(att, ev.at)
        elif kind == "endpoint.deleted":
            ep = str(p.get("endpoint") or ev.subject)
            primary.pop(ep, None)
            set_live(ep, frozenset(), ev.at)
        elif kind.startswith("rollout."):
            ep = str(p.get("endpoint") or ev.subject)
            if p.get("model") is not None:
                model_of[ep] = str(p["model"])
            rid = p.get("rollout")
            cand = p.get("candidate_version")
            if kind == "rollout.started" and isinstance(cand, int):
                base = p.get("baseline_version")
                previous = base if isinstance(base, int) else primary.get(ep)
                att = Attempt(
                    ep, model_of.get(ep, ""), cand, previous, "rollout", ev.at, rollout=rid
                )
                h.attempts.append(att)
                rollouts[rid] = att
            att_or_none = rollouts.get(rid)
            if kind == "rollout.promoted" and att_or_none and att_or_none.outcome == "pending":
                att_or_none.outcome, att_or_none.decided_at = "success", ev.at
                deployed(att_or_none, ev.at)
                continue
            if kind in FAILED_ROLLOUT_KINDS and att_or_none and att_or_none.outcome == "pending":
                att_or_none.outcome, att_or_none.decided_at = "failed", ev.at
                last_failure[ep] = ev.at
            weights = p.get("weights")
            if isinstance(weights, dict):
                live = set()
                for v, w in weights.items():
                    with contextlib.suppress(TypeError, ValueError):
                        if float(w) > 0:
                            live.add(int(v))
                set_live(ep, frozenset(live), ev.at)
    for ep, (versions, since) in live_since.items():
        h.live.append((ep, model_of.get(ep, ""), versions, since, None))
    for ep, (model, versions) in (live_at_end or {}).items():
        h.live.append((ep, model, versions, cfg.end - timedelta(microseconds=1), None))
    return h


def _stats(seconds: Sequence[float]) -> dict[str, Any]:
    if not seconds:
        return {"n": 0, "median_s": None, "mean_s": None, "max_s": None}
    a = np.asarray(seconds, dtype=np.float64)
    return {
        "n": int(a.size),
        "median_s": float(np.median(a)),
        "mean_s": float(a.mean()),
        "max_s": float(a.max()),
    }


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def delivery(
    h: History, model: str | None, cfg: KpiConfig, versions: Sequence[VersionFacts]
) -> dict[str, Any]:
    """Deployment frequency, lead times, change fail rate, recovery time, rework rate and
    deployment success rate of ``model`` (all models when None)."""
    deps = [d for d in h.deployments if model is None or d.model == model]
    in_period = [d for d in deps if cfg.contains(d.at)]
    attempts = [
        a for a in h.attempts if (model is None or a.model == model) and cfg.contains(a.started_at)
    ]
    decided = [a for a in attempts if a.outcome != "pending"]
    succeeded = [a for a in decided if a.outcome == "success"]

    def reverted(a: Attempt) -> bool:
        d = a.deployment
        return d is not None and d.reverted_at is not None and d.reverted_at < cfg.end

    failed = [a for a in decided if a.outcome == "failed" or reverted(a)]
    recovery = []
    for a in failed:
        if a.outcome == "failed" and a.decided_at is not None:
            recovery.append((a.decided_at - a.started_at).total_seconds())
        elif a.deployment is not None and a.deployment.reverted_at is not None:
            recovery.append((a.deployment.reverted_at - a.deployment.at).total_seconds())

    facts = {(f.model, f.version): f for f in versions}
    first_seen: set[tuple[str, int]] = set()
    lead: dict[str, list[float]] = {"commit": [], "registration": [], "data_cutoff": []}
    missing = {"commit": 0, "registration": 0, "data_cutoff": 0}
    for d in deps:  # chain order
        key = (d.model, d.version)
        if key in first_seen:
            continue
        first_seen.add(key)
        if not cfg.contains(d.at):
            continue
        f = facts.get(key)
        refs = {
            "commit": f.committed_at if f else None,
            "registration": f.registered_at if f else None,
            "data_cutoff": f.data_cutoff if f else None,
        }
        for name, ref in refs.items():
            if ref is None:
                missing[name] += 1
            else:
                lead[name].append((d.at - ref).total_seconds())
    weeks = cfg.days / 7
    return {
        "deployment_frequency": {
            "deployments": len(in_period),
            "per_day": len(in_period) / cfg.days,
            "per_week": len(in_period) / weeks,
        },
        "lead_time": {
            name: {**_stats(values), "not_recorded": missing[name]} for name, values in lead.items()
        },
        "change_fail_rate": {
            "changes": len(decided),
            "failed": len(failed),
            "rate": _ratio(len(failed), len(decided)),
            "pending": len(attempts) - len(decided),
        },
        "recovery_time": _stats(recovery),
        "rework_rate": {
            "deployments": len(in_period),
            "rework": sum(d.rework for d in in_period),
            "rate": _ratio(sum(d.rework for d in in_period), len(in_period)),
        },
        "deployment_success_rate": {
            "attempts": len(decided),
            "succeeded": len(succeeded),
            "rate": _ratio(len(succeeded), len(decided)),
        },
    }


def _model_mask(frame: pd.DataFrame, model: str | None) -> pd.DataFrame:
    return frame if model is None or frame.empty else frame[frame["model"] == model]


def _in_period(frame: pd.DataFrame, cfg: KpiConfig) -> pd.DataFrame:
    if frame.empty:
        return frame
    ts = pd.to_datetime(frame["ts"], utc=True)
    return frame[(ts >= pd.Timestamp(cfg.start)) & (ts < pd.Timestamp(cfg.end))]


def utilization(
    h: History,
    model: str | None,
    cfg: KpiConfig,
    versions: Sequence[VersionFacts],
    predictions: pd.DataFrame,
) -> dict[str, Any]:
    """Predictions per version, the share of ready versions that served traffic, and the
    versions that had live traffic weight in the period but served nothing."""
    preds = _in_period(_model_mask(predictions, model), cfg)
    served: dict[tuple[str, int], int] = {}
    shadow: dict[tuple[str, int], int] = {}
    if not preds.empty:
        is_shadow = preds["role"] == "shadow"
        for (m, v), n in preds[~is_shadow].groupby(["model", "version"]).size().items():
            served[(str(m), int(v))] = int(n)
        for (m, v), n in preds[is_shadow].groupby(["model", "version"]).size().items():
            shadow[(str(m), int(v))] = int(n)
    total = sum(served.values())
    keys = sorted(set(served) | set(shadow))
    per_version = [
        {
            "model": m,
            "version": v,
            "served": served.get((m, v), 0),
            "shadow": shadow.get((m, v), 0),
            "share": _ratio(served.get((m, v), 0), total),
        }
        for m, v in keys
    ]
    ready = []
    for f in versions:
        if (model is not None and f.model != model) or f.registered_at >= cfg.end:
            continue
        checks = [s for t, s in h.validations.get((f.model, f.version), []) if t < cfg.end]
        if not checks or checks[-1] != "fail":
            ready.append((f.model, f.version))
    with_traffic = [k for k in ready if served.get(k, 0) > 0]
    deployed: set[tuple[str, int]] = set()
    for _ep, m, live, since, until in h.live:
        if (
            (model is None or m == model)
            and since < cfg.end
            and (until is None or until > cfg.start)
        ):
            deployed.update((m, v) for v in live)
    idle = sorted(k for k in deployed if served.get(k, 0) == 0)
    return {
        "predictions": total,
        "shadow_predictions": sum(shadow.values()),
        "per_version": per_version,
        "ready_versions": len(ready),
        "ready_with_traffic": len(with_traffic),
        "ready_with_traffic_share": _ratio(len(with_traffic), len(ready)),
        "deployed_idle": [{"model": m, "version": v} for m, v in idle],
    }


def slo(model: str | None, cfg: KpiConfig, predictions: pd.DataFrame) -> dict[str, Any]:
    """Share of live requests (shadow copies excluded; a request counted once however many
    rows it had) answered without error within the latency SLO."""
    preds = _in_period(_model_mask(predictions, model), cfg)
    if not preds.empty:
        preds = preds[preds["role"] != "shadow"].drop_duplicates("request_id")
    out: dict[str, Any] = {"slo_latency_ms": cfg.slo_latency_ms}
    out.update(_slo_figures(preds, cfg.slo_latency_ms))
    out["per_version"] = (
        [
            {"model": str(m), "version": int(v), **_slo_figures(part, cfg.slo_latency_ms)}
            for (m, v), part in preds.groupby(["model", "version"], sort=True)
        ]
        if not preds.empty
        else []
    )
    return out


def _slo_figures(reqs: pd.DataFrame, limit_ms: float) -> dict[str, Any]:
    n = len(reqs)
    if not n:
        return dict.fromkeys(
            ("attainment", "error_rate", "latency_p50_ms", "latency_p95_ms"), None
        ) | {"requests": 0, "good": 0}
    status = reqs["status"].to_numpy()
    latency = reqs["latency_ms"].to_numpy(dtype=np.float64)
    ok = status < 400
    good = int(np.sum(ok & (latency <= limit_ms)))
    return {
        "requests": n,
        "good": good,
        "attainment": good / n,
        "error_rate": float(np.mean(~ok)),
        "latency_p50_ms": float(np.quantile(latency, 0.5)),
        "latency_p95_ms": float(np.quantile(latency, 0.95)),
    }


def quality_trend(
    model: str | None,
    cfg: KpiConfig,
    labeled: pd.DataFrame | None,
    reason: str = "",
) -> dict[str, Any]:
    """Production quality of live predictions with feedback, per equal sub-period: accuracy
    for labels, MAE for numbers. ``labeled`` has ``model, version, role, ts, status, output,
    value``; None means feedback is unavailable (``reason`` says why)."""
    if labeled is None:
        return {"metric": None, "buckets": [], "change": None, "reason": reason}
    from lockgate.rollout.analysis import Labeled, quality_of

    rows = _in_period(_model_mask(labeled, model), cfg)
    if not rows.empty:
        rows = rows[(rows["role"] != "shadow") & (rows["status"] < 400)]
    width = (cfg.end - cfg.start) / cfg.quality_buckets
    ts = pd.to_datetime(rows["ts"], utc=True) if not rows.empty else None
    buckets: list[dict[str, Any]] = []
    metric: str | None = None
    for i in range(cfg.quality_buckets):
        lo, hi = cfg.start + i * width, cfg.start + (i + 1) * width
        part = rows[(ts >= pd.Timestamp(lo)) & (ts < pd.Timestamp(hi))] if ts is not None else rows
        entry: dict[str, Any] = {
            "start": lo.isoformat(),
            "end": hi.isoformat(),
            "labels": len(part),
        }
        if len(part):
            q = quality_of(Labeled(0, _predicted(part["output"]), _truth(part["value"])))
            metric = metric or ("accuracy" if "accuracy" in q else "mae" if "mae" in q else None)
            entry["value"] = q.get(metric) if metric else None
        else:
            entry["value"] = None
        buckets.append(entry)
    values = [b["value"] for b in buckets if b["value"] is not None]
    change = values[-1] - values[0] if len(values) >= 2 else None
    direction = None
    if change is not None:
        better = change > 0 if metric == "accuracy" else change < 0
        flat = math.isclose(change, 0.0, abs_tol=1e-12)
        direction = "flat" if flat else ("improving" if better else "worsening")
    return {
        "metric": metric,
        "buckets": buckets,
        "change": change,
        "direction": direction,
        "reason": "" if values else (reason or "no feedback on live predictions in the period"),
    }


def _predicted(col: pd.Series) -> np.ndarray:
    a: np.ndarray = np.asarray(col.to_numpy())
    if a.dtype == object and len(a):
        with contextlib.suppress(TypeError, ValueError):
            a = a.astype(np.float64)
    return a


def _truth(col: pd.Series) -> np.ndarray:
    values = col.tolist()
    if all(isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.int64)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.float64)
    return np.asarray([str(v) for v in values], dtype=object)


def compute(
    model: str | None,
    cfg: KpiConfig,
    history: History,
    versions: Sequence[VersionFacts],
    predictions: pd.DataFrame,
    labeled: pd.DataFrame | None,
    labeled_reason: str = "",
) -> dict[str, Any]:
    """Every KPI of ``model`` (all models when None) over ``cfg``'s period."""
    return {
        "model": model,
        **delivery(history, model, cfg, versions),
        "utilization": utilization(history, model, cfg, versions, predictions),
        "slo": slo(model, cfg, predictions),
        "quality_trend": quality_trend(model, cfg, labeled, labeled_reason),
    }


def empty_predictions() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in PREDICTION_COLUMNS})
