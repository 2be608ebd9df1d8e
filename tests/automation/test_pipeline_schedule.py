"""A pipeline's own ``schedule`` fires from the policy engine's tick: a run with trigger
``schedule``, once per scheduled slot, recorded as a decision and held back by the same guards
as a policy's retrain. Real store (SQLite, or PostgreSQL with LOCKGATE_TEST_DATABASE_URL), real
scikit-learn models and training; only the clock is fake, and the ticks get explicit times."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from lockgate.audit.events import record_event
from lockgate.automation.context import TrainingContext
from lockgate.automation.pipelines import PipelineSpec, PipelineStore
from lockgate.automation.runner import PipelineRunner
from lockgate.automation.service import AUTOMATION_ACTOR, AutomationService
from lockgate.client import Client, connect
from lockgate.clock import FakeClock
from lockgate.datasets import CREDIT_FEATURES, CREDIT_TARGET, credit
from lockgate.quickstart_pipeline import train
from lockgate.rollout.service import RolloutService
from lockgate.store.schema import EventRow, PipelineRow

WORSE = Path(__file__).resolve().parent / "worse_train.py"
#: the fake clock starts 90 s before the 03:00 slot of ``0 3 * * *``
START = datetime(2026, 6, 1, 2, 58, 30, tzinfo=UTC)


def at(hh: int, mm: int, ss: int = 0, day: int = 0) -> datetime:
    return datetime(2026, 6, 1 + day, hh, mm, ss, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def fake(home: Path, database_url: str, clock: FakeClock) -> Iterator[Client]:
    """A workspace on the fake clock: credit v1 (a real tiny logistic regression pipeline),
    champion and deployed on ``credit``, with a lenient gate policy."""
    c = connect(home, database_url=database_url, clock=clock)
    try:
        data = credit(1500, seed=1)
        model, _ = train(data, TrainingContext("credit", CREDIT_TARGET, tuple(CREDIT_FEATURES)))
        v = c.register_model("credit", model, reference=data, target=CREDIT_TARGET)
        c.set_alias("credit", "champion", v.version)
        c.workspace.endpoints.deploy("credit", alias="champion")
        c.workspace.gates.set_policy(
            "credit",
            {
                "baseline": "champion",
                "gates": [
                    {"type": "schema"},
                    {"type": "quality", "metrics": {"roc_auc": {"max_regression": 0.2}}},
                ],
            },
        )
        yield c
    finally:
        c.close()


def _spec(entry: str = f"{WORSE}:crash", **kw: object) -> PipelineSpec:
    """A pipeline of ``credit``; by default one whose runs fail at once (no labelled traffic
    in the window), which is all a test of when runs start needs."""
    doc: dict[str, object] = {
        "model": "credit",
        "entry": entry,
        "target": CREDIT_TARGET,
        "strategy": "canary",
        "steps": [50, 100],
        "schedule": "0 3 * * *",
    }
    doc.update(kw)
    return PipelineSpec.from_dict(doc)


def _tick(svc: AutomationService, clock: FakeClock, when: datetime) -> list[tuple[Any, ...]]:
    """Move the clock to ``when``, tick there, wait for the runs it started; the decisions
    as ``(trigger, taken, schedule_of)``."""
    clock.advance((when - clock.now()).total_seconds())
    made = svc.tick(when)
    svc.join(120)
    return [(d.trigger, d.taken, d.detail.get("schedule_of")) for d in made]


def _state(client: Client) -> dict[str, Any]:
    with client.workspace.db.read() as s:
        state = s.execute(select(PipelineRow.state)).scalar_one()
    return dict(state)


def _events(client: Client, kind: str) -> list[dict[str, Any]]:
    with client.workspace.db.read() as s:
        rows = s.execute(
            select(EventRow.payload).where(EventRow.kind == kind).order_by(EventRow.id)
        )
        return [dict(p) for p in rows.scalars()]


def test_the_schedule_fires_once_per_slot_and_its_state_is_durable(
    fake: Client, clock: FakeClock
) -> None:
    ws = fake.workspace
    PipelineStore(ws).set(_spec())
    svc = AutomationService(ws)
    assert _tick(svc, clock, START) == []  # first seen: counts from now, no back-fire
    assert _state(fake) == {"schedule_last": START.isoformat()}
    assert _tick(svc, clock, at(2, 59, 59)) == []
    assert _tick(svc, clock, at(3, 0, 2)) == [("schedule", True, "pipeline")]
    for when in (at(3, 0, 3), at(3, 0, 59), at(3, 1), at(12, 0)):
        assert _tick(svc, clock, when) == [], when
    # a new leader (another server, or this one restarted) does not repeat the slot
    assert _tick(AutomationService(ws), clock, at(12, 0, 1)) == []

    runs = svc.runner.runs("credit")
    assert len(runs) == 1
    run = runs[0]
    assert run["trigger"] == {
        "type": "schedule", "cron": "0 3 * * *", "schedule_of": "pipeline", "model": "credit",
    }  # fmt: skip
    assert run["started_at"].startswith("2026-06-01T03:00:02")
    assert run["status"] == "failed" and "0 labelled rows" in run["error"]
    decisions = svc.decisions("credit")
    assert len(decisions) == 1
    d = decisions[0]
    assert (d["trigger"], d["action"], d["taken"]) == ("schedule", "retrain", True)
    assert d["cron"] == "0 3 * * *" and d["schedule_of"] == "pipeline"
    started = _events(fake, "pipeline.started")
    assert [e["trigger"]["type"] for e in started] == ["schedule"]
    with ws.db.read() as s:
        actors = s.execute(
            select(EventRow.actor).where(EventRow.kind == "automation.decision")
        ).scalars()
        assert list(actors) == [AUTOMATION_ACTOR]

    # the next day's slot fires again (no policy: no cool-down)
    assert _tick(svc, clock, at(3, 0, 1, day=1)) == [("schedule", True, "pipeline")]
    # three days down: the missed slots fire once when the engine is back, not three times
    assert _tick(svc, clock, at(9, 30, day=4)) == [("schedule", True, "pipeline")]
    assert _tick(svc, clock, at(9, 31, day=4)) == []
    assert [r["trigger"]["type"] for r in svc.runner.runs("credit")] == ["schedule"] * 3


def test_a_due_schedule_runs_the_pipeline_and_records_the_trigger_in_the_lineage(
    fake: Client, clock: FakeClock
) -> None:
    """The whole way with real training: labelled traffic in the log, the 03:00 slot, a
    candidate with the schedule in its lineage, the gates, the rollout; the next slot is held
    back while that rollout is active."""
    from lockgate.feedback import FeedbackService
    from lockgate.store.predlog import LogBatch, PredictionLog

    ws = fake.workspace
    plog = PredictionLog(ws.settings.predictions_dir, compact_interval=None)
    plog.start()
    try:
        traffic = credit(600, seed=5)
        batch = LogBatch(
            request_id=uuid.uuid4().hex, endpoint="credit", model="credit", version=1,
            role="primary", ts=clock.now().timestamp() - 60.0,
            inputs={c: traffic[c].to_numpy() for c in CREDIT_FEATURES},
            outputs=traffic[CREDIT_TARGET].to_numpy(), latency_ms=2.0, status=200,
        )  # fmt: skip
        plog.submit_nowait(batch)
        plog.flush()
        feedback = FeedbackService(ws, plog)
        labels = traffic[CREDIT_TARGET].tolist()
        items = [{"id": i, "value": int(y)} for i, y in zip(batch.row_ids(), labels, strict=True)]
        assert feedback.send("credit", items).stored == 600
        PipelineStore(ws).set(_spec("lockgate.quickstart_pipeline:train", min_rows=200))
        svc = AutomationService(ws, predlog=plog, feedback=feedback)
        assert _tick(svc, clock, START) == []
        assert _tick(svc, clock, at(3, 0, 5)) == [("schedule", True, "pipeline")]
    finally:
        plog.close()

    run = svc.runner.runs("credit")[0]
    assert run["status"] == "rolling_out", run["error"]
    v2 = fake.get_version(f"credit/{run['candidate_version']}")
    assert v2.version == 2 and v2.lineage["parent_version"] == 1
    assert v2.lineage["trigger"]["type"] == "schedule"
    assert v2.lineage["trigger"]["cron"] == "0 3 * * *"
    assert v2.lineage["trigger"]["schedule_of"] == "pipeline"
    assert v2.lineage["data_window"]["rows"] == 600
    info = RolloutService(ws).status("credit")
    assert info.active and info.candidate == 2

    made = svc.tick(at(3, 0, 10, day=1))  # the next slot, while the rollout is still active
    assert [(d.trigger, d.taken) for d in made] == [("schedule", False)]
    assert f"rollout {info.id} is in progress" in made[0].reason
    assert len(svc.runner.runs("credit")) == 1


def _fire(client: Client, kind: str) -> None:
    ws = client.workspace
    with ws.db.write() as s:
        record_event(
            ws.db, s, kind="monitor.firing", subject="credit", actor="lockgate-monitor",
            at=ws.clock.now(), payload={"monitor": f"credit-{kind}", "alert": 1, "kind": kind},
        )  # fmt: skip


def test_the_guards_of_a_policy_retrain_hold_back_a_pipeline_schedule(
    fake: Client, clock: FakeClock
) -> None:
    ws = fake.workspace
    PipelineStore(ws).set(_spec(schedule="@every 1h"))
    svc = AutomationService(ws)
    svc.set_policy({"endpoint": "credit", "cooldown": 7200, "max_concurrent": 1})
    assert _tick(svc, clock, START) == []

    # cool-down: a drift retrain at 03:00 holds back the 04:00 schedule, not the 06:00 one
    _fire(fake, "drift")
    assert _tick(svc, clock, START + timedelta(seconds=60)) == [("drift", True, None)]
    made = svc.tick(START + timedelta(hours=1))
    assert [(d.trigger, d.taken) for d in made] == [("schedule", False)]
    assert "cool-down" in made[0].reason and made[0].detail["schedule_of"] == "pipeline"
    assert _tick(svc, clock, START + timedelta(hours=2, seconds=61)) == [
        ("schedule", True, "pipeline")
    ]

    # a retrain of the endpoint running (one `lockgate pipeline run` started, say)
    runner = PipelineRunner(ws)
    svc.set_policy({"endpoint": "credit", "cooldown": 0, "max_concurrent": 4})
    clock.advance(3600)
    run_id = runner.begin(_spec(), {"type": "manual"}, 1, 86_400)
    made = svc.tick(clock.now() + timedelta(hours=1))
    assert [(d.trigger, d.taken) for d in made] == [("schedule", False)]
    assert "already running" in made[0].reason
    _finish(fake, run_id, "credit")

    # the workspace's concurrency limit, counted over every model's retrains
    other = runner.begin(_spec(model="other", schedule=None), {"type": "manual"}, None, 86_400)
    svc.set_policy({"endpoint": "credit", "cooldown": 0, "max_concurrent": 1})
    made = svc.tick(clock.now() + timedelta(hours=3))
    assert [(d.trigger, d.taken) for d in made] == [("schedule", False)]
    assert "limit of 1 concurrent retrain(s) reached" in made[0].reason
    _finish(fake, other, "other")

    # a disabled policy pauses the pipeline's schedule too, saying so
    svc.set_policy({"endpoint": "credit", "cooldown": 0, "enabled": False})
    made = svc.tick(clock.now() + timedelta(hours=5))
    assert [(d.trigger, d.taken) for d in made] == [("schedule", False)]
    assert "disabled" in made[0].reason

    # and with the policy gone, the schedule runs on its own again
    svc.remove_policy("credit")
    assert _tick(svc, clock, clock.now() + timedelta(hours=7)) == [("schedule", True, "pipeline")]
    triggers = [r["trigger"]["type"] for r in svc.runner.runs()]
    assert triggers == ["schedule", "manual", "manual", "schedule", "drift"]


def _finish(client: Client, run_id: int, model: str) -> None:
    """End a run begun by hand, as its process would have."""
    from lockgate.automation.runner import RunOutcome

    PipelineRunner(client.workspace)._finish(
        RunOutcome(run_id, model, "failed", {"type": "manual"}, error="ended by the test")
    )


def test_a_policy_schedule_and_a_pipeline_schedule_on_one_endpoint_make_one_retrain(
    fake: Client, clock: FakeClock
) -> None:
    ws = fake.workspace
    store = PipelineStore(ws)
    store.set(_spec())
    svc = AutomationService(ws)
    # no cool-down: one tick still starts one retrain of the endpoint
    svc.set_policy({"endpoint": "credit", "schedule": "0 3 * * *", "cooldown": 0})
    assert _tick(svc, clock, START) == []
    clock.advance((at(3, 0, 5) - clock.now()).total_seconds())
    made = svc.tick(at(3, 0, 5))
    svc.join(120)
    assert [(d.trigger, d.taken, d.detail["schedule_of"]) for d in made] == [
        ("schedule", True, "policy"),
        ("schedule", False, "pipeline"),
    ]
    assert "already running" in made[1].reason  # even when that run has failed already
    runs = svc.runner.runs("credit")
    assert [(r["trigger"]["type"], r["trigger"]["schedule_of"]) for r in runs] == [
        ("schedule", "policy")
    ]
    assert [d["schedule_of"] for d in svc.decisions("credit")] == ["pipeline", "policy"]

    # with the policy's cool-down, the pipeline's 03:10 slot yields to the 03:00 retrain
    svc.set_policy({"endpoint": "credit", "schedule": "0 3 * * *", "cooldown": 3600})
    store.set(_spec(schedule="10 3 * * *"))
    assert _tick(svc, clock, at(3, 5)) == []
    made = svc.tick(at(3, 10, 5))
    assert [(d.trigger, d.taken, d.detail["schedule_of"]) for d in made] == [
        ("schedule", False, "pipeline")
    ]
    assert "cool-down: last retrain started 2026-06-01T03:00:05" in made[0].reason
    assert len(svc.runner.runs("credit")) == 1


def test_changing_or_removing_the_schedule_starts_it_counting_again(
    fake: Client, clock: FakeClock
) -> None:
    ws = fake.workspace
    store = PipelineStore(ws)
    svc = AutomationService(ws)
    store.set(_spec(schedule="0 3 * * *"))
    assert _tick(svc, clock, START) == []
    # changed at 05:00 to 04:00 daily: today's 04:00 passed before the change, so no fire
    clock.advance((at(5, 0) - clock.now()).total_seconds())
    store.set(_spec(schedule="0 4 * * *"))
    assert "schedule_last" not in _state(fake)
    assert _tick(svc, clock, at(5, 0, 1)) == []
    assert _tick(svc, clock, at(4, 0, 1, day=1)) == [("schedule", True, "pipeline")]
    # other settings changed: the schedule keeps its place
    store.set(_spec(schedule="0 4 * * *", timeout=300))
    assert _state(fake) == {"schedule_last": at(4, 0, 1, day=1).isoformat()}

    # removed: nothing fires; re-added after the slot passed: it counts from then
    store.set(_spec(schedule=None))
    assert _tick(svc, clock, at(4, 0, 1, day=2)) == []
    clock.advance((at(5, 0, day=3) - clock.now()).total_seconds())
    store.set(_spec(schedule="0 4 * * *"))
    assert _tick(svc, clock, at(5, 0, 1, day=3)) == []
    assert _tick(svc, clock, at(4, 0, 1, day=4)) == [("schedule", True, "pipeline")]

    # the pipeline deleted: its schedule and state go with it
    store.remove("credit")
    assert _tick(svc, clock, at(4, 0, 1, day=5)) == []
    assert len(svc.runner.runs("credit")) == 2
    assert [d["taken"] for d in svc.decisions("credit")] == [True, True]


def test_a_changed_policy_schedule_starts_counting_again(fake: Client, clock: FakeClock) -> None:
    ws = fake.workspace
    PipelineStore(ws).set(_spec(schedule=None))
    svc = AutomationService(ws)
    svc.set_policy({"endpoint": "credit", "schedule": "0 3 * * *", "cooldown": 0})
    assert _tick(svc, clock, START) == []
    clock.advance((at(5, 0) - clock.now()).total_seconds())
    svc.set_policy({"endpoint": "credit", "schedule": "0 4 * * *", "cooldown": 0})
    assert _tick(svc, clock, at(5, 0, 1)) == []  # 04:00 passed before the change
    assert _tick(svc, clock, at(4, 0, 1, day=1)) == [("schedule", True, "policy")]


def test_migration_0007_gives_existing_pipelines_an_empty_state(
    empty_database_url: str,
) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import MetaData, Table

    from lockgate.store.db import Database
    from lockgate.store.migrate import alembic_config, ensure_schema, stored_revisions, upgrade
    from lockgate.store.schema import Base

    db = Database(empty_database_url)
    try:
        upgrade(db, "0004")
        with db.engine.begin() as conn:  # a pipeline stored before the state column
            table = Table("automation_pipelines", MetaData(), autoload_with=conn)
            assert "state" not in table.c
            when = datetime(2026, 1, 1, 12, 0)
            conn.execute(
                table.insert().values(
                    model="credit", spec=_spec().to_dict(), created_at=when, created_by="me",
                    updated_at=when, updated_by="me",
                )
            )  # fmt: skip
        ensure_schema(db)
        assert stored_revisions(db) == ["0007"]
        with db.engine.connect() as conn:
            assert conn.execute(select(PipelineRow.state)).scalar_one() == {}
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
        assert [d for d in diff if "automation_" in repr(d)] == []
        cfg = alembic_config(db)
        with db.engine.begin() as conn:  # and back down
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        with db.engine.connect() as conn:
            table = Table("automation_pipelines", MetaData(), autoload_with=conn)
            assert "state" not in table.c
            assert conn.execute(text("SELECT count(*) FROM automation_pipelines")).scalar() == 1
    finally:
        db.dispose()
