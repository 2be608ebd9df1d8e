"""Automation policies: trigger-to-action rules per endpoint, and the pure decision function.

Triggers and their default actions:

- a ``drift`` or ``quality`` monitor firing: ``retrain`` (run the model's pipeline);
- an SLO monitor (``error_rate``, ``latency``) firing: ``rollback`` (abort the endpoint's
  active rollout, else redeploy the version the endpoint served before its current one);
- ``schedule`` (a cron expression or ``@every DURATION``): ``retrain``;
- ``online`` (a cron expression or ``@every DURATION``): update the serving version with
  ``partial_fit`` on the labelled window into a new version, through the same gates and
  rollout.

A pipeline's own ``schedule`` is a ``schedule`` trigger of its endpoint too, decided by
:func:`pipeline_schedule_rules`: the endpoint's policy when it has one (its switch, cool-down
and concurrency limit), else the defaults without a cool-down.

A retrain is skipped, with the reason, while one of the endpoint is running, while a rollout
is active on it, within ``cooldown`` seconds of its last start, or when ``max_concurrent``
retrains run in the workspace. A redeploying rollback is skipped within ``cooldown`` seconds
of the endpoint's last automated rollback, and when the version serving got there by an
automated rollback itself (rolling forward again to the version rolled back from is a human's
call); aborting an active rollout is never held back. :func:`decide` is pure; the service
records each decision as an ``automation.decision`` event, taken or skipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from lockgate.automation.cron import parse_cron
from lockgate.errors import InvalidInputError
from lockgate.store.paths import validate_name

Action = Literal["retrain", "rollback", "online", "none"]
TRIGGERS = ("drift", "quality", "slo", "schedule", "online")
#: monitor kinds -> trigger
MONITOR_TRIGGERS = {
    "drift": "drift",
    "quality": "quality",
    "error_rate": "slo",
    "latency": "slo",
}


def _error(name: str, expected: str, got: Any) -> InvalidInputError:
    return InvalidInputError(
        f"The '{name}' parameter of AutomationPolicy must be {expected}. Got {got!r} instead.",
        field=name,
        expected=expected,
        got=got,
    )


@dataclass(frozen=True)
class AutomationPolicy:
    """The rules of one endpoint. ``cooldown`` is in seconds."""

    endpoint: str
    on_drift: Literal["retrain", "none"] = "retrain"
    on_quality: Literal["retrain", "none"] = "retrain"
    on_slo: Literal["rollback", "none"] = "rollback"
    schedule: str | None = None
    online: str | None = None
    cooldown: float = 3600.0
    max_concurrent: int = 1
    enabled: bool = True

    def __post_init__(self) -> None:
        validate_name(self.endpoint, "endpoint")
        for name, allowed in (
            ("on_drift", ("retrain", "none")),
            ("on_quality", ("retrain", "none")),
            ("on_slo", ("rollback", "none")),
        ):
            if getattr(self, name) not in allowed:
                raise _error(name, "one of " + ", ".join(allowed), getattr(self, name))
        for name in ("schedule", "online"):
            if getattr(self, name) is not None:
                parse_cron(getattr(self, name))
        c = self.cooldown
        if isinstance(c, bool) or not isinstance(c, int | float) or not 0 <= c <= 90 * 86_400:
            raise _error("cooldown", "a number of seconds in the range [0, 7776000]", c)
        object.__setattr__(self, "cooldown", float(c))
        n = self.max_concurrent
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
            raise _error("max_concurrent", "an int in the range [1, 64]", n)
        if not isinstance(self.enabled, bool):
            raise _error("enabled", "a bool", self.enabled)

    def action_for(self, trigger: str) -> Action:
        if trigger == "drift":
            return self.on_drift
        if trigger == "quality":
            return self.on_quality
        if trigger == "slo":
            return self.on_slo
        if trigger == "schedule":
            return "retrain" if self.schedule else "none"
        if trigger == "online":
            return "online" if self.online else "none"
        raise InvalidInputError.for_field("trigger", "one of " + ", ".join(TRIGGERS), trigger)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> AutomationPolicy:
        if not isinstance(d, dict):
            raise InvalidInputError.for_field("policy", "an object", type(d).__name__)
        allowed = set(cls.__dataclass_fields__)
        unknown = set(d) - allowed
        if unknown:
            raise InvalidInputError.for_field(
                "policy", "keys among " + ", ".join(sorted(allowed)), sorted(unknown)
            )
        if "endpoint" not in d:
            raise InvalidInputError.for_field("endpoint", "a value (required)", None)
        return cls(**d)


def pipeline_schedule_rules(
    endpoint: str, schedule: str, policy: AutomationPolicy | None
) -> AutomationPolicy:
    """The rules a pipeline's own ``schedule`` on ``endpoint`` is decided by: a retrain,
    held back like any retrain of the endpoint. With the endpoint's ``policy``, its switch,
    cool-down and concurrency limit apply (a disabled policy pauses the pipeline's schedule
    too); without one, the defaults apply without a cool-down (one retrain at a time in the
    workspace, none while the endpoint's retrain runs or a rollout is active on it)."""
    if policy is None:
        return AutomationPolicy(endpoint, schedule=schedule, cooldown=0.0)
    return replace(policy, endpoint=endpoint, schedule=schedule)


@dataclass(frozen=True)
class Situation:
    """What a decision depends on besides the policy, read from the store."""

    now: datetime
    has_pipeline: bool
    running_here: int
    running_total: int
    last_start: datetime | None
    active_rollout: int | None
    #: for a rollback without an active rollout: the version to go back to (the one the
    #: endpoint served before its current primary)
    previous_champion: int | None = None
    #: the endpoint's current primary version
    serving: int | None = None
    #: when the policy engine last redeployed the endpoint for a rollback
    last_rollback: datetime | None = None
    #: the current primary became primary by an automated rollback
    serving_by_rollback: bool = False
    #: a rollout of the endpoint that was aborted or rolled back after the alert
    rollout_ended: int | None = None


@dataclass(frozen=True)
class Decision:
    endpoint: str
    trigger: str
    action: Action
    taken: bool
    reason: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "trigger": self.trigger,
            "action": self.action,
            "taken": self.taken,
            "reason": self.reason,
            **self.detail,
        }


def decide(
    policy: AutomationPolicy, trigger: str, sit: Situation, detail: dict[str, Any] | None = None
) -> Decision:
    """Whether ``trigger`` on ``policy.endpoint`` leads to an action now, and why (not)."""
    d = dict(detail or {})
    action = policy.action_for(trigger)

    def no(reason: str) -> Decision:
        return Decision(policy.endpoint, trigger, action, False, reason, d)

    if not policy.enabled:
        return no("the endpoint's automation policy is disabled")
    if action == "none":
        return no(f"the policy takes no action on {trigger}")
    if action == "rollback":
        if sit.active_rollout is not None:
            d["rollout"] = sit.active_rollout
            return Decision(
                policy.endpoint, trigger, action, True, f"abort rollout {sit.active_rollout}", d
            )
        if sit.rollout_ended is not None:
            return no(
                f"rollout {sit.rollout_ended} ended after the alert: the breach was answered "
                "by sending its traffic back"
            )
        if sit.previous_champion is None or sit.serving is None:
            return no("nothing to roll back to: no active rollout and no previous champion")
        d["from_version"] = sit.serving
        d["to_version"] = sit.previous_champion
        if sit.serving_by_rollback:
            return no(
                f"v{sit.serving} serves since an automated rollback from "
                f"v{sit.previous_champion}; rolling forward again is left to a human"
            )
        if sit.last_rollback is not None and policy.cooldown > 0:
            allowed = sit.last_rollback + timedelta(seconds=policy.cooldown)
            if sit.now < allowed:
                return no(
                    f"cool-down: last automated rollback {sit.last_rollback.isoformat()}, "
                    f"next allowed at {allowed.isoformat()}"
                )
        return Decision(
            policy.endpoint,
            trigger,
            action,
            True,
            f"redeploy v{sit.previous_champion}, served before v{sit.serving}",
            d,
        )
    if not sit.has_pipeline and action == "retrain":
        return no("the endpoint's model has no pipeline (lockgate pipeline set)")
    if sit.running_here:
        return no("a retrain of this endpoint is already running")
    if sit.active_rollout is not None:
        return no(f"rollout {sit.active_rollout} is in progress on the endpoint")
    if sit.last_start is not None and policy.cooldown > 0:
        allowed = sit.last_start + timedelta(seconds=policy.cooldown)
        if sit.now < allowed:
            return no(
                f"cool-down: last retrain started {sit.last_start.isoformat()}, "
                f"next allowed at {allowed.isoformat()}"
            )
    if sit.running_total >= policy.max_concurrent:
        return no(
            f"limit of {policy.max_concurrent} concurrent retrain(s) reached "
            f"({sit.running_total} running)"
        )
    return Decision(policy.endpoint, trigger, action, True, f"start a {action} run", d)
