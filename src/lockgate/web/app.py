"""The ASGI entry: a small dispatcher in front of the control-plane API (FastAPI), the data
plane (a framework-free ASGI app) and ``/metrics``; it also runs the lifespan hooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from lockgate.web.dataplane import Receive, Scope, Send, respond

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]


class LockgateApp:
    def __init__(
        self,
        *,
        api: ASGIApp,
        dataplane: ASGIApp,
        registry: CollectorRegistry,
        ui: ASGIApp | None = None,
        on_startup: list[Hook] | None = None,
        on_shutdown: list[Hook] | None = None,
    ) -> None:
        self.api = api
        self.dataplane = dataplane
        self.registry = registry
        self.ui = ui
        self.on_startup = on_startup or []
        self.on_shutdown = on_shutdown or []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith(("/v2", "/v1/endpoints/")):
                await self.dataplane(scope, receive, send)
            elif path == "/metrics":
                body = generate_latest(self.registry)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", CONTENT_TYPE_LATEST.encode()),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            elif path.startswith("/ui") and self.ui is not None:
                await self.ui(scope, receive, send)
            elif path.startswith("/api/"):
                await self.api(scope, receive, send)
            elif path == "/":
                await respond(
                    send,
                    200,
                    b'{"name":"lockgate","api":"/api/v1/docs","oip":"/v2","metrics":"/metrics"}',
                )
            else:
                await respond(send, 404, b'{"error":"not found"}')
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:  # websocket: not offered
            await self.api(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: dict[str, Any] = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        await hook()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    for hook in self.on_shutdown:
                        await hook()
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return
