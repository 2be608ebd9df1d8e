"""The training child process: ``python -m lockgate.automation._worker JOB_DIR``.

It reads ``JOB_DIR/job.json``, loads the training data (Parquet) Lockgate wrote, calls the
entry point, saves the returned model with its flavor's runtime ``save`` (a safe format: skops,
native JSON, ONNX ...) into ``JOB_DIR/output`` and writes ``JOB_DIR/result.json`` (flavor,
artifact path, metrics). Nothing is pickled across the process boundary. Progress goes to
stdout as one JSON object per line (``{"stage": ...}``); on failure ``result.json`` holds the
error and the exit code is 1.
"""

from __future__ import annotations

import importlib
import math
import runpy
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson


def _say(stage: str, **extra: Any) -> None:
    sys.stdout.write(orjson.dumps({"stage": stage, "t": time.time(), **extra}).decode() + "\n")
    sys.stdout.flush()


def load_entry(entry: str) -> Callable[..., Any]:
    """The function an entry point names (validated again here: the child trusts no input)."""
    from lockgate.automation.pipelines import parse_entry

    kind, target, func_name = parse_entry(entry)
    assert target is not None
    if kind == "module":
        namespace: Mapping[str, Any] = vars(importlib.import_module(target))
    else:
        namespace = runpy.run_path(target, run_name="lockgate_pipeline")
    func = namespace.get(func_name)
    if not callable(func):
        raise TypeError(f"entry point {entry!r}: {func_name!r} is not a function there")
    return func  # type: ignore[no-any-return]


def _metrics(raw: Any) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise TypeError(f"the training function's metrics must be a mapping, got {type(raw)}")
    out: dict[str, float] = {}
    for k, v in raw.items():
        f = float(v)
        if math.isfinite(f):
            out[str(k)] = f
    return out


def run(job_dir: Path) -> int:
    import pandas as pd

    from lockgate.automation.context import TrainingContext
    from lockgate.runtimes import flavor_for_object, get_runtime

    job = orjson.loads((job_dir / "job.json").read_bytes())
    result_path = job_dir / "result.json"
    try:
        _say("loading data")
        data = pd.read_parquet(job_dir / job["data"])
        ctx = TrainingContext(
            model=job["model"],
            target=job["target"],
            features=tuple(job["features"]),
            trigger=job.get("trigger") or {},
            parent_version=job.get("parent_version"),
            window=job.get("window") or {},
            parent_path=job.get("parent_path"),
            parent_flavor=job.get("parent_flavor"),
        )
        func = load_entry(job["entry"])
        _say("training", rows=len(data))
        out = func(data, ctx)
        model, metrics = out if isinstance(out, tuple) and len(out) == 2 else (out, None)
        _say("saving")
        flavor = flavor_for_object(model)
        output = job_dir / "output"
        output.mkdir(exist_ok=True)
        path = get_runtime(flavor).save(model, output)
        doc = {
            "ok": True,
            "flavor": flavor,
            "artifact": str(Path(path).relative_to(job_dir)),
            "metrics": _metrics(metrics),
            "estimator": f"{type(model).__module__}.{type(model).__qualname__}",
        }
    except BaseException as exc:  # reported to the parent, then exit 1
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        doc = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": "".join(tb)[-4000:],
        }
        result_path.write_bytes(orjson.dumps(doc))
        _say("failed", error=doc["error"])
        return 1
    result_path.write_bytes(orjson.dumps(doc))
    _say("done")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m lockgate.automation._worker JOB_DIR\n")
        raise SystemExit(2)
    raise SystemExit(run(Path(sys.argv[1])))
