"""The automation service: policies in the metadata store, their evaluation on each tick of
the server's controller, and the background worker that runs retrains.

:meth:`AutomationService.tick` runs in the controller's thread while it holds the lease: it
reads the ``monitor.firing`` events appended since its cursor, checks the cron schedules (the
policies' ``schedule`` and ``online``, then the pipelines' own ``schedule``), decides with
:func:`~lockgate.automation.policies.decide` and records each decision as an
``automation.decision`` event (taken or skipped, with the reason). A taken retrain inserts its
run row there (so the concurrency limit counts it at once) and is handed to a worker thread,
which runs the training subprocess, the gates and the rollout: the controller never waits for
a training. Runs left ``running`` past their deadline (their server died) are marked failed.

When a schedule was last considered is kept in the ``state`` of its policy or pipeline row, so
a restarted or replaced leader neither repeats a slot nor back-fires: slots missed while no
server ran fire once, not once each. A new, changed or re-added schedule counts from the
first tick that sees it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from lockgate.audit.events import record_event
from lockgate.automation.cron import parse_cron
from lockgate.automation.pipelines import (
    ONLINE_ENTRY,
    SCHEDULE_LAST,
    PipelineSpec,
    PipelineStore,
)
from lockgate.automation.policies import (
    MONITOR_TRIGGERS,
    AutomationPolicy,
    Decision,
    Situation,
    decide,
    pipeline_schedule_rules,
)
from lockgate.automation.rollback import ROLLBACK_STATE, redeploy, served_before
from lockgate.automation.runner import PipelineRunner, RunOutcome
from lockgate.errors import LockgateError, NotFoundError
from lockgate.store.paths import validate_name
from lockgate.store.schema import (
    AutomationCursorRow,
    AutomationPolicyRow,
    EventRow,
    PipelineRow,
    PipelineRunRow,
    RolloutRow,
)

if TYPE_CHECKING:
    from lockgate.clock import Clock
    from lockgate.feedback import FeedbackService
    from lockgate.store.predlog import PredictionLog
    from lockgate.workspace import Workspace

log = logging.getLogger("lockgate.automation")

#: the actor of the policy engine's decisions and of the runs it starts
AUTOMATION_ACTOR = "lockgate-automation"
CURSOR = "policy-engine"
#: on the policy engine's very first tick, the seconds of alerts acted on (older: history)
FIRST_LOOKBACK = 60.0
_BATCH = 500


class AutomationService:
    def __init__(
        self,
        ws: Workspace,
        *,
        predlog: PredictionLog | None = None,
        feedback: FeedbackService | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.ws = ws
        self.clock: Clock = clock or ws.clock
        self.pipelines = PipelineStore(ws)
        self.runner = PipelineRunner(ws, predlog=predlog, feedback=feedback)
        self.runner.actor = AUTOMATION_ACTOR
        self._threads: set[threading.Thread] = set()
        self._cursor_missing = False
        self._lock = threading.Lock()

    # -- policies ---------------------------------------------------------------------------
    def set_policy(
        self, policy: AutomationPolicy | dict[str, Any], *, reason: str = ""
    ) -> AutomationPolicy:
        if not isinstance(policy, AutomationPolicy):
            policy = AutomationPolicy.from_dict(policy)
        self.ws.endpoints.get(policy.endpoint)  # NotFoundError for an unknown endpoint
        now = self.clock.now()
        with self.ws.db.write() as s:
            row = s.execute(
                select(AutomationPolicyRow)
                .where(AutomationPolicyRow.endpoint == policy.endpoint)
                .with_for_update()
            ).scalar_one_or_none()
            kind = "automation.policy_updated"
            if row is None:
                kind = "automation.policy_created"
                row = AutomationPolicyRow(
                    endpoint=policy.endpoint, state={}, created_at=now, created_by=self.ws.actor
                )
                s.add(row)
            else:  # a new or changed schedule starts counting when the engine first sees it
                old = dict(row.spec or {})
                state = dict(row.state or {})
                for trigger in ("schedule", "online"):
                    if old.get(trigger) != getattr(policy, trigger):
                        state.pop(f"{trigger}_last", None)
                row.state = state
            row.spec = policy.to_dict()
            row.updated_at = now
            row.updated_by = self.ws.actor
            record_event(
                self.ws.db, s, kind=kind, subject=policy.endpoint, actor=self.ws.actor, at=now,
                payload={"policy": policy.to_dict(), "reason": reason},
            )  # fmt: skip
        return policy

    def get_policy(self, endpoint: str) -> AutomationPolicy:
        validate_name(endpoint, "endpoint")
        with self.ws.db.read() as s:
            row = s.execute(
                select(AutomationPolicyRow).where(AutomationPolicyRow.endpoint == endpoint)
            ).scalar_one_or_none()
            if row is None:
                raise NotFoundError("automation policy", endpoint)
            return AutomationPolicy.from_dict(dict(row.spec))

    def list_policies(self) -> list[AutomationPolicy]:
        with self.ws.db.read() as s:
            rows = s.execute(
                select(AutomationPolicyRow).order_by(AutomationPolicyRow.endpoint)
            ).scalars()
            return [AutomationPolicy.from_dict(dict(r.spec)) for r in rows]

    def remove_policy(self, endpoint: str, *, reason: str = "") -> AutomationPolicy:
        validate_name(endpoint, "endpoint")
        now = self.clock.now()
        with self.ws.db.write() as s:
            row = s.execute(
                select(AutomationPolicyRow)
                .where(AutomationPolicyRow.endpoint == endpoint)
                .with_for_update()
            ).scalar_one_or_none()
            if row is None:
                raise NotFoundError("automation policy", endpoint)
            policy = AutomationPolicy.from_dict(dict(row.spec))
            s.delete(row)
            record_event(
                self.ws.db, s, kind="automation.policy_removed", subject=endpoint,
                actor=self.ws.actor, at=now, payload={"endpoint": endpoint, "reason": reason},
            )  # fmt: skip
        return policy

    def decisions(self, endpoint: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest decisions, newest first."""
        q = (
            select(EventRow)
            .where(EventRow.kind == "automation.decision")
            .order_by(EventRow.id.desc())
            .limit(max(1, min(limit, 10_000)))
        )
        if endpoint is not None:
            q = q.where(EventRow.subject == validate_name(endpoint, "endpoint"))
        with self.ws.db.read() as s:
            return [
                {"id": r.id, "at": r.at.isoformat(), **(r.payload or {})}
                for r in s.execute(q).scalars()
            ]

    # -- the controller's path --------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> list[Decision]:
        """One round of the policy engine (the controller calls it while it leads): the new
        alerts, the policies' schedules, then the pipelines' own schedules; the decisions
        made, in that order."""
        now = now or self.clock.now()
        self._reap(now)
        policies = {p.endpoint: p for p in self.list_policies()}
        made: list[Decision] = []
        #: endpoints a retrain was started for on this tick: they count as running even when
        #: that run has already ended (a fast failure must not let a second alert of the same
        #: tick start another retrain past the concurrency limit)
        started: set[str] = set()
        saved, cursor, events = self._new_events(now)
        for event_id, endpoint, payload in events:
            trigger = MONITOR_TRIGGERS.get(str(payload.get("kind")))
            policy = policies.get(endpoint)
            if trigger is not None and policy is not None:
                detail = {
                    "monitor": payload.get("monitor"),
                    "alert": payload.get("alert"),
                    "event": event_id,
                    "value": payload.get("value"),
                }
                made.append(self._apply(policy, trigger, now, detail, started))
            cursor = event_id
        if cursor != saved or self._cursor_missing:
            self._save_cursor(cursor, now)
        for policy in policies.values():
            if not policy.enabled:
                continue
            for trigger in ("schedule", "online"):
                expr = getattr(policy, trigger)
                if expr and self._schedule_due(policy.endpoint, trigger, expr, now):
                    detail = {"cron": expr, "schedule_of": "policy"}
                    made.append(self._apply(policy, trigger, now, detail, started))
        made.extend(self._pipeline_schedules(policies, started, now))
        return made

    def _pipeline_schedules(
        self, policies: dict[str, AutomationPolicy], started: set[str], now: datetime
    ) -> list[Decision]:
        """Decide on the pipelines whose own schedule came due (one read when none did);
        ``started``: the endpoints a retrain was started for on this tick, which count as
        running even if that run has already ended."""
        with self.ws.db.read() as s:
            rows = s.execute(
                select(PipelineRow.model, PipelineRow.spec, PipelineRow.state).order_by(
                    PipelineRow.model
                )
            ).all()
        made: list[Decision] = []
        for model, doc, state in rows:
            expr = (doc or {}).get("schedule")
            if not expr:
                continue
            where = PipelineRow.model == model
            if self._due(PipelineRow, where, SCHEDULE_LAST, str(expr), now, state or {}):
                spec = PipelineSpec.from_dict(dict(doc))
                endpoint = spec.endpoint_name
                decision = self._apply_pipeline(spec, policies.get(endpoint), now, started)
                if decision.taken:
                    started.add(endpoint)
                made.append(decision)
        return made

    def _apply_pipeline(
        self,
        spec: PipelineSpec,
        policy: AutomationPolicy | None,
        now: datetime,
        started: set[str],
    ) -> Decision:
        """A pipeline's own schedule came due: a retrain of its endpoint, held back like a
        policy's scheduled retrain (:func:`~lockgate.automation.policies.pipeline_schedule_rules`)
        and recorded the same way; a taken one starts a run with trigger ``schedule``.
        ``started``: the endpoints a retrain was started for on this tick."""
        assert spec.schedule is not None
        endpoint = spec.endpoint_name
        rules = pipeline_schedule_rules(endpoint, spec.schedule, policy)
        sit = _with_started(self.situation(endpoint, spec.model, now), endpoint, started)
        detail = {"cron": spec.schedule, "schedule_of": "pipeline", "model": spec.model}
        decision = decide(rules, "schedule", sit, detail)
        self._record(decision, now)
        if not decision.taken:
            log.info(
                "automation on %s: %s's schedule skipped (%s)", endpoint, spec.model,
                decision.reason,
            )  # fmt: skip
            return decision
        log.warning("automation on %s: %s's schedule -> retrain", endpoint, spec.model)
        started.add(endpoint)
        self.start_run(spec, {"type": "schedule", **decision.detail})
        return decision

    def _new_events(self, now: datetime) -> tuple[int, int, list[tuple[int, str, dict[str, Any]]]]:
        """``(saved cursor, new cursor, monitor.firing events after the saved one)``."""
        with self.ws.db.read() as s:
            row = s.get(AutomationCursorRow, CURSOR)
            self._cursor_missing = row is None
            if row is None:
                # the first tick: history is not replayed, but an alert of the last minute
                # is acted on (the monitors evaluated in this very tick, before the engine)
                start = s.execute(
                    select(func.max(EventRow.id)).where(
                        EventRow.at < now - timedelta(seconds=FIRST_LOOKBACK)
                    )
                ).scalar_one_or_none()
                saved = cursor = int(start or 0)
            else:
                saved = cursor = int(row.event_id)
            rows = s.execute(
                select(EventRow.id, EventRow.subject, EventRow.payload)
                .where(EventRow.id > cursor, EventRow.kind == "monitor.firing")
                .order_by(EventRow.id)
                .limit(_BATCH)
            ).all()
            if not rows:  # nothing to act on: move past the events appended meanwhile
                newest = s.execute(select(func.max(EventRow.id))).scalar_one_or_none()
                cursor = max(cursor, int(newest or 0))
        out = [(int(r[0]), str(r[1]), dict(r[2] or {})) for r in rows]
        return saved, cursor, out

    def _save_cursor(self, event_id: int, now: datetime) -> None:
        with self.ws.db.write() as s:
            row = s.get(AutomationCursorRow, CURSOR, with_for_update=True)
            if row is None:
                s.add(AutomationCursorRow(name=CURSOR, event_id=event_id, updated_at=now))
            elif event_id > row.event_id:
                row.event_id = event_id
                row.updated_at = now

    def _schedule_due(self, endpoint: str, trigger: str, expr: str, now: datetime) -> bool:
        """Whether the policy's ``trigger`` schedule fired since it was last considered;
        marks it considered."""
        where = AutomationPolicyRow.endpoint == endpoint
        return self._due(AutomationPolicyRow, where, f"{trigger}_last", expr, now)

    def _due(
        self,
        table: type[AutomationPolicyRow] | type[PipelineRow],
        where: Any,
        key: str,
        expr: str,
        now: datetime,
        state: dict[str, Any] | None = None,
    ) -> bool:
        """Whether the schedule ``expr`` fired since it was last considered, as kept under
        ``key`` in the ``state`` of the row of ``table`` matching ``where`` (``state``: that
        state, when already read); marks it considered. A schedule never considered (new,
        changed or re-added) starts counting now."""
        cron = parse_cron(expr)
        if state is None:
            with self.ws.db.read() as s:
                state = s.execute(select(table.state).where(where)).scalar_one_or_none()
        seen = (state or {}).get(key)
        if seen and not cron.due(datetime.fromisoformat(seen), now):
            return False  # the common case: nothing to write
        with self.ws.db.write() as s:
            row = s.execute(select(table).where(where).with_for_update()).scalar_one_or_none()
            if row is None:
                return False
            fresh = dict(row.state or {})
            last = fresh.get(key)
            due = last is not None and cron.due(datetime.fromisoformat(last), now)
            if last is None or due:
                fresh[key] = now.isoformat()
                row.state = fresh
            return due

    def situation(
        self,
        endpoint: str,
        model: str | None,
        now: datetime,
        *,
        rollback: bool = False,
        after_event: int | None = None,
    ) -> Situation:
        """What a decision on ``endpoint`` depends on, read now. With ``rollback``, also
        what a rollback needs: the version served before the current one, the last automated
        rollback and whether a rollout ended after ``after_event`` (the alert's event id)."""
        with self.ws.db.read() as s:
            running = select(func.count()).where(PipelineRunRow.status == "running")
            total = s.execute(running).scalar_one()
            here = s.execute(running.where(PipelineRunRow.endpoint == endpoint)).scalar_one()
            last = s.execute(
                select(func.max(PipelineRunRow.started_at)).where(
                    PipelineRunRow.endpoint == endpoint
                )
            ).scalar_one_or_none()
            active = s.execute(
                select(RolloutRow.id).where(RolloutRow.active_endpoint == endpoint)
            ).scalar_one_or_none()
            ended = state = None
            if rollback and after_event is not None:
                ended = s.execute(
                    select(EventRow.payload)
                    .where(
                        EventRow.id > after_event,
                        EventRow.subject == endpoint,
                        EventRow.kind.in_(("rollout.aborted", "rollout.rolled_back")),
                    )
                    .order_by(EventRow.id)
                    .limit(1)
                ).scalar_one_or_none()
            if rollback:
                state = s.execute(
                    select(AutomationPolicyRow.state).where(
                        AutomationPolicyRow.endpoint == endpoint
                    )
                ).scalar_one_or_none()
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        serving = previous = None
        by_rollback = False
        if rollback and model is not None:
            with contextlib.suppress(LockgateError):
                serving = self.ws.endpoints.get(endpoint).policy.primary
                previous, by_rollback = served_before(
                    self.ws, endpoint, model, serving, actor=AUTOMATION_ACTOR
                )
        rolled = (state or {}).get(ROLLBACK_STATE)
        return Situation(
            now=now,
            has_pipeline=model is not None and self.pipelines.find(model) is not None,
            running_here=int(here),
            running_total=int(total),
            last_start=last,
            active_rollout=int(active) if active is not None else None,
            previous_champion=previous,
            serving=serving,
            last_rollback=datetime.fromisoformat(rolled) if rolled else None,
            serving_by_rollback=by_rollback,
            rollout_ended=int((ended or {}).get("rollout") or 0) or None,
        )

    def _apply(
        self,
        policy: AutomationPolicy,
        trigger: str,
        now: datetime,
        detail: dict[str, Any],
        started: set[str],
    ) -> Decision:
        model: str | None = None
        with contextlib.suppress(NotFoundError):
            model = self.ws.endpoints.get(policy.endpoint).model
        event = detail.get("event")
        sit = self.situation(
            policy.endpoint, model, now, rollback=policy.action_for(trigger) == "rollback",
            after_event=event if isinstance(event, int) else None,
        )  # fmt: skip
        sit = _with_started(sit, policy.endpoint, started)
        decision = decide(policy, trigger, sit, {**detail, "model": model})
        if decision.taken and "to_version" in decision.detail and model is not None:
            return self._redeploy(decision, model, now)
        if decision.taken and decision.action in ("retrain", "online") and model is not None:
            spec = self._spec(model, policy.endpoint, decision.action)
            if spec is None:
                decision = Decision(
                    policy.endpoint, trigger, decision.action, False,
                    "the endpoint's model has no pipeline", decision.detail,
                )  # fmt: skip
        self._record(decision, now)
        if not decision.taken:
            log.info("automation on %s: %s skipped (%s)", policy.endpoint, trigger, decision.reason)
            return decision
        log.warning("automation on %s: %s -> %s", policy.endpoint, trigger, decision.action)
        if decision.action == "rollback":
            self._rollback(policy.endpoint, model, decision)
        elif model is not None:
            spec = self._spec(model, policy.endpoint, decision.action)
            assert spec is not None
            started.add(policy.endpoint)
            self.start_run(spec, {"type": trigger, **decision.detail})
        return decision

    def _spec(self, model: str, endpoint: str, action: str) -> PipelineSpec | None:
        spec = self.pipelines.find(model)
        if action == "online":
            base = spec.to_dict() if spec else {"model": model, "endpoint": endpoint}
            return PipelineSpec.from_dict({**base, "entry": ONLINE_ENTRY, "schedule": None})
        return spec

    def _record(self, decision: Decision, now: datetime) -> None:
        with self.ws.db.write() as s:
            record_event(
                self.ws.db, s, kind="automation.decision", subject=decision.endpoint,
                actor=AUTOMATION_ACTOR, at=now, payload=decision.to_dict(),
            )  # fmt: skip

    def _redeploy(self, decision: Decision, model: str, now: datetime) -> Decision:
        """A rollback without an active rollout: the redeploy, the champion move, the
        cool-down mark, the cursor past the alert and the decision commit together
        (:func:`~lockgate.automation.rollback.redeploy`); when the endpoint changed since
        the decision, nothing is applied and the decision is recorded as skipped, with why."""
        d = decision.detail
        reason = (
            f"automation: {decision.trigger} alert {d.get('alert')} of monitor "
            f"{d.get('monitor')}: {decision.reason}"
        )
        event = d.get("event")
        cursor = (CURSOR, event) if isinstance(event, int) else None
        try:
            done = redeploy(
                self.ws, decision, model=model, actor=AUTOMATION_ACTOR, now=now,
                cursor=cursor, reason=reason,
            )  # fmt: skip
        except LockgateError as exc:
            skipped = Decision(
                decision.endpoint, decision.trigger, decision.action, False,
                f"rollback not applied: {exc.message}", d,
            )  # fmt: skip
            log.error("automation on %s: %s", decision.endpoint, skipped.reason)
            self._record(skipped, now)
            return skipped
        log.warning(
            "automation on %s: %s -> rolled back v%s to v%s", decision.endpoint,
            decision.trigger, d["from_version"], d["to_version"],
        )  # fmt: skip
        return Decision(
            decision.endpoint, decision.trigger, decision.action, True, decision.reason,
            {**d, **done},
        )  # fmt: skip

    def _rollback(self, endpoint: str, model: str | None, decision: Decision) -> None:
        """Abort the endpoint's active rollout (its baseline takes all traffic back)."""
        reason = f"automation: {decision.trigger} alert ({decision.detail.get('monitor')})"
        try:
            from lockgate.rollout.service import RolloutService

            RolloutService(self.ws).abort(endpoint, reason=reason, actor=AUTOMATION_ACTOR)
        except LockgateError as exc:
            log.error("automation on %s: rollback failed: %s", endpoint, exc.message)
            with self.ws.db.write() as s:
                record_event(
                    self.ws.db, s, kind="automation.action_failed", subject=endpoint,
                    actor=AUTOMATION_ACTOR, at=self.clock.now(),
                    payload={"action": "rollback", "error": exc.message},
                )  # fmt: skip

    # -- runs -------------------------------------------------------------------------------
    def start_run(self, spec: PipelineSpec, trigger: dict[str, Any]) -> int:
        """Record a run now and run it in a background thread; returns the run id."""
        parent = self.runner.parent(spec)
        run_id = self.runner.begin(spec, trigger, parent.version if parent else None, spec.timeout)
        t = threading.Thread(
            target=self._work, args=(spec, trigger, run_id), name=f"lockgate-run-{run_id}",
            daemon=True,
        )  # fmt: skip
        with self._lock:
            self._threads.add(t)
        t.start()
        return run_id

    def _work(self, spec: PipelineSpec, trigger: dict[str, Any], run_id: int) -> None:
        outcome: RunOutcome | None = None
        try:
            outcome = self.runner.run(spec.model, trigger=trigger, spec=spec, run_id=run_id)
        except Exception as exc:  # bad input found late: the run must not stay "running"
            log.exception("pipeline run %s failed to start", run_id)
            outcome = RunOutcome(run_id, spec.model, "failed", trigger, error=str(exc))
            with contextlib.suppress(Exception):
                self.runner._finish(outcome)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def running(self) -> int:
        with self._lock:
            return sum(t.is_alive() for t in self._threads)

    def join(self, timeout: float | None = None) -> None:
        """Wait for this process's runs (tests and shutdown)."""
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)

    def _reap(self, now: datetime) -> None:
        """Mark failed the runs still ``running`` past their deadline (a dead process)."""
        with self._lock:
            mine = {t.name for t in self._threads if t.is_alive()}
        due = (PipelineRunRow.status == "running") & (PipelineRunRow.deadline_at < now)
        with self.ws.db.read() as s:
            if s.execute(select(func.count()).where(due)).scalar_one() == 0:
                return
        with self.ws.db.write() as s:
            stale = s.execute(select(PipelineRunRow).where(due).with_for_update()).scalars()
            for row in stale:
                if f"lockgate-run-{row.id}" in mine:
                    continue
                row.status = "failed"
                row.finished_at = now
                row.error = "abandoned: the process running it stopped before it finished"
                record_event(
                    self.ws.db, s, kind="pipeline.finished", subject=row.model,
                    actor=AUTOMATION_ACTOR, at=now,
                    payload={"run": row.id, "model": row.model, "status": "failed",
                             "error": row.error},
                )  # fmt: skip


_BY_CONTROLLER: weakref.WeakKeyDictionary[Any, AutomationService] = weakref.WeakKeyDictionary()


def automation_for(controller: Any) -> AutomationService:
    """The automation service of a rollout controller (one per controller, made on first
    use with the controller's workspace, prediction log, feedback and clock)."""
    service = _BY_CONTROLLER.get(controller)
    if service is None:
        service = AutomationService(
            controller.ws,
            predlog=controller.predlog,
            feedback=controller.feedback,
            clock=controller.clock,
        )
        _BY_CONTROLLER[controller] = service
    return service


def tick_controller(controller: Any) -> None:
    """What the controller calls on each tick while it leads: the policy engine's round.
    Failures are logged, never raised into the controller's loop."""
    try:
        automation_for(controller).tick()
    except Exception:
        log.exception("automation tick failed")


def _with_started(sit: Situation, endpoint: str, started: set[str]) -> Situation:
    """``sit`` counting the retrains started on this tick as running (the runs of a tick may
    have ended already, the limits are per tick too)."""
    if not started:
        return sit
    here = max(sit.running_here, 1) if endpoint in started else sit.running_here
    return replace(sit, running_here=here, running_total=max(sit.running_total, len(started)))
