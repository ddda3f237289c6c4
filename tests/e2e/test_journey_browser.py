"""In Chromium, against a real server with authentication on: the intake wizard driven with
the keyboard alone, the calculator recomputing as its inputs change, and the main journey —
create an experiment in the wizard, request review, approve as another user, start it, send
traffic, see results and a health warning, stop it, ship with a ramp.

Screenshots of every page go to the test's tmp directory and to /tmp/screens/intake-*.png."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import splitlab

pytestmark = pytest.mark.browser
SCREENS = Path("/tmp/screens")
PASSWORD = "pass-word-1"


def shot(page: Any, tmp_path: Path, name: str, **options: Any) -> Path:
    path = tmp_path / f"intake-{name}.png"
    page.screenshot(path=str(path), full_page=True, **options)
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENS / path.name)
    return path


def log_in(browser: Any, server: str, username: str, **context: Any) -> Any:
    page = browser.new_context(**context).new_page()
    page.goto(server + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")
    return page


def focused(page: Any) -> dict[str, Any]:
    """What has the keyboard focus: its tag, name, type, text and whether focus is visible."""
    return dict(
        page.evaluate(
            """() => {
                const el = document.activeElement;
                const style = getComputedStyle(el);
                return {tag: el.tagName.toLowerCase(), name: el.getAttribute('name') || '',
                        type: el.getAttribute('type') || '', text: (el.textContent || '').trim(),
                        value: el.value || '', visible: style.outlineStyle !== 'none'
                          && parseFloat(style.outlineWidth) > 0};
            }"""
        )
    )


def tab_to(page: Any, name: str = "", text: str = "", limit: int = 60) -> dict[str, Any]:
    """Press Tab until the field ``name`` (or a button or link reading ``text``) has the
    focus; its focus ring must be visible."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        if (name and now["name"] == name) or (text and now["text"].startswith(text)):
            assert now["visible"], f"no visible focus on {now}"
            return now
    raise AssertionError(f"Tab never reached {name or text!r}")


def type_into(page: Any, name: str, value: str) -> None:
    tab_to(page, name)
    page.keyboard.press("Control+A")
    page.keyboard.type(value)


@pytest.fixture
def users(server_env: dict[str, str]) -> dict[str, str]:
    """Three users and an ingest key (as maya), made before the server starts."""
    for name, role in (("maya", "editor"), ("rita", "reviewer"), ("vic", "viewer")):
        splitlab(server_env, "users", "create", name, "--role", role, "--password", PASSWORD)
    made = splitlab(server_env, "keys", "create", "--user", "maya", "--scope", "ingest")
    server_env["TEST_INGEST_KEY"] = made.stdout.strip().splitlines()[0]
    return server_env


def test_the_wizard_with_the_keyboard_only(
    users: dict[str, str], server: str, browser: Any, tmp_path: Path
) -> None:
    errors: list[str] = []
    page = log_in(browser, server, "maya", viewport={"width": 1200, "height": 900})
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server + "/experiments/new")
    shot(page, tmp_path, "1-hypothesis")

    # step 1 — a wrong key first: the error is next to the field and the summary links to it
    type_into(page, "name", "Keyboard checkout")
    type_into(page, "key", "Keyboard Checkout")
    type_into(page, "hypothesis", "A shorter checkout converts more visitors.")
    type_into(page, "team", "growth")
    page.keyboard.press("Enter")
    page.wait_for_selector(".error-summary")
    assert "lower-case letters, digits" in page.inner_text("#e-key")
    assert page.get_attribute("#f-key", "aria-invalid") == "true"
    shot(page, tmp_path, "1-error")
    type_into(page, "key", "keyboard-checkout")
    page.keyboard.press("Enter")
    page.wait_for_url("**/experiments/new?draft=keyboard-checkout&step=2")

    # step 2 — the default control/treatment split is fine; Enter in a field continues
    assert "100%" in page.inner_text("#f-weights")  # the live total (JS)
    shot(page, tmp_path, "2-variants")
    tab_to(page, "variants.1.name")
    page.keyboard.press("Enter")
    page.wait_for_url("**step=3")

    # step 3 — no metric exists yet, so "Define a new metric" is open; Enter on its summary
    # closes and opens it again
    tab_to(page, text="Define a new metric")
    page.keyboard.press("Enter")
    assert page.evaluate("document.querySelector('details.new-metric').open") is False
    page.keyboard.press("Enter")
    assert page.evaluate("document.querySelector('details.new-metric').open") is True
    type_into(page, "new.key", "kb-conversion")
    type_into(page, "new.name", "Checkout conversion")
    type_into(page, "new.event", "purchase")
    shot(page, tmp_path, "3-metrics")
    page.keyboard.press("Enter")
    page.wait_for_url("**step=4")

    # step 4 — no data yet: type the baseline and the traffic; the preview follows (JS)
    type_into(page, "baseline", "0.1")
    type_into(page, "daily_units", "10000")
    page.wait_for_function(
        "document.getElementById('sizing-preview').textContent.includes('57,756')"
    )
    shot(page, tmp_path, "4-sample-size")
    tab_to(page, "power")
    page.keyboard.press("Enter")
    page.wait_for_url("**step=5**")

    # step 5 — the power curve is drawn; 12 days suggested as two whole weeks
    page.wait_for_selector("#power-curve .main-svg")
    assert page.input_value("#f-max_days") == "14"
    assert "57,756" in page.inner_text(".figures")
    shot(page, tmp_path, "5-duration")
    tab_to(page, "max_days")
    page.keyboard.press("Enter")
    page.wait_for_url("**step=6")

    # step 6 — complete; "request a review" is ticked; Finish with the keyboard
    assert "ready to ask for a review" in page.inner_text(".intake-step")
    shot(page, tmp_path, "6-review")
    tab_to(page, text="Finish")
    page.keyboard.press("Enter")
    page.wait_for_url(server + "/experiments/keyboard-checkout")
    shot(page, tmp_path, "experiment-after-wizard")
    state = page.request.get(server + "/api/experiments/keyboard-checkout").json()
    assert state["status"] == "review"
    assert state["metrics"]["primary"] == "kb-conversion"
    assert state["plan"]["mde"] == 0.05 and state["plan"]["max_days"] == 14
    assert errors == []


def test_the_calculator_recomputes_as_you_type(
    users: dict[str, str], server: str, browser: Any, tmp_path: Path
) -> None:
    errors: list[str] = []
    page = log_in(browser, server, "vic", viewport={"width": 1200, "height": 900})
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server + "/calculator")
    page.wait_for_selector("#power-curve .main-svg")
    assert page.inner_text("[data-out=n_per_variant]") == "57,756"
    shot(page, tmp_path, "calculator")
    page.check("input[name=kind][value=mean]")
    page.fill("#f-baseline", "20")
    page.fill("#f-sd", "30")
    page.fill("#f-mde", "10")
    page.fill("#f-daily_units", "1000")
    page.wait_for_function(
        "document.querySelector('[data-out=n_per_variant]').textContent === '3,532'"
    )
    assert page.inner_text("[data-out=days]") == "8"
    assert "kind=mean" in page.url and "sd=30" in page.url  # the URL keeps the inputs
    assert page.locator(".weeks-table tbody tr").count() == 6
    shot(page, tmp_path, "calculator-mean")
    page.fill("#f-alpha", "0.9")
    page.wait_for_selector("#f-alpha[aria-invalid=true]")
    page.reload()  # the server renders the same inputs with the error next to the field
    assert "less than 0.5" in page.inner_text("#e-alpha")
    shot(page, tmp_path, "calculator-error")
    phone = log_in(browser, server, "vic", viewport={"width": 375, "height": 800})
    phone.goto(server + "/calculator")
    phone.wait_for_selector("#power-curve .main-svg")
    shot(phone, tmp_path, "calculator-375")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 375
    assert errors == []


def test_the_wizard_on_a_phone_with_metrics_to_pick(
    users: dict[str, str], server: str, browser: Any, tmp_path: Path
) -> None:
    """At 375 px every step reads without sideways scrolling of the page; with metrics
    defined, step 3 offers them by role and keeps a guardrail's margin."""
    phone = log_in(browser, server, "maya", viewport={"width": 375, "height": 800})
    phone.goto(server + "/experiments/new")
    csrf = phone.input_value("input[name=csrf_token]")
    for body in (
        {"key": "conversion", "name": "Conversion", "kind": "binary", "event": "purchase"},
        {"key": "revenue", "name": "Revenue per user", "kind": "sum", "event": "purchase"},
        {"key": "latency-ms", "name": "Page latency", "kind": "sum", "event": "page_load",
         "direction": "decrease", "margin": 0.05},
    ):  # fmt: skip
        made = phone.request.post(
            server + "/api/metrics", data=body, headers={"X-CSRF-Token": csrf}
        )
        assert made.status == 201, made.text()
    phone.fill("#f-key", "phone-checkout")
    phone.fill("#f-hypothesis", "Fewer fields on a small screen finish more checkouts.")
    shot(phone, tmp_path, "phone-1")
    phone.click("button.primary-action")
    phone.wait_for_url("**step=2")
    phone.click("button[value=add_variant]")
    phone.fill("#f-variants-2-key", "two_step")
    phone.click("button[value=split_evenly]")
    shares = [phone.input_value(f"#f-variants-{i}-weight") for i in range(3)]
    assert shares == ["33.3333", "33.3333", "33.3334"]
    shot(phone, tmp_path, "phone-2")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    phone.click("button.primary-action")
    phone.wait_for_url("**step=3")
    phone.check("#p-conversion")
    phone.check("#s-revenue")
    phone.check("#g-latency-ms")
    phone.fill("#f-margin-latency-ms", "0.03")
    shot(phone, tmp_path, "phone-3")
    desktop = log_in(browser, server, "maya", viewport={"width": 1200, "height": 900})
    desktop.goto(server + "/experiments/new?draft=phone-checkout&step=3")
    shot(desktop, tmp_path, "3-metrics-to-pick")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    phone.click("button.primary-action")
    phone.wait_for_url("**step=4")
    saved = phone.request.get(server + "/api/experiments/phone-checkout").json()
    assert saved["metrics"] == {
        "primary": "conversion",
        "secondary": ["revenue"],
        "guardrails": [{"key": "latency-ms", "margin": 0.03}],
    }
    assert [v["weight"] for v in saved["variants"]] == pytest.approx([1 / 3] * 3, abs=1e-5)
    shot(phone, tmp_path, "phone-4")


def confirm(page: Any, action: str, reason: str = "", **fields: str) -> None:
    """Open the experiment page's dialog for ``action``, fill it in and confirm it."""
    page.click(f"button[data-dialog=dialog-{action}]")
    dialog = page.locator(f"#dialog-{action}")
    assert dialog.is_visible()
    for name, value in fields.items():
        field = dialog.locator(f"[name={name}]")
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    if reason:
        dialog.locator("textarea[name=reason]").fill(reason)
    dialog.locator("button[type=submit]").click()


def send_traffic(server: str, key: str, api_key: str) -> dict[str, int]:
    """Exposures and purchases through POST /api/events, as an SDK would send them: 2,400
    units in control and 2,100 in treatment (a sample-ratio mismatch, p ≈ 8e-6), 8% and 11%
    of them buying."""
    now = datetime.now(UTC)
    items: list[dict[str, Any]] = []
    for variant, units, rate in (("control", 2400, 0.08), ("treatment", 2100, 0.11)):
        for i in range(units):
            unit = f"{variant}-u{i}"
            moment = (now + timedelta(milliseconds=i)).isoformat()
            items.append(
                {"eventType": "exposure", "experimentKey": key, "variantKey": variant,
                 "userKey": unit, "occurredAt": moment}
            )  # fmt: skip
            if i < units * rate:
                items.append(
                    {"eventType": "purchase", "userKey": unit, "value": 30.0,
                     "eventId": f"{unit}-purchase",
                     "occurredAt": (now + timedelta(seconds=2, milliseconds=i)).isoformat()}
                )  # fmt: skip
    counts = {"accepted": 0, "rejected": 0}
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=server, headers=headers, timeout=60) as client:
        for start in range(0, len(items), 500):
            answer = client.post("/api/events", json={"events": items[start : start + 500]})
            assert answer.status_code == 200, answer.text
            for result in answer.json()["results"]:
                counts["accepted" if result["status"] == "accepted" else "rejected"] += 1
    return counts


def test_main_journey(users: dict[str, str], server: str, browser: Any, tmp_path: Path) -> None:
    key = "journey-checkout"
    errors: list[str] = []
    view = {"viewport": {"width": 1280, "height": 900}}
    maya = log_in(browser, server, "maya", **view)
    maya.on("pageerror", lambda error: errors.append(str(error)))

    # 1. the wizard, as an editor (fields filled directly: the keyboard has its own test)
    maya.goto(server + "/experiments/new")
    maya.fill("#f-name", "Journey checkout")
    maya.fill("#f-key", key)
    maya.fill("#f-hypothesis", "A one-page checkout lets more visitors finish buying.")
    maya.fill("#f-predicted_outcome", "conversion +10% relative")
    maya.fill("#f-team", "growth")
    maya.click("button.primary-action")
    maya.wait_for_url("**step=2")
    maya.fill("#f-variants-1-key", "treatment")
    maya.fill("#f-variants-1-name", "One page")
    maya.fill("#f-variants-1-payload", '{"layout": "single"}')
    maya.click("button.primary-action")
    maya.wait_for_url("**step=3")
    maya.fill("#f-new-key", "journey-conversion")
    maya.fill("#f-new-name", "Checkout conversion")
    maya.fill("#f-new-event", "purchase")
    maya.click("button.primary-action")
    maya.wait_for_url("**step=4")
    maya.fill("#f-baseline", "0.08")
    maya.fill("#f-mde", "10")
    maya.fill("#f-daily_units", "5000")
    maya.click("button.primary-action")
    maya.wait_for_url("**step=5**")
    maya.wait_for_selector("#power-curve .main-svg")
    maya.click("button.primary-action")
    maya.wait_for_url("**step=6")
    maya.fill("#f-reviewers", "rita")
    shot(maya, tmp_path, "journey-1-review-step")
    maya.click("button.primary-action")  # Finish, with "request a review" ticked
    maya.wait_for_url(f"{server}/experiments/{key}")
    assert state(maya, server, key)["status"] == "review"
    shot(maya, tmp_path, "journey-2-in-review")

    # 2. another user approves (the author may not)
    assert maya.locator("button[data-dialog=dialog-approve]").count() == 0
    rita = log_in(browser, server, "rita", **view)
    rita.on("pageerror", lambda error: errors.append(str(error)))
    rita.goto(f"{server}/experiments/{key}")
    confirm(rita, "approve", "Sample size and guardrails look right.")
    rita.wait_for_url(f"{server}/experiments/{key}?done=approve")
    shot(rita, tmp_path, "journey-3-approved")

    # 3. the editor starts it
    maya.goto(f"{server}/experiments/{key}")
    confirm(maya, "start", "approved by rita")
    maya.wait_for_url(f"{server}/experiments/{key}?done=start")
    assert state(maya, server, key)["status"] == "running"

    # 4. traffic through the ingestion API, then a fresh analysis from the page
    sent = send_traffic(server, key, users["TEST_INGEST_KEY"])
    assert sent["rejected"] == 0 and sent["accepted"] > 4500, sent
    maya.goto(f"{server}/experiments/{key}")
    confirm(maya, "refresh")
    maya.wait_for_url(f"{server}/experiments/{key}?done=refresh")

    # 5. results and a health warning on the experiment page
    results = maya.locator("table.results")
    assert results.count() == 1 and "Checkout conversion" in results.inner_text()
    health = maya.inner_text("#health")
    assert "ratio" in health.lower()  # the sample-ratio mismatch is named
    shot(maya, tmp_path, "journey-4-results-and-health")

    # 6. stop, then ship the treatment by a ramp
    confirm(maya, "stop", "enough data for the decision")
    maya.wait_for_url(f"{server}/experiments/{key}?done=stop")
    assert state(maya, server, key)["status"] == "stopped"
    confirm(
        maya, "ship", "Conversion up; the SRM was a logging gap, fixed in release 4.2.",
        variant="treatment", ramp="10,50,100", hold_hours="24",
    )  # fmt: skip
    maya.wait_for_url(f"{server}/experiments/{key}?done=ship*")
    shot(maya, tmp_path, "journey-5-ship")
    if maya.url.endswith("done=ship_pending"):
        # the ship overrides the recommendation (the SRM): a reviewer other than maya applies it
        rita.goto(f"{server}/experiments/{key}")
        confirm(rita, "approve_decision", "logging gap confirmed")
        rita.wait_for_url(f"{server}/experiments/{key}?done=approve_decision")
    ramp = maya.request.get(f"{server}/api/experiments/{key}/ramp").json()
    assert [step["percent"] for step in ramp["steps"]] == [10, 50, 100]
    assert state(maya, server, key)["status"] == "rolling_out"
    maya.goto(f"{server}/experiments/{key}")
    shot(maya, tmp_path, "journey-6-rolling-out")

    # 7. the follow-up experiment starts its sample size from the data just collected
    maya.goto(server + "/experiments/new")
    maya.fill("#f-key", "journey-follow-up")
    maya.fill("#f-hypothesis", "A one-page checkout on mobile converts as well.")
    maya.click("button.primary-action")
    maya.wait_for_url("**step=2")
    maya.click("button.primary-action")
    maya.wait_for_url("**step=3")
    maya.check("#p-journey-conversion")
    maya.click("button.primary-action")
    maya.wait_for_url("**step=4")
    note = maya.inner_text(".note")
    assert "From the last 28 days of data" in note and "4,500" in note
    # all of it arrived on one UTC day (two, if the test ran across midnight)
    assert maya.input_value("#f-daily_units") in ("4500", "2250")
    rate = (192 + 231) / 4500  # the purchases sent above, over the active units
    assert float(maya.input_value("#f-baseline")) == pytest.approx(rate, rel=1e-5)
    shot(maya, tmp_path, "journey-7-baseline-from-data")
    assert errors == []


def state(page: Any, server: str, key: str) -> dict[str, Any]:
    return dict(page.request.get(f"{server}/api/experiments/{key}").json())
