"""Acceptance by scenario (issue #14), end to end: each shipped scenario simulated at its own
size into a running experiment, analysed, and decided by ``recommend_experiment`` under the
built-in policy.  The table marks only the canary as running: the others are decided once
stopped (their 14 days are over), and — as a check of the running rules — while running too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from splitlab.analysis import analyze
from splitlab.decisions.recommendation import Code, Recommendation
from splitlab.decisions.service import latest_recommendations, recommend_experiment
from splitlab.domain import Status
from splitlab.services import Services
from splitlab.simulate import generate
from splitlab.simulate.run import SIMULATOR, ensure_running_experiment, import_simulated
from splitlab.store import experiments as repo
from splitlab.store.audit import list_audit
from tests.simulate.conftest import START, open_services

EXPECTED = {
    "aa_null": Code.HOLD_INCONCLUSIVE,
    "global_positive": Code.SHIP_GLOBAL,
    "guardrail_harm": Code.HOLD_GUARDRAIL_RISK,
    "segment_only_win": Code.SHIP_TARGETED_SEGMENTS,
    "srm_invalid": Code.INVESTIGATE_INVALID_EXPERIMENT,
    "low_power_noisy": Code.PENDING_UNDERPOWERED,
    "latency_regression": Code.HOLD_GUARDRAIL_RISK,
    "multivariant": Code.SHIP_GLOBAL,
    "canary_regression": Code.ROLLBACK,
}
STILL_RUNNING = {"canary_regression"}
WHILE_RUNNING = EXPECTED | {
    # a confirmed guardrail breach of a running experiment is rolled back (policy default)
    "guardrail_harm": Code.ROLLBACK,
    "latency_regression": Code.ROLLBACK,
}


@pytest.fixture(scope="module")
def decided(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Services, dict[str, Recommendation], dict[str, Recommendation]]]:
    """Every scenario of the table at its own size: decided while running, then (but the
    canary) stopped and decided again."""
    services = open_services(Path(tmp_path_factory.mktemp("decisions")))
    runs = [generate(name, start=START) for name in EXPECTED]
    for data in runs:
        ensure_running_experiment(services, data)
    import_simulated(services, runs)
    running = {name: recommend_experiment(services=services, key=name) for name in EXPECTED}
    with services.sessions.begin() as session:
        for name in EXPECTED.keys() - STILL_RUNNING:
            repo.transition(
                session=session, key=name, to=Status.STOPPED, actor=SIMULATOR, reason="14 days"
            )
    final = {name: recommend_experiment(services=services, key=name) for name in EXPECTED}
    yield services, running, final
    services.close()


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_scenario_gets_its_recommendation(
    decided: tuple[Services, dict[str, Recommendation], dict[str, Recommendation]], name: str
) -> None:
    _, running, final = decided
    assert final[name].code is EXPECTED[name], final[name].summary
    assert running[name].code is WHILE_RUNNING[name], running[name].summary


def test_the_recommendations_name_the_right_variant_and_segment(
    decided: tuple[Services, dict[str, Recommendation], dict[str, Recommendation]],
) -> None:
    _, _, final = decided
    assert final["global_positive"].variant == "treatment"
    assert final["global_positive"].label == "SHIP"
    segment = final["segment_only_win"]
    assert segment.segments == [{"name": "country", "value": "DE"}]
    assert "country=DE" in segment.summary
    multivariant = final["multivariant"]
    assert multivariant.variant == "treatment_a"
    reported = [r for r in multivariant.reasons if r.variant == "treatment_b"]
    assert {r.code for r in reported} >= {"arm_also_wins"}
    assert multivariant.evidence["others"] == ["treatment_b"]
    assert final["canary_regression"].variant == "canary"
    assert final["latency_regression"].label == "PENDING (LATENCY REGRESSION)"
    assert final["latency_regression"].variant == "edge_v2"
    assert final["low_power_noisy"].label == "PENDING (UNDERPOWERED)"
    assert final["low_power_noisy"].evidence["days_remaining"] > 7
    assert final["srm_invalid"].reasons[0].code == "srm_critical"
    assert final["aa_null"].label == "DO NOT SHIP"


def test_changes_are_stored_and_audited_and_repeats_are_cached(
    decided: tuple[Services, dict[str, Recommendation], dict[str, Recommendation]],
) -> None:
    services, running, final = decided
    with services.sessions() as session:
        entries = list_audit(session=session, entity="experiment", entity_key="guardrail_harm")
    changes = [e for e in entries if e.action == "recommendation"]
    assert [e.reason.split(":")[0] for e in changes] == [
        "ROLLBACK → HOLD_GUARDRAIL_RISK",
        "none → ROLLBACK",
    ]
    assert changes[0].changes is not None
    assert changes[0].changes["code"] == {"from": "ROLLBACK", "to": "HOLD_GUARDRAIL_RISK"}
    with services.sessions() as session:
        unchanged = list_audit(session=session, entity="experiment", entity_key="aa_null")
    assert [e.action for e in unchanged].count("recommendation") == 1  # same code twice
    again = recommend_experiment(services=services, key="aa_null")
    assert again == final["aa_null"]
    stored = latest_recommendations(services=services)
    assert {k: v.code for k, v in stored.items()} == {k: v.code for k, v in final.items()}
    assert latest_recommendations(services=services, keys=["aa_null", "nope"]).keys() == {"aa_null"}
    assert latest_recommendations(services=services, keys=[]) == {}
    # a new snapshot (refresh) re-runs the engine on it; same code, no new audit entry
    snapshot = analyze(services=services, key="aa_null", refresh=True)
    fresh = recommend_experiment(services=services, key="aa_null")
    assert fresh.snapshot_id == snapshot.snapshot_id != final["aa_null"].snapshot_id
    assert latest_recommendations(services=services, keys=["aa_null"])["aa_null"] == fresh
    with services.sessions() as session:
        after = list_audit(session=session, entity="experiment", entity_key="aa_null")
    assert [e.action for e in after].count("recommendation") == 1
    del running
