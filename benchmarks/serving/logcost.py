"""What the prediction log costs, measured inside one server process.

    python benchmarks/serving/logcost.py [--servers 6] [--cycles 6] [--burst 2]

``run.py`` compares ``lockgate`` with ``lockgate-nolog``: two processes. Identical server
processes differ by up to ~10% in throughput for their whole life on a shared VM, so that
comparison carries a process-to-process spread as large as the effect it looks for. Here
one ``lockgate server`` process serves the same model version on two endpoints, ``bench``
(logged, as every endpoint is) and ``bench-nolog``, whose requests skip the prediction log
(a benchmark-only subclass of the data plane, below: Lockgate itself has no per-endpoint
switch). Bursts alternate between the two endpoints of the same process, in an order
reversed every cycle, so the process's own speed, the machine's drifts and everything but
the log are the same on both sides.

Each server is a fresh process (``--servers`` of them, one after another). Per server and
workload (single-row at 1 and 32 connections, 100-row batches at 8, as in ``run.py``):
warm-up, then ``--cycles`` pairs of ``--burst``-second wrk bursts; the figure is the median
over cycles of logged/not-logged throughput, and the result the median over servers with
the distribution-free 95% confidence interval of that median (from 6 servers). Also
printed: the server's CPU per request on each side (every thread: the log's writer
included) and the log's cost in CPU microseconds per request.

The log's own background work belongs to the logged endpoint but runs on the event loop's
timer and the writer thread: bursts follow each other without a gap, so the write of the
last half second of a logged burst lands in the next burst, which is the other endpoint's
in half of the cycles. With 2-second bursts that understates the log's cost by at most an
eighth of its write cycles, which are themselves 1-3 ms per 2,000 records on the loop.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

NOLOG = "bench-nolog"


def serve(port: int) -> None:
    """The child: ``lockgate server`` whose data plane skips the log for ``NOLOG``."""
    import lockgate.serving.dataplane as dp
    from lockgate.server import run
    from lockgate.settings import Settings

    skip: contextvars.ContextVar[bool] = contextvars.ContextVar("skip_log", default=False)

    class Plane(dp.DataPlane):
        """Reads ``predlog`` as None inside requests to ``NOLOG`` (a context variable:
        each request is its own task, so concurrent requests to ``bench`` are logged)."""

        @property  # type: ignore[override]
        def predlog(self) -> Any:
            return None if skip.get() else self._bench_predlog

        @predlog.setter
        def predlog(self, value: Any) -> None:
            self._bench_predlog = value

        async def infer(self, endpoint: str, *args: Any, **kw: Any) -> Any:
            token = skip.set(endpoint == NOLOG)
            try:
                return await super().infer(endpoint, *args, **kw)
            finally:
                skip.reset(token)

    dp.DataPlane = Plane  # type: ignore[misc]  # server.build imports it at call time
    run(Settings(), port=port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", type=int, default=6, help="fresh server processes")
    p.add_argument("--cycles", type=int, default=6, help="burst pairs per server and workload")
    p.add_argument("--burst", type=int, default=2, help="seconds per burst (whole: wrk)")
    p.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per endpoint")
    p.add_argument("--workloads", default="", help="comma-separated (default: all)")
    p.add_argument("--json", type=Path, help="write the figures to this file")
    p.add_argument("--workdir", type=Path)
    p.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0

    import shutil

    import run

    wrk = shutil.which("wrk")
    if wrk is None:
        p.error("wrk not found (apt-get install -y wrk)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lockgate-logcost-"))
    work.mkdir(parents=True, exist_ok=True)
    info = run.machine()
    print(json.dumps(info, indent=1), flush=True)
    model, X, _ = run.train(work)
    home = run.lockgate_home(work, "home", model, X, batching=False)
    env = {**os.environ, "LOCKGATE_HOME": str(home)}
    deploy = [sys.executable, "-m", "lockgate.cli", "deploy", run.MODEL, "--version", "1"]
    run.run_checked([*deploy, "--endpoint", NOLOG, "--no-batching"], env)
    wanted = {x for x in args.workloads.split(",") if x}
    workloads = [w for w in run.WORKLOADS if not wanted or w.name in wanted]
    load = run.Load(wrk, work)

    #: per workload: per server, per cycle, (logged, not logged) burst figures
    got: dict[str, list[list[tuple[dict[str, float], dict[str, float]]]]] = {
        w.name: [] for w in workloads
    }
    for srv in range(args.servers):
        port = run.free_port()
        base = f"http://127.0.0.1:{port}"
        server = run.System(
            "server",
            f"{base}/v2/models/{run.MODEL}/infer",
            f"{base}/v2/health/ready",
            "oip",
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)],
            env,
            work / "server.log",
            settle_url=f"{base}/api/v1/health",
            clean=[home / "predictions"],
        )
        server.start()
        try:
            logged = server
            skipped = run.System(
                "nolog",
                f"{base}/v2/models/{NOLOG}/infer",
                server.ready_url,
                "oip",
                [],
                {},
                server.log,
                proc=server.proc,
            )
            if srv == 0:
                run.validate([logged, skipped], model, X)
            print(f"server {srv + 1}/{args.servers}", flush=True)
            for w in workloads:
                for s in (logged, skipped):
                    load.run(s, w, X, args.warmup)
                pairs = []
                for c in range(args.cycles):
                    order = (logged, skipped) if c % 2 == 0 else (skipped, logged)
                    figs = {s.name: load.run(s, w, X, args.burst) for s in order}
                    pairs.append((figs["server"], figs["nolog"]))
                got[w.name].append(pairs)
                r = statistics.median(a["req_s"] / b["req_s"] for a, b in pairs)
                dcpu = statistics.median(a["cpu_us_req"] - b["cpu_us_req"] for a, b in pairs)
                on = statistics.median(a["req_s"] for a, _ in pairs)
                off = statistics.median(b["req_s"] for _, b in pairs)
                print(
                    f"  {w.name:12} logged {on:8,.0f} req/s, not logged {off:8,.0f} req/s: "
                    f"{r:.3f}x, log cost {1 - r:+.1%}; CPU {dcpu:+.1f} us/req",
                    flush=True,
                )
        finally:
            server.stop()

    print("\nprediction log cost, one process (logged vs not-logged endpoint):")
    out: dict[str, Any] = {"machine": info, "args": vars(args) | {"workdir": str(work)}}
    for w in workloads:
        per = [
            statistics.median(a["req_s"] / b["req_s"] for a, b in pairs) for pairs in got[w.name]
        ]
        cpu = [
            statistics.median(a["cpu_us_req"] - b["cpu_us_req"] for a, b in pairs)
            for pairs in got[w.name]
        ]
        cost = 1 - statistics.median(per)
        print(
            f"  {w.name:12} {cost:+.1%} of throughput ({run.spread(per, '+.1%', -1.0, 1.0)}); "
            f"CPU {statistics.median(cpu):+.1f} us/req"
        )
        out[w.name] = {"ratio_per_server": per, "cpu_us_per_server": cpu, "cost": cost}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    shutil.rmtree(work / "trash", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
