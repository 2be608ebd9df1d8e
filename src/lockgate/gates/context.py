"""What a gate sees: the candidate and baseline versions, the run's evaluation data, and cached
access to models loaded in the validating process and to their predictions.

Predictions are computed once per version and shared by every gate of a run (quality, fairness
and a custom gate all score the same evaluation rows once). A model is loaded into this process
only when a gate asks for it; once the smoke gate has seen the candidate crash or hang in its own
process, asking for it raises instead of risking this process.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lockgate.errors import LockgateError, ModelLoadError
from lockgate.gates.base import Check

if TYPE_CHECKING:
    from lockgate.registry.loaded import LoadedModel
    from lockgate.registry.models import ModelVersion
    from lockgate.registry.signature import Signature
    from lockgate.workspace import Workspace


class LoadBlockedError(ModelLoadError):
    """A gate asked for a model the smoke gate saw crash or hang in its own process."""

    code = "load_blocked"


@dataclass(frozen=True)
class Scored:
    """A version's predictions on the evaluation rows: labels (or values), class probabilities
    (None when the model has none) and the class order of the probability columns."""

    labels: np.ndarray
    proba: np.ndarray | None
    classes: np.ndarray | None


class GateContext:
    """The inputs of one validation run, shared by its gates.

    ``baseline`` is the version ``baseline_alias`` pointed at when the run started, or None.
    When the alias was requested but does not exist yet (the model's first candidate),
    ``baseline_note`` says so and comparisons with a baseline are skipped; when no baseline was
    requested at all, a gate configured to compare with one is inconclusive.
    """

    def __init__(
        self,
        ws: Workspace,
        candidate: ModelVersion,
        *,
        baseline: ModelVersion | None = None,
        baseline_alias: str | None = None,
        baseline_note: str | None = None,
        eval_data: pd.DataFrame | None = None,
        target: str | None = None,
        sensitive: Sequence[str] = (),
        seed: int = 0,
    ) -> None:
        self.ws = ws
        self.candidate = candidate
        self.baseline = baseline
        self.baseline_alias = baseline_alias
        self.baseline_note = baseline_note
        self.eval_data = eval_data
        self.target = target
        self.sensitive = tuple(sensitive)
        self.seed = seed
        self._loaded: dict[str, LoadedModel] = {}
        self._scored: dict[str, Scored] = {}
        self._blocked: dict[str, str] = {}

    # -- baseline ---------------------------------------------------------------------------
    def no_baseline(self, key: str) -> Check | None:
        """For a comparison that needs the baseline when there is none: an inconclusive check
        when no baseline was requested, None (skip the comparison) when the requested alias
        does not exist yet."""
        if self.baseline_alias is not None:
            return None
        return Check.undecided(
            key,
            f"{key} needs a baseline to compare with: give --against ALIAS or set "
            "'baseline' in the policy",
        )

    # -- evaluation data --------------------------------------------------------------------
    @property
    def y_true(self) -> np.ndarray:
        if self.eval_data is None or self.target is None:
            raise LockgateError("no evaluation data with a target column was given")
        return self.eval_data[self.target].to_numpy()

    def has_labels(self) -> bool:
        return self.eval_data is not None and self.target is not None

    # -- models in this process ---------------------------------------------------------------
    def block_loading(self, version: ModelVersion, reason: str) -> None:
        """Refuse to load ``version`` into this process from now on (it crashed or hung)."""
        self._blocked[version.ref] = reason

    def model(self, version: ModelVersion) -> LoadedModel:
        """``version`` loaded into this process (once per run)."""
        if version.ref in self._blocked:
            raise LoadBlockedError(
                f"{version.ref} is not loaded into the validating process: "
                f"{self._blocked[version.ref]}"
            )
        loaded = self._loaded.get(version.ref)
        if loaded is None:
            loaded = self.ws.registry.load(version)
            self._loaded[version.ref] = loaded
        return loaded

    def scored(self, version: ModelVersion) -> Scored:
        """Predictions of ``version`` on the evaluation rows (computed once per run)."""
        cached = self._scored.get(version.ref)
        if cached is not None:
            return cached
        if self.eval_data is None:
            raise LockgateError("no evaluation data was given")
        loaded = self.model(version)
        labels = np.asarray(loaded.predict(self.eval_data))
        proba = loaded.predict_proba(self.eval_data)
        proba = None if proba is None else np.asarray(proba, dtype=np.float64)
        classes = _classes(loaded, labels, proba, self)
        out = Scored(labels, proba, classes)
        self._scored[version.ref] = out
        return out

    # -- sample requests ----------------------------------------------------------------------
    def sample_rows(self, version: ModelVersion, n: int) -> tuple[pd.DataFrame, str]:
        """Up to ``n`` request rows for ``version`` and where they came from: the evaluation
        data, else the rows kept in the version's reference profile, else rows made from the
        signature (zeros, empty strings)."""
        sig = version.signature
        names = sig.input_names
        if self.eval_data is not None and set(names) <= set(self.eval_data.columns):
            return self.eval_data[names].head(n).reset_index(drop=True), "evaluation data"
        try:
            profile = self.ws.registry.load_profile(version)
        except LockgateError:
            profile = None
        sample = getattr(profile, "sample", None)
        if sample is not None and len(sample) and set(names) <= set(sample.columns):
            return sample[names].head(n).reset_index(drop=True), "reference profile sample"
        return synthetic_rows(sig, n), "synthetic rows from the signature"

    def endpoint_versions(self) -> list[tuple[str, int]]:
        """(endpoint, version) for every version taking traffic on the candidate's model."""
        out: list[tuple[str, int]] = []
        for info in self.ws.endpoints.list():
            if info.model == self.candidate.model:
                out.extend((info.name, v) for v in info.policy.versions)
        return out

    def materialize(self, version: ModelVersion) -> Path:
        """A verified copy of ``version``'s artifact in a fresh folder under the cache; remove
        it with :func:`discard`."""
        return self.ws.artifacts.materialize(
            version.artifact_sha256,
            version.artifact_kind,
            version.artifact_name,
            cache_dir=self.ws.cache_dir,
            subject=f"version {version.ref}",
        )

    def trusted(self, version: ModelVersion) -> bool:
        return bool(version.trusted_pickle or self.ws.settings.trust_pickle)

    def close(self) -> None:
        for loaded in self._loaded.values():
            loaded.unload()
        self._loaded.clear()
        self._scored.clear()


def discard(path: Path) -> None:
    """Remove a folder made by :meth:`GateContext.materialize`."""
    shutil.rmtree(path.parent, ignore_errors=True)


def synthetic_rows(sig: Signature, n: int) -> pd.DataFrame:
    """``n`` rows that satisfy ``sig``: zeros, False, empty strings, the Unix epoch."""
    cols: dict[str, Any] = {}
    for spec in sig.inputs:
        shape = tuple(1 if s == -1 else s for s in spec.shape)
        if spec.dtype == "string":
            value: Any = np.full((n, *shape), "", dtype=object)
        elif spec.dtype == "datetime":
            value = np.full((n, *shape), np.datetime64(0, "ns"))
        elif spec.dtype == "bool":
            value = np.zeros((n, *shape), dtype=bool)
        else:
            value = np.zeros((n, *shape), dtype=spec.dtype)
        cols[spec.name] = list(value) if shape else value
    return pd.DataFrame(cols)


def _classes(
    loaded: LoadedModel, labels: np.ndarray, proba: np.ndarray | None, ctx: GateContext
) -> np.ndarray | None:
    try:
        meta = loaded.runtime.metadata()
    except Exception:
        meta = {}
    classes = meta.get("classes")
    if classes is not None:
        return np.asarray(classes)
    if proba is None or proba.ndim != 2:
        return None
    seen = [labels]
    if ctx.has_labels():
        seen.append(ctx.y_true)
    uniques = np.unique(np.concatenate([np.asarray(s).ravel() for s in seen]))
    return uniques if len(uniques) == proba.shape[1] else None
