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
