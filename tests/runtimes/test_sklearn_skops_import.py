"""The sklearn runtime imports skops without scanning all of scikit-learn, and skops still
behaves as always for everyone else (the MLflow runtime, user code)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import sys
from pathlib import Path
import numpy as np
from sklearn.linear_model import LogisticRegression
from lockgate.runtimes.sklearn import SklearnRuntime

X = np.random.default_rng(0).normal(size=(50, 3))
model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
path = SklearnRuntime.save(model, Path(sys.argv[1]))
assert not SklearnRuntime.requires_trust(path)
rt = SklearnRuntime(path)
rt.load()
assert (rt.model_.predict(X) == model.predict(X)).all()
assert "sklearn.semi_supervised" not in sys.modules, "skops scanned every scikit-learn module"

import skops.io as sio
# plain skops: estimators are trusted by default, exactly as without Lockgate
assert sio.get_untrusted_types(file=path) == [], sio.get_untrusted_types(file=path)
assert type(sio.load(path)).__name__ == "LogisticRegression"
assert "sklearn.semi_supervised" in sys.modules  # the scan ran, on first use
rt2 = SklearnRuntime(path)
rt2.load()
print("ok")
"""


def test_skops_imported_without_estimator_scan(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


LISTS = r"""
import json, sys
import numpy as np
import scipy.special
import sqlalchemy, pydantic  # modules with a __getattr__ loaded before skops, as in a server
from lockgate.runtimes.sklearn import _import_skops_io

_import_skops_io()
import skops.io._trusted_types as tt
import skops.io._utils as u
from skops.utils._fixes import get_scipy_ufunc_wrapper_type

assert u.whichmodule.__module__ == "skops.io._utils", "skops's whichmodule was not put back"
import importlib.machinery
assert isinstance(u.__loader__, importlib.machinery.SourceFileLoader), u.__loader__
assert u.__spec__.loader is u.__loader__
assert not any(type(f).__module__.startswith("lockgate") for f in sys.meta_path)
# the lists as skops's own whichmodule computes them, now
scipy_names = set(u.get_public_type_names(module=scipy.special, oftype=np.ufunc))
wrapper = get_scipy_ufunc_wrapper_type()
if wrapper is not None:
    scipy_names |= set(u.get_public_type_names(module=scipy.special, oftype=wrapper))
assert tt.SCIPY_UFUNC_TYPE_NAMES == sorted(scipy_names)
assert tt.NUMPY_UFUNC_TYPE_NAMES == u.get_public_type_names(module=np, oftype=np.ufunc)
print(json.dumps(len(tt.SCIPY_UFUNC_TYPE_NAMES)))
"""


def test_skops_type_lists_are_those_skops_computes(tmp_path: Path) -> None:
    """The faster module search used while skops is imported names every ufunc's module as
    skops's own search does, and leaves nothing of itself behind."""
    out = subprocess.run([sys.executable, "-c", LISTS], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 100


def test_first_module_holding_answers_as_whichmodule() -> None:
    """Object by object, over every loaded module, including modules with a ``__getattr__``,
    module subclasses, names of the module type's own attributes and objects found nowhere."""
    import types

    import numpy as np
    import scipy.special
    from skops.io._utils import whichmodule

    from lockgate.runtimes.sklearn import _first_module_holding

    fast = _first_module_holding(whichmodule)
    odd = types.ModuleType("lockgate_test_odd")

    class Sub(types.ModuleType):
        pass

    sub = Sub("lockgate_test_sub")
    marker, hidden = object(), object()
    odd.__getattr__ = lambda name: marker if name == "via_hook" else None  # type: ignore[method-assign]
    sub.thing = hidden  # type: ignore[attr-defined]
    sys.modules[odd.__name__] = odd
    sys.modules[sub.__name__] = sub
    try:
        cases: list[tuple[object, str]] = [
            (getattr(scipy.special, n), n) for n in dir(scipy.special) if not n.startswith("_")
        ]
        cases += [(getattr(np, n), n) for n in dir(np) if isinstance(getattr(np, n), np.ufunc)]
        cases += [(marker, "via_hook"), (hidden, "thing"), (object(), "nowhere")]
        cases += [(types.ModuleType.__dict__["__dict__"], "__dict__"), (sys, "sys")]
        assert len(cases) > 300
        for obj, name in cases:
            assert fast(obj, name) == whichmodule(obj, name), name
    finally:
        del sys.modules[odd.__name__], sys.modules[sub.__name__]
