"""Running a pipeline: the training window, the training subprocess, registration of the
candidate with its lineage, the gates, and the start of the endpoint's rollout.

The training function runs in a child process (``python -m lockgate.automation._worker``)
with a timeout: a hung or crashing training never takes the server down, and the model comes
back as a file saved by its flavor's runtime in a safe format, never as a pickle. Every run is
a row of ``automation_runs`` and two events: ``pipeline.started`` and ``pipeline.finished``
(its ``status``: ``rolling_out``, ``validated``, ``gates_failed``, ``failed``, ``timeout`` or
``cancelled``).

The child runs in a session of its own, so a signal to the server never reaches it by
accident: :func:`stop_training` (the server's shutdown) stops the children of a workspace,
SIGTERM to each one's process group, SIGKILL after :data:`KILL_GRACE` seconds, and waits until
their runs are recorded ``cancelled`` with the reason. A parent leaving by an exception
(Ctrl-C in ``lockgate pipeline run``) takes its child down the same way and records its run
``cancelled`` too: no training outlives its parent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd
from sqlalchemy import select

from lockgate.audit.events import record_event
from lockgate.automation.pipelines import PipelineSpec, PipelineStore
from lockgate.errors import InvalidInputError, LockgateError, NotFoundError
from lockgate.registry.lineage import data_sha256
from lockgate.store.paths import validate_source
from lockgate.store.predlog_format import ROLES
from lockgate.store.schema import PipelineRunRow

if TYPE_CHECKING:
    from lockgate.feedback import FeedbackService
    from lockgate.registry.models import ModelVersion
    from lockgate.store.predlog import PredictionLog
    from lockgate.workspace import Workspace

log = logging.getLogger("lockgate.pipelines")

#: ``progress(stage, fraction)``: what a run reports while it goes
Progress = Callable[[str, float], None]
STATUSES = (
    "running", "rolling_out", "validated", "gates_failed", "failed", "timeout", "cancelled",
)  # fmt: skip
#: seconds a training child has to exit after SIGTERM before it gets SIGKILL
KILL_GRACE = 5.0
_MAX_TIMEOUT_GRACE = KILL_GRACE
#: how often a waiting parent looks whether it was told to stop
_POLL = 0.1


class _Training:
    """The pipeline runs of this process per workspace, so that a shutdown can stop them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._runs: dict[tuple[int, int], Workspace] = {}
        self._stopped: weakref.WeakSet[Workspace] = weakref.WeakSet()

    def stopping(self, ws: Workspace) -> bool:
        with self._cond:
            return ws in self._stopped

    def enter(self, ws: Workspace, run_id: int) -> None:
        with self._cond:
            self._runs[(id(ws), run_id)] = ws

    def leave(self, ws: Workspace, run_id: int) -> None:
        with self._cond:
            self._runs.pop((id(ws), run_id), None)
            self._cond.notify_all()

    def stop(self, ws: Workspace, timeout: float) -> list[int]:
        def left() -> list[int]:
            return sorted(run for (_, run), w in self._runs.items() if w is ws)

        with self._cond:
            self._stopped.add(ws)
            self._cond.wait_for(lambda: not left(), timeout)
            return left()


_TRAINING = _Training()


def stop_training(ws: Workspace, timeout: float = KILL_GRACE + 20.0) -> list[int]:
    """Stop the pipeline runs of ``ws`` in this process (a server's shutdown): each training
    child gets SIGTERM with its process group, SIGKILL after :data:`KILL_GRACE` s, and its run
    is recorded ``cancelled`` with the reason; runs that have not spawned their child yet never
    do, nor do runs started later on ``ws``. Waits up to ``timeout`` s for every run to record
    its end; returns the ids of those that did not (none, normally)."""
    left = _TRAINING.stop(ws, timeout)
    if left:
        log.error("pipeline runs %s still going after %g s of shutdown", left, timeout)
    return left


@dataclass
class RunOutcome:
    run_id: int
    model: str
    status: str
    trigger: dict[str, Any]
    parent_version: int | None = None
    candidate_version: int | None = None
    gates: str | None = None
    rollout: int | None = None
    data_sha256: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("rolling_out", "validated")

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "model": self.model,
            "status": self.status,
            "trigger": self.trigger,
            "parent_version": self.parent_version,
            "candidate_version": self.candidate_version,
            "gates": self.gates,
            "rollout": self.rollout,
            "data_sha256": self.data_sha256,
            "rows": self.rows,
            "metrics": self.metrics,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def read_dataset(path: str | Path) -> pd.DataFrame:
    """A training dataset file: Parquet or CSV (validated against traversal, must exist)."""
    p = validate_source(path, "data")
    if p.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if p.suffix.lower() == ".csv":
        return pd.read_csv(p)
    raise InvalidInputError.for_field("data", "a .parquet or .csv file", p.name)


def training_window(
    predlog: PredictionLog,
    feedback: FeedbackService,
    endpoint: str,
    features: list[str],
    target: str,
    *,
    since: datetime,
    until: datetime,
) -> pd.DataFrame:
    """The labelled traffic of ``endpoint`` in ``[since, until)``: one row per served
    prediction that has feedback (shadow copies excluded), its inputs under their own names,
    the label as ``target`` and ``ts``, oldest first."""
    fb = feedback.frame(endpoint)
    cols = [*features, target, "ts"]
    if fb.empty:
        return pd.DataFrame(columns=cols)
    roles = sorted(ROLES - {"shadow"})
    frame = predlog.read(
        endpoint,
        since=since,
        until=until,
        columns=["id", "ts", "status", *[f"input.{c}" for c in features]],
        roles=roles,
    )
    frame = frame[frame["status"] < 400]
    frame = frame.merge(fb[["id", "value"]], on="id", how="inner")
    frame = frame.rename(columns={f"input.{c}": c for c in features}).rename(
        columns={"value": target}
    )
    return frame[cols].sort_values("ts", kind="stable").reset_index(drop=True)


class PipelineRunner:
    """Runs pipelines of one workspace. ``predlog`` and ``feedback`` build training windows
    (a server passes its own; a CLI process reads the log folder)."""

    def __init__(
        self,
        ws: Workspace,
        *,
        predlog: PredictionLog | None = None,
        feedback: FeedbackService | None = None,
    ) -> None:
        self.ws = ws
        self.pipelines = PipelineStore(ws)
        self._predlog = predlog
        self._feedback = feedback
        #: who runs are recorded as started by (the policy engine sets its own name)
        self.actor = ws.actor

    @property
    def predlog(self) -> PredictionLog:
        if self._predlog is None:
            from lockgate.store.predlog import PredictionLog

            self._predlog = PredictionLog(self.ws.settings.predictions_dir)
        return self._predlog

    @property
    def feedback(self) -> FeedbackService:
        if self._feedback is None:
            from lockgate.feedback import FeedbackService

            self._feedback = FeedbackService(self.ws, self.predlog)
        return self._feedback

    # -- the run -------------------------------------------------------------------------
    def parent(self, spec: PipelineSpec) -> ModelVersion | None:
        """The version a candidate replaces: the endpoint's primary, else ``champion``."""
        with contextlib.suppress(NotFoundError):
            ep = self.ws.endpoints.get(spec.endpoint_name)
            if ep.model == spec.model:
                return self.ws.registry.get_version(f"{spec.model}/{ep.policy.primary}")
        with contextlib.suppress(NotFoundError, InvalidInputError):
            return self.ws.registry.get_version(f"{spec.model}@champion")
        return None

    def begin(
        self, spec: PipelineSpec, trigger: dict[str, Any], parent: int | None, timeout: float
    ) -> int:
        """Insert the run row (status ``running``) and its ``pipeline.started`` event."""
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            row = PipelineRunRow(
                model=spec.model,
                endpoint=spec.endpoint_name,
                trigger=trigger,
                status="running",
                started_at=now,
                deadline_at=now + timedelta(seconds=timeout + 120),
                parent_version=parent,
                result={},
                error="",
                actor=self.actor,
            )
            s.add(row)
            s.flush()
            record_event(
                self.ws.db, s, kind="pipeline.started", subject=spec.model, actor=self.actor,
                at=now,
                payload={"run": row.id, "model": spec.model, "endpoint": spec.endpoint_name,
                         "entry": spec.entry, "trigger": trigger, "parent_version": parent},
            )  # fmt: skip
            return int(row.id)

    def run(
        self,
        model: str,
        *,
        trigger: dict[str, Any] | None = None,
        data: str | Path | pd.DataFrame | None = None,
        timeout: float | None = None,
        progress: Progress | None = None,
        spec: PipelineSpec | None = None,
        run_id: int | None = None,
    ) -> RunOutcome:
        """Run ``model``'s pipeline to its end (or the gates' refusal): window, train,
        register, validate, roll out. Failures of the training are an outcome, not an
        exception; bad input (unknown model or pipeline, unreadable data) raises before a run
        is recorded."""
        spec = spec or self.pipelines.get(model)
        trigger = trigger or {"type": "manual", "actor": self.actor}
        timeout = float(timeout if timeout is not None else spec.timeout)
        if not 1 <= timeout <= 86_400:
            raise InvalidInputError.for_field("timeout", "seconds in [1, 86400]", timeout)
        say = progress or (lambda stage, fraction: None)
        parent = self.parent(spec)
        target = spec.target or (parent.tags.get("target") if parent else None) or "target"
        say("reading the training window", 0.02)
        frame, window = self._data(spec, parent, target, data)
        if run_id is None:
            run_id = self.begin(spec, trigger, parent.version if parent else None, timeout)
        outcome = RunOutcome(run_id, spec.model, "running", trigger)
        outcome.parent_version = parent.version if parent else None
        started = time.monotonic()
        _TRAINING.enter(self.ws, run_id)
        try:
            try:
                self._run(spec, parent, target, frame, window, timeout, say, outcome)
            except LockgateError as exc:
                outcome.status, outcome.error = "failed", exc.message
            except Exception as exc:  # recorded on the run, never lost
                log.exception("pipeline run %s of %s failed", run_id, spec.model)
                outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
            except BaseException as exc:  # Ctrl-C: the child is gone; record, then go on
                outcome.status = "cancelled"
                outcome.error = f"interrupted ({type(exc).__name__}); the training was stopped"
                outcome.seconds = time.monotonic() - started
                with contextlib.suppress(Exception):
                    self._finish(outcome)
                raise
            outcome.seconds = time.monotonic() - started
            self._finish(outcome)
        finally:
            _TRAINING.leave(self.ws, run_id)
        say(f"finished: {outcome.status}", 1.0)
        return outcome

    def _data(
        self,
        spec: PipelineSpec,
        parent: ModelVersion | None,
        target: str,
        data: str | Path | pd.DataFrame | None,
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        if data is not None:
            frame = data if isinstance(data, pd.DataFrame) else read_dataset(data)
            if target not in frame.columns:
                raise InvalidInputError.for_field(
                    "data", f"a table with the label column {target!r}", list(frame.columns)
                )
            source = "dataframe" if isinstance(data, pd.DataFrame) else str(data)
            return frame.reset_index(drop=True), {"source": source, "rows": len(frame)}
        if parent is None:
            raise InvalidInputError.for_field(
                "data", f"a dataset (--data FILE): {spec.model} has no version serving yet", None
            )
        until = self.ws.clock.now()
        since = until - timedelta(seconds=spec.window)
        with contextlib.suppress(LockgateError):
            if self.predlog.stats().get("running"):
                self.predlog.flush(timeout=10)
        features = parent.signature.input_names
        frame = training_window(
            self.predlog, self.feedback, spec.endpoint_name, features, target,
            since=since, until=until,
        )  # fmt: skip
        window = {
            "source": "prediction-log",
            "endpoint": spec.endpoint_name,
            "since": since.isoformat(),
            "until": until.isoformat(),
            "rows": len(frame),
        }
        return frame.drop(columns=["ts"]), window

    def _run(
        self,
        spec: PipelineSpec,
        parent: ModelVersion | None,
        target: str,
        frame: pd.DataFrame,
        window: dict[str, Any],
        timeout: float,
        say: Progress,
        outcome: RunOutcome,
    ) -> None:
        if len(frame) < spec.min_rows:
            outcome.status = "failed"
            outcome.error = f"{len(frame)} labelled rows in the window, fewer than {spec.min_rows}"
            return
        cut = len(frame) - max(1, round(len(frame) * spec.holdout))
        train, holdout = frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:]
        features = parent.signature.input_names if parent else [c for c in frame if c != target]
        sha = data_sha256(frame)
        outcome.data_sha256 = sha
        outcome.rows = {"train": len(train), "holdout": len(holdout)}
        say("training", 0.1)
        job_dir = self.ws.cache_dir / "pipelines" / f"run-{outcome.run_id}-{uuid.uuid4().hex[:8]}"
        job_dir.mkdir(parents=True)
        try:
            result = self._train(
                spec, parent, target, features, train, window, outcome, job_dir, timeout, say
            )
            if result is None:
                return
            say("registering the candidate", 0.7)
            lineage = {
                "pipeline": {"entry": spec.entry, "run": outcome.run_id},
                "trigger": outcome.trigger,
                "data_window": {**window, "sha256": sha, **outcome.rows},
            }
            mv = self.ws.registry.register(
                spec.model,
                job_dir / result["artifact"],
                flavor=result["flavor"],
                reference=train,
                target=target,
                metrics=result.get("metrics") or {},
                tags={"source": "pipeline", "run": outcome.run_id, "target": target},
                training_data=train,
                parent=parent.version if parent else None,
                lineage=lineage,
                description=f"trained by pipeline run {outcome.run_id} ({spec.entry})",
            )
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)
        outcome.candidate_version = mv.version
        outcome.metrics = dict(result.get("metrics") or {})
        say("running the gates", 0.8)
        against = "champion" if self._has_champion(spec.model) else None
        report = self.ws.gates.validate(
            spec.model, mv.version, against=against, eval_data=holdout.reset_index(drop=True),
            target=target,
        )  # fmt: skip
        outcome.gates = report.status
        if report.status != "pass":
            outcome.status = "gates_failed"
            failed = [g.name for g in report.gates if g.status != "pass"]
            outcome.error = f"gates {report.status}: {', '.join(failed)}"
            return
        if spec.strategy == "none" or not self._serves(spec):
            outcome.status = "validated"
            return
        say("starting the rollout", 0.9)
        from lockgate.rollout.service import RolloutService

        info = RolloutService(self.ws).start(
            spec.endpoint_name,
            mv.version,
            strategy=spec.strategy,
            steps=spec.steps,
            interval=spec.interval,
            analysis=spec.analysis or None,
            reason=f"pipeline run {outcome.run_id} ({outcome.trigger.get('type', 'manual')})",
        )
        outcome.rollout = info.id
        outcome.status = "rolling_out"

    def _train(
        self,
        spec: PipelineSpec,
        parent: ModelVersion | None,
        target: str,
        features: list[str],
        train: pd.DataFrame,
        window: dict[str, Any],
        outcome: RunOutcome,
        job_dir: Path,
        timeout: float,
        say: Progress,
    ) -> dict[str, Any] | None:
        train.to_parquet(job_dir / "train.parquet", index=False)
        job: dict[str, Any] = {
            "model": spec.model,
            "entry": spec.entry,
            "data": "train.parquet",
            "target": target,
            "features": features,
            "trigger": outcome.trigger,
            "window": window,
            "parent_version": parent.version if parent else None,
        }
        if parent is not None:
            job["parent_flavor"] = parent.flavor
            job["parent_path"] = str(
                self.ws.artifacts.materialize(
                    parent.artifact_sha256,
                    parent.artifact_kind,
                    parent.artifact_name,
                    cache_dir=self.ws.cache_dir,
                    subject=f"version {parent.ref}",
                )
            )
        (job_dir / "job.json").write_bytes(orjson.dumps(job))
        child = run_child(job_dir, timeout, say, stop=lambda: _TRAINING.stopping(self.ws))
        code, stderr = child.code, child.stderr
        result_file = job_dir / "result.json"
        doc = orjson.loads(result_file.read_bytes()) if result_file.exists() else {}
        if child.stopped is not None:
            outcome.status = "cancelled"
            outcome.error = f"the server shut down during training: {child.stopped}"
            return None
        if code is None:
            outcome.status = "timeout"
            outcome.error = f"training did not finish in {timeout:g} s; the process was killed"
            return None
        if code != 0 or not doc.get("ok"):
            outcome.status = "failed"
            outcome.error = doc.get("error") or f"training exited {code}: {stderr[-2000:]}"
            return None
        return dict(doc)

    def _has_champion(self, model: str) -> bool:
        try:
            self.ws.registry.get_version(f"{model}@champion")
        except (NotFoundError, InvalidInputError):
            return False
        return True

    def _serves(self, spec: PipelineSpec) -> bool:
        try:
            return self.ws.endpoints.get(spec.endpoint_name).model == spec.model
        except NotFoundError:
            return False

    def _finish(self, o: RunOutcome) -> None:
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            row = s.get(PipelineRunRow, o.run_id, with_for_update=True)
            if row is not None:
                row.status = o.status
                row.finished_at = now
                row.candidate_version = o.candidate_version
                row.data_sha256 = o.data_sha256
                row.result = o.to_dict()
                row.error = o.error
            record_event(
                self.ws.db, s, kind="pipeline.finished", subject=o.model, actor=self.actor,
                at=now, payload=o.to_dict(),
            )  # fmt: skip
        (log.info if o.ok else log.warning)(
            "pipeline run %s of %s: %s %s", o.run_id, o.model, o.status, o.error
        )

    # -- queries -------------------------------------------------------------------------
    def runs(self, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        q = select(PipelineRunRow).order_by(PipelineRunRow.id.desc()).limit(max(1, limit))
        if model is not None:
            q = q.where(PipelineRunRow.model == model)
        with self.ws.db.read() as s:
            return [run_doc(r) for r in s.execute(q).scalars()]


def run_doc(r: PipelineRunRow) -> dict[str, Any]:
    return {
        "run": r.id,
        "model": r.model,
        "endpoint": r.endpoint,
        "status": r.status,
        "trigger": r.trigger,
        "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "parent_version": r.parent_version,
        "candidate_version": r.candidate_version,
        "data_sha256": r.data_sha256,
        "gates": (r.result or {}).get("gates"),
        "rollout": (r.result or {}).get("rollout"),
        "error": r.error,
    }


@dataclass(frozen=True)
class ChildExit:
    """How a training child ended: its exit ``code`` (None when it was stopped), its
    ``stderr``, and ``stopped``: why it was stopped by :func:`stop_training` (None when it
    exited by itself or was killed at its timeout)."""

    code: int | None
    stderr: str
    stopped: str | None = None


def run_child(
    job_dir: Path, timeout: float, say: Progress, *, stop: Callable[[], bool] = lambda: False
) -> ChildExit:
    """Run the training child on ``job_dir`` until it exits, its ``timeout`` passes (then it
    is killed with its process group: code None) or ``stop()`` says to stop (then too, and
    ``stopped`` says how)."""
    stderr_path = job_dir / "stderr.txt"
    if stop():
        return ChildExit(None, "", "the training process was not started")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lockgate.automation._worker", str(job_dir)],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        )
        stages = {"loading data": 0.15, "training": 0.2, "saving": 0.6, "done": 0.65}
        reader = threading.Thread(target=_relay, args=(proc, stages, say), daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        code: int | None = None
        stopped: str | None = None
        try:
            with _ctrl_c_noted() as ctrl_c:
                while True:
                    try:
                        code = proc.wait(timeout=max(0.0, min(_POLL, deadline - time.monotonic())))
                        break
                    except subprocess.TimeoutExpired:
                        if ctrl_c.is_set():
                            break
                        if stop():
                            how = _kill(proc)
                            stopped = f"the training process (pid {proc.pid}) was {how}"
                            break
                        if time.monotonic() >= deadline:
                            _kill(proc)
                            break
                if ctrl_c.is_set():  # also when pressed as the child ended by itself
                    _kill(proc)  # still inside: a second Ctrl-C cannot cut this short
                    raise KeyboardInterrupt
        except BaseException:  # the parent is leaving (Ctrl-C): the child goes with it
            _kill(proc)
            raise
        reader.join(_MAX_TIMEOUT_GRACE)
    if stopped is not None:
        log.warning("pipeline child %s stopped for shutdown: %s", job_dir.name, stopped)
    return ChildExit(code, stderr_path.read_text(errors="replace"), stopped)


@contextlib.contextmanager
def _ctrl_c_noted() -> Iterator[threading.Event]:
    """In the main thread, Ctrl-C (SIGINT) only sets the event it yields while the block runs,
    for the block to act on at a safe point. A KeyboardInterrupt raised inside
    ``Popen.wait`` can land between its taking its internal lock and the ``try`` that
    releases it: every later ``wait`` on that child then blocks forever (seen once in CI: a
    `lockgate pipeline run` that outlived Ctrl-C). In other threads (a server's) it does
    nothing: signals reach the main thread only."""
    noted = threading.Event()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    if previous is None:  # not the main thread, or a handler Python cannot put back
        yield noted
        return
    signal.signal(signal.SIGINT, lambda signum, frame: noted.set())
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous)


def _relay(proc: subprocess.Popen[str], stages: dict[str, float], say: Progress) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        with contextlib.suppress(orjson.JSONDecodeError, TypeError, AttributeError):
            stage = str(orjson.loads(line).get("stage"))
            say(stage, stages.get(stage, 0.2))


def _kill(proc: subprocess.Popen[str], grace: float | None = None) -> str:
    """SIGTERM to the child's process group, SIGKILL after ``grace`` (default
    :data:`KILL_GRACE`) s; then the group's stragglers get SIGKILL too. Returns how it went."""
    grace = KILL_GRACE if grace is None else grace
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    how = "terminated (SIGTERM)"
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        how = f"killed (SIGKILL after {grace:g} s of SIGTERM)"
    # processes the training started in its group (a grandchild that ignored SIGTERM) must
    # not outlive it
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return how
