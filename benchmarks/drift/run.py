"""Drift detection benchmark: Lockgate vs a plain SciPy loop vs Evidently's DataDriftPreset.

    python benchmarks/drift/run.py [--sizes 200000,1000000] [--skip-evidently] [--repeats 3]

Synthetic data: 20 numerical and 5 categorical columns, ``n`` reference rows and ``n`` current
rows, with drift injected into a known subset (see ``DRIFT``), including one subtle shift that
is statistically significant at these sizes but not material. The data are generated once per
size, written to a temporary folder and loaded by every tool in its own fresh subprocess, so
each tool's peak memory is its own. Evidently runs with its own interpreter from a virtual
environment this script creates under ``benchmarks/drift/.venv-evidently``.

Reported per tool: data load time, reference profile build time (Lockgate only: the profile is
built once per model version and reused for every window), compute time (the first call, which
also pays one-off imports, and the median of the later ``--repeats``), the peak of memory
allocated during one compute (tracemalloc, a separate run), the process peak RSS, and the
columns flagged as drifted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EVIDENTLY_VENV = HERE / ".venv-evidently"
EVIDENTLY_REQUIREMENTS = ["evidently", "pandas<3"]  # evidently 0.7 does not import on pandas 3

N_NUMERICAL = 20
N_CATEGORICAL = 5
#: what is injected into the current window, and what a good detector should say about it
DRIFT: dict[str, str] = {
    "num_0": "mean shift of 0.5 std (material)",
    "num_1": "scale x1.5 (material)",
    "num_2": "mean shift of 0.05 std (significant, not material)",
    "num_3": "missing rate 1% -> 20% (material)",
    "cat_0": "category shares reshuffled (material)",
    "cat_1": "10% of values in a category never seen (material)",
}
EXPECTED_MATERIAL = ["num_0", "num_1", "num_3", "cat_0", "cat_1"]
SUBTLE = "num_2"


# ---------------------------------------------------------------- data


def generate(n: int, seed: int, folder: Path) -> float:
    """Write ``reference.npz`` and ``current.npz`` into ``folder``; return the seconds taken."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    for side in ("reference", "current"):
        arrays: dict[str, np.ndarray] = {}
        cur = side == "current"
        for i in range(N_NUMERICAL):
            family = i % 5
            if family == 0:
                x = rng.normal(10 * i, 1 + i, n)
            elif family == 1:
                x = rng.lognormal(1, 0.6, n)
            elif family == 2:
                x = rng.exponential(2 + i, n)
            elif family == 3:
                x = rng.uniform(-i, i + 1, n)
            else:
                x = rng.poisson(3 + i, n).astype(np.float64)  # many ties
            std = float(np.std(x))
            if cur and i == 0:
                x += 0.5 * std
            elif cur and i == 1:
                x = x.mean() + (x - x.mean()) * 1.5
            elif cur and i == 2:
                x += 0.05 * std
            if i == 3:
                x[rng.random(n) < (0.20 if cur else 0.01)] = np.nan
            arrays[f"num_{i}"] = x
        for j in range(N_CATEGORICAL):
            k = 4 + 6 * j
            probs = 1.0 / np.arange(1, k + 1)
            if cur and j == 0:
                probs = probs[::-1]
            probs /= probs.sum()
            labels = np.array([f"c{j}_v{v}" for v in range(k)] + [f"c{j}_new"])
            codes = rng.choice(k, n, p=probs)
            if cur and j == 1:
                codes[rng.random(n) < 0.10] = k
            arrays[f"cat_{j}"] = labels[codes]
        np.savez(folder / f"{side}.npz", **arrays)  # type: ignore[arg-type]
    return time.perf_counter() - start


def load(folder: Path, side: str) -> Any:
    import pandas as pd

    with np.load(folder / f"{side}.npz", allow_pickle=False) as npz:
        return pd.DataFrame({name: npz[name] for name in npz.files})


# ---------------------------------------------------------------- workers (one per process)


def _timed(fn: Any, repeats: int) -> tuple[list[float], list[float], Any]:
    """Wall and CPU seconds (all threads of the process) of each call, and the last result.
    CPU time barely moves when other jobs share the machine; wall time does."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return walls, cpus, out


def _traced_peak(fn: Any) -> float:
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _maxrss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def work_lockgate(folder: Path, repeats: int, threads: int | None) -> dict[str, Any]:
    t = time.perf_counter()
    try:
        import lockgate.monitoring  # noqa: F401
    except ImportError:  # not pip-installed: use the source tree
        sys.path.insert(0, str(ROOT / "src"))
    from lockgate.monitoring import DriftConfig, compute_profile, detect_drift

    import_s = time.perf_counter() - t
    t = time.perf_counter()
    ref, cur = load(folder, "reference"), load(folder, "current")
    load_s = time.perf_counter() - t
    config = DriftConfig(max_workers=threads)
    t = time.perf_counter()
    profile = compute_profile(ref)
    profile_s = time.perf_counter() - t
    times, cpu, report = _timed(lambda: detect_drift(profile, cur, config), repeats)
    peak = _traced_peak(lambda: detect_drift(profile, cur, config))
    e2e_times, _, _ = _timed(lambda: detect_drift(ref, cur, config), 1)
    return {
        "import_s": import_s,
        "load_s": load_s,
        "profile_s": profile_s,
        "compute_s": times,
        "compute_cpu_s": cpu,
        "end_to_end_s": e2e_times[0],
        "peak_traced_mib": peak,
        "maxrss_mib": _maxrss_mib(),
        "flagged": report.drifted_columns,
        "warnings": [c.column for c in report.columns if c.verdict == "warning"],
        "dataset_drifted": report.drifted,
    }


def work_scipy(folder: Path, repeats: int) -> dict[str, Any]:
    t = time.perf_counter()
    import pandas as pd
    from scipy.stats import chi2_contingency, ks_2samp

    import_s = time.perf_counter() - t
    t = time.perf_counter()
    ref, cur = load(folder, "reference"), load(folder, "current")
    load_s = time.perf_counter() - t

    def loop() -> list[str]:
        flagged = []
        for name in ref.columns:
            if pd.api.types.is_numeric_dtype(ref[name]):
                p = ks_2samp(ref[name].dropna(), cur[name].dropna()).pvalue
            else:
                table = pd.concat(
                    [ref[name].value_counts(), cur[name].value_counts()], axis=1
                ).fillna(0)
                p = chi2_contingency(table.to_numpy().T).pvalue
            if p < 0.05:
                flagged.append(name)
        return flagged

    times, cpu, flagged = _timed(loop, repeats)
    return {
        "import_s": import_s,
        "load_s": load_s,
        "compute_s": times,
        "compute_cpu_s": cpu,
        "peak_traced_mib": _traced_peak(loop),
        "maxrss_mib": _maxrss_mib(),
        "flagged": flagged,
    }


def work_evidently(folder: Path, repeats: int) -> dict[str, Any]:
    t = time.perf_counter()
    import evidently
    from evidently import Report
    from evidently.presets import DataDriftPreset

    import_s = time.perf_counter() - t
    t = time.perf_counter()
    ref, cur = load(folder, "reference"), load(folder, "current")
    load_s = time.perf_counter() - t

    def run() -> dict[str, Any]:
        snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
        return snapshot.dict()  # type: ignore[no-any-return]

    times, cpu, result = _timed(run, repeats)
    flagged, methods = [], {}
    for metric in result["metrics"]:
        cfg = metric.get("config", {})
        if "column" not in cfg or not isinstance(metric.get("value"), int | float):
            continue
        method, value, threshold = cfg.get("method", ""), metric["value"], cfg["threshold"]
        methods[cfg["column"]] = method
        is_pvalue = "p_value" in method or "p-value" in method
        if (value < threshold) if is_pvalue else (value >= threshold):
            flagged.append(cfg["column"])
    share = next(
        (m["value"] for m in result["metrics"] if "DriftedColumnsCount" in m["metric_name"]), {}
    )
    return {
        "version": evidently.__version__,
        "import_s": import_s,
        "load_s": load_s,
        "compute_s": times,
        "compute_cpu_s": cpu,
        "peak_traced_mib": _traced_peak(run) if repeats else None,
        "maxrss_mib": _maxrss_mib(),
        "flagged": flagged,
        "methods": sorted(set(methods.values())),
        "dataset_drifted": bool(share.get("share", 0) >= 0.5) if share else None,
    }


# ---------------------------------------------------------------- orchestration


def evidently_python() -> tuple[Path | None, str]:
    """The interpreter of the Evidently environment, creating it when missing."""
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {EVIDENTLY_VENV} and installing {' '.join(EVIDENTLY_REQUIREMENTS)} ...")
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(EVIDENTLY_VENV)
        except Exception as exc:  # report any failure and go on
            return None, f"could not create the virtual environment: {exc}"
    check = subprocess.run(
        [str(python), "-c", "import evidently.presets"], capture_output=True, text=True
    )
    if check.returncode != 0:
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *EVIDENTLY_REQUIREMENTS],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            return None, "pip install failed: " + install.stderr.strip()[-800:]
        check = subprocess.run(
            [str(python), "-c", "import evidently.presets"], capture_output=True, text=True
        )
        if check.returncode != 0:
            return None, "evidently does not import: " + check.stderr.strip()[-800:]
    return python, ""


def run_worker(python: Path | str, tool: str, folder: Path, args: argparse.Namespace) -> Any:
    worker = "lockgate" if tool == "lockgate-1thread" else tool
    cmd = [str(python), str(Path(__file__).resolve()), "--worker", worker, "--data", str(folder)]
    cmd += ["--repeats", str(args.evidently_repeats if tool == "evidently" else args.repeats)]
    if tool == "lockgate-1thread":
        cmd += ["--threads", "1"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip()[-1500:], "wall_s": wall}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def median(xs: list[float]) -> float:
    """Median of the warm runs: the first call also pays one-off imports (scipy.stats)."""
    return statistics.median(xs[1:] if len(xs) > 1 else xs)


def print_table(n: int, results: dict[str, dict[str, Any]]) -> None:
    base = results.get("evidently", {})
    base_s = median(base["compute_s"]) if base.get("compute_s") else None
    print(f"\n== {n:,} reference rows x {n:,} current rows, 20 numerical + 5 categorical ==")
    head = (
        f"{'tool':<17}{'load s':>7}{'profile s':>10}{'first s':>8}{'warm s':>8}"
        f"{'warm CPU s':>11}{'vs Evid.':>9}{'peak MiB':>9}{'RSS MiB':>8}  flagged"
    )
    print(head)
    print("-" * len(head))
    for tool, r in results.items():
        if "error" in r:
            print(f"{tool:<17} FAILED: {r['error'].splitlines()[-1]}")
            continue
        med = median(r["compute_s"])
        cpu = f"{median(r['compute_cpu_s']):.3f}" if "compute_cpu_s" in r else "-"
        ratio = f"{base_s / med:.1f}x" if base_s else "n/a"
        profile = f"{r['profile_s']:.2f}" if "profile_s" in r else "-"
        flagged = ",".join(r["flagged"]) or "-"
        if r.get("warnings"):
            flagged += f"  (warning: {','.join(r['warnings'])})"
        print(
            f"{tool:<17}{r['load_s']:>7.2f}{profile:>10}{r['compute_s'][0]:>8.3f}{med:>8.3f}"
            f"{cpu:>11}{ratio:>9}{r['peak_traced_mib']:>9.0f}{r['maxrss_mib']:>8.0f}  {flagged}"
        )
    lg = results.get("lockgate", {})
    if "end_to_end_s" in lg:
        print(
            "lockgate end to end from two DataFrames (profile on the fly): "
            f"{lg['end_to_end_s']:.3f} s"
        )
    print(f"expected material: {','.join(EXPECTED_MATERIAL)}; subtle (significant only): {SUBTLE}")
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000,1000000", help="comma-separated row counts")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="timed compute runs per tool")
    parser.add_argument("--evidently-repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        if args.worker == "lockgate":
            out = work_lockgate(args.data, args.repeats, args.threads)
        elif args.worker == "scipy":
            out = work_scipy(args.data, args.repeats)
        else:
            out = work_evidently(args.data, args.repeats)
        print(json.dumps(out))
        return

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    ev_python: Path | None = None
    if args.skip_evidently:
        print("Evidently skipped (--skip-evidently).")
    else:
        ev_python, why = evidently_python()
        if ev_python is None:
            print(f"EVIDENTLY UNAVAILABLE, reporting the other tools only: {why}")
    print(f"CPUs: {os.cpu_count()}; python {sys.version.split()[0]}; numpy {np.__version__}")
    print("Injected drift: " + "; ".join(f"{k}: {v}" for k, v in DRIFT.items()))
    everything: dict[str, Any] = {"cpus": os.cpu_count(), "sizes": {}}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="lockgate-drift-bench-") as tmp:
            folder = Path(tmp)
            gen_s = generate(n, args.seed, folder)
            print(f"\n[{n:,}] data generated in {gen_s:.1f} s")
            results: dict[str, dict[str, Any]] = {}
            tools = ["lockgate", "lockgate-1thread", "scipy"]
            for tool in tools:
                print(f"[{n:,}] running {tool} ...", flush=True)
                results[tool] = run_worker(sys.executable, tool, folder, args)
            if ev_python is not None:
                print(f"[{n:,}] running evidently ...", flush=True)
                results["evidently"] = run_worker(ev_python, "evidently", folder, args)
            print_table(n, results)
            everything["sizes"][n] = {
                "generate_s": gen_s,
                "loadavg": os.getloadavg(),
                "results": results,
            }
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2))


if __name__ == "__main__":
    main()
