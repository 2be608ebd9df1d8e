"""A real `lockgate server` process on loopback, over a workspace with tiny real models."""

from __future__ import annotations

import contextlib
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
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sklearn.linear_model import LogisticRegression
from tests import loopback
from tests.databases import fresh_database

from lockgate.client import Client, connect


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
            if loopback.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return RunningServer(url, proc, e, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server not ready in {ready_timeout}s:\n{log_path.read_text()}")


def fit_iris(
    numeric_frame: tuple[pd.DataFrame, np.ndarray],
) -> tuple[LogisticRegression, pd.DataFrame]:
    """The "iris" model: LogisticRegression on three float64 columns x1, x2, x3."""
    X, y = numeric_frame
    X = X.assign(x3=X["x1"] * X["x2"])
    return LogisticRegression().fit(X.to_numpy(), y), X


@pytest.fixture
def trained(
    numeric_frame: tuple[pd.DataFrame, np.ndarray],
) -> tuple[LogisticRegression, pd.DataFrame]:
    return fit_iris(numeric_frame)


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


# -- module- and session-scoped workspaces and servers ---------------------------------------


@dataclass
class ServingWorkspace:
    """A workspace for one module or session: its home, a subprocess environment and an
    embedded client on it."""

    home: Path
    env: dict[str, str]
    client: Client
    tmp: Path


@contextlib.contextmanager
def serving_workspace(tmp: Path) -> Iterator[ServingWorkspace]:
    home = tmp / "ws"
    home.mkdir()
    with fresh_database(tmp) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
        env.update(LOCKGATE_HOME=str(home), LOCKGATE_DATABASE_URL=url)
        client = connect(home, database_url=url)
        try:
            yield ServingWorkspace(home, env, client, tmp)
        finally:
            client.close()


@contextlib.contextmanager
def running_server(
    env: dict[str, str], tmp: Path, *, extra_env: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    """:func:`start_server` that is always stopped (SIGTERM, then SIGKILL) on exit."""
    srv = start_server(env, tmp, extra_env=extra_env)
    try:
        yield srv
    finally:
        if srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGTERM)
            try:
                srv.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(srv.proc.pid, signal.SIGKILL)
                srv.proc.wait()


def wait_until_served(
    url: str, endpoint: str, *, version: int | None = None, timeout: float = 30
) -> None:
    """Poll until a running server serves ``endpoint`` (at ``version``, when given)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        r = loopback.get(f"{url}/v2/models/{endpoint}", timeout=5)
        if r.status_code == 200 and (version is None or str(version) in r.json()["versions"]):
            return
        last = r.text
        time.sleep(0.05)
    raise AssertionError(f"{url} does not serve {endpoint} v{version} after {timeout}s: {last}")


def scrape(url: str) -> list[Sample]:
    """Every sample on the server's /metrics, parsed as Prometheus text."""
    r = loopback.get(f"{url}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    return [s for fam in text_string_to_metric_families(r.text) for s in fam.samples]


def metric(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


@dataclass(repr=False)
class SharedServer:
    """One server for the read-mostly tests of several modules. It serves "iris" (version 1
    of two) and "alltypes" (a pipeline over one column of every OIP datatype); a module that
    needs more endpoints deploys them under names of its own."""

    ws: ServingWorkspace
    server: RunningServer
    iris: LogisticRegression
    iris_X: pd.DataFrame
    alltypes: object
    alltypes_X: pd.DataFrame

    @property
    def url(self) -> str:
        return self.server.url

    def __repr__(self) -> str:  # short in tracebacks: no DataFrames
        return f"<SharedServer {self.url}>"


def alltypes_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """One column per OIP datatype: BOOL, UINT8..UINT64, INT8..INT64, FP16..FP64, BYTES."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "b": rng.random(n) > 0.5,
            "u8": rng.integers(0, 256, n).astype(np.uint8),
            "u16": rng.integers(0, 2**16, n).astype(np.uint16),
            "u32": rng.integers(0, 2**32, n).astype(np.uint32),
            "u64": rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2),
            "i8": rng.integers(-128, 128, n).astype(np.int8),
            "i16": rng.integers(-(2**15), 2**15, n).astype(np.int16),
            "i32": rng.integers(-(2**31), 2**31, n).astype(np.int32),
            "i64": rng.integers(-(2**62), 2**62, n).astype(np.int64),
            "f16": rng.normal(size=n).astype(np.float16),
            "f32": rng.normal(size=n).astype(np.float32),
            "f64": rng.normal(size=n),
            "s": rng.choice(np.array(["red", "green", "blue"], dtype=object), n),
        }
    )


def fit_alltypes(X: pd.DataFrame) -> object:
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    y = ((X["f64"] + X["f32"] + X["b"] + (X["s"] == "red")) > 0.8).astype(np.int64)
    pre = make_column_transformer(
        (OneHotEncoder(handle_unknown="error"), ["s"]), remainder=StandardScaler()
    )
    return make_pipeline(pre, LogisticRegression(max_iter=1000)).fit(X, y)


@pytest.fixture(scope="session")
def shared(
    tmp_path_factory: pytest.TempPathFactory, numeric_frame: tuple[pd.DataFrame, np.ndarray]
) -> Iterator[SharedServer]:
    tmp = tmp_path_factory.mktemp("shared")
    iris, X = fit_iris(numeric_frame)
    AX = alltypes_frame(300)
    alltypes = fit_alltypes(AX)
    with serving_workspace(tmp) as ws:
        ws.client.register_model("iris", iris, sample=X)
        _, y = numeric_frame
        ws.client.register_model(
            "iris", LogisticRegression(C=0.01).fit(X.to_numpy(), 1 - y), sample=X
        )
        ws.client.workspace.endpoints.deploy("iris", version=1)
        ws.client.register_model("alltypes", alltypes, sample=AX)
        ws.client.workspace.endpoints.deploy("alltypes", version=1)
        with running_server(ws.env, tmp) as srv:
            yield SharedServer(ws, srv, iris, X, alltypes, AX)
