"""The training function of ``lockgate quickstart``'s pipeline, and an example of an entry
point: ``lockgate pipeline set credit-risk --entry lockgate.quickstart_pipeline:train``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from lockgate.automation.context import TrainingContext

NUMERIC = ["age", "income", "debt_ratio", "late_payments"]
CATEGORICAL = ["region", "employment"]


def train(data: pd.DataFrame, context: TrainingContext) -> tuple[Any, dict[str, float]]:
    """A logistic regression pipeline (scaling, one-hot encoding) fitted on the window."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = list(context.features)
    numeric = [c for c in NUMERIC if c in features]
    categorical = [c for c in CATEGORICAL if c in features]
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))])
    y = data[context.target].astype("int64")
    model.fit(data[features], y)
    return model, {
        "train_rows": float(len(data)),
        "train_accuracy": float(model.score(data[features], y)),
    }
