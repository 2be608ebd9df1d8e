"""The gate contract: a named check with declared parameters that turns a candidate version (and
optionally a baseline) into ``pass``, ``fail`` or ``inconclusive``.

A gate is a subclass of :class:`Gate` with a ``type`` name, a ``parameters`` mapping of
:class:`~lockgate.gates.params.Param` and an ``evaluate(ctx)`` method. The constructor stores the
raw parameter values and does nothing else; :meth:`Gate.validate_params` checks them (before any
gate of a run evaluates) and sets ``params_``.

``evaluate`` returns a :class:`GateResult`, usually built from :class:`Check` values with
:meth:`Gate.result`: each check compares one observed number with one threshold. The status of
a gate is ``fail`` if any check failed, else ``inconclusive`` if any check could not be decided
(too little data, no baseline to compare with), else ``pass``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

from lockgate.gates.params import Param, validate_params

if TYPE_CHECKING:
    from lockgate.gates.context import GateContext

Status: TypeAlias = Literal["pass", "fail", "inconclusive"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "inconclusive")
Bound: TypeAlias = Literal["min", "max"]


def combine(statuses: Iterable[Status]) -> Status:
    """``fail`` beats ``inconclusive`` beats ``pass``; nothing to judge is ``pass``."""
    seen = set(statuses)
    if "fail" in seen:
        return "fail"
    if "inconclusive" in seen:
        return "inconclusive"
    return "pass"


def fmt(value: Any) -> str:
    """A number as a report shows it: 4 significant digits, ``n/a`` when undefined."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is None, NaN or infinite."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class Check:
    """One comparison of an observed value with a threshold.

    ``key`` names what was measured (``roc_auc``, ``roc_auc.change``, ``roc_auc[region=north]``,
    ``load_s``); ``bound`` says whether ``threshold`` is a minimum or a maximum. ``baseline`` is
    the baseline's value when the check compares with one.
    """

    key: str
    status: Status
    message: str
    observed: float | None = None
    threshold: float | None = None
    bound: Bound | None = None
    baseline: float | None = None

    @classmethod
    def at_least(
        cls, key: str, observed: float | None, minimum: float, *, label: str | None = None
    ) -> Check:
        """Passes when ``observed >= minimum``; inconclusive when ``observed`` is undefined."""
        return cls._bounded(key, observed, minimum, "min", label)

    @classmethod
    def at_most(
        cls, key: str, observed: float | None, maximum: float, *, label: str | None = None
    ) -> Check:
        """Passes when ``observed <= maximum``; inconclusive when ``observed`` is undefined."""
        return cls._bounded(key, observed, maximum, "max", label)

    @classmethod
    def _bounded(
        cls, key: str, observed: float | None, threshold: float, bound: Bound, label: str | None
    ) -> Check:
        what = label or key
        value = finite(observed)
        if value is None:
            return cls(key, "inconclusive", f"{what} is undefined", None, float(threshold), bound)
        ok = value >= threshold if bound == "min" else value <= threshold
        word = "minimum" if bound == "min" else "maximum"
        if ok:
            msg = f"{what} {fmt(value)} within the {word} {fmt(threshold)}"
        else:
            side = "below" if bound == "min" else "above"
            msg = f"{what} {fmt(value)} is {side} the {word} {fmt(threshold)}"
        return cls(key, "pass" if ok else "fail", msg, value, float(threshold), bound)

    @classmethod
    def undecided(cls, key: str, message: str) -> Check:
        """A check that could not be decided (no data, no baseline, a group too small)."""
        return cls(key, "inconclusive", message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "observed": finite(self.observed),
            "threshold": finite(self.threshold),
            "bound": self.bound,
            "baseline": finite(self.baseline),
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Check:
        return cls(
            key=d["key"],
            status=d["status"],
            message=d.get("message", ""),
            observed=d.get("observed"),
            threshold=d.get("threshold"),
            bound=d.get("bound"),
            baseline=d.get("baseline"),
        )


@dataclass(frozen=True)
class GateResult:
    """What one gate concluded. ``observed`` and ``threshold`` map check keys to values
    (thresholds as ``{"min": x}`` or ``{"max": x}``); ``details`` holds gate-specific evidence
    (per-group tables, latency percentiles, the smoke process's exit)."""

    name: str
    type: str
    status: Status
    reason: str
    checks: tuple[Check, ...] = ()
    observed: dict[str, Any] = field(default_factory=dict)
    threshold: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "observed": self.observed,
            "threshold": self.threshold,
            "reason": self.reason,
            "checks": [c.to_dict() for c in self.checks],
            "details": self.details,
            "duration_s": round(self.duration_s, 6),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateResult:
        return cls(
            name=d["name"],
            type=d["type"],
            status=d["status"],
            reason=d.get("reason", ""),
            checks=tuple(Check.from_dict(c) for c in d.get("checks") or ()),
            observed=dict(d.get("observed") or {}),
            threshold=dict(d.get("threshold") or {}),
            details=dict(d.get("details") or {}),
            duration_s=float(d.get("duration_s") or 0.0),
        )


def summarize(checks: Iterable[Check], status: Status, *, limit: int = 3) -> str:
    """The reason line of a gate: the failed checks (or the undecided ones, or all when the
    gate passed), at most ``limit`` of them, with a count of the rest."""
    checks = list(checks)
    if not checks:
        return "nothing to check"
    pick = [c for c in checks if c.status == status] or checks
    if status == "pass":
        head = f"all {len(checks)} checks passed: " if len(checks) > 1 else ""
        shown = "; ".join(c.message for c in pick[:2])
        return head + shown + ("; ..." if len(pick) > 2 else "")
    shown = "; ".join(c.message for c in pick[:limit])
    more = len(pick) - limit
    return shown + (f"; and {more} more" if more > 0 else "")


class Gate(ABC):
    """Base class of every gate, built-in or plugin.

    Subclasses set ``type`` (the name used in policy files), ``parameters`` and implement
    :meth:`evaluate`. ``isolated = True`` marks gates that never load a model into the
    validating process (they run first, and a failed smoke gate stops the others from loading
    a model that crashed or hung in its own process).
    """

    type: ClassVar[str]
    parameters: ClassVar[Mapping[str, Param]] = {}
    isolated: ClassVar[bool] = False
    #: what the gate checks, one line, for docs and reports
    summary: ClassVar[str] = ""

    def __init__(self, name: str | None = None, **params: Any) -> None:
        self.name = name or self.type
        self.params = params

    def validate_params(self) -> dict[str, Any]:
        """Check the parameters (clear errors for bad values), resolve defaults, set
        ``params_`` and return it."""
        resolved = validate_params(type(self).__name__, self.parameters, self.params)
        self.check_params(resolved)
        self.params_ = resolved
        return resolved

    def check_params(self, params: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Checks across parameters; raise InvalidInputError. The default checks nothing."""

    @abstractmethod
    def evaluate(self, ctx: GateContext) -> GateResult:
        """Judge ``ctx.candidate`` (against ``ctx.baseline`` when there is one)."""

    def result(
        self,
        checks: Iterable[Check],
        *,
        reason: str | None = None,
        observed: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
        status: Status | None = None,
    ) -> GateResult:
        """A :class:`GateResult` from checks: status combined, reason summarised, observed
        values and thresholds collected by check key (``observed`` adds more, such as the
        baseline's values)."""
        checks = tuple(checks)
        st = status or combine(c.status for c in checks)
        obs: dict[str, Any] = {}
        thr: dict[str, Any] = {}
        for c in checks:
            if c.observed is not None or c.key not in obs:
                obs[c.key] = finite(c.observed)
            if c.bound is not None and c.threshold is not None:
                thr[c.key] = {c.bound: finite(c.threshold)}
        obs.update(observed or {})
        return GateResult(
            name=self.name,
            type=self.type,
            status=st,
            reason=reason or summarize(checks, st),
            checks=checks,
            observed=obs,
            threshold=thr,
            details=dict(details or {}),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, **{self.params!r})"
