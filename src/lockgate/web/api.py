"""The control plane: ``/api/v1`` (FastAPI, OpenAPI at ``/api/v1/openapi.json``).

Routes are "parse, call, render" over the workspace services; they are plain ``def`` so the
blocking store calls run in the thread pool, off the event loop that serves predictions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from lockgate import __version__
from lockgate.audit.events import iter_events, verify_chain
from lockgate.audit.keys import audit_key
from lockgate.errors import LockgateError
from lockgate.serving.dataplane import DataPlane, describe, status_of
from lockgate.web.api_audit import create_audit_router
from lockgate.web.api_automation import create_automation_router
from lockgate.web.api_monitoring import create_monitoring_router
from lockgate.web.api_rollouts import create_rollouts_router
from lockgate.web.responses import JSONResponse
from lockgate.workspace import Workspace


class AliasBody(BaseModel):
    version: int = Field(ge=1, description="Version the alias points at.")
    reason: str = ""


class DeployBody(BaseModel):
    model: str
    version: int | None = Field(default=None, ge=1)
    alias: str | None = None
    endpoint: str | None = None
    batching: dict[str, Any] | None = None
    reason: str = ""


class BatchingBody(BaseModel):
    enabled: bool = False
    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    max_queue: int = 4096
    timeout_ms: float = 30_000.0


def create_api(ws: Workspace, plane: DataPlane | None = None) -> FastAPI:
    api = FastAPI(
        title="Lockgate control plane",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        default_response_class=JSONResponse,
    )

    @api.exception_handler(LockgateError)
    async def _domain_error(_: Request, exc: LockgateError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=status_of(exc))

    @api.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        field = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{field}: {first.get('msg', 'invalid')}" if field else "invalid request"
        got = first.get("input")
        return JSONResponse(
            {
                "error": message,
                "code": "invalid_input",
                "field": field,
                "got": got if isinstance(got, (str, int, float, bool)) else None,
                "detail": [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors],
            },
            status_code=422,
        )

    @api.get("/api/v1/health", tags=["server"])
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "ready": bool(plane.ready) if plane else True,
        }

    # models --------------------------------------------------------------------------
    @api.get("/api/v1/models", tags=["models"])
    def list_models() -> dict[str, Any]:
        return {"models": [m.to_dict() for m in ws.registry.list_models()]}

    @api.get("/api/v1/models/{name}", tags=["models"])
    def get_model(name: str) -> dict[str, Any]:
        model = ws.registry.get_model(name)
        return {
            **model.to_dict(),
            "versions": [v.to_dict() for v in ws.registry.list_versions(name)],
        }

    @api.get("/api/v1/models/{name}/versions/{version}", tags=["models"])
    def get_version(name: str, version: int) -> dict[str, Any]:
        return ws.registry.get_version(f"{name}/{version}").to_dict()

    @api.get("/api/v1/models/{name}/aliases/{alias}", tags=["models"])
    def get_alias(name: str, alias: str) -> dict[str, Any]:
        return ws.registry.get_version(f"{name}@{alias}").to_dict()

    @api.put("/api/v1/models/{name}/aliases/{alias}", tags=["models"])
    def set_alias(name: str, alias: str, body: AliasBody) -> dict[str, Any]:
        return ws.registry.set_alias(name, alias, body.version, reason=body.reason).to_dict()

    @api.delete("/api/v1/models/{name}/aliases/{alias}", tags=["models"])
    def delete_alias(name: str, alias: str, reason: str = "") -> dict[str, Any]:
        return ws.registry.delete_alias(name, alias, reason=reason).to_dict()

    @api.get("/api/v1/models/{name}/history", tags=["models"])
    def alias_history(name: str, alias: str | None = None) -> dict[str, Any]:
        return {
            "model": name,
            "history": [m.to_dict() for m in ws.registry.alias_history(name, alias)],
        }

    # endpoints -----------------------------------------------------------------------
    @api.get("/api/v1/endpoints", tags=["endpoints"])
    def list_endpoints() -> dict[str, Any]:
        return {"endpoints": [e.to_dict() for e in ws.endpoints.list()]}

    @api.get("/api/v1/endpoints/{name}", tags=["endpoints"])
    def get_endpoint(name: str) -> dict[str, Any]:
        doc = ws.endpoints.get(name).to_dict()
        if plane is not None:
            try:
                doc["serving"] = describe(plane.endpoint(name))
            except LockgateError:
                doc["serving"] = None
        return doc

    @api.post("/api/v1/endpoints", tags=["endpoints"], status_code=201)
    def deploy(body: DeployBody) -> dict[str, Any]:
        return ws.endpoints.deploy(
            body.model,
            version=body.version,
            alias=body.alias,
            endpoint=body.endpoint,
            batching=body.batching,
            reason=body.reason,
        ).to_dict()

    @api.put("/api/v1/endpoints/{name}/batching", tags=["endpoints"])
    def set_batching(name: str, body: BatchingBody) -> dict[str, Any]:
        return ws.endpoints.set_batching(name, body.model_dump()).to_dict()

    @api.delete("/api/v1/endpoints/{name}", tags=["endpoints"])
    def delete_endpoint(name: str, reason: str = "") -> dict[str, Any]:
        ws.endpoints.delete(name, reason=reason)
        return {"deleted": name}

    # audit ---------------------------------------------------------------------------
    @api.get("/api/v1/events", tags=["audit"])
    def events(
        since: datetime | None = None,
        kind: str | None = None,
        subject: str | None = None,
        limit: int = Query(default=1000, ge=1, le=100_000),
    ) -> dict[str, Any]:
        return {
            "events": [
                e.to_dict()
                for e in iter_events(ws.db, since=since, kind=kind, subject=subject, limit=limit)
            ]
        }

    @api.get("/api/v1/events/verify", tags=["audit"])
    def verify() -> dict[str, Any]:
        return verify_chain(ws.db, audit_key(ws.settings, create=False)).to_dict()

    api.include_router(create_audit_router(ws, plane))
    api.include_router(create_monitoring_router(ws, plane))
    api.include_router(create_automation_router(ws, plane))
    api.include_router(create_rollouts_router(ws, plane))
    return api
