"""Done-when tests on a real `lockgate server` on loopback: the controller rolls bad candidates
back and promotes a healthy one, a failing shadow never fails a user request."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from tests import loopback
from tests.databases import fresh_database
from tests.rollout.live import (
    Q80,
    Traffic,
    register_versions,
    server_env,
    serving_weights,
    status,
    wait_for,
)
from tests.rollout.scripted import ScriptedModel
from tests.serving.conftest import RunningServer, start_server

from lockgate.client import Client, connect

INTERVAL = 2.0
HEALTHY = ScriptedModel(delay_ms=5.0)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, RunningServer]]:
    """One workspace and server for the module: v1 healthy (5 ms, deployed), v2 healthy, v3
    raises on ~20% of inputs, v4 10x slower (50 ms), v5 always raises; short intervals.
    (5 ms rather than less: a sleep overshoots by milliseconds on a busy 2-core VM, which
    would hide a 10x slowdown of a 1 ms model in the baseline's own p99.)"""
    tmp = tmp_path_factory.mktemp("live")
    with fresh_database(tmp) as url:
        home = tmp / "ws"
        home.mkdir()
        client = connect(home, database_url=url)
        register_versions(
            client,
            HEALTHY,
            ScriptedModel(delay_ms=5.0),
            ScriptedModel(delay_ms=5.0, fail_column=0, fail_above=Q80),
            ScriptedModel(delay_ms=50.0),
            ScriptedModel(delay_ms=5.0, fail_always=True),
        )
        e = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
        e.update(LOCKGATE_HOME=str(home), LOCKGATE_DATABASE_URL=url)
        srv = start_server(e, tmp, extra_env=server_env())
        try:
            yield client, srv
        finally:
            srv.stop()
            client.close()


@pytest.fixture
def live(shared: tuple[Client, RunningServer]) -> RunningServer:
    """The shared server, serving v1 alone again."""
    client, srv = shared
    if client.workspace.endpoints.get("m").policy.primary != 1:
        client.workspace.endpoints.deploy("m", version=1)
    wait_for(lambda: serving_weights(srv.url) == {"1": 100.0}, 10)
    return srv


@pytest.fixture
def client(shared: tuple[Client, RunningServer]) -> Client:
    return shared[0]


def _start(url: str, candidate: int, **body: object) -> dict[str, object]:
    doc = {"endpoint": "m", "candidate": candidate, "interval": f"{INTERVAL}s", **body}
    r = loopback.post(f"{url}/api/v1/rollouts", json=doc, timeout=10)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _rolled_back_quickly(srv: RunningServer, candidate: int) -> dict[str, object]:
    """Start a canary of ``candidate`` under traffic; it must be rolled back within two
    analysis intervals (plus the log lag and a tick), and no request sent after the server
    serves the baseline alone may fail."""
    with Traffic(srv.url) as traffic:
        time.sleep(0.5)
        started = _start(
            srv.url, candidate, steps=[30, 100], max_failures=2, analysis={"min_requests": 15}
        )
        t0 = datetime.fromisoformat(str(started["started_at"]))
        doc = wait_for(lambda: (s := status(srv.url))["state"] == "rolled_back" and s, 30)
        wait_for(lambda: serving_weights(srv.url) == {"1": 100.0}, 10)
        applied = time.monotonic()
        time.sleep(1.5)
    # the threshold is crossed at the first failed analysis (earlier ones lacked rows): the
    # next one, one interval later, rolls back
    analyses = [h for h in doc["history"] if h["outcome"] is not None]
    outcomes = [h["outcome"] for h in analyses]
    first = outcomes.index("failed")
    assert outcomes[first:] == ["failed", "failed"], outcomes
    assert analyses[-1]["action"] == "rollback"
    at = [datetime.fromisoformat(h["at"]) for h in analyses[first:]]
    # (slack: the log's lag of 0.7 s, a 0.2 s tick, and the analysis itself on a busy VM)
    assert (at[1] - at[0]).total_seconds() <= INTERVAL + 2.5, doc["history"]
    crossed = (at[0] - t0).total_seconds()
    # the failure shows at the second analysis at the latest (the first may lack rows): two
    # intervals, the log's lag (0.7 s), a tick (0.2 s) and up to 1 s for the analysis on a
    # VM running both test suites side by side (measured: 2.8-4.5 s alone, 5.1-5.2 s so on a
    # slow day); one analysis more would land at 6.7 s or later
    assert crossed <= (first + 2) * INTERVAL + 1.9, doc["history"]
    after = traffic.since(applied)
    assert len(after) > 50
    assert all(a.status == 200 and a.version == "1" for a in after), [
        a for a in after if a.status != 200
    ][:5]
    before = traffic.since(0)
    assert any(a.version == str(candidate) for a in before)  # the candidate did take traffic
    return doc


def test_candidate_failing_on_a_fifth_of_inputs_is_rolled_back(live: RunningServer) -> None:
    doc = _rolled_back_quickly(live, 3)
    checks = {c["name"]: c for c in doc["analysis"]["checks"]}
    assert checks["error_rate"]["verdict"] == "fail"
    assert 0.1 < checks["error_rate"]["value"] < 0.35
    events = loopback.get(
        f"{live.url}/api/v1/events", params={"kind": "rollout.rolled_back"}
    ).json()
    assert events["events"][-1]["actor"] == "lockgate-controller"
    r = loopback.post(f"{live.url}/api/v1/rollouts/m/promote", json={"reason": "try anyway"})
    assert r.status_code == 409 and "rolled back" in r.json()["error"]
    assert status(live.url)["state"] == "rolled_back"


def test_ten_times_slower_candidate_is_rolled_back(live: RunningServer) -> None:
    doc = _rolled_back_quickly(live, 4)
    checks = {c["name"]: c for c in doc["analysis"]["checks"]}
    assert checks["latency"]["verdict"] == "fail"
    assert checks["error_rate"]["verdict"] == "pass"


def test_healthy_candidate_walks_the_steps_and_becomes_champion(
    live: RunningServer, client: Client
) -> None:
    with Traffic(live.url, threads=4, pause=0.002):
        _start(live.url, 2, steps=[5, 25, 50, 100], analysis={"min_requests": 10})
        doc = wait_for(lambda: (s := status(live.url))["state"] == "promoted" and s, 90, 0.2)
        wait_for(lambda: serving_weights(live.url) == {"2": 100.0}, 10)
    walked = [
        h["policy"]["canary_weight"] for h in doc["history"] if h["action"] in ("start", "advance")
    ]
    assert walked == [5, 25, 50, 100]
    assert client.get_version("m@champion").version == 2
    assert client.workspace.endpoints.get("m").policy.primary == 2
    # the controller counts a transition once record_analysis has stored it, and the data
    # plane can serve the new weights in between: wait for the count, do not assume it
    promoted = 'lockgate_rollout_transitions_total{action="promote",endpoint="m"} 1.0'
    wait_for(lambda: promoted in loopback.get(f"{live.url}/metrics").text, 10)


def test_failing_shadow_fails_no_user_request(live: RunningServer, client: Client) -> None:
    with Traffic(live.url) as traffic:
        _start(live.url, 5, strategy="shadow", analysis={"min_requests": 15})
        wait_for(lambda: serving_weights(live.url) == {"1": 100.0} and _shadowed(live.url), 10)
        t_shadow = time.monotonic()
        doc = wait_for(lambda: (s := status(live.url))["state"] == "rolled_back" and s, 30)
    answers = traffic.since(t_shadow)
    assert len(answers) > 100
    assert all(a.status == 200 for a in answers)  # 0 failed primary responses
    checks = {c["name"]: c for c in doc["analysis"]["checks"]}
    assert checks["error_rate"]["value"] == 1.0  # the shadow failed every copy
    m = loopback.get(f"{live.url}/metrics").text
    assert 'lockgate_requests_total{code="500",endpoint="m",role="shadow",version="5"}' in m
    # the shadow's records share the primary's request ids
    from lockgate.store.predlog import PredictionLog

    log = PredictionLog(client.workspace.settings.predictions_dir)
    df = log.read("m", columns=["id", "role", "version", "status"])
    shadow = df[(df["role"] == "shadow") & (df["version"] == 5)]
    assert len(shadow) > 50 and set(shadow["status"]) == {500}
    assert shadow["id"].isin(df[df["role"] == "primary"]["id"]).mean() > 0.99


def _shadowed(url: str) -> bool:
    doc = loopback.get(f"{url}/api/v1/endpoints/m", timeout=10).json()
    return bool((doc.get("serving") or {}).get("shadows"))


def test_healthy_shadow_agrees_then_canaries(live: RunningServer) -> None:
    with Traffic(live.url, threads=4, pause=0.002):
        _start(
            live.url,
            2,
            strategy="shadow-then-canary",
            steps=[50, 100],
            analysis={"min_requests": 15},
        )
        doc = wait_for(lambda: (s := status(live.url))["state"] == "promoted" and s, 60, 0.2)
    shadow_analysis = next(
        h for h in doc["history"] if h["action"] == "advance" and h["from_phase"] == "shadow"
    )
    assert shadow_analysis["outcome"] == "successful"
    # the per-step figures live in the history rows; the status shows the last analysis
    assert doc["analysis"]["outcome"] == "successful"
