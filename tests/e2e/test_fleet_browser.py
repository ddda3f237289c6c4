"""The fleet view in real Chromium over a demo organisation: filters change the view and
survive a reload, the page works from the keyboard, the charts draw from the bundled
plotly.js with nothing fetched from elsewhere, and the page fits a 375 px phone.

Screenshots go to the test's tmp directory and to ``/tmp/screens/fleet-*.png``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.browser


def shoot(page: object, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot in the test's directory, copied to /tmp/screens."""
    return screenshot(page, tmp_path, f"fleet-{name}")


def list_teams(page: object) -> list[str]:
    cells = page.locator("table.fleet-list tbody tr td:nth-child(2)")  # type: ignore[attr-defined]
    return [text.strip().splitlines()[0] for text in cells.all_inner_texts()]  # team, then type


def test_filters_change_the_view_and_survive_a_reload(
    demo_server: str, browser: object, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlparse(request.url).hostname or ""))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(demo_server + "/")
    page.wait_for_selector("#chart-timeline .main-svg")  # plotly drew the Gantt chart
    assert page.locator(".chart .plot-container").count() == 3
    default_teams = set(list_teams(page))
    assert len(default_teams) > 1
    shoot(page, tmp_path, "desktop")

    page.select_option("select[name=team]", "web")
    page.select_option("select[name=status]", "all")
    page.select_option("select[name=range]", "all")
    page.click("form#fleet-filters button[type=submit]")
    page.wait_for_url("**/?*team=web*")
    query = parse_qs(urlparse(page.url).query)
    assert query == {"range": ["all"], "team": ["web"], "status": ["all"]}  # empty ones dropped
    filtered = list_teams(page)
    assert filtered and set(filtered) == {"web"}
    keys = page.locator("table.fleet-list tbody tr code").all_inner_texts()
    assert "rich-product-pages" in keys  # a killed experiment shows with status=all

    page.reload()
    assert page.locator("select[name=team]").input_value() == "web"
    assert page.locator("select[name=status]").input_value() == "all"
    assert set(list_teams(page)) == {"web"}
    assert page.locator("table.fleet-list tbody tr code").all_inner_texts() == keys

    # a sort link keeps the filters
    page.click("table.fleet-list th >> text=Lift [CI]")
    page.wait_for_url("**sort=lift*")
    assert set(list_teams(page)) == {"web"}
    assert page.locator("table.fleet-list th[aria-sort=ascending]").text_content() == "Lift [CI]"
    page.wait_for_selector("#chart-timeline .main-svg")
    shoot(page, tmp_path, "filtered")
    assert hosts == {"127.0.0.1"}, hosts  # nothing from a CDN
    assert errors == []


def test_keyboard_only(demo_server: str, browser: object, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.goto(demo_server + "/")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.className")
    assert focused == "skip"
    box = page.locator("a.skip").bounding_box()
    assert box is not None and box["x"] >= 0  # the skip link comes into view when focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    # Tab to the team filter, choose a team with the keyboard, Tab to Apply, Enter
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "team":
            break
    else:
        pytest.fail("the team filter is not reachable with Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # visible focus
    shoot(page, tmp_path, "keyboard-focus")
    page.keyboard.press("ArrowDown")  # the first team after "All teams"
    chosen = page.evaluate("document.activeElement.value")
    assert chosen
    assert "team=" not in page.url  # nothing applied until asked
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Apply":
            break
    else:
        pytest.fail("Apply is not reachable with Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**team={chosen}*")
    assert set(list_teams(page)) <= {chosen}


def test_a_phone_sees_the_whole_page_without_sideways_scrolling(
    demo_server: str, browser: object, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 812})  # type: ignore[attr-defined]
    page.goto(demo_server + "/?status=all&range=all")
    page.wait_for_selector("#chart-timeline .main-svg")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, width
    card = page.locator(".fleet-card").first.bounding_box()
    assert card is not None and card["width"] <= 375
    shoot(page, tmp_path, "phone")
