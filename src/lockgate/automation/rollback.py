"""The SLO-breach rollback when no rollout is active: redeploy the version the endpoint served
before its current one.

:func:`served_before` finds that version in the endpoint's deployment events (a direct deploy
records ``from_version``, a promotion its ``baseline_version``), falling back on the
``champion`` alias history when those events were pruned. :func:`redeploy` applies the
decision in **one** write transaction: the endpoint's new primary (and generation, which the
data planes poll), ``champion`` moved back when it pointed at the version rolled back from,
the policy's ``rollback_last`` time (its cool-down), the engine's cursor past the alert, and
the ``endpoint.deployed``, ``alias.move`` and ``automation.decision`` events, all by
:data:`~lockgate.automation.service.AUTOMATION_ACTOR`. A crash leaves either all of it or
none (and then the alert is read again by the next leader); an endpoint changed since the
decision (a human deployed, a rollout started) is left alone and the decision says why.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from lockgate.audit.events import record_event
from lockgate.errors import ConflictError, LockgateError, NotFoundError
from lockgate.registry.rows import version_row
from lockgate.rollout.policy import TrafficPolicy
from lockgate.store.schema import (
    AliasHistoryRow,
    AliasRow,
    AutomationCursorRow,
    AutomationPolicyRow,
    EndpointRow,
    EventRow,
    ModelRow,
    VersionRow,
)

if TYPE_CHECKING:
    from lockgate.automation.policies import Decision
    from lockgate.workspace import Workspace

CHAMPION = "champion"
#: the key of the policy row's state holding the time of the last automated rollback
ROLLBACK_STATE = "rollback_last"
#: how many of the endpoint's newest deployment events are searched
_SCAN = 1000


def served_before(
    ws: Workspace, endpoint: str, model: str, current: int, *, actor: str
) -> tuple[int | None, bool]:
    """``(version, by_rollback)``: the version ``endpoint`` served before ``current`` became
    its primary (None: nothing before it), and whether ``current`` got there by a rollback
    of the policy engine (``actor``)."""
    kinds = ("endpoint.deployed", "rollout.promoted")
    with ws.db.read() as s:
        rows = s.execute(
            select(EventRow.kind, EventRow.payload)
            .where(EventRow.subject == endpoint, EventRow.kind.in_(kinds))
            .order_by(EventRow.id.desc())
            .limit(_SCAN)
        ).all()
    for kind, raw in rows:
        p = dict(raw or {})
        if p.get("model") not in (None, model):
            break  # the endpoint served another model before: nothing of this one
        if kind == "endpoint.deployed":
            to, frm = p.get("to_version"), p.get("from_version")
        else:
            to, frm = p.get("candidate_version"), p.get("baseline_version")
        if to != current or frm == current:
            continue  # another version's arrival, or a configuration change
        return (frm if isinstance(frm, int) else None), bool(p.get("rollback"))
    with contextlib.suppress(LockgateError):  # events pruned by retention: the alias history
        for move in reversed(ws.registry.alias_history(model, CHAMPION)):
            if move.action == "move" and move.to_version == current:
                return move.from_version, move.actor == actor
    return None, False


def redeploy(
    ws: Workspace,
    decision: Decision,
    *,
    model: str,
    actor: str,
    now: datetime,
    cursor: tuple[str, int] | None,
    reason: str,
) -> dict[str, Any]:
    """Apply a taken rollback decision (``from_version`` -> ``to_version`` in its detail) and
    record it, atomically; returns what was done. Raises a LockgateError, with nothing
    written, when the endpoint no longer serves ``from_version`` in a simple policy or the
    version to go back to is gone."""
    endpoint = decision.endpoint
    frm = int(decision.detail["from_version"])
    to = int(decision.detail["to_version"])
    target = ws.registry.get_version(f"{model}/{to}")
    # a rollback restores what served before: a gate policy made since must not block it,
    # but whether the version would pass is on the record
    gates = ws.gates.authorize_deploy(target, force=True, force_reason=reason)
    with ws.db.write() as s:
        # every row lock first, then the events (whose chain lock comes last): the order
        # deploys, promotions and alias moves also take, so none of them can deadlock this
        ep = s.execute(
            select(EndpointRow).where(EndpointRow.name == endpoint).with_for_update()
        ).scalar_one_or_none()
        if ep is None:
            raise NotFoundError("endpoint", endpoint)
        mrow = s.execute(
            select(ModelRow).where(ModelRow.id == ep.model_id).with_for_update()
        ).scalar_one()
        if mrow.name != model:
            raise ConflictError(f"endpoint {endpoint!r} now serves model {mrow.name!r}")
        policy = TrafficPolicy.from_dict(ep.policy)
        if not policy.is_simple:
            raise ConflictError(f"endpoint {endpoint!r} took a rollout or split meanwhile")
        if policy.primary != frm:
            raise ConflictError(
                f"endpoint {endpoint!r} serves v{policy.primary} now, not v{frm}: "
                "it changed since the decision"
            )
        vrow = version_row(s, mrow.id, model, to)
        alias = s.execute(
            select(AliasRow)
            .where(AliasRow.model_id == mrow.id, AliasRow.name == CHAMPION)
            .with_for_update()
        ).scalar_one_or_none()
        move = alias is not None and s.get_one(VersionRow, alias.version_id).version == frm
        prow = s.execute(
            select(AutomationPolicyRow)
            .where(AutomationPolicyRow.endpoint == endpoint)
            .with_for_update()
        ).scalar_one_or_none()
        crow = None
        if cursor is not None:
            crow = s.get(AutomationCursorRow, cursor[0], with_for_update=True)

        ep.policy = {
            **TrafficPolicy(primary=to).to_dict(),
            "deployed_from": f"@{CHAMPION}" if move else None,
        }
        ep.generation += 1
        ep.updated_at = now
        ep.updated_by = actor
        if alias is not None and move:
            alias.version_id = vrow.id
            alias.updated_at = now
            alias.updated_by = actor
            s.add(
                AliasHistoryRow(
                    model_id=mrow.id, alias=CHAMPION, action="move", from_version=frm,
                    to_version=to, at=now, actor=actor, reason=reason,
                )
            )  # fmt: skip
        if prow is not None:
            prow.state = {**(prow.state or {}), ROLLBACK_STATE: now.isoformat()}
        if cursor is not None:
            if crow is None:
                s.add(AutomationCursorRow(name=cursor[0], event_id=cursor[1], updated_at=now))
            elif cursor[1] > crow.event_id:
                crow.event_id = cursor[1]
                crow.updated_at = now
        done = {"champion_moved": bool(move), "generation": ep.generation}
        s.flush()

        rollback = {
            "from_version": frm,
            "trigger": decision.trigger,
            "monitor": decision.detail.get("monitor"),
            "alert": decision.detail.get("alert"),
        }
        record_event(
            ws.db, s, kind="endpoint.deployed", subject=endpoint, actor=actor, at=now,
            payload={
                "endpoint": endpoint, "model": model, "from_version": frm, "to_version": to,
                "alias": CHAMPION if move else None, "reason": reason, "batching": ep.batching,
                "gates": gates, "rollback": rollback,
            },
        )  # fmt: skip
        if move:
            record_event(
                ws.db, s, kind="alias.move", subject=f"{model}@{CHAMPION}", actor=actor, at=now,
                payload={"model": model, "alias": CHAMPION, "from_version": frm,
                         "to_version": to, "reason": reason},
            )  # fmt: skip
        record_event(
            ws.db, s, kind="automation.decision", subject=endpoint, actor=actor, at=now,
            payload={**decision.to_dict(), **done},
        )  # fmt: skip
    return done
