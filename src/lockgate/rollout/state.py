"""The rollout state machine as pure code: a :class:`RolloutPlan` (what the user asked for), a
:class:`RolloutState` (where the rollout is) and transitions that are values.

::

    start ──> shadow ──> canary step 0 ──> step 1 ──> ... ──> last step ──> promoted
      │        (shadow strategy: shadow ──> promoted)                      ^
      └──────> ab ─────────────────────────────────────────────────────────┘
    any active phase ──(max_failures failed analyses)──> rolled_back
    any active phase ──(abort)──> aborted;  ──(promote)──> promoted
    pause / resume keep the phase and step; a paused rollout is not analysed

An analysis outcome leads to a transition (as in Argo Rollouts): *successful* advances (the
next stage or step, or promotion after the last), *failed* counts a failure and rolls back at
``max_failures`` failures in the step (as in Flagger's threshold), *inconclusive* holds and
keeps the window growing until enough data arrived. Terminal phases absorb everything:
commands on them raise :class:`~lockgate.errors.ConflictError`.

:func:`policy_for` maps a state to the endpoint's :class:`TrafficPolicy`; nothing here touches
a database or a clock (``now`` is passed in).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, Literal, TypeAlias, get_args

from lockgate.errors import ConflictError, InvalidInputError
from lockgate.rollout.analysis import AnalysisConfig, Outcome
from lockgate.rollout.policy import Arm, Shadow, TrafficPolicy

Strategy: TypeAlias = Literal["shadow", "canary", "ab", "shadow-then-canary"]
Phase: TypeAlias = Literal["shadow", "canary", "ab", "promoted", "rolled_back", "aborted"]
Action: TypeAlias = Literal[
    "start", "hold", "advance", "promote", "rollback", "pause", "resume", "abort"
]
Command: TypeAlias = Literal["pause", "resume", "promote", "abort"]

STRATEGIES: tuple[str, ...] = get_args(Strategy)
ACTIVE: frozenset[str] = frozenset({"shadow", "canary", "ab"})
TERMINAL: frozenset[str] = frozenset({"promoted", "rolled_back", "aborted"})

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: str | float | int, field_name: str = "interval") -> float:
    """Seconds from ``90``, ``"90s"``, ``"1.5m"``, ``"2h"`` or ``"500ms"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if m is None:
            raise InvalidInputError.for_field(
                field_name, "a duration such as 60s, 5m, 1h or 500ms", value
            )
        seconds = float(m[1]) * _UNITS[m[2]]
    if not math.isfinite(seconds) or not 0.1 <= seconds <= 7 * 86400:
        raise InvalidInputError.for_field(field_name, "a duration from 100ms to 7 days", value)
    return seconds


def _plan_error(name: str, expected: str, got: Any) -> InvalidInputError:
    return InvalidInputError(
        f"The '{name}' parameter of RolloutPlan must be {expected}. Got {got!r} instead.",
        field=name,
        expected=expected,
        got=got,
    )


@dataclass(frozen=True)
class RolloutPlan:
    """What a rollout does: strategy, canary steps (percent of traffic, increasing, ending
    at most at 100), the analysis interval in seconds, failures tolerated per step, the A/B
    weights (baseline, candidate), the shadow sample and the analysis thresholds."""

    strategy: Strategy = "canary"
    steps: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
    interval: float = 60.0
    max_failures: int = 2
    ab_weights: tuple[float, float] = (50.0, 50.0)
    shadow_percent: float = 100.0
    key_column: str | None = None
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise _plan_error("strategy", "one of " + ", ".join(STRATEGIES), self.strategy)
        steps = tuple(self.steps) if isinstance(self.steps, list | tuple) else None
        ok = (
            steps is not None
            and 0 < len(steps) <= 20
            and all(
                isinstance(s, int | float) and not isinstance(s, bool) and 0 < s <= 100
                for s in steps
            )
            and all(a < b for a, b in pairwise(steps))
        )
        if not ok:
            raise _plan_error(
                "steps", "1-20 increasing percentages in the range (0, 100]", self.steps
            )
        assert steps is not None
        object.__setattr__(self, "steps", tuple(float(s) for s in steps))
        object.__setattr__(self, "interval", parse_duration(self.interval))
        mf = self.max_failures
        if not isinstance(mf, int) or isinstance(mf, bool) or not 1 <= mf <= 100:
            raise _plan_error("max_failures", "an int in the range [1, 100]", mf)
        w = tuple(self.ab_weights) if isinstance(self.ab_weights, list | tuple) else ()
        if (
            len(w) != 2
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in w)
            or not all(0 < x < 100 for x in w)
            or abs(sum(w) - 100) > 1e-6
        ):
            raise _plan_error(
                "ab_weights", "two weights in the range (0, 100) adding up to 100", self.ab_weights
            )
        object.__setattr__(self, "ab_weights", (float(w[0]), float(w[1])))
        sp = self.shadow_percent
        if not isinstance(sp, int | float) or isinstance(sp, bool) or not 0 < sp <= 100:
            raise _plan_error("shadow_percent", "a number in the range (0, 100]", sp)
        if not isinstance(self.analysis, AnalysisConfig):
            raise _plan_error("analysis", "an AnalysisConfig", self.analysis)

    @property
    def first_phase(self) -> Phase:
        if self.strategy in ("shadow", "shadow-then-canary"):
            return "shadow"
        return "ab" if self.strategy == "ab" else "canary"

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "steps": list(self.steps),
            "interval": self.interval,
            "max_failures": self.max_failures,
            "ab_weights": list(self.ab_weights),
            "shadow_percent": self.shadow_percent,
            "key_column": self.key_column,
            "analysis": self.analysis.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RolloutPlan:
        d = dict(d)
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInputError.for_field(
                "plan", f"keys among {', '.join(cls.__dataclass_fields__)}", sorted(unknown)
            )
        if "analysis" in d and not isinstance(d["analysis"], AnalysisConfig):
            d["analysis"] = AnalysisConfig.from_dict(d["analysis"])
        for k in ("steps", "ab_weights"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass(frozen=True)
class RolloutState:
    phase: Phase
    started_at: datetime
    step: int = 0
    paused: bool = False
    failures: int = 0
    analyses: int = 0
    step_started_at: datetime | None = None
    #: the start of the window the next analysis reads (the end of the last conclusive one)
    window_start: datetime | None = None
    last_outcome: Outcome | None = None
    #: the baseline's figures from the last window that had enough of them
    remembered: dict[str, float] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE

    def due_at(self, plan: RolloutPlan) -> datetime:
        """When the next analysis is due: one interval after its window starts."""
        start = self.window_start or self.step_started_at or self.started_at
        return start + timedelta(seconds=plan.interval)

    def to_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t is not None else None

        return {
            "phase": self.phase,
            "started_at": iso(self.started_at),
            "step": self.step,
            "paused": self.paused,
            "failures": self.failures,
            "analyses": self.analyses,
            "step_started_at": iso(self.step_started_at),
            "window_start": iso(self.window_start),
            "last_outcome": self.last_outcome,
            "remembered": dict(self.remembered),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RolloutState:
        def dt(v: str | None) -> datetime | None:
            return datetime.fromisoformat(v) if v else None

        started = dt(d["started_at"])
        assert started is not None
        return cls(
            phase=d["phase"],
            started_at=started,
            step=int(d.get("step", 0)),
            paused=bool(d.get("paused", False)),
            failures=int(d.get("failures", 0)),
            analyses=int(d.get("analyses", 0)),
            step_started_at=dt(d.get("step_started_at")),
            window_start=dt(d.get("window_start")),
            last_outcome=d.get("last_outcome"),
            remembered=dict(d.get("remembered") or {}),
        )


@dataclass(frozen=True)
class Transition:
    """One move of the state machine. ``traffic`` is True when the endpoint's traffic
    policy must change with it."""

    action: Action
    before: RolloutState | None
    after: RolloutState
    reason: str

    @property
    def traffic(self) -> bool:
        b = self.before
        return b is None or (b.phase, b.step) != (self.after.phase, self.after.step)


def start(plan: RolloutPlan, now: datetime) -> Transition:
    state = RolloutState(
        phase=plan.first_phase, started_at=now, step_started_at=now, window_start=now
    )
    return Transition("start", None, state, f"{plan.strategy} rollout started")


def _require_active(state: RolloutState, what: str) -> None:
    if not state.active:
        raise ConflictError(
            f"the rollout is {state.phase.replace('_', ' ')}; it cannot {what}",
            phase=state.phase,
        )


def _enter(state: RolloutState, phase: Phase, step: int, now: datetime) -> RolloutState:
    return replace(
        state,
        phase=phase,
        step=step,
        failures=0,
        analyses=0,
        step_started_at=now,
        window_start=now,
    )


def after_analysis(
    plan: RolloutPlan,
    state: RolloutState,
    outcome: Outcome,
    now: datetime,
    reason: str = "",
    *,
    baseline: dict[str, float] | None = None,
    window_end: datetime | None = None,
) -> Transition:
    """The transition an analysis outcome leads to. ``baseline`` figures worth remembering
    (error rate and p99 of a window with enough baseline rows) are kept in the state. The
    analysed window ended at ``window_end`` (default ``now``): after a failure the next
    window starts there, so no record is skipped; a new stage starts at ``now``, when its
    traffic policy takes effect."""
    _require_active(state, "be analysed")
    end = window_end or now
    seen = replace(
        state,
        analyses=state.analyses + 1,
        last_outcome=outcome,
        remembered={**state.remembered, **(baseline or {})},
    )
    if state.paused:
        return Transition("hold", state, replace(seen, window_start=end), "paused: " + reason)
    if outcome == "inconclusive":  # keep the window growing until there is enough data
        return Transition("hold", state, seen, reason or "inconclusive")
    if outcome == "failed":
        failures = state.failures + 1
        if failures >= plan.max_failures:
            after = replace(seen, phase="rolled_back", failures=failures, window_start=end)
            return Transition(
                "rollback",
                state,
                after,
                f"{failures} failed analyses (max {plan.max_failures}): {reason}",
            )
        after = replace(seen, failures=failures, window_start=end)
        return Transition(
            "hold", state, after, f"failed analysis {failures} of {plan.max_failures}: {reason}"
        )
    # successful
    if state.phase == "shadow" and plan.strategy == "shadow-then-canary":
        nxt = _enter(seen, "canary", 0, now)
        return Transition("advance", state, nxt, f"shadow passed; canary at {plan.steps[0]:g}%")
    if state.phase == "canary" and state.step + 1 < len(plan.steps):
        nxt = _enter(seen, "canary", state.step + 1, now)
        return Transition(
            "advance",
            state,
            nxt,
            f"step {plan.steps[state.step]:g}% passed; canary at {plan.steps[state.step + 1]:g}%",
        )
    after = replace(_enter(seen, "promoted", state.step, now), failures=state.failures)
    return Transition("promote", state, after, reason or "every stage passed")


def command(plan: RolloutPlan, state: RolloutState, cmd: Command, now: datetime) -> Transition:
    """A user's command: pause, resume, promote or abort."""
    if cmd == "pause":
        _require_active(state, "be paused")
        if state.paused:
            raise ConflictError("the rollout is already paused")
        return Transition("pause", state, replace(state, paused=True), "paused")
    if cmd == "resume":
        _require_active(state, "be resumed")
        if not state.paused:
            raise ConflictError("the rollout is not paused")
        return Transition(
            "resume", state, replace(state, paused=False, window_start=now), "resumed"
        )
    if cmd == "promote":
        _require_active(state, "be promoted")
        after = replace(state, phase="promoted", paused=False, window_start=now)
        return Transition("promote", state, after, "promoted by hand")
    if cmd == "abort":
        _require_active(state, "be aborted")
        after = replace(state, phase="aborted", paused=False, window_start=now)
        return Transition("abort", state, after, "aborted by hand")
    raise InvalidInputError.for_field("command", "pause, resume, promote or abort", cmd)


def candidate_weight(plan: RolloutPlan, state: RolloutState) -> float:
    """Percent of the live traffic the candidate answers in ``state``."""
    if state.phase == "canary":
        return plan.steps[state.step]
    if state.phase == "ab":
        return plan.ab_weights[1]
    return 100.0 if state.phase == "promoted" else 0.0


def policy_for(
    plan: RolloutPlan, state: RolloutState, baseline: int, candidate: int, salt: str = ""
) -> TrafficPolicy:
    """The endpoint's traffic policy in ``state``."""
    if state.phase == "promoted":
        return TrafficPolicy(primary=candidate)
    if state.phase in ("rolled_back", "aborted"):
        return TrafficPolicy(primary=baseline)
    if state.phase == "shadow":
        return TrafficPolicy(
            primary=baseline, shadows=(Shadow(candidate, plan.shadow_percent),), salt=salt
        )
    if state.phase == "ab":
        wb, wc = plan.ab_weights
        return TrafficPolicy(
            primary=baseline,
            arms=(Arm(baseline, wb), Arm(candidate, wc)),
            key_column=plan.key_column,
            salt=salt,
        )
    return TrafficPolicy(
        primary=baseline,
        canary=candidate,
        canary_weight=plan.steps[state.step],
        key_column=plan.key_column,
        salt=salt,
    )
