"""The rollout controller: one background loop that analyses every active rollout on its
interval and applies the outcome (advance, hold, roll back, promote).

Leadership: with several server processes on one database, exactly one evaluates. It holds
a row of the ``leases`` table whose ``expires_at`` it pushes forward at every renewal (at
half its time to live); another process takes the lease only once it has expired, so a dead
leader is replaced ``LOCKGATE_CONTROLLER_LEASE_TTL`` seconds later. Everything a rollout needs
is in the database, so a restarted server carries on where the rollout was.

The clock is injected: :meth:`Controller.tick` does one round at ``clock.now()``, which is
what tests drive with a :class:`~lockgate.clock.FakeClock`; a server calls it every
``LOCKGATE_CONTROLLER_INTERVAL`` seconds in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from lockgate.audit.events import record_event
from lockgate.clock import Clock
from lockgate.errors import LockgateError, StoreError
from lockgate.rollout.analysis import Analysis, analyze
from lockgate.rollout.collect import gather
from lockgate.rollout.service import CONTROLLER_ACTOR, RolloutInfo, RolloutService
from lockgate.rollout.state import Transition
from lockgate.store.schema import LeaseRow

if TYPE_CHECKING:
    from lockgate.feedback import FeedbackService
    from lockgate.store.db import Database
    from lockgate.store.predlog import PredictionLog
    from lockgate.workspace import Workspace

log = logging.getLogger("lockgate.controller")

LEASE_NAME = "rollout-controller"


def default_holder() -> str:
    """A name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """A named lease row with an expiry, shared through the metadata database."""

    def __init__(self, db: Database, clock: Clock, *, name: str, holder: str, ttl: float) -> None:
        self.db = db
        self.clock = clock
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self._expires: datetime | None = None

    @property
    def held(self) -> bool:
        return self._expires is not None and self.clock.now() < self._expires

    def acquire(self) -> bool:
        """Take or renew the lease; True while this holder has it. A holder renews at half
        its time to live, so a renewal costs a write only every ``ttl / 2`` seconds."""
        now = self.clock.now()
        ttl = timedelta(seconds=self.ttl)
        if self._expires is not None and now < self._expires - ttl / 2:
            return True
        if self._expires is None:  # not the leader: a cheap read before any write
            with self.db.read() as s:
                row = s.get(LeaseRow, self.name)
                if row is not None and row.holder != self.holder and row.expires_at > now:
                    return False
        try:
            with self.db.write() as s:
                row = s.execute(
                    select(LeaseRow).where(LeaseRow.name == self.name).with_for_update()
                ).scalar_one_or_none()
                if row is None:
                    s.add(
                        LeaseRow(
                            name=self.name,
                            holder=self.holder,
                            acquired_at=now,
                            renewed_at=now,
                            expires_at=now + ttl,
                        )
                    )
                    self._taken(s, now, None)
                elif row.holder == self.holder or row.expires_at <= now:
                    if row.holder != self.holder:
                        self._taken(s, now, row.holder)
                        row.holder = self.holder
                        row.acquired_at = now
                    row.renewed_at = now
                    row.expires_at = now + ttl
                else:
                    self._expires = None
                    return False
        except (IntegrityError, StoreError):  # lost a race for the first row, or no store
            self._expires = None
            return False
        self._expires = now + ttl
        return True

    def _taken(self, s: Any, now: datetime, previous: str | None) -> None:
        record_event(
            self.db,
            s,
            kind="controller.leader",
            subject=self.name,
            actor=CONTROLLER_ACTOR,
            at=now,
            payload={"holder": self.holder, "previous": previous},
        )

    def release(self) -> None:
        """Give the lease up (on a clean shutdown) so another process takes over at once."""
        if self._expires is None:
            return
        self._expires = None
        with contextlib.suppress(StoreError), self.db.write() as s:
            s.execute(
                delete(LeaseRow).where(LeaseRow.name == self.name, LeaseRow.holder == self.holder)
            )

    def current(self) -> dict[str, Any] | None:
        with self.db.read() as s:
            row = s.get(LeaseRow, self.name)
            if row is None:
                return None
            return {
                "holder": row.holder,
                "acquired_at": row.acquired_at.isoformat(),
                "expires_at": row.expires_at.isoformat(),
                "expired": row.expires_at <= self.clock.now(),
            }


@dataclass
class TickResult:
    leader: bool
    analysed: list[tuple[RolloutInfo, Analysis]] = field(default_factory=list)
    transitions: list[tuple[RolloutInfo, Transition]] = field(default_factory=list)

    @property
    def traffic_changed(self) -> bool:
        return any(tr.traffic for _, tr in self.transitions)


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.leader = Gauge(
            "lockgate_controller_leader",
            "1 while this server's rollout controller holds the lease.",
            registry=registry,
        )
        self.analyses = Counter(
            "lockgate_rollout_analyses",
            "Rollout analyses by outcome.",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self.transitions = Counter(
            "lockgate_rollout_transitions",
            "Rollout transitions applied by this server's controller.",
            ["endpoint", "action"],
            registry=registry,
        )


class Controller:
    def __init__(
        self,
        ws: Workspace,
        *,
        predlog: PredictionLog,
        feedback: FeedbackService | None = None,
        clock: Clock | None = None,
        interval: float = 1.0,
        lease_ttl: float = 15.0,
        lag: float = 1.0,
        holder: str | None = None,
        registry: CollectorRegistry | None = None,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.ws = ws
        self.predlog = predlog
        self.feedback = feedback
        self.clock: Clock = clock or ws.clock
        self.interval = interval
        self.lag = lag
        self.on_change = on_change
        self.rollouts = RolloutService(ws)
        self.lease = Lease(
            ws.db, self.clock, name=LEASE_NAME, holder=holder or default_holder(), ttl=lease_ttl
        )
        self.metrics = _Metrics(registry if registry is not None else CollectorRegistry())
        #: the server's lockgate.monitoring.service.MonitorService, evaluated each tick
        self.monitors: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def leader(self) -> bool:
        return self.lease.held

    def tick(self) -> TickResult:
        """One round: hold the lease, then analyse every active rollout whose window is due
        (its interval has passed, plus the log's flush lag)."""
        if not self.lease.acquire():
            self.metrics.leader.set(0)
            return TickResult(leader=False)
        self.metrics.leader.set(1)
        result = TickResult(leader=True)
        until = self.clock.now() - timedelta(seconds=self.lag)
        active = self.rollouts.active()
        endpoints = self.ws.endpoints.generations() if active else {}
        for info in active:
            if info.endpoint not in endpoints:
                self._end_orphan(info)
        due = [
            info
            for info in active
            if not info.state.paused
            and info.state.due_at(info.plan) <= until
            and info.endpoint in endpoints
        ]
        if due and self.predlog.stats()["running"]:
            with contextlib.suppress(StoreError):  # this server's records, readable now
                self.predlog.flush(timeout=10)
        for info in due:
            try:
                self._evaluate(info, until, result)
            except LockgateError as exc:
                log.error(
                    "rollout %s on %s: analysis failed: %s", info.id, info.endpoint, exc.message
                )
        if self.monitors is not None:
            try:  # monitors never hold up the rollouts
                self.monitors.evaluate_due(self.clock.now())
            except Exception:
                log.exception("monitor evaluation failed")
        from lockgate.automation.service import tick_controller

        tick_controller(self)  # policies: alerts and schedules -> retrains, rollbacks
        return result

    def _end_orphan(self, info: RolloutInfo) -> None:
        """A rollout whose endpoint was deleted: abort it (there is no traffic to move)."""
        try:
            self.rollouts.abort(
                info.endpoint, reason="the endpoint was deleted", actor=CONTROLLER_ACTOR
            )
        except LockgateError as exc:
            log.error("rollout %s: cannot end it: %s", info.id, exc.message)

    def _evaluate(self, info: RolloutInfo, until: datetime, result: TickResult) -> None:
        data, remember = gather(info, self.predlog, self.feedback, until)
        analysis = analyze(info.plan.analysis, data)
        self.metrics.analyses.labels(info.endpoint, analysis.outcome).inc()
        result.analysed.append((info, analysis))
        tr = self.rollouts.record_analysis(
            info.id, info.revision, analysis, baseline=remember, window_end=until
        )
        if tr is None:
            return
        result.transitions.append((info, tr))
        self.metrics.transitions.labels(info.endpoint, tr.action).inc()
        if tr.action != "hold":
            log.info("rollout %s on %s: %s (%s)", info.id, info.endpoint, tr.action, tr.reason)

    # -- the background loop ---------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        from lockgate.automation.runner import stop_training

        # the workspace's training children run in sessions of their own: stop them and
        # record their runs cancelled while the store is open (a server's shutdown)
        await asyncio.to_thread(stop_training, self.ws)
        await asyncio.to_thread(self.lease.release)
        self.metrics.leader.set(0)

    async def _run(self) -> None:
        while True:
            try:
                result = await asyncio.to_thread(self.tick)
                if result.traffic_changed and self.on_change is not None:
                    await self.on_change()  # apply the new policy here at once
            except Exception:  # a store hiccup must not kill the loop; retried next tick
                log.exception("rollout controller tick failed")
            await asyncio.sleep(self.interval)

    def status(self) -> dict[str, Any]:
        return {
            "holder": self.lease.holder,
            "leader": self.leader,
            "lease": self.lease.current(),
            "interval_seconds": self.interval,
            "lease_ttl_seconds": self.lease.ttl,
        }
