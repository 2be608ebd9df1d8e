"""The scikit-learn runtime (flavor ``sklearn``).

Formats:

* ``.skops`` (the default, written by :meth:`SklearnRuntime.save`): loaded with skops, trusting
  only the types on Lockgate's allow-list (:mod:`lockgate.runtimes.trust`). A file naming any
  other type is refused unless the operator trusted the artifact.
* ``.joblib``, ``.pkl``, ``.pickle``: unpickled with joblib, and only with explicit trust.

An artifact is such a file or a folder holding ``model.skops`` (or ``model.joblib``,
``model.pkl``, ``model.pickle``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lockgate.batch import Batch
from lockgate.errors import (
    LockgateError,
    ModelLoadError,
    PredictionError,
    UntrustedArtifactError,
)
from lockgate.runtimes._util import (
    artifact_file,
    folder_has,
    import_framework,
    load_error,
    predicting,
    prediction_error,
)
from lockgate.runtimes.base import Runtime
from lockgate.runtimes.finite import nonfinite_error, numeric, refusal_error
from lockgate.runtimes.trust import disallowed_skops_types, untrusted_error

SKOPS_SUFFIXES = (".skops",)
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
ARTIFACT_NAMES = ("model.skops", "model.joblib", "model.pkl", "model.pickle")
#: packages whose scikit-learn-compatible estimators are saved by their own flavor
NATIVE_FLAVOR_PACKAGES = ("xgboost", "lightgbm")


#: scikit-learn's per-thread configuration dict (set when a model's NaN tag is read):
#: toggling ``assume_finite`` in it costs nothing, ``config_context`` about 4 us per call
_sklearn_config: Callable[[], dict[str, Any]] = dict


#: attributes of meta-estimators (pipelines, column transformers, ensembles of given
#: estimators, searches, wrappers): their inner steps check their inputs their own way
_COMPOSITE_ATTRS = (
    "steps",
    "transformers",
    "transformer_list",
    "estimator",
    "estimators",
    "base_estimator",
)


def _nan_allowed(model: Any) -> bool | None:
    """scikit-learn's ``allow_nan`` input tag of a plain estimator, which its ``predict``
    checks by: NaN refused unless it is set, infinity always. None (scikit-learn then checks
    as usual) for meta-estimators, whose tag need not say what their inner steps accept (a
    pipeline starting with an imputer is tagged ``allow_nan=False``), for anything without
    readable tags, and for a scikit-learn that keeps its configuration otherwise."""
    global _sklearn_config
    if any(hasattr(model, a) for a in _COMPOSITE_ATTRS):
        return None
    try:
        from sklearn._config import _get_threadlocal_config
        from sklearn.utils import get_tags

        allow = bool(get_tags(model).input_tags.allow_nan)
        if not isinstance(_get_threadlocal_config().get("assume_finite"), bool):
            return None
    except Exception:
        return None
    _sklearn_config = _get_threadlocal_config
    return allow


def _is_skops(path: Path) -> bool:
    if path.suffix.lower() not in SKOPS_SUFFIXES:
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return "schema.json" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


# -- importing skops without scanning all of scikit-learn ----------------------------------
#
# ``import skops.io`` builds skops's default trusted list from ``sklearn.utils.all_estimators()``,
# which imports every scikit-learn module (and PyTorch through sklearn's bundled
# array_api_compat when torch is installed): seconds of server start-up for a list Lockgate does
# not need, because every type skops does not trust by default goes through Lockgate's own
# allow-list (:func:`lockgate.runtimes.trust.skops_type_allowed`), which accepts every
# scikit-learn class. So skops.io is imported with the scan deferred: the list becomes
# :class:`_DeferredEstimatorNames`, empty while Lockgate itself asks skops (the types then come
# back as "untrusted" and are judged by the allow-list: same decision), and computed on first
# use by anyone else (the MLflow runtime, user code), so skops behaves for them as it always did.

_LOCKGATE_SKOPS: ContextVar[bool] = ContextVar("lockgate_skops_call", default=False)
_SKOPS_IMPORT_LOCK = threading.Lock()


class _DeferredEstimatorNames(list):  # type: ignore[type-arg]
    """skops's ``SKLEARN_ESTIMATOR_TYPE_NAMES``, computed on first use outside Lockgate."""

    def __init__(self, scan: Callable[[], list[str]]) -> None:
        super().__init__()
        self._scan: Callable[[], list[str]] | None = scan
        self._lock = threading.Lock()

    def _names(self) -> list[str]:
        if _LOCKGATE_SKOPS.get():
            return []
        if self._scan is not None:
            with self._lock:
                if self._scan is not None:
                    list.extend(self, self._scan())
                    self._scan = None
        return list(list.__iter__(self))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __bool__(self) -> bool:
        return bool(self._names())

    def __contains__(self, item: object) -> bool:
        return item in self._names()

    def __getitem__(self, index: Any) -> Any:
        return self._names()[index]

    def __add__(self, other: Any) -> list[str]:  # type: ignore[override]
        return self._names() + list(other)

    def __radd__(self, other: Any) -> list[str]:
        return list(other) + self._names()

    def __repr__(self) -> str:
        return repr(self._names())


# The same import also names the module of each of ~400 SciPy and NumPy ufuncs, which have
# no ``__module__``: skops's ``whichmodule`` asks every loaded module in import order,
# ``getattr(module, name, None)``, until one holds the object. A miss costs ~2 us (the
# attribute error is raised and cleared inside ``getattr``; more in modules with a
# ``__getattr__``), and a server has 700-800 modules loaded before SciPy's.
# :func:`_first_module_holding` gives the same answers from the modules' dictionaries, asking
# ``getattr`` only where a dictionary may not say it all: skops.io's import after a server's
# imports went from 0.40 to 0.31 s (best of four, on a slow day of the development VM).

_MODULE_TYPE_NAMES = frozenset(dir(ModuleType))
_MISSING = object()


def _first_module_holding(whichmodule: Callable[[Any, str], str]) -> Callable[[Any, str], str]:
    """skops's ``whichmodule`` (the first loaded module, in import order, whose attribute
    ``name`` is ``obj``), answered from module dictionaries. A plain module without a
    ``__getattr__`` holds an attribute that is not one of its type's exactly when its
    ``__dict__`` does; any other module, name or object goes through the original."""

    def find(obj: Any, name: str) -> str:
        if (
            getattr(obj, "__module__", None) is not None
            or "." in name
            or name in _MODULE_TYPE_NAMES
        ):
            return whichmodule(obj, name)
        with warnings.catch_warnings():  # as skops: numpy.core's deprecation warnings
            warnings.simplefilter("ignore", DeprecationWarning)
            for module_name, module in sys.modules.copy().items():
                if module_name in ("__main__", "__mp_main__") or module is None:
                    continue
                if module.__class__ is ModuleType:
                    d = module.__dict__
                    if "__getattr__" not in d:
                        if d.get(name, _MISSING) is obj:
                            return module_name
                        continue
                try:
                    found = getattr(module, name, None)
                except (AttributeError, ImportError):
                    continue
                if found is obj:
                    return module_name
        return "__main__"

    return find


class _WhichModuleDuringImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """On ``sys.meta_path`` while skops.io is imported: loads ``skops.io._utils`` with its
    own loader, then swaps its ``whichmodule`` for :func:`_first_module_holding`'s, for the
    rest of the import; :meth:`undo` puts everything back."""

    NAME = "skops.io._utils"

    def __init__(self) -> None:
        self._loader: Any = None
        self._module: ModuleType | None = None
        self._which: Any = None

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.NAME or self._loader is not None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            self._loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: Any) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        which = getattr(module, "whichmodule", None)
        if callable(which):
            self._module, self._which = module, which
            module.whichmodule = _first_module_holding(which)  # type: ignore[attr-defined]

    def undo(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        if self._module is not None:
            self._module.whichmodule = self._which  # type: ignore[attr-defined]
            self._module = None


def _import_skops_io() -> ModuleType:
    if "skops.io" in sys.modules:  # imported already (None: blocked; the import raises)
        return import_framework("skops.io", "sklearn", "skops")
    sklearn_utils = import_framework("sklearn.utils", "sklearn", "scikit-learn")
    with _SKOPS_IMPORT_LOCK:
        if "skops.io" in sys.modules:
            return import_framework("skops.io", "sklearn", "skops")
        real = sklearn_utils.all_estimators
        sklearn_utils.all_estimators = lambda *args, **kwargs: []
        finder = _WhichModuleDuringImport()
        sys.meta_path.insert(0, finder)
        try:
            sio = import_framework("skops.io", "sklearn", "skops")
        finally:
            sklearn_utils.all_estimators = real
            finder.undo()
        trusted = sys.modules.get("skops.io._trusted_types")
        empty = getattr(trusted, "SKLEARN_ESTIMATOR_TYPE_NAMES", None)
        if not isinstance(empty, list) or empty:
            return sio  # a skops layout we do not know: it computed its list as usual

        def scan() -> list[str]:
            from skops.io._utils import get_type_name

            names = (get_type_name(cls) for _, cls in real())
            return [n for n in names if n.startswith("sklearn.")]

        deferred = _DeferredEstimatorNames(scan)
        for name, module in list(sys.modules.items()):
            if (
                name.startswith("skops.")
                and getattr(module, "SKLEARN_ESTIMATOR_TYPE_NAMES", None) is empty
            ):
                module.SKLEARN_ESTIMATOR_TYPE_NAMES = deferred  # type: ignore[attr-defined]
        return sio


@contextmanager
def _skops() -> Iterator[ModuleType]:
    """skops.io for a call by Lockgate, whose allow-list judges every sklearn type."""
    sio = _import_skops_io()
    token = _LOCKGATE_SKOPS.set(True)
    try:
        yield sio
    finally:
        _LOCKGATE_SKOPS.reset(token)


def _untrusted_skops_types(file: Path) -> list[str]:
    with _skops() as sio:
        try:
            return list(sio.get_untrusted_types(file=file))
        except Exception as exc:
            raise load_error("sklearn", file, exc) from exc


class SklearnRuntime(Runtime):
    """Runs scikit-learn estimators and pipelines.

    ``predict`` hands the model the DataFrame when it was fitted on one (it has
    ``feature_names_in_``), else the plain NumPy array, which skips pandas overhead.
    """

    flavor: ClassVar[str] = "sklearn"
    requires: ClassVar[tuple[str, ...]] = ("scikit-learn", "skops", "joblib")

    # -- lifecycle -------------------------------------------------------------------------
    def load(self) -> None:
        file = artifact_file(self.path, self.flavor, ARTIFACT_NAMES)
        if file.suffix.lower() in PICKLE_SUFFIXES:
            model = self._load_pickle(file)
            fmt = "joblib"
        else:
            model = self._load_skops(file)
            fmt = "skops"
        if not callable(getattr(model, "predict", None)):
            raise ModelLoadError(
                f"cannot load sklearn model from {str(file)!r}: the loaded "
                f"{type(model).__qualname__} has no predict()",
                flavor=self.flavor,
                path=str(file),
            )
        self.format_ = fmt
        self.wants_frame_ = hasattr(model, "feature_names_in_")
        #: whether the model takes NaN (None: unknown, scikit-learn checks as usual)
        self.allow_nan_ = _nan_allowed(model)
        self.model_ = model

    def _load_pickle(self, file: Path) -> Any:
        if not self.trusted:
            raise untrusted_error(file, self.flavor, f"{file.suffix} files are pickles")
        joblib = import_framework("joblib", self.flavor, "joblib")
        try:
            return joblib.load(file)
        except Exception as exc:
            raise load_error(self.flavor, file, exc) from exc

    def _load_skops(self, file: Path) -> Any:
        untrusted = _untrusted_skops_types(file)
        refused = disallowed_skops_types(untrusted)
        if refused and not self.trusted:
            raise untrusted_error(
                file,
                self.flavor,
                f"it holds types outside Lockgate's skops allow-list: {', '.join(refused)}",
            )
        with _skops() as sio:
            try:
                return sio.load(file, trusted=untrusted)
            except UntrustedArtifactError:
                raise
            except Exception as exc:
                raise load_error(self.flavor, file, exc) from exc

    def unload(self) -> None:
        for attr in ("model_", "format_", "wants_frame_", "allow_nan_"):
            self.__dict__.pop(attr, None)

    # -- prediction ------------------------------------------------------------------------
    def _features(self, data: pd.DataFrame) -> pd.DataFrame | np.ndarray:
        return data if self.wants_frame_ else data.to_numpy()

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        model = self._require_loaded()
        with predicting(self.flavor):
            return np.asarray(model.predict(self._features(data)))

    def predict_batch(self, batch: Batch) -> np.ndarray:
        """The serving hot path: the batch's matrix straight to the model, a DataFrame only
        for models fitted on one. When the model's tags say whether it takes NaN and every
        column is numeric, the values are checked here (:meth:`check_batch`) and
        scikit-learn skips its own, slower, check (``assume_finite``)."""
        model = self._require_loaded()
        X = batch.frame() if self.wants_frame_ else batch.matrix()
        checked = self._check(batch)  # after matrix(): one check over the whole matrix
        if not checked:
            try:
                with predicting(self.flavor):
                    return np.asarray(model.predict(X))
            except PredictionError as exc:  # a pipeline's step refusing NaN: a bad request
                err = refusal_error(batch, exc.__cause__)
                if err is None:
                    raise
                raise err from exc.__cause__
        config = _sklearn_config()
        assumed = config["assume_finite"]
        config["assume_finite"] = True
        try:  # what predicting() does, without a context manager's ~1.5 us per call
            return np.asarray(model.predict(X))
        except LockgateError:
            raise
        except Exception as exc:
            raise prediction_error(self.flavor, exc) from exc
        finally:
            config["assume_finite"] = assumed

    def check_batch(self, batch: Batch) -> None:
        """NaN or infinity the model does not take: InvalidInputError naming the column and
        row."""
        self._check(batch)

    def _check(self, batch: Batch) -> bool:
        """Check the batch's values against the model's NaN tag; False when that cannot be
        done (tag unknown, a column not numeric, not loaded): scikit-learn then checks."""
        allow_nan = getattr(self, "allow_nan_", None)
        if allow_nan is None or not numeric(batch):
            return False
        err = nonfinite_error(batch, allow_nan=allow_nan)
        if err is not None:
            raise err
        return True

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray | None:
        model = self._require_loaded()
        if not hasattr(model, "predict_proba"):
            return None
        with predicting(self.flavor):
            return np.asarray(model.predict_proba(self._features(data)))

    def metadata(self) -> dict[str, Any]:
        out = super().metadata()
        out.update(self.framework_versions())
        model = getattr(self, "model_", None)
        if model is None:
            return out
        cls = type(model)
        out["format"] = self.format_
        out["estimator"] = f"{cls.__module__}.{cls.__qualname__}"
        classes = getattr(model, "classes_", None)
        if classes is not None:
            out["classes"] = np.asarray(classes).tolist()
        names = getattr(model, "feature_names_in_", None)
        if names is not None:
            out["feature_names"] = [str(n) for n in names]
        return out

    # -- registration-time capabilities ---------------------------------------------------
    @classmethod
    def detect(cls, path: Path) -> bool:
        path = Path(path)
        if path.is_dir():
            return folder_has(path, ARTIFACT_NAMES)
        if path.suffix.lower() in PICKLE_SUFFIXES:
            return path.is_file()
        return _is_skops(path)

    @classmethod
    def can_save(cls, obj: Any) -> bool:
        """scikit-learn estimators and pipelines, except the scikit-learn wrappers of
        frameworks that have their own native flavor (XGBoost, LightGBM)."""
        base = sys.modules.get("sklearn.base")
        if base is None or not isinstance(obj, base.BaseEstimator):
            return False
        return type(obj).__module__.split(".")[0] not in NATIVE_FLAVOR_PACKAGES

    @classmethod
    def save(cls, obj: Any, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "model.skops"
        with _skops() as sio:
            sio.dump(obj, target)
        return target

    @classmethod
    def requires_trust(cls, path: Path) -> bool:
        """Pickles always need trust; a skops file needs it when it names a type outside the
        allow-list (loading it with trust accepts those types)."""
        path = Path(path)
        try:
            file = artifact_file(path, cls.flavor, ARTIFACT_NAMES)
        except ModelLoadError:
            return False
        if file.suffix.lower() in PICKLE_SUFFIXES:
            return True
        try:
            return bool(disallowed_skops_types(_untrusted_skops_types(file)))
        except ModelLoadError:
            return False
