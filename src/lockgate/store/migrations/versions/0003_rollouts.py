"""rollouts, rollout history, feedback and leases

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 12:30:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _at(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("active_endpoint", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("baseline_version", sa.Integer(), nullable=False),
        sa.Column("candidate_version", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("plan", _JSON, nullable=False),
        sa.Column("state", _JSON, nullable=False),
        sa.Column("analysis", _JSON, nullable=True),
        sa.Column("salt", sa.String(length=64), nullable=False),
        _at("next_eval_at", nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        _at("created_at"),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _at("updated_at"),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
        sa.UniqueConstraint("active_endpoint", name=op.f("uq_rollouts_active_endpoint")),
    )
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rollouts_endpoint"), ["endpoint"], unique=False)
        batch_op.create_index(batch_op.f("ix_rollouts_phase"), ["phase"], unique=False)

    op.create_table(
        "rollout_history",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("rollout_id", _ID, nullable=False),
        _at("at"),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_phase", sa.String(length=16), nullable=True),
        sa.Column("to_phase", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("policy", _JSON, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("analysis", _JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_rollout_history_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_history")),
    )
    with op.batch_alter_table("rollout_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rollout_history_rollout_id"), ["rollout_id"], unique=False
        )

    op.create_table(
        "feedback",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("prediction_id", sa.String(length=160), nullable=False),
        sa.Column("value", _JSON, nullable=False),
        sa.Column("metrics", _JSON, nullable=True),
        _at("received_at"),
        sa.Column("received_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("endpoint", "prediction_id", name="uq_feedback_endpoint_prediction"),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_received_at"), ["received_at"], unique=False)

    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        _at("acquired_at"),
        _at("renewed_at"),
        _at("expires_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_received_at"))
    op.drop_table("feedback")
    with op.batch_alter_table("rollout_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollout_history_rollout_id"))
    op.drop_table("rollout_history")
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollouts_phase"))
        batch_op.drop_index(batch_op.f("ix_rollouts_endpoint"))
    op.drop_table("rollouts")
