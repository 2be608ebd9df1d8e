"""The fairness gate: group fairness of a binary classifier on evaluation data, per sensitive
column, with Fairlearn's definitions (computed by :mod:`lockgate.gates.fairness_metrics`).

For each sensitive column it checks the demographic parity ratio (the four-fifths rule, default
>= 0.8) and difference, the equalized odds and equal opportunity differences, and optionally the
worst group's accuracy and ROC AUC. Every value is reported with a bootstrap confidence interval
(stratified by group); pass or fail is decided on the point estimate. A group with fewer than
``min_group_size`` rows (or, for the TPR-based metrics, fewer than ``min_group_positives``
positives) makes that column's result inconclusive: a rate from a dozen rows is noise. With a
baseline, no disparity may be worse than the baseline's by more than ``max_regression``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from lockgate.errors import InvalidInputError
from lockgate.gates.base import Check, Gate, GateResult, finite, fmt
from lockgate.gates.context import GateContext, Scored
from lockgate.gates.fairness_metrics import FOUR_FIFTHS, bootstrap_ci, group_table
from lockgate.gates.metrics import positive_label
from lockgate.gates.params import BOOL, SCALAR, Interval, ListOf, Options, Param

_UNIT = Interval(float, 0, 1)
#: (parameter, disparity metric, bound, label); differences are maxima, the rest minima
_LIMITS: tuple[tuple[str, str, str, str], ...] = (
    ("min_dp_ratio", "demographic_parity_ratio", "min", "demographic parity ratio"),
    ("max_dp_difference", "demographic_parity_difference", "max", "demographic parity diff."),
    (
        "max_equalized_odds_difference",
        "equalized_odds_difference",
        "max",
        "equalized odds difference",
    ),
    (
        "max_equal_opportunity_difference",
        "equal_opportunity_difference",
        "max",
        "equal opportunity difference",
    ),
    ("min_worst_group_accuracy", "worst_group_accuracy", "min", "worst-group accuracy"),
    ("min_worst_group_roc_auc", "worst_group_roc_auc", "min", "worst-group ROC AUC"),
)
_TPR_BASED = ("equalized_odds_difference", "equal_opportunity_difference")


class FairnessGate(Gate):
    type: ClassVar[str] = "fairness"
    summary: ClassVar[str] = "group fairness (Fairlearn metrics) per sensitive column"
    parameters = {
        "sensitive": Param((), ListOf(), help="sensitive columns (default: --sensitive)"),
        "min_dp_ratio": Param(FOUR_FIFTHS, _UNIT, None, help="four-fifths rule"),
        "max_dp_difference": Param(0.1, _UNIT, None, help="selection rate gap"),
        "max_equalized_odds_difference": Param(0.1, _UNIT, None, help="TPR/FPR gap"),
        "max_equal_opportunity_difference": Param(0.1, _UNIT, None, help="TPR gap"),
        "min_worst_group_accuracy": Param(None, _UNIT, None, help="worst group's accuracy"),
        "min_worst_group_roc_auc": Param(None, _UNIT, None, help="worst group's ROC AUC"),
        "min_group_size": Param(30, Interval(int, 1, None), help="smaller: inconclusive"),
        "min_group_positives": Param(
            10, Interval(int, 0, None), help="fewer positives: TPR metrics inconclusive"
        ),
        "max_regression": Param(
            0.02, _UNIT, None, help="allowed worsening of each disparity vs the baseline"
        ),
        "method": Param(
            "between_groups", Options(("between_groups", "to_overall")), help="as in Fairlearn"
        ),
        "intersectional": Param(False, BOOL, help="also judge combinations of the columns"),
        "n_boot": Param(200, Interval(int, 0, 10_000), help="bootstrap resamples (0: none)"),
        "confidence": Param(0.95, Interval(float, 0, 1, "neither"), help="of the intervals"),
        "pos_label": Param(None, SCALAR, None, help="favourable outcome (default: 2nd class)"),
        "seed": Param(0, Interval(int, 0, None), help="bootstrap seed"),
    }

    def evaluate(self, ctx: GateContext) -> GateResult:
        p = self.params_
        if not ctx.has_labels():
            return self.result(
                [Check.undecided("data", "the fairness gate needs --eval FILE and --target")]
            )
        columns = list(p["sensitive"] or ctx.sensitive)
        if not columns:
            return self.result(
                [Check.undecided("sensitive", "no sensitive columns: give --sensitive COLUMN")]
            )
        assert ctx.eval_data is not None
        missing = [c for c in columns if c not in ctx.eval_data.columns]
        if missing:
            raise InvalidInputError.for_field(
                "sensitive",
                f"columns of the evaluation data {list(ctx.eval_data.columns)}",
                missing,
            )
        y = ctx.y_true
        cand = ctx.scored(ctx.candidate)
        if not _binary(y, cand):
            return self.result(
                [Check.undecided("binary", "fairness metrics need a binary classifier")]
            )
        pos = positive_label(y, cand, p["pos_label"])
        base = ctx.scored(ctx.baseline) if ctx.baseline is not None else None
        groupings: list[list[str]] = [[c] for c in columns]
        if p["intersectional"] and len(columns) > 1:
            groupings.append(columns)
        checks: list[Check] = []
        observed: dict[str, Any] = {}
        details: dict[str, Any] = {"pos_label": pos, "method": p["method"], "columns": {}}
        for cols in groupings:
            label = "&".join(cols)
            sens = ctx.eval_data[cols[0]] if len(cols) == 1 else ctx.eval_data[cols]
            found = self._column(label, y, cand, base, sens, pos, ctx, p)
            checks += found[0]
            observed.update(found[1])
            details["columns"][label] = found[2]
        return self.result(checks, observed=observed, details=details)

    def _column(
        self,
        label: str,
        y: np.ndarray,
        cand: Scored,
        base: Scored | None,
        sens: Any,
        pos: Any,
        ctx: GateContext,
        p: dict[str, Any],
    ) -> tuple[list[Check], dict[str, Any], dict[str, Any]]:
        score = _score(cand, pos)
        table = group_table(y, cand.labels, sens, y_score=score, pos_label=pos)
        dis = table.disparities(p["method"]).to_dict()
        ci: dict[str, Any] = {}
        if p["n_boot"]:
            boot = bootstrap_ci(
                y,
                cand.labels,
                sens,
                y_score=score,
                pos_label=pos,
                method=p["method"],
                n_boot=p["n_boot"],
                confidence=p["confidence"],
                seed=p["seed"],
            )
            ci = {k: (finite(iv.low), finite(iv.high)) for k, iv in boot.intervals.items()}
        observed = {f"{m}[{label}]": dis.get(m) for _, m, _, _ in _LIMITS}
        detail: dict[str, Any] = {
            "groups": table.to_dict(),
            "disparities": dis,
            "confidence_intervals": {k: list(v) for k, v in ci.items()},
        }
        active = [lim for lim in _LIMITS if p[lim[0]] is not None]
        small = table.small_groups(p["min_group_size"])
        small_pos = (
            table.small_groups(p["min_group_positives"], basis="n_positive")
            if any(m in _TPR_BASED for _, m, _, _ in active)
            else []
        )
        checks: list[Check] = []
        if small:
            shown = ", ".join(f"{g.group!r} ({g.size} rows)" for g in small)
            checks.append(
                Check.undecided(
                    f"min_group_size[{label}]",
                    f"{label}: group(s) {shown} below min_group_size {p['min_group_size']}: "
                    "too few rows to judge",
                )
            )
            return checks, observed, detail
        for param, metric, bound, what in active:
            key = f"{metric}[{label}]"
            if metric in _TPR_BASED and small_pos:
                shown = ", ".join(f"{g.group!r} ({g.size})" for g in small_pos)
                checks.append(
                    Check.undecided(
                        key, f"{label}: too few positives in group(s) {shown} to judge {what}"
                    )
                )
                continue
            make = Check.at_least if bound == "min" else Check.at_most
            chk = make(key, dis.get(metric), p[param], label=f"{what} [{label}]")
            checks.append(_with_ci(chk, ci.get(metric), p["confidence"]))
        if base is not None and p["max_regression"] is not None:
            checks += self._regressions(label, y, base, sens, pos, dis, active, ctx, p, observed)
        return checks, observed, detail

    @staticmethod
    def _regressions(
        label: str,
        y: np.ndarray,
        base: Scored,
        sens: Any,
        pos: Any,
        dis: dict[str, Any],
        active: list[tuple[str, str, str, str]],
        ctx: GateContext,
        p: dict[str, Any],
        observed: dict[str, Any],
    ) -> list[Check]:
        if not _binary(y, base):
            return [Check.undecided(f"baseline[{label}]", "the baseline is not binary")]
        btable = group_table(y, base.labels, sens, y_score=_score(base, pos), pos_label=pos)
        bdis = btable.disparities(p["method"]).to_dict()
        ref = ctx.baseline.ref if ctx.baseline is not None else "baseline"
        margin = p["max_regression"]
        out = []
        for _, metric, bound, what in active:
            key = f"{metric}[{label}]"
            c, b = dis.get(metric), bdis.get(metric)
            observed[f"{key}.baseline"] = b
            if c is None or b is None:
                continue
            limit = b - margin if bound == "min" else b + margin
            ok = c >= limit if bound == "min" else c <= limit
            msg = (
                f"{what} [{label}] {fmt(c)} vs {fmt(b)} ({ref}): "
                f"{'within' if ok else 'worse than'} the allowed {fmt(limit)} "
                f"(margin {fmt(margin)})"
            )
            out.append(
                Check(
                    f"{key}.vs_baseline",
                    "pass" if ok else "fail",
                    msg,
                    c,
                    limit,
                    "min" if bound == "min" else "max",
                    b,
                )
            )
        return out


def _binary(y: np.ndarray, scored: Scored) -> bool:
    if scored.classes is not None:
        return len(scored.classes) == 2
    return len(np.unique(np.concatenate([np.asarray(y), np.asarray(scored.labels)]))) <= 2


def _score(scored: Scored, pos: Any) -> np.ndarray | None:
    if scored.proba is None or scored.classes is None or scored.proba.ndim != 2:
        return None
    classes = list(scored.classes)
    col = classes.index(pos) if pos in classes else 1
    return np.asarray(scored.proba[:, col], dtype=np.float64)


def _with_ci(
    check: Check, interval: tuple[float | None, float | None] | None, conf: float
) -> Check:
    if interval is None or interval[0] is None or interval[1] is None:
        return check
    text = f" ({conf:.0%} CI {fmt(interval[0])} to {fmt(interval[1])})"
    return dataclasses.replace(check, message=check.message + text)
