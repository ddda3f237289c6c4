"""trust: metric definition versions, immutable creators, server-side sessions, cache versions

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- lifecycle: metric versions, experiment creator (issue 11, review integrity) ---
    # --- end lifecycle ---
    # --- sessions, users and cache versions (issue 11, sessions) ---
    # --- end sessions ---
    pass


def downgrade() -> None:
    # --- sessions (reverse order of upgrade) ---
    # --- end sessions ---
    # --- lifecycle ---
    # --- end lifecycle ---
    pass
