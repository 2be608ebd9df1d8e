"""Where a `lockgate server`'s CPU goes, per thread: an A/B harness for the prediction log.

    python benchmarks/serving/threads.py batch100-c8 [--duration 5] [--rounds 3] \\
        [--variant NAME:ENV=VALUE,ENV=VALUE ...]

Starts one `lockgate server` per variant on the same workspace (the model of ``run.py``,
registered and deployed once) -- by default ``log`` (the defaults) and ``nolog``
(``LOCKGATE_LOG_PREDICTIONS=false``), plus any ``--variant`` (say
``q400k:LOCKGATE_LOG_QUEUE_SIZE=400000``) -- and drives them with wrk in interleaved rounds.
For each it reads, from ``/proc/<pid>/task``, the CPU (user and system apart) of the event-loop
thread and of all other threads (the prediction log's writer among them), the event-loop
thread's context switches and minor page faults, per request. Prints medians over the rounds
and each variant's throughput relative to ``nolog``. Needs wrk (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402

FIELDS = (
    "req_s",
    "main_us",
    "main_sys_us",
    "other_us",
    "other_sys_us",
    "vol_cs",
    "invol_cs",
    "minflt",
)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the main thread and of all other threads (total and system time)."""
    out = dict.fromkeys(("main", "main_sys", "other", "other_sys"), 0.0)
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        f = raw[raw.rindex(")") + 2 :].split()
        key = "main" if tid == str(pid) else "other"
        out[key] += (int(f[11]) + int(f[12])) / bench._TICK
        out[key + "_sys"] += int(f[12]) / bench._TICK
    return out


def switches(pid: int) -> tuple[int, int, int]:
    """(voluntary, involuntary) context switches of the main thread and minor page faults
    of the process (every thread)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    minflt = int(raw[raw.rindex(")") + 2 :].split()[7])
    got: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines():
        if "ctxt_switches" in line:
            k, v = line.split(":")
            got[k.strip()] = int(v)
    return got["voluntary_ctxt_switches"], got["nonvoluntary_ctxt_switches"], minflt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("workload", choices=[w.name for w in bench.WORKLOADS])
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--variant", action="append", default=[], metavar="NAME:ENV=V,ENV=V")
    p.add_argument("--workdir", type=Path)
    args = p.parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    variants: dict[str, dict[str, str]] = {
        "log": {},
        "nolog": {"LOCKGATE_LOG_PREDICTIONS": "false"},
    }
    for spec in args.variant:
        name, _, env = spec.partition(":")
        variants[name] = dict(kv.split("=", 1) for kv in env.split(",") if kv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lockgate-threads-"))
    work.mkdir(parents=True, exist_ok=True)
    wl = next(w for w in bench.WORKLOADS if w.name == args.workload)
    model, X, _ = bench.train(work)
    home = work / "home"
    if not home.exists():
        home = bench.lockgate_home(work, "home", model, X, batching=False)
    load = bench.Load(wrk, work)
    systems = {n: bench.lockgate_system("lg-" + n, home, work, env) for n, env in variants.items()}
    results: dict[str, list[dict[str, float]]] = {n: [] for n in variants}
    names = list(systems)
    for rnd in range(args.rounds):
        # one server alive at a time, started afresh each round, the order rotated (two
        # identical servers kept running side by side differed by ~10-15% here; run.py
        # keeps them all but freezes the idle ones instead)
        for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
            s = systems[name]
            s.start()
            try:
                load.run(s, wl, X, 2)  # warm-up
                assert s.proc is not None
                pid = s.proc.pid
                c0, s0 = thread_cpu(pid), switches(pid)
                r = load.run(s, wl, X, args.duration)
                c1, s1 = thread_cpu(pid), switches(pid)
            finally:
                s.stop()
            n = r["requests"]
            results[name].append(
                {
                    "req_s": r["req_s"],
                    "main_us": (c1["main"] - c0["main"]) / n * 1e6,
                    "main_sys_us": (c1["main_sys"] - c0["main_sys"]) / n * 1e6,
                    "other_us": (c1["other"] - c0["other"]) / n * 1e6,
                    "other_sys_us": (c1["other_sys"] - c0["other_sys"]) / n * 1e6,
                    "vol_cs": (s1[0] - s0[0]) / n,
                    "invol_cs": (s1[1] - s0[1]) / n,
                    "minflt": (s1[2] - s0[2]) / n,
                }
            )
    shutil.rmtree(work / "trash", ignore_errors=True)
    med = {n: {k: statistics.median(x[k] for x in xs) for k in FIELDS} for n, xs in results.items()}
    base = med["nolog"]["req_s"]
    print(f"{args.workload}, {args.rounds} rounds of {args.duration:g} s, medians; us per request")
    for name, m in med.items():
        # each round's own ratio: the machine's speed drifts between rounds (by 20% on a
        # noisy day), which a ratio of medians over all rounds takes in, a paired one not
        paired = sorted(
            x["req_s"] / y["req_s"] for x, y in zip(results[name], results["nolog"], strict=True)
        )
        print(
            f"  {name:10} {m['req_s']:7.0f} req/s ({m['req_s'] / base:5.3f} of nolog; "
            f"per round {statistics.median(paired):5.3f}, {paired[0]:.3f}-{paired[-1]:.3f})  "
            f"event loop {m['main_us']:6.1f} (sys {m['main_sys_us']:5.1f})  "
            f"other threads {m['other_us']:5.1f} (sys {m['other_sys_us']:4.1f})  "
            f"switches {m['vol_cs']:.3f} vol {m['invol_cs']:.3f} invol  "
            f"page faults {m['minflt']:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
