"""The Runtime contract: one class per model flavor with ``load`` / ``predict`` / ``unload``.

A runtime is constructed with the path of a verified, unpacked artifact and stores its
arguments and nothing else (the scikit-learn contract). ``load`` reads the artifact and sets
``model_``; ``predict`` receives a DataFrame already validated against the signature (input
columns in signature order, dtypes conformed) and returns a NumPy array with one row per
input row; ``unload`` drops everything ``load`` created.

Class methods describe what a flavor can do at registration time: recognise a file
(``detect``), serialise an in-memory model (``can_save`` / ``save``) and tell whether
loading a given artifact would unpickle (``requires_trust``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lockgate.batch import Batch
from lockgate.errors import ModelLoadError


class Runtime(ABC):
    #: the flavor name stored with a version, e.g. ``"sklearn"``
    flavor: ClassVar[str]
    #: the distribution that must be installed for this flavor (for clear errors)
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        path: str | Path,
        *,
        trusted: bool = False,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.trusted = trusted
        self.options = dict(options or {})

    # -- lifecycle -------------------------------------------------------------------------
    @abstractmethod
    def load(self) -> None:
        """Read the artifact at ``self.path`` and set ``self.model_``."""

    @abstractmethod
    def predict(self, data: pd.DataFrame) -> np.ndarray:
        """Predict one output row per input row."""

    def predict_batch(self, batch: Batch) -> np.ndarray:
        """Predict a validated columnar batch (the serving hot path). The default builds a
        DataFrame; runtimes override it to feed arrays straight to the model."""
        return self.predict(batch.frame())

    def check_batch(self, batch: Batch) -> None:
        """Refuse values the signature admits but the model is known not to accept, raising
        InvalidInputError; the data plane calls it for each request before batching, so
        one caller's bad values fail that caller alone. The default accepts everything."""
        return None

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray | None:
        """Class probabilities for classifiers that have them, else ``None``."""
        return None

    def unload(self) -> None:
        """Free what ``load`` created."""
        if hasattr(self, "model_"):
            del self.model_

    @property
    def loaded(self) -> bool:
        return hasattr(self, "model_")

    def metadata(self) -> dict[str, Any]:
        """Flavor, framework version and anything else worth reporting about the model."""
        return {"flavor": self.flavor}

    def _require_loaded(self) -> Any:
        try:
            return self.model_  # type: ignore[attr-defined]
        except AttributeError:
            raise ModelLoadError(f"{self.flavor} runtime used before load()") from None

    # -- registration-time capabilities ---------------------------------------------------
    @classmethod
    def detect(cls, path: Path) -> bool:
        """True when ``path`` (a file or folder) is an artifact of this flavor."""
        return False

    @classmethod
    def can_save(cls, obj: Any) -> bool:
        """True when ``obj`` is an in-memory model this flavor can serialise."""
        return False

    @classmethod
    def save(cls, obj: Any, directory: Path) -> Path:
        """Serialise ``obj`` into ``directory`` (in this flavor's safe format) and return the
        path of the artifact (a file or a folder inside ``directory``)."""
        raise NotImplementedError(f"flavor {cls.flavor!r} cannot serialise in-memory models")

    @classmethod
    def requires_trust(cls, path: Path) -> bool:
        """True when loading ``path`` would unpickle, which needs explicit operator trust."""
        return False

    @classmethod
    def framework_versions(cls) -> dict[str, str]:
        """Versions of the libraries this flavor uses, recorded in lineage."""
        from importlib import metadata

        out: dict[str, str] = {}
        for dist in cls.requires:
            with suppress(metadata.PackageNotFoundError):
                out[dist] = metadata.version(dist)
        return out
