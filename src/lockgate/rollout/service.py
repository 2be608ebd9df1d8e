"""Persisted rollouts: start, status, pause, resume, promote, abort, and the controller's
analyses, over the pure state machine in :mod:`lockgate.rollout.state`.

Every transition runs in one write transaction with everything it implies: the rollout's new
state, a history row (reason, actor, the analysis that led to it), the endpoint's new traffic
policy (its generation bumped, so every server switches within a poll interval), the
``champion`` alias on promotion, and an event. Refused commands raise before anything is
written, so bad input never changes state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lockgate.audit.events import record_event
from lockgate.errors import ConflictError, InvalidInputError, NotFoundError
from lockgate.registry.rows import version_row
from lockgate.rollout.analysis import Analysis, AnalysisConfig
from lockgate.rollout.policy import TrafficPolicy
from lockgate.rollout.state import (
    TERMINAL,
    Command,
    RolloutPlan,
    RolloutState,
    Transition,
    after_analysis,
    candidate_weight,
    command,
    policy_for,
    start,
)
from lockgate.store.paths import validate_name
from lockgate.store.schema import (
    AliasHistoryRow,
    AliasRow,
    EndpointRow,
    ModelRow,
    RolloutHistoryRow,
    RolloutRow,
    VersionRow,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from lockgate.workspace import Workspace

#: the actor of the controller's transitions
CONTROLLER_ACTOR = "lockgate-controller"
CHAMPION = "champion"
#: event kinds of the transitions
EVENT_KINDS = {
    "start": "rollout.started",
    "advance": "rollout.advanced",
    "promote": "rollout.promoted",
    "rollback": "rollout.rolled_back",
    "pause": "rollout.paused",
    "resume": "rollout.resumed",
    "abort": "rollout.aborted",
    "hold": "rollout.analysis_failed",
}


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    actor: str
    action: str
    from_phase: str | None
    to_phase: str
    step: int
    policy: dict[str, Any]
    reason: str
    analysis: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "from_phase": self.from_phase,
            "to_phase": self.to_phase,
            "step": self.step,
            "policy": self.policy,
            "reason": self.reason,
            "outcome": (self.analysis or {}).get("outcome"),
        }


@dataclass(frozen=True)
class RolloutInfo:
    id: int
    endpoint: str
    model: str
    baseline: int
    candidate: int
    plan: RolloutPlan
    state: RolloutState
    salt: str
    analysis: dict[str, Any] | None
    revision: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    next_eval_at: datetime | None
    history: list[HistoryEntry] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.state.active

    @property
    def policy(self) -> TrafficPolicy:
        return policy_for(self.plan, self.state, self.baseline, self.candidate, self.salt)

    def to_dict(self) -> dict[str, Any]:
        st = self.state
        cw = candidate_weight(self.plan, st)
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "model": self.model,
            "baseline_version": self.baseline,
            "candidate_version": self.candidate,
            "strategy": self.plan.strategy,
            "state": st.phase,
            "active": self.active,
            "paused": st.paused,
            "step": st.step if st.phase == "canary" else None,
            "steps": list(self.plan.steps),
            "weights": {"baseline": 100.0 - cw, "candidate": cw},
            "shadow": st.phase == "shadow",
            "failures": st.failures,
            "max_failures": self.plan.max_failures,
            "interval_seconds": self.plan.interval,
            "started_at": st.started_at.isoformat(),
            "step_started_at": st.step_started_at.isoformat() if st.step_started_at else None,
            "next_analysis_at": self.next_eval_at.isoformat() if self.next_eval_at else None,
            "policy": self.policy.to_dict(),
            "plan": self.plan.to_dict(),
            "analysis": self.analysis,
            "created_by": self.created_by,
            "updated_at": self.updated_at.isoformat(),
            "history": [h.to_dict() for h in self.history],
        }


class RolloutService:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- commands ----------------------------------------------------------------------
    def start(
        self,
        endpoint: str,
        candidate: int,
        *,
        strategy: str = "canary",
        steps: tuple[float, ...] | list[float] | None = None,
        interval: float | str = 60.0,
        max_failures: int = 2,
        ab_weights: tuple[float, float] | list[float] | None = None,
        shadow_percent: float = 100.0,
        key_column: str | None = None,
        analysis: AnalysisConfig | dict[str, Any] | None = None,
        reason: str = "",
        force: bool = False,
        force_reason: str = "",
    ) -> RolloutInfo:
        """Start rolling ``candidate`` out on ``endpoint`` against its current primary.

        Like a deploy, the candidate must have passed the gates its model's saved policy
        requires (``lockgate validate``), unless ``force`` with a ``force_reason``, which is
        recorded in the rollout's reason and event."""
        validate_name(endpoint, "endpoint")
        if not isinstance(candidate, int) or isinstance(candidate, bool) or candidate < 1:
            raise InvalidInputError.for_field("candidate", "a positive version number", candidate)
        gates = self._authorize(endpoint, candidate, force=force, force_reason=force_reason)
        if gates.get("forced"):
            reason = f"{reason} (gates forced: {gates.get('force_reason')})".strip()
        cfg = (
            analysis if isinstance(analysis, AnalysisConfig) else AnalysisConfig.from_dict(analysis)
        )
        plan = RolloutPlan(
            strategy=strategy,  # type: ignore[arg-type]
            steps=tuple(steps) if steps is not None else RolloutPlan.steps,
            interval=interval,  # type: ignore[arg-type]
            max_failures=max_failures,
            ab_weights=tuple(ab_weights) if ab_weights is not None else (50.0, 50.0),  # type: ignore[arg-type]
            shadow_percent=shadow_percent,
            key_column=key_column,
            analysis=cfg,
        )
        now = self.ws.clock.now()
        try:
            with self.ws.db.write() as s:
                ep = self._endpoint(s, endpoint)
                model = s.get_one(ModelRow, ep.model_id).name
                current = TrafficPolicy.from_dict(ep.policy)
                active = self._active_row(s, endpoint)
                if active is not None:
                    raise ConflictError(
                        f"endpoint {endpoint!r} already has an active rollout (id {active.id}, "
                        f"{active.phase}); promote or abort it first",
                        rollout=active.id,
                    )
                if not current.is_simple:
                    raise ConflictError(
                        f"endpoint {endpoint!r} already splits or shadows its traffic; "
                        "deploy a single version before starting a rollout"
                    )
                version_row(s, ep.model_id, model, candidate)
                if candidate == current.primary:
                    raise InvalidInputError.for_field(
                        "candidate",
                        f"a version other than the primary ({current.primary})",
                        candidate,
                    )
                tr = start(plan, now)
                row = RolloutRow(
                    endpoint=endpoint,
                    active_endpoint=endpoint,
                    model=model,
                    baseline_version=current.primary,
                    candidate_version=candidate,
                    strategy=plan.strategy,
                    phase=tr.after.phase,
                    plan=plan.to_dict(),
                    state=tr.after.to_dict(),
                    analysis=None,
                    salt=uuid.uuid4().hex[:16],
                    next_eval_at=tr.after.due_at(plan),
                    revision=1,
                    created_at=now,
                    created_by=self.ws.actor,
                    updated_at=now,
                    updated_by=self.ws.actor,
                )
                s.add(row)
                s.flush()
                self._record(s, row, plan, tr, self.ws.actor, now, reason=reason, ep=ep)
                return self._info(row, history=self._history(s, row.id))
        except IntegrityError:  # a concurrent start won the unique active_endpoint
            raise ConflictError(f"endpoint {endpoint!r} already has an active rollout") from None

    def _authorize(
        self, endpoint: str, candidate: int, *, force: bool, force_reason: str
    ) -> dict[str, Any]:
        """The gates' verdict on rolling ``candidate`` out (ConflictError when refused)."""
        with self.ws.db.read() as s:
            ep = self._endpoint(s, endpoint)
            model = s.get_one(ModelRow, ep.model_id).name
        version = self.ws.registry.get_version(f"{model}/{candidate}")
        return self.ws.gates.authorize_deploy(version, force=force, force_reason=force_reason)

    def pause(self, endpoint: str, *, reason: str = "", actor: str | None = None) -> RolloutInfo:
        return self._command(endpoint, "pause", reason, actor)

    def resume(self, endpoint: str, *, reason: str = "", actor: str | None = None) -> RolloutInfo:
        return self._command(endpoint, "resume", reason, actor)

    def promote(self, endpoint: str, *, reason: str = "", actor: str | None = None) -> RolloutInfo:
        """Send all traffic to the candidate and move ``champion`` to it, now."""
        return self._command(endpoint, "promote", reason, actor)

    def abort(self, endpoint: str, *, reason: str = "", actor: str | None = None) -> RolloutInfo:
        """Send all traffic back to the baseline at once and end the rollout."""
        return self._command(endpoint, "abort", reason, actor)

    def _command(
        self, endpoint: str, cmd: Command, reason: str, actor: str | None = None
    ) -> RolloutInfo:
        """Apply a command as ``actor`` (default: the workspace's actor)."""
        validate_name(endpoint, "endpoint")
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            row = self._latest_row(s, endpoint, lock=True)
            plan = RolloutPlan.from_dict(row.plan)
            tr = command(plan, RolloutState.from_dict(row.state), cmd, now)
            self._record(s, row, plan, tr, actor or self.ws.actor, now, reason=reason)
            return self._info(row, history=self._history(s, row.id))

    # -- the controller's path ---------------------------------------------------------
    def record_analysis(
        self,
        rollout_id: int,
        revision: int,
        analysis: Analysis,
        *,
        baseline: dict[str, float] | None = None,
        window_end: datetime | None = None,
        actor: str = CONTROLLER_ACTOR,
    ) -> Transition | None:
        """Apply an analysis made on the rollout as it was at ``revision``; None (nothing
        written) when the rollout changed meanwhile (a user's command won). The next window
        starts where this one ended (``window_end``, default now)."""
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            row = s.execute(
                select(RolloutRow).where(RolloutRow.id == rollout_id).with_for_update()
            ).scalar_one_or_none()
            if row is None or row.revision != revision or row.phase in TERMINAL:
                return None
            plan = RolloutPlan.from_dict(row.plan)
            state = RolloutState.from_dict(row.state)
            tr = after_analysis(
                plan,
                state,
                analysis.outcome,
                now,
                analysis.reason,
                baseline=baseline,
                window_end=window_end,
            )
            row.analysis = {"at": now.isoformat(), **analysis.to_dict()}
            self._record(s, row, plan, tr, actor, now, analysis=analysis.to_dict())
            return tr

    def active(self) -> list[RolloutInfo]:
        """Every active rollout (for the controller), without history."""
        with self.ws.db.read() as s:
            rows = s.execute(
                select(RolloutRow)
                .where(RolloutRow.active_endpoint.is_not(None))
                .order_by(RolloutRow.id)
            ).scalars()
            return [self._info(r) for r in rows]

    # -- queries -----------------------------------------------------------------------
    def status(self, endpoint: str, *, history: bool = True) -> RolloutInfo:
        """The active rollout of ``endpoint``, else its latest one."""
        validate_name(endpoint, "endpoint")
        with self.ws.db.read() as s:
            row = self._latest_row(s, endpoint)
            return self._info(row, history=self._history(s, row.id) if history else [])

    def get(self, rollout_id: int) -> RolloutInfo:
        with self.ws.db.read() as s:
            row = s.get(RolloutRow, rollout_id)
            if row is None:
                raise NotFoundError("rollout", str(rollout_id))
            return self._info(row, history=self._history(s, row.id))

    def list_rollouts(
        self, *, endpoint: str | None = None, active: bool = False
    ) -> list[RolloutInfo]:
        with self.ws.db.read() as s:
            q = select(RolloutRow).order_by(RolloutRow.id.desc())
            if endpoint is not None:
                q = q.where(RolloutRow.endpoint == validate_name(endpoint, "endpoint"))
            if active:
                q = q.where(RolloutRow.active_endpoint.is_not(None))
            return [self._info(r) for r in s.execute(q).scalars()]

    # -- internals ---------------------------------------------------------------------
    def _record(
        self,
        s: Session,
        row: RolloutRow,
        plan: RolloutPlan,
        tr: Transition,
        actor: str,
        now: datetime,
        *,
        reason: str = "",
        analysis: dict[str, Any] | None = None,
        ep: EndpointRow | None = None,
    ) -> None:
        after = tr.after
        why = f"{tr.reason}: {reason}" if reason else tr.reason
        policy = policy_for(plan, after, row.baseline_version, row.candidate_version, row.salt)
        row.state = after.to_dict()
        row.phase = after.phase
        row.revision = (row.revision or 0) + (0 if tr.before is None else 1)
        row.updated_at = now
        row.updated_by = actor
        row.next_eval_at = None if after.phase in TERMINAL else after.due_at(plan)
        if after.phase in TERMINAL:
            row.active_endpoint = None
        s.add(
            RolloutHistoryRow(
                rollout_id=row.id,
                at=now,
                actor=actor,
                action=tr.action,
                from_phase=tr.before.phase if tr.before else None,
                to_phase=after.phase,
                step=after.step,
                policy=policy.to_dict(),
                reason=why,
                analysis=analysis,
            )
        )
        if tr.traffic:
            ep = (
                ep
                or s.execute(
                    select(EndpointRow).where(EndpointRow.name == row.endpoint).with_for_update()
                ).scalar_one_or_none()
            )
            if ep is not None:
                ep.policy = {**policy.to_dict(), "deployed_from": f"rollout:{row.id}"}
                ep.generation += 1
                ep.updated_at = now
                ep.updated_by = actor
            elif after.phase not in TERMINAL:  # the endpoint was deleted: only ending is left
                raise NotFoundError("endpoint", row.endpoint)
        if tr.action == "promote":
            self._move_champion(s, row, actor, now, why)
        failed_hold = tr.action == "hold" and analysis and analysis.get("outcome") == "failed"
        if tr.action != "hold" or failed_hold:
            record_event(
                self.ws.db,
                s,
                kind=EVENT_KINDS[tr.action],
                subject=row.endpoint,
                actor=actor,
                at=now,
                payload={
                    "rollout": row.id,
                    "endpoint": row.endpoint,
                    "model": row.model,
                    "baseline_version": row.baseline_version,
                    "candidate_version": row.candidate_version,
                    "from_phase": tr.before.phase if tr.before else None,
                    "to_phase": after.phase,
                    "step": after.step,
                    "failures": after.failures,
                    "weights": {str(v): w for v, w in policy.weights().items()},
                    "reason": why,
                    "outcome": (analysis or {}).get("outcome"),
                },
            )

    def _move_champion(
        self, s: Session, row: RolloutRow, actor: str, now: datetime, reason: str
    ) -> None:
        """Point ``champion`` at the candidate in the caller's transaction (with its alias
        history row and event, as the registry records them)."""
        mrow = s.execute(
            select(ModelRow).where(ModelRow.name == row.model).with_for_update()
        ).scalar_one()
        vrow = version_row(s, mrow.id, row.model, row.candidate_version)
        arow = s.execute(
            select(AliasRow).where(AliasRow.model_id == mrow.id, AliasRow.name == CHAMPION)
        ).scalar_one_or_none()
        from_version = None
        if arow is None:
            action = "set"
            s.add(
                AliasRow(
                    model_id=mrow.id,
                    name=CHAMPION,
                    version_id=vrow.id,
                    updated_at=now,
                    updated_by=actor,
                )
            )
        else:
            action = "move"
            from_version = s.get_one(VersionRow, arow.version_id).version
            arow.version_id = vrow.id
            arow.updated_at = now
            arow.updated_by = actor
        text = f"rollout {row.id} promoted: {reason}"
        s.add(
            AliasHistoryRow(
                model_id=mrow.id,
                alias=CHAMPION,
                action=action,
                from_version=from_version,
                to_version=row.candidate_version,
                at=now,
                actor=actor,
                reason=text,
            )
        )
        record_event(
            self.ws.db,
            s,
            kind=f"alias.{action}",
            subject=f"{row.model}@{CHAMPION}",
            actor=actor,
            at=now,
            payload={
                "model": row.model,
                "alias": CHAMPION,
                "from_version": from_version,
                "to_version": row.candidate_version,
                "reason": text,
            },
        )

    @staticmethod
    def _endpoint(s: Session, name: str) -> EndpointRow:
        row = s.execute(
            select(EndpointRow).where(EndpointRow.name == name).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            raise NotFoundError("endpoint", name)
        return row

    @staticmethod
    def _active_row(s: Session, endpoint: str) -> RolloutRow | None:
        return s.execute(
            select(RolloutRow).where(RolloutRow.active_endpoint == endpoint)
        ).scalar_one_or_none()

    def _latest_row(self, s: Session, endpoint: str, *, lock: bool = False) -> RolloutRow:
        q = (
            select(RolloutRow)
            .where(RolloutRow.endpoint == endpoint)
            .order_by(RolloutRow.active_endpoint.is_(None), RolloutRow.id.desc())
            .limit(1)
        )
        if lock:
            q = q.with_for_update()
        row = s.execute(q).scalar_one_or_none()
        if row is None:
            raise NotFoundError("rollout", endpoint, f"endpoint {endpoint!r} has no rollout")
        return row

    @staticmethod
    def _history(s: Session, rollout_id: int) -> list[HistoryEntry]:
        rows = s.execute(
            select(RolloutHistoryRow)
            .where(RolloutHistoryRow.rollout_id == rollout_id)
            .order_by(RolloutHistoryRow.id)
        ).scalars()
        return [
            HistoryEntry(
                r.at,
                r.actor,
                r.action,
                r.from_phase,
                r.to_phase,
                r.step,
                r.policy,
                r.reason,
                r.analysis,
            )
            for r in rows
        ]

    @staticmethod
    def _info(row: RolloutRow, history: list[HistoryEntry] | None = None) -> RolloutInfo:
        return RolloutInfo(
            id=row.id,
            endpoint=row.endpoint,
            model=row.model,
            baseline=row.baseline_version,
            candidate=row.candidate_version,
            plan=RolloutPlan.from_dict(row.plan),
            state=RolloutState.from_dict(row.state),
            salt=row.salt,
            analysis=row.analysis,
            revision=row.revision,
            created_at=row.created_at,
            created_by=row.created_by,
            updated_at=row.updated_at,
            next_eval_at=row.next_eval_at,
            history=list(history or []),
        )
