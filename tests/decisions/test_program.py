"""The program views' computations: the primary result read from a stored snapshot (verdict,
good-direction sign, SE from the interval), cost-benefit arithmetic and quadrants, the
hypothesis tracker's matches and Brier scores against direct sums, the impact totals against
``stats.shrinkage``, the URL filters, and the whole path over stored rows on SQLite and
PostgreSQL (experiments moved through their lifecycle, snapshots, a recommendation with a
business value, an applied decision, notes)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats

from splitlab.decisions.program import (
    RESULTS,
    ProgramFilters,
    ProgramItem,
    load_items,
    parse_filters,
    primary_result,
)
from splitlab.decisions.program_views import cost_benefit, impact, match, program_view, tracker
from splitlab.domain import ExperimentPatch, Principal, Role, Status
from splitlab.errors import ConflictError, ValidationError
from splitlab.services import Services
from splitlab.simulate import demo
from splitlab.stats.shrinkage import shrunk_total
from splitlab.store import experiments as repo
from splitlab.store.decisions import APPLIED, create_decision
from splitlab.store.recommendations import save_recommendation
from splitlab.store.snapshots import save_snapshot

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


def payload(
    rows: list[dict[str, Any]], *, direction: str = "increase", engine: str = "frequentist"
) -> dict[str, Any]:
    """A stored snapshot payload with only what the program views read."""
    definition = {"key": "m", "name": "Metric", "direction": direction}
    return {
        "engine": engine,
        "settings": {"alpha": 0.05, "metrics": [{"role": "primary", "definition": definition}]},
        "results": [{"metric": "m", "segment": None} | row for row in rows]
        + [{"metric": "m", "segment": {"name": "country"}, "variant": "treatment"}]
        + [{"metric": "other", "segment": None, "variant": "treatment", "rel_effect": 9.0}],
    }


def item(key: str, **fields: Any) -> ProgramItem:
    base: dict[str, Any] = {
        "key": key,
        "name": key,
        "team": "growth",
        "type": "feature",
        "status": "shipped",
        "hypothesis": "",
        "predicted_outcome": "",
        "predicted_probability": None,
        "costs": None,
        "started": NOW - timedelta(days=30),
        "stopped": NOW - timedelta(days=16),
        "decided": NOW - timedelta(days=10),
    }
    return ProgramItem(**(base | fields))


# ---------------------------------------------------------------- reading a snapshot


def test_primary_result_reads_the_overall_rows_of_the_primary_metric() -> None:
    result = primary_result(
        payload(
            [
                {
                    "variant": "a",
                    "rel_effect": 0.04,
                    "rel_ci_low": 0.01,
                    "rel_ci_high": 0.07,
                    "p_value": 0.004,
                    "p_value_adjusted": 0.008,
                },
                {"variant": "b", "rel_effect": float("nan"), "p_value": True},
            ]
        )
    )
    assert result.metric == "m" and result.alpha == 0.05 and not result.lower_is_better
    assert [a.variant for a in result.arms] == ["a", "b"]
    assert result.arms[0].p_value == 0.008  # the corrected p-value wins
    assert result.arms[1].rel_effect is None and result.arms[1].p_value is None


def _measured(rows: list[dict[str, Any]], **kwargs: Any) -> ProgramItem:
    from splitlab.decisions.program import _choose, _measure

    result = primary_result(payload(rows, **kwargs))
    one = item("x")
    arm = _choose(result, [None])
    assert arm is not None
    _measure(one, result, arm)
    return one


def test_verdicts_signs_and_standard_errors() -> None:
    z = scipy_stats.norm.ppf(0.975)
    won = _measured(
        [
            {
                "variant": "t",
                "rel_effect": 0.05,
                "rel_ci_low": 0.01,
                "rel_ci_high": 0.09,
                "p_value": 0.01,
            }
        ]
    )
    assert won.verdict == "won" and won.good_lift == 0.05
    assert won.se == pytest.approx(0.04 / z, rel=1e-12) and won.confidence == pytest.approx(0.99)
    # lower is better: a drop is a win, the interval flips
    faster = _measured(
        [
            {
                "variant": "t",
                "rel_effect": -0.05,
                "rel_ci_low": -0.09,
                "rel_ci_high": -0.01,
                "p_value": 0.01,
            }
        ],
        direction="decrease",
    )
    assert faster.verdict == "won" and faster.good_lift == 0.05
    assert (faster.good_low, faster.good_high) == (pytest.approx(0.01), pytest.approx(0.09))
    lost = _measured(
        [
            {
                "variant": "t",
                "rel_effect": -0.05,
                "rel_ci_low": -0.09,
                "rel_ci_high": -0.01,
                "p_value": 0.01,
            }
        ]
    )
    assert lost.verdict == "lost"
    flat = _measured(
        [
            {
                "variant": "t",
                "rel_effect": 0.02,
                "rel_ci_low": -0.01,
                "rel_ci_high": 0.05,
                "p_value": 0.2,
            }
        ]
    )
    assert flat.verdict == "inconclusive"
    # Bayesian: the credible interval decides, confidence is the chance to win
    bayes = _measured(
        [
            {
                "variant": "t",
                "rel_effect": 0.03,
                "credible_low": 0.005,
                "credible_high": 0.06,
                "chance_to_win": 0.993,
            }
        ],
        engine="bayesian",
    )
    assert bayes.verdict == "won" and bayes.confidence == 0.993
    # A/B/n without a decision: the smallest p-value
    best = _measured(
        [
            {"variant": "a", "rel_effect": 0.01, "p_value": 0.3},
            {"variant": "b", "rel_effect": 0.04, "p_value": 0.02},
        ]
    )
    assert best.variant == "b" and best.se is None


# ---------------------------------------------------------------- views on hand-built items


def test_cost_benefit_costs_quadrants_and_gaps() -> None:
    items = [
        item(
            "cheap-win",
            costs={"engineering": 1000, "run_per_day": 10, "currency": "USD"},
            good_lift=0.05,
            good_low=0.01,
            good_high=0.09,
            verdict="won",
            confidence=0.99,
        ),
        item("dear-win", costs={"engineering": 50_000}, good_lift=0.02, verdict="won"),
        item("cheap-miss", costs={"run_per_day": 5}, good_lift=-0.01, status="killed"),
        item("dear-miss", costs={"engineering": 90_000, "run_per_day": 100}, good_lift=0.0),
        item("no-costs", good_lift=0.1),
        item("no-lift", costs={"engineering": 5}),
    ]
    data = cost_benefit(items)
    points = {p["key"]: p for p in data["points"]}
    assert set(points) == {"cheap-win", "dear-win", "cheap-miss", "dear-miss"}
    assert points["cheap-win"]["run_cost"] == 140.0  # 10 a day × 14 days run
    assert points["cheap-win"]["cost"] == 1140.0
    assert points["dear-miss"]["cost"] == 91_400.0
    assert data["cost_split"] == pytest.approx(np.median([1140, 50_000, 70, 91_400]))
    assert {k: p["quadrant"] for k, p in points.items()} == {
        "cheap-win": "quick wins",
        "dear-win": "strategic bets",
        "cheap-miss": "cheap lessons",
        "dear-miss": "costly lessons",  # a lift of exactly zero is no benefit
    }
    assert data["missing_costs"] == ["no-costs"] and data["missing_benefit"] == ["no-lift"]
    assert data["currency"] == "USD" and data["total_cost"] == 1140 + 50_000 + 70 + 91_400
    valued = item(
        "v",
        costs={"engineering": 10},
        value={"per_day": 120.0, "ci_low": 20.0, "ci_high": 220.0, "currency": "USD"},
    )
    by_value = cost_benefit([valued, item("w", costs={"engineering": 1})], benefit="value")
    assert [p["benefit"] for p in by_value["points"]] == [120.0]
    assert by_value["missing_benefit"] == ["w"]


def test_tracker_matches_and_brier_scores() -> None:
    items = [
        item(
            "a", predicted_probability=0.8, verdict="won", decided=datetime(2026, 1, 5, tzinfo=UTC)
        ),
        item(
            "b",
            predicted_probability=0.7,
            verdict="inconclusive",
            decided=datetime(2026, 2, 5, tzinfo=UTC),
        ),
        item(
            "c", predicted_probability=0.2, verdict="lost", decided=datetime(2026, 4, 5, tzinfo=UTC)
        ),
        item(
            "d", predicted_probability=0.4, verdict="won", decided=datetime(2026, 5, 5, tzinfo=UTC)
        ),
        item("e", verdict="won", decided=datetime(2026, 5, 6, tzinfo=UTC)),
        item(
            "f",
            predicted_probability=0.9,
            verdict="no_result",
            decided=datetime(2026, 5, 7, tzinfo=UTC),
        ),
    ]
    assert [match(i) for i in items] == [
        "called",
        "surprise",
        "called",
        "surprise",
        "no_forecast",
        "no_result",
    ]
    data = tracker(items, period="quarter")
    assert [r["key"] for r in data["rows"]] == ["f", "e", "d", "c", "b", "a"]  # newest first
    cal = data["calibration"]
    direct = ((0.8 - 1) ** 2 + (0.7 - 0) ** 2 + (0.2 - 0) ** 2 + (0.4 - 1) ** 2) / 4
    assert cal["n"] == 4 and cal["brier"] == pytest.approx(direct, abs=1e-6)
    assert cal["base_rate"] == 0.5 and cal["skill"] == pytest.approx(1 - direct / 0.25, abs=1e-5)
    assert [(p["period"], p["n"]) for p in cal["over_time"]] == [("2026-Q1", 2), ("2026-Q2", 2)]
    assert cal["over_time"][0]["brier"] == pytest.approx((0.04 + 0.49) / 2)
    assert sum(b["n"] for b in cal["bins"]) == 4
    assert data["matches"] == {"called": 2, "surprise": 2, "coin_flip": 0, "no_forecast": 1}
    assert match(item("g", predicted_probability=0.5, verdict="won")) == "coin_flip"
    assert match(item("h", predicted_probability=0.5, verdict="lost")) == "coin_flip"
    assert match(item("i", predicted_probability=0.51, verdict="lost")) == "surprise"
    monthly = tracker(items, period="month")["calibration"]["over_time"]
    assert [p["period"] for p in monthly] == ["2026-01", "2026-02", "2026-04", "2026-05"]
    empty = tracker([item("g")])["calibration"]
    assert empty["n"] == 0 and empty["brier"] is None and empty["bins"] == []


def test_impact_shrinks_over_every_decided_experiment_and_sums_the_shipped() -> None:
    lifts = [0.08, 0.031, -0.012, 0.004, 0.15, -0.05, 0.02]
    ses = [0.02, 0.01, 0.015, 0.005, 0.06, 0.03, 0.01]
    shipped = [True, True, False, False, True, False, True]
    items = [
        item(
            f"e{i}",
            good_lift=y,
            se=s,
            status="shipped" if ship else "killed",
            decided=NOW - timedelta(days=70 - 10 * i),
        )
        for i, (y, s, ship) in enumerate(zip(lifts, ses, shipped, strict=True))
    ]
    items.append(item("unmeasured", status="rolling_out"))
    data = impact(items)
    total, shrunk = shrunk_total(np.array(lifts), np.array(ses), np.array(shipped))
    assert data["population"] == 7 and data["shrunk"]
    assert data["shrunk_total"]["value"] == pytest.approx(total.value, abs=1e-6)
    assert data["shrunk_total"]["se"] == pytest.approx(total.se, abs=1e-6)
    assert data["raw_total"]["value"] == pytest.approx(0.08 + 0.031 + 0.15 + 0.02)
    assert [c["key"] for c in data["changes"]] == ["e0", "e1", "e4", "e6"]
    assert data["changes"][-1]["cumulative_shrunk"] == pytest.approx(total.value, abs=1e-5)
    assert data["changes"][1]["cumulative_raw"] == pytest.approx(0.111)
    assert data["changes"][1]["cumulative_raw_se"] == pytest.approx(
        (0.02**2 + 0.01**2) ** 0.5, abs=1e-6
    )
    assert data["changes"][2]["shrunk_lift"] == pytest.approx(shrunk.estimates[4], abs=1e-6)
    assert data["unmeasured"] == ["unmeasured"]
    few = impact(items[:3])
    assert not few["shrunk"] and few["shrunk_total"]["value"] == few["raw_total"]["value"]


def test_filters_from_the_url() -> None:
    assert parse_filters({}) == ProgramFilters()
    chosen = parse_filters({"team": " web ", "range": "90d", "period": "month", "format": "json"})
    assert chosen.team == "web" and chosen.range == "90d" and chosen.period == "month"
    assert chosen.query() == "team=web&range=90d&period=month"
    with pytest.raises(ValidationError) as caught:
        parse_filters({"range": "2d", "benefit": "joy", "team": "x" * 101, "type": "a\x00b"})
    locs = [tuple(d["loc"]) for d in caught.value.details]
    assert locs == [("query", "team"), ("query", "type"), ("query", "range"), ("query", "benefit")]


# ---------------------------------------------------------------- over stored rows


def _seed(services: Services) -> None:
    """Five decided experiments and one still running, moved through their lifecycle by the
    demo's audited store functions, each given a stored snapshot."""
    now = datetime.now(UTC)
    base = demo.DemoExperiment("x", "global_positive", "growth", Status.SHIPPED, 60)
    specs = [
        ("p-ship", "growth", Status.SHIPPED, 120, 0.7, (20_000, 100), 0.06, 0.01),
        ("p-roll", "growth", Status.ROLLING_OUT, 50, 0.6, (5_000, 50), 0.03, 0.03),
        ("p-kill", "web", Status.KILLED, 90, 0.3, None, -0.04, 0.02),
        ("p-back", "web", Status.ROLLED_BACK, 70, None, (1_000, 10), 0.01, 0.6),
        ("p-flat", "web", Status.SHIPPED, 100, 0.2, (2_000, 20), 0.005, 0.7),
        ("p-run", "web", Status.RUNNING, 5, 0.5, (1, 1), 0.2, 0.001),
    ]
    for key, team, status, ago, chance, costs, lift, p in specs:
        entry = dataclasses.replace(
            base,
            key=key,
            team=team,
            status=status,
            started_days_ago=ago,
            predicted_probability=chance,
            costs=costs,
            notes=(f"learned from {key}",),
        )
        plan = demo._plan(entry, now)
        demo._until_data(services, plan)
        demo._after_data(services, plan)
        rows = [
            {
                "variant": "treatment",
                "rel_effect": lift,
                "rel_ci_low": lift - 0.02,
                "rel_ci_high": lift + 0.02,
                "p_value": p,
            }
        ]
        if key == "p-roll":  # two treatments: the applied decision names the one shipped
            rows.append(
                {
                    "variant": "other",
                    "rel_effect": 0.5,
                    "rel_ci_low": 0.4,
                    "rel_ci_high": 0.6,
                    "p_value": 1e-9,
                }
            )
        with services.sessions.begin() as session:
            snap = save_snapshot(
                session=session,
                key=key,
                settings_hash="h",
                watermark="w",
                payload=payload(rows),
                duration_ms=1.0,
            )
            if key == "p-roll":
                rec = save_recommendation(
                    session=session,
                    key=key,
                    snapshot_id=snap.id,
                    policy_hash="p",
                    code="SHIP_GLOBAL",
                    payload={
                        "variant": "other",
                        "value": [
                            {
                                "variant": "treatment",
                                "per_day": 300.0,
                                "ci_low": 100.0,
                                "ci_high": 500.0,
                                "currency": "USD",
                            }
                        ],
                    },
                )
                create_decision(
                    session=session,
                    key=key,
                    action="ship",
                    rationale="DE first",
                    actor="demo",
                    status=APPLIED,
                    override=True,
                    variant="treatment",
                    recommendation=rec,
                )


def test_program_views_over_stored_rows(services: Services) -> None:
    RESULTS.clear()
    _seed(services)
    now = datetime.now(UTC)
    items = {i.key: i for i in load_items(services=services, filters=ProgramFilters(), now=now)}
    assert set(items) == {"p-ship", "p-roll", "p-kill", "p-back", "p-flat"}  # not the running one
    roll = items["p-roll"]
    assert roll.variant == "treatment" and roll.good_lift == 0.03  # the decision's variant
    assert roll.decision is not None and roll.decision.rationale == "DE first"
    assert roll.value == {"per_day": 300.0, "ci_low": 100.0, "ci_high": 500.0, "currency": "USD"}
    assert roll.recommendation == "SHIP_GLOBAL"
    assert items["p-ship"].verdict == "won" and items["p-kill"].verdict == "lost"
    assert items["p-flat"].verdict == "inconclusive"
    assert items["p-ship"].costs == {"engineering": 20_000, "run_per_day": 100, "currency": "USD"}
    assert items["p-ship"].run_days == pytest.approx(14.0)
    assert items["p-ship"].decided is not None and items["p-ship"].started is not None
    assert [n.body for n in items["p-kill"].notes][-1] == "learned from p-kill"

    tracked = program_view(services=services, view="tracker", filters=ProgramFilters(), now=now)
    assert tracked["decided"] == 5 and tracked["calibration"]["n"] == 4
    by_key = {r["key"]: r for r in tracked["rows"]}
    assert by_key["p-back"]["match"] == "no_forecast"
    assert by_key["p-ship"]["match"] == "called" and by_key["p-kill"]["match"] == "called"
    web = program_view(
        services=services, view="impact", filters=ProgramFilters(team="web"), now=now
    )
    assert web["population"] == 3 and [c["key"] for c in web["changes"]] == ["p-flat"]
    recent = load_items(services=services, filters=ProgramFilters(range="90d"), now=now)
    assert "p-ship" not in {i.key for i in recent}  # decided about 100 days ago
    valued = program_view(
        services=services, view="cost-benefit", filters=ProgramFilters(benefit="value"), now=now
    )
    assert [p["key"] for p in valued["points"]] == ["p-roll"]
    assert valued["missing_costs"] == ["p-kill"]
    with pytest.raises(ValidationError):
        program_view(services=services, view="velocity", filters=ProgramFilters(), now=now)
    # a newer snapshot is a new id: read at once, never hidden by the cached result
    newer = [
        {
            "variant": "treatment",
            "rel_effect": 0.05,
            "rel_ci_low": 0.02,
            "rel_ci_high": 0.08,
            "p_value": 0.001,
        }
    ]
    with services.sessions.begin() as session:
        save_snapshot(
            session=session,
            key="p-flat",
            settings_hash="h2",
            watermark="w2",
            payload=payload(newer) | {"daily": [{"day": "2026-01-01"}]},
            duration_ms=1.0,
        )
    again = {i.key: i for i in load_items(services=services, filters=ProgramFilters(), now=now)}
    assert again["p-flat"].verdict == "won" and again["p-flat"].good_lift == 0.05


def test_costs_and_probability_are_part_of_the_spec(services: Services) -> None:
    actor = Principal(username="demo", role=Role.ADMIN)
    base = demo.DemoExperiment("p-spec", "global_positive", "growth", Status.DRAFT, -3)
    plan = demo._plan(base, datetime.now(UTC))
    demo._until_data(services, plan)
    with services.sessions.begin() as session:
        row = repo.update_experiment(
            session=session,
            key="p-spec",
            actor=actor,
            patch=ExperimentPatch.model_validate(
                {"predicted_probability": 0.35, "costs": {"engineering": 1200.5}}
            ),
        )
        data = repo.experiment_to_dict(row)
    assert data["predicted_probability"] == 0.35
    assert data["costs"] == {"engineering": 1200.5, "run_per_day": None, "currency": ""}
    # costs are bookkeeping: recorded in any state, even after the decision; nothing else is
    shipped = demo.DemoExperiment("p-done", "global_positive", "growth", Status.SHIPPED, 40)
    done = demo._plan(shipped, datetime.now(UTC))
    demo._until_data(services, done)
    demo._after_data(services, done)
    late = {"costs": {"engineering": 42_000.0, "run_per_day": 75.0, "currency": "EUR"}}
    with services.sessions.begin() as session:
        row = repo.update_experiment(
            session=session, key="p-done", actor=actor, patch=ExperimentPatch.model_validate(late)
        )
        assert repo.experiment_to_dict(row)["costs"] == late["costs"] and row.status == "shipped"
    for refused in ({"name": "renamed"}, late | {"predicted_probability": 0.9}):
        with pytest.raises(ConflictError), services.sessions.begin() as session:
            repo.update_experiment(
                session=session,
                key="p-done",
                actor=actor,
                patch=ExperimentPatch.model_validate(refused),
            )
    for bad in (
        {"predicted_probability": 1.5},
        {"costs": {"engineering": -1}},
        {"costs": {"run_per_day": 1, "tip": 2}},
    ):
        with pytest.raises(Exception) as caught:
            ExperimentPatch.model_validate(bad)
        assert "validation error" in str(caught.value)
