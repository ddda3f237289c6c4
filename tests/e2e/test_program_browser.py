"""The program views in real Chromium over the demo organisation: the hypothesis tracker
draws its reliability diagram and Brier chart from the bundled plotly.js, lists every decided
experiment with its prediction badge and learnings, keeps its filters in the URL across a
reload, works from the keyboard and fits a 375 px phone; the impact, cost-benefit and
velocity views draw their charts too.

Screenshots go to the test's tmp directory and to ``/tmp/screens/program-*.png``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.browser


def shoot(page: object, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot in the test's directory, copied to /tmp/screens."""
    return screenshot(page, tmp_path, f"program-{name}")


def _plotted(page: object, selector: str) -> int:
    """How many data traces Plotly drew in the chart ``selector``."""
    return int(
        page.evaluate(  # type: ignore[attr-defined]
            f"() => {{ const n = document.querySelector({selector!r}); "
            "return n && n.data ? n.data.length : 0; }"
        )
    )


def test_the_tracker_reads_predictions_against_outcomes(
    demo_server: str, browser: object, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlparse(request.url).hostname or ""))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{demo_server}/program/tracker")
    page.wait_for_function("() => window.Plotly && document.querySelector('.js-plotly-plot')")
    assert _plotted(page, "[data-figure=reliability]") == 2  # the diagonal and the forecasts
    assert _plotted(page, "[data-figure=brier]") == 1
    rows = page.locator("table.tracker tbody tr")
    data = httpx.get(f"{demo_server}/api/program/tracker").json()
    assert rows.count() == len(data["rows"]) == data["decided"] >= 6
    first = data["rows"][0]
    assert first["name"] in rows.nth(0).inner_text()
    badges = page.locator("table.tracker .badge").all_inner_texts()
    assert sum("called" in b for b in badges) == data["matches"]["called"] >= 1
    assert sum("surprise" in b for b in badges) == data["matches"]["surprise"]
    assert sum("no call" in b for b in badges) == data["matches"]["coin_flip"]
    brier = page.locator(".kpis div", has_text="Brier score").inner_text()
    assert f"{data['calibration']['brier']:.3f}" in brier
    # learnings open on demand
    details = page.locator("table.tracker details").first
    details.locator("summary").click()
    assert details.locator("li").first.is_visible()
    shoot(page, tmp_path, "tracker")

    # a filter lands in the URL (defaults left out) and survives a reload
    page.select_option("select[name=team]", "web")
    page.select_option("select[name=period]", "month")
    page.click("#program-filters button[type=submit]")
    page.wait_for_load_state()
    query = parse_qs(urlparse(page.url).query)
    assert query == {"team": ["web"], "period": ["month"]}
    page.reload()
    assert page.locator("select[name=team]").input_value() == "web"
    web_rows = page.locator("table.tracker tbody tr").all_inner_texts()
    assert web_rows and all("web ·" in row for row in web_rows)
    assert "month" in page.locator("#cal-h + dl + p + .chart-pair figcaption").last.inner_text()
    shoot(page, tmp_path, "tracker-web")
    assert hosts == {"127.0.0.1"}, hosts  # plotly.js from our own server, nothing else
    assert not errors, errors


def test_the_tracker_by_keyboard_and_on_a_phone(
    demo_server: str, browser: object, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 800})  # type: ignore[attr-defined]
    page.goto(f"{demo_server}/program/tracker")
    page.wait_for_function("() => window.Plotly && document.querySelector('.js-plotly-plot')")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways: {width}px"
    shoot(page, tmp_path, "tracker-phone")
    # keyboard: the skip link first, then the navigation; the filters reachable with Tab
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    seen = []
    for _ in range(30):
        page.keyboard.press("Tab")
        name = page.evaluate("() => document.activeElement.getAttribute('name')")
        seen.append(name)
        if name == "team":
            break
    assert "team" in seen
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


@pytest.mark.parametrize(
    ("view", "figures"),
    [
        ("impact", ["cumulative", "forest"]),
        ("cost-benefit", ["cost_benefit"]),
        ("velocity", ["win_rate", "launches"]),
    ],
)
def test_the_other_views_draw(
    demo_server: str, browser: object, tmp_path: Path, view: str, figures: list[str]
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{demo_server}/program/{view}")
    page.wait_for_function("() => window.Plotly && document.querySelector('.js-plotly-plot')")
    for name in figures:
        assert _plotted(page, f"[data-figure={name}]") >= 1, name
    assert page.locator("nav.tabs a[aria-current=page]").inner_text()
    shoot(page, tmp_path, view)
    assert not errors, errors
