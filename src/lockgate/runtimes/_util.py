"""Helpers shared by the built-in runtimes: importing an optional framework with a clear
error, locating the model file of an artifact, and wrapping framework errors.

Nothing here imports a framework at module level.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from lockgate.errors import LockgateError, ModelLoadError, PredictionError, RuntimeUnavailableError

#: the marker file of an MLflow model folder; other flavors never claim such a folder
MLMODEL = "MLmodel"


def import_framework(module: str, flavor: str, install: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`RuntimeUnavailableError` saying what to install
    (``install``: the pip argument, default the ``lockgate[<flavor>]`` extra)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RuntimeUnavailableError(
            f"flavor {flavor!r} needs {module!r}, which is not installed ({exc}); "
            f"install it with: pip install {install or repr(f'lockgate[{flavor}]')}",
            flavor=flavor,
            module=module,
        ) from None


def artifact_file(path: Path, flavor: str, names: tuple[str, ...]) -> Path:
    """The model file of an artifact: ``path`` itself when it is a file, else the first of
    ``names`` found inside the folder ``path``. Raises :class:`ModelLoadError` naming the path."""
    if path.is_file():
        return path
    if path.is_dir():
        for name in names:
            candidate = path / name
            if candidate.is_file():
                return candidate
        raise ModelLoadError(
            f"cannot load {flavor} model: folder {str(path)!r} holds none of {list(names)}",
            flavor=flavor,
            path=str(path),
        )
    raise ModelLoadError(
        f"cannot load {flavor} model: {str(path)!r} does not exist", flavor=flavor, path=str(path)
    )


def folder_has(path: Path, names: tuple[str, ...]) -> bool:
    """True when ``path`` is a folder (not an MLflow model) holding one of ``names``."""
    if not path.is_dir() or (path / MLMODEL).exists():
        return False
    return any((path / name).is_file() for name in names)


def load_error(flavor: str, path: Path, exc: BaseException) -> ModelLoadError:
    """A :class:`ModelLoadError` naming the flavor, the path and the framework's complaint."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelLoadError(
        f"cannot load {flavor} model from {str(path)!r}: {type(exc).__name__}: {reason}",
        flavor=flavor,
        path=str(path),
    )


@contextmanager
def predicting(flavor: str) -> Iterator[None]:
    """Turn a framework's exception during prediction into :class:`PredictionError`."""
    try:
        yield
    except LockgateError:
        raise
    except Exception as exc:
        raise prediction_error(flavor, exc) from exc


def prediction_error(flavor: str, exc: Exception) -> PredictionError:
    """What :func:`predicting` raises for a framework's exception (for hot paths that
    inline its ``try``: a context manager costs ~1.5 us per call)."""
    return PredictionError(
        f"{flavor} model failed to predict: {type(exc).__name__}: {exc}", flavor=flavor
    )


def read_head(path: Path, size: int = 256) -> bytes:
    """The first ``size`` bytes of a file, or ``b""`` when it cannot be read."""
    try:
        with path.open("rb") as fh:
            return fh.read(size)
    except OSError:
        return b""
