"""The PyTorch runtime (flavor ``torch``, extra ``lockgate[torch]``). Never unpickles code.

Two artifact kinds, both ``.pt``/``.pth`` zip files (or a folder holding ``model.pt``):

* TorchScript (what :meth:`TorchRuntime.save` writes with ``torch.jit.script``), loaded with
  ``torch.jit.load``: the module's code travels in the file as TorchScript, not pickle.
* A state dict saved with ``torch.save(module.state_dict(), path)``, loaded with
  ``torch.load(path, weights_only=True)`` into the module that the runtime option
  ``module="package.module:factory"`` builds. The factory is imported from the operator's
  environment (never from the artifact) and called with ``module_kwargs`` (a mapping, default
  none); the import path must be dotted identifiers.

Prediction: the frame becomes one float32 tensor ``(rows, columns)`` in signature order (a
single column of per-row tensors is stacked to ``(rows, *row_shape)``), the module runs under
``torch.no_grad()`` and the first output is returned as NumPy; a ``(rows, 1)`` output is
flattened. With ``task="classification"``, ``predict`` returns the argmax over the last axis
(mapped through ``classes`` when given) and ``predict_proba`` the softmax of the output (or
the output itself with ``outputs="probabilities"``).

Options: ``module``, ``module_kwargs``, ``task`` (``"regression"`` default, or
``"classification"``), ``classes``, ``outputs`` (``"logits"`` default, or
``"probabilities"``).
"""

from __future__ import annotations

import importlib
import re
import sys
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lockgate.batch import Batch
from lockgate.errors import InvalidInputError, ModelLoadError
from lockgate.runtimes._util import (
    artifact_file,
    folder_has,
    import_framework,
    load_error,
    predicting,
)
from lockgate.runtimes.base import Runtime

ARTIFACT_NAMES = ("model.pt", "model.pth")
SUFFIXES = (".pt", ".pth")
_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _torch() -> Any:
    return import_framework("torch", "torch")


def _zip_kind(path: Path) -> str | None:
    """``"script"`` for a TorchScript archive, ``"state"`` for another torch.save zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return None
    return "script" if any("/code/" in n for n in names) else "state"


def resolve_factory(spec: str) -> Any:
    """Import ``package.module:factory`` (dotted identifiers only) and return the callable."""
    if not isinstance(spec, str) or not _FACTORY.match(spec):
        raise InvalidInputError.for_field(
            "options.module", "an import path 'package.module:factory' of identifiers", spec
        )
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError.for_field(
            "options.module", "an importable module factory", f"{spec} ({exc})"
        ) from None
    if not callable(obj):
        raise InvalidInputError.for_field("options.module", "a callable factory", spec)
    return obj


class TorchRuntime(Runtime):
    flavor: ClassVar[str] = "torch"
    requires: ClassVar[tuple[str, ...]] = ("torch",)

    def load(self) -> None:
        torch = _torch()
        file = artifact_file(self.path, self.flavor, ARTIFACT_NAMES)
        kind = _zip_kind(file)
        if kind is None:
            raise ModelLoadError(
                f"cannot load torch model from {str(file)!r}: not a TorchScript or "
                "torch.save zip archive",
                flavor=self.flavor,
                path=str(file),
            )
        task = self.options.get("task", "regression")
        if task not in ("regression", "classification"):
            raise InvalidInputError.for_field(
                "options.task", "'regression' or 'classification'", task
            )
        try:
            if kind == "script":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript notice
                    module = torch.jit.load(str(file), map_location="cpu")
            else:
                module = self._from_state_dict(torch, file)
        except (InvalidInputError, ModelLoadError):
            raise
        except Exception as exc:
            raise load_error(self.flavor, file, exc) from exc
        module.eval()
        classes = self.options.get("classes")
        self.kind_ = kind
        self.classes_ = np.asarray(classes) if classes is not None else None
        self.model_ = module

    def _from_state_dict(self, torch: Any, file: Path) -> Any:
        spec = self.options.get("module")
        if spec is None:
            raise ModelLoadError(
                f"cannot load torch model from {str(file)!r}: it is a state dict; give the "
                "runtime option module='package.module:factory' that builds the module",
                flavor=self.flavor,
                path=str(file),
            )
        factory = resolve_factory(spec)
        kwargs = self.options.get("module_kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise InvalidInputError.for_field("options.module_kwargs", "a mapping", kwargs)
        module = factory(**kwargs)
        if not isinstance(module, torch.nn.Module):
            raise InvalidInputError.for_field(
                "options.module", "a factory returning torch.nn.Module", type(module).__name__
            )
        state = torch.load(str(file), map_location="cpu", weights_only=True)
        module.load_state_dict(state)
        return module

    def unload(self) -> None:
        for attr in ("model_", "kind_", "classes_"):
            self.__dict__.pop(attr, None)

    # -- prediction ------------------------------------------------------------------------
    def _output(self, batch: Batch) -> np.ndarray:
        module = self._require_loaded()
        torch = sys.modules["torch"]
        if len(batch.names) == 1:
            col = batch.columns[batch.names[0]]
            if col.dtype == object:  # a column of per-row tensors
                array = np.stack([np.asarray(v, dtype=np.float32) for v in col])
            elif col.ndim > 1:
                array = col.astype(np.float32, copy=False)
            else:
                array = col.astype(np.float32, copy=False).reshape(-1, 1)
        else:
            array = batch.matrix(np.dtype(np.float32))
        with torch.no_grad():
            # a writable C-contiguous buffer (pandas may hand out read-only views): copy only
            # when needed
            out = module(torch.from_numpy(np.require(array, requirements=["C", "W"])))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return np.asarray(out.detach().cpu().numpy())

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return self.predict_batch(Batch.from_frame(data))

    def predict_batch(self, batch: Batch) -> np.ndarray:
        self._require_loaded()
        with predicting(self.flavor):
            out = self._output(batch)
            if self.options.get("task") == "classification" and out.ndim > 1:
                index: np.ndarray = out.argmax(axis=-1)
                return self.classes_[index] if self.classes_ is not None else index
            if out.ndim == 2 and out.shape[1] == 1:
                return out.reshape(-1)
            return out

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray | None:
        self._require_loaded()
        if self.options.get("task") != "classification":
            return None
        with predicting(self.flavor):
            out = self._output(Batch.from_frame(data))
            if self.options.get("outputs") == "probabilities":
                return out
            shifted = np.exp(out - out.max(axis=-1, keepdims=True))
            return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True))

    def metadata(self) -> dict[str, Any]:
        out = super().metadata()
        out.update(self.framework_versions())
        if not self.loaded:
            return out
        out["format"] = "torchscript" if self.kind_ == "script" else "state_dict"
        out["module"] = type(self.model_).__qualname__
        out["task"] = self.options.get("task", "regression")
        out["parameters"] = int(sum(p.numel() for p in self.model_.parameters()))
        return out

    # -- registration-time capabilities ---------------------------------------------------
    @classmethod
    def detect(cls, path: Path) -> bool:
        path = Path(path)
        if path.is_dir():
            return folder_has(path, ARTIFACT_NAMES) and any(
                _zip_kind(path / n) for n in ARTIFACT_NAMES if (path / n).is_file()
            )
        return path.suffix.lower() in SUFFIXES and _zip_kind(path) is not None

    @classmethod
    def can_save(cls, obj: Any) -> bool:
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(obj, torch.nn.Module)

    @classmethod
    def save(cls, obj: Any, directory: Path) -> Path:
        """Save ``obj`` as TorchScript: a ScriptModule as is, an ``nn.Module`` through
        ``torch.jit.script``. For a module that does not script, trace it yourself
        (``torch.jit.trace(module, example)``) and register the result."""
        torch = _torch()
        if not cls.can_save(obj):
            raise InvalidInputError.for_field("model", "a torch.nn.Module", type(obj).__qualname__)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript notice
            if isinstance(obj, torch.jit.ScriptModule):
                scripted = obj
            else:
                try:
                    scripted = torch.jit.script(obj)
                except Exception as exc:
                    raise InvalidInputError.for_field(
                        "model",
                        "a module torch.jit.script can compile (or trace it first with "
                        "torch.jit.trace(module, example))",
                        f"{type(obj).__qualname__}: {str(exc).splitlines()[0]}",
                    ) from exc
            directory = Path(directory)
            directory.mkdir(parents=True, exist_ok=True)
            target = directory / "model.pt"
            scripted.save(str(target))
        return target
