"""Monitoring core: reference profiles and drift statistics as pure functions.

No database, no HTTP: a :class:`Profile` is computed once from reference data and stored as
bytes; :func:`detect_drift` compares it (or a reference DataFrame) with a window of current
data and returns a :class:`DriftReport` value.

Importing this package loads numpy and pandas only; ``scipy.stats`` (for the exact and
asymptotic Kolmogorov-Smirnov distributions) is imported on the first drift test.
"""

from lockgate.monitoring.config import DriftConfig
from lockgate.monitoring.drift import detect_drift
from lockgate.monitoring.profile import (
    CategoricalProfile,
    ColumnProfile,
    NumericalProfile,
    Profile,
    ProfileVersionWarning,
    compute_profile,
)
from lockgate.monitoring.report import ColumnDrift, DriftReport

__all__ = [
    "CategoricalProfile",
    "ColumnDrift",
    "ColumnProfile",
    "DriftConfig",
    "DriftReport",
    "NumericalProfile",
    "Profile",
    "ProfileVersionWarning",
    "compute_profile",
    "detect_drift",
]
