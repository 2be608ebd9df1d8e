"""The SLO-breach policy with no rollout active, on a real `lockgate server` on loopback: a
version that fails every request makes the error-rate monitor fire, and the policy engine
redeploys the version served before it (the previous champion) with the champion alias, in
one transaction recorded as lockgate-automation's events; a second breach within the
cool-down is left alone and the decision says why."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.rollout.live import Traffic, register_versions, server_env, wait_for
from tests.rollout.scripted import ScriptedModel
from tests.serving.conftest import RunningServer, start_server

from lockgate.audit.events import verify_chain
from lockgate.automation.service import AUTOMATION_ACTOR, AutomationService
from lockgate.client import Client
from lockgate.monitoring.service import MonitorService
from lockgate.store.schema import AliasHistoryRow, EventRow

MONITOR = "m-errors"


@pytest.fixture
def broken(
    client: Client, env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[Client, RunningServer]]:
    """``m``: v1 healthy was champion and served; v2, which fails every request, was then
    deployed and made champion by a human. An error-rate monitor (3 s window) and an SLO
    policy with a one-hour cool-down; a server with short intervals."""
    register_versions(client, ScriptedModel(delay_ms=1.0), ScriptedModel(fail_always=True))
    ws = client.workspace
    client.set_alias("m", "champion", 1, reason="first")
    ws.endpoints.deploy("m", version=2, reason="ship v2")
    client.set_alias("m", "champion", 2, reason="ship v2")
    MonitorService(ws, background=False).add(
        {"name": MONITOR, "endpoint": "m", "kind": "error_rate", "threshold": 0.2,
         "window": 3, "interval": 0.5, "min_samples": 20}
    )  # fmt: skip
    AutomationService(ws).set_policy(
        {"endpoint": "m", "on_drift": "none", "on_quality": "none", "on_slo": "rollback",
         "cooldown": 3600}
    )  # fmt: skip
    srv = start_server(env, tmp_path, extra_env=server_env())
    try:
        yield client, srv
    finally:
        assert srv.stop() == 0, srv.log()[-3000:]


def _events(client: Client, after: int = 0) -> list[EventRow]:
    with client.workspace.db.read() as s:
        return list(
            s.execute(select(EventRow).where(EventRow.id > after).order_by(EventRow.id)).scalars()
        )


def _decisions(client: Client) -> list[dict[str, Any]]:
    return list(reversed(AutomationService(client.workspace).decisions("m")))


def _explain(client: Client, srv: RunningServer) -> str:
    seen = [(e.kind, e.actor, e.payload.get("reason")) for e in _events(client)]
    return f"events: {seen}\nserver log:\n{srv.log()[-3000:]}"


def test_slo_breach_without_rollout_redeploys_the_previous_champion(
    broken: tuple[Client, RunningServer],
) -> None:
    client, srv = broken
    ws = client.workspace
    start = max(e.id for e in _events(client))
    with Traffic(srv.url, threads=2, pause=0.01) as traffic:
        try:
            wait_for(lambda: ws.endpoints.get("m").policy.primary == 1, 60, every=0.2)
            # the data plane polls the endpoint's generation: v1 answers, and only v1
            wait_for(
                lambda: [(a.status, a.version) for a in traffic.answers[-20:]] == [(200, "1")] * 20,
                30,
                every=0.2,
            )
        except AssertionError:
            pytest.fail(_explain(client, srv))

        # the whole rollback is lockgate-automation's, with its reason, in one transaction
        events = _events(client, start)
        firing = next(e for e in events if e.kind == "monitor.firing")
        assert firing.payload["monitor"] == MONITOR
        decision = next(e for e in events if e.kind == "automation.decision")
        assert decision.actor == AUTOMATION_ACTOR
        p = decision.payload
        assert (p["trigger"], p["action"], p["taken"]) == ("slo", "rollback", True)
        assert (p["from_version"], p["to_version"]) == (2, 1)
        assert p["monitor"] == MONITOR and p["event"] == firing.id
        assert p["champion_moved"] is True
        assert p["reason"] == "redeploy v1, served before v2"
        deployed = next(e for e in events if e.kind == "endpoint.deployed")
        assert deployed.actor == AUTOMATION_ACTOR
        assert (deployed.payload["from_version"], deployed.payload["to_version"]) == (2, 1)
        assert deployed.payload["rollback"]["monitor"] == MONITOR
        assert deployed.payload["rollback"]["alert"] == firing.payload["alert"]
        assert "served before v2" in deployed.payload["reason"]
        moved = next(e for e in events if e.kind == "alias.move")
        assert moved.actor == AUTOMATION_ACTOR and moved.subject == "m@champion"
        assert (moved.payload["from_version"], moved.payload["to_version"]) == (2, 1)
        # one transaction: the three events are consecutive, the decision last
        ids = [deployed.id, moved.id, decision.id]
        assert ids == list(range(deployed.id, deployed.id + 3)), ids
        assert deployed.at == moved.at == decision.at
        assert client.get_version("m@champion").version == 1
        with ws.db.read() as s:
            last = s.execute(
                select(AliasHistoryRow).order_by(AliasHistoryRow.id.desc()).limit(1)
            ).scalar_one()
            assert (last.actor, last.from_version, last.to_version) == (AUTOMATION_ACTOR, 2, 1)

        # v1 is healthy: the 3 s window slides past v2's errors and the alert resolves
        try:
            wait_for(
                lambda: any(e.kind == "monitor.resolved" for e in _events(client, decision.id)),
                30,
                every=0.2,
            )
        except AssertionError:
            pytest.fail(_explain(client, srv))
        # a human ships v2 again: the breach fires again, within the cool-down
        ws.endpoints.deploy("m", version=2, reason="try v2 again")
        redeployed = max(e.id for e in _events(client))
        try:
            skipped = wait_for(
                lambda: [
                    e
                    for e in _events(client, redeployed)
                    if e.kind == "automation.decision" and e.payload["trigger"] == "slo"
                ],
                60,
                every=0.2,
            )[0]
        except AssertionError:
            pytest.fail(_explain(client, srv))
        time.sleep(1.0)  # a few more ticks: nothing else may happen
    assert skipped.payload["taken"] is False
    assert skipped.payload["reason"].startswith("cool-down: last automated rollback")
    assert ws.endpoints.get("m").policy.primary == 2  # left to the human who deployed it
    later = _events(client, skipped.id)
    assert not any(e.kind in ("endpoint.deployed", "alias.move") for e in later), later
    assert [(d["taken"], d["to_version"]) for d in _decisions(client)] == [(True, 1), (False, 1)]
    assert verify_chain(ws.db).ok
