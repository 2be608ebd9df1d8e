"""Group fairness metrics for binary classifiers: pure numpy, fast, and equal to Fairlearn's.

:func:`group_table` computes, for every group of one or more sensitive features, the confusion-based
rates a fairness gate needs (and per-group ROC AUC when scores are given), plus the overall row.
:meth:`GroupTable.disparities` turns the table into Fairlearn's disparity metrics, and
:func:`bootstrap_ci` puts bootstrap confidence intervals around them.

How it is fast: the rows are factorised once into integer group codes; one ``np.bincount`` over
``4 * group + 2 * is_positive + is_selected`` gives every group's (weighted) confusion matrix;
ROC AUC comes from one sort by score, a stable counting sort by group, and per-tie-block sums (the
exact Mann-Whitney statistic, ties counted half, which is what scikit-learn's trapezoidal AUC
equals).

Definitions match Fairlearn (``MetricFrame``, ``demographic_parity_*``, ``equalized_odds_*`` with
``agg='worst_case'``, ``equal_opportunity_*``), including the ``between_groups`` and ``to_overall``
methods and the skipping of undefined groups. Where a value is undefined this module says so with
NaN instead of a number, which is where it deliberately differs from Fairlearn:

- a rate whose denominator is zero is NaN: TPR/FNR of a group without positives, FPR without
  negatives, precision without selected rows, AUC without both classes. scikit-learn (hence
  Fairlearn) reports 0 for the first three and raises for AUC. Disparities skip NaN groups (as
  Fairlearn skips NaN), so a group with no positives does not count as "TPR 0"; find such groups
  with ``small_groups(min_size, basis="n_positive")``.
- equalized odds (``agg='worst_case'``) is the worse of its TPR and FPR parts that are defined, NaN
  only when neither is. Fairlearn takes Python's ``max``/``min`` over the two, which returns NaN
  whenever the TPR part is NaN (e.g. a ratio when every group's TPR is 0) and ignores a NaN FPR
  part.
- with several sensitive features only observed combinations are groups (Fairlearn adds all-NaN rows
  for unobserved ones, which never change its disparities).
- missing values (NaN/None) in a sensitive feature are an error, not a silently dropped group.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple, TypeAlias

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from lockgate.errors import InvalidInputError

Method: TypeAlias = Literal["between_groups", "to_overall"]
Basis: TypeAlias = Literal["count", "n_positive", "n_negative"]
Sensitive: TypeAlias = ArrayLike | pd.Series | pd.DataFrame | Mapping[str, ArrayLike]
#: a group: the value of the sensitive feature, or a tuple of values when there are several
GroupKey: TypeAlias = Any

#: demographic parity ratio at or above this passes the four-fifths (80%) rule
FOUR_FIFTHS = 0.8

COUNT_METRICS = ("count", "n_positive", "n_negative")
RATE_METRICS = (
    "selection_rate",
    "accuracy",
    "true_positive_rate",
    "false_positive_rate",
    "false_negative_rate",
    "precision",
)
DISPARITY_METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
    "worst_group_accuracy",
    "worst_group_true_positive_rate",
    "worst_group_roc_auc",
)
_METHODS = ("between_groups", "to_overall")
_BASES = ("count", "n_positive", "n_negative")
# confusion cells, indexed by 2 * is_positive + is_selected
_TN, _FP, _FN, _TP = 0, 1, 2, 3
# bootstrap resamples are processed in chunks of about this many row-weights
_CHUNK_ELEMENTS = 1 << 18


class SmallGroup(NamedTuple):
    """A group below the minimum size: its key and the size that was too small."""

    group: GroupKey
    size: int


@dataclass(frozen=True)
class Disparities:
    """Fairlearn's disparity metrics for one :class:`GroupTable`; NaN when undefined.

    ``worst_group_roc_auc`` is None when no scores were given.
    """

    method: Method
    demographic_parity_difference: float
    demographic_parity_ratio: float
    equalized_odds_difference: float
    equalized_odds_ratio: float
    equal_opportunity_difference: float
    equal_opportunity_ratio: float
    worst_group_accuracy: float
    worst_group_true_positive_rate: float
    worst_group_roc_auc: float | None

    def passes_four_fifths(self, threshold: float = FOUR_FIFTHS) -> bool | None:
        """Whether the demographic parity ratio is at least ``threshold``; None when undefined."""
        ratio = self.demographic_parity_ratio
        return None if np.isnan(ratio) else bool(ratio >= threshold)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; undefined values are None."""
        return {k: _json_value(v) for k, v in asdict(self).items()}


@dataclass(frozen=True, eq=False)
class GroupTable:
    """Per-group metrics of a binary classifier and the overall row.

    ``by_group`` maps each metric name to an array aligned with ``groups``; ``overall`` maps it to
    one number. Metrics: ``count`` (rows), ``n_positive`` / ``n_negative`` (rows whose true label
    is / is not ``pos_label``), the (sample-weighted) rates in :data:`RATE_METRICS`, and ``roc_auc``
    when scores were given. A rate with a zero denominator is NaN.
    """

    sensitive_names: tuple[str, ...]
    groups: tuple[GroupKey, ...]
    by_group: Mapping[str, NDArray[Any]]
    overall: Mapping[str, float]
    pos_label: Any
    weighted: bool

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.by_group)

    def small_groups(self, min_size: int, *, basis: Basis = "count") -> list[SmallGroup]:
        """Groups with fewer than ``min_size`` rows (or positives / negatives, per ``basis``).

        A gate that finds any should report its result as inconclusive rather than pass or fail:
        rates of a small group are too noisy to judge. ``basis="n_positive"`` is the check that
        matters for TPR-based metrics (equal opportunity, equalized odds).
        """
        _check_int(min_size, "min_size", 0)
        if basis not in _BASES:
            raise InvalidInputError.for_field("basis", f"one of {list(_BASES)}", basis)
        sizes = self.by_group[basis]
        return [SmallGroup(self.groups[i], int(sizes[i])) for i in np.flatnonzero(sizes < min_size)]

    def disparities(self, method: Method = "between_groups") -> Disparities:
        """Fairlearn's disparity metrics; ``method`` as in ``MetricFrame.difference``."""
        _check_method(method)
        rates = {k: self.by_group[k] for k in RATE_METRICS}
        overall = {k: np.float64(self.overall[k]) for k in RATE_METRICS}
        auc = self.by_group.get("roc_auc")
        values: dict[str, Any] = {
            k: _float_or_none(v) for k, v in _disparity_arrays(rates, overall, auc, method).items()
        }
        return Disparities(method=method, **values)

    def to_frame(self) -> pd.DataFrame:
        """The per-group metrics as a DataFrame, indexed like Fairlearn's ``MetricFrame.by_group``.

        Handy for display and comparison; unlike :meth:`to_dict` it keeps NaN as NaN.
        """
        if len(self.sensitive_names) == 1:
            index = pd.Index(list(self.groups), name=self.sensitive_names[0], tupleize_cols=False)
        else:
            index = pd.MultiIndex.from_tuples(list(self.groups), names=list(self.sensitive_names))
        return pd.DataFrame(dict(self.by_group), index=index)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``json.dumps(..., allow_nan=False)`` works); NaN is None."""
        rows = []
        for i, key in enumerate(self.groups):
            values = key if len(self.sensitive_names) > 1 else (key,)
            row: dict[str, Any] = {
                "group": {
                    n: _json_value(v) for n, v in zip(self.sensitive_names, values, strict=True)
                }
            }
            row.update({m: _json_value(self.by_group[m][i]) for m in self.metrics})
            rows.append(row)
        return {
            "sensitive_features": list(self.sensitive_names),
            "pos_label": _json_value(self.pos_label),
            "weighted": self.weighted,
            "metrics": list(self.metrics),
            "groups": rows,
            "overall": {m: _json_value(v) for m, v in self.overall.items()},
        }


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap percentile interval.

    ``n_valid`` counts the resamples in which the metric was defined; the interval is taken over
    those, and is NaN when there were none.
    """

    estimate: float
    low: float
    high: float
    n_valid: int


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap intervals for each name in :data:`DISPARITY_METRICS` that applies."""

    intervals: Mapping[str, Interval]
    confidence: float
    n_boot: int
    method: Method

    def to_dict(self) -> dict[str, Any]:
        return {
            "confidence": self.confidence,
            "n_boot": self.n_boot,
            "method": self.method,
            "resampling": "stratified by group",
            "intervals": {
                name: {k: _json_value(v) for k, v in asdict(iv).items()}
                for name, iv in self.intervals.items()
            },
        }


def group_table(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    sensitive: Sensitive,
    *,
    y_score: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    pos_label: Any = 1,
) -> GroupTable:
    """Per-group confusion rates (and ROC AUC when ``y_score`` is given) of a binary classifier.

    ``sensitive`` is one column (array, Series) or several (DataFrame, dict of name to column, 2-D
    array of shape (rows, columns)); with several, each observed combination of values is a group.
    Groups are sorted by value (categorical columns too), as in Fairlearn.

    ``y_true`` and ``y_pred`` may hold at most two distinct labels between them; ``pos_label``
    names the positive one. ``y_score`` is a higher-is-more-positive score per row;
    ``sample_weight`` a non-negative weight per row (counts stay counts of rows, rates and AUC are
    weighted).
    """
    data = _prepare(y_true, y_pred, sensitive, y_score, sample_weight, pos_label)
    n_groups = len(data.groups)
    counts, totals = _confusion(data, n_groups)
    by_group: dict[str, NDArray[Any]] = {
        "count": counts.sum(axis=1),
        "n_positive": counts[:, _FN] + counts[:, _TP],
        "n_negative": counts[:, _TN] + counts[:, _FP],
    }
    overall: dict[str, Any] = {k: int(v.sum()) for k, v in by_group.items()}
    by_group.update(_rates(totals))
    overall.update({k: float(v) for k, v in _rates(totals.sum(axis=0)).items()})
    if data.score is not None:
        index = _score_index(data, n_groups)
        w = np.ones(len(data.score), np.int64) if data.weight is None else data.weight
        wp = w * data.positive
        wn = w - wp
        by_group["roc_auc"] = _auc(wp[index.order], wn[index.order], index.blocks)
        overall["roc_auc"] = float(
            _auc(wp[index.by_score], wn[index.by_score], index.all_blocks)[0]
        )
    for values in by_group.values():
        values.flags.writeable = False  # the table is a value: frozen all the way down
    return GroupTable(
        sensitive_names=data.names,
        groups=data.groups,
        by_group=by_group,
        overall=overall,
        pos_label=pos_label,
        weighted=data.weight is not None,
    )


def bootstrap_ci(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    sensitive: Sensitive,
    *,
    y_score: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    pos_label: Any = 1,
    method: Method = "between_groups",
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int | np.random.Generator | None = None,
) -> BootstrapResult:
    """Percentile bootstrap confidence intervals for every disparity metric.

    Resampling is stratified by group: each resample draws every group's rows with replacement,
    keeping the group's size, so every group is present in every resample (a plain bootstrap can
    lose a small group and silently judge the others alone). Without scores and weights the metrics
    depend only on each group's confusion counts, which under that resampling are exactly
    multinomial, so the counts are drawn directly (``Generator.multinomial``; the cost does not grow
    with the number of rows). Otherwise each resample's row multiplicities are drawn with
    ``Generator.integers`` + ``np.bincount``, and weighted confusion totals and AUC are computed for
    a chunk of resamples at once from those multiplicities, reusing the one sort by score.

    Each interval is the percentile interval (``np.quantile``, linear interpolation) of the
    resampled values at ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``, over the resamples in
    which the metric is defined.
    """
    _check_int(n_boot, "n_boot", 1)
    if not isinstance(confidence, numbers.Real) or not 0.0 < float(confidence) < 1.0:
        raise InvalidInputError.for_field(
            "confidence", "a number strictly between 0 and 1", confidence
        )
    _check_method(method)
    if not (seed is None or isinstance(seed, np.random.Generator) or _is_int(seed)):
        raise InvalidInputError.for_field("seed", "None, an int or a numpy Generator", seed)
    data = _prepare(y_true, y_pred, sensitive, y_score, sample_weight, pos_label)
    rng = np.random.default_rng(seed)
    n_groups = len(data.groups)
    counts, totals = _confusion(data, n_groups)

    index = _score_index(data, n_groups) if data.score is not None else None
    point_auc = None
    if index is not None:
        w = np.ones(len(data.codes), np.int64) if data.weight is None else data.weight
        wp = (w * data.positive)[index.order]
        point_auc = _auc(wp, w[index.order] - wp, index.blocks)
    estimates = _disparities_from_totals(totals, point_auc, method)

    if data.weight is None and data.score is None:
        sizes = counts.sum(axis=1)
        probs = counts / sizes[:, None]
        boot_totals = rng.multinomial(sizes, probs, size=(n_boot, n_groups)).astype(np.float64)
        samples = _disparities_from_totals(boot_totals, None, method)
    else:
        samples = _resample_rows(data, index, counts.sum(axis=1), n_boot, method, rng)

    alpha = 1.0 - float(confidence)
    intervals = {
        name: _interval(estimates[name], samples[name], alpha)
        for name in DISPARITY_METRICS
        if samples.get(name) is not None
    }
    return BootstrapResult(intervals, float(confidence), int(n_boot), method)


# --- computation ----------------------------------------------------------------------------------


class _Data(NamedTuple):
    codes: NDArray[np.intp]  # group code per row, 0 .. len(groups) - 1
    groups: tuple[GroupKey, ...]
    names: tuple[str, ...]
    positive: NDArray[np.bool_]  # y_true == pos_label
    selected: NDArray[np.bool_]  # y_pred == pos_label
    weight: NDArray[np.float64] | None
    score: NDArray[np.float64] | None


class _Blocks(NamedTuple):
    """Tie blocks of rows sorted by (segment, score): equal scores within one segment."""

    starts: NDArray[np.intp]  # first row of each block
    segment: NDArray[np.intp]  # segment of each block
    segment_starts: NDArray[np.intp]  # first block of each segment
    no_ties: bool


class _ScoreIndex(NamedTuple):
    by_score: NDArray[np.intp]  # rows sorted by score
    all_blocks: _Blocks  # ... as one segment
    order: NDArray[np.intp]  # rows sorted by group, then score
    blocks: _Blocks  # ... segmented by group


def _confusion(data: _Data, n_groups: int) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Row counts and (weighted) totals of each group's confusion cells, both (groups, 4)."""
    cells = _cells(data)
    counts = np.bincount(cells, minlength=4 * n_groups).reshape(n_groups, 4)
    if data.weight is None:
        return counts, counts.astype(np.float64)
    totals = np.bincount(cells, weights=data.weight, minlength=4 * n_groups)
    return counts, totals.astype(np.float64, copy=False).reshape(n_groups, 4)


def _cells(data: _Data) -> NDArray[np.intp]:
    return data.codes * 4 + data.positive * 2 + data.selected


def _rates(totals: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    """Rates from confusion totals of shape (..., 4); NaN where a denominator is zero."""
    tn, fp, fn, tp = (totals[..., i] for i in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "selection_rate": (fp + tp) / (tn + fp + fn + tp),
            "accuracy": (tn + tp) / (tn + fp + fn + tp),
            "true_positive_rate": tp / (tp + fn),
            "false_positive_rate": fp / (fp + tn),
            "false_negative_rate": fn / (tp + fn),
            "precision": tp / (tp + fp),
        }


def _disparities_from_totals(
    totals: NDArray[np.float64], auc: NDArray[np.float64] | None, method: Method
) -> dict[str, NDArray[np.float64]]:
    return _disparity_arrays(_rates(totals), _rates(totals.sum(axis=-2)), auc, method)


def _disparity_arrays(
    rates: Mapping[str, NDArray[np.float64]],
    overall: Mapping[str, Any],
    auc: NDArray[np.float64] | None,
    method: Method,
) -> dict[str, Any]:
    """Disparity metrics from rates of shape (..., groups) and overall rates of shape (...)."""
    sel, tpr, fpr = (
        rates[k] for k in ("selection_rate", "true_positive_rate", "false_positive_rate")
    )
    o_sel, o_tpr, o_fpr = (
        overall[k] for k in ("selection_rate", "true_positive_rate", "false_positive_rate")
    )
    tpr_diff, fpr_diff = _difference(tpr, o_tpr, method), _difference(fpr, o_fpr, method)
    tpr_ratio, fpr_ratio = _ratio(tpr, o_tpr, method), _ratio(fpr, o_fpr, method)
    return {
        "demographic_parity_difference": _difference(sel, o_sel, method),
        "demographic_parity_ratio": _ratio(sel, o_sel, method),
        "equalized_odds_difference": np.fmax(tpr_diff, fpr_diff),
        "equalized_odds_ratio": np.fmin(tpr_ratio, fpr_ratio),
        "equal_opportunity_difference": tpr_diff,
        "equal_opportunity_ratio": tpr_ratio,
        "worst_group_accuracy": np.fmin.reduce(rates["accuracy"], axis=-1),
        "worst_group_true_positive_rate": np.fmin.reduce(tpr, axis=-1),
        "worst_group_roc_auc": None if auc is None else np.fmin.reduce(auc, axis=-1),
    }


def _difference(r: NDArray[np.float64], overall: Any, method: Method) -> NDArray[np.float64]:
    """Fairlearn's ``MetricFrame.difference``: NaN groups are skipped."""
    if method == "between_groups":
        diff: NDArray[np.float64] = np.fmax.reduce(r, axis=-1) - np.fmin.reduce(r, axis=-1)
    else:
        diff = np.fmax.reduce(np.abs(r - np.asarray(overall)[..., None]), axis=-1)
    return diff


def _ratio(r: NDArray[np.float64], overall: Any, method: Method) -> NDArray[np.float64]:
    """Fairlearn's ``MetricFrame.ratio``: always <= 1, NaN groups skipped, 0/0 is NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "between_groups":
            ratio: NDArray[np.float64] = np.fmin.reduce(r, axis=-1) / np.fmax.reduce(r, axis=-1)
            return ratio
        q = r / np.asarray(overall)[..., None]
        q = np.where(q > 1, 1 / q, q)
    ratio = np.fmin.reduce(q, axis=-1)
    return ratio


def _score_index(data: _Data, n_groups: int) -> _ScoreIndex:
    """One sort by score, then a stable (counting) sort by group that keeps score order inside."""
    assert data.score is not None
    by_score = np.argsort(data.score)
    order = by_score[_stable_argsort(data.codes[by_score], n_groups)]
    zeros = np.zeros(len(by_score), dtype=np.intp)
    return _ScoreIndex(
        by_score=by_score,
        all_blocks=_blocks(zeros, data.score[by_score]),
        order=order,
        blocks=_blocks(data.codes[order], data.score[order]),
    )


def _stable_argsort(codes: NDArray[np.intp], n_groups: int) -> NDArray[np.intp]:
    """Stable sort of group codes; numpy radix-sorts 8- and 16-bit integers, much faster."""
    if n_groups <= 1 << 16:
        codes = codes.astype(np.uint8 if n_groups <= 1 << 8 else np.uint16)
    return np.argsort(codes, kind="stable")


def _blocks(segment: NDArray[np.intp], score: NDArray[np.float64]) -> _Blocks:
    new = np.ones(len(score), dtype=bool)
    new[1:] = (score[1:] != score[:-1]) | (segment[1:] != segment[:-1])
    starts = np.flatnonzero(new)
    block_segment = segment[starts]
    first = np.ones(len(starts), dtype=bool)
    first[1:] = block_segment[1:] != block_segment[:-1]
    return _Blocks(starts, block_segment, np.flatnonzero(first), len(starts) == len(score))


def _auc(wp: NDArray[Any], wn: NDArray[Any], blocks: _Blocks) -> NDArray[np.float64]:
    """ROC AUC per segment from positive / negative weights (..., rows) in block order.

    AUC = sum over tie blocks of W+(block) * (2 W-(lower blocks) + W-(block)) / (2 W+ W-), the
    Mann-Whitney statistic with ties counted half; it equals scikit-learn's trapezoidal ROC AUC.
    With integer weights (row counts, bootstrap multiplicities) every sum is exact.
    """
    if blocks.no_ties:
        bp, bn = wp, wn
    else:
        bp = np.add.reduceat(wp, blocks.starts, axis=-1)
        bn = np.add.reduceat(wn, blocks.starts, axis=-1)
    below = np.cumsum(bn, axis=-1) - bn
    below -= below[..., blocks.segment_starts][..., blocks.segment]
    num = np.add.reduceat(bp * (2 * below + bn), blocks.segment_starts, axis=-1)
    pos = np.add.reduceat(bp, blocks.segment_starts, axis=-1)
    neg = np.add.reduceat(bn, blocks.segment_starts, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / (2.0 * pos * neg)


def _resample_rows(
    data: _Data,
    index: _ScoreIndex | None,
    sizes: NDArray[np.int64],
    n_boot: int,
    method: Method,
    rng: np.random.Generator,
) -> dict[str, NDArray[np.float64]]:
    """Stratified row bootstrap via multiplicities; rows kept in (group, score) order."""
    n, n_groups = len(data.codes), len(sizes)
    order = index.order if index is not None else _stable_argsort(data.codes, n_groups)
    cells = _cells(data)[order]
    weight = None if data.weight is None else data.weight[order]
    positive = data.positive[order]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    chunk = max(1, _CHUNK_ELEMENTS // n)
    parts: list[dict[str, NDArray[np.float64]]] = []
    for first in range(0, n_boot, chunk):
        b = min(chunk, n_boot - first)
        mult = np.empty((b, n), dtype=np.int64)
        for start, size in zip(starts, sizes, strict=True):
            draws = rng.integers(0, size, size=(b, size))
            draws += (np.arange(b) * size)[:, None]
            mult[:, start : start + size] = np.bincount(draws.ravel(), minlength=b * size).reshape(
                b, size
            )
        w = mult if weight is None else mult * weight
        flat = (cells + (4 * n_groups) * np.arange(b)[:, None]).ravel()
        totals = np.bincount(flat, weights=w.ravel(), minlength=b * 4 * n_groups)
        auc = None
        if index is not None:
            wp = w * positive
            auc = _auc(wp, w - wp, index.blocks)
        totals_f = totals.astype(np.float64, copy=False).reshape(b, n_groups, 4)
        parts.append(_disparities_from_totals(totals_f, auc, method))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if parts[0][k] is not None}


def _interval(estimate: Any, samples: NDArray[np.float64], alpha: float) -> Interval:
    valid = samples[~np.isnan(samples)]
    low = high = float("nan")
    if valid.size:
        low, high = (float(q) for q in np.quantile(valid, [alpha / 2, 1 - alpha / 2]))
    return Interval(float(estimate), low, high, int(valid.size))


# --- input validation -----------------------------------------------------------------------------


def _prepare(
    y_true: Any, y_pred: Any, sensitive: Any, y_score: Any, sample_weight: Any, pos_label: Any
) -> _Data:
    yt = _column(y_true, "y_true")
    n = len(yt)
    if n == 0:
        raise InvalidInputError.for_field("y_true", "at least one row", "no rows")
    yp = _column(y_pred, "y_pred")
    _check_length(yp, "y_pred", n)
    positive, selected = _binary_masks(yt, yp, pos_label)
    names, columns = _sensitive_columns(sensitive, n)
    codes, groups = _group_codes(names, columns)
    score = None if y_score is None else _numbers(y_score, "y_score", n)
    weight = None if sample_weight is None else _numbers(sample_weight, "sample_weight", n)
    if weight is not None and (weight < 0).any():
        row = int(np.flatnonzero(weight < 0)[0])
        raise InvalidInputError.for_field(
            "sample_weight", "non-negative weights", f"{weight[row]} at row {row}"
        )
    return _Data(codes, groups, names, positive, selected, weight, score)


def _column(values: Any, field: str) -> np.ndarray:
    arr = values.to_numpy() if isinstance(values, pd.Series | pd.Index) else np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        hint = " (for predict_proba output pass the positive class column)" if arr.ndim == 2 else ""
        raise InvalidInputError(
            f"{field}: expected a 1-D array with one value per row, got shape {arr.shape}{hint}",
            field=field,
            expected="1-D array",
            got=f"shape {arr.shape}",
        )
    return arr


def _check_length(arr: np.ndarray, field: str, n: int) -> None:
    if len(arr) != n:
        raise InvalidInputError(
            f"{field}: expected {n} rows (the length of y_true), got {len(arr)}",
            field=field,
            expected=f"{n} rows",
            got=f"{len(arr)} rows",
        )


def _binary_masks(
    yt: np.ndarray, yp: np.ndarray, pos_label: Any
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    if not isinstance(pos_label, str | numbers.Number | np.generic) or pos_label != pos_label:
        raise InvalidInputError.for_field(
            "pos_label", "a label value (str, int, float or bool)", pos_label
        )
    factorised = [_factorize(yt, "y_true"), _factorize(yp, "y_pred")]
    found: list[Any] = []
    for _, uniques in factorised:
        found.extend(u for u in uniques if not any(u == f for f in found))
    if len(found) > 2:
        shown = _sorted_or_not(found)
        raise InvalidInputError(
            f"y_true, y_pred: expected binary labels (at most two distinct values between them), "
            f"got {len(found)} distinct values: {shown[:10]!r}",
            field="y_true",
            expected="binary labels",
            got=shown[:10],
        )
    is_number = [isinstance(v, numbers.Number) for v in found]
    if not any(v == pos_label for v in found) and (
        len(found) == 2 or is_number[0] != isinstance(pos_label, numbers.Number | np.number)
    ):
        raise InvalidInputError.for_field(
            "pos_label", f"one of the label values {_sorted_or_not(found)!r}", pos_label
        )
    masks = []
    for codes, uniques in factorised:
        hits = [i for i, u in enumerate(uniques) if u == pos_label]
        masks.append(codes == hits[0] if hits else np.zeros(len(codes), dtype=bool))
    return masks[0], masks[1]


def _factorize(arr: np.ndarray, field: str) -> tuple[NDArray[np.intp], list[Any]]:
    try:
        codes, uniques = pd.factorize(arr)
    except TypeError as exc:
        raise InvalidInputError.for_field(field, "hashable label values", str(exc)) from exc
    missing = int(np.count_nonzero(codes < 0))
    if missing:
        raise InvalidInputError.for_field(
            field, "no missing values", f"{missing} missing (NaN/None)"
        )
    return codes, list(uniques.tolist())


def _sensitive_columns(sensitive: Any, n: int) -> tuple[tuple[str, ...], list[Any]]:
    if isinstance(sensitive, pd.DataFrame):
        items = [(str(c), sensitive.iloc[:, i]) for i, c in enumerate(sensitive.columns)]
    elif isinstance(sensitive, pd.Series):
        name = "sensitive_feature_0" if sensitive.name is None else str(sensitive.name)
        items = [(name, sensitive)]
    elif isinstance(sensitive, Mapping):
        items = [(str(k), v) for k, v in sensitive.items()]
    else:
        arr = np.asarray(sensitive)
        if arr.ndim == 1:
            items = [("sensitive_feature_0", arr)]
        elif arr.ndim == 2:
            if arr.shape[0] != n and arr.shape[1] == n:
                raise InvalidInputError(
                    f"sensitive: expected shape ({n}, columns), got {arr.shape}; pass several "
                    "features as a DataFrame or a dict of name to column",
                    field="sensitive",
                    expected=f"({n}, columns)",
                    got=str(arr.shape),
                )
            items = [(f"sensitive_feature_{i}", arr[:, i]) for i in range(arr.shape[1])]
        else:
            raise InvalidInputError.for_field(
                "sensitive", "1 or 2 dimensions", f"shape {arr.shape}"
            )
    if not items:
        raise InvalidInputError.for_field("sensitive", "at least one column", "none")
    columns = []
    for name, values in items:
        col = values if isinstance(values, pd.Series) else _column(values, f"sensitive[{name!r}]")
        _check_length(np.asarray(col), f"sensitive[{name!r}]", n)
        columns.append(col)
    return tuple(name for name, _ in items), columns


def _group_codes(
    names: tuple[str, ...], columns: list[Any]
) -> tuple[NDArray[np.intp], tuple[GroupKey, ...]]:
    """Sorted group codes; several columns combine into lexicographically sorted observed tuples."""
    codes: NDArray[np.intp] | None = None
    keys: list[Any] = []
    for name, col in zip(names, columns, strict=True):
        if isinstance(getattr(col, "dtype", None), pd.CategoricalDtype):
            col = np.asarray(col)  # sort by value, not category order, as Fairlearn does
        try:
            c, uniques = pd.factorize(col, sort=True)
        except TypeError as exc:
            raise InvalidInputError.for_field(
                f"sensitive[{name!r}]", "hashable, orderable values", str(exc)
            ) from exc
        missing = int(np.count_nonzero(c < 0))
        if missing:
            raise InvalidInputError(
                f"sensitive[{name!r}]: expected no missing values, got {missing} missing "
                "(NaN/None); give them an explicit category such as 'unknown' to assess them",
                field=f"sensitive[{name!r}]",
                expected="no missing values",
                got=f"{missing} missing",
            )
        values = list(uniques.tolist())
        if codes is None:
            codes, keys = c.astype(np.intp), [(v,) for v in values]
            continue
        combined, observed = pd.factorize(codes.astype(np.int64) * len(values) + c, sort=True)
        keys = [
            (*keys[i], values[j])
            for i, j in zip(observed // len(values), observed % len(values), strict=True)
        ]
        codes = combined.astype(np.intp)
    assert codes is not None
    return codes, tuple(k[0] if len(names) == 1 else k for k in keys)


def _numbers(values: Any, field: str, n: int) -> NDArray[np.float64]:
    arr = _column(values, field)
    _check_length(arr, field, n)
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError.for_field(field, "numbers", f"dtype {arr.dtype}") from exc
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InvalidInputError(
            f"{field}: expected finite numbers, got {bad.size} NaN or infinite values "
            f"(first at row {bad[0]})",
            field=field,
            expected="finite numbers",
            got=f"{bad.size} non-finite",
        )
    return arr


def _check_int(value: Any, field: str, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise InvalidInputError.for_field(field, f"an int >= {minimum}", value)


def _check_method(method: Any) -> None:
    if method not in _METHODS:
        raise InvalidInputError.for_field("method", f"one of {list(_METHODS)}", method)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _sorted_or_not(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return values


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
