"""Control-plane routes of the audit layer under ``/api/v1``: KPIs, model cards and the signed
checkpoints of the event chain. "Parse, call, render" over
:class:`~lockgate.audit.service.AuditService`; bad input (a period like ``30x``) is a 400
naming the field, an unknown model or version a 404."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from lockgate.audit.cards import to_html, to_markdown
from lockgate.audit.service import AuditService
from lockgate.serving.dataplane import DataPlane
from lockgate.web.responses import JSONResponse
from lockgate.workspace import Workspace


def create_audit_router(ws: Workspace, plane: DataPlane | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["audit"])
    audit = AuditService(ws, plane.predlog if plane is not None else None)

    @router.get("/kpis")
    def kpis(
        period: str = Query("30d", description="Period ending now: 7d, 30d, 12w..."),
        model: str | None = Query(None, description="One model (default: every model)."),
        failure_window: str = Query(
            "7d", description="A deployment reverted within this long counts as failed."
        ),
        slo_ms: float = Query(100.0, gt=0, description="Latency SLO in milliseconds."),
        buckets: int = Query(4, ge=1, le=365, description="Sub-periods of the quality trend."),
    ) -> dict[str, Any]:
        """Delivery and operations KPIs per model (definitions: docs/kpis.md)."""
        return audit.kpis(
            period=period,
            model=model,
            failure_window=failure_window,
            slo_latency_ms=slo_ms,
            quality_buckets=buckets,
        )

    @router.get("/models/{name}/versions/{version}/card", response_model=None)
    def card(
        name: str,
        version: int,
        format: Literal["json", "markdown", "html"] = "json",
    ) -> Response:
        """The model card of a version: JSON, markdown or a self-contained HTML page."""
        doc = audit.card(name, version)
        if format == "html":
            return HTMLResponse(to_html(doc))
        if format == "markdown":
            return PlainTextResponse(to_markdown(doc), media_type="text/markdown")
        return JSONResponse(doc)

    @router.get("/events/checkpoints")
    def checkpoints() -> dict[str, Any]:
        """The signed checkpoints of the event chain (retention and anchors), oldest first."""
        return {"checkpoints": [c.to_dict() for c in audit.checkpoints()]}

    return router
