"""trust: metric definition versions, immutable creators, server-side sessions, cache versions

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- lifecycle: metric versions, experiment creator (issue 11, review integrity) ---
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "metric_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("metric_key", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_versions")),
        sa.UniqueConstraint("metric_key", "version", name=op.f("uq_metric_versions_metric_key")),
    )
    with op.batch_alter_table("metric_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_metric_versions_metric_key"), ["metric_key"], unique=False
        )
    with op.batch_alter_table("experiment_metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("metric_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("via", sa.String(length=200), nullable=True))
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("via", sa.String(length=200), nullable=True))

    # Backfill: every existing definition is version 1 of its metric ...
    definition_columns = (
        "key", "name", "description", "kind", "event", "filter", "value_field",
        "denominator_event", "quantile", "window_start_hours", "window_hours", "capping",
        "direction", "cuped_days", "margin",
    )  # fmt: skip
    json_columns = {"filter", "capping"}
    metrics = sa.table(
        "metrics",
        *(sa.column(c, sa.JSON() if c in json_columns else None) for c in definition_columns),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    versions = sa.table(
        "metric_versions",
        sa.column("metric_key", sa.String()),
        sa.column("version", sa.Integer()),
        sa.column("definition", sa.JSON()),
        sa.column("created_by", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    connection = op.get_bind()
    existing = connection.execute(sa.select(metrics)).mappings().all()
    if existing:
        connection.execute(
            versions.insert(),
            [
                {
                    "metric_key": m["key"],
                    "version": 1,
                    "definition": {c: m[c] for c in definition_columns},
                    "created_by": "",
                    "created_at": m["updated_at"],
                }
                for m in existing
            ],
        )
    # ... experiments that already started analyse it (pinned), drafts follow the current one ...
    op.execute(
        "UPDATE experiment_metrics SET metric_version = 1"
        " WHERE metric_key IN (SELECT key FROM metrics)"
        " AND experiment_id IN (SELECT id FROM experiments"
        " WHERE status NOT IN ('draft', 'review', 'scheduled'))"
    )
    # ... and an experiment without a recorded creator gets the actor of its creation entry.
    op.execute(
        "UPDATE experiments SET created_by = COALESCE((SELECT a.actor FROM audit_log a"
        " WHERE a.entity = 'experiment' AND a.entity_key = experiments.key"
        " AND a.action IN ('create', 'clone') ORDER BY a.id DESC LIMIT 1), owner)"
        " WHERE created_by = ''"
    )
    # --- end lifecycle ---
    # --- sessions, users and cache versions (issue 11, sessions) ---
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_web_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_token_hash"), ["token_hash"], unique=True)
        batch_op.create_index(batch_op.f("ix_web_sessions_user_id"), ["user_id"], unique=False)
    cache_versions = op.create_table(
        "cache_versions",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cache_versions")),
    )
    op.bulk_insert(
        cache_versions, [{"name": "experiments", "version": 0}, {"name": "access", "version": 0}]
    )
    # --- end sessions ---
    pass


def downgrade() -> None:
    # --- sessions (reverse order of upgrade) ---
    op.drop_table("cache_versions")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_web_sessions_token_hash"))
    op.drop_table("web_sessions")
    # --- end sessions ---
    # --- lifecycle ---
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("via")
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_column("via")
        batch_op.drop_column("fingerprint")
    with op.batch_alter_table("experiment_metrics", schema=None) as batch_op:
        batch_op.drop_column("metric_version")
    with op.batch_alter_table("metric_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_metric_versions_metric_key"))
    op.drop_table("metric_versions")
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.drop_column("version")
    # --- end lifecycle ---
    pass
