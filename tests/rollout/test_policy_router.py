"""Traffic policies and routes: validation, weights that always add up, the observed split
within statistical tolerance, and sticky assignment."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.errors import InvalidInputError
from lockgate.rollout.policy import Arm, Shadow, TrafficPolicy
from lockgate.rollout.router import BUCKETS, Route, bucket_of, to_buckets


def test_policy_round_trips_through_dict() -> None:
    p = TrafficPolicy(
        primary=1,
        arms=(Arm(1, 30), Arm(2, 70)),
        shadows=(Shadow(3, 10),),
        key_column="user",
        salt="s",
    )
    assert TrafficPolicy.from_dict(p.to_dict()) == p
    assert p.versions == [1, 2, 3]
    assert p.role_of(1) == "arm" and p.role_of(3) == "shadow"
    assert p.weights() == {1: 30.0, 2: 70.0}
    old = {"primary": 4, "canary": None, "canary_weight": 0, "shadows": []}  # stored by 0001
    assert TrafficPolicy.from_dict(old) == TrafficPolicy(primary=4)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"primary": 1, "canary": 2, "canary_weight": 150}, "canary_weight"),
        ({"primary": 1, "canary": 2, "canary_weight": -1}, "canary_weight"),
        ({"primary": 1, "canary": 2, "canary_weight": math.nan}, "canary_weight"),
        ({"primary": 1, "canary_weight": 5}, "canary_weight"),
        ({"primary": 1, "canary": 1, "canary_weight": 5}, "canary"),
        ({"primary": 1, "arms": (Arm(1, 60), Arm(2, 60))}, "arms"),
        ({"primary": 1, "arms": (Arm(1, 50), Arm(2, 49))}, "arms"),
        ({"primary": 1, "arms": (Arm(1, 120), Arm(2, -20))}, "arms[0].weight"),
        ({"primary": 3, "arms": (Arm(1, 50), Arm(2, 50))}, "primary"),
        ({"primary": 1, "arms": (Arm(1, 100),)}, "arms"),
        ({"primary": 1, "arms": (Arm(1, 50), Arm(1, 50))}, "arms[1].version"),
        ({"primary": 1, "canary": 2, "arms": (Arm(1, 50), Arm(2, 50))}, "arms"),
        ({"primary": 1, "shadows": (Shadow(1, 10),)}, "shadows[0].version"),
        ({"primary": 1, "shadows": (Shadow(2, 101),)}, "shadows[0].sample_percent"),
        ({"primary": 0}, "primary"),
    ],
)
def test_bad_policies_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        TrafficPolicy(**kwargs)  # type: ignore[arg-type]
    assert e.value.field == field


def test_from_dict_rejects_malformed_lists() -> None:
    with pytest.raises(InvalidInputError) as e:
        TrafficPolicy.from_dict({"primary": 1, "arms": [{"version": 2}]})
    assert e.value.field == "arms[0]"
    with pytest.raises(InvalidInputError):
        TrafficPolicy.from_dict({"primary": 1, "shadows": "x"})


weights_st = st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=8).filter(
    lambda ws: sum(ws) > 0
)


@given(weights_st)
def test_bucket_bounds_always_cover_everything(raw: list[float]) -> None:
    total = sum(raw)
    weights = [w * 100 / total for w in raw]
    bounds = to_buckets(weights)
    assert bounds[-1] == BUCKETS
    assert all(a <= b for a, b in zip((0, *bounds), bounds, strict=False))
    lo = 0
    for w, hi in zip(weights, bounds, strict=True):  # each share within one bucket of its weight
        assert abs((hi - lo) - w * BUCKETS / 100) <= 1.0 + 1e-6
        lo = hi


@given(weights_st, st.integers(0, 10))
def test_arm_policies_route_shares_that_sum_to_100(raw: list[float], primary_idx: int) -> None:
    total = sum(raw)
    weights = [w * 100 / total for w in raw]
    weights[-1] = 100 - sum(weights[:-1])  # exact, up to float error
    if len(weights) < 2 or weights[-1] < 0:
        return
    arms = tuple(Arm(i + 1, w) for i, w in enumerate(weights))
    policy = TrafficPolicy(primary=arms[primary_idx % len(arms)].version, arms=arms)
    shares = Route.from_policy(policy).shares()
    assert math.isclose(sum(shares.values()), 100.0)
    for a in arms:
        assert abs(shares.get(a.version, 0.0) - a.weight) <= 100 / BUCKETS + 1e-9


@given(st.floats(0, 100, allow_nan=False))
def test_canary_route_shares(weight: float) -> None:
    route = Route.from_policy(TrafficPolicy(primary=1, canary=2, canary_weight=weight))
    shares = route.shares()
    assert math.isclose(sum(shares.values()), 100.0)
    assert abs(shares.get(2, 0.0) - weight) <= 0.01 + 1e-9
    assert route.single == (shares.get(2, 0.0) in (0.0, 100.0))


@settings(max_examples=25, deadline=None)
@given(st.floats(1, 99), st.integers(0, 2**31))
def test_observed_split_within_tolerance(weight: float, seed: int) -> None:
    """Random keys: the canary's share is within 4.5 standard errors of its weight."""
    route = Route.from_policy(TrafficPolicy(primary=1, canary=2, canary_weight=weight))
    rng = random.Random(seed)
    n = 20_000
    hits = sum(route.pick_key(f"user-{rng.getrandbits(64)}").version == 2 for _ in range(n))
    p = weight / 100
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(hits / n - p) <= 4.5 * sd + 1e-4


@given(st.text(min_size=1, max_size=40), st.floats(1, 99), st.floats(1, 99))
def test_assignment_is_sticky_and_canary_keys_stay_as_it_grows(
    key: str, w1: float, w2: float
) -> None:
    lo, hi = sorted((w1, w2))
    small = Route.from_policy(TrafficPolicy(primary=1, canary=2, canary_weight=lo, salt="r7"))
    big = Route.from_policy(TrafficPolicy(primary=1, canary=2, canary_weight=hi, salt="r7"))
    first = small.pick_key(key)
    assert all(small.pick_key(key) == first for _ in range(3))
    if first.version == 2:
        assert big.pick_key(key).version == 2


def test_buckets_are_stable_across_processes() -> None:
    """Fixed values: a change to the hash would move every user to another arm."""
    assert bucket_of("alice") == bucket_of(b"alice")
    assert [bucket_of(k) for k in ("alice", "bob", "carol")] == [
        bucket_of("alice", b""),
        bucket_of("bob", b""),
        bucket_of("carol", b""),
    ]
    import subprocess
    import sys

    code = "from lockgate.rollout.router import bucket_of; print(bucket_of('alice', b's'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    )
    assert int(out.stdout) == bucket_of("alice", b"s")
    assert sum(bucket_of(f"k{i}", b"s") == bucket_of(f"k{i}", b"t") for i in range(100)) < 5


def test_arm_route_and_shadows() -> None:
    policy = TrafficPolicy(
        primary=1, arms=(Arm(1, 50), Arm(2, 50)), shadows=(Shadow(3, 25),), key_column="uid"
    )
    route = Route.from_policy(policy)
    assert [t.role for t in route.targets] == ["arm", "arm"]
    assert route.shadows[0].threshold == 2500
    assert route.key_column == "uid"
    assert {route.pick(0).version, route.pick(BUCKETS - 1).version} == {1, 2}
