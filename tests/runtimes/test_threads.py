"""The thread limit of the numerical libraries under served models, in fresh interpreters
(it changes process-wide state: the environment and the loaded BLAS libraries)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lockgate.runtimes.threads import limit_inference_threads

REPORT = """
import json, sys
from threadpoolctl import threadpool_info
print(json.dumps([[i["internal_api"], i["num_threads"]] for i in threadpool_info()]))
"""


def _run(code: str, env: dict[str, str] | None = None) -> list[list[object]]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    clean.update(env or {})
    out = subprocess.run(
        [sys.executable, "-c", code + REPORT], env=clean, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_limit_before_the_libraries_load_reaches_them() -> None:
    info = _run(
        "from lockgate.runtimes.threads import limit_inference_threads\n"
        "assert limit_inference_threads(1)\n"
        "import numpy, scipy.linalg, sklearn.base\n"
    )
    assert info, "numpy loaded no BLAS library that threadpoolctl knows"
    assert all(n == 1 for _, n in info), info


def test_limit_after_the_libraries_loaded_reaches_them() -> None:
    info = _run(
        "import numpy, scipy.linalg, sklearn.base\n"
        "from lockgate.runtimes.threads import limit_inference_threads\n"
        "assert limit_inference_threads(2)\n"
    )
    assert info and all(n == 2 for _, n in info), info


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: the default is 1 thread")
def test_zero_leaves_the_libraries_and_the_variables_alone() -> None:
    default = _run("import numpy, scipy.linalg\n")
    info = _run(
        "from lockgate.runtimes.threads import limit_inference_threads\n"
        "assert not limit_inference_threads(0)\n"
        "import os, numpy, scipy.linalg\n"
        "assert os.environ.get('OPENBLAS_NUM_THREADS') == '3', os.environ\n",
        {"OPENBLAS_NUM_THREADS": "3"},
    )
    assert {n for _, n in default} != {1}, default
    assert info == default  # OpenBLAS caps the variable at the cores: as by default


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="expected an int >= 0, got -1"):
        limit_inference_threads(-1)
