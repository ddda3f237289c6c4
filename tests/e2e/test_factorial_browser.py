"""In Chromium, a factorial experiment's page draws its interaction plot (two lines, the
factor levels on the x-axis) without a script error; the screenshot goes to the test's tmp
directory and to /tmp/screens/experiment-factorial.png for a person to look at."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import splitlab

pytestmark = pytest.mark.browser
SCREENS = Path("/tmp/screens")


@pytest.fixture
def factorial_env(server_env: dict[str, str]) -> dict[str, str]:
    """The factorial_2x2 scenario, analysed, and an admin, before the server starts."""
    splitlab(server_env, "simulate", "factorial_2x2", "--units", "8000", "--start", "2024-05-01")
    splitlab(server_env, "analyze", "factorial_2x2")
    splitlab(server_env, "users", "create", "ada", "--role", "admin", "--password", "pass-word-1")
    return server_env


def test_interaction_plot_in_chromium(
    factorial_env: dict[str, str], server: str, browser: object, tmp_path: Path
) -> None:
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server + "/login")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "pass-word-1")
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")
    page.goto(f"{server}/experiments/factorial_2x2")
    page.wait_for_selector("#chart-interaction .main-svg", timeout=30_000)
    assert page.locator("#chart-interaction .scatterlayer .trace").count() == 2
    ticks = page.locator("#chart-interaction .xtick text").all_text_contents()
    assert ticks == ["old", "new"]
    legend = page.locator("#chart-interaction .legendtext").all_text_contents()
    assert legend == ["price = standard", "price = low"]
    path = tmp_path / "experiment-factorial.png"
    page.locator("#interaction").screenshot(path=str(path))
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENS / path.name)
    assert errors == []
