"""The analysis of one rollout step: figures from a window of prediction records (and the
feedback joined to them), checks against thresholds, and one outcome.

Pure code over arrays: the controller gathers an :class:`AnalysisInput` from the prediction
log and the feedback store; :func:`analyze` returns an :class:`Analysis` value. Checks:

=================  =========================================================================
``error_rate``     share of the candidate's rows answered with a 5xx status; fails above
                   ``max_error_rate`` when also ``error_rate_margin`` above the baseline's
``latency``        candidate p99 against the baseline p99: fails above ``max_latency_ratio``
                   times it when also ``latency_margin_ms`` slower; and against the absolute
                   ``slo_p99_ms`` when set
``shadow``         (shadow stage) the candidate's answers against the primary's for the same
                   rows: agreement rate for labels (fails below ``min_agreement``), the
                   distribution of the differences for numbers (fails above
                   ``max_shadow_mae`` when set)
``quality``        from feedback, once both sides have ``min_labels``: accuracy (labels) or
                   mean absolute error (numbers); fails when significantly worse (at
                   ``alpha``) than the baseline less ``max_quality_drop``
``output_shift``   the candidate's prediction distribution against the baseline's on the
                   same window (drift statistics of :mod:`lockgate.monitoring`), once each
                   side has ``max(min_requests, 100)`` rows
``ab_test``        (A/B) the decision metric per arm: two-sided test, p-value, CI
=================  =========================================================================

``error_rate`` and ``latency`` need ``min_requests`` candidate rows, else the outcome is
*inconclusive* (hold). They fail only when the excess is significant at ``alpha``: a
one-sided binomial test of the rows over the limit (errors against the allowed error rate,
requests slower than the latency limit against the 1 % a p99 allows), so one slow request
among twenty is not a p99 over the limit. ``quality`` likewise fails only when the candidate
is significantly worse than the baseline less the allowed drop (a one-sided z-test of the
mean loss). Over the limit but not yet significant is
*inconclusive*: the window grows until it is one or the other. Any failed check makes the
outcome *failed*; otherwise it is *successful*, except in an A/B test, which succeeds only
when the candidate wins.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np

from lockgate.errors import InvalidInputError
from lockgate.rollout.abtest import ABResult, Goal, compare_means, compare_proportions

Outcome: TypeAlias = Literal["successful", "failed", "inconclusive"]
Verdict: TypeAlias = Literal["pass", "fail", "inconclusive", "skipped", "warn"]
ShiftAction: TypeAlias = Literal["fail", "warn", "off"]

#: rows each side needs before the output distributions are compared: on a few dozen rows
#: two identical models differ materially (PSI, Jensen-Shannon) and significantly by chance
#: often enough to roll a healthy candidate back over a rollout's many analyses
SHIFT_MIN_ROWS = 100

_RANGES: dict[str, tuple[type, float, float]] = {
    "min_requests": (int, 1, 1e9),
    "max_error_rate": (float, 0, 1),
    "error_rate_margin": (float, 0, 1),
    "max_latency_ratio": (float, 1, 1e6),
    "latency_margin_ms": (float, 0, 1e9),
    "slo_p99_ms": (float, 0, 1e9),
    "min_agreement": (float, 0, 1),
    "max_shadow_mae": (float, 0, math.inf),
    "min_labels": (int, 1, 1e9),
    "max_quality_drop": (float, 0, 1),
    "alpha": (float, 1e-9, 0.5),
    "min_samples": (int, 2, 1e9),
}


@dataclass(frozen=True)
class AnalysisConfig:
    """Thresholds of a rollout's analyses; every field is checked on construction."""

    min_requests: int = 50
    max_error_rate: float = 0.05
    error_rate_margin: float = 0.01
    max_latency_ratio: float = 2.0
    latency_margin_ms: float = 5.0
    slo_p99_ms: float | None = None
    min_agreement: float = 0.8
    max_shadow_mae: float | None = None
    min_labels: int = 30
    max_quality_drop: float = 0.05
    output_shift: ShiftAction = "fail"
    #: significance level of the error-rate, latency and A/B tests; A/B: samples per arm
    #: before a winner, the decision metric (a business metric name sent with feedback;
    #: None: quality) and whether higher is better
    alpha: float = 0.05
    min_samples: int = 100
    metric: str | None = None
    goal: Goal = "maximize"

    def __post_init__(self) -> None:
        for name, (typ, lo, hi) in _RANGES.items():
            v = getattr(self, name)
            if v is None and name in ("slo_p99_ms", "max_shadow_mae"):
                continue
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            if typ is int:
                ok = ok and float(v).is_integer()
            if not ok or not lo <= v <= hi:
                kind = "an int" if typ is int else "a number"
                raise InvalidInputError(
                    f"The '{name}' parameter of AnalysisConfig must be {kind} in the range "
                    f"[{lo:g}, {hi:g}]. Got {v!r} instead.",
                    field=name,
                    expected=f"{kind} in [{lo:g}, {hi:g}]",
                    got=v,
                )
            object.__setattr__(self, name, typ(v))
        if self.output_shift not in ("fail", "warn", "off"):
            raise InvalidInputError.for_field(
                "output_shift", "one of 'fail', 'warn', 'off'", self.output_shift
            )
        if self.goal not in ("maximize", "minimize"):
            raise InvalidInputError.for_field("goal", "'maximize' or 'minimize'", self.goal)
        if self.metric is not None and (not isinstance(self.metric, str) or not self.metric):
            raise InvalidInputError.for_field("metric", "a business metric name", self.metric)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AnalysisConfig:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInputError.for_field(
                "analysis", f"keys among {', '.join(cls.__dataclass_fields__)}", sorted(unknown)
            )
        return cls(**d)


@dataclass(frozen=True)
class VersionWindow:
    """The records of one version in the window: one entry per row."""

    version: int
    status: np.ndarray
    latency_ms: np.ndarray
    outputs: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.status.size)

    @classmethod
    def empty(cls, version: int) -> VersionWindow:
        return cls(version, np.zeros(0, np.int32), np.zeros(0), None)


@dataclass(frozen=True)
class Labeled:
    """One version's predictions joined with their ground truth (and business metrics)."""

    version: int
    predicted: np.ndarray
    truth: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.truth.size)


@dataclass(frozen=True)
class AnalysisInput:
    phase: str
    baseline: VersionWindow
    candidate: VersionWindow
    #: shadow stage: the primary's and the shadow's outputs for the same rows (joined by id)
    pairs: tuple[np.ndarray, np.ndarray] | None = None
    labeled_baseline: Labeled | None = None
    labeled_candidate: Labeled | None = None
    #: figures of the baseline from an earlier window, used when this one has too few rows
    #: (a canary at 100 percent leaves the baseline no traffic)
    remembered: dict[str, float] | None = None


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "detail": self.detail,
            "value": _num(self.value),
            "threshold": _num(self.threshold),
        }


@dataclass(frozen=True)
class Analysis:
    outcome: Outcome
    reason: str
    checks: tuple[Check, ...]
    figures: dict[str, Any]

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "checks": [c.to_dict() for c in self.checks],
            "figures": self.figures,
        }


def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def is_label_like(values: np.ndarray) -> bool:
    """Labels (classes) rather than numbers: non-float outputs, or floats that are all whole
    and take at most 20 distinct values."""
    if values.ndim != 1:
        return False
    kind = values.dtype.kind
    if kind in "biuUSO":
        return True
    if kind != "f" or values.size == 0:
        return False
    finite = values[np.isfinite(values)]
    return bool(np.all(finite == np.round(finite))) and np.unique(finite).size <= 20


def summarize(w: VersionWindow) -> dict[str, Any]:
    errors = int(np.count_nonzero(w.status >= 500))
    ok = w.latency_ms[w.status < 400] if w.n else w.latency_ms
    return {
        "version": w.version,
        "rows": w.n,
        "errors": errors,
        "error_rate": errors / w.n if w.n else None,
        "p50_ms": float(np.percentile(ok, 50)) if ok.size else None,
        "p99_ms": float(np.percentile(ok, 99)) if ok.size else None,
    }


def analyze(cfg: AnalysisConfig, data: AnalysisInput) -> Analysis:
    """Figures, checks and the outcome of one analysis window."""
    base, cand = summarize(data.baseline), summarize(data.candidate)
    remembered = data.remembered or {}
    if base["rows"] < cfg.min_requests and remembered:
        base = {**base, **{k: remembered.get(k) for k in ("error_rate", "p99_ms")}}
        base["remembered"] = True
    figures: dict[str, Any] = {"baseline": base, "candidate": cand}
    checks = [_error_rate(cfg, base, cand), _latency(cfg, base, data.candidate)]
    if cfg.slo_p99_ms is not None:
        checks.append(_slo(cfg, data.candidate))
    if data.phase == "shadow":
        check, figures["shadow"] = _shadow(cfg, data.pairs)
        checks.append(check)
    check, figures["quality"] = _quality(cfg, data.labeled_baseline, data.labeled_candidate)
    checks.append(check)
    if cfg.output_shift != "off":
        check, figures["output_shift"] = _shift(cfg, data.baseline, data.candidate)
        checks.append(check)
    ab: ABResult | None = None
    if data.phase == "ab":
        ab = _ab(cfg, data.labeled_baseline, data.labeled_candidate)
        figures["ab"] = ab.to_dict() if ab else None
        checks.append(_ab_check(cfg, ab))
    return _outcome(tuple(checks), figures, ab_phase=data.phase == "ab")


def _outcome(checks: tuple[Check, ...], figures: dict[str, Any], *, ab_phase: bool) -> Analysis:
    failed = [c for c in checks if c.verdict == "fail"]
    if failed:
        reason = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        return Analysis("failed", reason, checks, figures)
    required = {"error_rate", "latency", "quality", "ab_test"}
    waiting = [c for c in checks if c.verdict == "inconclusive" and c.name in required]
    if waiting:
        reason = "; ".join(f"{c.name}: {c.detail}" for c in waiting)
        return Analysis("inconclusive", reason, checks, figures)
    if ab_phase:
        return Analysis("successful", "candidate wins the A/B test", checks, figures)
    return Analysis("successful", "every check passed", checks, figures)


def exceedance_pvalue(k: int, n: int, share: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, share)``: how surprising ``k`` of ``n`` rows over a
    limit are if at most ``share`` of all rows were over it."""
    if k <= 0:
        return 1.0
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, share))


def _judge(
    cfg: AnalysisConfig,
    name: str,
    k: int,
    n: int,
    share: float,
    value: float,
    limit: float,
    what: str,
) -> Check:
    """Over the limit with significance (``alpha``): fail; over it by chance so far:
    inconclusive, so the window grows; else pass. A single slow request among a few is not
    a p99 over the limit, nor one error among few requests an error rate over it."""
    p = exceedance_pvalue(k, n, share)
    if k <= share * n:
        return Check(name, "pass", f"{what} within the limit", value, limit)
    if p < cfg.alpha:
        return Check(name, "fail", f"{what} (p={p:.2g})", value, limit)
    return Check(name, "inconclusive", f"{what}, not yet significant (p={p:.2g})", value, limit)


def _error_rate(cfg: AnalysisConfig, base: dict[str, Any], cand: dict[str, Any]) -> Check:
    n = cand["rows"]
    if n < cfg.min_requests:
        return Check("error_rate", "inconclusive", f"{n} candidate rows, need {cfg.min_requests}")
    rate = cand["error_rate"]
    base_rate = base["error_rate"] or 0.0
    limit = max(cfg.max_error_rate, base_rate + cfg.error_rate_margin)
    what = f"candidate error rate {rate:.2%} vs limit {limit:.2%} (baseline {base_rate:.2%})"
    return _judge(cfg, "error_rate", cand["errors"], n, limit, rate, limit, what)


def _tail(
    cfg: AnalysisConfig, name: str, w: VersionWindow, p99: float, limit: float, what: str
) -> Check:
    """The candidate's p99 against ``limit``: more than 1% of its requests slower."""
    ok = w.latency_ms[w.status < 400]
    k = int(np.count_nonzero(ok > limit))
    return _judge(cfg, name, k, int(ok.size), 0.01, p99, limit, what)


def _latency(cfg: AnalysisConfig, base: dict[str, Any], cand: VersionWindow) -> Check:
    fig = summarize(cand)
    n = fig["rows"]
    if n < cfg.min_requests or fig["p99_ms"] is None:
        return Check("latency", "inconclusive", f"{n} candidate rows, need {cfg.min_requests}")
    p99 = fig["p99_ms"]
    ref = base["p99_ms"]
    if ref is None:
        if cfg.slo_p99_ms is not None:
            return Check("latency", "pass", "no baseline latency; judged by the SLO only", p99)
        return Check("latency", "inconclusive", "no baseline latency to compare with", p99)
    limit = max(cfg.max_latency_ratio * ref, ref + cfg.latency_margin_ms)
    what = f"candidate p99 {p99:.1f} ms vs limit {limit:.1f} ms (baseline p99 {ref:.1f} ms)"
    return _tail(cfg, "latency", cand, p99, limit, what)


def _slo(cfg: AnalysisConfig, cand: VersionWindow) -> Check:
    assert cfg.slo_p99_ms is not None
    fig = summarize(cand)
    p99 = fig["p99_ms"]
    if fig["rows"] < cfg.min_requests or p99 is None:
        return Check("latency_slo", "skipped", "too few candidate rows", None, cfg.slo_p99_ms)
    what = f"candidate p99 {p99:.1f} ms vs SLO {cfg.slo_p99_ms:g} ms"
    return _tail(cfg, "latency_slo", cand, p99, cfg.slo_p99_ms, what)


def _shadow(
    cfg: AnalysisConfig, pairs: tuple[np.ndarray, np.ndarray] | None
) -> tuple[Check, dict[str, Any]]:
    if pairs is None or pairs[0].size < cfg.min_requests:
        n = 0 if pairs is None else int(pairs[0].size)
        return Check("shadow", "skipped", f"{n} compared rows, need {cfg.min_requests}"), {
            "compared": n
        }
    primary, shadow = pairs
    if is_label_like(primary) and is_label_like(shadow):
        agree = float(np.mean(_same(primary, shadow)))
        fig: dict[str, Any] = {"compared": int(primary.size), "kind": "labels", "agreement": agree}
        if agree < cfg.min_agreement:
            detail = f"agreement {agree:.1%} < {cfg.min_agreement:.1%}"
            return Check("shadow", "fail", detail, agree, cfg.min_agreement), fig
        detail = f"agreement {agree:.1%} >= {cfg.min_agreement:.1%}"
        return Check("shadow", "pass", detail, agree, cfg.min_agreement), fig
    try:
        diff = shadow.astype(np.float64) - primary.astype(np.float64)
    except (TypeError, ValueError):
        return Check("shadow", "skipped", "outputs are not comparable"), {"compared": 0}
    diff = diff.reshape(diff.shape[0], -1).mean(axis=1) if diff.ndim > 1 else diff
    err = np.abs(diff[np.isfinite(diff)])
    mae = float(err.mean()) if err.size else None
    fig = {
        "compared": int(primary.size),
        "kind": "numbers",
        "mae": mae,
        "mean_difference": float(diff[np.isfinite(diff)].mean()) if err.size else None,
        "abs_error_p50": float(np.percentile(err, 50)) if err.size else None,
        "abs_error_p95": float(np.percentile(err, 95)) if err.size else None,
        "abs_error_max": float(err.max()) if err.size else None,
    }
    if cfg.max_shadow_mae is not None and mae is not None and mae > cfg.max_shadow_mae:
        detail = f"mean absolute difference {mae:.4g} > {cfg.max_shadow_mae:g}"
        return Check("shadow", "fail", detail, mae, cfg.max_shadow_mae), fig
    return Check("shadow", "pass", f"mean absolute difference {mae}", mae), fig


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        return np.asarray(a == b)
    return np.asarray(a.astype(str) == b.astype(str))


def quality_of(lab: Labeled) -> dict[str, Any]:
    """Accuracy for labels, MAE/RMSE for numbers, plus the means of business metrics."""
    out: dict[str, Any] = {"version": lab.version, "labels": lab.n}
    if lab.n == 0:
        return out
    if is_label_like(lab.truth) or lab.truth.dtype.kind in "OUS":
        out["accuracy"] = float(np.mean(_same(lab.predicted, lab.truth)))
    else:
        try:
            err = lab.predicted.astype(np.float64) - lab.truth.astype(np.float64)
        except (TypeError, ValueError):
            return out
        out["mae"] = float(np.mean(np.abs(err)))
        out["rmse"] = float(np.sqrt(np.mean(err * err)))
    for name, values in lab.metrics.items():
        v = values[np.isfinite(values)]
        out[f"metric.{name}"] = float(v.mean()) if v.size else None
    return out


def _quality(
    cfg: AnalysisConfig, base: Labeled | None, cand: Labeled | None
) -> tuple[Check, dict[str, Any]]:
    nb, nc = (base.n if base else 0), (cand.n if cand else 0)
    fig: dict[str, Any] = {
        "baseline": quality_of(base) if base else None,
        "candidate": quality_of(cand) if cand else None,
    }
    if base is None or cand is None or min(nb, nc) < cfg.min_labels:
        return Check(
            "quality", "skipped", f"labels: baseline {nb}, candidate {nc}; need {cfg.min_labels}"
        ), fig
    qb, qc = fig["baseline"], fig["candidate"]
    assert base is not None and cand is not None
    if "accuracy" in qb and "accuracy" in qc:
        limit = qb["accuracy"] - cfg.max_quality_drop
        hits_b = _same(base.predicted, base.truth).astype(np.float64)
        hits_c = _same(cand.predicted, cand.truth).astype(np.float64)
        what = f"accuracy {qc['accuracy']:.1%} vs limit {limit:.1%} (baseline {qb['accuracy']:.1%})"
        # worse means lower accuracy: compare the negated hit rates
        return _worse(cfg, -hits_c, -hits_b, 1.0, -limit, qc["accuracy"], limit, what), fig
    if "mae" in qb and "mae" in qc:
        limit = qb["mae"] * (1 + cfg.max_quality_drop)
        err_b = np.abs(base.predicted.astype(np.float64) - base.truth.astype(np.float64))
        err_c = np.abs(cand.predicted.astype(np.float64) - cand.truth.astype(np.float64))
        what = f"MAE {qc['mae']:.4g} vs limit {limit:.4g} (baseline {qb['mae']:.4g})"
        scale = 1 + cfg.max_quality_drop
        return _worse(cfg, err_c, err_b, scale, limit, qc["mae"], limit, what), fig
    return Check("quality", "skipped", "ground truth and predictions are not comparable"), fig


def _worse(
    cfg: AnalysisConfig,
    cand: np.ndarray,
    base: np.ndarray,
    scale: float,
    bound: float,
    value: float,
    limit: float,
    what: str,
) -> Check:
    """A one-sided test that the candidate's mean loss is above ``scale`` times the
    baseline's (for accuracy: the baseline's less the allowed drop): fail when significant
    at ``alpha``, inconclusive while over the limit by chance only, so labels a few
    unlucky predictions cannot roll back a candidate as good as the champion."""
    gap = float(cand.mean()) - bound
    if gap <= 1e-12:
        return Check("quality", "pass", f"{what} within the limit", value, limit)
    se = math.sqrt(cand.var() / cand.size + scale * scale * base.var() / base.size)
    if se == 0.0:
        return Check("quality", "fail", what, value, limit)
    from scipy.stats import norm

    p = float(norm.sf(gap / se))
    if p < cfg.alpha:
        return Check("quality", "fail", f"{what} (p={p:.2g})", value, limit)
    detail = f"{what}, not yet significant (p={p:.2g})"
    return Check("quality", "inconclusive", detail, value, limit)


def _shift(
    cfg: AnalysisConfig, base: VersionWindow, cand: VersionWindow
) -> tuple[Check, dict[str, Any]]:
    import pandas as pd

    from lockgate.monitoring import DriftConfig, detect_drift

    b = _ok_outputs(base)
    c = _ok_outputs(cand)
    need = max(cfg.min_requests, SHIFT_MIN_ROWS)
    if b is None or c is None or min(b.size, c.size) < need:
        nb = 0 if b is None else b.size
        nc = 0 if c is None else c.size
        return Check("output_shift", "skipped", f"outputs: baseline {nb}, candidate {nc}"), {
            "verdict": "insufficient_data"
        }
    if is_label_like(b) and is_label_like(c):
        b, c = b.astype(str), c.astype(str)
    else:
        b, c = b.astype(np.float64), c.astype(np.float64)
    dcfg = DriftConfig(min_sample_size=need, output_columns=("output",), max_workers=1)
    report = detect_drift(pd.DataFrame({"output": b}), pd.DataFrame({"output": c}), dcfg)
    col = report.column("output")
    fig = {
        "verdict": col.verdict,
        "test": col.test,
        "statistic": _num(col.statistic),
        "p_value": _num(col.p_value),
        "effect": {k: _num(v) for k, v in col.effect.items()},
    }
    if col.verdict == "drift":
        verdict: Verdict = "fail" if cfg.output_shift == "fail" else "warn"
        detail = f"prediction distribution shifted ({', '.join(col.reasons)})"
        return Check("output_shift", verdict, detail, _num(col.statistic)), fig
    return Check("output_shift", "pass", f"no material shift ({col.verdict})"), fig


def _ok_outputs(w: VersionWindow) -> np.ndarray | None:
    if w.outputs is None or w.outputs.ndim != 1:
        return None
    out = w.outputs
    if out.size == w.status.size:
        out = out[w.status < 400]
    if out.dtype.kind == "O":
        out = out[np.array([v is not None for v in out], dtype=bool)]
    elif out.dtype.kind == "f":
        out = out[np.isfinite(out)]
    return out


def _ab(cfg: AnalysisConfig, base: Labeled | None, cand: Labeled | None) -> ABResult | None:
    if base is None or cand is None:
        return None
    kw: dict[str, Any] = {"alpha": cfg.alpha, "min_samples": cfg.min_samples}
    if cfg.metric is not None:
        a = base.metrics.get(cfg.metric, np.zeros(0))
        b = cand.metrics.get(cfg.metric, np.zeros(0))
        return compare_means(cfg.metric, (base.version, a), (cand.version, b), goal=cfg.goal, **kw)
    if is_label_like(base.truth) or base.truth.dtype.kind in "OUS":
        hb = int(np.count_nonzero(_same(base.predicted, base.truth)))
        hc = int(np.count_nonzero(_same(cand.predicted, cand.truth)))
        return compare_proportions(
            "accuracy", (base.version, hb, base.n), (cand.version, hc, cand.n), **kw
        )
    eb = np.abs(base.predicted.astype(np.float64) - base.truth.astype(np.float64))
    ec = np.abs(cand.predicted.astype(np.float64) - cand.truth.astype(np.float64))
    return compare_means(
        "absolute_error", (base.version, eb), (cand.version, ec), goal="minimize", **kw
    )


def _ab_check(cfg: AnalysisConfig, ab: ABResult | None) -> Check:
    if ab is None:
        return Check("ab_test", "inconclusive", "no feedback joined to the arms yet")
    if ab.winner == "candidate":
        return Check("ab_test", "pass", ab.reason, ab.p_value, cfg.alpha)
    if ab.winner == "baseline":
        return Check("ab_test", "fail", ab.reason, ab.p_value, cfg.alpha)
    return Check("ab_test", "inconclusive", ab.reason, ab.p_value, cfg.alpha)
