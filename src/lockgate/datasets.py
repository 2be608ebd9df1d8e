"""Synthetic datasets shipped with Lockgate, generated deterministically (no downloads)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def credit(n: int = 5000, *, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    """A credit-risk-like table: numeric and categorical features and a binary ``default``
    label. ``shift`` moves income and debt ratio, to simulate drift in production."""
    rng = np.random.default_rng(seed)
    age = rng.integers(21, 75, size=n).astype(np.float64)
    income = rng.lognormal(mean=10.6 + 0.2 * shift, sigma=0.45, size=n)
    debt_ratio = np.clip(rng.beta(2, 5, size=n) + 0.15 * shift, 0, 1.5)
    late_payments = rng.poisson(0.6 + 0.3 * shift, size=n).astype(np.float64)
    region = rng.choice(["north", "south", "east", "west"], size=n, p=[0.3, 0.3, 0.2, 0.2])
    employment = rng.choice(
        ["salaried", "self-employed", "unemployed"], size=n, p=[0.7, 0.22, 0.08]
    )
    logit = (
        -1.2
        - 0.025 * (age - 45)
        - 0.9 * (np.log(income) - 10.6)
        + 3.2 * (debt_ratio - 0.28)
        + 0.55 * late_payments
        + np.where(employment == "unemployed", 1.1, 0.0)
        + np.where(region == "south", 0.2, 0.0)
    )
    default = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame(
        {
            "age": age,
            "income": income.round(2),
            "debt_ratio": debt_ratio,
            "late_payments": late_payments,
            "region": region,
            "employment": employment,
            "default": default,
        }
    )


CREDIT_FEATURES = ["age", "income", "debt_ratio", "late_payments", "region", "employment"]
CREDIT_TARGET = "default"
