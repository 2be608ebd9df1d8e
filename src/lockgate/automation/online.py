"""The built-in entry point of online learning: the parent version's model, updated with
``partial_fit`` on the labelled rows of the window."""

from __future__ import annotations

from typing import Any

import pandas as pd

from lockgate.automation.context import TrainingContext


def partial_fit_update(data: pd.DataFrame, context: TrainingContext) -> tuple[Any, dict[str, Any]]:
    model = context.parent_model()
    if model is None or not callable(getattr(model, "partial_fit", None)):
        raise TypeError(
            f"online learning needs a parent version whose model has partial_fit; "
            f"{context.model}/{context.parent_version} has none"
        )
    X = data[list(context.features)]
    y = data[context.target].to_numpy()
    model.partial_fit(X if hasattr(model, "feature_names_in_") else X.to_numpy(), y)
    return model, {"online_rows": float(len(data))}
