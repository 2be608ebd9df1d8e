"""Monitors: declarative rules over windows of an endpoint's predictions and feedback, as
values. No database and no HTTP here: :class:`MonitorSpec` is a validated definition,
:func:`transition` the state machine that decides when an alert fires or resolves, and
:class:`Alert` the value that is logged, stored and posted to webhooks.

Kinds (``value`` is what is compared with ``threshold``):

=============  ======================================================================  =====
kind           value over the window                                                   fires
=============  ======================================================================  =====
``drift``      share of the feature columns whose drift is material (and significant,  ``>=``
               as :class:`~lockgate.monitoring.DriftConfig` judges a column "drift")
               between the version's reference profile and its primary traffic
``quality``    a quality metric from feedback (accuracy, f1, roc_auc, mae, ...) of the  ``<``
               version's primary predictions; for losses (log_loss, mae, rmse)         (``>``)
``error_rate`` share of requests answered with a 5xx status (4xx too with              ``>``
               ``include_4xx``), every role but shadows
``latency``    the ``quantile`` of the latency in ms of those requests                 ``>``
=============  ======================================================================  =====

State: ``unknown`` until a first measurement with enough data, then ``ok`` or ``firing``.
An alert is raised on every change to ``firing`` and on every change back to ``ok``
(resolved), never while a monitor stays firing: alerts are deduplicated by construction. A
window without enough data (``min_samples``) leaves the state as it is.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, TypeAlias, get_args

from lockgate.errors import InvalidInputError
from lockgate.monitoring.quality import HIGHER_IS_BETTER, METRICS
from lockgate.store.paths import validate_name

MonitorKind: TypeAlias = Literal["drift", "quality", "error_rate", "latency"]
State: TypeAlias = Literal["unknown", "ok", "firing"]
AlertStatus: TypeAlias = Literal["firing", "resolved"]

KINDS: tuple[str, ...] = get_args(MonitorKind)
#: rows, labels or requests a window needs by default before it is judged
DEFAULT_MIN_SAMPLES: dict[str, int] = {
    "drift": 100,
    "quality": 30,
    "error_rate": 20,
    "latency": 20,
}
DEFAULT_THRESHOLD: dict[str, float] = {"drift": 0.5, "error_rate": 0.05}
#: keys of ``MonitorSpec.drift`` passed on to DriftConfig
DRIFT_KEYS: frozenset[str] = frozenset(
    {
        "alpha",
        "correction",
        "psi_threshold",
        "wasserstein_threshold",
        "js_threshold",
        "missing_rate_threshold",
        "require_significance",
    }
)
MAX_WEBHOOKS = 8

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}


def parse_duration(
    value: str | float | int, field_name: str, *, low: float = 1.0, high: float = 30 * 86_400
) -> float:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"1h"``, ``"2d"``, ``"1w"`` or ``"500ms"``."""
    if isinstance(value, bool):
        seconds = math.nan
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        seconds = float(m[1]) * _UNITS[m[2] or "s"] if m else math.nan
    if not math.isfinite(seconds) or not low <= seconds <= high:
        raise _error(
            field_name, f"a duration from {_human(low)} to {_human(high)} (30s, 5m, 1h, 2d)", value
        )
    return seconds


def _human(seconds: float) -> str:
    for unit, size in (("d", 86_400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds:g}s"


def _error(name: str, expected: str, got: Any) -> InvalidInputError:
    return InvalidInputError(
        f"The {name!r} parameter of MonitorSpec must be {expected}. Got {got!r} instead.",
        field=name,
        expected=expected,
        got=got,
    )


@dataclass(frozen=True)
class Webhook:
    """Where alerts are posted. ``secret`` signs the body (HMAC-SHA256); without one the
    server's ``LOCKGATE_WEBHOOK_SECRET`` is used. The secret is write-only: never shown,
    logged or put in an event."""

    url: str
    secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from lockgate.monitoring.alerts import validate_webhook_url

        object.__setattr__(self, "url", validate_webhook_url(self.url))
        if self.secret is not None and (not isinstance(self.secret, str) or not self.secret):
            raise _error("webhooks.secret", "a non-empty string", "another value")

    def public(self) -> dict[str, Any]:
        """The webhook without its secret (``secret`` says only whether one is set)."""
        return {"url": self.url, "secret": "set" if self.secret else None}

    def stored(self) -> dict[str, Any]:
        return {"url": self.url, "secret": self.secret}


@dataclass(frozen=True)
class MonitorSpec:
    """A monitor's definition; every field is checked on construction."""

    name: str
    endpoint: str
    kind: MonitorKind
    #: the value at which the monitor fires (see the module docstring for the direction);
    #: default 0.5 for drift (as DriftConfig.drift_share) and 0.05 for error_rate
    threshold: float | None = None
    #: seconds of predictions each evaluation looks at, ending at the evaluation time
    window: float = 3600.0
    #: seconds between evaluations
    interval: float = 60.0
    #: quality: the metric, one of quality.METRICS
    metric: str | None = None
    #: latency: the quantile of the latency compared with the threshold (ms)
    quantile: float = 0.99
    #: rows (drift), labels (quality) or requests (error_rate, latency) needed to judge
    min_samples: int | None = None
    #: the version watched; None: the endpoint's primary version at each evaluation
    version: int | None = None
    #: drift: only these input columns (default: every column of the reference profile)
    columns: tuple[str, ...] = ()
    #: drift: DriftConfig parameters (alpha, correction, psi_threshold, ...)
    drift: dict[str, Any] = field(default_factory=dict)
    #: quality: the positive class of a binary classifier (default 1/True or the greater)
    positive: str | None = None
    #: error_rate: count 4xx answers as errors too
    include_4xx: bool = False
    webhooks: tuple[Webhook, ...] = ()
    enabled: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        validate_name(self.name, "name")
        validate_name(self.endpoint, "endpoint")
        if self.kind not in KINDS:
            raise _error("kind", "one of " + ", ".join(KINDS), self.kind)
        threshold = self.threshold
        if threshold is None:
            if self.kind not in DEFAULT_THRESHOLD:
                raise _error("threshold", f"a number (required for a {self.kind} monitor)", None)
            threshold = DEFAULT_THRESHOLD[self.kind]
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise _error("threshold", "a number", threshold)
        threshold = float(threshold)
        if self.kind in ("drift", "error_rate") and not 0 <= threshold <= 1:
            raise _error("threshold", "a share in the range [0, 1]", threshold)
        if not math.isfinite(threshold) or (self.kind == "latency" and threshold <= 0):
            raise _error("threshold", "a finite number (> 0 ms for latency)", threshold)
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "window", parse_duration(self.window, "window"))
        object.__setattr__(
            self, "interval", parse_duration(self.interval, "interval", low=0.1, high=86_400)
        )
        if self.kind == "quality":
            if self.metric not in METRICS:
                raise _error("metric", "one of " + ", ".join(METRICS), self.metric)
        elif self.metric is not None:
            raise _error("metric", f"None for a {self.kind} monitor", self.metric)
        q = self.quantile
        if isinstance(q, bool) or not isinstance(q, int | float) or not 0 < q <= 1:
            raise _error("quantile", "a number in the range (0, 1]", q)
        n = self.min_samples if self.min_samples is not None else DEFAULT_MIN_SAMPLES[self.kind]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10_000_000:
            raise _error("min_samples", "an int in the range [1, 10000000]", n)
        object.__setattr__(self, "min_samples", n)
        if self.version is not None and (
            isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1
        ):
            raise _error("version", "a version number >= 1 or None", self.version)
        cols = self.columns
        if isinstance(cols, str) or not all(isinstance(c, str) and c for c in cols):
            raise _error("columns", "a list of column names", cols)
        object.__setattr__(self, "columns", tuple(dict.fromkeys(cols)))
        if not isinstance(self.drift, dict) or set(self.drift) - DRIFT_KEYS:
            bad = sorted(set(self.drift) - DRIFT_KEYS) if isinstance(self.drift, dict) else []
            raise _error("drift", "DriftConfig parameters: " + ", ".join(sorted(DRIFT_KEYS)), bad)
        if self.drift:
            self.drift_config()  # validated by DriftConfig itself
        if self.positive is not None and not isinstance(self.positive, str):
            object.__setattr__(self, "positive", str(self.positive))
        hooks = tuple(h if isinstance(h, Webhook) else _webhook(h) for h in (self.webhooks or ()))
        if len(hooks) > MAX_WEBHOOKS:
            raise _error("webhooks", f"at most {MAX_WEBHOOKS} webhooks", len(hooks))
        urls = [h.url for h in hooks]
        if len(set(urls)) != len(urls):
            raise _error("webhooks", "distinct URLs", "a URL given twice")
        object.__setattr__(self, "webhooks", hooks)
        for name in ("enabled", "include_4xx"):
            if not isinstance(getattr(self, name), bool):
                raise _error(name, "a bool", getattr(self, name))
        if not isinstance(self.description, str):
            raise _error("description", "a string", self.description)

    # -- judging -----------------------------------------------------------------------
    @property
    def comparison(self) -> str:
        """How a value is compared with the threshold to fire: ``>=``, ``<`` or ``>``."""
        if self.kind == "drift":
            return ">="
        if self.kind == "quality":
            return "<" if self.metric in HIGHER_IS_BETTER else ">"
        return ">"

    def breached(self, value: float) -> bool:
        t = self.threshold
        assert t is not None
        return {">=": value >= t, "<": value < t, ">": value > t}[self.comparison]

    def drift_config(self, min_sample_size: int | None = None) -> Any:
        from lockgate.monitoring.config import DriftConfig

        return DriftConfig(
            **self.drift, min_sample_size=min_sample_size or int(self.min_samples or 100)
        )

    def describe(self) -> str:
        """``share of drifted columns >= 0.5 over 1h`` and the like."""
        what = {
            "drift": "share of drifted columns",
            "quality": str(self.metric),
            "error_rate": "error rate",
            "latency": f"p{self.quantile * 100:g} latency (ms)",
        }[self.kind]
        return f"{what} {self.comparison} {self.threshold:g} over {_human(self.window)}"

    # -- (de)serialisation ---------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The kind-specific settings stored with the monitor."""
        return {
            "threshold": self.threshold,
            "window": self.window,
            "interval": self.interval,
            "metric": self.metric,
            "quantile": self.quantile,
            "min_samples": self.min_samples,
            "version": self.version,
            "columns": list(self.columns),
            "drift": dict(self.drift),
            "positive": self.positive,
            "include_4xx": self.include_4xx,
            "description": self.description,
        }

    def to_dict(self) -> dict[str, Any]:
        """The definition without webhook secrets."""
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "kind": self.kind,
            **self.params(),
            "comparison": self.comparison,
            "enabled": self.enabled,
            "webhooks": [h.public() for h in self.webhooks],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MonitorSpec:
        """A spec from ``to_dict``-like input (also what the REST API and CLI accept)."""
        if not isinstance(d, dict):
            raise InvalidInputError.for_field("monitor", "an object", type(d).__name__)
        allowed = set(cls.__dataclass_fields__) | {"comparison"}
        unknown = set(d) - allowed
        if unknown:
            raise InvalidInputError.for_field(
                "monitor", "keys among " + ", ".join(sorted(allowed)), sorted(unknown)
            )
        args = {k: v for k, v in d.items() if k != "comparison"}
        for key in ("name", "endpoint", "kind"):
            if key not in args:
                raise InvalidInputError.for_field(key, "a value (required)", None)
        if "columns" in args and args["columns"] is not None:
            if isinstance(args["columns"], str) or not isinstance(args["columns"], list | tuple):
                raise _error("columns", "a list of column names", args["columns"])
            args["columns"] = tuple(args["columns"])
        if args.get("columns") is None:
            args.pop("columns", None)
        if args.get("drift") is None:
            args.pop("drift", None)
        hooks = args.get("webhooks") or ()
        if isinstance(hooks, str | dict) or not isinstance(hooks, list | tuple):
            raise _error("webhooks", "a list of {url, secret?} objects", hooks)
        args["webhooks"] = tuple(hooks)
        return cls(**args)

    def with_webhooks(self, webhooks: tuple[Webhook, ...]) -> MonitorSpec:
        return replace(self, webhooks=webhooks)


def _webhook(raw: Any) -> Webhook:
    if isinstance(raw, str):
        return Webhook(raw)
    if isinstance(raw, dict) and "url" in raw and set(raw) <= {"url", "secret"}:
        secret = raw.get("secret")
        return Webhook(str(raw["url"]), secret if secret not in ("", "set") else None)
    raise _error("webhooks", "a URL or an object {url, secret?}", raw)


# -- measuring and judging ---------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One evaluation's figure. ``value`` is None when the window lacked data (then
    ``reason`` says why) or the measurement failed (``error``)."""

    value: float | None
    n: int
    since: datetime
    until: datetime
    version: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": _num(self.value),
            "n": self.n,
            "version": self.version,
            "window": {"since": self.since.isoformat(), "until": self.until.isoformat()},
            "reason": self.reason,
            "error": self.error,
            "detail": self.detail,
        }


def transition(state: str, spec: MonitorSpec, m: Measurement) -> tuple[State, AlertStatus | None]:
    """The next state and the alert to raise, if any. Deduplicated: a firing monitor raises
    nothing until it resolves; a window without a value keeps the state."""
    current: State = state if state in ("unknown", "ok", "firing") else "unknown"  # type: ignore[assignment]
    if m.value is None:
        return current, None
    if spec.breached(m.value):
        return "firing", (None if current == "firing" else "firing")
    return "ok", ("resolved" if current == "firing" else None)


@dataclass(frozen=True)
class Alert:
    """A monitor that started firing or resolved: logged, stored and posted to webhooks.
    :meth:`to_dict` is the webhook body."""

    id: int
    monitor: str
    endpoint: str
    kind: str
    status: AlertStatus
    at: datetime
    value: float | None
    threshold: float
    comparison: str
    message: str
    version: int | None = None
    firing_since: datetime | None = None
    measurement: dict[str, Any] = field(default_factory=dict)
    deliveries: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "monitor": self.monitor,
            "endpoint": self.endpoint,
            "kind": self.kind,
            "status": self.status,
            "at": self.at.isoformat(),
            "value": _num(self.value),
            "threshold": self.threshold,
            "comparison": self.comparison,
            "message": self.message,
            "version": self.version,
            "firing_since": self.firing_since.isoformat() if self.firing_since else None,
            "measurement": self.measurement,
        }


def alert_message(spec: MonitorSpec, status: AlertStatus, m: Measurement) -> str:
    value = "n/a" if m.value is None else f"{m.value:.4g}"
    verb = "FIRING" if status == "firing" else "RESOLVED"
    version = f" v{m.version}" if m.version is not None else ""
    return (
        f"{verb} {spec.name} on {spec.endpoint}{version}: {spec.kind} value {value} "
        f"(fires when {spec.describe()}, n={m.n})"
    )


def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)
