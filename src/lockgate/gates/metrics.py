"""Quality metrics for the quality gate, computed with scikit-learn on a version's predictions.

Classifiers: ``accuracy``, ``f1``, ``precision``, ``recall`` (binary: of the positive class;
multiclass: macro averages), ``roc_auc`` (binary: of the positive class's probability;
multiclass: one-vs-rest macro) and ``log_loss``. Regressors: ``mae``, ``rmse``, ``r2``. A metric
that is undefined on the rows at hand (ROC AUC of a slice with one class, a classifier without
probabilities) is reported as undefined with the reason, never as a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np

from lockgate.gates.context import Scored

Task: TypeAlias = Literal["classification", "regression"]

CLASSIFICATION_METRICS = ("accuracy", "f1", "precision", "recall", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "r2")
ALL_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "f1": True,
    "precision": True,
    "recall": True,
    "roc_auc": True,
    "log_loss": False,
    "mae": False,
    "rmse": False,
    "r2": True,
}
#: the default allowed change against the baseline: absolute for scores bounded by 1,
#: relative for error metrics that have the target's units
DEFAULT_MARGINS: dict[str, tuple[str, float]] = {
    "accuracy": ("max_regression", 0.01),
    "f1": ("max_regression", 0.01),
    "precision": ("max_regression", 0.01),
    "recall": ("max_regression", 0.01),
    "roc_auc": ("max_regression", 0.01),
    "r2": ("max_regression", 0.01),
    "log_loss": ("max_relative_regression", 0.02),
    "mae": ("max_relative_regression", 0.02),
    "rmse": ("max_relative_regression", 0.02),
}
DEFAULT_METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("accuracy", "f1", "roc_auc"),
    "regression": ("rmse", "mae", "r2"),
}


@dataclass(frozen=True)
class MetricValue:
    """A metric's value, or None with ``why`` it is undefined."""

    value: float | None
    why: str = ""


def infer_task(y_true: np.ndarray, scored: Scored) -> Task:
    """A classifier has probabilities or predicts labels (str, bool, or integers that match
    the target's few values); anything else is a regressor."""
    if scored.proba is not None:
        return "classification"
    labels = np.asarray(scored.labels)
    if labels.dtype.kind in "OUSb" or np.asarray(y_true).dtype.kind in "OUSb":
        return "classification"
    if labels.dtype.kind in "iu" and np.asarray(y_true).dtype.kind in "iu":
        return "classification" if len(np.unique(y_true)) <= 50 else "regression"
    return "regression"


def positive_label(y_true: np.ndarray, scored: Scored, pos_label: Any) -> Any:
    """``pos_label`` when given, else the second class of the model (scikit-learn's
    convention), else the larger of the labels seen."""
    if pos_label is not None:
        return pos_label
    if scored.classes is not None and len(scored.classes) == 2:
        return scored.classes[1].item() if hasattr(scored.classes[1], "item") else scored.classes[1]
    seen = np.unique(np.concatenate([np.asarray(y_true), np.asarray(scored.labels)]))
    return seen[-1].item() if hasattr(seen[-1], "item") else seen[-1]


def compute(
    name: str, y_true: np.ndarray, scored: Scored, rows: np.ndarray | None, pos_label: Any
) -> MetricValue:
    """``name`` on the rows selected by ``rows`` (a boolean mask; None for all)."""
    import sklearn.metrics as skm

    y = np.asarray(y_true) if rows is None else np.asarray(y_true)[rows]
    pred = np.asarray(scored.labels) if rows is None else np.asarray(scored.labels)[rows]
    proba = scored.proba if rows is None or scored.proba is None else scored.proba[rows]
    if len(y) == 0:
        return MetricValue(None, "no rows")
    try:
        if name in REGRESSION_METRICS:
            yt, yp = y.astype(np.float64), pred.astype(np.float64).reshape(len(y), -1)[:, 0]
            if name == "mae":
                return MetricValue(float(skm.mean_absolute_error(yt, yp)))
            if name == "rmse":
                return MetricValue(float(np.sqrt(skm.mean_squared_error(yt, yp))))
            if len(y) < 2:
                return MetricValue(None, "r2 needs at least two rows")
            return MetricValue(float(skm.r2_score(yt, yp)))
        labels = _label_set(y, pred, scored)
        binary = len(labels) <= 2
        if name == "accuracy":
            return MetricValue(float(skm.accuracy_score(y, pred)))
        if name in ("f1", "precision", "recall"):
            fn = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}
            kwargs: dict[str, Any] = (
                {"average": "binary", "pos_label": pos_label}
                if binary
                else {"average": "macro", "labels": labels}
            )
            return MetricValue(float(fn[name](y, pred, zero_division=np.nan, **kwargs)))
        if proba is None or scored.classes is None:
            return MetricValue(None, f"{name} needs class probabilities (predict_proba)")
        classes = list(scored.classes)
        if name == "roc_auc":
            if len(np.unique(y)) < 2:
                return MetricValue(None, "roc_auc needs both classes among the rows")
            if len(classes) == 2:
                col = classes.index(pos_label) if pos_label in classes else 1
                return MetricValue(float(skm.roc_auc_score(y == classes[col], proba[:, col])))
            return MetricValue(
                float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
            )
        if name == "log_loss":
            return MetricValue(float(skm.log_loss(y, proba, labels=classes)))
    except ValueError as exc:
        return MetricValue(None, f"{name} is undefined here: {exc}")
    return MetricValue(None, f"unknown metric {name!r}")


def _label_set(y: np.ndarray, pred: np.ndarray, scored: Scored) -> list[Any]:
    if scored.classes is not None:
        return list(scored.classes)
    return list(np.unique(np.concatenate([y, pred])))
