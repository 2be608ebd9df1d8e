"""The quality gate: metrics on an evaluation dataset, with absolute thresholds and thresholds on
the change against the baseline, overall and per slice.

As in TFX's model validation, each metric may have a value threshold (``min`` / ``max``) and a
change threshold against the baseline; the direction comes from the metric (higher is better for
accuracy, lower for log loss) unless ``higher_is_better`` says otherwise. ``max_regression`` is
the largest allowed worsening in the metric's units (0.01 = one point of accuracy);
``max_relative_regression`` the largest allowed worsening as a fraction of the baseline's value
(0.02 = 2%). Policy example::

    [[gates]]
    type = "quality"
    slices = ["region"]
    metrics = { roc_auc = { min = 0.7, max_regression = 0.01 },
                log_loss = { max_relative_regression = 0.05 } }

Without ``metrics``, the task's default metrics are checked against the baseline with the
default margins (:data:`~lockgate.gates.metrics.DEFAULT_MARGINS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from lockgate.errors import InvalidInputError
from lockgate.gates import metrics as qm
from lockgate.gates.base import Check, Gate, GateResult, finite, fmt
from lockgate.gates.context import GateContext
from lockgate.gates.params import (
    BOOL,
    MAPPING,
    SCALAR,
    Interval,
    ListOf,
    Options,
    Param,
    check_value,
    parameter_error,
    unknown_key_error,
)

_RULE_PARAMS: dict[str, Param] = {
    "min": Param(None, Interval(float, None, None), None),
    "max": Param(None, Interval(float, None, None), None),
    "max_regression": Param(None, Interval(float, 0, None), None),
    "max_relative_regression": Param(None, Interval(float, 0, None), None),
    "higher_is_better": Param(None, BOOL, None),
}


@dataclass(frozen=True)
class MetricRule:
    """Thresholds of one metric."""

    metric: str
    higher_is_better: bool
    min: float | None = None
    max: float | None = None
    max_regression: float | None = None
    max_relative_regression: float | None = None

    @property
    def compares(self) -> bool:
        return self.max_regression is not None or self.max_relative_regression is not None


def parse_rules(owner: str, raw: Any) -> tuple[MetricRule, ...] | None:
    """The ``metrics`` parameter as rules; None means the task's defaults."""
    if raw is None:
        return None
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        raw = {str(name): {} for name in raw}
    rules = []
    for name, spec in raw.items():
        if name not in qm.ALL_METRICS:
            raise unknown_key_error(owner, str(name), qm.ALL_METRICS, "metric")
        if not isinstance(spec, Mapping):
            raise parameter_error(owner, f"metrics.{name}", "a mapping of thresholds", spec)
        for key in spec:
            if key not in _RULE_PARAMS:
                raise unknown_key_error(owner, str(key), _RULE_PARAMS, "key", f"metrics.{name}.")
        vals = {
            key: check_value(owner, f"metrics.{name}.{key}", param, spec.get(key))
            for key, param in _RULE_PARAMS.items()
        }
        rules.append(_rule(name, vals))
    if not rules:
        raise parameter_error(owner, "metrics", "a non-empty mapping or list of metrics", raw)
    return tuple(rules)


def _rule(name: str, vals: dict[str, Any]) -> MetricRule:
    hib = vals.pop("higher_is_better")
    if all(v is None for v in vals.values()):
        key, margin = qm.DEFAULT_MARGINS[name]
        vals[key] = margin
    return MetricRule(name, qm.HIGHER_IS_BETTER[name] if hib is None else hib, **vals)


def default_rules(task: qm.Task, has_proba: bool) -> tuple[MetricRule, ...]:
    names = [m for m in qm.DEFAULT_METRICS[task] if has_proba or m not in ("roc_auc", "log_loss")]
    return tuple(_rule(m, dict.fromkeys(_RULE_PARAMS)) for m in names)


class QualityGate(Gate):
    type: ClassVar[str] = "quality"
    summary: ClassVar[str] = "metrics on evaluation data: thresholds and change vs the baseline"
    parameters = {
        "metrics": Param(
            None,
            MAPPING,
            ListOf(),
            None,
            help="metric -> {min, max, max_regression, max_relative_regression, "
            "higher_is_better}, or a list of metrics with default margins",
        ),
        "slices": Param((), ListOf(), help="columns whose values are checked separately"),
        "min_slice_size": Param(
            30, Interval(int, 1, None), help="smaller slices are reported, not judged"
        ),
        "task": Param(
            "auto", Options(("auto", "classification", "regression")), help="how to score"
        ),
        "pos_label": Param(None, SCALAR, None, help="positive class (default: the model's 2nd)"),
    }

    def check_params(self, params: dict[str, Any]) -> None:
        params["metrics"] = parse_rules(type(self).__name__, params["metrics"])

    def evaluate(self, ctx: GateContext) -> GateResult:
        if not ctx.has_labels():
            return self.result(
                [Check.undecided("data", "the quality gate needs --eval FILE and --target")]
            )
        p = self.params_
        assert ctx.eval_data is not None
        missing = [s for s in p["slices"] if s not in ctx.eval_data.columns]
        if missing:
            raise InvalidInputError.for_field(
                "slices", f"columns of the evaluation data {list(ctx.eval_data.columns)}", missing
            )
        y = ctx.y_true
        cand = ctx.scored(ctx.candidate)
        base = ctx.scored(ctx.baseline) if ctx.baseline is not None else None
        task: qm.Task = qm.infer_task(y, cand) if p["task"] == "auto" else p["task"]
        rules = p["metrics"] or default_rules(task, cand.proba is not None)
        pos = qm.positive_label(y, cand, p["pos_label"]) if task == "classification" else None
        checks: list[Check] = []
        observed: dict[str, Any] = {}
        skipped: list[dict[str, Any]] = []
        for label, mask in self._slices(ctx, p["slices"]):
            n = len(y) if mask is None else int(mask.sum())
            if mask is not None and n < p["min_slice_size"]:
                skipped.append({"slice": label, "rows": n})
                continue
            for rule in rules:
                key = rule.metric if label is None else f"{rule.metric}[{label}]"
                if (task == "classification" and rule.metric in qm.REGRESSION_METRICS) or (
                    task == "regression" and rule.metric in qm.CLASSIFICATION_METRICS
                ):
                    checks.append(
                        Check.undecided(key, f"{rule.metric} does not apply to a {task} model")
                    )
                    continue
                value = qm.compute(rule.metric, y, cand, mask, pos)
                observed[key] = finite(value.value)
                base_value = qm.compute(rule.metric, y, base, mask, pos) if base else None
                if base_value is not None:
                    observed[f"{key}.baseline"] = finite(base_value.value)
                checks.extend(self._rule_checks(ctx, rule, key, value, base_value))
        details: dict[str, Any] = {
            "task": task,
            "rows": len(y),
            "metrics": [r.__dict__ for r in rules],
            "slices_skipped": skipped,
        }
        if pos is not None:
            details["pos_label"] = pos
        if ctx.baseline is not None:
            details["baseline"] = ctx.baseline.ref
        elif ctx.baseline_note:
            details["baseline"] = ctx.baseline_note
        result = self.result(checks, observed=observed, details=details)
        if ctx.baseline is None and ctx.baseline_note and result.status == "pass":
            reason = f"{result.reason} ({ctx.baseline_note}; change thresholds not checked)"
            return self.result(checks, observed=observed, details=details, reason=reason)
        return result

    @staticmethod
    def _slices(ctx: GateContext, slices: Sequence[str]) -> list[tuple[str | None, Any]]:
        out: list[tuple[str | None, Any]] = [(None, None)]
        assert ctx.eval_data is not None
        for column in slices:
            values = ctx.eval_data[column].to_numpy()
            for v in sorted({x for x in values.tolist()}, key=str):
                out.append((f"{column}={v}", values == v))
        return out

    @staticmethod
    def _rule_checks(
        ctx: GateContext,
        rule: MetricRule,
        key: str,
        value: qm.MetricValue,
        base: qm.MetricValue | None,
    ) -> list[Check]:
        if value.value is None or not np.isfinite(value.value):
            return [Check.undecided(key, f"{key}: {value.why or 'undefined'}")]
        v = float(value.value)
        out: list[Check] = []
        if rule.min is not None:
            out.append(Check.at_least(key, v, rule.min))
        if rule.max is not None:
            out.append(Check.at_most(key, v, rule.max))
        if not rule.compares:
            return out
        if base is None:
            missing = ctx.no_baseline(f"{key}.change")
            return [*out, missing] if missing is not None else out
        if base.value is None or not np.isfinite(base.value):
            why = base.why or "undefined"
            return [*out, Check.undecided(f"{key}.change", f"baseline {key}: {why}")]
        b = float(base.value)
        ref = ctx.baseline.ref if ctx.baseline is not None else "baseline"
        sign = 1.0 if rule.higher_is_better else -1.0
        if rule.max_regression is not None:
            out.append(_change(key, v, b, v - b, rule.max_regression, sign, False, ref))
        if rule.max_relative_regression is not None:
            if b == 0:
                out.append(
                    Check.undecided(f"{key}.relative_change", f"{key}: the baseline's value is 0")
                )
            else:
                rel = (v - b) / abs(b)
                out.append(_change(key, v, b, rel, rule.max_relative_regression, sign, True, ref))
        return out


def _change(
    key: str,
    value: float,
    base: float,
    change: float,
    allowed: float,
    sign: float,
    relative: bool,
    ref: str,
) -> Check:
    """A change check: ``change`` (candidate - baseline, or that over |baseline|) must not
    worsen by more than ``allowed`` in the metric's direction (``sign`` +1: higher is better)."""
    limit = -allowed if sign > 0 else allowed
    ok = change >= limit if sign > 0 else change <= limit
    unit = (lambda x: f"{x:+.2%}") if relative else (lambda x: f"{x:+.4g}")
    what = "relative change" if relative else "change"
    moved = "rose" if value > base else "fell" if value < base else "stayed"
    msg = (
        f"{key} {moved} from {fmt(base)} ({ref}) to {fmt(value)} (candidate): {what} "
        f"{unit(change)}, {'within' if ok else 'beyond'} the allowed {unit(limit)}"
    )
    return Check(
        f"{key}.{'relative_change' if relative else 'change'}",
        "pass" if ok else "fail",
        msg,
        observed=change,
        threshold=limit,
        bound="min" if sign > 0 else "max",
        baseline=base,
    )
