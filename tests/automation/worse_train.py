"""A training script that returns a worse model than any champion: it predicts the prior."""

from __future__ import annotations

from typing import Any

import pandas as pd


def train(data: pd.DataFrame, context: Any) -> Any:
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    model = Pipeline([("id", FunctionTransformer()), ("clf", DummyClassifier(strategy="prior"))])
    return model.fit(data[list(context.features)], data[context.target].astype("int64"))


def hang(data: pd.DataFrame, context: Any) -> Any:
    import time

    time.sleep(600)


def crash(data: pd.DataFrame, context: Any) -> Any:
    raise RuntimeError("the training blew up")
