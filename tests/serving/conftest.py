"""A real `lockgate server` process on loopback, over a workspace with tiny real models."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from lockgate.client import Client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    proc: subprocess.Popen[str]
    env: dict[str, str]
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    env: dict[str, str],
    tmp_path: Path,
    *,
    extra_env: dict[str, str] | None = None,
    ready_timeout: float = 60,
) -> RunningServer:
    port = free_port()
    e = {**env, **(extra_env or {})}
    log_path = tmp_path / f"server-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "lockgate.cli", "server", "--port", str(port)],
        env=e,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return RunningServer(url, proc, e, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server not ready in {ready_timeout}s:\n{log_path.read_text()}")


@pytest.fixture
def trained(
    numeric_frame: tuple[pd.DataFrame, np.ndarray],
) -> tuple[LogisticRegression, pd.DataFrame]:
    X, y = numeric_frame
    X = X.assign(x3=X["x1"] * X["x2"])
    return LogisticRegression().fit(X.to_numpy(), y), X


@pytest.fixture
def deployed(client: Client, trained: tuple[LogisticRegression, pd.DataFrame]) -> Client:
    model, X = trained
    client.register_model("iris", model, sample=X)
    client.workspace.endpoints.deploy("iris", version=1)
    return client


@pytest.fixture
def server(deployed: Client, env: dict[str, str], tmp_path: Path) -> Iterator[RunningServer]:
    srv = start_server(env, tmp_path)
    try:
        yield srv
    finally:
        if srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGTERM)
            try:
                srv.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(srv.proc.pid, signal.SIGKILL)
