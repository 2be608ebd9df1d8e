"""Helpers of the real-server rollout tests: scripted model versions, server settings with
short intervals, a traffic generator that remembers every answer."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tests import loopback
from tests.rollout.scripted import SPEC, ScriptedModel

from lockgate.client import Client
from lockgate.registry.signature import Signature
from lockgate.runtimes import register_runtime

REPO = Path(__file__).resolve().parents[2]
#: x1 above this on about 20% of standard normal inputs
Q80 = 0.8416


def server_env(**extra: str) -> dict[str, str]:
    return {
        "LOCKGATE_RUNTIMES": f"scripted={SPEC}",
        "PYTHONPATH": str(REPO),
        "LOCKGATE_CONTROLLER_INTERVAL": "0.2",
        "LOCKGATE_POLL_INTERVAL": "0.2",
        "LOCKGATE_LOG_FLUSH_INTERVAL": "0.2",
        "LOCKGATE_CONTROLLER_LEASE_TTL": "3",
        **extra,
    }


def register_versions(client: Client, *models: ScriptedModel) -> list[int]:
    """Register ``models`` as versions of ``m`` (no smoke prediction: some are built to
    fail) and deploy the first."""
    register_runtime("scripted", SPEC)
    sig = Signature.infer(
        {"x1": np.zeros(2), "x2": np.zeros(2)}, outputs=np.zeros(2, dtype=np.int64)
    )
    versions = [
        client.register_model("m", model, flavor="scripted", signature=sig).version
        for model in models
    ]
    client.workspace.endpoints.deploy("m", version=versions[0])
    return versions


@dataclass
class Answer:
    t: float  # monotonic time the request was sent
    status: int  # -1: no answer (connection refused, ...)
    version: str | None


@dataclass
class Traffic:
    """Threads posting one-row OIP requests to ``m`` until stopped."""

    url: str
    threads: int = 3
    pause: float = 0.004
    key: str | None = None
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Traffic:
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(30)

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        headers = {"x-lockgate-key": self.key} if self.key else {}
        with loopback.client(timeout=10) as http:
            while not self._stop.is_set():
                x = [rng.gauss(0, 1), rng.gauss(0, 1)]
                body = {
                    "inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": x}]
                }
                t = time.monotonic()
                try:
                    r = http.post(f"{self.url}/v2/models/m/infer", json=body, headers=headers)
                    version = r.json().get("model_version") if r.status_code == 200 else None
                    self.answers.append(Answer(t, r.status_code, version))
                except httpx.HTTPError:
                    self.answers.append(Answer(t, -1, None))
                    time.sleep(0.05)
                time.sleep(self.pause)

    def since(self, t: float) -> list[Answer]:
        return [a for a in list(self.answers) if a.t >= t]


def wait_for(fn: Any, timeout: float, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


def status(url: str) -> dict[str, Any]:
    r = loopback.get(f"{url}/api/v1/rollouts/m", timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def serving_weights(url: str) -> dict[str, float]:
    doc = loopback.get(f"{url}/api/v1/endpoints/m", timeout=10).json()
    return dict((doc.get("serving") or {}).get("weights") or {})
