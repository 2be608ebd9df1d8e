"""Start-up order: the data plane answers ready first and the control plane (``/api/v1``, the
rollout controller, the monitors) is wired just after; nothing asked of the control plane
in between fails, and a SIGTERM in between still stops the server cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests import loopback
from tests.serving.conftest import start_server

from lockgate.client import Client
from lockgate.server import preload_frameworks
from lockgate.settings import Settings
from lockgate.web.app import LateApp

PATHS = ("/api/v1/health", "/api/v1/openapi.json", "/api/v1/endpoints", "/metrics")


def test_control_plane_answers_from_the_first_request(
    deployed: Client, env: dict[str, str], tmp_path: Path
) -> None:
    srv = start_server(env, tmp_path)
    try:
        # all at once, straight after ready: they wait for the control plane, none fails
        with ThreadPoolExecutor(len(PATHS)) as pool:
            answers = list(pool.map(lambda p: loopback.get(f"{srv.url}{p}", timeout=60), PATHS))
        for path, r in zip(PATHS, answers, strict=True):
            assert r.status_code == 200, (path, r.text)
        health, openapi, endpoints, metrics = answers
        assert health.json()["ready"] is True
        assert "/api/v1/models" in openapi.json()["paths"]
        assert [e["name"] for e in endpoints.json()["endpoints"]] == ["iris"]
        # the controller's series are there from the first scrape
        assert "lockgate_controller_leader" in metrics.text
        assert "lockgate_requests_total" in metrics.text
    finally:
        assert srv.stop() == 0, srv.log()
    assert "failed to start" not in srv.log()


def test_sigterm_right_after_ready_exits_0(
    deployed: Client, env: dict[str, str], tmp_path: Path
) -> None:
    srv = start_server(env, tmp_path)
    assert srv.stop(signal.SIGTERM) == 0, srv.log()
    assert "Traceback" not in srv.log(), srv.log()


def test_preload_imports_the_deployed_flavors_frameworks(
    deployed: Client, home: Path, database_url: str
) -> None:
    settings = Settings(home=home, database_url=database_url)
    assert preload_frameworks(settings) == ["scipy.special", "sklearn.base"]


def test_preload_is_best_effort(tmp_path: Path) -> None:
    """A new (not yet migrated) database or an unusable URL preloads nothing, quietly."""
    new = Settings(home=tmp_path / "new", database_url=f"sqlite:///{tmp_path / 'new.db'}")
    assert preload_frameworks(new) == []
    bad = Settings(home=tmp_path / "bad", database_url="mysql://nowhere/db")
    assert preload_frameworks(bad) == []


# -- LateApp: an ASGI app built after start-up ----------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls.append(scope["path"])


def test_late_app_requests_wait_for_the_build() -> None:
    async def scenario() -> list[str]:
        inner = _Recorder()
        gate = asyncio.Event()

        async def build() -> Any:
            await gate.wait()
            return inner

        late = LateApp(build)
        await late.settle()  # nothing started: returns at once, starts nothing
        late.start()
        pending = [asyncio.ensure_future(late({"path": f"/api/{i}"}, None, None)) for i in range(3)]
        await asyncio.sleep(0.01)
        assert not any(t.done() for t in pending) and inner.calls == []
        gate.set()
        await asyncio.gather(*pending)
        await late({"path": "/api/after"}, None, None)
        return inner.calls

    assert sorted(asyncio.run(scenario())) == ["/api/0", "/api/1", "/api/2", "/api/after"]


def test_late_app_build_failure_is_reported_to_the_server() -> None:
    async def scenario() -> None:
        async def build() -> Any:
            raise RuntimeError("boom")

        late = LateApp(build)
        failures: list[BaseException] = []
        late.on_failure = failures.append  # lockgate.server.run stops the server on it
        late.start()
        await late.settle()  # the failure is logged and reported, not raised here
        assert [str(e) for e in failures] == ["boom"]
        with pytest.raises(RuntimeError, match="boom"):
            await late({"path": "/api/x"}, None, None)

    asyncio.run(scenario())


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: BLAS starts no worker thread")
def test_the_server_limits_the_model_libraries_threads(
    deployed: Client, env: dict[str, str], tmp_path: Path
) -> None:
    """LOCKGATE_INFERENCE_THREADS (default 1): OpenBLAS starts no worker threads in the
    server; 0 leaves the libraries their one thread per core."""
    counts = {}
    for value in ("1", "0"):
        srv = start_server(env, tmp_path, extra_env={"LOCKGATE_INFERENCE_THREADS": value})
        try:  # once the control plane is up too: its start-up thread is gone
            assert loopback.get(f"{srv.url}/api/v1/health", timeout=60).status_code == 200
            counts[value] = len(os.listdir(f"/proc/{srv.proc.pid}/task"))
        finally:
            assert srv.stop() == 0, srv.log()
    # numpy's and SciPy's OpenBLAS each start (cores - 1) workers when not limited
    assert counts["0"] - counts["1"] >= (os.cpu_count() or 1) - 1, counts
