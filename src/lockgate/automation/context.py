"""What a training entry point receives besides its data: :class:`TrainingContext`.

An entry point is a function ``train(data: pandas.DataFrame, context: TrainingContext)``
returning a fitted model, or ``(model, metrics)`` with a mapping of numeric metrics. ``data``
holds the input columns and the label column ``context.target``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainingContext:
    """The run a training function is part of.

    ``target``: the label column of ``data``; ``features``: the input columns the served
    model takes; ``trigger``: why the run started (``{"type": "alert", ...}``, ``schedule``,
    ``manual``, ``online``); ``parent_version``: the version it may replace.
    """

    model: str
    target: str
    features: tuple[str, ...]
    trigger: dict[str, Any] = field(default_factory=dict)
    parent_version: int | None = None
    window: dict[str, Any] = field(default_factory=dict)
    parent_path: str | None = None
    parent_flavor: str | None = None

    def parent_model(self) -> Any:
        """The parent version's model object, loaded through its runtime (safe formats only:
        a pickle-based parent is refused, as on any load without trust), or None."""
        if self.parent_path is None or self.parent_flavor is None:
            return None
        from lockgate.runtimes import get_runtime

        runtime = get_runtime(self.parent_flavor)(Path(self.parent_path), trusted=False)
        runtime.load()
        return getattr(runtime, "model_", None)
