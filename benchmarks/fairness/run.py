"""Fairness metrics: Lockgate's group_table + disparities against Fairlearn's MetricFrame.

    python benchmarks/fairness/run.py [--rows 200000] [--groups 3] [--repeat 5] [--n-boot 200]

Both sides get the same synthetic scored data (string group labels, continuous scores, y_pred =
score > 0.5) and compute the same per-group metrics: selection rate, accuracy, TPR, FPR, precision
and ROC AUC, plus the disparities (demographic parity difference/ratio, equalized odds difference,
equal opportunity difference). Fairlearn gets its cheapest route to those numbers: one MetricFrame
and its difference()/ratio(). The script checks that both agree to 1e-9 (exit code 1 if not) and
prints best-of-N and median wall times and their ratio. Bootstrap intervals are timed on their own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import sklearn.metrics as skm

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from lockgate.gates.fairness_metrics import bootstrap_ci, group_table

TOLERANCE = 1e-9
METRICS = (
    "selection_rate",
    "accuracy",
    "true_positive_rate",
    "false_positive_rate",
    "precision",
    "roc_auc",
)


def make_data(rows: int, groups: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    group = rng.choice(np.array([f"group_{i}" for i in range(groups)], dtype=object), rows)
    codes = np.unique(group, return_inverse=True)[1]
    x = rng.normal(size=rows) + 0.15 * codes
    y_true = (rng.random(rows) < 1 / (1 + np.exp(-1.5 * x))).astype(np.int64)
    y_score = 1 / (1 + np.exp(-(x + rng.normal(scale=0.8, size=rows))))
    return {
        "y_true": y_true,
        "y_pred": (y_score > 0.5).astype(np.int64),
        "sensitive": group,
        "y_score": y_score,
    }


def run_lockgate(d: dict[str, Any]) -> dict[str, Any]:
    table = group_table(d["y_true"], d["y_pred"], d["sensitive"], y_score=d["y_score"])
    dis = table.disparities()
    return {
        "by_group": {m: np.asarray(table.by_group[m], dtype=float) for m in METRICS},
        "groups": list(table.groups),
        "demographic_parity_difference": dis.demographic_parity_difference,
        "demographic_parity_ratio": dis.demographic_parity_ratio,
        "equalized_odds_difference": dis.equalized_odds_difference,
        "equal_opportunity_difference": dis.equal_opportunity_difference,
    }


def run_fairlearn(d: dict[str, Any]) -> dict[str, Any]:
    from fairlearn.metrics import (
        MetricFrame,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    def roc_auc(y_true: Any, y_pred: Any, y_score: Any) -> float:
        return float(skm.roc_auc_score(y_true, y_score))

    metrics: dict[str, Callable[..., Any]] = {
        "selection_rate": selection_rate,
        "accuracy": skm.accuracy_score,
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
        "precision": partial(skm.precision_score, zero_division=0),
        "roc_auc": roc_auc,
    }
    mf = MetricFrame(
        metrics=metrics,
        y_true=d["y_true"],
        y_pred=d["y_pred"],
        sensitive_features=d["sensitive"],
        sample_params={"roc_auc": {"y_score": d["y_score"]}},
    )
    diff, ratio = mf.difference(), mf.ratio()
    return {
        "by_group": {m: mf.by_group[m].to_numpy(dtype=float) for m in METRICS},
        "groups": list(mf.by_group.index),
        "demographic_parity_difference": diff["selection_rate"],
        "demographic_parity_ratio": ratio["selection_rate"],
        "equalized_odds_difference": max(diff["true_positive_rate"], diff["false_positive_rate"]),
        "equal_opportunity_difference": diff["true_positive_rate"],
    }


def max_abs_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    if a["groups"] != b["groups"]:
        raise SystemExit(f"group mismatch: {a['groups']} vs {b['groups']}")
    worst = max(float(np.max(np.abs(a["by_group"][m] - b["by_group"][m]))) for m in METRICS)
    for key in a:
        if key not in ("by_group", "groups"):
            worst = max(worst, abs(float(a[key]) - float(b[key])))
    return worst


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--n-boot", type=int, default=200)
    args = parser.parse_args(argv)

    import fairlearn

    d = make_data(args.rows, args.groups)
    warnings.simplefilter("ignore")  # sklearn/Fairlearn warnings are not what is measured
    run_lockgate(d)  # warm-up: imports, first-touch allocations
    lg_times, lg = timed(lambda: run_lockgate(d), args.repeat)
    fl_times, fl = timed(lambda: run_fairlearn(d), args.repeat)
    diff = max_abs_difference(lg, fl)
    boot_times, _ = timed(
        lambda: bootstrap_ci(
            d["y_true"],
            d["y_pred"],
            d["sensitive"],
            y_score=d["y_score"],
            n_boot=args.n_boot,
            seed=0,
        ),
        max(1, min(args.repeat, 3)),
    )
    boot_counts, _ = timed(
        lambda: bootstrap_ci(d["y_true"], d["y_pred"], d["sensitive"], n_boot=args.n_boot, seed=0),
        max(1, min(args.repeat, 3)),
    )

    print(
        f"rows={args.rows} groups={args.groups} repeat={args.repeat} "
        f"numpy={np.__version__} fairlearn={fairlearn.__version__} python={sys.version.split()[0]}"
    )
    print(f"{'':44s} {'best s':>9s} {'median s':>9s}")
    rows = [
        ("Lockgate group_table + disparities", lg_times),
        ("Fairlearn MetricFrame + difference/ratio", fl_times),
    ]
    for name, times in rows:
        print(f"{name:44s} {min(times):9.4f} {statistics.median(times):9.4f}")
    print(
        f"{'speed-up (Fairlearn / Lockgate)':44s} {min(fl_times) / min(lg_times):9.1f}x "
        f"{statistics.median(fl_times) / statistics.median(lg_times):8.1f}x"
    )
    print(
        f"{f'Lockgate bootstrap_ci, {args.n_boot} resamples, with AUC':44s} "
        f"{min(boot_times):9.4f} {statistics.median(boot_times):9.4f}"
    )
    print(
        f"{f'Lockgate bootstrap_ci, {args.n_boot} resamples, no scores':44s} "
        f"{min(boot_counts):9.4f} {statistics.median(boot_counts):9.4f}"
    )
    agree = diff <= TOLERANCE
    print(f"max |Lockgate - Fairlearn| = {diff:.2e} ({'agree' if agree else 'DISAGREE'} to 1e-9)")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
