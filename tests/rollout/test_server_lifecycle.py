"""A rollout survives a hard kill of its server; with two servers on one database exactly one
controller holds the lease."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests import loopback
from tests.rollout.live import (
    Traffic,
    register_versions,
    server_env,
    serving_weights,
    status,
    wait_for,
)
from tests.rollout.scripted import ScriptedModel
from tests.serving.conftest import start_server

from lockgate.client import Client


def test_killed_server_resumes_the_rollout_where_it_was(
    client: Client, env: dict[str, str], tmp_path: Path
) -> None:
    register_versions(client, ScriptedModel(delay_ms=1.0), ScriptedModel(delay_ms=1.0))
    srv = start_server(env, tmp_path, extra_env=server_env())
    try:
        body = {
            "endpoint": "m",
            "candidate": 2,
            "steps": [50, 60, 100],
            "interval": "1.5s",
            "analysis": {"min_requests": 150},
        }
        with Traffic(srv.url, threads=4, pause=0.002):
            r = loopback.post(f"{srv.url}/api/v1/rollouts", json=body)
            assert r.status_code == 201, r.text
            before = wait_for(lambda: (s := status(srv.url))["step"] == 1 and s, 30, 0.02)
        # traffic stopped right after the advance: the new step's window holds too few rows
        # to be judged (the controller says so), so nothing can move while the server is down
        # or coming back
        before = wait_for(
            lambda: (s := status(srv.url))["history"][-1]["outcome"] == "inconclusive" and s, 15
        )
        assert before["step"] == 1
        srv.stop(signal.SIGKILL)
        srv2 = start_server(env, tmp_path, extra_env=server_env())
        try:
            assert serving_weights(srv2.url) == {"2": 60.0, "1": 40.0}
            after = status(srv2.url)
            keys = ("state", "step", "failures", "weights", "policy", "step_started_at")
            assert {k: after[k] for k in keys} == {k: before[k] for k in keys}
            assert after["history"][-1]["outcome"] == "inconclusive"
            with Traffic(srv2.url, threads=4, pause=0.002):
                done = wait_for(
                    lambda: (s := status(srv2.url))["state"] == "promoted" and s, 60, 0.2
                )
            walked = [
                h["policy"]["canary_weight"]
                for h in done["history"]
                if h["action"] in ("start", "advance")
            ]
            assert walked == [50, 60, 100]
            assert client.get_version("m@champion").version == 2
        finally:
            srv2.stop()
    finally:
        if srv.proc.poll() is None:
            srv.stop()


def _leader(url: str) -> bool:
    return bool(loopback.get(f"{url}/api/v1/controller", timeout=10).json()["leader"])


def test_two_servers_one_database_exactly_one_leader(
    client: Client, env: dict[str, str], tmp_path: Path
) -> None:
    """A hard kill leaves the lease to expire (covered by the restart test above and, on a
    fake clock, by test_controller); a clean stop hands it over at once."""
    register_versions(client, ScriptedModel())
    extra = server_env(LOCKGATE_CONTROLLER_LEASE_TTL="10")
    a = start_server(env, tmp_path, extra_env=extra)
    b = start_server(env, tmp_path, extra_env=extra)
    try:
        wait_for(lambda: _leader(a.url) or _leader(b.url), 10)
        for _ in range(8):  # exactly one, over several ticks
            assert [_leader(a.url), _leader(b.url)].count(True) == 1
            time.sleep(0.25)
        leader, other = (a, b) if _leader(a.url) else (b, a)
        holder = loopback.get(f"{leader.url}/api/v1/controller").json()["holder"]
        assert loopback.get(f"{other.url}/api/v1/controller").json()["lease"]["holder"] == holder
        leader.stop()  # SIGTERM: the lease is released, not left to expire (10 s)
        t0 = time.monotonic()
        wait_for(lambda: _leader(other.url), 5)
        assert time.monotonic() - t0 < 5
        events = loopback.get(f"{other.url}/api/v1/events", params={"kind": "controller.leader"})
        holders = [e["payload"]["holder"] for e in events.json()["events"]]
        assert holders[-2:] == [
            holder,
            loopback.get(f"{other.url}/api/v1/controller").json()["holder"],
        ]
    finally:
        for s in (a, b):
            if s.proc.poll() is None:
                s.stop()
