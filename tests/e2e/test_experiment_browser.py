"""In Chromium, on the demo organisation: the experiment page draws its charts, hides passed
health checks on request, asks before acting (a note through its confirmation dialog), shows a
viewer no actions, and its variant page draws warehouse-binned histograms.  Screenshots go to
the test's tmp directory and to /tmp/screens/experiment-*.png for a person to look at."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import splitlab

pytestmark = pytest.mark.browser
SCREENS = Path("/tmp/screens")
KEY = "checkout-redesign-abc"


@pytest.fixture
def demo_env(server_env: dict[str, str]) -> dict[str, str]:
    """The demo organisation and two users, before the server starts."""
    splitlab(server_env, "demo")
    for name, role in (("ada", "admin"), ("vic", "viewer")):
        splitlab(server_env, "users", "create", name, "--role", role, "--password", "pass-word-1")
    return server_env


def shot(page: object, tmp_path: Path, name: str, **options: object) -> Path:
    path = tmp_path / f"experiment-{name}.png"
    page.screenshot(path=str(path), **options)  # type: ignore[attr-defined]
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENS / path.name)
    return path


def log_in(browser: object, server: str, username: str, **context: object) -> object:
    page = browser.new_context(**context).new_page()  # type: ignore[attr-defined]
    page.goto(server + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pass-word-1")
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")
    return page


def test_experiment_page_in_chromium(
    demo_env: dict[str, str], server: str, browser: object, tmp_path: Path
) -> None:
    errors: list[str] = []
    page = log_in(browser, server, "ada", viewport={"width": 1280, "height": 900})
    page.on("pageerror", lambda error: errors.append(str(error)))  # type: ignore[attr-defined]
    page.goto(f"{server}/experiments/{KEY}")  # type: ignore[attr-defined]
    # the charts are drawn by Plotly from the page's own data
    for chart in ("#chart-effect", "#chart-p", "#chart-exposures", "#chart-power"):
        page.wait_for_selector(f"{chart} .main-svg", timeout=15_000)  # type: ignore[attr-defined]
    results = page.locator("table.results")  # type: ignore[attr-defined]
    assert results.locator("tr.result").count() == 8
    assert results.locator(".axis .tick").count() >= 3
    assert page.locator(".reco").count() == 1  # type: ignore[attr-defined]
    shot(page, tmp_path, "page", full_page=True)
    shot(page.locator("#results"), tmp_path, "results")  # type: ignore[attr-defined]

    # hide passed checks: the passed ones disappear, the choice is kept in the URL
    passed = page.locator("#health .check.passed")  # type: ignore[attr-defined]
    total = passed.count()
    assert total > 0 and passed.first.is_visible()
    page.check("#hide-passed")  # type: ignore[attr-defined]
    assert all(not passed.nth(i).is_visible() for i in range(total))
    assert "hide_passed=1" in page.url  # type: ignore[attr-defined]
    shot(page.locator("#health"), tmp_path, "health-hidden")  # type: ignore[attr-defined]
    page.uncheck("#hide-passed")  # type: ignore[attr-defined]
    assert passed.first.is_visible()

    # an action asks first: the note's dialog, cancelled, then confirmed
    page.click("button[data-dialog=dialog-note]")  # type: ignore[attr-defined]
    dialog = page.locator("#dialog-note")  # type: ignore[attr-defined]
    assert dialog.is_visible()
    page.click("#dialog-note [data-close]")  # type: ignore[attr-defined]
    assert not dialog.is_visible()
    page.click("button[data-dialog=dialog-note]")  # type: ignore[attr-defined]
    note = "Browser check: both redesigns still ahead on day 10."
    dialog.locator("textarea[name=reason]").fill(note)
    shot(page, tmp_path, "dialog")
    dialog.locator("button[type=submit]").click()
    page.wait_for_url(f"{server}/experiments/{KEY}?done=note")  # type: ignore[attr-defined]
    timeline = page.locator("#timeline").inner_text()  # type: ignore[attr-defined]
    assert note in timeline
    assert page.locator(".flash").inner_text() == "Done: note."  # type: ignore[attr-defined]

    # the variant page: histograms binned in the warehouse, units over time, balance
    page.goto(f"{server}/experiments/{KEY}/variants/treatment_a")  # type: ignore[attr-defined]
    page.wait_for_selector("#hist-0 .main-svg", timeout=15_000)  # type: ignore[attr-defined]
    page.wait_for_selector("#chart-units .main-svg")  # type: ignore[attr-defined]
    assert page.locator("table.balance tbody tr").count() == 3  # type: ignore[attr-defined]
    shot(page, tmp_path, "variant", full_page=True)
    assert errors == []

    # a phone-sized screen: the page still reads
    phone = log_in(browser, server, "ada", viewport={"width": 375, "height": 800})
    phone.goto(f"{server}/experiments/{KEY}")  # type: ignore[attr-defined]
    phone.wait_for_selector("#chart-effect .main-svg", timeout=15_000)  # type: ignore[attr-defined]
    shot(phone, tmp_path, "phone", full_page=True)

    # a viewer sees no action at all
    viewer = log_in(browser, server, "vic")
    viewer.goto(f"{server}/experiments/{KEY}")  # type: ignore[attr-defined]
    assert viewer.locator("button[data-dialog]").count() == 0  # type: ignore[attr-defined]
    assert viewer.locator("dialog").count() == 0  # type: ignore[attr-defined]


def test_crossed_breakdown_and_traffic_split_in_chromium(
    demo_server: str, browser: object, tmp_path: Path
) -> None:
    """An exploratory breakdown by two attributes draws its grid (rows country, columns device)
    with its heterogeneity sentence; the traffic dialog keeps a running total and refuses to
    submit shares that do not sum to 100."""
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{demo_server}/experiments/{KEY}?breakdown=country,device#segments")
    box = page.locator(".exploratory")
    assert "Exploratory" in box.inner_text() and "country × device" in box.inner_text()
    grid = box.locator("table.crossgrid")
    assert grid.locator("thead th").count() >= 3  # the corner and at least two devices
    assert grid.locator("tbody tr").count() >= 2
    assert "Heterogeneity across the" in box.locator("figcaption").first.inner_text()
    path = tmp_path / "experiment-crossed-breakdown.png"
    page.locator("#segments").screenshot(path=str(path))
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENS / path.name)
    page.click('button[data-dialog="dialog-traffic"]')
    dialog = page.locator("#dialog-traffic")
    inputs = dialog.locator("input[name=weight]")
    assert inputs.count() == 3  # control and two treatments
    inputs.first.fill("10")
    assert "must be 100%" in dialog.locator("[data-weight-total]").inner_text()
    assert dialog.locator("form").evaluate("f => f.checkValidity()") is False
    inputs.nth(1).fill(str(100 - 10 - float(inputs.nth(2).input_value())))
    assert "must be" not in dialog.locator("[data-weight-total]").inner_text()
    assert errors == []


def test_novelty_view_in_chromium(demo_server: str, browser: object, tmp_path: Path) -> None:
    """The demo's feed redesign: the days-since-exposure chart draws the treatment's effect by
    day with its band and zero line, and its reading calls the fading lift a novelty effect;
    an experiment with ratio metrics only says why it has no such chart."""
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{demo_server}/experiments/feed-redesign#novelty")
    page.wait_for_selector("#chart-novelty .main-svg", timeout=15_000)
    chart = page.locator("#chart-novelty")
    assert chart.locator(".scatterlayer .trace").count() == 3  # band edges and the line
    assert chart.locator(".zerolinelayer path, .layer-above path, .shapelayer path").count() >= 1
    assert "days since first exposure" in chart.inner_text()
    reading = page.locator("#novelty .novelty-reading:not([hidden])")
    assert reading.count() == 1 and "a novelty effect" in reading.inner_text()
    path = tmp_path / "experiment-novelty.png"
    page.locator("#novelty").screenshot(path=str(path))
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENS / path.name)
    page.goto(f"{demo_server}/experiments/edge-config-v2#novelty")
    assert page.locator("#chart-novelty").count() == 0
    assert "covers binary, count and sum metrics" in page.locator("#novelty").inner_text()
    assert errors == []
