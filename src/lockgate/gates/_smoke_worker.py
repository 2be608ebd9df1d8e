"""The smoke gate's child process: load one artifact with its production runtime, answer sample
requests, report on a private pipe, exit.

Run as ``python -m lockgate.gates._smoke_worker``. It reads one JSON line from stdin::

    {"flavor": "sklearn", "path": "...", "trusted": false, "options": {}, "signature": {...},
     "rows": ".../rows.parquet"}

and writes JSON lines to its original stdout (the model's own prints go to stderr)::

    {"event": "ready"}                                  interpreter and Lockgate imported
    {"event": "loaded", "seconds": 0.41}                framework imported, runtime.load() done
    {"event": "answered", "seconds": 0.05, "single": [...], "batch": [...]}
    {"event": "error", "stage": "load" | "predict" | "setup", "error": "Type: message"}

The parent enforces the time budgets and kills this process when one runs out; a crash shows
there as the pipe closing early and the exit status.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import IO, Any


def _emit(out: IO[str], event: str, **fields: Any) -> None:
    out.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    out.flush()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _rows(values: Any) -> list[Any]:
    import numpy as np

    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    return [row.tolist() if isinstance(row, np.ndarray) else _scalar(row) for row in arr]


def _scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def main() -> int:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the model's prints must not corrupt the protocol
    sys.stdout = sys.stderr
    spec = json.loads(sys.stdin.readline())

    import pandas as pd

    from lockgate.registry.signature import Signature
    from lockgate.runtimes import get_runtime

    _emit(out, "ready")
    stage = "setup"
    try:
        from pathlib import Path

        sig = Signature.from_dict(spec["signature"])
        frame = sig.validate(pd.read_parquet(spec["rows"]))
        stage = "load"
        start = time.perf_counter()
        runtime_cls = get_runtime(spec["flavor"])
        path = Path(spec["path"])
        if runtime_cls.requires_trust(path) and not spec["trusted"]:
            from lockgate.runtimes.trust import untrusted_error

            raise untrusted_error(path, spec["flavor"], "it was not trusted at registration")
        runtime = runtime_cls(path, trusted=spec["trusted"], options=spec["options"])
        runtime.load()
        _emit(out, "loaded", seconds=time.perf_counter() - start)
        stage = "predict"
        start = time.perf_counter()
        single = [_rows(runtime.predict(frame.iloc[[i]])) for i in range(len(frame))]
        batch = _rows(runtime.predict(frame))
        _emit(out, "answered", seconds=time.perf_counter() - start, single=single, batch=batch)
        runtime.unload()
    except Exception as exc:
        _emit(out, "error", stage=stage, error=_describe(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
