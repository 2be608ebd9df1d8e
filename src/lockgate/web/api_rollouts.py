"""Control-plane routes of rollouts, feedback and the controller, under ``/api/v1``.

"Parse, call, render" over :class:`~lockgate.rollout.service.RolloutService` and
:class:`~lockgate.feedback.FeedbackService`; domain errors become 4xx through the API's
exception handlers (bad input 400, unknown endpoint or version 404, a second rollout or a
promote of a rolled-back one 409), and none of them changes state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from lockgate.feedback import FeedbackService
from lockgate.rollout.service import RolloutService
from lockgate.serving.dataplane import DataPlane
from lockgate.workspace import Workspace


class StartBody(BaseModel):
    endpoint: str = Field(description="Endpoint whose primary is the baseline.")
    candidate: int = Field(description="Version of the endpoint's model to roll out.")
    strategy: Literal["shadow", "canary", "ab", "shadow-then-canary"] = "canary"
    steps: list[float] | None = Field(
        default=None, description="Canary weights in percent, increasing (default 5,25,50,100)."
    )
    interval: str | float = Field(default="60s", description="Analysis interval: 60s, 5m...")
    max_failures: int = Field(default=2, description="Failed analyses in a step before rollback.")
    ab_weights: list[float] | None = Field(
        default=None, description="A/B weights (baseline, candidate), adding up to 100."
    )
    shadow_percent: float = Field(default=100.0, description="Share of requests shadowed.")
    key_column: str | None = Field(
        default=None, description="Input column whose value makes assignment sticky."
    )
    analysis: dict[str, Any] | None = Field(
        default=None, description="Analysis thresholds (see docs/rollouts.md)."
    )
    reason: str = ""


class ReasonBody(BaseModel):
    reason: str = ""


class FeedbackBody(BaseModel):
    endpoint: str
    items: list[Any] = Field(
        description="Up to 10,000 objects {id, value, metrics?}: a prediction id, its ground "
        "truth, and optional business metrics by name."
    )


def create_rollouts_router(ws: Workspace, plane: DataPlane | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    rollouts = RolloutService(ws)
    feedback = FeedbackService(ws, plane.predlog if plane is not None else None)

    @router.post("/rollouts", tags=["rollouts"], status_code=201)
    def start_rollout(body: StartBody) -> dict[str, Any]:
        info = rollouts.start(
            body.endpoint,
            body.candidate,
            strategy=body.strategy,
            steps=body.steps,
            interval=body.interval,
            max_failures=body.max_failures,
            ab_weights=body.ab_weights,
            shadow_percent=body.shadow_percent,
            key_column=body.key_column,
            analysis=body.analysis,
            reason=body.reason,
        )
        return info.to_dict()

    @router.get("/rollouts", tags=["rollouts"])
    def list_rollouts(endpoint: str | None = None, active: bool = False) -> dict[str, Any]:
        infos = rollouts.list_rollouts(endpoint=endpoint, active=active)
        return {"rollouts": [i.to_dict() for i in infos]}

    @router.get("/rollouts/{endpoint}", tags=["rollouts"])
    def rollout_status(endpoint: str) -> dict[str, Any]:
        return rollouts.status(endpoint).to_dict()

    @router.post("/rollouts/{endpoint}/{action}", tags=["rollouts"])
    def rollout_command(
        endpoint: str,
        action: Literal["pause", "resume", "promote", "abort"],
        body: ReasonBody | None = None,
    ) -> dict[str, Any]:
        reason = body.reason if body is not None else ""
        do = {
            "pause": rollouts.pause,
            "resume": rollouts.resume,
            "promote": rollouts.promote,
            "abort": rollouts.abort,
        }[action]
        return do(endpoint, reason=reason).to_dict()

    @router.post("/feedback", tags=["feedback"])
    def send_feedback(body: FeedbackBody) -> dict[str, Any]:
        return feedback.send(body.endpoint, body.items).to_dict()

    @router.get("/endpoints/{name}/quality", tags=["feedback"])
    def quality(
        name: str, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, Any]:
        return {"endpoint": name, "quality": feedback.quality(name, since=since, until=until)}

    @router.get("/controller", tags=["rollouts"])
    def controller(request: Request) -> dict[str, Any]:
        ctl = getattr(request.app.state, "controller", None)
        if ctl is None:
            return {"running": False}
        return {"running": True, **ctl.status()}

    return router
