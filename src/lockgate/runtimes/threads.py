"""How many threads the numerical libraries under a served model may use per call.

BLAS (OpenBLAS, MKL) and OpenMP default to one thread per core, and OpenBLAS's threads
busy-wait between calls. In ``lockgate server`` the model is called from the event loop, one
call at a time, for many small requests: those threads buy nothing there and take CPU from
the event loop, the network stack and everything else on the machine (docs/performance.md).
So the server limits them, like Ray Serve does with ``OMP_NUM_THREADS=1``:
``LOCKGATE_INFERENCE_THREADS`` (default 1; 0 leaves the libraries' own defaults, and the
standard variables, alone).
"""

from __future__ import annotations

import os
import sys

#: the variables the libraries read when they are loaded
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: modules whose presence means a BLAS or OpenMP library may be loaded already
_NUMERIC = ("numpy", "scipy", "sklearn", "torch", "xgboost", "lightgbm", "onnxruntime")


def limit_inference_threads(threads: int) -> bool:
    """Limit BLAS and OpenMP to ``threads`` per call in this process (0: leave them).

    Sets the standard variables for libraries loaded from now on and, when a numerical module
    is imported already, applies the limit to the libraries it loaded (threadpoolctl).
    Returns whether a limit was set."""
    if threads < 0:
        raise ValueError(f"inference threads: expected an int >= 0, got {threads!r}")
    if threads == 0:
        return False
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    if any(name in sys.modules for name in _NUMERIC):
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    return True
