"""Validation gates: checks that pass a model version, stop it, or call the evidence inconclusive.

The names a custom gate needs are re-exported here (they import nothing heavy)::

    from lockgate.gates import Check, Gate, GateResult, Interval, Param, register_gate

Everything else is imported from its module (``lockgate.gates.service``, ``.policy``,
``.fairness_metrics`` ...).
"""

from lockgate.gates.base import Check, Gate, GateResult, Status
from lockgate.gates.catalog import available_gates, register_gate, unregister_gate
from lockgate.gates.params import BOOL, STRING, Interval, ListOf, Options, Param

__all__ = [
    "BOOL",
    "STRING",
    "Check",
    "Gate",
    "GateResult",
    "Interval",
    "ListOf",
    "Options",
    "Param",
    "Status",
    "available_gates",
    "register_gate",
    "unregister_gate",
]
