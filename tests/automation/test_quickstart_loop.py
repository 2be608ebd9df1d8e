"""`lockgate quickstart`, the README's first command, on a fresh embedded workspace: it exits 0
without input and shows the whole loop (drift, alert, retrain, gates, shadow, canary,
promotion), the KPIs and a verified event chain."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.skipif(
    bool(os.environ.get("LOCKGATE_TEST_DATABASE_URL")),
    reason="the quickstart always runs on the embedded SQLite default",
)
def test_quickstart_shows_the_closed_loop_unattended(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    env["LOCKGATE_HOME"] = str(tmp_path / "home")
    started = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "lockgate.cli", "quickstart", "--json", "--requests", "100",
         "--port", str(_free_port())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=420,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert doc["failed"] == 0
    loop = doc["loop"]
    assert loop["ok"], r.stderr[-3000:]
    assert len(loop["steps"]) == 7
    assert loop["run"]["status"] == "rolling_out" and loop["run"]["gates"] == "pass"
    assert doc["chain"]["ok"] is True
    assert doc["kpis"]["deployment_frequency"]["deployments"] >= 2
    assert "promoted: the candidate is champion" in r.stderr
    assert seconds < 300
