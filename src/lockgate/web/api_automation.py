"""Control-plane routes of automation under ``/api/v1``: pipelines, their runs, automation
policies and the policy engine's decisions.

"Parse, call, render" over :mod:`lockgate.automation`. A run started here trains in the
server's background worker (never on the event loop) and answers 202 with the run id; follow
it with ``GET /api/v1/pipeline-runs``. Training from a server-side file path is not offered
over HTTP: runs here train on the logged, labelled traffic.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from starlette.concurrency import run_in_threadpool

from lockgate.automation.pipelines import PipelineSpec
from lockgate.automation.service import AutomationService
from lockgate.errors import InvalidInputError
from lockgate.serving.dataplane import DataPlane
from lockgate.workspace import Workspace


def _body(doc: Any, key: str, value: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InvalidInputError.for_field("body", "a JSON object", type(doc).__name__)
    if key in doc and doc[key] != value:
        raise InvalidInputError.for_field(key, f"{value!r} (as in the path) or absent", doc[key])
    return {**doc, key: value}


def create_automation_router(ws: Workspace, plane: DataPlane | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    predlog = plane.predlog if plane is not None else None
    svc = AutomationService(ws, predlog=predlog)

    @router.get("/pipelines", tags=["automation"])
    def list_pipelines() -> dict[str, Any]:
        return {"pipelines": [p.to_dict() for p in svc.pipelines.list()]}

    @router.put("/pipelines/{model}", tags=["automation"])
    def set_pipeline(model: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        reason = str(body.pop("reason", "")) if isinstance(body, dict) else ""
        spec = PipelineSpec.from_dict(_body(body, "model", model))
        return svc.pipelines.set(spec, reason=reason).to_dict()

    @router.get("/pipelines/{model}", tags=["automation"])
    def get_pipeline(model: str) -> dict[str, Any]:
        return svc.pipelines.get(model).to_dict()

    @router.delete("/pipelines/{model}", tags=["automation"])
    def remove_pipeline(model: str, reason: str = "") -> dict[str, Any]:
        return svc.pipelines.remove(model, reason=reason).to_dict()

    @router.post("/pipelines/{model}/runs", tags=["automation"], status_code=202)
    async def start_run(model: str) -> dict[str, Any]:
        spec = await run_in_threadpool(svc.pipelines.get, model)
        run_id = await run_in_threadpool(
            svc.start_run, spec, {"type": "manual", "actor": ws.actor, "via": "api"}
        )
        return {"run": run_id, "model": model, "status": "running"}

    @router.get("/pipeline-runs", tags=["automation"])
    def list_runs(model: str | None = None, limit: int = 50) -> dict[str, Any]:
        return {"runs": svc.runner.runs(model, limit)}

    @router.get("/automation/policies", tags=["automation"])
    def list_policies() -> dict[str, Any]:
        return {"policies": [p.to_dict() for p in svc.list_policies()]}

    @router.put("/automation/policies/{endpoint}", tags=["automation"])
    def set_policy(endpoint: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        reason = str(body.pop("reason", "")) if isinstance(body, dict) else ""
        return svc.set_policy(_body(body, "endpoint", endpoint), reason=reason).to_dict()

    @router.get("/automation/policies/{endpoint}", tags=["automation"])
    def get_policy(endpoint: str) -> dict[str, Any]:
        return svc.get_policy(endpoint).to_dict()

    @router.delete("/automation/policies/{endpoint}", tags=["automation"])
    def remove_policy(endpoint: str, reason: str = "") -> dict[str, Any]:
        return svc.remove_policy(endpoint, reason=reason).to_dict()

    @router.get("/automation/decisions", tags=["automation"])
    def decisions(endpoint: str | None = None, limit: int = 50) -> dict[str, Any]:
        return {"decisions": svc.decisions(endpoint, limit)}

    return router
