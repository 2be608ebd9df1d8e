"""Shadow cost: does a shadow that always fails (or is slow and fails) change the primary's
latency?

One ``lockgate server`` serves a scikit-learn LogisticRegression (v1, the primary). The
benchmark switches the endpoint between three traffic policies through the rollout API, in
interleaved rounds, and measures the primary's answers under closed-loop load
(``benchmarks/serving/loadgen.py``, a separate process) for each:

* ``none``: the primary alone (the floor of this comparison);
* ``fail``: plus a shadow (100 % of requests) whose model raises at once;
* ``slow-fail``: plus a shadow whose model sleeps 20 ms and then raises, which saturates the
  shadow pool (2 threads): copies beyond ``LOCKGATE_SHADOW_QUEUE`` are skipped and counted.

Reported per policy: median p50 / p99 / throughput over the rounds, the p99 ratio to ``none``
in the same round, and the round-to-round spread of ``none`` itself (the noise). Every answer
must be a 200; the script exits 1 otherwise.

    . .venv/bin/activate
    python benchmarks/shadow/run.py --rounds 5 --duration 8 --connections 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent
LOADGEN = HERE.parent / "serving" / "loadgen.py"
SHADOW_OF = {"none": None, "fail": 2, "slow-fail": 3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(home: Path) -> np.ndarray:
    """v1: LogisticRegression; v2: raises at once; v3: sleeps 20 ms, then raises."""
    sys.path.insert(0, str(HERE))
    from failing_runtime import FailingSpec

    import lockgate
    from lockgate.registry.signature import Signature
    from lockgate.runtimes import register_runtime

    register_runtime("failing", "failing_runtime:FailingRuntime")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 4))
    y = (X @ np.array([1.0, -0.5, 0.3, 0.0]) > 0).astype(np.int64)
    names = ["x1", "x2", "x3", "x4"]
    sample = {n: X[:50, i] for i, n in enumerate(names)}
    sig = Signature.infer(sample, outputs=np.zeros(2, dtype=np.int64))
    with lockgate.connect(home) as client:
        client.register_model("m", LogisticRegression().fit(X, y), sample=sample)
        for spec in (FailingSpec({"raise": True}), FailingSpec({"work_ms": 20, "raise": True})):
            client.register_model("m", spec, flavor="failing", signature=sig)
        client.workspace.endpoints.deploy("m", version=1)
    return X


def start_server(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LOCKGATE_HOME": str(home),
        "LOCKGATE_RUNTIMES": "failing=failing_runtime:FailingRuntime",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "LOCKGATE_POLL_INTERVAL": "0.2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "lockgate.cli", "server", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server not ready:\n{log.read_text()}")


def set_policy(url: str, shadow: int | None) -> None:
    """Abort the active rollout, then start a shadow rollout (1 h interval: no analysis acts
    during the measurement) and wait until the server routes by it."""
    httpx.post(f"{url}/api/v1/rollouts/m/abort", json={"reason": "benchmark"}, timeout=30)
    if shadow is not None:
        r = httpx.post(
            f"{url}/api/v1/rollouts",
            json={"endpoint": "m", "candidate": shadow, "strategy": "shadow", "interval": "1h"},
            timeout=30,
        )
        r.raise_for_status()
    want = {} if shadow is None else {str(shadow): 100.0}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        serving = httpx.get(f"{url}/api/v1/endpoints/m", timeout=10).json().get("serving") or {}
        if serving.get("shadows") == want:
            return
        time.sleep(0.1)
    raise SystemExit(f"policy with shadow {shadow} not applied")


def load(url: str, bodies: Path, connections: int, duration: float) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            str(LOADGEN),
            f"{url}/v2/models/m/infer",
            str(bodies),
            str(connections),
            str(duration),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))
    return dict(json.loads(line.removeprefix("WRKJSON ")))


def shadow_counts(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[str, float] = {"shadow_failed": 0.0, "shadow_skipped": 0.0}
    for line in text.splitlines():
        if line.startswith("lockgate_requests_total{") and 'role="shadow"' in line:
            if 'code="200"' not in line:
                out["shadow_failed"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("lockgate_shadow_skipped_total{"):
            out["shadow_skipped"] += float(line.rsplit(" ", 1)[1])
    return out


def drained(url: str) -> dict[str, float]:
    """Shadow counters once they stop moving (copies queued by the previous policy done)."""
    last = shadow_counts(url)
    while True:
        time.sleep(0.3)
        now = shadow_counts(url)
        if now == last:
            return now
        last = now


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lockgate-shadow-") as tmp:
        work = Path(tmp)
        X = prepare(work / "home")
        bodies = work / "bodies.jsonl"
        with bodies.open("w") as f:
            for row in X[:500]:
                doc = {
                    "inputs": [
                        {
                            "name": "input-0",
                            "shape": [1, 4],
                            "datatype": "FP64",
                            "data": row.tolist(),
                        }
                    ]
                }
                f.write(json.dumps(doc) + "\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(work / "home", port, work / "server.log")
        results: dict[str, list[dict[str, float]]] = {k: [] for k in SHADOW_OF}
        try:
            set_policy(url, None)
            load(url, bodies, args.connections, 2.0)  # warm up
            names = list(SHADOW_OF)
            for r in range(args.rounds):
                for name in names[r % 3 :] + names[: r % 3]:  # rotate the order per round
                    set_policy(url, SHADOW_OF[name])
                    before = drained(url)
                    res = load(url, bodies, args.connections, args.duration)
                    after = drained(url)
                    res.update({k: after[k] - before[k] for k in after})
                    res["round"] = r
                    results[name].append(res)
                    print(
                        f"round {r} {name:9s} p50 {res['p50'] / 1000:6.2f} ms  p99 "
                        f"{res['p99'] / 1000:6.2f} ms  {res['requests'] / args.duration:7.0f}"
                        f" req/s  errors {res['errors_status']}  shadow failed "
                        f"{res['shadow_failed']:.0f} skipped {res['shadow_skipped']:.0f}",
                        flush=True,
                    )
        finally:
            proc.terminate()
            proc.wait(60)
    return report(results, args)


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> int:
    base = {r["round"]: r for r in results["none"]}
    none_p99 = [r["p99"] for r in results["none"]]
    med_none = statistics.median(none_p99)
    noise = (min(none_p99) / med_none, max(none_p99) / med_none)
    summary: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "settings": vars(args) | {"json": str(args.json) if args.json else None},
        "noise_p99_none_vs_its_median": noise,
        "policies": {},
    }
    errors = 0
    print(f"\nnoise: p99 of 'none' rounds spans {noise[0]:.2f}x-{noise[1]:.2f}x of its median")
    print(
        "| policy | p50 ms | p99 ms | req/s | p99 / none (same round): median [min, max] |"
        " shadow copies failed | skipped |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, rows in results.items():
        ratios = [r["p99"] / base[r["round"]]["p99"] for r in rows]
        errors += int(sum(r["errors_status"] for r in rows))
        doc = {
            "p50_ms": statistics.median(r["p50"] for r in rows) / 1000,
            "p99_ms": statistics.median(r["p99"] for r in rows) / 1000,
            "rps": statistics.median(r["requests"] for r in rows) / args.duration,
            "p99_ratio": [statistics.median(ratios), min(ratios), max(ratios)],
            "shadow_failed": sum(r["shadow_failed"] for r in rows),
            "shadow_skipped": sum(r["shadow_skipped"] for r in rows),
            "errors": sum(r["errors_status"] for r in rows),
            "rounds": rows,
        }
        summary["policies"][name] = doc
        q = doc["p99_ratio"]
        print(
            f"| {name} | {doc['p50_ms']:.2f} | {doc['p99_ms']:.2f} | {doc['rps']:.0f} | "
            f"{q[0]:.2f} [{q[1]:.2f}, {q[2]:.2f}] | {doc['shadow_failed']:.0f} | "
            f"{doc['shadow_skipped']:.0f} |"
        )
    print(f"failed primary answers: {errors}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
