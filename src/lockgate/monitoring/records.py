"""Monitor and alert rows as values: :class:`MonitorInfo` and :class:`~.monitors.Alert` from
the ``monitors`` and ``alerts`` tables, and the JSON documents stored with them (secrets and
webhook paths never in an event)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from lockgate.monitoring.alerts import redact_url
from lockgate.monitoring.monitors import Alert, MonitorSpec, Webhook
from lockgate.store.schema import AlertRow, MonitorRow


class MonitorInfo:
    """A stored monitor: its definition and its current state."""

    def __init__(self, row: MonitorRow) -> None:
        self.spec = spec_of(row)
        self.id = row.id
        self.state = row.state
        self.value = row.value
        self.measurement = row.measurement
        self.firing_since = row.firing_since
        self.last_evaluated_at = row.last_evaluated_at
        self.next_eval_at = row.next_eval_at
        self.created_at = row.created_at
        self.created_by = row.created_by
        self.updated_at = row.updated_at

    @property
    def name(self) -> str:
        return self.spec.name

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.spec.to_dict(),
            "state": self.state,
            "value": self.value,
            "firing_since": iso(self.firing_since),
            "last_evaluated_at": iso(self.last_evaluated_at),
            "next_eval_at": iso(self.next_eval_at),
            "measurement": self.measurement,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "updated_at": iso(self.updated_at),
        }


def spec_of(row: MonitorRow) -> MonitorSpec:
    p = dict(row.params)
    return MonitorSpec(
        name=row.name,
        endpoint=row.endpoint,
        kind=row.kind,  # type: ignore[arg-type]
        threshold=p.get("threshold"),
        window=p.get("window", 3600.0),
        interval=p.get("interval", 60.0),
        metric=p.get("metric"),
        quantile=p.get("quantile", 0.99),
        min_samples=p.get("min_samples"),
        version=p.get("version"),
        columns=tuple(p.get("columns") or ()),
        drift=dict(p.get("drift") or {}),
        positive=p.get("positive"),
        include_4xx=bool(p.get("include_4xx", False)),
        webhooks=tuple(Webhook(h["url"], h.get("secret")) for h in row.webhooks or []),
        enabled=row.enabled,
        description=p.get("description", ""),
    )


def alert_of(row: AlertRow) -> Alert:
    body = row.body or {}
    return Alert(
        id=row.id,
        monitor=row.monitor,
        endpoint=row.endpoint,
        kind=row.kind,
        status=row.status,  # type: ignore[arg-type]
        at=row.at,
        value=row.value,
        threshold=row.threshold,
        comparison=str(body.get("comparison", "")),
        message=row.message,
        version=body.get("version"),
        firing_since=parse_time(body.get("firing_since")),
        measurement=dict(body.get("measurement") or {}),
        deliveries={
            "delivery": row.delivery,
            "attempts": row.attempts,
            "results": row.deliveries or [],
            "delivered_at": iso(row.delivered_at),
        },
    )


def audit_doc(spec: MonitorSpec) -> dict[str, Any]:
    """The definition for the event trail: webhook URLs redacted, no secrets."""
    doc = spec.to_dict()
    doc["webhooks"] = [
        {"url": redact_url(h.url), "secret": "set" if h.secret else None} for h in spec.webhooks
    ]
    return doc


def jsonable(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(
        orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY, default=str)
    )
    return out


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
