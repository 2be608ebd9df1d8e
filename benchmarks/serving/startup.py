"""Time to ready of ``lockgate server``: process spawn to ``/v2/health/ready`` 200.

    python benchmarks/serving/startup.py [--runs 5] [--floor] [--importtime] [--profile]

Registers a scikit-learn ``LogisticRegression`` (10 float features, saved with skops, the
default) in a temporary workspace, deploys it with ``lockgate deploy``, then starts
``python -m lockgate.cli server --port <free>`` ``--runs`` times, as ``run.py`` does. Each
run reports the wall seconds from spawn to the first 200 of ``/v2/health/ready`` (polled
every 5 ms) and the CPU seconds the server process tree had used by then; then the median,
min and max, and the load average (the figures only mean something next to it). Lockgate's
bytecode is compiled first, as ``pip install`` or any earlier start leaves it (where
``PYTHONDONTWRITEBYTECODE`` is set, an editable install would otherwise compile every module
at each start).

``--floor`` also times the floor of ``run.py`` (``floor_app.py``: uvicorn, the same model
loaded with joblib, no registry, database or validation), one start after each of Lockgate's,
and prints both medians: what the machine itself needs to import scikit-learn and serve.

``--importtime`` adds one start under ``python -X importtime`` and prints the slowest
imports (cumulative) up to ready; ``--profile`` one start under cProfile, printing
the functions with the most cumulative time up to ready (the main thread only: the model
load runs in a worker thread and shows as the event loop waiting).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path

import httpx
import joblib
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import cache_bytecode, floor_system, free_port, tree_cpu  # noqa: E402

MODEL = "bench"
N_FEATURES = 10


def make_home(work: Path) -> Path:
    """A workspace with the model registered as version 1 (skops) and deployed by the CLI."""
    from sklearn.linear_model import LogisticRegression

    from lockgate.client import connect

    rng = np.random.default_rng(42)
    X = rng.normal(size=(2000, N_FEATURES))
    y = (X @ rng.normal(size=N_FEATURES) > 0).astype(np.int64)
    model = LogisticRegression().fit(X, y)
    home = work / "home"
    with connect(home) as client:
        client.register_model(MODEL, model, sample=X[:200])
    joblib.dump(model, work / "model.joblib")  # the floor's copy (see --floor)
    env = {**os.environ, "LOCKGATE_HOME": str(home)}
    cmd = [sys.executable, "-m", "lockgate.cli", "deploy", MODEL, "--version", "1"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"deploy failed:\n{r.stdout}\n{r.stderr}")
    return home


def start_once(
    home: Path, log: Path, python_args: tuple[str, ...] = (), timeout: float = 60
) -> tuple[float, float]:
    """Spawn the server, wait for ready, stop it with SIGTERM; (wall s, CPU s) to ready.
    The server's output up to ready is kept next to ``log`` (suffix ``.ready``)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    env = {**os.environ, "LOCKGATE_HOME": str(home)}
    cmd = [sys.executable, *python_args, "-m", "lockgate.cli", "server", "--port", str(port)]
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = t0 + timeout
        with httpx.Client(timeout=1) as http:
            while time.perf_counter() < deadline:
                if proc.poll() is not None:
                    raise SystemExit(
                        f"server exited with {proc.returncode}:\n"
                        + log.read_text(errors="replace")[-3000:]
                    )
                with suppress(httpx.HTTPError):
                    if http.get(url).status_code == 200:
                        wall, cpu = time.perf_counter() - t0, tree_cpu(proc.pid)
                        log.with_suffix(".ready").write_bytes(log.read_bytes())
                        return wall, cpu
                time.sleep(0.005)
        raise SystemExit(f"not ready within {timeout} s; see {log}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise SystemExit(f"server ignored SIGTERM; see {log}") from None
        if code != 0:
            raise SystemExit(f"server exited with {code} on SIGTERM; see {log}")


def floor_once(work: Path) -> tuple[float, float]:
    """Start the floor once (its model saved by :func:`make_home`); (wall s, CPU s) to ready."""
    system = floor_system(work / "model.joblib", work)
    try:
        wall = system.start(timeout=60)
        return wall, system.info["ready_cpu_s"]
    finally:
        system.stop()


def importtime_report(log: Path, top: int) -> None:
    """The slowest imports (cumulative microseconds) from a ``-X importtime`` log."""
    rows: list[tuple[int, int, str]] = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cum_us, name = line[len("import time:") :].split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        rows.append((int(cum_us), depth, name.strip()))
    total = sum(c for c, d, _ in rows if d == 0)
    print(f"imports up to ready: {total / 1e6:.2f} s, top-level cumulative")
    for cum, depth, name in sorted(rows, reverse=True)[:top]:
        print(f"  {cum / 1e6:6.3f} s  {'  ' * depth}{name}")


PROFILE_WRAPPER = """
import cProfile, os, pstats, signal, sys
prof = cProfile.Profile()
def _dump(*_):
    prof.disable()
    pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats({top})
    sys.stderr.flush()
    os._exit(0)
signal.signal(signal.SIGUSR1, _dump)
sys.argv = ["lockgate", *sys.argv[1:]]
prof.enable()
from lockgate.cli.main import main
main()
"""


def profile_once(home: Path, log: Path, top: int) -> None:
    """One start under cProfile; SIGUSR1 on ready dumps the stats (main thread only)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    env = {**os.environ, "LOCKGATE_HOME": str(home)}
    code = PROFILE_WRAPPER.format(top=top)
    cmd = [sys.executable, "-c", code, "server", "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(timeout=1) as http:
            for _ in range(12000):
                with suppress(httpx.HTTPError):
                    if http.get(url).status_code == 200:
                        break
                time.sleep(0.005)
        proc.send_signal(signal.SIGUSR1)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text(errors="replace")
    print(text[text.find("ncalls") - 200 :] if "ncalls" in text else text[-3000:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="cold starts to time")
    p.add_argument("--floor", action="store_true", help="also time the floor's starts")
    p.add_argument("--importtime", action="store_true", help="also one -X importtime start")
    p.add_argument("--profile", action="store_true", help="also one start under cProfile")
    p.add_argument("--top", type=int, default=30, help="rows of --importtime/--profile")
    p.add_argument("--workdir", type=Path, help="keep the workspace and logs here")
    args = p.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="lockgate-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    print(cache_bytecode(), flush=True)
    home = make_home(work)
    load_before = os.getloadavg()
    wall: list[float] = []
    cpu: list[float] = []
    floor_wall: list[float] = []
    for i in range(args.runs):
        w, c = start_once(home, work / f"server-{i}.log")
        wall.append(w)
        cpu.append(c)
        line = f"run {i + 1}: ready in {w:.2f} s wall, {c:.2f} s CPU"
        if args.floor:
            fw, fc = floor_once(work)
            floor_wall.append(fw)
            line += f"; floor {fw:.2f} s wall, {fc:.2f} s CPU"
        print(line, flush=True)
    load_after = os.getloadavg()
    if wall:
        print(
            f"time to ready: median {statistics.median(wall):.2f} s "
            f"(min {min(wall):.2f}, max {max(wall):.2f}) over {len(wall)} runs; "
            f"CPU median {statistics.median(cpu):.2f} s "
            f"(min {min(cpu):.2f}, max {max(cpu):.2f})"
        )
        print(
            "load average before "
            + " ".join(f"{x:.2f}" for x in load_before)
            + ", after "
            + " ".join(f"{x:.2f}" for x in load_after)
            + f" ({os.cpu_count()} CPUs)"
        )
    if floor_wall:
        print(
            f"floor: median {statistics.median(floor_wall):.2f} s "
            f"(min {min(floor_wall):.2f}, max {max(floor_wall):.2f}); Lockgate - floor: "
            f"{statistics.median(w - f for w, f in zip(wall, floor_wall, strict=True)):+.2f} s "
            "(median of the runs' differences)"
        )
    if args.importtime:
        log = work / "server-importtime.log"
        w, _ = start_once(home, log, ("-X", "importtime"))
        print(f"under -X importtime: ready in {w:.2f} s")
        importtime_report(log.with_suffix(".ready"), args.top)
    if args.profile:
        profile_once(home, work / "server-profile.log", args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
