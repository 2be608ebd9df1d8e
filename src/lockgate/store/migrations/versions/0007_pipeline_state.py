"""automation: the pipelines' state column (when the policy engine last considered a
pipeline's own schedule)

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-26 13:30:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("automation_pipelines", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", _JSON, server_default=sa.text("'{}'"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("automation_pipelines", schema=None) as batch_op:
        batch_op.drop_column("state")
