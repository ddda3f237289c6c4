"""Migration 0003 (lifecycle part) on SQLite and PostgreSQL: existing metric definitions become
version 1, started experiments pin it, drafts follow the current one, creators are filled in
from the audit log, and the downgrade removes it all again."""

from __future__ import annotations

import json

from alembic import command
from sqlalchemy import inspect, text

from splitlab.store.db import make_engine
from splitlab.store.migrate import alembic_config, head_revision, upgrade

SEED = [
    "INSERT INTO metrics (id, key, name, description, kind, event, filter, window_start_hours,"
    " direction, cuped_days, created_at, updated_at)"
    " VALUES (1, 'conv', 'conv', '', 'binary', 'purchase', '{\"plan\": \"pro\"}', 0,"
    " 'increase', 0, '2026-01-01', '2026-01-02')",
    *(
        "INSERT INTO experiments (id, key, name, hypothesis, predicted_outcome, type, team,"
        " owner, tags, coverage, seed, hash_version, plan, status, created_by, created_at,"
        f" updated_at) VALUES ({i}, '{key}', '{key}', 'h', '', 'feature', '', 'owner-{key}',"
        f" '[]', 1.0, '{key}', 2, '{{}}', '{status}', '', '2026-01-01', '2026-01-01')"
        for i, key, status in ((1, "live", "running"), (2, "draft-one", "draft"))
    ),
    *(
        "INSERT INTO experiment_metrics (id, experiment_id, metric_key, role, position)"
        f" VALUES ({i}, {i}, 'conv', 'primary', 0)"
        for i in (1, 2)
    ),
    "INSERT INTO audit_log (entity, entity_key, action, actor, at, reason)"
    " VALUES ('experiment', 'live', 'create', 'maker', '2026-01-01', '')",
]


def test_backfill_and_downgrade(database_url: str) -> None:
    engine = make_engine(database_url)
    config = alembic_config(engine)
    command.upgrade(config, "0002")
    with engine.begin() as connection:
        for statement in SEED:
            connection.execute(text(statement))

    assert upgrade(engine) == head_revision()
    with engine.connect() as connection:
        versions = connection.execute(
            text("SELECT metric_key, version, definition FROM metric_versions")
        ).all()
        assert [(k, v) for k, v, _ in versions] == [("conv", 1)]
        definition = versions[0][2]
        if isinstance(definition, str):  # SQLite hands JSON back as text here
            definition = json.loads(definition)
        assert definition["event"] == "purchase"
        assert definition["filter"] == {"plan": "pro"}
        assert connection.execute(text("SELECT version FROM metrics")).scalar_one() == 1
        pins: dict[int, int | None] = dict(
            connection.execute(
                text("SELECT experiment_id, metric_version FROM experiment_metrics")
            ).all()
        )
        assert pins == {1: 1, 2: None}
        creators: dict[str, str] = dict(
            connection.execute(text("SELECT key, created_by FROM experiments")).all()
        )
        assert creators == {"live": "maker", "draft-one": "owner-draft-one"}

    command.downgrade(config, "0002")
    inspector = inspect(engine)
    assert "metric_versions" not in inspector.get_table_names()
    assert "version" not in {c["name"] for c in inspector.get_columns("metrics")}
    assert "fingerprint" not in {c["name"] for c in inspector.get_columns("reviews")}
    assert "via" not in {c["name"] for c in inspector.get_columns("audit_log")}
    engine.dispose()
