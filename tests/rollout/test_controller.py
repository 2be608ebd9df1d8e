"""Persisted rollouts driven by the controller on a fake clock, over a real metadata store
(SQLite or PostgreSQL) and a real prediction log."""

from __future__ import annotations

import numpy as np
import pytest
from tests.rollout.conftest import emit

from lockgate.client import Client
from lockgate.clock import FakeClock
from lockgate.errors import ConflictError, InvalidInputError, NotFoundError
from lockgate.feedback import FeedbackService
from lockgate.rollout.controller import Controller
from lockgate.rollout.service import RolloutService
from lockgate.store.predlog import PredictionLog

FAST = {"min_requests": 20, "min_labels": 20, "min_samples": 40}


def controller(fc: Client, plog: PredictionLog, clock: FakeClock, holder: str = "a") -> Controller:
    return Controller(
        fc.workspace,
        predlog=plog,
        feedback=FeedbackService(fc.workspace, plog),
        clock=clock,
        lag=1.0,
        holder=holder,
        lease_ttl=30,
    )


def serve_window(
    plog: PredictionLog,
    clock: FakeClock,
    *,
    candidate_err: float = 0.0,
    cand_ms: float = 2.0,
    role: str = "canary",
) -> None:
    clock.advance(30)
    emit(plog, clock, 1, "primary" if role != "arm" else "arm", 60, seed=1)
    emit(plog, clock, 2, role, 60, error_rate=candidate_err, latency_ms=cand_ms, seed=2)
    clock.advance(32)  # past the interval and the lag


def test_healthy_canary_walks_the_steps_and_becomes_champion(
    fc: Client, plog: PredictionLog, clock: FakeClock
) -> None:
    svc = RolloutService(fc.workspace)
    info = svc.start("iris", 2, steps=[5, 25, 50, 100], interval="60s", analysis=FAST)
    assert info.policy.canary_weight == 5 and fc.workspace.endpoints.get("iris").generation == 2
    ctl = controller(fc, plog, clock)
    weights = [5.0]
    for _ in range(4):
        serve_window(plog, clock)
        res = ctl.tick()
        assert res.leader and len(res.transitions) == 1, res
        info = svc.status("iris")
        weights.append(info.to_dict()["weights"]["candidate"])
    assert weights == [5, 25, 50, 100, 100]
    assert info.state.phase == "promoted" and not info.active
    assert fc.get_version("iris@champion").version == 2
    ep = fc.workspace.endpoints.get("iris")
    assert ep.policy.is_simple and ep.policy.primary == 2
    kinds = [e.kind for e in fc.events(subject="iris") if e.kind.startswith("rollout.")]
    assert kinds == ["rollout.started", *["rollout.advanced"] * 3, "rollout.promoted"]
    assert all(e.actor == "lockgate-controller" for e in fc.events(kind="rollout.advanced"))
    assert fc.events(kind="alias.set")[-1].payload["to_version"] == 2
    assert fc.verify_events().ok
    # the analysis of every step is kept in the history
    analysed = [h for h in info.history if h.analysis]
    assert len(analysed) == 4 and all(h.analysis["outcome"] == "successful" for h in analysed)


def test_failing_candidate_is_rolled_back_within_two_intervals(
    fc: Client, plog: PredictionLog, clock: FakeClock
) -> None:
    svc = RolloutService(fc.workspace)
    svc.start("iris", 2, steps=[20, 100], interval=60, max_failures=2, analysis=FAST)
    ctl = controller(fc, plog, clock)
    serve_window(plog, clock, candidate_err=0.2)
    first = ctl.tick()
    assert first.transitions[0][1].action == "hold"
    assert first.analysed[0][1].check("error_rate").verdict == "fail"
    serve_window(plog, clock, candidate_err=0.2)
    second = ctl.tick()
    assert second.transitions[0][1].action == "rollback"
    info = svc.status("iris")
    assert info.state.phase == "rolled_back" and info.state.failures == 2
    assert fc.workspace.endpoints.get("iris").policy.weights() == {1: 100.0}
    assert [e.kind for e in fc.events(subject="iris")][-2:] == [
        "rollout.analysis_failed",
        "rollout.rolled_back",
    ]
    with pytest.raises(ConflictError, match="rolled back"):
        svc.promote("iris")
    assert "champion" not in fc.get_version("iris/2").aliases


def test_slow_candidate_is_rolled_back(fc: Client, plog: PredictionLog, clock: FakeClock) -> None:
    svc = RolloutService(fc.workspace)
    svc.start("iris", 2, steps=[50, 100], max_failures=1, analysis=FAST)
    ctl = controller(fc, plog, clock)
    serve_window(plog, clock, cand_ms=20.0)
    res = ctl.tick()
    assert res.transitions[0][1].action == "rollback"
    assert "latency" in res.transitions[0][1].reason


def test_inconclusive_holds_and_grows_the_window(
    fc: Client, plog: PredictionLog, clock: FakeClock
) -> None:
    svc = RolloutService(fc.workspace)
    svc.start("iris", 2, steps=[5, 100], analysis=FAST)
    ctl = controller(fc, plog, clock)
    clock.advance(30)
    emit(plog, clock, 1, "primary", 100)
    emit(plog, clock, 2, "canary", 12)
    clock.advance(32)
    res = ctl.tick()
    assert res.analysed[0][1].outcome == "inconclusive"
    assert res.transitions[0][1].action == "hold"
    emit(plog, clock, 2, "canary", 12)  # the two halves add up to enough rows
    clock.advance(5)
    res = ctl.tick()
    assert res.transitions[0][1].action == "advance"


def test_bad_input_changes_nothing(fc: Client, plog: PredictionLog, clock: FakeClock) -> None:
    svc = RolloutService(fc.workspace)
    events_before = len(fc.events())
    gen = fc.workspace.endpoints.get("iris").generation
    with pytest.raises(NotFoundError):
        svc.start("iris", 9)
    with pytest.raises(NotFoundError):
        svc.start("nope", 2)
    with pytest.raises(InvalidInputError) as e:
        svc.start("iris", 2, steps=[50, 20])
    assert e.value.field == "steps"
    with pytest.raises(InvalidInputError) as e:
        svc.start("iris", 2, strategy="ab", ab_weights=[70, 40])
    assert e.value.field == "ab_weights"
    with pytest.raises(InvalidInputError):
        svc.start("iris", 1)  # the primary itself
    with pytest.raises(InvalidInputError):
        svc.start("iris", 2, analysis={"max_error_rate": 3})
    with pytest.raises(NotFoundError):
        svc.promote("iris")  # no rollout at all
    assert len(fc.events()) == events_before
    assert fc.workspace.endpoints.get("iris").generation == gen
    svc.start("iris", 2)
    with pytest.raises(ConflictError, match="already has an active rollout"):
        svc.start("iris", 3)
    with pytest.raises(ConflictError, match="rollout"):
        fc.workspace.endpoints.deploy("iris", version=3)
    assert svc.status("iris").candidate == 2


def test_pause_resume_abort_and_manual_promote(
    fc: Client, plog: PredictionLog, clock: FakeClock
) -> None:
    svc = RolloutService(fc.workspace)
    ctl = controller(fc, plog, clock)
    svc.start("iris", 2, steps=[10, 50], analysis=FAST)
    svc.pause("iris", reason="weekend")
    with pytest.raises(ConflictError):
        svc.pause("iris")
    serve_window(plog, clock)
    assert ctl.tick().analysed == []  # a paused rollout is not analysed
    svc.resume("iris")
    info = svc.abort("iris", reason="changed my mind")
    assert info.state.phase == "aborted"
    assert fc.workspace.endpoints.get("iris").policy.weights() == {1: 100.0}
    last = [e for e in fc.events(subject="iris") if e.kind.startswith("rollout.")][-1]
    assert last.kind == "rollout.aborted" and "changed my mind" in last.payload["reason"]
    svc.start("iris", 3, strategy="shadow")
    info = svc.promote("iris", reason="looks fine")
    assert info.state.phase == "promoted"
    assert fc.get_version("iris@champion").version == 3
    assert fc.workspace.endpoints.get("iris").policy.primary == 3
    assert [r.state.phase for r in svc.list_rollouts(endpoint="iris")] == ["promoted", "aborted"]


def test_shadow_then_canary_compares_outputs(
    fc: Client, plog: PredictionLog, clock: FakeClock
) -> None:
    svc = RolloutService(fc.workspace)
    svc.start(
        "iris",
        2,
        strategy="shadow-then-canary",
        steps=[50, 100],
        analysis={**FAST, "min_agreement": 0.9},
    )
    assert svc.status("iris").policy.shadows[0].version == 2
    ctl = controller(fc, plog, clock)
    clock.advance(30)
    labels = np.arange(60) % 2
    ids = emit(plog, clock, 1, "primary", 60, outputs=labels)
    flipped = labels.copy()
    flipped[:15] = 1 - flipped[:15]  # 75% agreement
    emit(plog, clock, 2, "shadow", 60, outputs=flipped, ids=ids)
    clock.advance(32)
    res = ctl.tick()
    a = res.analysed[0][1]
    assert a.figures["shadow"]["compared"] == 60
    assert a.figures["shadow"]["agreement"] == pytest.approx(0.75)
    assert a.check("shadow").verdict == "fail"


def test_lease_has_exactly_one_holder(fc: Client, plog: PredictionLog, clock: FakeClock) -> None:
    a = controller(fc, plog, clock, holder="a")
    b = controller(fc, plog, clock, holder="b")
    assert a.tick().leader and not b.tick().leader
    clock.advance(20)
    assert a.tick().leader and not b.tick().leader  # renewed at half its time to live
    clock.advance(31)  # a stopped renewing: its lease expired
    assert b.tick().leader and not a.tick().leader
    assert b.status()["lease"]["holder"] == "b"
    b.lease.release()
    assert a.tick().leader
    kinds = [e.payload["holder"] for e in fc.events(kind="controller.leader")]
    assert kinds == ["a", "b", "a"]


def test_a_deleted_endpoint_ends_its_rollout(
    fc: Client, plog: PredictionLog, clock: FakeClock
) -> None:
    svc = RolloutService(fc.workspace)
    svc.start("iris", 2, analysis=FAST)
    fc.workspace.endpoints.delete("iris", reason="gone")
    controller(fc, plog, clock).tick()
    info = svc.status("iris")
    assert info.state.phase == "aborted"
    assert info.history[-1].actor == "lockgate-controller"
    assert "endpoint was deleted" in info.history[-1].reason
