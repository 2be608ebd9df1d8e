"""Instructions and simulated cache misses per request, counted by valgrind: what the data
plane and its prediction log cost, free of the shared VM's noise.

    python benchmarks/serving/instructions.py [--rows 1 100] [--requests 2500] [--json F] \\
        [--workdir D]

Throughput on this 2-core VM moves by ±10% between identical server processes and by more
over minutes (docs/performance.md), which hides effects of a few percent. Instructions do
not move: callgrind counts the same total for the same code and inputs, whatever else the
machine is doing. So for each workload (``--rows`` per request) this runs three variants,
each in its own process under ``valgrind --tool=callgrind --cache-sim=yes``:

* ``floor``: the floor's ASGI app (``floor_app.py``), as in ``run.py``;
* ``lockgate``: the real ``lockgate server`` app (``server.build``), the model registered
  and deployed, validation, metrics and the prediction log on: the defaults;
* ``lockgate-nolog``: the same with ``LOCKGATE_LOG_PREDICTIONS=false``.

Each process drives its app with in-memory ASGI messages on one event loop (as
``hotpath.py``), 64 distinct bodies in turn: a warm-up of 300 requests, then ``--requests``
measured ones. The prediction log's write cycle, which the event loop's timer runs every
``flush_interval`` in a server, runs every ``--cycle`` requests (1,250: half a second at
2,500 requests/s), and the measured part ends with ``flush()``, so every record it served is
written and its writer thread's work is counted (callgrind counts every thread). Counting is
switched on for the warm-up and zeroed after it, through callgrind's client requests in a
small C library compiled here with gcc, so the interpreter's start-up (under valgrind, a
few minutes) runs uninstrumented and is never counted.

Printed per workload and variant: instructions (Ir), first-level data-cache misses
(D1mr + D1mw) and last-level misses (DLmr + DLmw: lines that came from memory) per request,
as callgrind simulates the caches of this CPU; then the ratios: Lockgate to the floor and
the log's cost (``lockgate`` over ``lockgate-nolog``, minus one). What it does not count:
the kernel's work (socket calls, the log's file writes and fsyncs), HTTP parsing in uvicorn
(the same for every variant), and time, which a cache miss costs and an instruction does
not evenly. Read it beside ``run.py`` and ``logcost.py``, not instead of them. Needs valgrind
and gcc (``apt-get install -y valgrind gcc``); about 6 minutes per workload on 2 cores.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

VARIANTS = ("floor", "lockgate", "lockgate-nolog")
WARMUP = 300
#: the last-level cache callgrind simulates (size, ways, line): this VM's L3, 32 MiB, 16-way
#: (left to itself, callgrind read it as 256 MiB, direct-mapped)
LL_CACHE = "33554432,16,64"

CONTROL_C = r"""
#include <valgrind/callgrind.h>
void lg_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void lg_zero(void) { CALLGRIND_ZERO_STATS; }
void lg_dump(void) { CALLGRIND_DUMP_STATS_AT("measured"); }
"""


def build_control(work: Path) -> Path:
    """The client-request library (callgrind's macros are inline assembly, so C)."""
    src, lib = work / "cgctl.c", work / "cgctl.so"
    src.write_text(CONTROL_C)
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def child(variant: str, rows: int, requests: int, cycle: int, lib: Path, home: Path) -> None:
    """Under callgrind: drive one variant, counting only the measured requests."""
    import gc

    from floor_app import make_app
    from hotpath import drive, oip_bodies, train

    ctl = ctypes.CDLL(str(lib))
    model, X = train()
    bodies = oip_bodies(X, rows)
    path = "/v2/models/bench/infer"
    predlog: Any = None
    startup: list[Any] = []  # the app's start-up hooks (the floor has none)
    if variant == "floor":
        app = make_app(model)
    else:
        from lockgate.client import connect
        from lockgate.runtimes.threads import limit_inference_threads
        from lockgate.server import build
        from lockgate.settings import Settings

        limit_inference_threads(1)  # as `lockgate server` (LOCKGATE_INFERENCE_THREADS)
        with connect(home) as client:
            client.register_model("bench", model, sample=X[:200])
            client.workspace.endpoints.deploy("bench", version=1)
        os.environ["LOCKGATE_HOME"] = str(home)
        settings = Settings(home=home, log_predictions=variant == "lockgate", log_flush_interval=60)
        server = build(settings)
        app, predlog = server.app, server.predlog
        startup = server.app.on_startup

    async def run() -> None:
        for hook in startup:
            await hook()
        gc.collect()
        gc.freeze()  # as `lockgate server` once it is up
        ctl.lg_start()
        await drive(app, path, bodies, WARMUP)
        if predlog is not None:
            predlog.flush()
        ctl.lg_zero()
        done = 0
        while done < requests:
            n = min(cycle, requests - done)
            await drive(app, path, bodies, n)
            done += n
            if predlog is not None:
                predlog._loop_cycle()  # what the loop's timer does every flush_interval
        if predlog is not None:
            predlog.flush()
        ctl.lg_dump()
        os._exit(0)  # the counts are out; skip the shutdown

    import uvloop

    uvloop.run(run())


def measured_totals(dumps: list[Path]) -> dict[str, int]:
    """The event totals of the dump made at the end of the measured requests."""
    for out in dumps:
        text = out.read_text()
        if "Trigger: Client Request: measured" not in text:
            continue  # the dump at the end of the process
        events: list[str] = []
        for line in text.splitlines():
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("summary:") and events:
                return dict(zip(events, map(int, line.split()[1:]), strict=True))
    raise SystemExit(f"no dump of the measured requests among {[d.name for d in dumps]}")


def measure(
    variant: str, rows: int, requests: int, cycle: int, lib: Path, work: Path
) -> dict[str, float]:
    tag = f"{variant}-{rows}"
    out = work / f"callgrind.{tag}.out"
    home = work / f"home-{tag}"
    shutil.rmtree(home, ignore_errors=True)  # a kept --workdir: start from scratch
    for old in work.glob(f"callgrind.{tag}.out*"):
        old.unlink()
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--cache-sim=yes",
        f"--LL={LL_CACHE}",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        variant,
        "--rows",
        str(rows),
        "--requests",
        str(requests),
        "--cycle",
        str(cycle),
        "--lib",
        str(lib),
        "--home",
        str(home),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dumps = sorted(work.glob(f"callgrind.{tag}.out*"))
    if proc.returncode != 0 or not dumps:
        raise SystemExit(f"{tag} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    t = measured_totals(dumps)
    return {
        "Ir": t["Ir"] / requests,
        "D1": (t.get("D1mr", 0) + t.get("D1mw", 0)) / requests,
        "LL": (t.get("DLmr", 0) + t.get("DLmw", 0)) / requests,
        "LLw": t.get("DLmw", 0) / requests,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    p.add_argument("--requests", type=int, default=2500)
    p.add_argument("--cycle", type=int, default=1250, help="requests per log write cycle")
    p.add_argument("--json", type=Path)
    p.add_argument(
        "--workdir", type=Path, help="keep the callgrind dumps here (callgrind_annotate them)"
    )
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--lib", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.rows[0], args.requests, args.cycle, args.lib, args.home)
        return 0
    for tool in ("valgrind", "gcc"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install -y valgrind gcc")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lockgate-instructions-"))
    work.mkdir(parents=True, exist_ok=True)
    lib = build_control(work)
    jobs = [(v, r) for r in args.rows for v in VARIANTS]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futs = {
            job: pool.submit(measure, *job, args.requests, args.cycle, lib, work) for job in jobs
        }
        res = {job: fut.result() for job, fut in futs.items()}
    report: dict[str, Any] = {"requests": args.requests, "cycle": args.cycle, "workloads": {}}
    for rows in args.rows:
        by = {v: res[(v, rows)] for v in VARIANTS}
        lg, nolog, floor = by["lockgate"], by["lockgate-nolog"], by["floor"]
        print(f"{rows}-row requests, {args.requests} measured, per request:")
        for v, m in by.items():
            print(
                f"  {v:15} {m['Ir']:11,.0f} instructions  {m['D1']:8,.0f} D1 misses  "
                f"{m['LL']:7,.1f} LL misses ({m['LLw']:,.1f} of them writes)"
            )
        ratios = {
            "lockgate_x_floor": lg["Ir"] / floor["Ir"],
            "nolog_x_floor": nolog["Ir"] / floor["Ir"],
            "log_cost": lg["Ir"] / nolog["Ir"] - 1,
            "log_ll_misses": lg["LL"] - nolog["LL"],
        }
        print(
            f"  instructions: lockgate {ratios['lockgate_x_floor']:.3f}x the floor "
            f"(log off {ratios['nolog_x_floor']:.3f}x); the log "
            f"{ratios['log_cost']:+.1%} ({lg['Ir'] - nolog['Ir']:+,.0f} per request, "
            f"{ratios['log_ll_misses']:+,.1f} LL misses)"
        )
        report["workloads"][str(rows)] = {"variants": by, **ratios}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
