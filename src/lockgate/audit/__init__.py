"""Audit: the append-only, hash-chained event log (and, later, KPIs and model cards)."""
