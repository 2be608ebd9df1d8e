"""The parameters of drift detection, validated once when a :class:`DriftConfig` is built."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any, get_args

from lockgate.errors import InvalidInputError
from lockgate.monitoring.stats import Correction, KSMethod


@dataclass(frozen=True)
class DriftConfig:
    """How drift is tested and judged. Every field is checked on construction; a bad value
    raises :class:`~lockgate.errors.InvalidInputError` naming the field.

    Significance (is the change real?): per-column p-values are corrected across the columns
    tested with ``correction`` and compared with ``alpha``.
    Materiality (is the change big enough to matter?): effect sizes against thresholds;
    a threshold of ``None`` switches that effect off.
    A column *drifts* when it is material and, with ``require_significance`` (the default),
    also significant; the data set drifts when at least ``drift_share`` of the feature columns
    tested drift.
    """

    #: family-wise error rate of the significance verdicts
    alpha: float = 0.05
    #: multiple-testing correction across the columns tested: "holm" or "bonferroni"
    correction: Correction = "holm"
    #: p-value of the KS test, as scipy.stats.ks_2samp(method=...): "auto", "exact", "asymp"
    ks_method: KSMethod = "auto"
    #: bins of the numerical PSI, at reference quantiles
    psi_bins: int = 10
    #: share given to an empty bin (reference or current) in the PSI
    psi_epsilon: float = 1e-4
    #: PSI at or above which a column is material (0.1 is "moderate", 0.2 "significant" shift)
    psi_threshold: float | None = 0.2
    #: Wasserstein-1 distance divided by the reference std at or above which a numerical
    #: column is material
    wasserstein_threshold: float | None = 0.1
    #: Jensen-Shannon distance (base 2) at or above which a categorical column is material
    js_threshold: float | None = 0.1
    #: absolute change of the missing rate at or above which a column is material
    missing_rate_threshold: float | None = 0.1
    #: share of tested feature columns that must drift for the data set to drift
    drift_share: float = 0.5
    #: rows below which (in the reference or the window) a column is "insufficient_data";
    #: values below which the distribution test is skipped (the missing-rate test still runs)
    min_sample_size: int = 100
    #: a material column drifts only when its change is also statistically significant
    require_significance: bool = True
    #: columns holding model outputs: tested like features, reported with role "output" and
    #: judged apart (``DriftReport.output_drifted``), not counted in ``drift_share``
    output_columns: tuple[str, ...] = ()
    #: threads testing columns in parallel (numpy releases the GIL); None: min(4, CPUs)
    max_workers: int | None = None

    def __post_init__(self) -> None:
        _check_float(self.alpha, "alpha", 0.0, 1.0, low_open=True, high_open=True)
        _check_choice(self.correction, "correction", get_args(Correction))
        _check_choice(self.ks_method, "ks_method", get_args(KSMethod))
        _check_int(self.psi_bins, "psi_bins", 2, 1000)
        _check_float(self.psi_epsilon, "psi_epsilon", 0.0, 0.01, low_open=True)
        for name in ("psi_threshold", "wasserstein_threshold"):
            value = getattr(self, name)
            if value is not None:
                _check_float(value, name, 0.0, float("inf"), high_open=True)
        for name in ("js_threshold", "missing_rate_threshold"):
            value = getattr(self, name)
            if value is not None:
                _check_float(value, name, 0.0, 1.0)
        _check_float(self.drift_share, "drift_share", 0.0, 1.0, low_open=True)
        _check_int(self.min_sample_size, "min_sample_size", 1, None)
        if not isinstance(self.require_significance, bool):
            raise _error("require_significance", "a bool", self.require_significance)
        outputs = self.output_columns
        if isinstance(outputs, str) or not isinstance(outputs, list | tuple):
            raise _error("output_columns", "a list of column names", outputs)
        if not all(isinstance(c, str) and c for c in outputs):
            raise _error("output_columns", "a list of column names", outputs)
        object.__setattr__(self, "output_columns", tuple(outputs))
        if self.max_workers is not None:
            _check_int(self.max_workers, "max_workers", 1, 256)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["output_columns"] = list(self.output_columns)
        return out


def _error(name: str, expected: str, got: object) -> InvalidInputError:
    return InvalidInputError.for_field(
        name, f"{expected} (the {name!r} parameter of DriftConfig)", got
    )


def _check_float(
    value: object,
    name: str,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    lo = f"{'(' if low_open else '['}{low:g}"
    hi = f"{high:g}{')' if high_open else ']'}"
    expected = f"a number in the range {lo}, {hi}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _error(name, expected, value)
    v = float(value)
    ok_low = v > low if low_open else v >= low
    ok_high = v < high if high_open else v <= high
    if not (ok_low and ok_high):  # also rejects NaN
        raise _error(name, expected, value)


def _check_int(value: object, name: str, low: int, high: int | None) -> None:
    expected = f"an int in the range [{low}, {'inf)' if high is None else f'{high}]'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _error(name, expected, value)
    v = int(value)
    if v < low or (high is not None and v > high):
        raise _error(name, expected, value)


def _check_choice(value: object, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _error(name, "one of " + ", ".join(repr(c) for c in choices), value)
