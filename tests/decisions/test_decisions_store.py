"""The decision store functions on both backends: policies (audited), recommendation history
and the bulk reads the fleet view and the engine use."""

from __future__ import annotations

import json

from splitlab.domain import Principal, Role
from splitlab.services import Services
from splitlab.store.audit import list_audit
from splitlab.store.policies import get_policies, list_policies, put_policy
from splitlab.store.recommendations import (
    latest_recommendation,
    latest_recommendations,
    latest_snapshot_texts,
    recommendation_history,
    save_recommendation,
    update_recommendation,
)
from splitlab.store.snapshots import save_snapshot

ADMIN = Principal(username="alice", role=Role.ADMIN)


def test_policies_are_versioned_audited_and_read_in_bulk(services: Services) -> None:
    with services.sessions.begin() as session:
        put_policy(session=session, name="default", document={"a": 1}, actor=ADMIN)
        put_policy(session=session, name="team-web", document={"b": 2}, actor=ADMIN)
        row = put_policy(session=session, name="default", document={"a": 3}, actor=ADMIN)
        assert row.version == 2
    with services.sessions() as session:
        assert get_policies(session=session, names=["default", "team-web", "nope"]) == {
            "default": {"a": 3},
            "team-web": {"b": 2},
        }
        assert get_policies(session=session, names=[]) == {}
        assert [p.name for p in list_policies(session=session)] == ["default", "team-web"]
        audit = list_audit(session=session, entity="policy", entity_key="default")
    assert [(a.action, a.actor) for a in audit] == [("update", "alice"), ("create", "alice")]


def test_recommendations_keep_their_history_and_bulk_reads_take_the_newest(
    services: Services,
) -> None:
    with services.sessions.begin() as session:
        for key, code in (("a", "KEEP_RUNNING"), ("b", "KILL"), ("a", "SHIP_GLOBAL")):
            save_recommendation(
                session=session, key=key, snapshot_id=1, policy_hash="h", code=code, payload={}
            )
    with services.sessions.begin() as session:
        newest = latest_recommendation(session=session, key="a")
        assert newest is not None and newest.code == "SHIP_GLOBAL"
        update_recommendation(
            session=session, row_id=newest.id, snapshot_id=7, policy_hash="g", payload={"x": 1}
        )
    with services.sessions() as session:
        rows = latest_recommendations(session=session)
        assert {k: (r.code, r.snapshot_id) for k, r in rows.items()} == {
            "a": ("SHIP_GLOBAL", 7),
            "b": ("KILL", 1),
        }
        assert latest_recommendations(session=session, keys=["b", "zz"]).keys() == {"b"}
        assert [r.code for r in recommendation_history(session=session, key="a")] == [
            "SHIP_GLOBAL",
            "KEEP_RUNNING",
        ]
        assert rows["a"].payload == {"x": 1}


def test_snapshot_texts_drop_the_daily_series_and_keep_every_digit(services: Services) -> None:
    exact = [0.1 + 0.2, 1e-300, 3.0000000000000004, 123456789.12345679, -0.0, 1e308]
    payload = {
        "results": exact,
        "daily": [{"day": "2024-05-01"}],
        "exposure_days": [{"days_since_exposure": 0}],
        "exposure_day_trends": [{"shape": "steady"}],
        "nested": {"daily": 1},
    }
    with services.sessions.begin() as session:
        save_snapshot(session=session, key="e", settings_hash="h", watermark="w", payload={},
                      duration_ms=1)  # fmt: skip
        newest = save_snapshot(
            session=session, key="e", settings_hash="h", watermark="w", payload=payload,
            duration_ms=1,
        )  # fmt: skip
        newest_id = newest.id
    with services.sessions() as session:
        texts = latest_snapshot_texts(session=session, keys=["e", "missing"])
        assert latest_snapshot_texts(session=session, keys=[]) == {}
    assert texts.keys() == {"e"}
    row_id, text = texts["e"]
    assert row_id == newest_id
    document = json.loads(text)
    assert document.keys() == {"results", "nested"} and document["nested"] == {"daily": 1}
    # as floats, every value is the one stored (PostgreSQL's jsonb may write 1e308 in digits)
    assert [float(x) for x in document["results"]] == exact
