"""analysis snapshots

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analysis_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_key", sa.String(length=100), nullable=False),
        sa.Column("settings_hash", sa.String(length=64), nullable=False),
        sa.Column("watermark", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_snapshots")),
    )
    with op.batch_alter_table("analysis_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_analysis_snapshots_experiment_key"), ["experiment_key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("analysis_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analysis_snapshots_experiment_key"))
    op.drop_table("analysis_snapshots")
