"""The composition root: the only place that wires store, services, serving and web.

Start-up is ordered for time to ready: the frameworks of the deployed models first
(:func:`preload_frameworks`), then the data plane; the control plane is wired once the data
plane is ready (:class:`ControlPlane`). So this module imports the rest only in functions.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from lockgate.settings import Settings

if TYPE_CHECKING:
    from lockgate.serving.dataplane import DataPlane
    from lockgate.web.app import ASGIApp, LockgateApp
    from lockgate.workspace import Workspace

log = logging.getLogger("lockgate.server")

#: flavor -> the modules its models cannot load without, in the order to import them (see
#: :func:`preload_frameworks`; SciPy's ufuncs first, for skops's scan of them)
PRELOAD_MODULES: dict[str, tuple[str, ...]] = {"sklearn": ("scipy.special", "sklearn.base")}


@dataclass
class Server:
    settings: Settings
    workspace: Workspace
    registry: CollectorRegistry
    plane: DataPlane
    app: LockgateApp
    predlog: Any
    control: ControlPlane


class ControlPlane:
    """``/api/v1`` (FastAPI), the rollout controller and the monitor service.

    They are wired in a worker thread once the data plane is ready (FastAPI, its pydantic
    models and the services' imports take the better part of a second), so
    ``/v2/health/ready`` does not wait for them. A request to ``/api/v1`` or ``/metrics``
    that arrives before they are up waits for them.
    """

    def __init__(
        self,
        settings: Settings,
        ws: Workspace,
        predlog: Any,
        plane: DataPlane,
        registry: CollectorRegistry,
    ) -> None:
        from lockgate.web.app import LateApp

        self.settings = settings
        self.ws = ws
        self.predlog = predlog
        self.plane = plane
        self.registry = registry
        self.controller: Any = None
        self.monitors: Any = None
        self.api = LateApp(self._build, "control plane (/api/v1, controller, monitors)")

    def start(self) -> None:
        """Start wiring it (on the event loop, after the data plane is ready)."""
        self.api.start()

    async def wait(self) -> None:
        """Return once it is up (starting it if needed); raise if it failed."""
        await self.api.wait()

    async def stop(self) -> None:
        """Let a start in progress finish, then stop the controller and the monitors."""
        await self.api.settle()
        if self.controller is not None:
            await self.controller.stop()
        if self.monitors is not None:
            await asyncio.to_thread(self.monitors.close)

    async def _build(self) -> ASGIApp:
        api: ASGIApp = await asyncio.to_thread(self._wire)
        await self.controller.start()
        _freeze_heap()
        return api

    def _wire(self) -> Any:
        from lockgate.web.api import create_api

        self.controller = _controller(
            self.settings, self.ws, self.predlog, self.plane, self.registry
        )
        self.monitors = _monitors(self.ws, self.controller, self.registry)
        api = create_api(self.ws, self.plane)
        api.state.controller = self.controller
        api.state.monitors = self.monitors
        return api


def _freeze_heap() -> None:
    """Move every object alive once the server is up (modules, models, the app) out of the
    garbage collector's reach. The prediction log holds each request's record until its
    flush, so objects outlive the young generations and trigger full collections; without
    this each one walks the hundreds of thousands of objects that imports created (measured
    with ``benchmarks/serving/hotpath.py --gc-stats``: 585 ms of collections for 160,000
    requests, 134 ms frozen). Then the collector runs again if the ``lockgate`` command
    paused it for the start-up (:mod:`lockgate.gcpause`)."""
    import gc

    from lockgate import gcpause

    gc.collect()
    gc.freeze()
    gcpause.resume()  # paused by the `lockgate` command during start-up


def build(settings: Settings | None = None, *, workspace: Workspace | None = None) -> Server:
    """Wire a server: workspace, prediction log, data plane, web app and lifespan hooks; the
    control plane is wired once the data plane is ready (:class:`ControlPlane`)."""
    from lockgate.serving.dataplane import DataPlane
    from lockgate.serving.metrics import ServingMetrics
    from lockgate.store.predlog import PredictionLog
    from lockgate.web.app import LockgateApp
    from lockgate.web.dataplane import DataPlaneApp
    from lockgate.workspace import Workspace

    settings = settings or Settings()
    ws = workspace or Workspace(settings)
    registry = CollectorRegistry(auto_describe=True)
    predlog = (
        PredictionLog(
            settings.predictions_dir,
            durability=settings.log_durability,
            flush_interval=settings.log_flush_interval,
            max_queue_rows=settings.log_queue_size,
            overflow=settings.log_overflow,
            registry=registry,
        )
        if settings.log_predictions
        else None
    )
    plane = DataPlane(
        ws,
        predlog=predlog,
        metrics=ServingMetrics(registry),
        poll_interval=settings.poll_interval,
        shadow_workers=settings.shadow_workers,
        shadow_queue=settings.shadow_queue,
    )
    control = ControlPlane(settings, ws, predlog, plane, registry)

    async def startup() -> None:
        if predlog is not None:
            predlog.start(asyncio.get_running_loop())  # async: the log writes on this loop
        else:
            log.warning("prediction log off (LOCKGATE_LOG_PREDICTIONS=false): nothing recorded")
        await plane.start()
        control.start()
        log.info("lockgate ready: %d endpoint(s)", len(plane.endpoints()))

    async def shutdown() -> None:
        await control.stop()
        await plane.stop()
        if predlog is not None:
            await asyncio.to_thread(predlog.close)
        ws.close()

    app = LockgateApp(
        api=control.api,
        dataplane=DataPlaneApp(plane),
        registry=registry,
        on_startup=[startup],
        on_shutdown=[shutdown],
        before_metrics=control.wait,
    )
    return Server(settings, ws, registry, plane, app, predlog, control)


def _controller(
    settings: Settings,
    ws: Workspace,
    predlog: Any,
    plane: DataPlane,
    registry: CollectorRegistry,
) -> Any:
    """The rollout controller: reads this server's prediction log (or the folder, when this
    server does not record), applies its decisions here at once through ``plane.sync``."""
    from lockgate.feedback import FeedbackService
    from lockgate.rollout.controller import Controller
    from lockgate.store.predlog import PredictionLog

    reader = predlog if predlog is not None else PredictionLog(settings.predictions_dir)
    return Controller(
        ws,
        predlog=reader,
        feedback=FeedbackService(ws, reader),
        interval=settings.controller_interval,
        lease_ttl=settings.controller_lease_ttl,
        lag=settings.log_flush_interval + 0.5,
        registry=registry,
        on_change=plane.sync,
    )


def _monitors(ws: Workspace, controller: Any, registry: CollectorRegistry) -> Any:
    """The monitor service: evaluated by the controller on every tick it leads, over the
    same prediction log and feedback; its gauges are exported on this server's /metrics."""
    from lockgate.monitoring.service import MonitorService

    monitors = MonitorService(
        ws, predlog=controller.predlog, feedback=controller.feedback, registry=registry
    )
    controller.monitors = monitors
    return monitors


def preload_frameworks(settings: Settings) -> list[str]:
    """Import the frameworks of the deployed models before anything else; return their
    modules.

    The data plane needs them before it is ready anyway, and imported first they make the
    models load faster: skops, when imported, finds the module of each of ~400 SciPy ufuncs
    by scanning ``sys.modules`` in import order, a scan that ends sooner the fewer modules
    were imported before SciPy's (``run`` calls this before uvicorn, pandas and the server's
    own modules; skops's import took 0.43 s with 1,180 modules before ``scipy.special`` and
    0.22 s with 410, measured here; the sklearn runtime has since made each module of the
    scan cheaper, see ``_first_module_holding`` in :mod:`lockgate.runtimes.sklearn`). Best
    effort: a database that cannot answer (new, or unreachable) preloads nothing, and a
    missing framework is left for the data plane to report."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from lockgate.errors import LockgateError
    from lockgate.store.db import Database
    from lockgate.store.schema import EndpointRow, VersionRow

    query = (
        select(VersionRow.flavor)
        .join(EndpointRow, EndpointRow.model_id == VersionRow.model_id)
        .distinct()
    )
    try:
        db = Database(settings.resolved_database_url)
        try:
            with db.read() as session:
                flavors = set(session.scalars(query))
        finally:
            db.dispose()
    except (SQLAlchemyError, LockgateError):
        return []
    modules: list[str] = []
    for flavor in sorted(flavors & PRELOAD_MODULES.keys()):
        for module in PRELOAD_MODULES[flavor]:
            try:
                importlib.import_module(module)
            except ImportError:
                break
            modules.append(module)
    return modules


def run(
    settings: Settings | None = None, *, host: str | None = None, port: int | None = None
) -> None:
    """Serve until SIGINT/SIGTERM: stop accepting, finish in-flight requests, flush the
    prediction log, exit 0. If the control plane (wired after the data plane is ready)
    fails to start, stop the same way and raise LockgateError."""
    from lockgate.runtimes.threads import limit_inference_threads

    settings = settings or Settings()
    limit_inference_threads(settings.inference_threads)  # before the libraries load
    preload_frameworks(settings)  # before anything else is imported: see its docstring
    import uvicorn

    from lockgate.web.protocol import CoalescingHttpToolsProtocol

    server = build(settings)
    config = uvicorn.Config(
        server.app,
        host=host or settings.host,
        port=port if port is not None else settings.port,
        lifespan="on",
        access_log=False,
        log_level="warning",
        http=CoalescingHttpToolsProtocol,  # one write per response (see its module)
        ws="none",  # no WebSocket routes: spares importing a WebSocket implementation
        loop="uvloop" if _has_uvloop() else "asyncio",
        timeout_graceful_shutdown=30,
        timeout_keep_alive=30,
        backlog=2048,
    )
    uv = _make_graceful()(config)
    failed: list[BaseException] = []

    def stop_on_failure(exc: BaseException) -> None:
        # a server without its controller would serve on while nothing rolls out, monitors
        # or rolls back: stop (gracefully) and say why, rather than limp on
        failed.append(exc)
        uv.should_exit = True

    server.control.api.on_failure = stop_on_failure
    uv.run()
    if failed:
        from lockgate.errors import LockgateError

        raise LockgateError(f"the control plane failed to start: {failed[0]}")


def _make_graceful() -> type:
    import contextlib
    import signal
    import threading
    from collections.abc import Iterator

    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises the signal after a graceful shutdown, so the process dies *by*
        SIGTERM; Lockgate finishes in-flight requests, flushes its log and exits 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            sigs = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in sigs}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return GracefulServer


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
