"""Runtimes: one per model flavor. Heavy frameworks are imported only when their flavor is used.

Third-party runtimes register under the ``lockgate.runtimes`` entry point group
(``name = "package.module:RuntimeClass"``) and are held to the same ``check_runtime`` suite.
"""

from __future__ import annotations

import importlib
import os
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.errors import InvalidInputError, RuntimeUnavailableError

if TYPE_CHECKING:
    from lockgate.runtimes.base import Runtime

__all__ = ["BUILTIN_RUNTIMES", "Runtime", "detect_flavor", "flavor_for_object", "get_runtime"]

#: flavor -> "module:Class"; the order is the detection order
BUILTIN_RUNTIMES: dict[str, str] = {
    "sklearn": "lockgate.runtimes.sklearn:SklearnRuntime",
    "onnx": "lockgate.runtimes.onnx:OnnxRuntime",
    "xgboost": "lockgate.runtimes.xgboost:XGBoostRuntime",
    "lightgbm": "lockgate.runtimes.lightgbm:LightGBMRuntime",
    "torch": "lockgate.runtimes.torch:TorchRuntime",
    "mlflow": "lockgate.runtimes.mlflow:MLflowRuntime",
}


#: runtimes registered in this process by :func:`register_runtime`
_REGISTERED: dict[str, str] = {}
#: more runtimes for a process without installing a package: ``flavor=module:Class`` pairs
#: separated by commas (documented in docs/settings.md and docs/runtimes.md)
RUNTIMES_ENV = "LOCKGATE_RUNTIMES"


@cache
def _all_specs() -> dict[str, str]:
    specs = dict(BUILTIN_RUNTIMES)
    for ep in entry_points(group="lockgate.runtimes"):
        specs.setdefault(ep.name, ep.value)
    for pair in filter(None, (p.strip() for p in os.environ.get(RUNTIMES_ENV, "").split(","))):
        flavor, _, spec = pair.partition("=")
        specs.setdefault(flavor.strip(), spec.strip())
    for flavor, spec in _REGISTERED.items():
        specs.setdefault(flavor, spec)
    return specs


def register_runtime(flavor: str, spec: str) -> None:
    """Make ``flavor`` load with the Runtime class at ``spec`` (``"module:Class"``) in this
    process, as a ``lockgate.runtimes`` entry point would; built-in and installed flavors win.
    A server process gets the same from ``LOCKGATE_RUNTIMES=flavor=module:Class``."""
    if not isinstance(flavor, str) or not flavor.isidentifier():
        raise InvalidInputError.for_field("flavor", "an identifier", flavor)
    module, _, attr = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not module or not attr:
        raise InvalidInputError.for_field("spec", "'package.module:RuntimeClass'", spec)
    _REGISTERED[flavor] = spec
    _all_specs.cache_clear()


def available_flavors() -> list[str]:
    return list(_all_specs())


def get_runtime(flavor: str) -> type[Runtime]:
    """The runtime class of ``flavor``; a clear error when unknown or not installed."""
    spec = _all_specs().get(flavor)
    if spec is None:
        raise InvalidInputError.for_field("flavor", f"one of {', '.join(_all_specs())}", flavor)
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = flavor if flavor in BUILTIN_RUNTIMES else "the plugin's package"
        raise RuntimeUnavailableError(
            f"flavor {flavor!r} needs a framework that is not installed ({exc.name or exc}); "
            f"install it with: pip install 'lockgate[{extra}]'"
        ) from None
    cls = getattr(module, attr)
    from lockgate.runtimes.base import Runtime

    if not (isinstance(cls, type) and issubclass(cls, Runtime)):
        raise RuntimeUnavailableError(f"{spec} is not a lockgate Runtime subclass")
    return cls


def _loadable() -> list[type[Runtime]]:
    out = []
    for flavor in _all_specs():
        try:
            out.append(get_runtime(flavor))
        except RuntimeUnavailableError:
            continue
    return out


def detect_flavor(path: Path) -> str:
    """The flavor of the artifact at ``path``, or a clear error naming the path."""
    for cls in _loadable():
        if cls.detect(path):
            return cls.flavor
    raise InvalidInputError.for_field(
        "flavor", "a recognised model file (give --flavor to choose one)", str(path.name)
    )


def flavor_for_object(obj: Any) -> str:
    """The flavor that can serialise the in-memory model ``obj``."""
    for cls in _loadable():
        if cls.can_save(obj):
            return cls.flavor
    raise InvalidInputError.for_field(
        "model", "a model object of a supported framework", type(obj).__qualname__
    )


def __getattr__(name: str) -> Any:
    # `Runtime` (and with it pandas and NumPy) is imported on first use, so that
    # `lockgate.runtimes.threads` can limit the libraries' threads before they load
    if name == "Runtime":
        from lockgate.runtimes.base import Runtime

        return Runtime
    raise AttributeError(f"module 'lockgate.runtimes' has no attribute {name!r}")
