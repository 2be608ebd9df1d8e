"""gate reports and gate policies

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "gate_reports",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model_id", _ID, nullable=False),
        sa.Column("version_id", _ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("baseline_alias", sa.String(length=64), nullable=True),
        sa.Column("baseline_version", sa.Integer(), nullable=True),
        sa.Column("policy", _JSON, nullable=False),
        sa.Column("policy_sha256", sa.String(length=64), nullable=False),
        sa.Column("policy_source", sa.Text(), nullable=False),
        sa.Column("inputs", _JSON, nullable=False),
        sa.Column("results", _JSON, nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_gate_reports_model_id_models"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_gate_reports_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_reports")),
    )
    with op.batch_alter_table("gate_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gate_reports_model_id"), ["model_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_gate_reports_version_id"), ["version_id"], unique=False
        )

    op.create_table(
        "gate_policies",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model_id", _ID, nullable=False),
        sa.Column("policy", _JSON, nullable=False),
        sa.Column("policy_sha256", sa.String(length=64), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_gate_policies_model_id_models"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_policies")),
        sa.UniqueConstraint("model_id", name=op.f("uq_gate_policies_model_id")),
    )


def downgrade() -> None:
    op.drop_table("gate_policies")
    with op.batch_alter_table("gate_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gate_reports_version_id"))
        batch_op.drop_index(batch_op.f("ix_gate_reports_model_id"))
    op.drop_table("gate_reports")
