"""The registry: models, immutable numbered versions, aliases and their history.

Every state change runs in one write transaction together with its event, so the registry and
the audit trail never disagree. Version numbers are allocated under a lock (SQLite: the
database write lock taken at BEGIN IMMEDIATE; PostgreSQL: a row lock on the model), so two
processes registering at once get distinct, gap-free numbers.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from lockgate.audit.events import record_event
from lockgate.errors import (
    InvalidInputError,
    LockgateError,
    ModelLoadError,
    NotFoundError,
    UntrustedArtifactError,
)
from lockgate.registry.lineage import data_sha256, git_info, library_versions
from lockgate.registry.loaded import LoadedModel
from lockgate.registry.models import AliasMove, ModelInfo, ModelVersion, VersionRef
from lockgate.registry.rows import version_row
from lockgate.registry.signature import Signature, as_frame, infer_outputs
from lockgate.runtimes import detect_flavor, flavor_for_object, get_runtime
from lockgate.store.paths import validate_name, validate_source
from lockgate.store.schema import AliasHistoryRow, AliasRow, ModelRow, VersionRow

if TYPE_CHECKING:
    from lockgate.workspace import Workspace

#: rows of the sample used to check a model predicts at registration
_SMOKE_ROWS = 64
TRUST_HINT = "pass --trust-pickle when registering, or set LOCKGATE_TRUST_PICKLE=1"


class Registry:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- models -----------------------------------------------------------------------------
    def _ensure_model(self, s: Session, name: str) -> ModelRow:
        now = self.ws.clock.now()
        table = ModelRow.__table__
        values = {"name": name, "description": "", "created_at": now, "created_by": self.ws.actor}
        ins = pg_insert(table) if self.ws.db.dialect == "postgresql" else sqlite_insert(table)
        res = s.execute(ins.values(**values).on_conflict_do_nothing(index_elements=["name"]))
        row = s.execute(
            select(ModelRow).where(ModelRow.name == name).with_for_update()
        ).scalar_one()
        if res.rowcount:
            record_event(
                self.ws.db,
                s,
                kind="model.created",
                subject=name,
                actor=self.ws.actor,
                at=now,
                payload={"model": name},
            )
        return row

    def _model(self, s: Session, name: str, *, lock: bool = False) -> ModelRow:
        validate_name(name, "model")
        q = select(ModelRow).where(ModelRow.name == name)
        if lock:
            q = q.with_for_update()
        row = s.execute(q).scalar_one_or_none()
        if row is None:
            raise NotFoundError("model", name)
        return row

    def list_models(self) -> list[ModelInfo]:
        with self.ws.db.read() as s:
            models = s.execute(select(ModelRow).order_by(ModelRow.name)).scalars().all()
            latest = dict(
                s.execute(
                    select(VersionRow.model_id, func.max(VersionRow.version)).group_by(
                        VersionRow.model_id
                    )
                ).all()
            )
            aliases: dict[int, dict[str, int]] = {}
            for model_id, alias, version in s.execute(
                select(AliasRow.model_id, AliasRow.name, VersionRow.version).join(
                    VersionRow, VersionRow.id == AliasRow.version_id
                )
            ):
                aliases.setdefault(model_id, {})[alias] = version
        return [
            ModelInfo(
                m.name,
                m.description,
                m.created_at,
                m.created_by,
                latest.get(m.id),
                aliases.get(m.id, {}),
            )
            for m in models
        ]

    def get_model(self, name: str) -> ModelInfo:
        for m in self.list_models():
            if m.name == name:
                return m
        validate_name(name, "model")
        raise NotFoundError("model", name)

    # -- versions ---------------------------------------------------------------------------
    def register(
        self,
        name: str,
        model: Any,
        *,
        flavor: str | None = None,
        signature: Signature | Mapping[str, Any] | None = None,
        sample: Any = None,
        reference: pd.DataFrame | Path | str | None = None,
        target: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        description: str = "",
        trust_pickle: bool = False,
        training_data: pd.DataFrame | Path | str | None = None,
        parent: int | None = None,
        lineage: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register ``model`` (an in-memory model or a path to a model file or folder) as the
        next version of ``name``. The artifact is checked to load and predict on the sample
        before anything is stored."""
        validate_name(name, "model")
        for field_name, value in (("metrics", metrics), ("params", params), ("tags", tags)):
            if value is not None and not isinstance(value, Mapping):
                raise InvalidInputError.for_field(field_name, "a mapping", type(value).__name__)
        reference_frame = _read_table(reference, "reference") if reference is not None else None
        training_path = None
        if isinstance(training_data, (str, Path)):
            training_path = validate_source(training_data, "training_data")
        with tempfile.TemporaryDirectory(dir=self.ws.cache_dir) as tmp:
            path, flavor = self._resolve_artifact(model, flavor, Path(tmp))
            runtime_cls = get_runtime(flavor)
            trusted = trust_pickle or self.ws.settings.trust_pickle
            needs_trust = runtime_cls.requires_trust(path)
            if needs_trust and not trusted:
                raise UntrustedArtifactError(
                    f"{path.name} is a pickle-based {flavor} artifact and loading it can run "
                    f"arbitrary code; refused. If you produced it yourself, {TRUST_HINT}."
                )
            sig = self._signature(signature, sample, reference_frame, target)
            smoke = _smoke_frame(sample, reference_frame, sig)
            outputs = self._smoke_predict(runtime_cls, path, trusted, sig, smoke, options)
            if not sig.outputs and outputs is not None:
                sig = Signature(sig.inputs, infer_outputs(outputs))
            sha, size, kind = self.ws.artifacts.put_path(path)
            artifact_name = path.name
        profile_sha = None
        profile_summary = None
        if reference_frame is not None:
            from lockgate.monitoring.profile import compute_profile

            profile = compute_profile(reference_frame)
            profile_sha = self.ws.artifacts.put_bytes(profile.to_bytes())
            profile_summary = profile.summary()
        lin: dict[str, Any] = {
            "code": git_info(),
            "training_data_sha256": data_sha256(
                training_path
                if training_path is not None
                else (training_data if isinstance(training_data, pd.DataFrame) else None)
            ),
            "reference_data_sha256": data_sha256(reference_frame),
            "parent_version": parent,
            "libraries": library_versions(runtime_cls.framework_versions()),
            "trusted_pickle": bool(needs_trust and trusted),
            "runtime_options": dict(options or {}),
            **dict(lineage or {}),
        }
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            mrow = self._ensure_model(s, name)
            if parent is not None:
                version_row(s, mrow.id, mrow.name, parent)
            number = (
                s.execute(
                    select(func.max(VersionRow.version)).where(VersionRow.model_id == mrow.id)
                ).scalar_one_or_none()
                or 0
            ) + 1
            row = VersionRow(
                model_id=mrow.id,
                version=number,
                flavor=flavor,
                artifact_sha256=sha,
                artifact_size=size,
                artifact_kind=kind,
                artifact_name=artifact_name,
                signature=sig.to_dict(),
                lineage=_jsonable(lin),
                metrics=_jsonable(dict(metrics or {})),
                params=_jsonable(dict(params or {})),
                tags=_jsonable(dict(tags or {})),
                profile_sha256=profile_sha,
                profile_summary=_jsonable(profile_summary) if profile_summary else None,
                trusted_pickle=bool(needs_trust and trusted),
                description=description,
                created_at=now,
                created_by=self.ws.actor,
            )
            s.add(row)
            s.flush()
            record_event(
                self.ws.db,
                s,
                kind="version.registered",
                subject=f"{name}/{number}",
                actor=self.ws.actor,
                at=now,
                payload={
                    "model": name,
                    "version": number,
                    "flavor": flavor,
                    "artifact_sha256": sha,
                    "trusted_pickle": row.trusted_pickle,
                    "code": lin["code"],
                    "parent_version": parent,
                },
            )
            return self._to_version(s, name, row)

    def _resolve_artifact(self, model: Any, flavor: str | None, tmp: Path) -> tuple[Path, str]:
        if isinstance(model, (str, Path)):
            path = validate_source(model, "model")
            return path, (flavor or detect_flavor(path))
        flavor = flavor or flavor_for_object(model)
        runtime_cls = get_runtime(flavor)
        if not runtime_cls.can_save(model):
            raise InvalidInputError.for_field(
                "model", f"a model the {flavor} flavor can save", type(model).__qualname__
            )
        out = tmp / "artifact"
        out.mkdir()
        return runtime_cls.save(model, out), flavor

    @staticmethod
    def _signature(
        signature: Signature | Mapping[str, Any] | None,
        sample: Any,
        reference: pd.DataFrame | None,
        target: str | None,
    ) -> Signature:
        if isinstance(signature, Signature):
            return signature
        if signature is not None:
            return Signature.from_dict(signature)
        if sample is not None:
            return Signature.infer(sample)
        if reference is not None:
            frame = reference.drop(columns=[target]) if target else reference
            return Signature.infer(frame)
        raise InvalidInputError.for_field(
            "signature", "a sample, reference data or an explicit signature", None
        )

    def _smoke_predict(
        self,
        runtime_cls: Any,
        path: Path,
        trusted: bool,
        sig: Signature,
        smoke: pd.DataFrame | None,
        options: Mapping[str, Any] | None,
    ) -> Any:
        runtime = runtime_cls(path, trusted=trusted, options=options)
        try:
            runtime.load()
        except LockgateError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"the {runtime_cls.flavor} artifact {path.name} did not load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            if smoke is None:
                return None
            try:
                return runtime.predict(sig.validate(smoke))
            except LockgateError:
                raise
            except Exception as exc:
                raise ModelLoadError(
                    f"the model failed to predict on the sample rows: {type(exc).__name__}: {exc}"
                ) from exc
        finally:
            runtime.unload()

    def _resolve(self, s: Session, ref: VersionRef) -> tuple[ModelRow, VersionRow]:
        mrow = self._model(s, ref.name)
        if ref.version is not None:
            return mrow, version_row(s, mrow.id, mrow.name, ref.version)
        if ref.alias is not None:
            arow = s.execute(
                select(AliasRow).where(AliasRow.model_id == mrow.id, AliasRow.name == ref.alias)
            ).scalar_one_or_none()
            if arow is None:
                raise NotFoundError("alias", f"{ref.name}@{ref.alias}")
            return mrow, s.get_one(VersionRow, arow.version_id)
        row = s.execute(
            select(VersionRow)
            .where(VersionRow.model_id == mrow.id)
            .order_by(VersionRow.version.desc())
            .limit(1)
        ).scalar_one_or_none()
        if row is None:
            raise NotFoundError("version", f"{ref.name} (the model has no versions)")
        return mrow, row

    def get_version(self, ref: str | VersionRef) -> ModelVersion:
        """``name`` (latest), ``name/3`` or ``name@alias``."""
        ref = ref if isinstance(ref, VersionRef) else VersionRef.parse(ref)
        with self.ws.db.read() as s:
            mrow, row = self._resolve(s, ref)
            return self._to_version(s, mrow.name, row)

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self.ws.db.read() as s:
            mrow = self._model(s, name)
            rows = (
                s.execute(
                    select(VersionRow)
                    .where(VersionRow.model_id == mrow.id)
                    .order_by(VersionRow.version)
                )
                .scalars()
                .all()
            )
            return [self._to_version(s, name, r) for r in rows]

    def _to_version(self, s: Session, name: str, row: VersionRow) -> ModelVersion:
        aliases = tuple(
            s.execute(
                select(AliasRow.name).where(AliasRow.version_id == row.id).order_by(AliasRow.name)
            ).scalars()
        )
        return ModelVersion(
            model=name,
            version=row.version,
            flavor=row.flavor,
            artifact_sha256=row.artifact_sha256,
            artifact_size=row.artifact_size,
            artifact_kind=row.artifact_kind,
            artifact_name=row.artifact_name,
            signature=Signature.from_dict(row.signature),
            lineage=row.lineage,
            metrics=row.metrics,
            params=row.params,
            tags=row.tags,
            profile_sha256=row.profile_sha256,
            profile_summary=row.profile_summary,
            trusted_pickle=row.trusted_pickle,
            description=row.description,
            created_at=row.created_at,
            created_by=row.created_by,
            aliases=aliases,
        )

    # -- aliases ----------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int, *, reason: str = "") -> AliasMove:
        """Point ``alias`` at ``version`` (creating or moving it); kept in alias history."""
        validate_name(alias, "alias")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidInputError.for_field("version", "a positive integer", version)
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            mrow = self._model(s, name, lock=True)
            vrow = version_row(s, mrow.id, mrow.name, version)
            arow = s.execute(
                select(AliasRow).where(AliasRow.model_id == mrow.id, AliasRow.name == alias)
            ).scalar_one_or_none()
            from_version = None
            if arow is None:
                action = "set"
                s.add(
                    AliasRow(
                        model_id=mrow.id,
                        name=alias,
                        version_id=vrow.id,
                        updated_at=now,
                        updated_by=self.ws.actor,
                    )
                )
            else:
                from_version = s.get_one(VersionRow, arow.version_id).version
                action = "move"
                arow.version_id = vrow.id
                arow.updated_at = now
                arow.updated_by = self.ws.actor
            return self._log_alias(s, mrow, alias, action, from_version, version, now, reason)

    def delete_alias(self, name: str, alias: str, *, reason: str = "") -> AliasMove:
        validate_name(alias, "alias")
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            mrow = self._model(s, name, lock=True)
            arow = s.execute(
                select(AliasRow).where(AliasRow.model_id == mrow.id, AliasRow.name == alias)
            ).scalar_one_or_none()
            if arow is None:
                raise NotFoundError("alias", f"{name}@{alias}")
            from_version = s.get_one(VersionRow, arow.version_id).version
            s.delete(arow)
            return self._log_alias(s, mrow, alias, "delete", from_version, None, now, reason)

    def _log_alias(
        self,
        s: Session,
        mrow: ModelRow,
        alias: str,
        action: str,
        from_version: int | None,
        to_version: int | None,
        now: Any,
        reason: str,
    ) -> AliasMove:
        s.add(
            AliasHistoryRow(
                model_id=mrow.id,
                alias=alias,
                action=action,
                from_version=from_version,
                to_version=to_version,
                at=now,
                actor=self.ws.actor,
                reason=reason,
            )
        )
        record_event(
            self.ws.db,
            s,
            kind=f"alias.{action}",
            subject=f"{mrow.name}@{alias}",
            actor=self.ws.actor,
            at=now,
            payload={
                "model": mrow.name,
                "alias": alias,
                "from_version": from_version,
                "to_version": to_version,
                "reason": reason,
            },
        )
        return AliasMove(
            mrow.name, alias, action, from_version, to_version, now, self.ws.actor, reason
        )

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        with self.ws.db.read() as s:
            mrow = self._model(s, name)
            q = select(AliasHistoryRow).where(AliasHistoryRow.model_id == mrow.id)
            if alias is not None:
                q = q.where(AliasHistoryRow.alias == alias)
            rows = s.execute(q.order_by(AliasHistoryRow.id)).scalars().all()
        return [
            AliasMove(
                name, r.alias, r.action, r.from_version, r.to_version, r.at, r.actor, r.reason
            )
            for r in rows
        ]

    # -- loading ----------------------------------------------------------------------------
    def load(self, ref: str | VersionRef | ModelVersion) -> LoadedModel:
        """Verify the version's artifact against its sha256, unpack it and load it with its
        flavor's runtime. Pickle-based artifacts load only when trusted at registration or by
        ``LOCKGATE_TRUST_PICKLE``."""
        version = ref if isinstance(ref, ModelVersion) else self.get_version(ref)
        runtime_cls = get_runtime(version.flavor)
        path = self.ws.artifacts.materialize(
            version.artifact_sha256,
            version.artifact_kind,
            version.artifact_name,
            cache_dir=self.ws.cache_dir,
            subject=f"version {version.ref}",
        )
        workdir = path.parent
        try:
            trusted = version.trusted_pickle or self.ws.settings.trust_pickle
            if runtime_cls.requires_trust(path) and not trusted:
                raise UntrustedArtifactError(
                    f"version {version.ref} is a pickle-based artifact that was not trusted at "
                    f"registration; refused. {TRUST_HINT[0].upper()}{TRUST_HINT[1:]}."
                )
            runtime = runtime_cls(
                path, trusted=trusted, options=version.lineage.get("runtime_options") or {}
            )
            try:
                runtime.load()
            except LockgateError:
                raise
            except Exception as exc:
                raise ModelLoadError(
                    f"version {version.ref} did not load: {type(exc).__name__}: {exc}"
                ) from exc
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return LoadedModel(version, runtime, workdir)

    def load_profile(self, version: ModelVersion) -> Any:
        """The reference profile of ``version`` (verified against its hash), or None."""
        if not version.profile_sha256:
            return None
        from lockgate.monitoring.profile import Profile

        return Profile.from_bytes(
            self.ws.artifacts.get_bytes(
                version.profile_sha256, subject=f"reference profile of {version.ref}"
            )
        )


def _read_table(source: pd.DataFrame | Path | str, field: str) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    path = validate_source(source, field)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
    except Exception as exc:
        raise InvalidInputError.for_field(
            field, "a readable parquet or csv file", f"{path.name} ({type(exc).__name__}: {exc})"
        ) from None
    raise InvalidInputError.for_field(field, "a .parquet or .csv file", path.name)


def _smoke_frame(
    sample: Any, reference: pd.DataFrame | None, sig: Signature
) -> pd.DataFrame | None:
    if sample is not None:
        frame = as_frame(sample, columns=sig.input_names)
    elif reference is not None:
        frame = reference
    else:
        return None
    return frame.head(_SMOKE_ROWS)


def _jsonable(value: Any) -> Any:
    import orjson

    return orjson.loads(
        orjson.dumps(
            value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str
        )
    )
