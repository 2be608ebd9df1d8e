"""automation: pipelines, policies, pipeline runs and the policy engine's event cursor

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 11:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _at(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _audit() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        _at("created_at"),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _at("updated_at"),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "automation_pipelines",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("spec", _JSON, nullable=False),
        *_audit(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_pipelines")),
        sa.UniqueConstraint("model", name=op.f("uq_automation_pipelines_model")),
    )
    op.create_table(
        "automation_policies",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("spec", _JSON, nullable=False),
        sa.Column("state", _JSON, nullable=False),
        *_audit(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_policies")),
        sa.UniqueConstraint("endpoint", name=op.f("uq_automation_policies_endpoint")),
    )
    op.create_table(
        "automation_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=True),
        sa.Column("trigger", _JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _at("started_at"),
        _at("finished_at", nullable=True),
        _at("deadline_at"),
        sa.Column("parent_version", sa.Integer(), nullable=True),
        sa.Column("candidate_version", sa.Integer(), nullable=True),
        sa.Column("data_sha256", sa.String(length=64), nullable=True),
        sa.Column("result", _JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_runs")),
    )
    with op.batch_alter_table("automation_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_automation_runs_model"), ["model"], unique=False)
        batch_op.create_index(batch_op.f("ix_automation_runs_status"), ["status"], unique=False)
    op.create_table(
        "automation_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_automation_cursors")),
    )


def downgrade() -> None:
    op.drop_table("automation_cursors")
    with op.batch_alter_table("automation_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_automation_runs_status"))
        batch_op.drop_index(batch_op.f("ix_automation_runs_model"))
    op.drop_table("automation_runs")
    op.drop_table("automation_policies")
    op.drop_table("automation_pipelines")
