"""Validation gates: checks that pass a model version, stop it, or call the evidence inconclusive.

Submodules are imported explicitly (``from lockgate.gates.fairness_metrics import group_table``);
this package imports nothing heavy on its own.
"""
