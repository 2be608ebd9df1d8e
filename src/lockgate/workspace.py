"""A workspace: settings, metadata database, artifact store, clock and actor, plus the core
services over them. The embedded SDK and the server both build one; nothing here knows HTTP."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from lockgate.clock import SYSTEM_CLOCK, Clock
from lockgate.registry.lineage import current_actor
from lockgate.registry.service import Registry
from lockgate.settings import Settings
from lockgate.store.artifacts import ArtifactStore
from lockgate.store.db import Database
from lockgate.store.migrate import ensure_schema

if TYPE_CHECKING:
    from lockgate.gates.service import GateService
    from lockgate.serving.endpoints import EndpointService


class Workspace:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        migrate: bool = True,
    ) -> None:
        self.settings = settings or Settings()
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.actor = current_actor(self.settings.actor)
        self.db = Database(self.settings.resolved_database_url)
        if migrate:
            ensure_schema(self.db)
        self.artifacts = ArtifactStore(self.settings.resolved_artifacts_url)
        self.cache_dir: Path = self.settings.resolved_cache_dir
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self)

    @cached_property
    def endpoints(self) -> EndpointService:
        from lockgate.serving.endpoints import EndpointService

        return EndpointService(self)

    @cached_property
    def gates(self) -> GateService:
        from lockgate.gates.service import GateService

        return GateService(self)

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
