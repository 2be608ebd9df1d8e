"""In-process cost of one inference request through Lockgate's ASGI stack, without sockets.

    python benchmarks/serving/hotpath.py [--requests 20000] [--rows 1] [--rounds 5]

Drives ``server.build(...).app`` (the real ``lockgate server`` app: dispatcher, OIP codec,
validation, routing, prediction, metrics and, unless ``--no-log``, the prediction log) with
in-memory ASGI ``receive``/``send`` callables, and the floor's ASGI app the same way, on one
event loop. Reports process CPU microseconds per request (user + system, every thread: the
prediction log writer included) and wall microseconds per request, best of ``--rounds``.
Because it measures CPU time, not throughput, the figures hold up on a busy machine; use it
to measure a hot-path change before and after, and ``run.py`` for the end-to-end figures.

Its driver never yields to the event loop inside a round (the in-memory messages are ready at
once), so the prediction log's write timer on the loop runs only between rounds, and a thread
waiting for the GIL starves far longer than in a server; read its log-on figures as the
per-request cost, not the writes' (``threads.py`` measures those).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 1),
        "client": ("127.0.0.1", 2),
    }


async def drive(app: App, path: str, bodies: list[bytes], n: int) -> tuple[float, float]:
    """CPU and wall seconds for ``n`` sequential requests."""
    sc = scope(path)
    status: list[int] = []

    async def send(msg: dict[str, Any]) -> None:
        if msg["type"] == "http.response.start":
            status.append(msg["status"])

    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        body = bodies[i % len(bodies)]

        async def receive(body: bytes = body) -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        await app(dict(sc), receive, send)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    if any(s != 200 for s in status):
        raise SystemExit(f"non-200 answers: {sorted(set(status))}")
    return cpu, wall


def train() -> tuple[Any, np.ndarray]:
    """The benchmark's model: a LogisticRegression on 10 synthetic float features."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(42)
    X = rng.normal(size=(5000, 10))
    y = (X @ rng.normal(size=10) > 0).astype(np.int64)
    return LogisticRegression().fit(X, y), X


def oip_bodies(X: np.ndarray, rows: int) -> list[bytes]:
    """64 distinct OIP requests of ``rows`` rows each (one FP64 tensor)."""
    bodies = []
    for i in range(64):
        part = X[i * 7 : i * 7 + rows]
        doc = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(part), 10],
                    "datatype": "FP64",
                    "data": part.ravel().tolist(),
                }
            ]
        }
        bodies.append(orjson.dumps(doc))
    return bodies


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--rows", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-log", action="store_true", help="LOCKGATE_LOG_PREDICTIONS=false")
    p.add_argument("--batching", action="store_true")
    p.add_argument("--profile", type=int, default=0, help="cProfile, print the top N")
    p.add_argument("--gc-stats", action="store_true", help="time garbage collections")
    args = p.parse_args()

    from floor_app import make_app

    from lockgate.client import connect
    from lockgate.server import build
    from lockgate.settings import Settings

    model, X = train()
    home = Path(tempfile.mkdtemp(prefix="lockgate-hotpath-"))
    with connect(home) as client:
        client.register_model("bench", model, sample=X[:200])
        client.workspace.endpoints.deploy("bench", version=1, batching={"enabled": args.batching})
    os.environ["LOCKGATE_HOME"] = str(home)
    settings = Settings(home=home, log_predictions=not args.no_log)
    server = build(settings)
    bodies = oip_bodies(X, args.rows)
    floor = make_app(model)
    path = "/v2/models/bench/infer"

    async def run() -> None:
        for hook in server.app.on_startup:
            await hook()
        if args.gc_stats:
            import gc

            gc_time = [0.0, 0, 0.0]

            def on_gc(phase: str, info: dict[str, int]) -> None:
                if phase == "start":
                    gc_time[2] = time.perf_counter()
                else:
                    gc_time[0] += time.perf_counter() - gc_time[2]
                    gc_time[1] += 1

            gc.callbacks.append(on_gc)
        try:
            await drive(server.app, path, bodies, 2000)  # warm-up
            await drive(floor, path, bodies, 2000)
            if args.profile:
                import cProfile
                import pstats

                prof = cProfile.Profile()
                prof.enable()
                await drive(server.app, path, bodies, args.requests)
                prof.disable()
                pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)
                pstats.Stats(prof).sort_stats("cumulative").print_stats(args.profile)
                return
            res: dict[str, list[tuple[float, float]]] = {"floor": [], "lockgate": []}
            for _ in range(args.rounds):
                res["floor"].append(await drive(floor, path, bodies, args.requests))
                res["lockgate"].append(await drive(server.app, path, bodies, args.requests))
                await asyncio.sleep(0.6)  # let the log writer catch up inside the round
            n = args.requests
            f_cpu = min(c for c, _ in res["floor"]) / n * 1e6
            f_wall = min(w for _, w in res["floor"]) / n * 1e6
            l_cpu = min(c for c, _ in res["lockgate"]) / n * 1e6
            l_wall = min(w for _, w in res["lockgate"]) / n * 1e6
            if args.gc_stats:
                print(
                    f"gc: {gc_time[1]} collections, {gc_time[0] * 1e3:.1f} ms, "
                    f"{gc.get_count()}, frozen {gc.get_freeze_count()}"
                )
            print(
                f"rows/request {args.rows}, log {'off' if args.no_log else 'on'}, "
                f"batching {'on' if args.batching else 'off'}"
            )
            print(f"  floor    cpu {f_cpu:7.1f} us/req  wall {f_wall:7.1f} us/req")
            print(
                f"  lockgate cpu {l_cpu:7.1f} us/req  wall {l_wall:7.1f} us/req  "
                f"(+{l_cpu - f_cpu:.1f} us cpu, +{l_wall - f_wall:.1f} us wall)"
            )
        finally:
            for hook in server.app.on_shutdown:
                await hook()

    try:
        import uvloop  # the server's loop when installed

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


if __name__ == "__main__":
    main()
