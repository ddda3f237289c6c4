"""The experiment page's days-since-exposure (novelty) view: on the demo's feed redesign (a
lift that fades) the chart's data and its reading are the snapshot's own, the JSON twin and
the results API carry them, and pages without them say why instead of failing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from splitlab.analysis.novelty import exposure_day_view
from splitlab.analysis.service import latest
from splitlab.analysis.snapshot import ExposureDayPoint, ExposureDayTrend, Snapshot
from splitlab.domain import Engine
from splitlab.services import Services
from splitlab.web import experiment_novelty as nov
from tests.web.demo_helpers import open_demo

KEYS = (
    "feed-redesign",  # running; its clicks lift fades with time since exposure
    "edge-config-v2",  # rolled back; ratio metrics only
    "search-autocomplete",  # in review: no analysis
)
STORED = Path(__file__).parents[1] / "analysis" / "data" / "snapshot_v3_frequentist.json"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = open_demo(tmp_path_factory.mktemp("novelty"), KEYS)
    yield services
    services.close()


def _viewed(services: Services, key: str) -> Snapshot:
    """The latest snapshot with its days-since-exposure view (computed on demand)."""
    snapshot = latest(services=services, key=key)
    assert "exposure_days" not in snapshot.to_json()  # not in the analysis's pass
    return exposure_day_view(services=services, snapshot=snapshot)


def _page_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="experiment-data">(.*?)</script>', html)
    assert match, "no chart data on the page"
    return dict(json.loads(match.group(1)))


def test_the_feed_redesign_shows_its_lift_fading(ada: TestClient, demo: Services) -> None:
    response = ada.get("/experiments/feed-redesign")
    assert response.status_code == 200
    html = response.text
    assert 'id="chart-novelty"' in html and "Days since exposure" in html
    assert "/assets/plotly.min.js" in html and "cdn" not in html.lower()
    snapshot = _viewed(demo, "feed-redesign")
    (trend,) = snapshot.exposure_day_trends
    assert trend.shape == "fading"
    # the reading: first and last day with their intervals, and the trend's verdict
    points = [p for p in snapshot.exposure_days if p.metric == "nv-clicks"]
    first, last = points[0], points[-1]
    sentence = nov.reading("treatment", points, trend)
    assert sentence.startswith("The effect of treatment on day 0 after exposure is ")
    quoted = [p for p in points if nov._width(p) <= nov.QUOTED_WIDTH * nov._width(first)][-1]
    assert last.days_since_exposure >= quoted.days_since_exposure > 0
    assert f"by day {quoted.days_since_exposure} " in sentence
    assert "a novelty effect" in sentence and f"{first.rel_effect * 100:+.1f}%" in sentence
    assert sentence in unescape(html)
    # the chart draws the snapshot's points, unchanged
    (metric,) = _page_data(html)["novelty"]["metrics"]
    (series,) = metric["series"]
    assert metric["metric"] == "nv-clicks" and series["variant"] == "treatment"
    assert series["days"] == [p.days_since_exposure for p in points]
    assert series["rel"] == [p.rel_effect for p in points]
    assert series["low"] == [p.rel_ci_low for p in points]
    assert series["high"] == [p.rel_ci_high for p in points]
    assert series["days"][0] == 0 and series["rel"][0] > series["rel"][-1]


def test_json_twin_and_results_api_carry_the_points(ada: TestClient, demo: Services) -> None:
    twin = ada.get("/experiments/feed-redesign", params={"format": "json"}).json()
    view = twin["exposure_days"]
    assert view["note"] == "" and view["metrics"][0]["readings"][0]["shape"] == "fading"
    snapshot = _viewed(demo, "feed-redesign")
    assert view["metrics"][0]["series"][0]["rel"] == [p.rel_effect for p in snapshot.exposure_days]
    with_daily = ada.get("/api/experiments/feed-redesign/results", params={"daily": "true"})
    assert with_daily.status_code == 200
    data = with_daily.json()
    assert data["exposure_days"] == [p.to_json() for p in snapshot.exposure_days]
    assert data["exposure_day_trends"][0]["shape"] == "fading"
    plain = ada.get("/api/experiments/feed-redesign/results").json()
    assert "exposure_days" not in plain and "exposure_day_trends" not in plain


def test_ratio_metrics_only_explain_themselves(ada: TestClient) -> None:
    response = ada.get("/experiments/edge-config-v2")
    assert response.status_code == 200
    assert 'id="chart-novelty"' not in response.text
    assert "covers binary, count and sum metrics" in response.text
    twin = ada.get("/experiments/edge-config-v2", params={"format": "json"}).json()
    assert twin["exposure_days"]["metrics"] == []


def test_an_experiment_without_analysis_has_no_view(ada: TestClient) -> None:
    response = ada.get("/experiments/search-autocomplete")
    assert response.status_code == 200
    assert "chart-novelty" not in response.text and "No analysis yet" in response.text


def test_a_snapshot_of_changed_settings_says_the_view_comes_with_the_next_analysis() -> None:
    stored = Snapshot.from_json(json.loads(STORED.read_text()))
    view = nov.novelty_view(stored)  # no view was computed beside it
    assert view["metrics"] == [] and "next analysis" in view["note"]
    ran = stored.model_copy(update={"timings_ms": {**stored.timings_ms, "exposure_days": 1.0}})
    assert "No unit has a complete day" in nov.novelty_view(ran)["note"]


def _point(day: int, rel: float | None, low: float | None, high: float | None) -> ExposureDayPoint:
    none: dict[str, Any] = dict.fromkeys(
        ("control_mean", "treatment_mean", "abs_effect", "abs_ci_low", "abs_ci_high"), None
    )
    return ExposureDayPoint(
        metric="m",
        variant="b",
        days_since_exposure=day,
        engine=Engine.FREQUENTIST,
        control_n=100.0,
        treatment_n=100.0,
        rel_effect=rel,
        rel_ci_low=low,
        rel_ci_high=high,
        statistic=None,
        p_value=None,
        df=None,
        reason="",
        **none,
    )


def test_readings_in_words() -> None:
    points = [_point(0, 0.061, 0.02, 0.10), _point(13, 0.012, -0.03, 0.054)]

    def trend(shape: str, slope: float | None, p: float | None) -> ExposureDayTrend:
        return ExposureDayTrend(
            metric="m", variant="b", slope=slope, p_value=p, days=14, shape=shape
        )

    fading = nov.reading("b", points, trend("fading", -0.004, 0.0002))
    assert fading == (
        "The effect of b on day 0 after exposure is +6.1% [+2.0%, +10.0%], by day 13 +1.2% "
        "[-3.0%, +5.4%]: it fades with time since exposure (-0.40% per day, p < 0.001) — a "
        "novelty effect: the lasting effect is likely smaller than the overall estimate."
    )
    growing = nov.reading("b", points[::-1], trend("growing", 0.004, 0.0002))
    assert growing.startswith("The effect of b on day 13 after exposure is +1.2%")
    assert "it grows with time since exposure (+0.40% per day, p < 0.001) — users" in growing
    steady = nov.reading("b", points, trend("steady", -0.004, 0.2))
    assert steady.endswith(
        ": no clear trend with time since exposure (-0.40% per day, p = 0.200; the novelty "
        "check needs p < 0.001): steady."
    )
    # the latest day quoted is at most twice as uncertain as the first
    thin = [*points, _point(14, -0.5, -0.9, -0.1)]
    assert "by day 13 +1.2%" in nov.reading("b", thin, trend("steady", -0.004, 0.2))
    few = nov.reading("b", points[:1], trend("too_few_days", None, None))
    assert few == (
        "The effect of b on day 0 after exposure is +6.1% [+2.0%, +10.0%]: too few days since "
        "exposure yet to judge a trend."
    )
    assert nov.reading("b", [_point(0, None, None, None)], None).startswith("No relative")
