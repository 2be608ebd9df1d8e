"""End to end on a real server on loopback: drifted traffic and falling accuracy raise signed
alerts to a webhook receiver, and both resolve when traffic returns to normal. The monitors
are evaluated by the server's controller; the REST reports and /metrics agree."""

from __future__ import annotations

import hashlib
import hmac
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from tests import loopback
from tests.alerts.receiver import Receiver, receiver
from tests.monitoring_service.conftest import ENDPOINT, fit, reference_frame
from tests.serving.conftest import RunningServer, running_server, serving_workspace

from lockgate.client import Client

SERVER_SECRET = "server-wide-webhook-secret"
HOOK_SECRET = "per-webhook-secret"


@dataclass
class Traffic:
    """A thread sending 40-row MLflow requests to ``credit`` every 0.1 s and posting ground
    truth for every prediction: ``shift`` moves x1, ``wrong`` is the share of labels that
    contradict the prediction."""

    url: str
    shift: float = 0.0
    wrong: float = 0.0
    errors: list[str] = field(default_factory=list)
    sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(30)

    def _run(self) -> None:
        rng = random.Random(0)
        colors = ["red", "green", "blue"]
        with loopback.client(base_url=self.url, timeout=10) as http:
            while not self._stop.is_set():
                rows = [
                    [rng.gauss(0, 1) + self.shift, rng.gauss(0, 1), rng.choice(colors)]
                    for _ in range(40)
                ]
                body = {"dataframe_split": {"columns": ["x1", "x2", "color"], "data": rows}}
                try:
                    r = http.post(f"/v1/endpoints/{ENDPOINT}/predict", json=body)
                    r.raise_for_status()
                    doc = r.json()
                    items = [
                        {"id": pid, "value": int(p) if rng.random() >= self.wrong else 1 - int(p)}
                        for pid, p in zip(doc["prediction_ids"], doc["predictions"], strict=True)
                    ]
                    f = http.post("/api/v1/feedback", json={"endpoint": ENDPOINT, "items": items})
                    f.raise_for_status()
                    self.sent += 1
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                time.sleep(0.1)


def monitor_state(url: str, name: str) -> str:
    r = loopback.get(f"{url}/api/v1/monitors/{name}", timeout=10)
    assert r.status_code == 200, r.text
    return str(r.json()["state"])


def wait_for(fn: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout}s")


def statuses(rec: Receiver, monitor: str) -> list[str]:
    return [b["status"] for b in rec.bodies() if b["monitor"] == monitor]


@dataclass
class Live:
    server: RunningServer
    receiver: Receiver
    client: Client


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server for the module: ``credit`` v1 (with its reference profile) deployed, short
    controller and flush intervals, a server-wide webhook secret."""
    tmp = tmp_path_factory.mktemp("monitoring-live")
    with serving_workspace(tmp) as ws:
        ref = reference_frame()
        ws.client.register_model(ENDPOINT, fit(ref), sample=ref.head(20), reference=ref)
        ws.client.workspace.endpoints.deploy(ENDPOINT, version=1)
        extra = {
            "LOCKGATE_CONTROLLER_INTERVAL": "0.2",
            "LOCKGATE_LOG_FLUSH_INTERVAL": "0.2",
            "LOCKGATE_POLL_INTERVAL": "0.2",
            "LOCKGATE_WEBHOOK_SECRET": SERVER_SECRET,
            "LOCKGATE_WEBHOOK_BACKOFF": "0.1",
        }
        with receiver() as rec, running_server(ws.env, tmp, extra_env=extra) as srv:
            yield Live(srv, rec, ws.client)


def test_drift_and_quality_alerts_fire_signed_and_resolve(live: Live) -> None:
    srv, rec, client = live.server, live.receiver, live.client
    url = srv.url
    # the drift monitor through the REST API, signed with the server's secret
    r = loopback.post(
        f"{url}/api/v1/monitors",
        json={"name": "credit-drift", "endpoint": ENDPOINT, "kind": "drift", "threshold": 0.3,
              "window": "3s", "interval": "0.4s", "webhooks": [rec.url]},
        timeout=10,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["webhooks"] == [{"url": rec.url, "secret": None}]
    # the quality monitor through the SDK's workspace, with a secret of its own
    from lockgate.monitoring.service import MonitorService

    MonitorService(client.workspace).add(
        {"name": "credit-accuracy", "endpoint": ENDPOINT, "kind": "quality",
         "metric": "accuracy", "threshold": 0.8, "window": "3s", "interval": "0.4s",
         "min_samples": 40, "webhooks": [{"url": rec.url, "secret": HOOK_SECRET}]}
    )  # fmt: skip

    with Traffic(url) as traffic:
        wait_for(
            lambda: (
                monitor_state(url, "credit-drift") == "ok"
                and monitor_state(url, "credit-accuracy") == "ok"
            ),
            30,
            "both monitors ok on normal traffic",
        )
        traffic.shift, traffic.wrong = 3.0, 0.5
        wait_for(
            lambda: (
                statuses(rec, "credit-drift") == ["firing"]
                and statuses(rec, "credit-accuracy") == ["firing"]
            ),
            30,
            "both alerts firing",
        )
        time.sleep(1.5)  # still drifting: evaluated again, no second alert
        assert statuses(rec, "credit-drift") == ["firing"]
        assert statuses(rec, "credit-accuracy") == ["firing"]
        drift_doc = loopback.get(
            f"{url}/api/v1/endpoints/{ENDPOINT}/drift", params={"window": "2s"}, timeout=30
        ).json()
        quality_doc = loopback.get(
            f"{url}/api/v1/endpoints/{ENDPOINT}/quality/report", params={"window": "2s"},
            timeout=30,
        ).json()  # fmt: skip
        metrics = loopback.get(f"{url}/metrics", timeout=10).text

        traffic.shift, traffic.wrong = 0.0, 0.0
        wait_for(
            lambda: (
                statuses(rec, "credit-drift") == ["firing", "resolved"]
                and statuses(rec, "credit-accuracy") == ["firing", "resolved"]
            ),
            30,
            "both alerts resolved",
        )
    assert not traffic.errors, traffic.errors[:3]

    for got in rec.requests:
        body = got.json()
        secret = SERVER_SECRET if body["monitor"] == "credit-drift" else HOOK_SECRET
        expected = "sha256=" + hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
        assert got.headers["X-Lockgate-Signature"] == expected
        assert got.headers["X-Lockgate-Alert-Id"] == str(body["id"])
    bodies = {(b["monitor"], b["status"]): b for b in rec.bodies()}
    fired = bodies[("credit-drift", "firing")]
    assert fired["endpoint"] == ENDPOINT and fired["version"] == 1 and fired["value"] >= 0.3
    assert "x1" in fired["measurement"]["detail"]["drifted_columns"]
    assert bodies[("credit-accuracy", "firing")]["value"] < 0.8
    assert bodies[("credit-accuracy", "resolved")]["value"] >= 0.8

    by = {c["column"]: c for c in drift_doc["columns"]}
    assert by["x1"]["significant"] and by["x1"]["material"] and by["x1"]["test"] == "ks"
    (vq,) = [v for v in quality_doc["versions"] if v["role"] == "primary"]
    assert vq["metrics"]["accuracy"]["value"] < 0.8 and vq["metrics"]["accuracy"]["low"] is not None
    assert 'lockgate_monitor_firing{endpoint="credit",monitor="credit-drift"} 1.0' in metrics
    assert 'lockgate_drift_column_drifted{column="x1",endpoint="credit",version="1"} 1.0' in metrics
    assert 'lockgate_quality{endpoint="credit",metric="accuracy",version="1"}' in metrics

    alerts = loopback.get(f"{url}/api/v1/alerts", timeout=10).json()["alerts"]
    assert len(alerts) == 4 and all(a["delivery"]["delivery"] == "delivered" for a in alerts)
    events = loopback.get(f"{url}/api/v1/events", params={"subject": ENDPOINT}, timeout=10).json()
    kinds = [e["kind"] for e in events["events"]]
    assert kinds.count("monitor.firing") == 2 and kinds.count("monitor.resolved") == 2
    for e in events["events"]:
        assert SERVER_SECRET not in str(e) and HOOK_SECRET not in str(e)
    assert SERVER_SECRET not in srv.log() and HOOK_SECRET not in srv.log()
    assert "FIRING credit-drift" in srv.log()


def test_rest_validation_and_errors(live: Live) -> None:
    url = live.server.url
    bad = loopback.post(
        f"{url}/api/v1/monitors",
        json={"name": "x", "endpoint": ENDPOINT, "kind": "error_rate",
              "webhooks": ["ftp://127.0.0.1/hook"]},
        timeout=10,
    )  # fmt: skip
    assert bad.status_code == 400 and bad.json()["field"] == "webhooks.url"
    assert loopback.get(f"{url}/api/v1/monitors/nope", timeout=10).status_code == 404
    r = loopback.get(f"{url}/api/v1/endpoints/nope/drift", timeout=10)
    assert r.status_code == 404
    r = loopback.get(f"{url}/api/v1/endpoints/{ENDPOINT}/drift", params={"window": "x"}, timeout=10)
    assert r.status_code == 400 and r.json()["field"] == "window"
    before = {"since": "2020-01-01T00:00:00Z", "until": "2020-01-02T00:00:00Z"}
    page = loopback.get(
        f"{url}/api/v1/endpoints/{ENDPOINT}/drift", params={**before, "format": "html"},
        timeout=30,
    )  # fmt: skip
    assert page.status_code == 200 and page.text.startswith("<!DOCTYPE html>")
    assert "insufficient data" in page.text  # no traffic in that window
