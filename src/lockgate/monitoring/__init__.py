"""Monitoring core: reference profiles and drift statistics as pure functions.

No database, no HTTP: a :class:`Profile` is computed once from reference data and stored as
bytes; drift between it and a window of current data is a value computed from the two.
"""

from lockgate.monitoring.profile import (
    CategoricalProfile,
    ColumnProfile,
    NumericalProfile,
    Profile,
    ProfileVersionWarning,
    compute_profile,
)

__all__ = [
    "CategoricalProfile",
    "ColumnProfile",
    "NumericalProfile",
    "Profile",
    "ProfileVersionWarning",
    "compute_profile",
]
