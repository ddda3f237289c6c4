"""The model leaderboard and the canary monitor in real Chromium over demo experiments
(``distilled-ranker``, ``support-prompt-steps``, ``payments-4-2-canary``): the leaderboard's
search lives in the URL and survives a reload, configurations link to their variant pages,
sparklines are drawn, a 375 px phone scrolls only inside the table; the canary monitor
connects to its event stream, asks before rolling back, and shows the scheduler's automatic
rollback (``splitlab scheduler tick`` from outside) without reloading the page.

Screenshots go to the test's tmp directory and to ``/tmp/screens/ml-*.png``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.conftest import clean_env, screenshot, serving, splitlab

pytestmark = pytest.mark.browser
KEYS = ("distilled-ranker", "support-prompt-steps", "payments-4-2-canary")
SEED = (
    "from splitlab.config import Settings\n"
    "from splitlab.services import Services\n"
    "from splitlab.simulate.demo import EXPERIMENTS, seed_demo\n"
    "services = Services.open(Settings())\n"
    f"seed_demo(services, experiments=[e for e in EXPERIMENTS if e.key in {KEYS!r}])\n"
    "services.close()\n"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("ml-demo")
    env = clean_env(
        home,
        SPLITLAB_AUTH="off",
        SPLITLAB_SCHEDULER_SECONDS="0",
        SPLITLAB_ANALYSIS_REFRESH_SECONDS="0",
    )
    splitlab(env, "init")
    subprocess.run([sys.executable, "-c", SEED], env=env, check=True, capture_output=True)
    return env


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Iterator[str]:
    with serving(env, seconds=30, poll=0.2) as base:
        yield base


def shoot(page: object, tmp_path: Path, name: str) -> Path:
    return screenshot(page, tmp_path, f"ml-{name}")


def test_leaderboard(server: str, browser: object, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server}/models")
    rows = page.locator("table.models tbody tr")
    assert rows.count() == 6
    assert page.locator("table.models .badge-good").count() == 5  # one dominated prompt
    assert page.locator("svg.spark polyline").count() >= 8
    shoot(page, tmp_path, "leaderboard")
    page.fill("input[name=q]", "distilled")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    assert parse_qs(urlparse(page.url).query).get("q") == ["distilled"]
    assert rows.count() == 2
    page.reload()
    assert rows.count() == 2 and page.input_value("input[name=q]") == "distilled"
    page.click("text=ranker-distilled-s · max_tokens=512")
    page.wait_for_load_state()
    assert urlparse(page.url).path == "/experiments/distilled-ranker/variants/distilled"
    page.goto(f"{server}/experiments/distilled-ranker/ml")
    assert "Efficiency gain" in page.inner_text("main")
    shoot(page, tmp_path, "overlay")
    phone = browser.new_page(viewport={"width": 375, "height": 800})  # type: ignore[attr-defined]
    phone.goto(f"{server}/models")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    shoot(phone, tmp_path, "leaderboard-375")
    assert errors == []


def test_canary_live_dialog_and_automatic_rollback(
    server: str, env: dict[str, str], browser: object, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server}/canary/payments-4-2-canary")
    page.wait_for_function("document.getElementById('live-status').dataset.updates === '1'")
    assert "Live: updated" in page.inner_text("#live-text")
    assert "✗ worse" in page.inner_text("#canary-live")
    assert "Roll back:" in page.inner_text("#canary-live")
    shoot(page, tmp_path, "canary")
    # the button asks first, with a required reason; cancelling changes nothing
    page.click("#rollback-button")
    assert page.is_visible("#dialog-rollback")
    assert page.get_attribute("#rollback-reason", "required") is not None
    shoot(page, tmp_path, "canary-dialog")
    page.click("#dialog-rollback [data-close]")
    assert not page.is_visible("#dialog-rollback")
    page.evaluate("window.__sameDocument = true")
    # the scheduler runs once from outside: the guardrail check rolls the canary back
    splitlab(env, "scheduler", "tick")
    page.wait_for_function(
        "document.getElementById('canary-live').innerText.includes('Rolled back.')",
        timeout=20_000,
    )
    assert page.evaluate("window.__sameDocument === true")  # no reload
    assert page.is_disabled("#rollback-button")
    assert "Automatically by scheduler" in page.inner_text("#canary-live")
    shoot(page, tmp_path, "canary-rolled-back")
    phone = browser.new_page(viewport={"width": 375, "height": 800})  # type: ignore[attr-defined]
    phone.goto(f"{server}/canary/payments-4-2-canary")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    shoot(phone, tmp_path, "canary-375")
    assert errors == []
