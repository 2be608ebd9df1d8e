"""The gate service: run a policy's gates on a version, store the report with the version and
record it as an event, keep each model's saved policy, and decide whether a deploy may go ahead.

Events (each in the same transaction as the state it records):

* ``validation.completed`` (subject ``model/version``): one per run, with the report id, the
  overall status, the baseline and every gate's status;
* ``gates.policy_set`` / ``gates.policy_deleted`` (subject ``model``): the saved policy changed.

Deploys: when a model has a saved policy with ``required = true``, a version may be deployed
only if its latest report under that policy (same content hash) passed; ``force`` with a reason
overrides, and the override is recorded in the deploy's event.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from lockgate.audit.events import record_event
from lockgate.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    ModelLoadError,
    NotFoundError,
    PredictionError,
    RuntimeUnavailableError,
    SchemaError,
    UntrustedArtifactError,
)
from lockgate.gates.base import Gate, GateResult, Status, combine
from lockgate.gates.context import GateContext, LoadBlockedError
from lockgate.gates.data import check_columns, read_table
from lockgate.gates.policy import GatePolicy, GateSpec, default_policy, load_policy
from lockgate.gates.report import DeployCheck, ValidationReport
from lockgate.registry.lineage import data_sha256
from lockgate.registry.models import ModelVersion, VersionRef
from lockgate.registry.rows import version_row
from lockgate.store.paths import validate_name
from lockgate.store.schema import GatePolicyRow, GateReportRow, ModelRow, VersionRow

if TYPE_CHECKING:
    from lockgate.workspace import Workspace

PolicyLike = GatePolicy | Mapping[str, Any] | str | Path
#: called with (gate name, None) when a gate starts and (gate name, result) when it ends
Progress = Callable[[str, GateResult | None], None]

#: errors that mean the model itself is at fault: the gate fails
_MODEL_ERRORS = (
    ModelLoadError,
    PredictionError,
    SchemaError,
    UntrustedArtifactError,
    IntegrityError,
    RuntimeUnavailableError,
)


class GateService:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- policies ---------------------------------------------------------------------------
    def resolve_policy(self, model: str, policy: PolicyLike) -> GatePolicy:
        """A policy object from a policy, a mapping or a file path; gates checked."""
        if isinstance(policy, GatePolicy):
            resolved = policy
        elif isinstance(policy, Mapping):
            resolved = GatePolicy.from_dict(policy, model=model)
        else:
            resolved = load_policy(policy, model)
        resolved.build()
        return resolved

    def get_policy(self, model: str) -> GatePolicy | None:
        """The policy saved for ``model``, or None."""
        with self.ws.db.read() as s:
            mrow = _model(s, model)
            row = _policy_row(s, mrow.id)
            if row is None:
                return None
            return GatePolicy.from_dict(row.policy, source="saved")

    def set_policy(self, model: str, policy: PolicyLike, *, reason: str = "") -> GatePolicy:
        """Save ``policy`` as ``model``'s policy: what ``validate`` runs by default and, with
        ``required = true``, what deploys of the model need a passing report under."""
        resolved = self.resolve_policy(model, policy)
        sha = resolved.sha256()
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            mrow = _model(s, model, lock=True)
            row = _policy_row(s, mrow.id)
            previous = None if row is None else row.policy_sha256
            if previous == sha:
                return resolved
            if row is None:
                row = GatePolicyRow(model_id=mrow.id)
                s.add(row)
            row.policy = resolved.to_dict()
            row.policy_sha256 = sha
            row.required = resolved.required
            row.source = resolved.source
            row.updated_at = now
            row.updated_by = self.ws.actor
            s.flush()
            record_event(
                self.ws.db,
                s,
                kind="gates.policy_set",
                subject=model,
                actor=self.ws.actor,
                at=now,
                payload={
                    "model": model,
                    "policy_sha256": sha,
                    "previous_sha256": previous,
                    "required": resolved.required,
                    "source": resolved.source,
                    "gates": [g.name for g in resolved.gates],
                    "reason": reason,
                },
            )
        return resolved

    def delete_policy(self, model: str, *, reason: str = "") -> None:
        """Forget ``model``'s saved policy (deploys stop requiring gates)."""
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            mrow = _model(s, model, lock=True)
            row = _policy_row(s, mrow.id)
            if row is None:
                raise NotFoundError("gate policy", model)
            payload = {"model": model, "policy_sha256": row.policy_sha256, "reason": reason}
            s.delete(row)
            record_event(
                self.ws.db,
                s,
                kind="gates.policy_deleted",
                subject=model,
                actor=self.ws.actor,
                at=now,
                payload=payload,
            )

    # -- validation -------------------------------------------------------------------------
    def validate(
        self,
        model: str,
        version: int,
        *,
        against: str | None = None,
        eval_data: pd.DataFrame | str | Path | None = None,
        target: str | None = None,
        sensitive: Sequence[str] = (),
        policy: PolicyLike | None = None,
        save_policy: bool = False,
        progress: Progress | None = None,
    ) -> ValidationReport:
        """Run the gates of ``policy`` (a file, mapping or GatePolicy; default: the model's
        saved policy, else :func:`~lockgate.gates.policy.default_policy`) on
        ``model/version``, store the report and record a ``validation.completed`` event.

        ``against`` names the baseline alias (default: the policy's ``baseline``); an unknown
        alias given here is an error, while a policy's alias that does not exist yet (the
        first version) only skips the comparisons. ``sensitive`` columns add a fairness gate
        with default thresholds when the policy has none. Bad input (unknown model, version
        or alias, unreadable data, a bad policy) raises before any gate runs."""
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidInputError.for_field("version", "a positive integer", version)
        candidate = self.ws.registry.get_version(VersionRef(validate_name(model, "model"), version))
        sensitive = tuple(sensitive)
        frame, eval_source = self._eval(eval_data, target, sensitive)
        if against is not None:
            validate_name(against, "alias")
        chosen = self._policy(model, policy, save_policy)
        if chosen is None:
            chosen = default_policy(
                compare=against is not None and frame is not None and target is not None,
                fairness=bool(sensitive),
            )
        run_policy = chosen
        if sensitive and not chosen.has_type("fairness"):
            run_policy = chosen.with_gates([GateSpec("fairness", "fairness")])
        gates = run_policy.build()
        alias = against or chosen.baseline
        baseline, note = self._baseline(model, alias, explicit=against is not None)
        ctx = GateContext(
            self.ws,
            candidate,
            baseline=baseline,
            baseline_alias=alias,
            baseline_note=note,
            eval_data=frame,
            target=target,
            sensitive=sensitive,
        )
        started = time.perf_counter()
        try:
            results = _run(gates, ctx, progress)
        finally:
            ctx.close()
        inputs = {
            "eval": None
            if frame is None
            else {
                "source": eval_source,
                "rows": len(frame),
                "columns": [str(c) for c in frame.columns],
                "sha256": data_sha256(frame),
            },
            "target": target,
            "sensitive": list(sensitive),
            "against": against,
            "baseline_note": note,
            "gates_added": [g.name for g in run_policy.gates[len(chosen.gates) :]],
        }
        return self._store(
            candidate, chosen, results, inputs, alias, baseline, time.perf_counter() - started
        )

    def _policy(self, model: str, policy: PolicyLike | None, save: bool) -> GatePolicy | None:
        if policy is None:
            if save:
                raise InvalidInputError.for_field("save_policy", "a policy to save", None)
            return self.get_policy(model)
        if save:
            return self.set_policy(model, policy)
        return self.resolve_policy(model, policy)

    @staticmethod
    def _eval(
        eval_data: pd.DataFrame | str | Path | None, target: str | None, sensitive: Sequence[str]
    ) -> tuple[pd.DataFrame | None, str | None]:
        if eval_data is None:
            if target is not None or sensitive:
                field = "target" if target is not None else "sensitive"
                raise InvalidInputError.for_field(
                    field, "evaluation data (--eval FILE) to read it from", None
                )
            return None, None
        frame = read_table(eval_data)
        check_columns(frame, target, sensitive)
        source = "DataFrame" if isinstance(eval_data, pd.DataFrame) else str(eval_data)
        return frame, source

    def _baseline(
        self, model: str, alias: str | None, *, explicit: bool
    ) -> tuple[ModelVersion | None, str | None]:
        if alias is None:
            return None, None
        try:
            return self.ws.registry.get_version(VersionRef(model, alias=alias)), None
        except NotFoundError:
            if explicit:
                raise
            return None, f"alias {alias!r} does not exist yet"

    def _store(
        self,
        candidate: ModelVersion,
        policy: GatePolicy,
        results: list[GateResult],
        inputs: dict[str, Any],
        alias: str | None,
        baseline: ModelVersion | None,
        duration: float,
    ) -> ValidationReport:
        status: Status = combine(r.status for r in results)
        now = self.ws.clock.now()
        doc = _jsonable({"gates": [r.to_dict() for r in results]})
        inputs = _jsonable(inputs)
        with self.ws.db.write() as s:
            mrow = _model(s, candidate.model)
            vrow = version_row(s, mrow.id, mrow.name, candidate.version)
            row = GateReportRow(
                model_id=mrow.id,
                version_id=vrow.id,
                status=status,
                baseline_alias=alias,
                baseline_version=None if baseline is None else baseline.version,
                policy=policy.to_dict(),
                policy_sha256=policy.sha256(),
                policy_source=policy.source,
                inputs=inputs,
                results=doc,
                duration_s=duration,
                created_at=now,
                created_by=self.ws.actor,
            )
            s.add(row)
            s.flush()
            record_event(
                self.ws.db,
                s,
                kind="validation.completed",
                subject=candidate.ref,
                actor=self.ws.actor,
                at=now,
                payload={
                    "model": candidate.model,
                    "version": candidate.version,
                    "report_id": row.id,
                    "status": status,
                    "baseline_alias": alias,
                    "baseline_version": row.baseline_version,
                    "policy_sha256": row.policy_sha256,
                    "policy_source": policy.source,
                    "gates": {r.name: r.status for r in results},
                },
            )
            return _report(row, candidate.model, candidate.version)

    # -- reports ----------------------------------------------------------------------------
    def reports(
        self, model: str, version: int | None = None, *, limit: int | None = None
    ) -> list[ValidationReport]:
        """Reports of ``model`` (of one version when given), newest first."""
        with self.ws.db.read() as s:
            mrow = _model(s, model)
            q = (
                select(GateReportRow, VersionRow.version)
                .join(VersionRow, VersionRow.id == GateReportRow.version_id)
                .where(GateReportRow.model_id == mrow.id)
            )
            if version is not None:
                vrow = version_row(s, mrow.id, mrow.name, version)
                q = q.where(GateReportRow.version_id == vrow.id)
            q = q.order_by(GateReportRow.id.desc())
            if limit is not None:
                q = q.limit(limit)
            return [_report(r, model, v) for r, v in s.execute(q).all()]

    def get_report(self, report_id: int) -> ValidationReport:
        with self.ws.db.read() as s:
            row = s.get(GateReportRow, report_id)
            if row is None:
                raise NotFoundError("validation report", str(report_id))
            mrow = s.get_one(ModelRow, row.model_id)
            vrow = s.get_one(VersionRow, row.version_id)
            return _report(row, mrow.name, vrow.version)

    # -- deploys ----------------------------------------------------------------------------
    def deploy_check(self, model: str, version: int) -> DeployCheck:
        """Whether gates allow deploying ``model/version`` (see the module docstring)."""
        with self.ws.db.read() as s:
            mrow = _model(s, model)
            vrow = version_row(s, mrow.id, mrow.name, version)
            prow = _policy_row(s, mrow.id)
            if prow is None or not prow.required:
                return DeployCheck(model, version, False, True, "no required gate policy")
            sha = prow.policy_sha256
            row = s.execute(
                select(GateReportRow)
                .where(GateReportRow.version_id == vrow.id, GateReportRow.policy_sha256 == sha)
                .order_by(GateReportRow.id.desc())
                .limit(1)
            ).scalar_one_or_none()
        ref = f"{model}/{version}"
        if row is None:
            return DeployCheck(
                model,
                version,
                True,
                False,
                f"{ref} has not been validated under the model's required gate policy "
                f"({sha[:12]}); run: lockgate validate {model} {version}",
                policy_sha256=sha,
            )
        status: Status = row.status  # type: ignore[assignment]
        if status != "pass":
            failed = [
                f"{g['name']} {g['status']}"
                for g in row.results.get("gates", [])
                if g.get("status") != "pass"
            ]
            return DeployCheck(
                model,
                version,
                True,
                False,
                f"the latest validation of {ref} under the required gate policy "
                f"(report {row.id}) is {status}: {', '.join(failed)}",
                row.id,
                status,
                sha,
            )
        return DeployCheck(
            model,
            version,
            True,
            True,
            f"{ref} passed its gates (report {row.id})",
            row.id,
            status,
            sha,
        )

    def authorize_deploy(
        self, version: ModelVersion, *, force: bool = False, force_reason: str = ""
    ) -> dict[str, Any]:
        """Raise :class:`~lockgate.errors.ConflictError` when gates forbid deploying
        ``version`` and ``force`` is not given; return what the deploy event records."""
        reason = (force_reason or "").strip()
        if reason and not force:
            raise InvalidInputError.for_field("force_reason", "to be given with force", reason)
        if force and not reason:
            raise InvalidInputError.for_field(
                "force_reason", "a reason for forcing the deploy (it is recorded)", force_reason
            )
        check = self.deploy_check(version.model, version.version)
        if check.allowed:
            return check.to_dict()
        if not force:
            raise ConflictError(
                f"refusing to deploy {version.ref}: {check.reason}. To deploy anyway, give "
                "--force with --force-reason (recorded in the event log)",
                report_id=check.report_id,
                report_status=check.report_status,
            )
        return replace(check, forced=True, force_reason=reason).to_dict()


def _run(gates: list[Gate], ctx: GateContext, progress: Progress | None) -> list[GateResult]:
    """Run the gates, isolated ones (schema, smoke) first; results in policy order."""
    order = sorted(range(len(gates)), key=lambda i: not gates[i].isolated)
    results: dict[int, GateResult] = {}
    for i in order:
        gate = gates[i]
        if progress is not None:
            progress(gate.name, None)
        start = time.perf_counter()
        result = _evaluate(gate, ctx)
        result = replace(result, duration_s=time.perf_counter() - start)
        results[i] = result
        if progress is not None:
            progress(gate.name, result)
    return [results[i] for i in range(len(gates))]


def _evaluate(gate: Gate, ctx: GateContext) -> GateResult:
    try:
        return gate.evaluate(ctx)
    except LoadBlockedError as exc:
        return gate.result([], status="inconclusive", reason=f"not evaluated: {exc.message}")
    except _MODEL_ERRORS as exc:
        return gate.result([], status="fail", reason=f"the model failed: {exc.message}")
    except InvalidInputError:
        raise
    except Exception as exc:
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return gate.result(
            [],
            status="inconclusive",
            reason=f"the {gate.type} gate could not be evaluated: {tb}",
            details={"error": tb},
        )


def _model(s: Session, name: str, *, lock: bool = False) -> ModelRow:
    validate_name(name, "model")
    q = select(ModelRow).where(ModelRow.name == name)
    if lock:
        q = q.with_for_update()
    row = s.execute(q).scalar_one_or_none()
    if row is None:
        raise NotFoundError("model", name)
    return row


def _policy_row(s: Session, model_id: int) -> GatePolicyRow | None:
    return s.execute(
        select(GatePolicyRow).where(GatePolicyRow.model_id == model_id)
    ).scalar_one_or_none()


def _report(row: GateReportRow, model: str, version: int) -> ValidationReport:
    return ValidationReport(
        id=row.id,
        model=model,
        version=version,
        status=row.status,  # type: ignore[arg-type]
        gates=tuple(GateResult.from_dict(g) for g in row.results.get("gates", [])),
        policy=row.policy,
        policy_sha256=row.policy_sha256,
        policy_source=row.policy_source,
        inputs=row.inputs,
        baseline_alias=row.baseline_alias,
        baseline_version=row.baseline_version,
        created_at=row.created_at,
        created_by=row.created_by,
        duration_s=row.duration_s,
    )


def _jsonable(value: Any) -> Any:
    """Plain JSON (NaN and infinities become null, numpy values plain numbers)."""
    return orjson.loads(
        orjson.dumps(
            value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str
        )
    )
