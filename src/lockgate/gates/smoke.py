"""The smoke gate: the candidate loads in a separate process with its production runtime and
answers sample requests within a time budget.

The artifact is verified against its sha256 and unpacked here, then a child process
(``python -m lockgate.gates._smoke_worker``, in its own process group) loads it and answers each
sample row alone and all rows as one batch. This process only reads the child's reports: a
model that crashes the interpreter (a segfault, ``os.abort()``), exhausts it or hangs fails the
gate, the child and anything it started are killed when a budget runs out, and the validating
process carries on. After a failed smoke gate, later gates of the run do not load the candidate
into this process.

Checks: loading within ``load_budget_s``; answering every request within
``request_budget_s``; one output per row; no NaN outputs; and (``check_consistency``) each row
answered alone equals the same row answered in the batch.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np

from lockgate.errors import LockgateError
from lockgate.gates.base import Check, Gate, GateResult, fmt
from lockgate.gates.context import GateContext, discard
from lockgate.gates.params import BOOL, Interval, Param

WORKER_MODULE = "lockgate.gates._smoke_worker"
_STDERR_TAIL = 2000


class SmokeGate(Gate):
    type: ClassVar[str] = "smoke"
    isolated: ClassVar[bool] = True
    summary: ClassVar[str] = "loads in its own process and answers sample requests in time"
    parameters = {
        "load_budget_s": Param(
            60.0, Interval(float, 0, None, "neither"), help="longest the model may take to load"
        ),
        "request_budget_s": Param(
            30.0,
            Interval(float, 0, None, "neither"),
            help="longest it may take to answer all sample requests",
        ),
        "rows": Param(16, Interval(int, 1, 1000), help="sample rows, each sent alone and batched"),
        "startup_timeout_s": Param(
            120.0,
            Interval(float, 0, None, "neither"),
            help="allowance for the child interpreter to start (not part of the budget)",
        ),
        "check_consistency": Param(
            True, BOOL, help="a row answered alone must equal it answered in the batch"
        ),
    }

    def evaluate(self, ctx: GateContext) -> GateResult:
        p = self.params_
        candidate = ctx.candidate
        rows, origin = ctx.sample_rows(candidate, p["rows"])
        artifact = ctx.materialize(candidate)
        try:
            rows_path = artifact.parent / "smoke-rows.parquet"
            rows.to_parquet(rows_path)
            spec = {
                "flavor": candidate.flavor,
                "path": str(artifact),
                "trusted": ctx.trusted(candidate),
                "options": candidate.lineage.get("runtime_options") or {},
                "signature": candidate.signature.to_dict(),
                "rows": str(rows_path),
            }
            run = _run_child(spec, artifact.parent / "smoke-stderr.txt", p)
        finally:
            discard(artifact)
        checks = self._checks(run, len(rows), p)
        details = {
            "rows": len(rows),
            "rows_from": origin,
            "exit": run.exit_description,
            "stderr_tail": run.stderr_tail,
        }
        result = self.result(checks, details=details)
        if result.status == "fail":
            ctx.block_loading(candidate, f"its smoke gate failed ({result.reason})")
        return result

    def _checks(self, run: _ChildRun, n_rows: int, p: dict[str, Any]) -> list[Check]:
        load_budget, request_budget = p["load_budget_s"], p["request_budget_s"]
        checks: list[Check] = []
        if run.error is not None and run.error.get("stage") in ("setup", "load"):
            return [Check("load_s", "fail", f"the model did not load: {run.error['error']}")]
        if run.load_s is None:
            if run.timed_out == "load":
                msg = (
                    f"the model did not finish loading within the {fmt(load_budget)} s budget; "
                    "its process was killed"
                )
                return [Check("load_s", "fail", msg, run.elapsed, load_budget, "max")]
            return [Check("load_s", "fail", f"the model process {run.death()} while loading")]
        checks.append(Check.at_most("load_s", run.load_s, load_budget, label="load time (s)"))
        if run.error is not None:
            checks.append(
                Check("answered", "fail", f"the model failed to answer: {run.error['error']}")
            )
            return checks
        if run.answer is None:
            if run.timed_out == "predict":
                msg = (
                    f"the model did not answer {n_rows} sample rows within the "
                    f"{fmt(request_budget)} s budget; its process was killed"
                )
                checks.append(Check("requests_s", "fail", msg, run.elapsed, request_budget, "max"))
            else:
                checks.append(
                    Check("answered", "fail", f"the model process {run.death()} while answering")
                )
            return checks
        checks.append(
            Check.at_most(
                "requests_s", run.answer["seconds"], request_budget, label="answer time (s)"
            )
        )
        checks.extend(_answer_checks(run.answer, n_rows, p["check_consistency"]))
        return checks


def _answer_checks(answer: dict[str, Any], n_rows: int, consistency: bool) -> list[Check]:
    single, batch = answer["single"], answer["batch"]
    wrong = [i for i, out in enumerate(single) if len(out) != 1]
    if wrong or len(batch) != n_rows:
        msg = (
            f"expected one output per row: {len(batch)} outputs for a batch of {n_rows}, "
            f"{len(wrong)} single-row requests answered with another count"
        )
        return [Check("outputs_per_row", "fail", msg, float(len(batch)), float(n_rows))]
    checks = [Check("outputs_per_row", "pass", f"{n_rows} rows answered alone and batched")]
    n_nan = sum(_has_nan(v) for v in batch)
    checks.append(Check.at_most("nan_outputs", float(n_nan), 0.0, label="rows answered with NaN"))
    if consistency:
        differ = [i for i in range(n_rows) if not _same(single[i][0], batch[i])]
        if differ:
            msg = (
                f"{len(differ)} of {n_rows} rows answered alone differ from the same rows "
                f"answered in a batch (first: row {differ[0]}: {single[differ[0]][0]!r} vs "
                f"{batch[differ[0]]!r})"
            )
            checks.append(Check("consistent", "fail", msg, float(len(differ)), 0.0, "max"))
        else:
            checks.append(
                Check("consistent", "pass", "single-row answers equal batch answers", 0.0, 0.0)
            )
    return checks


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    return False


def _same(a: Any, b: Any) -> bool:
    try:
        x, y = np.asarray(a), np.asarray(b)
        if x.dtype.kind in "fc" or y.dtype.kind in "fc":
            return bool(x.shape == y.shape and np.allclose(x, y, rtol=1e-4, atol=1e-6))
        return bool(x.shape == y.shape and (x == y).all())
    except (TypeError, ValueError):
        return bool(a == b)


class _ChildRun:
    """What the parent saw of the child: events, timings, exit status and stderr tail."""

    def __init__(self) -> None:
        self.load_s: float | None = None
        self.answer: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.timed_out: str | None = None
        self.elapsed: float | None = None
        self.returncode: int | None = None
        self.stderr_tail = ""

    @property
    def exit_description(self) -> str:
        if self.timed_out:
            return f"killed after the {self.timed_out} budget ran out"
        return self.death() if self.returncode not in (0, None) else "exited normally"

    def death(self) -> str:
        code = self.returncode
        if code is None:
            return "stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f"was killed by {name}"
        else:
            how = f"exited with status {code}"
        tail = self.stderr_tail.strip().splitlines()
        return how + (f" ({tail[-1]})" if tail else "")


def _run_child(spec: dict[str, Any], stderr_path: Path, p: dict[str, Any]) -> _ChildRun:
    run = _ChildRun()
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=os.name == "posix",
        )
        try:
            _converse(proc, spec, run, p)
        finally:
            if run.timed_out:
                _kill(proc)
            else:
                _stop(proc)
            run.returncode = proc.returncode
    run.stderr_tail = stderr_path.read_text(errors="replace")[-_STDERR_TAIL:]
    return run


def _converse(proc: subprocess.Popen[str], spec: dict[str, Any], run: _ChildRun, p: Any) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    try:
        proc.stdin.write(json.dumps(spec) + "\n")
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass  # the child died at once; its exit status tells why
    stages = (
        ("startup", "ready", p["startup_timeout_s"]),
        ("load", "loaded", p["load_budget_s"]),
        ("predict", "answered", p["request_budget_s"]),
    )
    for stage, wanted, budget in stages:
        start = time.monotonic()
        deadline = start + budget
        while True:
            try:
                msg = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                run.timed_out = stage
                run.elapsed = time.monotonic() - start
                return
            if msg is None:
                return  # the child closed the pipe: crashed or exited
            if msg.get("event") == "error":
                run.error = msg
                return
            if msg.get("event") == wanted:
                break
        if wanted == "loaded":
            run.load_s = float(msg.get("seconds", time.monotonic() - start))
        elif wanted == "answered":
            run.answer = msg


def _reader(stream: IO[str], lines: queue.Queue[dict[str, Any] | None]) -> None:
    with contextlib.suppress(ValueError, OSError):
        for line in stream:
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(doc, dict):
                lines.put(doc)
    lines.put(None)


def _stop(proc: subprocess.Popen[str]) -> None:
    """Wait briefly for a child that is done; kill it (and its process group) otherwise."""
    try:
        proc.wait(timeout=5)
        return
    except subprocess.TimeoutExpired:
        pass
    _kill(proc)


def _kill(proc: subprocess.Popen[str]) -> None:
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired as exc:  # pragma: no cover - a process that ignores SIGKILL
        raise LockgateError(f"the smoke process {proc.pid} could not be stopped") from exc
