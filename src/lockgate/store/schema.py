"""Metadata tables (SQLAlchemy 2 declarative). Alembic migrations are the source of truth for
the database; these classes must match them (a test compares the two)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
#: an autoincrementing 64-bit key that SQLite also autoincrements (it only does for INTEGER)
BigID = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONType, datetime: UTCDateTime()}


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))


class VersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_number"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    flavor: Mapped[str] = mapped_column(String(64))
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    artifact_size: Mapped[int] = mapped_column(BigInteger)
    artifact_kind: Mapped[str] = mapped_column(String(8))  # "file" or "dir"
    artifact_name: Mapped[str] = mapped_column(String(255))
    signature: Mapped[dict[str, Any]]
    lineage: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    params: Mapped[dict[str, Any]]
    tags: Mapped[dict[str, Any]]
    profile_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    profile_summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    trusted_pickle: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))


class AliasRow(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "name", name="uq_aliases_model_name"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200))


class AliasHistoryRow(Base):
    __tablename__ = "alias_history"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # set | move | delete
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")


class EventRow(Base):
    """The append-only, hash-chained audit trail: ``hash`` covers ``prev_hash`` and the
    canonical JSON of the event, so an edit, deletion or reordering breaks the chain."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(255), index=True)
    payload: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class EndpointRow(Base):
    """A named serving address. ``policy`` holds the traffic policy over versions (a primary
    version now; canary, shadows and A/B arms with the rollout work); ``generation`` grows on
    every change so running servers notice a change with one cheap query."""

    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"), index=True)
    policy: Mapped[dict[str, Any]]
    batching: Mapped[dict[str, Any]]
    generation: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200))


class GateReportRow(Base):
    """One validation run of a model version: the policy it ran under, its inputs and every
    gate's result. Append-only; the latest row of a version under the model's saved policy is
    what a deploy checks."""

    __tablename__ = "gate_reports"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"), index=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))  # pass | fail | inconclusive
    baseline_alias: Mapped[str | None] = mapped_column(String(64), nullable=True)
    baseline_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    policy: Mapped[dict[str, Any]]
    policy_sha256: Mapped[str] = mapped_column(String(64))
    policy_source: Mapped[str] = mapped_column(Text, default="")
    inputs: Mapped[dict[str, Any]]
    results: Mapped[dict[str, Any]]
    duration_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))


class GatePolicyRow(Base):
    """The gate policy saved for a model: what ``lockgate validate`` runs by default and, when
    ``required``, what every deploy of the model needs a passing report under."""

    __tablename__ = "gate_policies"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"), unique=True)
    policy: Mapped[dict[str, Any]]
    policy_sha256: Mapped[str] = mapped_column(String(64))
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200))


class RolloutRow(Base):
    """A rollout of a candidate version on an endpoint: its plan, its current state (phase,
    step, failures, windows) and the latest analysis. ``active_endpoint`` holds the endpoint
    name while the rollout is active and NULL afterwards: a unique column, so the database
    itself refuses a second active rollout on one endpoint."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(64), index=True)
    active_endpoint: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    model: Mapped[str] = mapped_column(String(64))
    baseline_version: Mapped[int] = mapped_column(Integer)
    candidate_version: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(32))
    phase: Mapped[str] = mapped_column(String(16), index=True)
    plan: Mapped[dict[str, Any]]
    state: Mapped[dict[str, Any]]
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    salt: Mapped[str] = mapped_column(String(64))
    next_eval_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200))


class RolloutHistoryRow(Base):
    """Every transition of a rollout and every analysis, with its reason and actor."""

    __tablename__ = "rollout_history"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    rollout_id: Mapped[int] = mapped_column(
        ForeignKey("rollouts.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(16))
    from_phase: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_phase: Mapped[str] = mapped_column(String(16))
    step: Mapped[int] = mapped_column(Integer)
    policy: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(Text, default="")
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class FeedbackRow(Base):
    """Ground truth (and optional business metrics) for one served prediction, joined to the
    prediction log by ``prediction_id``; a later post for the same id replaces it."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("endpoint", "prediction_id", name="uq_feedback_endpoint_prediction"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    prediction_id: Mapped[str] = mapped_column(String(160))
    value: Mapped[Any] = mapped_column(JSONType)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    received_by: Mapped[str] = mapped_column(String(200))


class LeaseRow(Base):
    """A named lease with an expiry: the controller's leadership among server processes."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime]
    renewed_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class AuditCheckpointRow(Base):
    """A signed checkpoint of the event chain: the id, hash and time of the last event it
    covers, HMAC-SHA256-signed with the audit key (``key_id`` names the key, not the key) and
    chained to the checkpoint before it. ``kind`` is ``prune`` (the events up to it were
    deleted; verification starts from it) or ``anchor`` (a signed head; nothing deleted)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    last_event_hash: Mapped[str] = mapped_column(String(64))
    last_event_at: Mapped[datetime]
    pruned: Mapped[int] = mapped_column(BigInteger, default=0)
    prev_signature: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(64), unique=True)


class PipelineRow(Base):
    """A model's training pipeline: entry point, schedule, rollout strategy (``spec``) and
    the policy engine's bookkeeping of its schedule (``state``: when it was last considered)."""

    __tablename__ = "automation_pipelines"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[dict[str, Any]]
    state: Mapped[dict[str, Any]] = mapped_column(JSONType, server_default=text("'{}'"))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200))


class AutomationPolicyRow(Base):
    """An endpoint's trigger-to-action rules (``spec``) and their bookkeeping (``state``:
    the last scheduled and online runs)."""

    __tablename__ = "automation_policies"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[dict[str, Any]]
    state: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200))


class PipelineRunRow(Base):
    """One run of a pipeline: its trigger, status and outcome (candidate, gates, rollout)."""

    __tablename__ = "automation_runs"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64), index=True)
    endpoint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    trigger: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deadline_at: Mapped[datetime]
    parent_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    candidate_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    data_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    result: Mapped[dict[str, Any]]
    error: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(200))


class AutomationCursorRow(Base):
    """How far a consumer (the policy engine) has read the event log."""

    __tablename__ = "automation_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class MonitorRow(Base):
    """A monitor: a declarative rule over windows of an endpoint's predictions and feedback
    (:mod:`lockgate.monitoring.monitors`), its state (unknown, ok, firing), its last value and
    when it is next evaluated. ``webhooks`` hold URLs and signing secrets, never shown by
    the API, the CLI or an event. ``revision`` grows on every change (optimistic checks)."""

    __tablename__ = "monitors"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    endpoint: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]]
    webhooks: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    measurement: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    firing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    next_eval_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200))


class AlertRow(Base):
    """A monitor that fired or resolved: the webhook ``body`` as posted (the same bytes on
    every retry) and its delivery (``pending``, ``delivered``, ``failed`` or ``none``).
    Alerts outlive their monitor: ``monitor_id`` is no foreign key."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    monitor_id: Mapped[int] = mapped_column(BigInteger, index=True)
    monitor: Mapped[str] = mapped_column(String(64), index=True)
    endpoint: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    body: Mapped[dict[str, Any]]
    delivery: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    deliveries: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
