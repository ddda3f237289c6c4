"""The demo organisation: every state, type and team; seeding is idempotent and back-dated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from splitlab.domain import ExperimentType, Status
from splitlab.simulate.demo import DEMO, EXPERIMENTS, REVIEWERS, seed_demo
from splitlab.store.audit import list_audit
from splitlab.store.experiments import get_experiment, list_reviews

from .conftest import open_services

TYPES = {"feature", "model_comparison", "prompt", "infrastructure", "cost_optimization"}


def test_the_demo_covers_every_state_type_and_four_teams() -> None:
    assert 18 <= len(EXPERIMENTS) <= 22
    assert {e.status for e in EXPERIMENTS} == set(Status)
    assert {e.team for e in EXPERIMENTS} == {"growth", "web", "ml-platform", "platform"}
    from splitlab.simulate import load_scenario

    types = {e.type or load_scenario(e.scenario).experiment["type"] for e in EXPERIMENTS}
    assert types == TYPES and {t.value for t in ExperimentType} >= TYPES
    assert len({e.key for e in EXPERIMENTS}) == len(EXPERIMENTS)


def test_seeding_is_idempotent_audited_and_back_dated(tmp_path: Path) -> None:
    chosen = [
        e
        for e in EXPERIMENTS
        if e.key
        in {"green-buy-button", "rich-product-pages", "summary-prompt-v2", "search-autocomplete"}
    ]
    services = open_services(tmp_path / "home")
    try:
        now = datetime.now(UTC)
        first = seed_demo(services, analyze=False, experiments=chosen)
        assert sorted(first.created) == sorted(e.key for e in chosen)
        assert first.events > 0 and first.exposures > 0
        watermark = services.warehouse.watermark()
        with services.sessions() as session:
            entries = {
                e.key: list_audit(session=session, entity="experiment", entity_key=e.key)
                for e in chosen
            }
        second = seed_demo(services, analyze=False, experiments=chosen)
        assert second.created == [] and sorted(second.existing) == sorted(first.created)
        assert services.warehouse.watermark().cache_key() == watermark.cache_key()
        with services.sessions() as session:
            for e in chosen:
                again = list_audit(session=session, entity="experiment", entity_key=e.key)
                assert [a.id for a in again] == [a.id for a in entries[e.key]]
                row = get_experiment(session=session, key=e.key)
                assert row.status == e.status.value
                assert row.created_by == DEMO.username
                for request in list_reviews(session=session, key=e.key):
                    for review in request["reviews"]:
                        assert review["reviewer"] in REVIEWERS
                        assert review["reviewer"] not in (row.created_by, row.owner)
            killed = list_audit(
                session=session, entity="experiment", entity_key="rich-product-pages"
            )
        actors = {a.actor for a in killed}
        assert DEMO.username in actors and actors & set(REVIEWERS)
        summaries = [(a.action, a.to_status) for a in reversed(killed)]
        assert ("review_request_changes", "draft") in summaries
        assert summaries[-1] == ("transition", "killed")
        moments = [a.at.replace(tzinfo=UTC) for a in reversed(killed)]
        assert moments == sorted(moments)
        assert now - timedelta(days=190) < moments[0] < now - timedelta(days=30)
    finally:
        services.close()
