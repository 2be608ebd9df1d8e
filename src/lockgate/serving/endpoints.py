"""Endpoints: named serving addresses with a traffic policy, kept in the metadata store.

A deploy pins a version (an alias is resolved at deploy time and remembered) and bumps the
endpoint's ``generation``; running servers compare generations to notice a change with one
cheap query and load the new version before switching to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from lockgate.audit.events import record_event
from lockgate.errors import ConflictError, InvalidInputError, NotFoundError
from lockgate.registry.models import VersionRef
from lockgate.rollout.policy import TrafficPolicy
from lockgate.serving.config import BatchingConfig
from lockgate.store.paths import validate_name
from lockgate.store.schema import EndpointRow, ModelRow, VersionRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from lockgate.workspace import Workspace


@dataclass(frozen=True)
class EndpointInfo:
    name: str
    model: str
    policy: TrafficPolicy
    batching: BatchingConfig
    generation: int
    created_at: datetime
    updated_at: datetime
    updated_by: str
    deployed_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "version": self.policy.primary,
            "policy": self.policy.to_dict(),
            "batching": self.batching.to_dict(),
            "generation": self.generation,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
            "deployed_from": self.deployed_from,
        }


class EndpointService:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def deploy(
        self,
        model: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        endpoint: str | None = None,
        batching: BatchingConfig | dict[str, Any] | None = None,
        reason: str = "",
        force: bool = False,
        force_reason: str = "",
    ) -> EndpointInfo:
        """Point ``endpoint`` (default: the model's name) at a version of ``model``, creating
        the endpoint if needed. Exactly one of ``version`` and ``alias`` is required.

        When the model has a saved gate policy with ``required = true``, the version must have
        passed it (:meth:`lockgate.gates.service.GateService.authorize_deploy`); ``force`` with
        a ``force_reason`` deploys anyway and the override is recorded in the event."""
        if (version is None) == (alias is None):
            raise InvalidInputError.for_field(
                "version",
                "exactly one of a version or an alias",
                {"version": version, "alias": alias},
            )
        name = validate_name(endpoint or model, "endpoint")
        ref = VersionRef(validate_name(model, "model"), version=version, alias=alias)
        target = self.ws.registry.get_version(ref)
        gates = self.ws.gates.authorize_deploy(target, force=force, force_reason=force_reason)
        cfg = (
            batching
            if isinstance(batching, BatchingConfig) or batching is None
            else (BatchingConfig.from_dict(batching))
        )
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            mrow = s.execute(select(ModelRow).where(ModelRow.name == model)).scalar_one()
            row = s.execute(
                select(EndpointRow).where(EndpointRow.name == name).with_for_update()
            ).scalar_one_or_none()
            from_version = None
            if row is None:
                policy = TrafficPolicy(primary=target.version)
                row = EndpointRow(
                    name=name,
                    model_id=mrow.id,
                    policy=self._policy_doc(policy, alias),
                    batching=(cfg or BatchingConfig()).to_dict(),
                    generation=1,
                    created_at=now,
                    updated_at=now,
                    updated_by=self.ws.actor,
                )
                s.add(row)
            else:
                if row.model_id != mrow.id:
                    other = s.get_one(ModelRow, row.model_id).name
                    raise ConflictError(
                        f"endpoint {name!r} serves model {other!r}, not {model!r}; "
                        "choose another endpoint name with --endpoint"
                    )
                current = TrafficPolicy.from_dict(row.policy)
                from_version = current.primary
                if not current.is_simple:
                    raise ConflictError(
                        f"endpoint {name!r} has a canary, A/B arms or a shadow in its traffic "
                        "policy; finish or abort the rollout before deploying"
                    )
                row.policy = self._policy_doc(TrafficPolicy(primary=target.version), alias)
                if cfg is not None:
                    row.batching = cfg.to_dict()
                row.generation += 1
                row.updated_at = now
                row.updated_by = self.ws.actor
            s.flush()
            record_event(
                self.ws.db,
                s,
                kind="endpoint.deployed",
                subject=name,
                actor=self.ws.actor,
                at=now,
                payload={
                    "endpoint": name,
                    "model": model,
                    "from_version": from_version,
                    "to_version": target.version,
                    "alias": alias,
                    "reason": reason,
                    "batching": row.batching,
                    "gates": gates,
                },
            )
            return self._info(s, row)

    @staticmethod
    def _policy_doc(policy: TrafficPolicy, alias: str | None) -> dict[str, Any]:
        return {**policy.to_dict(), "deployed_from": f"@{alias}" if alias else None}

    def set_batching(self, name: str, batching: BatchingConfig | dict[str, Any]) -> EndpointInfo:
        cfg = (
            batching if isinstance(batching, BatchingConfig) else BatchingConfig.from_dict(batching)
        )
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            row = self._row(s, name, lock=True)
            row.batching = cfg.to_dict()
            row.generation += 1
            row.updated_at = now
            row.updated_by = self.ws.actor
            record_event(
                self.ws.db,
                s,
                kind="endpoint.batching",
                subject=name,
                actor=self.ws.actor,
                at=now,
                payload={"batching": row.batching},
            )
            return self._info(s, row)

    def delete(self, name: str, *, reason: str = "") -> None:
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            row = self._row(s, name, lock=True)
            payload = {"endpoint": name, "policy": row.policy, "reason": reason}
            s.delete(row)
            record_event(
                self.ws.db,
                s,
                kind="endpoint.deleted",
                subject=name,
                actor=self.ws.actor,
                at=now,
                payload=payload,
            )

    def get(self, name: str) -> EndpointInfo:
        with self.ws.db.read() as s:
            return self._info(s, self._row(s, name))

    def list(self) -> list[EndpointInfo]:
        with self.ws.db.read() as s:
            rows = s.execute(select(EndpointRow).order_by(EndpointRow.name)).scalars().all()
            return [self._info(s, r) for r in rows]

    def generations(self) -> dict[str, int]:
        """``{endpoint: generation}``: one cheap query for change detection."""
        with self.ws.db.read() as s:
            rows = s.execute(select(EndpointRow.name, EndpointRow.generation)).all()
            return {name: gen for name, gen in rows}

    def _row(self, s: Session, name: str, *, lock: bool = False) -> EndpointRow:
        validate_name(name, "endpoint")
        q = select(EndpointRow).where(EndpointRow.name == name)
        if lock:
            q = q.with_for_update()
        row = s.execute(q).scalar_one_or_none()
        if row is None:
            raise NotFoundError("endpoint", name)
        return row

    @staticmethod
    def _info(s: Session, row: EndpointRow) -> EndpointInfo:
        model = s.get_one(ModelRow, row.model_id).name
        return EndpointInfo(
            name=row.name,
            model=model,
            policy=TrafficPolicy.from_dict(row.policy),
            batching=BatchingConfig.from_dict(row.batching),
            generation=row.generation,
            created_at=row.created_at,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
            deployed_from=(row.policy or {}).get("deployed_from"),
        )

    def version_exists(self, s: Session, model_id: int, version: int) -> bool:
        return (
            s.execute(
                select(VersionRow.id).where(
                    VersionRow.model_id == model_id, VersionRow.version == version
                )
            ).scalar_one_or_none()
            is not None
        )
