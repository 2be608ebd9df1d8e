"""The result of a drift test: one :class:`ColumnDrift` per column and the data-set verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from lockgate.monitoring.config import DriftConfig

Verdict: TypeAlias = Literal["drift", "warning", "no_drift", "insufficient_data"]
Role: TypeAlias = Literal["feature", "output"]


@dataclass(frozen=True)
class ColumnDrift:
    """The drift of one column between the reference and the current window.

    ``test`` is ``"ks"`` (numerical) or ``"chi2"`` (categorical), or None when too few values
    were present to run it. ``statistic``/``p_value`` are the raw test results and
    ``p_value_adjusted`` the p-value after the family-wise correction; ``significant`` compares
    it with ``alpha``. ``effect`` holds the effect sizes: ``psi`` and ``wasserstein_norm``
    (numerical) or ``psi``, ``js_distance`` and ``unseen_rate`` (categorical), and always
    ``missing_rate_change``. ``material`` says an effect reached its threshold; ``reasons``
    lists which. The missing-rate test (a two-proportion z-test) is reported in the
    ``missing_*`` fields. ``n_reference``/``n_current`` count the values present.

    ``verdict``: ``"drift"`` when material (and significant, with ``require_significance``),
    ``"warning"`` when significant or material but not both, ``"no_drift"``, or
    ``"insufficient_data"`` when either side has fewer rows than ``min_sample_size``.
    """

    column: str
    role: Role
    kind: str
    test: str | None
    statistic: float | None
    p_value: float | None
    p_value_adjusted: float | None
    significant: bool
    material: bool
    effect: dict[str, float]
    n_reference: int
    n_current: int
    missing_rate_reference: float
    missing_rate_current: float
    missing_p_value: float | None
    missing_p_value_adjusted: float | None
    missing_significant: bool
    reasons: tuple[str, ...]
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "role": self.role,
            "kind": self.kind,
            "test": self.test,
            "statistic": _json_float(self.statistic),
            "p_value": _json_float(self.p_value),
            "p_value_adjusted": _json_float(self.p_value_adjusted),
            "significant": self.significant,
            "material": self.material,
            "effect": {k: _json_float(v) for k, v in self.effect.items()},
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "missing_rate_reference": self.missing_rate_reference,
            "missing_rate_current": self.missing_rate_current,
            "missing_p_value": _json_float(self.missing_p_value),
            "missing_p_value_adjusted": _json_float(self.missing_p_value_adjusted),
            "missing_significant": self.missing_significant,
            "reasons": list(self.reasons),
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class DriftReport:
    """Drift of every column tested and the data-set verdict.

    ``n_tested`` counts the feature columns with enough data; ``share_material`` is the share
    of them that are material, ``share_drifted`` the share whose verdict is ``"drift"``
    (equal to ``share_material`` when ``require_significance`` is off). ``drifted`` is
    ``share_drifted >= config.drift_share``. ``output_drifted`` is whether any output column
    drifted (None when no output column was tested).
    """

    columns: list[ColumnDrift]
    drifted: bool
    share_material: float
    share_drifted: float
    n_tested: int
    output_drifted: bool | None
    n_reference: int
    n_current: int
    config: DriftConfig = field(default_factory=DriftConfig)

    @property
    def verdict(self) -> Verdict:
        if self.n_tested == 0 and self.output_drifted is None:
            return "insufficient_data"
        return "drift" if self.drifted or self.output_drifted else "no_drift"

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.verdict == "drift"]

    def column(self, name: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable document (non-finite numbers become None)."""
        return {
            "verdict": self.verdict,
            "drifted": self.drifted,
            "share_material": self.share_material,
            "share_drifted": self.share_drifted,
            "n_tested": self.n_tested,
            "output_drifted": self.output_drifted,
            "drifted_columns": self.drifted_columns,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "config": self.config.to_dict(),
            "columns": [c.to_dict() for c in self.columns],
        }


def _json_float(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)
