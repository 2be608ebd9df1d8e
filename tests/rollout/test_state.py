"""The rollout state machine: transitions are values; no sequence of analyses and commands
reaches an illegal state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.errors import ConflictError, InvalidInputError
from lockgate.rollout.policy import TrafficPolicy
from lockgate.rollout.router import Route
from lockgate.rollout.state import (
    ACTIVE,
    TERMINAL,
    RolloutPlan,
    RolloutState,
    after_analysis,
    candidate_weight,
    command,
    parse_duration,
    policy_for,
    start,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_healthy_canary_walks_every_step_then_promotes() -> None:
    plan = RolloutPlan("canary", steps=(5, 25, 50, 100), interval="1m")
    tr = start(plan, T0)
    seen = []
    now = T0
    while tr.after.active:
        seen.append(candidate_weight(plan, tr.after))
        now += timedelta(minutes=1)
        tr = after_analysis(plan, tr.after, "successful", now)
    assert seen == [5, 25, 50, 100]
    assert tr.action == "promote" and tr.after.phase == "promoted"
    assert policy_for(plan, tr.after, 1, 2) == TrafficPolicy(primary=2)


def test_failures_roll_back_at_the_threshold_and_inconclusive_holds() -> None:
    plan = RolloutPlan("canary", max_failures=2)
    s = start(plan, T0).after
    t1 = T0 + timedelta(minutes=1)
    held = after_analysis(plan, s, "inconclusive", t1, "too few rows")
    assert held.action == "hold" and not held.traffic
    assert held.after.window_start == T0  # the window keeps growing
    first = after_analysis(plan, held.after, "failed", t1, "error rate 20%")
    assert first.action == "hold" and first.after.failures == 1
    assert first.after.window_start == t1
    second = after_analysis(plan, first.after, "failed", t1, "error rate 20%")
    assert second.action == "rollback" and second.traffic
    assert "error rate 20%" in second.reason
    assert policy_for(plan, second.after, 1, 2) == TrafficPolicy(primary=1)


def test_windows_are_contiguous_and_a_new_step_starts_when_its_policy_does() -> None:
    plan = RolloutPlan("canary", steps=(10, 50, 100), max_failures=3)
    s = start(plan, T0).after
    now = T0 + timedelta(seconds=61)
    end = now - timedelta(seconds=1)  # the log's lag: the window read ended here
    failed = after_analysis(plan, s, "failed", now, "x", window_end=end).after
    assert failed.window_start == end  # nothing between the two windows is skipped
    assert failed.due_at(plan) == end + timedelta(seconds=60)
    advanced = after_analysis(plan, failed, "successful", now, window_end=end).after
    assert advanced.step == 1 and advanced.step_started_at == advanced.window_start == now


def test_shadow_then_canary_and_ab_policies() -> None:
    plan = RolloutPlan("shadow-then-canary", steps=(10, 100), shadow_percent=50)
    s = start(plan, T0).after
    p = policy_for(plan, s, 1, 2, salt="x")
    assert p.primary == 1 and p.shadows[0].version == 2 and p.shadows[0].sample_percent == 50
    s = after_analysis(plan, s, "successful", T0).after
    assert (s.phase, s.step) == ("canary", 0)
    assert policy_for(plan, s, 1, 2).canary_weight == 10
    ab = RolloutPlan("ab", ab_weights=(70, 30), key_column="user")
    s = start(ab, T0).after
    p = policy_for(ab, s, 1, 2, salt="r1")
    assert p.weights() == {1: 70.0, 2: 30.0} and p.key_column == "user"
    assert Route.from_policy(p).salt == b"r1"


def test_commands_and_terminal_states() -> None:
    plan = RolloutPlan("canary")
    s = start(plan, T0).after
    paused = command(plan, s, "pause", T0).after
    with pytest.raises(ConflictError):
        command(plan, paused, "pause", T0)
    held = after_analysis(plan, paused, "failed", T0)
    assert held.action == "hold" and held.after.failures == 0  # a paused rollout is not judged
    resumed = command(plan, paused, "resume", T0 + timedelta(seconds=5))
    assert not resumed.after.paused and resumed.after.window_start == T0 + timedelta(seconds=5)
    aborted = command(plan, resumed.after, "abort", T0).after
    assert aborted.phase == "aborted"
    for cmd in ("pause", "resume", "promote", "abort"):
        with pytest.raises(ConflictError):
            command(plan, aborted, cmd, T0)  # type: ignore[arg-type]
    with pytest.raises(ConflictError, match="rolled back"):
        rolled = RolloutState(phase="rolled_back", started_at=T0)
        command(plan, rolled, "promote", T0)
    with pytest.raises(ConflictError):
        after_analysis(plan, aborted, "successful", T0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"steps": (50, 25)}, "steps"),
        ({"steps": (0, 50)}, "steps"),
        ({"steps": (5, 150)}, "steps"),
        ({"steps": ()}, "steps"),
        ({"strategy": "blue-green"}, "strategy"),
        ({"max_failures": 0}, "max_failures"),
        ({"ab_weights": (60, 60)}, "ab_weights"),
        ({"ab_weights": (100, 0)}, "ab_weights"),
        ({"interval": "soon"}, "interval"),
        ({"interval": 0}, "interval"),
        ({"shadow_percent": 0}, "shadow_percent"),
    ],
)
def test_bad_plans_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        RolloutPlan(**kwargs)  # type: ignore[arg-type]
    assert e.value.field == field


def test_durations_and_round_trips() -> None:
    assert parse_duration("60s") == 60 and parse_duration("1.5m") == 90
    assert (
        parse_duration("500ms") == 0.5 and parse_duration(2) == 2 and parse_duration("1h") == 3600
    )
    plan = RolloutPlan("ab", steps=(10, 50), interval="2m", key_column="u")
    assert RolloutPlan.from_dict(plan.to_dict()) == plan
    st_ = start(plan, T0).after
    assert RolloutState.from_dict(st_.to_dict()) == st_


events = st.lists(
    st.one_of(
        st.sampled_from(["successful", "failed", "inconclusive"]).map(lambda o: ("analysis", o)),
        st.sampled_from(["pause", "resume", "promote", "abort"]).map(lambda c: ("command", c)),
    ),
    max_size=40,
)
plans = st.builds(
    RolloutPlan,
    strategy=st.sampled_from(["shadow", "canary", "ab", "shadow-then-canary"]),
    steps=st.lists(st.integers(1, 100), min_size=1, max_size=6, unique=True).map(
        lambda xs: tuple(sorted(xs))
    ),
    max_failures=st.integers(1, 4),
)


@given(plans, events)
def test_no_sequence_reaches_an_illegal_state(
    plan: RolloutPlan, seq: list[tuple[str, str]]
) -> None:
    tr = start(plan, T0)
    state = tr.after
    now = T0
    last_weight = candidate_weight(plan, state)
    for kind, what in seq:
        now += timedelta(seconds=30)
        before = state
        try:
            if kind == "analysis":
                tr = after_analysis(plan, state, what, now)  # type: ignore[arg-type]
            else:
                tr = command(plan, state, what, now)  # type: ignore[arg-type]
        except ConflictError:
            # refused: only for terminal phases or pause/resume in the wrong state
            assert before.phase in TERMINAL or what in ("pause", "resume")
            continue
        state = tr.after
        assert tr.before == before
        assert state.phase in ACTIVE | TERMINAL
        if state.phase in TERMINAL:
            assert not state.paused
        else:
            assert 0 <= state.step < len(plan.steps)
            assert 0 <= state.failures < plan.max_failures
            w = candidate_weight(plan, state)
            if state.phase == before.phase == "canary":
                assert w >= last_weight  # a canary only grows until it ends
            last_weight = w
        policy = policy_for(plan, state, 1, 2)
        assert abs(sum(policy.weights().values()) - 100) < 1e-9
        assert set(policy.versions) <= {1, 2}
        if state.phase == "rolled_back":
            assert policy == TrafficPolicy(primary=1)
