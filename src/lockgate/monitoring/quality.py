"""Model quality from ground truth: pure functions over arrays, with counts and confidence
intervals.

Classifiers: accuracy, precision, recall, F1, ROC AUC and log loss; regressors: MAE, RMSE and
R². Every figure is an :class:`Estimate` with its value, a confidence interval, the method of
the interval and the count it rests on. The values equal :mod:`sklearn.metrics` (a test checks
them on random data); the intervals are:

==========================  ================================================================
accuracy                    Wilson score interval (a proportion of the ``n`` rows)
precision, recall (binary)  Wilson score interval (proportions of the predicted / actual
                            positives)
F1; macro precision,        bootstrap: the confusion matrix is resampled as a multinomial of
recall and F1 (multiclass)  its cells, which is exactly a row bootstrap for any figure of the
                            matrix; percentile interval
ROC AUC (binary)            DeLong's variance, normal approximation, clipped to [0, 1]
ROC AUC (multiclass)        row bootstrap of the one-vs-rest macro average; percentile
log loss, MAE               normal approximation of the mean of the per-row losses
RMSE                        normal approximation of the MSE, through ``sqrt`` (delta method)
R²                          normal approximation of the ratio ``SSE / SST`` (delta method)
==========================  ================================================================

A figure that is undefined on the data (precision without a predicted positive, R² of a
constant truth, ROC AUC with one class) has ``value`` None and a ``note`` saying why, where
scikit-learn would warn and return 0. Bootstraps are seeded, so a report is reproducible.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np

from lockgate.errors import InvalidInputError
from lockgate.monitoring.intervals import (
    delong,
    normal_interval,
    percentile_interval,
    roc_auc,
    wilson_interval,
    z_value,
)

Task: TypeAlias = Literal["classification", "regression"]

#: metrics where higher is better; the others (log_loss, mae, rmse) are losses
HIGHER_IS_BETTER: frozenset[str] = frozenset(
    {"accuracy", "precision", "recall", "f1", "roc_auc", "r2"}
)
CLASSIFICATION_METRICS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
)
REGRESSION_METRICS: tuple[str, ...] = ("mae", "rmse", "r2")
METRICS: tuple[str, ...] = CLASSIFICATION_METRICS + REGRESSION_METRICS

#: resamples of the bootstrap intervals
N_BOOT = 1000
#: resamples of the (costlier) multiclass ROC AUC bootstrap
N_BOOT_ROWS = 200
#: probabilities are clipped to [eps, 1 - eps] for the log loss, as scikit-learn does
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Estimate:
    """One figure: ``value`` and its ``low``/``high`` interval bounds (None when undefined),
    the interval ``method`` and the count ``n`` the figure rests on."""

    value: float | None
    low: float | None
    high: float | None
    method: str
    n: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": _f(self.value),
            "low": _f(self.low),
            "high": _f(self.high),
            "method": self.method,
            "n": self.n,
        }
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class QualityReport:
    """The quality of ``n`` predictions against their ground truth."""

    task: Task
    n: int
    metrics: dict[str, Estimate]
    confidence: float = 0.95
    classes: list[str] | None = None
    positive: str | None = None
    average: str | None = None
    notes: list[str] = field(default_factory=list)

    def value(self, metric: str) -> float | None:
        est = self.metrics.get(metric)
        return None if est is None else est.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "n": self.n,
            "confidence": self.confidence,
            "classes": self.classes,
            "positive": self.positive,
            "average": self.average,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "notes": list(self.notes),
        }


# -- figures -------------------------------------------------------------------------------


def _proportion(successes: int, n: int, confidence: float, note: str) -> Estimate:
    if n == 0:
        return Estimate(None, None, None, "wilson", 0, note)
    lo, hi = wilson_interval(successes, n, confidence)
    return Estimate(successes / n, lo, hi, "wilson", n)


def _normal_mean(values: np.ndarray, confidence: float) -> Estimate:
    lo, hi = normal_interval(values, confidence)
    return Estimate(float(values.mean()), lo, hi, "normal", values.size)


# -- classification ------------------------------------------------------------------------


def _labels(values: np.ndarray) -> np.ndarray:
    """Class labels as strings (``1.0`` -> ``"1"``, booleans ``True``/``False``)."""
    from lockgate.monitoring.columns import label

    if values.dtype.kind in "iu":
        return values.astype(str)
    return np.asarray([label(v) for v in values.tolist()], dtype=object).astype(str)


def _sort_key(classes: Sequence[str]) -> list[str]:
    """Classes in scikit-learn's order: numerically when every label is a number."""
    try:
        return sorted(classes, key=float)
    except ValueError:
        return sorted(classes)


def _default_positive(classes: list[str]) -> str | None:
    """``1`` (or ``True``) for 0/1 (boolean) labels, else the greater label, as
    scikit-learn's ``pos_label=1`` and its ROC convention."""
    if set(classes) <= {"0", "1"}:
        return "1"
    if set(classes) <= {"False", "True"}:
        return "True"
    return classes[-1] if classes else None


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> np.ndarray:
    """``k x k`` counts: rows are the true classes, columns the predicted ones."""
    index = {c: i for i, c in enumerate(classes)}
    t = np.fromiter((index[v] for v in y_true.tolist()), dtype=np.int64, count=y_true.size)
    p = np.fromiter((index[v] for v in y_pred.tolist()), dtype=np.int64, count=y_pred.size)
    k = len(classes)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 of a stack of confusion matrices ``(..., k, k)``;
    an undefined ratio is 0, as scikit-learn's ``zero_division=0``."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    predicted = cm.sum(axis=-2)
    actual = cm.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(actual > 0, tp / np.maximum(actual, 1), 0.0)
        denom = predicted + actual
        f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return precision, recall, f1


def _bootstrap_cells(cm: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` confusion matrices drawn as multinomials of the observed cell shares."""
    n = int(cm.sum())
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, cm.ravel() / n, size=n_boot)
    k = cm.shape[0]
    return draws.reshape(n_boot, k, k)


def classification_quality(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray | None = None,
    y_score: np.ndarray | Sequence[Any] | None = None,
    *,
    classes: Sequence[Any] | None = None,
    positive: Any = None,
    threshold: float = 0.5,
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> QualityReport:
    """Quality of a classifier.

    ``y_pred`` are predicted labels; ``y_score`` (optional) probabilities: a 1-D array of the
    positive class's probability (binary) or an ``(n, k)`` array over ``classes`` in sorted
    order. Without ``y_pred``, labels come from the scores (``>= threshold`` for 1-D scores,
    the arg max otherwise). Binary (two classes or fewer): precision, recall and F1 of
    ``positive`` (default: ``1``/``True`` when present, else the greater label). Multiclass:
    their macro averages over the classes seen in truth or predictions, as scikit-learn's
    ``average="macro"``. ROC AUC and log loss need ``y_score``.
    """
    _check_confidence(confidence)
    truth = _labels(_array(y_true, "y_true"))
    n = truth.size
    score = None if y_score is None else np.asarray(y_score, dtype=np.float64)
    if score is not None:
        if score.ndim not in (1, 2) or score.shape[0] != n:
            raise InvalidInputError.for_field(
                "y_score", f"probabilities for the {n} rows, shape (n,) or (n, k)", score.shape
            )
        if score.size and (not np.all(np.isfinite(score)) or score.min() < 0 or score.max() > 1):
            raise InvalidInputError.for_field("y_score", "probabilities in [0, 1]", "other values")
    seen = [str(c) for c in classes] if classes is not None else None
    if y_pred is None:
        if score is None:
            raise InvalidInputError.for_field("y_pred", "predicted labels or y_score", None)
        pred = _labels_from_scores(score, truth, seen, positive, threshold)
    else:
        pred = _labels(_array(y_pred, "y_pred"))
        if pred.size != n:
            raise InvalidInputError.for_field("y_pred", f"{n} predictions", pred.size)
    present = _sort_key(sorted(set(truth.tolist()) | set(pred.tolist())))
    if seen is not None:
        extra = [c for c in present if c not in seen]
        if extra:
            raise InvalidInputError.for_field("classes", "every label of y_true and y_pred", extra)
        all_classes = _sort_key(seen)
    else:
        all_classes = present
    binary = len(all_classes) <= 2
    pos = str(positive) if positive is not None else _default_positive(all_classes)
    if binary and positive is not None and pos not in all_classes and all_classes:
        raise InvalidInputError.for_field("positive", "one of " + ", ".join(all_classes), pos)
    metrics: dict[str, Estimate] = {}
    notes: list[str] = []
    if n == 0:
        empty = Estimate(None, None, None, "none", 0, "no labelled predictions")
        metrics = {m: empty for m in CLASSIFICATION_METRICS}
        return QualityReport(
            "classification", 0, metrics, confidence, all_classes, pos if binary else None,
            None if binary else "macro", ["no labelled predictions"],
        )  # fmt: skip
    correct = int(np.count_nonzero(truth == pred))
    metrics["accuracy"] = _proportion(correct, n, confidence, "")
    cm = confusion(truth, pred, present)
    if binary:
        assert pos is not None
        tp = int(np.count_nonzero((truth == pos) & (pred == pos)))
        n_pred = int(np.count_nonzero(pred == pos))
        n_true = int(np.count_nonzero(truth == pos))
        metrics["precision"] = _proportion(tp, n_pred, confidence, f"no prediction of {pos!r}")
        metrics["recall"] = _proportion(tp, n_true, confidence, f"no true {pos!r} in the window")
        metrics["f1"] = _binary_f1(cm, present, pos, confidence, n_boot, seed)
    else:
        metrics.update(_macro(cm, confidence, n_boot, seed))
    if score is None:
        note = "needs predicted probabilities (the endpoint logs labels only)"
        metrics["roc_auc"] = Estimate(None, None, None, "none", n, note)
        metrics["log_loss"] = Estimate(None, None, None, "none", n, note)
    else:
        metrics["roc_auc"], metrics["log_loss"] = _scored(
            truth, score, all_classes, pos, binary, confidence, seed
        )
    for name, est in metrics.items():
        if est.value is None and est.note:
            notes.append(f"{name}: {est.note}")
    return QualityReport(
        "classification", n, metrics, confidence, all_classes, pos if binary else None,
        None if binary else "macro", notes,
    )  # fmt: skip


def _labels_from_scores(
    score: np.ndarray,
    truth: np.ndarray,
    classes: list[str] | None,
    positive: Any,
    threshold: float,
) -> np.ndarray:
    names = _sort_key(classes if classes is not None else sorted(set(truth.tolist())))
    if score.ndim == 1:
        if len(names) > 2:
            raise InvalidInputError.for_field(
                "y_score", "an (n, k) array of probabilities for more than two classes", "1-D"
            )
        if len(names) < 2:
            names = ["0", "1"] if not names or names[0] in ("0", "1") else [names[0], "other"]
        pos = str(positive) if positive is not None else str(_default_positive(names))
        neg = next(c for c in names if c != pos)
        return np.where(score >= threshold, pos, neg).astype(str)
    if score.shape[1] != len(names):
        raise InvalidInputError.for_field(
            "y_score", f"{len(names)} columns (one per class)", score.shape[1]
        )
    picked: np.ndarray = np.asarray(names, dtype=str)[np.argmax(score, axis=1)]
    return picked


def _binary_f1(
    cm: np.ndarray, classes: list[str], pos: str, confidence: float, n_boot: int, seed: int
) -> Estimate:
    n = int(cm.sum())
    if pos not in classes:
        return Estimate(None, None, None, "bootstrap", n, f"{pos!r} neither true nor predicted")
    i = classes.index(pos)
    _, _, f1 = _prf(cm)
    boot = _bootstrap_cells(cm, n_boot, seed)
    tp = boot[:, i, i].astype(np.float64)
    denom = boot[:, i, :].sum(axis=1) + boot[:, :, i].sum(axis=1)
    samples = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)
    lo, hi = percentile_interval(samples, confidence)
    return Estimate(float(f1[i]), lo, hi, "bootstrap", n)


def _macro(cm: np.ndarray, confidence: float, n_boot: int, seed: int) -> dict[str, Estimate]:
    n = int(cm.sum())
    p, r, f = _prf(cm)
    boot = _bootstrap_cells(cm, n_boot, seed)
    bp, br, bf = _prf(boot)
    out: dict[str, Estimate] = {}
    for name, value, samples in (
        ("precision", p, bp),
        ("recall", r, br),
        ("f1", f, bf),
    ):
        lo, hi = percentile_interval(samples.mean(axis=-1), confidence)
        out[name] = Estimate(float(value.mean()), lo, hi, "bootstrap", n)
    return out


def _scored(
    truth: np.ndarray,
    score: np.ndarray,
    classes: list[str],
    pos: str | None,
    binary: bool,
    confidence: float,
    seed: int,
) -> tuple[Estimate, Estimate]:
    n = truth.size
    if score.ndim == 1 or (binary and score.shape[1] == 2):
        if len(classes) < 2 or pos is None:
            note = "needs both classes in the window"
            return (
                Estimate(None, None, None, "delong", n, note),
                Estimate(None, None, None, "normal", n, note),
            )
        p_pos = score if score.ndim == 1 else score[:, classes.index(pos)]
        y = truth == pos
        auc = _delong(p_pos, y, confidence)
        p_true = np.where(y, p_pos, 1 - p_pos)
        return auc, _normal_mean(-np.log(np.clip(p_true, _EPS, 1 - _EPS)), confidence)
    if score.shape[1] != len(classes):
        raise InvalidInputError.for_field(
            "y_score", f"{len(classes)} columns (one per class, sorted)", score.shape[1]
        )
    index = {c: i for i, c in enumerate(classes)}
    t = np.fromiter((index[v] for v in truth.tolist()), dtype=np.int64, count=n)
    clipped = np.clip(score, _EPS, 1 - _EPS)
    loss = -np.log(clipped[np.arange(n), t])
    return _ovr_auc(score, t, len(classes), confidence, seed), _normal_mean(loss, confidence)


def _delong(score: np.ndarray, positive: np.ndarray, confidence: float) -> Estimate:
    auc, lo, hi = delong(score, positive, confidence)
    note = "" if auc is not None else "needs both classes in the window"
    return Estimate(auc, lo, hi, "delong", score.size, note)


def _ovr_auc(score: np.ndarray, t: np.ndarray, k: int, confidence: float, seed: int) -> Estimate:
    n = t.size

    def macro(idx: np.ndarray | None) -> float:
        tt = t if idx is None else t[idx]
        ss = score if idx is None else score[idx]
        aucs = [roc_auc(ss[:, c], tt == c) for c in range(k)]
        got = [a for a in aucs if a is not None]
        return float(np.mean(got)) if len(got) == k else math.nan

    value = macro(None)
    if math.isnan(value):
        note = "needs every class in the window"
        return Estimate(None, None, None, "bootstrap", n, note)
    rng = np.random.default_rng(seed)
    samples = np.array([macro(rng.integers(0, n, n)) for _ in range(N_BOOT_ROWS)])
    lo, hi = percentile_interval(samples, confidence)
    return Estimate(value, lo, hi, "bootstrap", n)


# -- regression ----------------------------------------------------------------------------


def regression_quality(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    *,
    confidence: float = 0.95,
) -> QualityReport:
    """Quality of a regressor: MAE, RMSE and R², each with a normal-approximation interval
    (see the module docstring)."""
    _check_confidence(confidence)
    t = _numbers(y_true, "y_true")
    p = _numbers(y_pred, "y_pred")
    if t.size != p.size:
        raise InvalidInputError.for_field("y_pred", f"{t.size} predictions", p.size)
    n = t.size
    if n == 0:
        empty = Estimate(None, None, None, "none", 0, "no labelled predictions")
        return QualityReport(
            "regression", 0, {m: empty for m in REGRESSION_METRICS}, confidence,
            notes=["no labelled predictions"],
        )  # fmt: skip
    err = p - t
    metrics = {"mae": _normal_mean(np.abs(err), confidence)}
    sq = err * err
    mse = _normal_mean(sq, confidence)
    assert mse.value is not None
    rmse = math.sqrt(mse.value)
    if mse.low is None or mse.high is None:
        metrics["rmse"] = Estimate(rmse, None, None, "delta", n)
    elif rmse > 0:
        half = (mse.high - mse.value) / (2 * rmse)
        metrics["rmse"] = Estimate(rmse, max(0.0, rmse - half), rmse + half, "delta", n)
    else:
        metrics["rmse"] = Estimate(0.0, 0.0, 0.0, "delta", n)
    metrics["r2"] = _r2(t, sq, confidence)
    notes = [f"{k}: {v.note}" for k, v in metrics.items() if v.note]
    return QualityReport("regression", n, metrics, confidence, notes=notes)


def _r2(t: np.ndarray, sq: np.ndarray, confidence: float) -> Estimate:
    n = t.size
    dev = (t - t.mean()) ** 2
    sst = float(dev.sum())
    if sst == 0:
        return Estimate(None, None, None, "delta", n, "ground truth is constant")
    ratio = float(sq.sum()) / sst
    value = 1.0 - ratio
    if n < 2:
        return Estimate(value, None, None, "delta", n)
    # linearisation of SSE/SST: var(mean(a) / mean(b)) ~ var(a - r b) / (n mean(b)^2)
    resid = sq - ratio * dev
    se = float(resid.std(ddof=1)) / (math.sqrt(n) * float(dev.mean()))
    half = z_value(confidence) * se
    return Estimate(value, value - half, min(1.0, value + half), "delta", n)


# -- dispatch ------------------------------------------------------------------------------


def is_label_like(values: np.ndarray) -> bool:
    """Class labels rather than numbers: strings, booleans, integers, or floats that are all
    whole and take at most 20 distinct values."""
    if values.ndim != 1:
        return False
    kind = values.dtype.kind
    if kind in "biuUSO":
        return True
    if kind != "f" or values.size == 0:
        return False
    finite = values[np.isfinite(values)]
    return bool(np.all(finite == np.round(finite))) and np.unique(finite).size <= 20


def infer_task(truth: np.ndarray, predicted: np.ndarray) -> tuple[Task, bool]:
    """The task of a window and whether ``predicted`` holds scores (probabilities of the
    positive class, or an ``(n, k)`` array) rather than labels."""
    if predicted.ndim == 2:
        return "classification", True
    if is_label_like(truth):
        if predicted.dtype.kind == "f" and not is_label_like(predicted):
            finite = predicted[np.isfinite(predicted)]
            if finite.size and finite.min() >= 0 and finite.max() <= 1:
                return "classification", True
        return "classification", False
    return "regression", False


def quality(
    y_true: Sequence[Any] | np.ndarray,
    predicted: Sequence[Any] | np.ndarray,
    *,
    task: Task | None = None,
    positive: Any = None,
    threshold: float = 0.5,
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> QualityReport:
    """Quality of ``predicted`` (labels, scores or numbers) against ``y_true``, the task
    inferred by :func:`infer_task` unless given."""
    truth = _array(y_true, "y_true")
    pred = np.asarray(predicted)
    if pred.dtype.kind == "O" and pred.ndim == 1 and pred.size:
        with contextlib.suppress(TypeError, ValueError):  # numbers stored as objects
            pred = pred.astype(np.float64)
    inferred, scored = infer_task(truth, pred)
    if task is None:
        task = inferred
    if task not in ("classification", "regression"):
        raise InvalidInputError.for_field("task", "'classification' or 'regression'", task)
    if task == "regression":
        return regression_quality(truth, pred, confidence=confidence)
    if scored:
        return classification_quality(
            truth, None, pred, positive=positive, threshold=threshold, confidence=confidence,
            n_boot=n_boot, seed=seed,
        )  # fmt: skip
    return classification_quality(
        truth, pred, positive=positive, confidence=confidence, n_boot=n_boot, seed=seed
    )


def _array(values: Sequence[Any] | np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1:
        raise InvalidInputError.for_field(name, "a 1-D array", f"shape {a.shape}")
    return a


def _numbers(values: Sequence[Any] | np.ndarray, name: str) -> np.ndarray:
    a = _array(values, name)
    try:
        out = a.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError.for_field(name, "numbers", str(a.dtype)) from None
    if not np.all(np.isfinite(out)):
        raise InvalidInputError.for_field(name, "finite numbers", "NaN or inf")
    return out


def _check_confidence(confidence: float) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise InvalidInputError.for_field("confidence", "a number in (0, 1)", confidence)
    if not 0 < confidence < 1:
        raise InvalidInputError.for_field("confidence", "a number in (0, 1)", confidence)


def _f(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)
