"""The ASGI entry: a small dispatcher in front of the control-plane API (FastAPI), the data
plane (a framework-free ASGI app) and ``/metrics``; it also runs the lifespan hooks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from lockgate.web.dataplane import Receive, Scope, Send, respond

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]

log = logging.getLogger("lockgate.web")


class LateApp:
    """An ASGI app built after start-up: :meth:`start` (called on the event loop, e.g. by
    a lifespan hook once the data plane is ready) runs ``build`` as a task; a request that
    arrives before it has finished waits for it rather than failing."""

    def __init__(self, build: Callable[[], Awaitable[ASGIApp]], name: str = "app") -> None:
        self._build = build
        self.name = name
        self._task: asyncio.Task[ASGIApp] | None = None
        self._app: ASGIApp | None = None
        #: called with the exception when the build fails (the server stops on it)
        self.on_failure: Callable[[BaseException], None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._build())
            self._task.add_done_callback(self._report)

    def _report(self, task: asyncio.Task[ASGIApp]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s failed to start", self.name, exc_info=exc)
            if self.on_failure is not None:
                self.on_failure(exc)

    async def wait(self) -> ASGIApp:
        """The app, once built (the build starts now if it has not yet)."""
        if self._app is None:
            self.start()
            assert self._task is not None
            self._app = await asyncio.shield(self._task)
        return self._app

    async def settle(self) -> None:
        """Wait for a build in progress to end, successful or not (never starts one)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app if self._app is not None else await self.wait()
        await app(scope, receive, send)


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
        before_metrics: Hook | None = None,
    ) -> None:
        self.api = api
        self.dataplane = dataplane
        self.registry = registry
        self.ui = ui
        self.on_startup = on_startup or []
        self.on_shutdown = on_shutdown or []
        #: awaited before /metrics answers, so that the first scrape already has the series
        #: of the parts built after start-up (a failure there still serves the others)
        self.before_metrics = before_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith(("/v2", "/v1/endpoints/")):
                await self.dataplane(scope, receive, send)
            elif path == "/metrics":
                if self.before_metrics is not None:
                    with contextlib.suppress(Exception):
                        await self.before_metrics()
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
