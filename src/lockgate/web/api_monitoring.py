"""Control-plane routes of monitoring under ``/api/v1``: monitors, alerts, and the drift and
quality reports of an endpoint.

"Parse, call, render" over :class:`~lockgate.monitoring.service.MonitorService`. A server
sets ``app.state.monitors`` to the service its controller evaluates (so a report here also
sees this process's unflushed records); without one, a service over the workspace is used.
Webhook secrets are accepted in a definition and never returned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from lockgate.monitoring.monitors import MonitorKind, parse_duration
from lockgate.monitoring.service import MonitorService
from lockgate.serving.dataplane import DataPlane
from lockgate.workspace import Workspace


class WebhookBody(BaseModel):
    url: str = Field(description="http(s) URL alerts are posted to (no redirects followed).")
    secret: str | None = Field(
        default=None,
        description="Signs the body (HMAC-SHA256); default: the server's "
        "LOCKGATE_WEBHOOK_SECRET. Write-only.",
    )


class MonitorBody(BaseModel):
    name: str
    endpoint: str
    kind: MonitorKind
    threshold: float | None = Field(default=None, description="See docs/monitoring.md.")
    window: str | float = Field(default="1h", description="30m, 1h, 1d or seconds.")
    interval: str | float = Field(default="1m", description="Time between evaluations.")
    metric: str | None = Field(default=None, description="quality: the metric watched.")
    quantile: float = 0.99
    min_samples: int | None = None
    version: int | None = None
    columns: list[str] = Field(default_factory=list)
    drift: dict[str, Any] = Field(default_factory=dict, description="DriftConfig parameters.")
    positive: str | None = None
    include_4xx: bool = False
    webhooks: list[WebhookBody | str] = Field(default_factory=list)
    enabled: bool = True
    description: str = ""
    replace: bool = Field(default=False, description="Overwrite a monitor of that name.")
    reason: str = ""


def create_monitoring_router(ws: Workspace, plane: DataPlane | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    fallback: list[MonitorService] = []

    def service(request: Request) -> MonitorService:
        svc = getattr(request.app.state, "monitors", None)
        if isinstance(svc, MonitorService):
            return svc
        if not fallback:
            fallback.append(
                MonitorService(ws, predlog=plane.predlog if plane is not None else None)
            )
        return fallback[0]

    @router.get("/monitors", tags=["monitoring"])
    def list_monitors(request: Request, endpoint: str | None = None) -> dict[str, Any]:
        return {"monitors": [m.to_dict() for m in service(request).list_monitors(endpoint)]}

    @router.post("/monitors", tags=["monitoring"], status_code=201)
    def add_monitor(request: Request, body: MonitorBody) -> dict[str, Any]:
        spec = body.model_dump(exclude={"replace", "reason"})
        spec["webhooks"] = [
            h if isinstance(h, str) else {"url": h["url"], "secret": h.get("secret")}
            for h in spec["webhooks"]
        ]
        return service(request).add(spec, replace=body.replace, reason=body.reason).to_dict()

    @router.get("/monitors/{name}", tags=["monitoring"])
    def get_monitor(request: Request, name: str) -> dict[str, Any]:
        return service(request).get(name).to_dict()

    @router.delete("/monitors/{name}", tags=["monitoring"])
    def remove_monitor(request: Request, name: str, reason: str = "") -> dict[str, Any]:
        info = service(request).remove(name, reason=reason)
        return {"removed": info.name, "endpoint": info.spec.endpoint}

    @router.get("/alerts", tags=["monitoring"])
    def list_alerts(
        request: Request,
        monitor: str | None = None,
        endpoint: str | None = None,
        limit: int = Query(default=100, ge=1, le=10_000),
    ) -> dict[str, Any]:
        found = service(request).alerts(monitor=monitor, endpoint=endpoint, limit=limit)
        return {"alerts": [{**a.to_dict(), "delivery": a.deliveries} for a in found]}

    @router.get("/endpoints/{name}/drift", tags=["monitoring"], response_model=None)
    def drift(
        request: Request,
        name: str,
        window: str = Query(default="1h", description="30m, 1h, 1d; ignored with since."),
        since: datetime | None = None,
        until: datetime | None = None,
        version: int | None = Query(default=None, ge=1),
        column: list[str] | None = Query(default=None, description="Only these columns."),
        format: Literal["json", "html"] = "json",
    ) -> dict[str, Any] | HTMLResponse:
        seconds = parse_duration(window, "window", low=1.0, high=366 * 86_400)
        d = service(request).drift(
            name, window=seconds, since=since, until=until, version=version, columns=column
        )
        if format == "html":
            from lockgate.monitoring.report_html import render_html

            assert d.reference is not None and d.current is not None
            page = render_html(
                d.report, d.reference, d.current, title=f"Drift report: {name} v{d.version}",
                reference_label=f"profile of {d.model}/{d.version}",
                current_label=f"{name} v{d.version} primary, {d.since:%Y-%m-%d %H:%M} to "
                f"{d.until:%Y-%m-%d %H:%M} UTC",
            )  # fmt: skip
            return HTMLResponse(page)
        return d.to_dict()

    @router.get("/endpoints/{name}/quality/report", tags=["monitoring"])
    def quality(
        request: Request,
        name: str,
        window: str = Query(default="1d", description="30m, 1h, 1d; ignored with since."),
        since: datetime | None = None,
        until: datetime | None = None,
        version: int | None = Query(default=None, ge=1),
        task: Literal["classification", "regression"] | None = None,
        positive: str | None = None,
    ) -> dict[str, Any]:
        seconds = parse_duration(window, "window", low=1.0, high=366 * 86_400)
        q = service(request).quality(
            name, window=seconds, since=since, until=until, version=version, task=task,
            positive=positive,
        )  # fmt: skip
        return q.to_dict()

    return router
