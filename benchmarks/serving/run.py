"""Serving benchmark: Lockgate's data plane against a floor and two peers, on loopback.

    python benchmarks/serving/run.py [--rounds 8] [--duration 4] [--burst 1] \
        [--skip-mlserver] [--skip-mlflow]

One scikit-learn model (LogisticRegression on 10 float features, trained here on synthetic
data) is served by

* ``floor``: a bare uvicorn ASGI app with Lockgate's uvicorn flags that parses the JSON with
  orjson, builds the NumPy array and calls ``model.predict`` (``floor_app.py``);
* ``lockgate``: ``lockgate server`` with the model registered and deployed, validation,
  prediction log and metrics on (the defaults);
* ``lockgate-batching``: the same, deployed with ``lockgate deploy --batching``;
* ``lockgate-nolog``: the same as ``lockgate`` with ``LOCKGATE_LOG_PREDICTIONS=false``;
* ``mlserver``: MLServer + mlserver-sklearn over its REST Open Inference Protocol endpoint;
* ``mlflow``: ``mlflow models serve --env-manager local`` scored with ``dataframe_split``.

MLServer and MLflow live in their own cached venvs (``venvs.py``). Every system is checked to
return the same predictions as ``model.predict`` before anything is measured. A closed-loop
load generator (``wrk`` with a Lua script; ``loadgen.py`` when wrk is missing) runs the
workloads single-row at 1 and 32 connections and 100-row batches at 8 connections.

Each round starts every system afresh (identical processes differ by up to ~10% for their
whole life on a shared VM, so every round is a new draw), then freezes them all (SIGSTOP)
but the one being measured. Each workload runs as cycles of ``--burst``-second bursts, one
per system, in an order reversed every cycle: the machine's slow drifts hit every system
alike, each ratio compares figures taken seconds apart, and a frozen server's background
work (a log write, a compaction) runs when it resumes, inside its own measurement.
Reported per system and workload: req/s, rows/s, p50/p99 latency and server CPU per request
(medians over all bursts), ratios to the floor and to MLServer, and the targets: each ratio
is the median over rounds of the round's median per-cycle ratio, shown with every round's
value and, from 6 rounds, the distribution-free 95% confidence interval of that median.
Also measured: ``lockgate server`` time to ready (process start to ``/v2/health/ready`` 200),
median of 5 cold starts, with Lockgate's bytecode compiled first as an installed package has
it (see ``cache_bytecode``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import venvs  # noqa: E402

N_FEATURES = 10
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
POOL = 64  # distinct request bodies per workload, sent round-robin
MODEL = "bench"
LOG_PAIR = ("lockgate", "lockgate-nolog")


@dataclass(frozen=True)
class Workload:
    name: str
    rows: int
    connections: int


WORKLOADS = (
    Workload("single-c1", 1, 1),
    Workload("single-c32", 1, 32),
    Workload("batch100-c8", 100, 8),
)


# -- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system CPU seconds) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its live descendants (every thread)."""
    procs: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            procs[int(entry)] = st
    tree, total, changed = {pid}, 0.0, True
    while changed:
        changed = False
        for p, (ppid, _) in procs.items():
            if ppid in tree and p not in tree:
                tree.add(p)
                changed = True
    for p in tree:
        if p in procs:
            total += procs[p][1]
    return total


@dataclass
class System:
    name: str
    url: str  # inference URL
    ready_url: str
    kind: str  # "oip" or "mlflow"
    cmd: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: polled after ready until 200: the server has finished starting (Lockgate's control
    #: plane is wired just after the data plane answers ready)
    settle_url: str | None = None
    #: removed before each start: what earlier rounds left (Lockgate's prediction log: its
    #: compaction of their hours would run inside this round's measurement)
    clean: list[Path] = field(default_factory=list)
    paused: bool = False

    def start(self, timeout: float = 120) -> float:
        """Start the server; seconds to ready (then waits for ``settle_url``)."""
        for path in self.clean:  # moved aside, deleted after the run: a deletion's
            if path.exists():  # discards would land on the next measurement
                trash = self.log.parent / "trash"
                trash.mkdir(exist_ok=True)
                path.rename(trash / f"{path.name}-{time.monotonic_ns()}")
        t0 = time.perf_counter()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(  # own process group: pause() freezes its children
                self.cmd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.log.parent,
                start_new_session=True,
            )
        self.paused = False
        ready = wait_ready(self, t0, timeout)
        if self.settle_url is not None:
            with httpx.Client(timeout=timeout) as http:
                http.get(self.settle_url).raise_for_status()
        return ready

    def pause(self) -> None:
        """Freeze the server and its children (SIGSTOP to its process group): while another
        system is measured, none of this one's background work (a log write, a compaction,
        a poll) runs; its timers fire when it resumes, inside its own measurement."""
        if self.proc is not None and not self.paused:
            os.killpg(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.paused:
            os.killpg(self.proc.pid, signal.SIGCONT)
            self.paused = False

    @contextmanager
    def resumed(self) -> Iterator[None]:
        self.resume()
        try:
            yield
        finally:
            self.pause()

    def stop(self) -> None:
        self.resume()  # a stopped process would not act on SIGTERM
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def wait_ready(system: System, t0: float, timeout: float) -> float:
    """Poll the ready URL every 5 ms; return seconds from ``t0`` to the first 200 (and keep
    the CPU seconds the server had used by then in ``system.info["ready_cpu_s"]``)."""
    deadline = t0 + timeout
    with httpx.Client(timeout=1) as http:
        while time.perf_counter() < deadline:
            assert system.proc is not None
            if system.proc.poll() is not None:
                raise SystemExit(
                    f"{system.name} exited with {system.proc.returncode}:\n"
                    + system.log.read_text(errors="replace")[-3000:]
                )
            with suppress(httpx.HTTPError):
                if http.get(system.ready_url).status_code == 200:
                    wall = time.perf_counter() - t0
                    system.info["ready_cpu_s"] = tree_cpu(system.proc.pid)
                    return wall
            time.sleep(0.005)
    raise SystemExit(f"{system.name} not ready within {timeout}s; see {system.log}")


def cache_bytecode() -> str:
    """Compile Lockgate's modules to bytecode files, as ``pip install`` (or any earlier start)
    leaves them, and say so. Where ``PYTHONDONTWRITEBYTECODE`` is set (this project's CI
    image sets it), an editable install otherwise compiles all of Lockgate's ~150 modules
    again at every start, 0.1-0.2 s that no installed server pays. Third-party packages
    have their bytecode from pip already."""
    import compileall

    import lockgate

    package = Path(lockgate.__file__).resolve().parent
    ok = compileall.compile_dir(package, quiet=1)
    state = "compiled" if ok else "compiled with errors"
    flag = "set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "not set"
    return f"Lockgate bytecode {state} in {package} (PYTHONDONTWRITEBYTECODE {flag})"


def run_checked(cmd: list[str], env: dict[str, str] | None = None) -> str:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout


# -- the model and the systems ----------------------------------------------------------


def train(work: Path) -> tuple[Any, np.ndarray, Path]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(42)
    X = rng.normal(size=(5000, N_FEATURES))
    w = rng.normal(size=N_FEATURES)
    y = (X @ w + rng.normal(scale=0.5, size=len(X)) > 0).astype(np.int64)
    model = LogisticRegression().fit(X, y)  # fitted on an array: no feature names
    path = work / "model.joblib"
    joblib.dump(model, path)
    return model, X, path


def lockgate_home(work: Path, name: str, model: Any, X: np.ndarray, batching: bool) -> Path:
    """A workspace with the model registered as version 1 and deployed by the CLI."""
    from lockgate.client import connect

    home = work / name
    with connect(home) as client:
        client.register_model(MODEL, model, sample=X[:200], tags={"source": "benchmark"})
    env = {**os.environ, "LOCKGATE_HOME": str(home)}
    cmd = [sys.executable, "-m", "lockgate.cli", "deploy", MODEL, "--version", "1"]
    run_checked([*cmd, "--batching" if batching else "--no-batching"], env)
    return home


def lockgate_system(name: str, home: Path, work: Path, extra: dict[str, str]) -> System:
    port = free_port()
    env = {**os.environ, "LOCKGATE_HOME": str(home), **extra}
    base = f"http://127.0.0.1:{port}"
    return System(
        name,
        f"{base}/v2/models/{MODEL}/infer",
        f"{base}/v2/health/ready",
        "oip",
        [sys.executable, "-m", "lockgate.cli", "server", "--port", str(port)],
        env,
        work / f"{name}.log",
        settle_url=f"{base}/api/v1/health",
        clean=[home / "predictions"],
    )


def floor_system(model_path: Path, work: Path) -> System:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    return System(
        "floor",
        f"{base}/v2/models/{MODEL}/infer",
        f"{base}/v2/health/ready",
        "oip",
        [sys.executable, str(HERE / "floor_app.py"), str(model_path), str(port)],
        dict(os.environ),
        work / "floor.log",
    )


def mlserver_system(model_path: Path, work: Path, parallel_workers: int) -> System:
    py = venvs.ensure("mlserver")
    root = work / "mlserver"
    mdir = root / MODEL
    mdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(model_path, mdir / "model.joblib")
    (mdir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    port = free_port()
    (root / "settings.json").write_text(
        json.dumps(
            {
                "debug": False,  # no access log, like Lockgate and the floor
                "parallel_workers": parallel_workers,
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
            }
        )
    )
    base = f"http://127.0.0.1:{port}"
    s = System(
        "mlserver",
        f"{base}/v2/models/{MODEL}/infer",
        f"{base}/v2/models/{MODEL}/ready",
        "oip",
        [str(py.parent / "mlserver"), "start", str(root)],
        {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")},
        work / "mlserver.log",
    )
    s.info = {
        "version": venvs.version_in("mlserver", "mlserver"),
        "parallel_workers": parallel_workers,
    }
    return s


def mlflow_system(model_path: Path, work: Path) -> System:
    py = venvs.ensure("mlflow")
    out = work / "mlflow-model"
    if not out.exists():
        script = (
            "import sys, joblib, numpy as np, pandas as pd, mlflow.sklearn\n"
            "from mlflow.models import infer_signature\n"
            "m = joblib.load(sys.argv[1])\n"
            f"cols = {FEATURES!r}\n"
            "x = pd.DataFrame(np.zeros((2, len(cols))), columns=cols)\n"
            "sig = infer_signature(x, m.predict(x.to_numpy()))\n"
            "mlflow.sklearn.save_model(m, sys.argv[2], signature=sig)\n"
        )
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        run_checked([str(py), "-c", script, str(model_path), str(out)], env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{py.parent}:{env.get('PATH', '')}"
    s = System(
        "mlflow",
        f"{base}/invocations",
        f"{base}/ping",
        "mlflow",
        [
            str(py.parent / "mlflow"),
            "models",
            "serve",
            "-m",
            str(out),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "--workers",
            "1",
        ],
        env,
        work / "mlflow.log",
    )
    s.info = {"version": venvs.version_in("mlflow", "mlflow")}
    return s


# -- request bodies and checks ----------------------------------------------------------


def body(kind: str, rows: np.ndarray) -> bytes:
    if kind == "oip":
        doc: dict[str, Any] = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(rows), N_FEATURES],
                    "datatype": "FP64",
                    "data": rows.ravel().tolist(),
                }
            ]
        }
    else:
        doc = {"dataframe_split": {"columns": FEATURES, "data": rows.tolist()}}
    return orjson.dumps(doc)


def predictions(kind: str, doc: dict[str, Any]) -> list[Any]:
    if kind == "oip":
        return list(doc["outputs"][0]["data"])
    return list(doc["predictions"])


def validate(systems: list[System], model: Any, X: np.ndarray) -> None:
    """Every system answers the same rows with ``model.predict``'s answer, or we stop."""
    rows = X[1000:1100]
    expected = model.predict(rows).tolist()
    with httpx.Client(timeout=30) as http:
        for s in systems:
            got: list[Any] = []
            for i in range(10):  # single rows
                r = http.post(
                    s.url,
                    content=body(s.kind, rows[i : i + 1]),
                    headers={"content-type": "application/json"},
                )
                if r.status_code != 200:
                    raise SystemExit(
                        f"VALIDATION FAILED: {s.name} answered {r.status_code}: {r.text}"
                    )
                got += predictions(s.kind, r.json())
            r = http.post(
                s.url, content=body(s.kind, rows), headers={"content-type": "application/json"}
            )
            if r.status_code != 200:
                raise SystemExit(f"VALIDATION FAILED: {s.name} answered {r.status_code}: {r.text}")
            got += predictions(s.kind, r.json())
            want = expected[:10] + expected
            if [int(v) for v in got] != want:
                bad = [i for i, (a, b) in enumerate(zip(got, want, strict=False)) if int(a) != b]
                raise SystemExit(
                    f"VALIDATION FAILED: {s.name} predictions differ from model.predict at "
                    f"{len(bad)} of {len(want)} rows (first: {bad[:5]}), or lengths differ "
                    f"({len(got)} vs {len(want)})"
                )
            print(f"  {s.name}: {len(want)} predictions identical to model.predict", flush=True)


# -- load generation ------------------------------------------------------------------------

WRK_LUA = r"""
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local reqs = {}
local i = 0
init = function(args)
  for k, b in ipairs(bodies) do
    reqs[k] = wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, b)
  end
end
request = function()
  i = i %% #reqs + 1
  return reqs[i]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"errors_connect":%%d,"errors_read":%%d,' ..
    '"errors_write":%%d,"errors_status":%%d,"errors_timeout":%%d,"p50":%%f,"p90":%%f,' ..
    '"p99":%%f,"mean":%%f,"max":%%f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
"""


@dataclass
class Load:
    wrk: str | None
    work: Path

    def files(self, s: System, w: Workload, X: np.ndarray) -> tuple[Path, Path]:
        bodies = self.work / f"bodies-{s.kind}-{w.rows}.jsonl"
        if not bodies.exists():
            rng = np.random.default_rng(w.rows)
            with open(bodies, "wb") as f:
                for _ in range(POOL):
                    start = int(rng.integers(0, len(X) - w.rows))
                    f.write(body(s.kind, X[start : start + w.rows]) + b"\n")
        lua = self.work / f"{s.name}-{w.rows}.lua"
        if not lua.exists():
            path = "/" + s.url.split("/", 3)[3]
            lua.write_text(WRK_LUA % {"bodies": bodies, "path": path})
        return bodies, lua

    def run(self, s: System, w: Workload, X: np.ndarray, duration: float) -> dict[str, float]:
        bodies, lua = self.files(s, w, X)
        if self.wrk:
            cmd = [
                self.wrk,
                "-t1",
                f"-c{w.connections}",
                f"-d{duration:g}s",
                "--timeout",
                "10s",
                "-s",
                str(lua),
                s.url,
            ]
        else:
            cmd = [
                sys.executable,
                str(HERE / "loadgen.py"),
                s.url,
                str(bodies),
                str(w.connections),
                str(duration),
            ]
        assert s.proc is not None
        cpu0 = tree_cpu(s.proc.pid)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
        cpu = tree_cpu(s.proc.pid) - cpu0
        line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
        if line is None:
            raise SystemExit(
                f"load generator failed for {s.name}/{w.name}:\n{out.stdout}\n{out.stderr}"
            )
        r = json.loads(line[len("WRKJSON ") :])
        errors = sum(r[k] for k in r if k.startswith("errors_"))
        if errors:
            raise SystemExit(f"{s.name}/{w.name}: {errors} errors during load: {r}")
        secs = r["duration_us"] / 1e6
        return {
            "req_s": r["requests"] / secs,
            "rows_s": r["requests"] * w.rows / secs,
            "p50_ms": r["p50"] / 1000,
            "p99_ms": r["p99"] / 1000,
            "requests": r["requests"],
            "cpu_us_req": cpu / max(1, r["requests"]) * 1e6,
        }


# -- reporting ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with suppress(OSError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    from importlib.metadata import version

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            d: version(d)
            for d in (
                "lockgate",
                "uvicorn",
                "uvloop",
                "httptools",
                "numpy",
                "scikit-learn",
                "orjson",
            )
        },
    }


def med(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


#: per (system, workload): per round, the figures of each burst in cycle order
Results = dict[tuple[str, str], list[list[dict[str, float]]]]


def summarise(results: Results) -> dict[str, Any]:
    """Per workload and system: the median over every burst of every round."""
    out: dict[str, Any] = {}
    for (sys_name, wl), rounds in results.items():
        runs = [r for rnd in rounds for r in rnd]
        out.setdefault(wl, {})[sys_name] = {
            k: med([r[k] for r in runs])
            for k in ("req_s", "rows_s", "p50_ms", "p99_ms", "cpu_us_req")
        }
    return out


def per_round(
    results: Results,
    a: str,
    b: str,
    wl: str,
    key: str = "req_s",
    *,
    diff: bool = False,
) -> list[float]:
    """For each round (fresh processes): the median over its cycles of a/b (a - b with
    ``diff``), each cycle's two bursts taken seconds apart."""
    ra, rb = results.get((a, wl)), results.get((b, wl))
    if not ra or not rb:
        return []
    return [
        med([x[key] - y[key] if diff else x[key] / y[key] for x, y in zip(xa, xb, strict=True)])
        for xa, xb in zip(ra, rb, strict=True)
    ]


def ratio(results: Results, a: str, b: str, wl: str, key: str = "req_s") -> float:
    """Median over rounds of a/b."""
    return med(per_round(results, a, b, wl, key))


def median_ci(xs: list[float], conf: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median (order statistics: the number
    of values below the median is binomial(n, 1/2)); NaNs when n is too small."""
    n = len(xs)
    xs = sorted(xs)
    k, below = 0, 0.0
    while True:  # the largest k with P(Binomial(n, 1/2) < k) <= (1 - conf) / 2
        nxt = below + math.comb(n, k) / 2**n
        if nxt > (1 - conf) / 2:
            break
        below, k = nxt, k + 1
    if k == 0:
        return float("nan"), float("nan")
    return xs[k - 1], xs[n - k]


def spread(xs: list[float], fmt: str = ".2f", scale: float = 1.0, shift: float = 0.0) -> str:
    """The rounds' values and, with 6 rounds or more, the 95% CI of their median."""
    vals = ", ".join(f"{shift + scale * x:{fmt}}" for x in xs)
    lo, hi = median_ci(xs)
    if lo != lo:
        return f"rounds: {vals}"
    a, b = sorted((shift + scale * lo, shift + scale * hi))
    return f"rounds: {vals}; 95% CI of the median {a:{fmt}} to {b:{fmt}}"


def report(
    results: Results,
    systems: list[str],
    ready: list[float],
    ready_cpu: list[float],
) -> tuple[str, list[tuple[str, bool | None, str]]]:
    summary = summarise(results)
    lines = [
        "| workload | system | req/s | rows/s | p50 ms | p99 ms | server CPU us/req "
        "| x floor | x MLServer |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for w in WORKLOADS:
        for s in systems:
            m = summary.get(w.name, {}).get(s)
            if m is None:
                continue
            xf = ratio(results, s, "floor", w.name, "rows_s")
            xm = ratio(results, s, "mlserver", w.name, "rows_s")
            lines.append(
                f"| {w.name} | {s} | {m['req_s']:,.0f} | {m['rows_s']:,.0f} | {m['p50_ms']:.2f} "
                f"| {m['p99_ms']:.2f} | {m['cpu_us_req']:,.0f} | {xf:.2f} "
                f"| {'-' if xm != xm else f'{xm:.2f}'} |"
            )
    table = "\n".join(lines)

    def check(ok: float, cond: bool) -> bool | None:
        return None if ok != ok else cond

    t: list[tuple[str, bool | None, str]] = []

    def target(name: str, a: str, b: str, wl: str, key: str, line: float) -> None:
        xs = per_round(results, a, b, wl, key)
        r = med(xs)
        t.append((name, check(r, r >= line), f"{r:.2f}x ({spread(xs)})"))

    target("single-row c=32 >= 0.75x floor", "lockgate", "floor", "single-c32", "req_s", 0.75)
    target("single-row c=32 >= 2x MLServer", "lockgate", "mlserver", "single-c32", "req_s", 2.0)
    ds = per_round(results, "lockgate", "floor", "single-c1", "p50_ms", diff=True)
    d = med(ds)
    t.append(
        (
            "single-row c=1 p50 <= floor + 0.25 ms",
            check(d, d <= 0.25),
            f"{d:+.3f} ms ({spread(ds, '+.3f')})",
        )
    )
    target(
        "batching on: single-row c=32 >= 1.0x floor",
        "lockgate-batching",
        "floor",
        "single-c32",
        "req_s",
        1.0,
    )
    target(
        "100-row batches rows/s >= 0.8x floor", "lockgate", "floor", "batch100-c8", "rows_s", 0.8
    )
    costs = {}
    for w in WORKLOADS:
        xs = per_round(results, *LOG_PAIR, w.name)
        costs[w.name] = (1 - med(xs), spread(xs, "+.1%", -1.0, 1.0))
    worst = max(c for c, _ in costs.values())
    t.append(
        (
            "prediction log costs < 5% of throughput",
            check(worst, worst < 0.05),
            "throughput lost: "
            + ", ".join(f"{k} {v:+.1%} ({ci})" for k, (v, ci) in costs.items())
            + "; server CPU per request added: "
            + ", ".join(
                f"{w.name} {ratio(results, *LOG_PAIR, w.name, 'cpu_us_req') - 1:+.1%}"
                for w in WORKLOADS
            ),
        )
    )
    rd = med(ready)
    t.append(
        (
            "time to ready <= 2 s",
            check(rd, rd <= 2.0),
            f"{rd:.2f} s wall (runs: "
            + ", ".join(f"{x:.2f}" for x in ready)
            + f"); {med(ready_cpu):.2f} s CPU (runs: "
            + ", ".join(f"{x:.2f}" for x in ready_cpu)
            + ")",
        )
    )
    return table, t


# -- main -----------------------------------------------------------------------------------


@contextmanager
def running(systems: list[System]) -> Iterator[None]:
    try:
        for s in systems:
            s.start()
        yield
    finally:
        for s in systems:
            s.stop()


def time_to_ready(home: Path, work: Path, runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds from process start to /v2/health/ready == 200, per cold start."""
    wall, cpu = [], []
    for i in range(runs):
        s = lockgate_system(f"ready-{i}", home, work, {})
        wall.append(s.start(timeout=60))
        cpu.append(s.info["ready_cpu_s"])
        s.stop()
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--duration",
        type=float,
        default=4,
        help="seconds measured per system, workload and round, in bursts of --burst",
    )
    p.add_argument("--burst", type=float, default=1, help="seconds per burst")
    p.add_argument(
        "--warmup", type=float, default=1, help="seconds of warm-up per system, workload, round"
    )
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--ready-runs", type=int, default=5)
    p.add_argument("--skip-mlserver", action="store_true")
    p.add_argument("--skip-mlflow", action="store_true")
    p.add_argument("--only", default="", help="comma-separated systems to run (default: all)")
    p.add_argument("--workloads", default="", help="comma-separated workloads (default: all)")
    p.add_argument(
        "--mlserver-parallel-workers",
        type=int,
        default=0,
        help="MLServer parallel_workers (0: inference in the server process; MLServer's "
        "default of 1 does not start here: its worker processes call "
        "asyncio.get_event_loop(), which uvloop 0.23 refuses)",
    )
    p.add_argument("--json", type=Path, help="write all figures to this file")
    p.add_argument("--workdir", type=Path, help="keep models, logs and workspaces here")
    p.add_argument("--python-loadgen", action="store_true", help="do not use wrk")
    args = p.parse_args(argv)

    wrk = None if args.python_loadgen else shutil.which("wrk")
    for name in ("burst", "warmup"):
        v = getattr(args, name)
        if v < 0 or (wrk and v != int(v)) or (name == "burst" and v == 0):
            p.error(f"--{name}: expected whole seconds (wrk's unit), got {v:g}")
    if wrk is None and not args.python_loadgen:
        print("wrk not found (apt-get install -y wrk); using the Python load generator")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lockgate-serving-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    info = machine()
    info["loadavg_start"] = os.getloadavg()
    info["loadgen"] = (
        subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.splitlines()[0]
        if wrk
        else "loadgen.py"
    )
    print(json.dumps(info, indent=1), flush=True)

    print(cache_bytecode(), flush=True)
    model, X, model_path = train(work)
    print("setting up systems (peer venvs are built once and cached)", flush=True)
    home = lockgate_home(work, "lockgate-home", model, X, batching=False)
    home_b = lockgate_home(work, "lockgate-home-batching", model, X, batching=True)
    all_systems: list[System] = [
        floor_system(model_path, work),
        lockgate_system("lockgate", home, work, {}),
        lockgate_system("lockgate-batching", home_b, work, {}),
        lockgate_system("lockgate-nolog", home, work, {"LOCKGATE_LOG_PREDICTIONS": "false"}),
    ]
    if not args.skip_mlserver:
        all_systems.append(mlserver_system(model_path, work, args.mlserver_parallel_workers))
    if not args.skip_mlflow:
        all_systems.append(mlflow_system(model_path, work))
    only = {x for x in args.only.split(",") if x}
    systems = [s for s in all_systems if not only or s.name in only]
    wl_only = {x for x in args.workloads.split(",") if x}
    workloads = [w for w in WORKLOADS if not wl_only or w.name in wl_only]
    info["peers"] = {s.name: s.info for s in systems if s.info}

    ready: list[float] = []
    ready_cpu: list[float] = []
    if not only or "lockgate" in only:
        print(f"time to ready: {args.ready_runs} cold starts of lockgate server", flush=True)
        ready, ready_cpu = time_to_ready(home, work, args.ready_runs)
        print("  wall " + ", ".join(f"{x:.2f} s" for x in ready), flush=True)
        print("  cpu  " + ", ".join(f"{x:.2f} s" for x in ready_cpu), flush=True)

    load = Load(wrk, work)
    results: Results = {}
    cycles = max(1, round(args.duration / args.burst))
    for rnd in range(args.rounds):
        print(f"round {rnd + 1}/{args.rounds} (load average {os.getloadavg()[0]:.2f})", flush=True)
        # every system started afresh each round (a process's own bias averages out over
        # the rounds), then all frozen but the one measured: each workload runs as cycles
        # of short bursts, one per system, in an order reversed every cycle, so the
        # machine's drifts (minutes long on a shared VM) hit every system alike and each
        # ratio compares figures taken seconds apart
        order = systems[rnd % len(systems) :] + systems[: rnd % len(systems)]
        with running(order):
            if rnd == 0:
                validate(order, model, X)
            for s in order:
                s.pause()
            for w in workloads:
                got: dict[str, list[dict[str, float]]] = {s.name: [] for s in order}
                if args.warmup > 0:
                    for s in order:
                        with s.resumed():
                            load.run(s, w, X, args.warmup)
                for c in range(cycles):
                    for s in order if c % 2 == 0 else order[::-1]:
                        with s.resumed():
                            got[s.name].append(load.run(s, w, X, args.burst))
                for s in order:
                    results.setdefault((s.name, w.name), []).append(got[s.name])
                    m = {k: med([r[k] for r in got[s.name]]) for k in got[s.name][0]}
                    print(
                        f"  {w.name:12} {s.name:18} {m['req_s']:9,.0f} req/s "
                        f"{m['rows_s']:11,.0f} rows/s  p50 {m['p50_ms']:6.2f} ms  "
                        f"p99 {m['p99_ms']:6.2f} ms  cpu {m['cpu_us_req']:5.0f} us/req",
                        flush=True,
                    )
    info["loadavg_end"] = os.getloadavg()
    shutil.rmtree(work / "trash", ignore_errors=True)

    table, targets = report(results, [s.name for s in systems], ready, ready_cpu)
    print()
    print(table)
    print()
    print("targets:")
    for name, ok, fig in targets:
        mark = "n/a " if ok is None else ("MET " if ok else "MISS")
        print(f"  [{mark}] {name}: {fig}")
    print(f"\nload average: start {info['loadavg_start']}, end {info['loadavg_end']}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "summary": summarise(results),
                    "runs": {f"{a}/{b}": v for (a, b), v in results.items()},
                    "ready_s": ready,
                    "ready_cpu_s": ready_cpu,
                    "targets": [{"target": n, "met": ok, "figure": f} for n, ok, f in targets],
                    "table": table,
                },
                indent=1,
            )
        )
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
