"""Monitoring windows of a served endpoint: drift against the version's reference profile,
quality from feedback and request figures, read from the prediction log.

These functions gather data and call the pure core (:func:`~lockgate.monitoring.detect_drift`,
:func:`~lockgate.monitoring.quality.quality`); the monitor service, the CLI and the REST API
all use them, so a report and an alert always agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lockgate.errors import InvalidInputError, NotFoundError, SchemaError
from lockgate.monitoring.config import DriftConfig
from lockgate.monitoring.drift import detect_drift
from lockgate.monitoring.profile import Profile
from lockgate.monitoring.quality import QualityReport, Task, quality
from lockgate.monitoring.report import DriftReport

if TYPE_CHECKING:
    from lockgate.feedback import FeedbackService
    from lockgate.store.predlog import PredictionLog
    from lockgate.workspace import Workspace

#: roles whose answers reach callers (shadows do not)
SERVED_ROLES: tuple[str, ...] = ("primary", "canary", "arm")
#: reference columns that hold model outputs, compared with the log's ``output``
OUTPUT_NAMES: tuple[str, ...] = ("prediction", "output")
_INPUT = "input."


def window_bounds(
    now: datetime,
    window: float | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[datetime, datetime]:
    """``[since, until)``: explicit bounds, else the ``window`` seconds ending at ``now``."""
    end = until or now
    start = since or (end - timedelta(seconds=window if window is not None else 3600.0))
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    if start >= end:
        raise InvalidInputError.for_field("since", f"a time before {end.isoformat()}", start)
    return start, end


@dataclass(frozen=True)
class EndpointDrift:
    """Drift of one version's primary traffic over a window against its reference profile.
    ``reference`` and ``current`` are kept for reports (plots); they are not serialised."""

    endpoint: str
    model: str
    version: int
    since: datetime
    until: datetime
    report: DriftReport
    reference: Profile | None = field(default=None, repr=False)
    current: pd.DataFrame | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "model": self.model,
            "version": self.version,
            "reference": f"profile of {self.model}/{self.version}",
            "window": {"since": self.since.isoformat(), "until": self.until.isoformat()},
            **self.report.to_dict(),
        }


def version_of(ws: Workspace, endpoint: str, version: int | None) -> tuple[str, int]:
    """The endpoint's model and the version watched (default: its primary)."""
    info = ws.endpoints.get(endpoint)
    return info.model, int(version if version is not None else info.policy.primary)


def endpoint_drift(
    ws: Workspace,
    predlog: PredictionLog,
    endpoint: str,
    *,
    since: datetime,
    until: datetime,
    version: int | None = None,
    config: DriftConfig | None = None,
    columns: Sequence[str] | None = None,
    profile: Profile | None = None,
) -> EndpointDrift:
    """Drift of ``endpoint``'s primary traffic (successful requests) in ``[since, until)``
    against the stored reference profile of the version (default: the current primary)."""
    model, v = version_of(ws, endpoint, version)
    mv = ws.registry.get_version(f"{model}/{v}")
    if profile is None:
        profile = ws.registry.load_profile(mv)
    if profile is None:
        raise NotFoundError(
            "reference profile",
            mv.ref,
            f"{mv.ref} has no reference profile: register it with reference data "
            "(`lockgate models register ... --reference FILE`) to watch its drift",
        )
    inputs = set(mv.signature.input_names)
    if columns:
        unknown = [c for c in columns if c not in profile.columns or c not in inputs]
        if unknown:
            raise SchemaError.for_field(
                "columns", f"inputs of {mv.ref} in its reference profile", unknown
            )
        names = list(dict.fromkeys(columns))
    else:
        names = [n for n, c in profile.columns.items() if n in inputs and c.dtype != "datetime"]
    if not names:
        raise SchemaError.for_field(
            "reference", f"a profile with some of the inputs of {mv.ref}", sorted(profile.columns)
        )
    output = next((o for o in OUTPUT_NAMES if o in profile.columns and o not in inputs), None)
    current = _window_frame(predlog, endpoint, names, output, since, until, v)
    if output is not None and output not in current.columns:
        output = None
    cfg = config or DriftConfig()
    if output is not None:
        cfg = replace(cfg, output_columns=(output,))
    elif cfg.output_columns:
        cfg = replace(cfg, output_columns=())
    tested = names + ([output] if output else [])
    report = detect_drift(profile, current, cfg, columns=tested)
    return EndpointDrift(endpoint, model, v, since, until, report, profile, current)


def _window_frame(
    predlog: PredictionLog,
    endpoint: str,
    names: list[str],
    output: str | None,
    since: datetime,
    until: datetime,
    version: int,
) -> pd.DataFrame:
    cols = [_INPUT + n for n in names] + ["status"]
    table = None
    if output is not None:
        try:
            table = predlog.read_table(
                endpoint, since=since, until=until, columns=[*cols, "output"],
                roles=["primary"], version=version,
            )  # fmt: skip
        except InvalidInputError:  # outputs stored as output.<name>: not comparable
            table = None
    if table is None:
        table = predlog.read_table(
            endpoint, since=since, until=until, columns=cols, roles=["primary"], version=version
        )
    frame = table.to_pandas()
    frame = frame[frame["status"] < 400].drop(columns=["status"]).reset_index(drop=True)
    renames = {c: c.removeprefix(_INPUT) for c in frame.columns if c.startswith(_INPUT)}
    if "output" in frame.columns and output is not None:
        renames["output"] = output
    return frame.rename(columns=renames)


# -- quality -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionQuality:
    version: int
    role: str
    report: QualityReport

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "role": self.role, **self.report.to_dict()}


@dataclass(frozen=True)
class EndpointQuality:
    """Quality per (version, role) of an endpoint's predictions made in ``[since, until)``
    that have feedback."""

    endpoint: str
    since: datetime
    until: datetime
    versions: list[VersionQuality]

    def get(self, version: int, role: str = "primary") -> VersionQuality | None:
        for vq in self.versions:
            if vq.version == version and vq.role == role:
                return vq
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "window": {"since": self.since.isoformat(), "until": self.until.isoformat()},
            "versions": [v.to_dict() for v in self.versions],
        }


def endpoint_quality(
    feedback: FeedbackService,
    endpoint: str,
    *,
    since: datetime,
    until: datetime,
    version: int | None = None,
    roles: Sequence[str] | None = None,
    task: Task | None = None,
    positive: Any = None,
    confidence: float = 0.95,
) -> EndpointQuality:
    """Join the feedback of ``endpoint`` to its predictions of the window (successful ones)
    and measure quality per version and role (only ``version``/``roles`` when given)."""
    joined = feedback.joined(endpoint, since=since, until=until)
    out: list[VersionQuality] = []
    if not joined.empty:
        groups = joined.groupby(["version", "role"], sort=True).size().index.tolist()
        for v, role in groups:
            if (version is not None and int(v) != version) or (roles and role not in roles):
                continue
            lab = feedback.labeled(joined, int(v), [str(role)])
            if lab.n == 0:
                continue
            predicted = _predicted(lab.predicted)
            report = quality(
                lab.truth, predicted, task=task, positive=positive, confidence=confidence
            )
            out.append(VersionQuality(int(v), str(role), report))
    return EndpointQuality(endpoint, since, until, out)


def _predicted(values: np.ndarray) -> np.ndarray:
    if values.dtype == object and values.size and isinstance(values[0], np.ndarray):
        return np.stack(list(values))  # (n, k) class probabilities logged as a tensor
    return values


# -- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestStats:
    """Requests answered in a window (every role but shadows; one per request id)."""

    n: int
    errors_5xx: int
    errors_4xx: int
    latency_ms: np.ndarray = field(repr=False)

    def error_rate(self, include_4xx: bool = False) -> float | None:
        if self.n == 0:
            return None
        errors = self.errors_5xx + (self.errors_4xx if include_4xx else 0)
        return errors / self.n

    def latency_quantile(self, q: float) -> float | None:
        if self.latency_ms.size == 0:
            return None
        value = float(np.quantile(self.latency_ms, q))
        return value if math.isfinite(value) else None


def request_stats(
    predlog: PredictionLog,
    endpoint: str,
    *,
    since: datetime,
    until: datetime,
    version: int | None = None,
) -> RequestStats:
    table = predlog.read_table(
        endpoint, since=since, until=until, columns=["request_id", "status", "latency_ms"],
        roles=list(SERVED_ROLES), version=version,
    )  # fmt: skip
    if table.num_rows == 0:
        return RequestStats(0, 0, 0, np.zeros(0))
    frame = table.to_pandas().drop_duplicates("request_id")
    status = frame["status"].to_numpy()
    return RequestStats(
        len(frame),
        int(np.count_nonzero(status >= 500)),
        int(np.count_nonzero((status >= 400) & (status < 500))),
        frame["latency_ms"].to_numpy(dtype=np.float64),
    )
