"""The latency gate: p50 and p99 prediction latency for single rows and for batches, within
budgets and not worse than the baseline by more than a ratio.

Latency is measured in the validating process through the same path a served request takes
after decoding (signature validation, then the runtime's ``predict``), after ``warmup`` calls.
With a baseline, candidate and baseline calls are interleaved one for one, so both see the same
machine load and a busy CI runner slows both alike; ``max_ratio`` compares their p50s and
``max_p99_ratio`` their p99s.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from lockgate.errors import InvalidInputError
from lockgate.gates.base import Check, Gate, GateResult, fmt
from lockgate.gates.context import GateContext
from lockgate.gates.params import Interval, Param

if TYPE_CHECKING:
    from lockgate.registry.loaded import LoadedModel

_BUDGETS = ("single_p50_ms", "single_p99_ms", "batch_p50_ms", "batch_p99_ms")
_POSITIVE = Interval(float, 0, None, "neither")


class LatencyGate(Gate):
    type: ClassVar[str] = "latency"
    summary: ClassVar[str] = "p50/p99 latency of single rows and batches, vs budgets and baseline"
    parameters = {
        "single_p50_ms": Param(None, _POSITIVE, None, help="budget for one row, median"),
        "single_p99_ms": Param(None, _POSITIVE, None, help="budget for one row, 99th percentile"),
        "batch_p50_ms": Param(None, _POSITIVE, None, help="budget for one batch, median"),
        "batch_p99_ms": Param(None, _POSITIVE, None, help="budget for one batch, 99th pct"),
        "max_ratio": Param(
            None,
            Interval(float, 1, None, "neither"),
            None,
            help="candidate p50 / baseline p50 may not exceed this",
        ),
        "max_p99_ratio": Param(
            None,
            Interval(float, 1, None, "neither"),
            None,
            help="candidate p99 / baseline p99 may not exceed this",
        ),
        "batch_size": Param(64, Interval(int, 1, 100_000), help="rows per batch"),
        "n_single": Param(200, Interval(int, 10, 100_000), help="single-row calls measured"),
        "n_batch": Param(20, Interval(int, 3, 10_000), help="batch calls measured"),
        "warmup": Param(10, Interval(int, 0, 10_000), help="calls before measuring"),
    }

    def check_params(self, params: dict[str, Any]) -> None:
        wanted = (*_BUDGETS, "max_ratio", "max_p99_ratio")
        if all(params[k] is None for k in wanted):
            raise InvalidInputError(
                f"LatencyGate needs at least one threshold: one of {', '.join(wanted)}. Got none.",
                field="single_p99_ms",
                expected="at least one threshold",
                got=None,
            )

    def evaluate(self, ctx: GateContext) -> GateResult:
        p = self.params_
        rows, origin = ctx.sample_rows(ctx.candidate, max(p["batch_size"], 64))
        batch = _tile(rows, p["batch_size"])
        models = {"candidate": ctx.model(ctx.candidate)}
        if ctx.baseline is not None and (p["max_ratio"] or p["max_p99_ratio"]):
            models["baseline"] = ctx.model(ctx.baseline)
        single = _measure(models, [rows.iloc[[i % len(rows)]] for i in range(p["n_single"])], p)
        batched = _measure(models, [batch] * p["n_batch"], p)
        stats = {
            who: {
                "single_p50_ms": _pct(single[who], 50),
                "single_p99_ms": _pct(single[who], 99),
                "batch_p50_ms": _pct(batched[who], 50),
                "batch_p99_ms": _pct(batched[who], 99),
            }
            for who in models
        }
        checks = [
            Check.at_most(k, stats["candidate"][k], p[k], label=f"{k.replace('_ms', '')} (ms)")
            for k in _BUDGETS
            if p[k] is not None
        ]
        checks += self._ratio_checks(ctx, stats, p)
        observed: dict[str, Any] = dict(stats["candidate"])
        if "baseline" in stats:
            observed.update({f"{k}.baseline": v for k, v in stats["baseline"].items()})
        details = {
            "rows_from": origin,
            "batch_size": p["batch_size"],
            "calls": {"single": p["n_single"], "batch": p["n_batch"], "warmup": p["warmup"]},
            "interleaved_with_baseline": "baseline" in models,
        }
        return self.result(checks, observed=observed, details=details)

    @staticmethod
    def _ratio_checks(
        ctx: GateContext, stats: dict[str, dict[str, float]], p: dict[str, Any]
    ) -> list[Check]:
        out: list[Check] = []
        for param, pct in (("max_ratio", "p50"), ("max_p99_ratio", "p99")):
            limit = p[param]
            if limit is None:
                continue
            for kind in ("single", "batch"):
                key = f"{kind}_{pct}_ratio"
                if "baseline" not in stats:
                    missing = ctx.no_baseline(key)
                    if missing is not None:
                        out.append(missing)
                    continue
                cand = stats["candidate"][f"{kind}_{pct}_ms"]
                base = stats["baseline"][f"{kind}_{pct}_ms"]
                ratio = cand / base if base > 0 else float("inf")
                ok = ratio <= limit
                ref = ctx.baseline.ref if ctx.baseline is not None else "baseline"
                msg = (
                    f"{kind} {pct} {fmt(cand)} ms vs {fmt(base)} ms ({ref}): "
                    f"{ratio:.2f}x, {'within' if ok else 'beyond'} the allowed {limit:g}x"
                )
                out.append(Check(key, "pass" if ok else "fail", msg, ratio, limit, "max", base))
        return out


def _tile(rows: pd.DataFrame, size: int) -> pd.DataFrame:
    reps = -(-size // len(rows))
    return pd.concat([rows] * reps, ignore_index=True).head(size)


def _measure(
    models: dict[str, LoadedModel], inputs: list[pd.DataFrame], p: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Seconds per call for each model, calls interleaved, after ``warmup`` calls each."""
    for _ in range(p["warmup"]):
        for m in models.values():
            m.predict(inputs[0])
    times: dict[str, list[float]] = {who: [] for who in models}
    for data in inputs:
        for who, m in models.items():
            start = time.perf_counter()
            m.predict(data)
            times[who].append(time.perf_counter() - start)
    return {who: np.asarray(t) * 1000.0 for who, t in times.items()}


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))
