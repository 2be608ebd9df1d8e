"""Pure logic of automation: the cron matcher, entry point validation, pipeline and policy
specs, and the policy decision function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.automation.cron import parse_cron
from lockgate.automation.pipelines import PipelineSpec, parse_entry, resolve_entry
from lockgate.automation.policies import AutomationPolicy, Situation, decide
from lockgate.errors import InvalidInputError

T0 = datetime(2026, 3, 2, 2, 59, 30, tzinfo=UTC)  # a Monday


def test_cron_daily_at_three() -> None:
    c = parse_cron("0 3 * * *")
    assert c.next_after(T0) == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert c.next_after(datetime(2026, 3, 2, 3, 0, tzinfo=UTC)) == datetime(
        2026, 3, 3, 3, 0, tzinfo=UTC
    )
    assert c.matches(datetime(2026, 3, 2, 3, 0, 59, tzinfo=UTC))
    assert not c.matches(datetime(2026, 3, 2, 3, 1, tzinfo=UTC))


def test_cron_steps_lists_ranges_and_names() -> None:
    c = parse_cron("*/15 9-17 * jan,mar mon-fri")
    assert c.minutes == {0, 15, 30, 45}
    assert c.hours == set(range(9, 18))
    assert c.months == {1, 3}
    assert c.weekdays == {1, 2, 3, 4, 5}
    assert c.next_after(T0) == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    saturday = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
    assert not c.matches(saturday)


def test_cron_day_of_month_or_weekday_when_both_restricted() -> None:
    c = parse_cron("0 0 1 * sun")  # the 1st, or any Sunday (Vixie cron)
    assert c.matches(datetime(2026, 3, 1, 0, 0, tzinfo=UTC))  # a Sunday and the 1st
    assert c.matches(datetime(2026, 3, 8, 0, 0, tzinfo=UTC))  # a Sunday
    assert c.matches(datetime(2026, 4, 1, 0, 0, tzinfo=UTC))  # a Wednesday, the 1st
    assert not c.matches(datetime(2026, 4, 2, 0, 0, tzinfo=UTC))


def test_cron_nicknames_sunday_seven_and_impossible_dates() -> None:
    assert parse_cron("@daily").next_after(T0) == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    assert parse_cron("0 0 * * 7").weekdays == {0}
    assert parse_cron("0 0 31 2 *").next_after(T0) is None


def test_cron_due_fires_once_per_matching_minute() -> None:
    c = parse_cron("*/5 * * * *")
    last = datetime(2026, 3, 2, 3, 0, 10, tzinfo=UTC)
    assert not c.due(last, last + timedelta(seconds=200))
    assert c.due(last, datetime(2026, 3, 2, 3, 5, 0, tzinfo=UTC))


def test_every_is_an_interval_from_the_last_firing() -> None:
    c = parse_cron("@every 2s")
    assert c.every == 2.0 and parse_cron("@EVERY 1.5m").every == 90.0
    last = datetime(2026, 3, 2, 3, 0, 10, tzinfo=UTC)
    assert not c.due(last, last + timedelta(seconds=1.9))
    assert c.due(last, last + timedelta(seconds=2))
    assert c.due(None, last)  # never run: due at once
    assert c.next_after(last) == last + timedelta(seconds=2)
    assert parse_cron("@every 1d").every == 86_400.0
    for bad in ("@every", "@every 0s", "@every 367d", "@every 5 minutes", "@every -1s"):
        with pytest.raises(InvalidInputError) as exc:
            parse_cron(bad)
        assert exc.value.field == "schedule" and "@every DURATION" in str(exc.value)


@pytest.mark.parametrize(
    "bad",
    ["", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "*/0 * * * *", "5-1 * * * *",
     "a * * * *", "* * * foo *", 42, None, "1,,2 * * * *"],
)  # fmt: skip
def test_cron_rejects_bad_expressions_naming_the_field(bad: object) -> None:
    with pytest.raises(InvalidInputError) as exc:
        parse_cron(bad)
    assert exc.value.field == "schedule"


@given(
    st.integers(0, 59), st.integers(0, 23), st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    )
)  # fmt: skip
def test_cron_next_after_is_the_first_matching_minute(m: int, h: int, t: datetime) -> None:
    c = parse_cron(f"{m} {h} * * *")
    nxt = c.next_after(t)
    assert nxt is not None and nxt > t and c.matches(nxt)
    assert nxt - t <= timedelta(days=1, minutes=1)
    assert nxt.minute == m and nxt.hour == h


def test_entry_points_module_and_script(tmp_path: Path) -> None:
    assert parse_entry("pkg.mod:train") == ("module", "pkg.mod", "train")
    script = tmp_path / "train.py"
    script.write_text("def fit(data, context): ...\n")
    assert resolve_entry(f"{script}:fit") == f"{script.resolve()}:fit"
    assert resolve_entry(str(script)) == f"{script.resolve()}:train"
    for bad in [
        "pkg.mod",
        "pkg-mod:train",
        "pkg.mod:tr ain",
        "os.system('x'):a",
        ":train",
        "pkg..mod:train",
        "../train.py",
        "a/../../train.py:train",
        "train.txt",
        "",
    ]:
        with pytest.raises(InvalidInputError) as exc:
            parse_entry(bad)
        assert exc.value.field == "entry"
    with pytest.raises(InvalidInputError, match="existing script"):
        resolve_entry(str(tmp_path / "missing.py"))


def test_pipeline_spec_checks_every_field() -> None:
    spec = PipelineSpec.from_dict(
        {"model": "m", "entry": "a.b:c", "steps": [10, 100], "schedule": "@hourly"}
    )
    assert spec.steps == (10.0, 100.0) and spec.endpoint_name == "m"
    assert PipelineSpec.from_dict(spec.to_dict()) == spec
    for field, value in [("strategy", "blue-green"), ("timeout", 0), ("holdout", 0.99),
                         ("steps", [0]), ("min_rows", 5), ("schedule", "nope"),
                         ("analysis", {"min_requests": -1})]:  # fmt: skip
        with pytest.raises(InvalidInputError):
            PipelineSpec.from_dict({"model": "m", "entry": "a.b:c", field: value})
    with pytest.raises(InvalidInputError, match="keys among"):
        PipelineSpec.from_dict({"model": "m", "entry": "a.b:c", "colour": "red"})


def _sit(**kw: object) -> Situation:
    base: dict[str, object] = dict(
        now=T0, has_pipeline=True, running_here=0, running_total=0, last_start=None,
        active_rollout=None, previous_champion=None,
    )  # fmt: skip
    base.update(kw)
    return Situation(**base)  # type: ignore[arg-type]


def test_decide_retrain_and_every_reason_to_skip() -> None:
    p = AutomationPolicy("ep", cooldown=600, max_concurrent=2)
    assert decide(p, "drift", _sit()).taken
    cases = {
        "no pipeline": _sit(has_pipeline=False),
        "already running": _sit(running_here=1),
        "rollout 7 is in progress": _sit(active_rollout=7),
        "cool-down": _sit(last_start=T0 - timedelta(seconds=599)),
        "limit of 2 concurrent": _sit(running_total=2),
    }
    for words, sit in cases.items():
        d = decide(p, "quality", sit)
        assert not d.taken and words in d.reason, (words, d.reason)
    assert decide(p, "drift", _sit(last_start=T0 - timedelta(seconds=601))).taken
    off = AutomationPolicy("ep", on_drift="none")
    assert "no action on drift" in decide(off, "drift", _sit()).reason
    assert "disabled" in decide(AutomationPolicy("ep", enabled=False), "drift", _sit()).reason
    assert not decide(p, "schedule", _sit()).taken  # no schedule set


def test_decide_rollback() -> None:
    p = AutomationPolicy("ep")
    d = decide(p, "slo", _sit(active_rollout=3))
    assert d.taken and d.action == "rollback" and d.detail["rollout"] == 3
    d = decide(p, "slo", _sit(previous_champion=2, serving=3))
    assert d.taken and d.detail["to_version"] == 2 and d.detail["from_version"] == 3
    assert "served before v3" in d.reason
    assert not decide(p, "slo", _sit()).taken
    # a redeploying rollback keeps the policy's cool-down, counted from the last one
    cool = AutomationPolicy("ep", cooldown=600)
    recent = _sit(previous_champion=2, serving=3, last_rollback=T0 - timedelta(seconds=599))
    d = decide(cool, "slo", recent)
    assert not d.taken and "cool-down: last automated rollback" in d.reason
    old = _sit(previous_champion=2, serving=3, last_rollback=T0 - timedelta(seconds=601))
    assert decide(cool, "slo", old).taken
    # no roll forward to the version an automated rollback left
    d = decide(p, "slo", _sit(previous_champion=3, serving=2, serving_by_rollback=True))
    assert not d.taken and "rolling forward again is left to a human" in d.reason
    # a rollout ended after the alert already answered it: no second, deeper rollback
    d = decide(p, "slo", _sit(previous_champion=1, serving=2, rollout_ended=4))
    assert not d.taken and "rollout 4 ended after the alert" in d.reason
    # aborting an active rollout is never held back by the cool-down
    d = decide(cool, "slo", _sit(active_rollout=3, last_rollback=T0))
    assert d.taken and d.detail["rollout"] == 3


def test_policy_spec_validation() -> None:
    for field, value in [("on_drift", "rollback"), ("on_slo", "retrain"), ("cooldown", -1),
                         ("max_concurrent", 0), ("schedule", "x"), ("enabled", "yes")]:  # fmt: skip
        with pytest.raises(InvalidInputError) as exc:
            AutomationPolicy.from_dict({"endpoint": "ep", field: value})
        assert exc.value.field in (field, "schedule")
