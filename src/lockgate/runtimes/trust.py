"""What Lockgate trusts when it loads an artifact.

Two rules:

* Pickle-based files (joblib/pickle, MLflow's pickled flavors) run code when loaded. They load
  only when the operator trusted them explicitly; :func:`untrusted_error` says how.
* skops files are safe by construction except for the types they name. skops already trusts
  primitives, containers, numpy arrays and ufuncs and the scikit-learn estimators it knows;
  every other type in a file must pass :func:`skops_type_allowed`, an allow-list held here and
  never read from the artifact:

  - classes defined in scikit-learn (``sklearn.*``), checked by importing the name and
    verifying it is a class whose ``__module__`` is inside ``sklearn``; functions are refused;
  - numpy dtype objects and random state types (:data:`numpy.dtype`, ``numpy.dtypes.*``,
    ``RandomState``, ``Generator`` and the bit generators);
  - scipy sparse matrices and arrays (csr, csc, coo, bsr, dia, dok, lil).

  Anything else (``builtins.eval``, ``posix.system``, a function or class of the user's own
  code) is refused with :class:`~lockgate.errors.UntrustedArtifactError` naming the types.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from lockgate.errors import UntrustedArtifactError

#: how an operator trusts an artifact; quoted in every UntrustedArtifactError
HOW_TO_TRUST = "pass --trust-pickle when registering or set LOCKGATE_TRUST_PICKLE=1"

_SPARSE_FORMATS = ("csr", "csc", "coo", "bsr", "dia", "dok", "lil")


def untrusted_error(path: Path, flavor: str, why: str) -> UntrustedArtifactError:
    """The error for an artifact that needs explicit trust: what it is, why, how to trust."""
    return UntrustedArtifactError(
        f"refusing to load {flavor} artifact {str(path)!r}: {why}. Loading it can run "
        f"arbitrary code; if you produced it and trust it, {HOW_TO_TRUST}",
        flavor=flavor,
        path=str(path),
    )


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@cache
def _data_type_names() -> frozenset[str]:
    """Exact names of the numpy and scipy types allowed in a skops file."""
    import numpy as np
    import numpy.dtypes
    import scipy.sparse as sp

    names: set[str] = {"numpy.dtype", _qualified(np.dtype)}
    for attr in dir(numpy.dtypes):
        obj = getattr(numpy.dtypes, attr)
        if isinstance(obj, type) and issubclass(obj, np.dtype):
            names.add(_qualified(obj))
            names.add(f"numpy.dtypes.{attr}")
    rnd = np.random
    for cls in (
        rnd.RandomState,
        rnd.Generator,
        rnd.SeedSequence,
        rnd.MT19937,
        rnd.PCG64,
        rnd.PCG64DXSM,
        rnd.Philox,
        rnd.SFC64,
    ):
        names.add(_qualified(cls))
    for fmt in _SPARSE_FORMATS:
        for kind in ("matrix", "array"):
            sparse = getattr(sp, f"{fmt}_{kind}", None)
            if isinstance(sparse, type):
                names.add(_qualified(sparse))
    return frozenset(names)


def _resolve(name: str) -> object | None:
    """Import the object called ``name`` (``module.path.Qual.Name``), or None."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


@cache
def skops_type_allowed(name: str) -> bool:
    """True when the skops type ``name`` is on Lockgate's allow-list (see the module doc)."""
    if name in _data_type_names():
        return True
    parts = name.split(".")
    if parts[0] != "sklearn" or len(parts) < 3 or not all(p.isidentifier() for p in parts):
        return False
    obj = _resolve(name)
    return (
        isinstance(obj, type)
        and obj.__module__.split(".")[0] == "sklearn"
        and _qualified(obj) == name
    )


def disallowed_skops_types(names: Iterable[str]) -> list[str]:
    """The names among ``names`` that the allow-list refuses, sorted."""
    return sorted({n for n in names if not skops_type_allowed(n)})
